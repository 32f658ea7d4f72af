#!/usr/bin/env node
// Static file server for the delta benchmark: prints its port; GET /__stats returns
// { requests, bytes } served so far.
import { createServer } from 'node:http';
import { createReadStream, promises as fs } from 'node:fs';
import { join } from 'node:path';

const root = process.argv[2];
let requests = 0;
let bytes = 0;
const server = createServer(async (req, res) => {
  const path = decodeURIComponent(new URL(req.url, 'http://x').pathname);
  if (path === '/__stats') {
    res.end(JSON.stringify({ requests, bytes }));
    return;
  }
  requests++;
  if (path.split('/').includes('..')) return res.writeHead(400).end();
  try {
    const st = await fs.stat(join(root, path));
    if (!st.isFile()) return res.writeHead(404).end();
    res.writeHead(200, { 'content-length': String(st.size) });
    bytes += st.size;
    createReadStream(join(root, path)).pipe(res);
  } catch {
    res.writeHead(404).end();
  }
});
server.listen(0, '127.0.0.1', () => console.log(server.address().port));
