import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { get, type IncomingMessage } from 'node:http';
import { connect } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tmpDir, type TmpDir } from '@larch/test-fixtures';
import { SAMPLE_TREE, httpGet, makeLarchRepo, startServerProcess } from './support.js';

let tmp: TmpDir;
let repo: string;
const SIZE = 24 * 1024 * 1024;

beforeAll(async () => {
  tmp = await tmpDir('larch-server-shutdown-');
  repo = tmp.join('repo');
  await makeLarchRepo(repo, SAMPLE_TREE, 'main');
  await writeFile(join(repo, 'extensions', 'big.bin'), randomBytes(SIZE));
});

afterAll(async () => {
  await tmp?.cleanup();
});

function startDownload(url: string): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    get(`${url}extensions/big.bin`, { agent: false }, resolve).on('error', reject);
  });
}

function refused(url: string): Promise<boolean> {
  const u = new URL(url);
  return new Promise((resolve) => {
    const s = connect(Number(u.port), u.hostname);
    s.on('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.on('error', () => resolve(true));
  });
}

describe('larch-server graceful shutdown', () => {
  it('stops accepting on SIGTERM, finishes the in-flight download, then exits 0', async () => {
    // The longest shutdown timeout: however slowly a loaded machine moves the body, the download
    // is finished, not cut off.
    const server = await startServerProcess([`--repo=${repo}`, '--port=0', '--shutdown-timeout=3600', '--access-log=/dev/null']);
    const res = await startDownload(server.url);
    res.pause(); // hold the response mid-body (24 MiB does not fit in the socket buffers)
    process.kill(server.pid, 'SIGTERM');
    // Wait for the listening socket to close, however long a loaded machine takes to get there
    // (a server that kept accepting would keep this test waiting until its timeout).
    while (!(await refused(server.url))) await new Promise((r) => setTimeout(r, 20));
    let got = 0;
    res.on('data', (c: Buffer) => (got += c.length));
    await new Promise<void>((resolve, reject) => {
      res.on('end', resolve);
      res.on('error', reject);
      res.resume();
    });
    expect(got).toBe(SIZE);
    expect(await server.exited).toBe(0);
    expect(server.stderr()).toContain('SIGTERM');
  });

  it('does not wait for idle keep-alive connections', async () => {
    // With the longest shutdown and keep-alive timeouts, a server that waited for the idle
    // connection would not exit within the test's time; one that does not wait closes it and exits.
    const server = await startServerProcess([`--repo=${repo}`, '--port=0', '--shutdown-timeout=3600', '--keep-alive-timeout=3600', '--access-log=/dev/null']);
    const u = new URL(server.url);
    const s = connect(Number(u.port), u.hostname);
    const closed = new Promise<void>((resolve) => s.on('close', () => resolve()));
    s.on('error', () => undefined);
    await new Promise<void>((resolve) => {
      s.on('data', () => resolve());
      s.write('GET /config HTTP/1.1\r\nHost: x\r\n\r\n');
    });
    process.kill(server.pid, 'SIGINT');
    expect(await server.exited).toBe(0);
    await closed;
  });

  it('gives up on a stalled client after --shutdown-timeout and still exits 0', async () => {
    const server = await startServerProcess([`--repo=${repo}`, '--port=0', '--shutdown-timeout=1', '--access-log=/dev/null']);
    const res = await startDownload(server.url);
    res.pause(); // never read again
    const aborted = new Promise<void>((resolve) => {
      res.on('aborted', resolve);
      res.on('error', () => resolve());
      res.on('close', resolve);
    });
    const t0 = Date.now();
    process.kill(server.pid, 'SIGTERM');
    // It exits (the client never reads, so without the timeout it would wait for ever), and not
    // before the timeout has passed. No upper bound: a loaded machine may exit late.
    expect(await server.exited).toBe(0);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1000);
    res.resume();
    await aborted;
    expect(res.complete).toBe(false);
  });

  it('answers requests normally before shutdown', async () => {
    const server = await startServerProcess([`--repo=${repo}`, '--port=0', '--access-log=/dev/null']);
    expect((await httpGet(server.url, '/config')).status).toBe(200);
    expect(await server.stop('SIGTERM')).toBe(0);
  });
});
