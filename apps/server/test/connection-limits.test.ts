/**
 * What happens at the connection limit, on a server started in-process with a limit of 4 and
 * real sockets on 127.0.0.1: a new connection takes the place of an idle keep-alive connection
 * first, then of the connection that has waited longest for its headers, and is refused only
 * when every connection is serving a request.
 */
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { get, type IncomingMessage } from 'node:http';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tmpDir, type TmpDir } from '@larch/test-fixtures';
import { startServer, type RunningServer } from '../src/index.js';
import { SAMPLE_TREE, httpGet, makeLarchRepo } from './support.js';

const LIMIT = 4;
/** Large enough that a response to a client that does not read cannot finish. */
const BIG = 32 * 1024 * 1024;

let tmp: TmpDir;
let server: RunningServer;
const sockets: Socket[] = [];

/** Wait for a condition; the bound is only a guard (below the test's timeout, to name what hung). */
async function waitFor(what: string, check: () => boolean): Promise<void> {
  const end = Date.now() + 100_000;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

interface Client {
  socket: Socket;
  closed: boolean;
  received: string;
}

/** A raw connection that sends `bytes` once connected. */
function open(bytes: string): Promise<Client> {
  return new Promise((resolve, reject) => {
    const socket = connect(server.port, '127.0.0.1');
    sockets.push(socket);
    const c: Client = { socket, closed: false, received: '' };
    socket.on('data', (d: Buffer) => (c.received += d.toString('latin1')));
    socket.on('error', () => undefined);
    socket.on('close', () => (c.closed = true));
    socket.once('connect', () => socket.write(bytes, (e) => (e ? reject(e) : resolve(c))));
  });
}

/** A connection waiting for its headers: request line and one header, then nothing. */
async function waiting(): Promise<Client> {
  const before = server.connections().waiting;
  const c = await open('GET /config HTTP/1.1\r\nHost: x\r\n');
  await waitFor('the server to count the connection', () => server.connections().waiting > before);
  return c;
}

/** A keep-alive connection that has had one answer and stays idle. */
async function idleKeepAlive(): Promise<Client> {
  const c = await open('GET /config HTTP/1.1\r\nHost: x\r\n\r\n');
  await waitFor('the answer', () => /\r\n\r\n/.test(c.received));
  await waitFor('the connection to become idle', () => server.connections().idle > 0);
  return c;
}

/** A download the client does not read: the connection stays active. */
function stalledDownload(): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = get(`${server.url}extensions/big.bin`, { agent: false }, (res) => {
      res.pause();
      resolve(res);
    });
    req.on('socket', (s) => sockets.push(s));
    req.on('error', reject);
  });
}

describe('larch-server at its connection limit', () => {
  beforeAll(async () => {
    tmp = await tmpDir('larch-server-limits-');
    const repo = tmp.join('repo');
    await makeLarchRepo(repo, SAMPLE_TREE, 'main');
    await writeFile(join(repo, 'extensions', 'big.bin'), randomBytes(BIG));
    server = await startServer({ repos: [{ prefix: '/', path: repo }], port: 0, maxConnections: LIMIT });
  });

  afterAll(async () => {
    for (const s of sockets) s.destroy();
    await server?.shutdown(1000);
    await tmp?.cleanup();
  });

  it('evicts the idle keep-alive connection first, then the oldest waiting one, and refuses only when all are active', async () => {
    const idle = await idleKeepAlive();
    const w1 = await waiting();
    const w2 = await waiting();
    const w3 = await waiting();
    expect(server.connections()).toMatchObject({ open: LIMIT, waiting: 3, idle: 1, evicted: 0 });

    // At the limit a fresh request is served, in place of the idle connection.
    expect((await httpGet(server.url, '/config')).status).toBe(200);
    await waitFor('the idle connection to be closed', () => idle.closed);
    expect([w1.closed, w2.closed, w3.closed]).toEqual([false, false, false]);

    // With no idle connection, the one waiting longest for its headers makes room.
    const w4 = await waiting();
    expect(server.connections().open).toBe(LIMIT);
    expect((await httpGet(server.url, '/config')).status).toBe(200);
    await waitFor('the oldest waiting connection to be closed', () => w1.closed);
    expect([w2.closed, w3.closed, w4.closed]).toEqual([false, false, false]);
    expect(w1.received).toBe('');
    expect(server.connections().evicted).toBe(2);

    // Connections that are serving a request are never evicted: with all of them busy, a new
    // connection is refused.
    for (const w of [w2, w3, w4]) w.socket.destroy();
    await waitFor('the waiting connections to go', () => server.connections().open === 0);
    const downloads = await Promise.all(Array.from({ length: LIMIT }, () => stalledDownload()));
    expect(server.connections()).toMatchObject({ open: LIMIT, active: LIMIT });
    await expect(httpGet(server.url, '/config')).rejects.toThrow();
    expect(server.connections()).toMatchObject({ active: LIMIT, refused: 1 });
    for (const d of downloads) d.destroy();
    await waitFor('the downloads to go', () => server.connections().open === 0);
    expect((await httpGet(server.url, '/config')).status).toBe(200);
  });
});
