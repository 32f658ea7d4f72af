/**
 * Connection floods against a real larch-server process on 127.0.0.1: 1,100 connections that
 * send a request line and one header and then nothing (slowloris), held open half-closed, and
 * more of them opened all the time while ordinary clients are served. More than the default
 * connection limit (1,024), so a server that refuses new connections at the limit shuts every
 * ordinary client out for as long as the attacker holds on. The server must
 * keep serving fresh connections during the flood and must close the attacker's connections
 * itself once the header timeout (20 s by default) has passed.
 *
 * The server's socket count is read from /proc/PID/fd, so the test sees what the server really
 * holds, not what the attacker's side believes.
 */
import { readFile, readdir, readlink } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tmpDir, type TmpDir } from '@larch/test-fixtures';
import { SAMPLE_TREE, httpGet, makeLarchRepo, startServerProcess, type ServerProcess } from './support.js';

/** Attacker connections: more than the default limit of 1,024. */
const ATTACKERS = 1100;
/** Ordinary requests, each on a fresh connection, sent one after another during the flood. */
const ORDINARY = 60;
/** Pause between ordinary requests, so that they are spread over the flood. */
const ORDINARY_GAP_MS = 100;
/** While the ordinary requests run, the attacker keeps opening this many more every CHURN_GAP_MS. */
const CHURN = 10;
const CHURN_GAP_MS = 50;
/** The server's default header timeout is 20 s; its connections must be gone well before this. */
const CLOSE_DEADLINE_MS = 50_000;

let tmp: TmpDir;
let server: ServerProcess;
let repo: string;
let commit: string;

/** Sockets the process `pid` holds open (the listening socket and stdio socketpairs included). */
async function socketCount(pid: number): Promise<number> {
  const fds = await readdir(`/proc/${pid}/fd`);
  const links = await Promise.all(fds.map((fd) => readlink(`/proc/${pid}/fd/${fd}`).catch(() => '')));
  return links.filter((l) => l.startsWith('socket:')).length;
}

async function waitFor(what: string, deadlineMs: number, check: () => Promise<boolean>): Promise<void> {
  const end = Date.now() + deadlineMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

interface Attacker {
  socket: Socket;
  /** The server ended its side (FIN) or the connection is gone. */
  ended: boolean;
}

/**
 * Open one slowloris connection: request line and one header, then silence. The socket is
 * half-open capable, so the server ending its side does not close ours: the attacker keeps
 * holding on, as a hostile client would. Resolves once the bytes are written or the
 * connection failed.
 */
function openAttacker(port: number): Promise<Attacker> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port, allowHalfOpen: true });
    const a: Attacker = { socket, ended: false };
    socket.on('error', () => undefined);
    // Read (and ignore) whatever the server answers, so that its FIN is seen.
    socket.resume();
    socket.on('end', () => (a.ended = true));
    socket.on('close', () => {
      a.ended = true;
      resolve(a);
    });
    socket.on('connect', () => {
      socket.write('GET /config HTTP/1.1\r\nHost: x\r\n', () => resolve(a));
    });
  });
}

async function openAttackers(port: number, n: number, parallel: number): Promise<Attacker[]> {
  const out: Attacker[] = [];
  for (let i = 0; i < n; i += parallel) {
    out.push(...(await Promise.all(Array.from({ length: Math.min(parallel, n - i) }, () => openAttacker(port)))));
  }
  return out;
}

describe('larch-server under a slowloris connection flood', () => {
  let attackers: Attacker[] = [];

  beforeAll(async () => {
    // This process holds every attacker socket and the server (its child) up to 1,024 of them.
    const limits = await readFile('/proc/self/limits', 'utf8');
    const soft = Number(/^Max open files\s+(\d+|unlimited)/m.exec(limits)?.[1].replace('unlimited', 'Infinity'));
    if (!(soft >= 4096)) throw new Error(`the open-file limit is ${soft}: raise it to 4096 or more (ulimit -n 4096) to run this test`);
    tmp = await tmpDir('larch-server-slowloris-');
    repo = tmp.join('repo');
    commit = await makeLarchRepo(repo, SAMPLE_TREE, 'main');
    server = await startServerProcess([`--repo=${repo}`, '--port=0', `--access-log=${tmp.join('access.log')}`]);
  });

  afterAll(async () => {
    for (const a of attackers) a.socket.destroy();
    await server?.stop();
    await tmp?.cleanup();
  });

  it('keeps serving fresh connections while 1,100 and more half-open connections wait for their headers, and closes those after the header timeout', async () => {
    const port = Number(new URL(server.url).port);
    const idle = await socketCount(server.pid);
    const config = (await httpGet(server.url, '/config')).body;
    const commitPath = `/objects/${commit.slice(0, 2)}/${commit.slice(2)}.commit`;
    const commitBody = (await httpGet(server.url, commitPath)).body;
    expect(commitBody.length).toBeGreaterThan(0);

    attackers = await openAttackers(port, ATTACKERS, 100);
    // The flood holds the server at its limit (once the server has accepted what the kernel has).
    let held = 0;
    await waitFor('the flood to fill the server', 20_000, async () => (held = (await socketCount(server.pid)) - idle) >= 1000);

    // The attacker keeps opening new connections during the ordinary requests.
    let flooding = true;
    const churn = (async () => {
      while (flooding) {
        attackers.push(...(await openAttackers(port, CHURN, CHURN)));
        await new Promise((r) => setTimeout(r, CHURN_GAP_MS));
      }
    })();

    const failures: string[] = [];
    for (let i = 0; i < ORDINARY; i++) {
      const path = i % 2 === 0 ? '/config' : commitPath;
      try {
        const r = await httpGet(server.url, path);
        if (r.status !== 200) failures.push(`${path}: status ${r.status}`);
        else if (!r.body.equals(i % 2 === 0 ? config : commitBody)) failures.push(`${path}: wrong body`);
      } catch (e) {
        failures.push(`${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
      }
      await new Promise((r) => setTimeout(r, ORDINARY_GAP_MS));
    }
    flooding = false;
    await churn;
    expect(failures, `${failures.length} of ${ORDINARY} ordinary requests failed during the flood`).toEqual([]);
    // The flood was still on while they were served: most attacker connections are still held.
    let stillHeld = 0;
    await waitFor('the flood to be still held', 5_000, async () => (stillHeld = (await socketCount(server.pid)) - idle) >= 900);

    // Past the header timeout the server closes them itself, although the attacker never does.
    await waitFor('the server to close the attacker connections', CLOSE_DEADLINE_MS, async () => (await socketCount(server.pid)) - idle <= 2);
    await waitFor('every attacker connection to be ended by the server', 5_000, async () => attackers.every((a) => a.ended));
    console.log(`slowloris: ${held} connections held at the peak, ${ORDINARY} ordinary requests served while ${attackers.length - ATTACKERS} more were opened, ${stillHeld} still held after them`);

    // And the server is as available as before.
    expect((await httpGet(server.url, '/config')).status).toBe(200);
  });
});
