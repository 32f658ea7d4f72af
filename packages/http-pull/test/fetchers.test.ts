/**
 * The two Fetcher implementations against real endpoints: undici against a node:http server on
 * 127.0.0.1 (status, headers, ranges, keep-alive reuse, abort), and the file:// fetcher.
 */
import { promises as fsp } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tmpDir, type TmpDir } from '@larch/test-fixtures';
import { FileFetcher, TransportError, UndiciFetcher, joinUrl, type FetchResponse } from '../src/index.js';

async function text(r: FetchResponse): Promise<string> {
  const parts: Buffer[] = [];
  for await (const c of r.body) parts.push(Buffer.from(c));
  return Buffer.concat(parts).toString('utf8');
}

describe('fetchers', () => {
  let tmp: TmpDir;
  let server: http.Server;
  let base: string;
  const sockets = new Set<unknown>();
  const never = new AbortController().signal;

  beforeAll(async () => {
    tmp = await tmpDir('larch-fetchers-');
    await fsp.writeFile(tmp.join('hello.txt'), 'hello, world\n');
    server = http.createServer((req, res) => {
      sockets.add(req.socket);
      if (req.url === '/hello.txt') {
        const body = Buffer.from('hello, world\n');
        const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
        if (m) {
          const end = m[2] === '' ? body.length - 1 : Number(m[2]);
          res.writeHead(206, { 'content-length': end - Number(m[1]) + 1 });
          res.end(body.subarray(Number(m[1]), end + 1));
          return;
        }
        res.writeHead(200, { 'content-length': body.length, etag: '"x"' });
        res.end(body);
      } else if (req.url === '/redirect') {
        res.writeHead(302, { location: '/hello.txt' });
        res.end();
      } else if (req.url === '/hang') {
        res.writeHead(200, { 'content-length': 100 });
        res.write('partial');
      } else {
        res.writeHead(404);
        res.end('nope');
      }
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    await tmp.cleanup();
  });

  it('joinUrl keeps the base path whether or not it ends in /', () => {
    expect(joinUrl('http://h/repo', 'objects/ab/cd.commit')).toBe('http://h/repo/objects/ab/cd.commit');
    expect(joinUrl('http://h/repo/', 'summary')).toBe('http://h/repo/summary');
  });

  it('undici: status, lower-cased headers, body, range, redirects, one pooled connection', async () => {
    const f = new UndiciFetcher();
    try {
      const r = await f.get(`${base}hello.txt`, { maxBytes: 100, signal: never });
      expect(r.status).toBe(200);
      expect(r.headers.etag).toBe('"x"');
      expect(await text(r)).toBe('hello, world\n');
      const part = await f.get(`${base}hello.txt`, { maxBytes: 100, signal: never, range: { start: 7 } });
      expect(part.status).toBe(206);
      expect(await text(part)).toBe('world\n');
      const red = await f.get(`${base}redirect`, { maxBytes: 100, signal: never });
      expect(await text(red)).toBe('hello, world\n');
      const missing = await f.get(`${base}missing`, { maxBytes: 100, signal: never });
      expect(missing.status).toBe(404);
      await missing.dump();
      // keep-alive: five requests, fewer connections (the pool may open a second one).
      expect(sockets.size).toBeLessThanOrEqual(2);
    } finally {
      await f.close();
    }
  });

  it('undici: an abort while the body stalls rejects the read; a refused connection is a TransportError', async () => {
    const f = new UndiciFetcher();
    try {
      const ac = new AbortController();
      const r = await f.get(`${base}hang`, { maxBytes: 1000, signal: ac.signal });
      setTimeout(() => ac.abort(new Error('stop')), 50);
      await expect(text(r)).rejects.toThrow('stop');
      const closed = http.createServer();
      await new Promise<void>((res) => closed.listen(0, '127.0.0.1', () => res()));
      const port = (closed.address() as AddressInfo).port;
      await new Promise((res) => closed.close(res));
      await expect(f.get(`http://127.0.0.1:${port}/x`, { maxBytes: 10, signal: never })).rejects.toBeInstanceOf(TransportError);
    } finally {
      await f.close();
    }
  });

  it('file://: 200 with content-length, ranges, 404 for missing files and directories', async () => {
    const f = new FileFetcher();
    const url = pathToFileURL(tmp.join('hello.txt')).toString();
    const r = await f.get(url, { maxBytes: 100, signal: never });
    expect(r.status).toBe(200);
    expect(r.headers['content-length']).toBe('13');
    expect(await text(r)).toBe('hello, world\n');
    const part = await f.get(url, { maxBytes: 100, signal: never, range: { start: 0, end: 4 } });
    expect(part.status).toBe(206);
    expect(await text(part)).toBe('hello');
    expect((await f.get(pathToFileURL(tmp.join('nope')).toString(), { maxBytes: 1, signal: never })).status).toBe(404);
    expect((await f.get(pathToFileURL(tmp.path).toString(), { maxBytes: 1, signal: never })).status).toBe(404);
  });
});
