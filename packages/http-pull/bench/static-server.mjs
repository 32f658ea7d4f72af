#!/usr/bin/env node
// A plain static file server for the pull benchmark, run as its own process so it does not
// share an event loop with the puller. Prints its port on stdout; `GET /__stats` returns the
// number of requests served since the last `/__stats` (that request is not counted).
import { createReadStream, promises as fsp } from 'node:fs';
import http from 'node:http';
import { join, normalize } from 'node:path';

const root = process.argv[2];
let count = 0;
const server = http.createServer(async (req, res) => {
  const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
  if (path === '/__stats') {
    res.end(String(count));
    count = 0;
    return;
  }
  count++;
  const rel = normalize(path).replace(/^\/+/, '');
  if (rel.startsWith('..')) {
    res.writeHead(400).end();
    return;
  }
  const file = join(root, rel);
  try {
    const st = await fsp.stat(file);
    if (!st.isFile()) throw new Error('not a file');
    res.writeHead(200, { 'content-length': st.size });
    createReadStream(file).pipe(res);
  } catch {
    res.writeHead(404).end();
  }
});
server.keepAliveTimeout = 30_000;
server.listen(0, '127.0.0.1', () => console.log(server.address().port));
process.on('SIGTERM', () => {
  server.closeAllConnections();
  server.close(() => process.exit(0));
});
