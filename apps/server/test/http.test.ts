import { randomBytes } from 'node:crypto';
import { readFile, readdir, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tmpDir, type TmpDir } from '@larch/test-fixtures';
import { SAMPLE_TREE, httpGet, makeLarchRepo, rawRequest, startServerProcess, type ServerProcess } from './support.js';

let tmp: TmpDir;
let server: ServerProcess;
let repo: string;
let commit: string;
let big: Buffer;
const commitPath = (): string => `/objects/${commit.slice(0, 2)}/${commit.slice(2)}.commit`;

beforeAll(async () => {
  tmp = await tmpDir('larch-server-http-');
  repo = tmp.join('repo');
  commit = await makeLarchRepo(repo, SAMPLE_TREE, 'main');
  big = randomBytes(1_500_000);
  await writeFile(join(repo, 'extensions', 'big.bin'), big);
  server = await startServerProcess([`--repo=${repo}`, '--port=0', `--access-log=${tmp.join('access.log')}`]);
});

afterAll(async () => {
  await server?.stop();
  await tmp?.cleanup();
});

describe('larch-server HTTP semantics', () => {
  it('prints the URL it serves on stdout, bound to 127.0.0.1', () => {
    expect(server.stdout()).toMatch(/^Serving \/\S+\/repo at http:\/\/127\.0\.0\.1:\d+\/$/m);
  });

  it('serves config as text with a short cache lifetime and validators', async () => {
    const r = await httpGet(server.url, '/config');
    expect(r.status).toBe(200);
    expect(r.body.toString()).toBe(await readFile(join(repo, 'config'), 'utf8'));
    expect(r.headers['content-type']).toBe('text/plain; charset=utf-8');
    expect(r.headers['cache-control']).toBe('no-cache');
    expect(r.headers['etag']).toMatch(/^"[0-9a-f]+-[0-9a-f]+-[0-9a-f]+"$/);
    expect(Date.parse(String(r.headers['last-modified']))).toBeGreaterThan(0);
    expect(r.headers['content-length']).toBe(String(r.body.length));
  });

  it('serves objects byte for byte as immutable', async () => {
    const r = await httpGet(server.url, commitPath());
    expect(r.status).toBe(200);
    expect(r.body.equals(await readFile(join(repo, commitPath())))).toBe(true);
    expect(r.headers['cache-control']).toBe('public, max-age=31536000, immutable');
    expect(r.headers['content-type']).toBe('application/octet-stream');
  });

  it('serves refs, summary and every object of the repository', async () => {
    expect((await httpGet(server.url, '/refs/heads/main')).body.toString()).toBe(`${commit}\n`);
    const s = await httpGet(server.url, '/summary');
    expect(s.body.equals(await readFile(join(repo, 'summary')))).toBe(true);
    expect(s.headers['cache-control']).toBe('no-cache');
    for (const xx of await readdir(join(repo, 'objects'))) {
      for (const name of await readdir(join(repo, 'objects', xx))) {
        const r = await httpGet(server.url, `/objects/${xx}/${name}`);
        expect(r.status).toBe(200);
        expect(r.body.equals(await readFile(join(repo, 'objects', xx, name)))).toBe(true);
      }
    }
  });

  it('answers HEAD with the headers of GET and no body', async () => {
    const r = await httpGet(server.url, commitPath(), { method: 'HEAD' });
    expect(r.status).toBe(200);
    expect(r.body.length).toBe(0);
    expect(r.headers['content-length']).toBe(String((await stat(join(repo, commitPath()))).size));
  });

  it('answers 404 in plain text for absent optional files', async () => {
    for (const p of ['/summary.sig', `/objects/${commit.slice(0, 2)}/${commit.slice(2)}.commitmeta`, '/deltas/Wq/abc/superblock', '/refs/heads/nope']) {
      const r = await httpGet(server.url, p);
      expect(r.status, p).toBe(404);
      expect(r.headers['content-type']).toBe('text/plain; charset=utf-8');
      expect(r.body.toString()).not.toMatch(/<html/i);
    }
  });

  it('refuses methods other than GET and HEAD with 405 and Allow', async () => {
    for (const method of ['POST', 'PUT', 'DELETE', 'OPTIONS']) {
      const r = await httpGet(server.url, '/config', { method });
      expect(r.status, method).toBe(405);
      expect(r.headers['allow']).toBe('GET, HEAD');
    }
  });

  it('answers 304 to a matching If-None-Match, weak or strong, and 200 otherwise', async () => {
    const first = await httpGet(server.url, commitPath());
    const etag = String(first.headers['etag']);
    const strong = await httpGet(server.url, commitPath(), { headers: { 'If-None-Match': etag } });
    expect(strong.status).toBe(304);
    expect(strong.body.length).toBe(0);
    expect(strong.headers['etag']).toBe(etag);
    expect((await httpGet(server.url, commitPath(), { headers: { 'If-None-Match': `"x", W/${etag}` } })).status).toBe(304);
    expect((await httpGet(server.url, commitPath(), { headers: { 'If-None-Match': '"other"' } })).status).toBe(200);
  });

  it('answers 304 to If-Modified-Since at or after the mtime, 200 before it', async () => {
    const lm = String((await httpGet(server.url, '/summary', { method: 'HEAD' })).headers['last-modified']);
    expect((await httpGet(server.url, '/summary', { headers: { 'If-Modified-Since': lm } })).status).toBe(304);
    const before = new Date(Date.parse(lm) - 3600_000).toUTCString();
    expect((await httpGet(server.url, '/summary', { headers: { 'If-Modified-Since': before } })).status).toBe(200);
    // If-None-Match takes precedence over If-Modified-Since.
    expect((await httpGet(server.url, '/summary', { headers: { 'If-Modified-Since': lm, 'If-None-Match': '"other"' } })).status).toBe(200);
  });

  it('serves single byte ranges with 206 and Content-Range', async () => {
    const r = await httpGet(server.url, '/extensions/big.bin', { headers: { Range: 'bytes=1000-1099' } });
    expect(r.status).toBe(206);
    expect(r.headers['content-range']).toBe(`bytes 1000-1099/${big.length}`);
    expect(r.body.equals(big.subarray(1000, 1100))).toBe(true);
    const suffix = await httpGet(server.url, '/extensions/big.bin', { headers: { Range: 'bytes=-10' } });
    expect(suffix.body.equals(big.subarray(big.length - 10))).toBe(true);
    const open = await httpGet(server.url, '/extensions/big.bin', { headers: { Range: 'bytes=200000-' } });
    expect(open.status).toBe(206);
    expect(open.body.equals(big.subarray(200000))).toBe(true);
  });

  it('answers 416 with the size for an unsatisfiable range', async () => {
    const r = await httpGet(server.url, '/extensions/big.bin', { headers: { Range: `bytes=${big.length}-` } });
    expect(r.status).toBe(416);
    expect(r.headers['content-range']).toBe(`bytes */${big.length}`);
  });

  it('ignores Range when If-Range names another version', async () => {
    const r = await httpGet(server.url, '/extensions/big.bin', { headers: { Range: 'bytes=0-9', 'If-Range': '"stale"' } });
    expect(r.status).toBe(200);
    expect(r.body.length).toBe(big.length);
    const etag = String(r.headers['etag']);
    expect((await httpGet(server.url, '/extensions/big.bin', { headers: { Range: 'bytes=0-9', 'If-Range': etag } })).status).toBe(206);
  });

  it('notices an object replaced on disk after it was cached', async () => {
    const p = `/objects/${commit.slice(0, 2)}/${'e'.repeat(62)}.dirmeta`;
    await writeFile(join(repo, `${p}.tmp`), 'first');
    await rename(join(repo, `${p}.tmp`), join(repo, p));
    expect((await httpGet(server.url, p)).body.toString()).toBe('first');
    expect((await httpGet(server.url, p)).body.toString()).toBe('first');
    expect((await httpGet(server.url, p, { headers: { Range: 'bytes=1-2' } })).body.toString()).toBe('ir');
    await writeFile(join(repo, `${p}.tmp`), 'second');
    await rename(join(repo, `${p}.tmp`), join(repo, p));
    expect((await httpGet(server.url, p)).body.toString()).toBe('second');
    await unlink(join(repo, p));
    expect((await httpGet(server.url, p)).status).toBe(404);
  });

  it('streams a large file completely', async () => {
    const r = await httpGet(server.url, '/extensions/big.bin');
    expect(r.status).toBe(200);
    expect(r.body.equals(big)).toBe(true);
  });

  it('keeps the connection alive across requests', async () => {
    const req = 'GET /config HTTP/1.1\r\nHost: x\r\n\r\n';
    const out = await rawRequest(server.url, `${req}${req}GET /refs/heads/main HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    expect(out.match(/HTTP\/1\.1 200 OK/g)).toHaveLength(3);
    expect(out).toContain(`${commit}\n`);
  });

  it('writes one JSON access-log line per request with the required fields', async () => {
    await httpGet(server.url, '/config?probe=1');
    let line: Record<string, unknown> | undefined;
    for (let i = 0; i < 50 && !line; i++) {
      const lines = (await readFile(tmp.join('access.log'), 'utf8')).split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
      line = lines.find((l) => l.path === '/config?probe=1');
      if (!line) await new Promise((r) => setTimeout(r, 50));
    }
    expect(line).toMatchObject({ method: 'GET', status: 200, remote: '127.0.0.1' });
    expect(typeof line!.time).toBe('string');
    expect(line!.bytes).toBeGreaterThan(0);
    expect(typeof line!.durationMs).toBe('number');
  });
});
