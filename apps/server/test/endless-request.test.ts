/**
 * Requests that never end, against a real larch-server process with its /api/ enabled: a header
 * that grows forever, and chunked bodies that never end, sent to API endpoints (refused before
 * the body is read, refused past the endpoint's body limit) and to a static file. Each must be
 * answered, the connection must be closed by the server after a bounded number of bytes, in
 * order (a FIN after the answer, not only a reset that may destroy the answer, or a connection
 * held until some timeout), and the server must keep answering other clients meanwhile.
 */
import { execFile } from 'node:child_process';
import { connect } from 'node:net';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tmpDir, type TmpDir } from '@larch/test-fixtures';
import { SAMPLE_TREE, SERVER_MAIN, httpGet, makeLarchRepo, startServerProcess, type ServerProcess } from './support.js';

/** The attacker gives up after this many bytes: a server that has not closed by then never will. */
const ATTACK_LIMIT = 64 * 1024 * 1024;
const CHUNK = 16 * 1024;

let tmp: TmpDir;
let server: ServerProcess;
let token: string;

interface EndlessResult {
  /** Status of the answer, when one arrived. */
  status: number | null;
  /** Bytes written before the server closed the connection (or the attacker gave up). */
  sent: number;
  /** Whether the server closed the connection before the attacker gave up. */
  closedByServer: boolean;
  /** Whether the server ended the connection in order (FIN after its answer), not only reset it. */
  fin: boolean;
}

/**
 * Write `head`, then `piece()` again and again (honouring backpressure) until the server closes
 * the connection or ATTACK_LIMIT bytes are out. `onAnswer` runs once the status line arrived.
 */
function sendEndless(url: string, head: string, piece: () => Buffer, onAnswer?: () => Promise<void>): Promise<EndlessResult> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(u.port), u.hostname);
    let sent = 0;
    let answer = '';
    let status: number | null = null;
    let closed = false;
    let fin = false;
    let check: Promise<void> = Promise.resolve();
    socket.on('error', () => undefined);
    socket.on('data', (d: Buffer) => {
      if (status !== null) return;
      answer += d.toString('latin1');
      const m = /^HTTP\/1\.1 (\d{3}) /.exec(answer);
      if (m) {
        status = Number(m[1]);
        if (onAnswer) check = onAnswer();
      }
    });
    socket.on('end', () => (fin = true));
    socket.on('close', () => {
      closed = true;
      check.then(() => resolve({ status, sent, closedByServer: sent < ATTACK_LIMIT, fin }), reject);
    });
    // One piece per turn of the event loop, so that the answer is read as soon as it arrives.
    const pump = (): void => {
      if (closed) return;
      if (sent >= ATTACK_LIMIT) {
        socket.destroy();
        return;
      }
      const buf = piece();
      sent += buf.length;
      if (socket.write(buf)) setImmediate(pump);
      else socket.once('drain', pump);
    };
    socket.on('connect', () => {
      socket.write(head);
      pump();
    });
  });
}

const filler = Buffer.alloc(CHUNK, 'a');
const chunked = Buffer.concat([Buffer.from(`${CHUNK.toString(16)}\r\n`), filler, Buffer.from('\r\n')]);

describe('larch-server against requests that never end', () => {
  beforeAll(async () => {
    tmp = await tmpDir('larch-server-endless-');
    const repo = tmp.join('repo');
    await makeLarchRepo(repo, SAMPLE_TREE, 'main');
    const db = tmp.join('state/larch.db');
    const created = await promisify(execFile)(process.execPath, [SERVER_MAIN, 'token', 'create', `--database=${db}`, '--repo=default', '--rights=publish,admin']);
    token = created.stdout.trim();
    server = await startServerProcess([`--repo=${repo}`, '--port=0', `--database=${db}`, `--access-log=${tmp.join('access.log')}`]);
  });

  afterAll(async () => {
    await server?.stop();
    await tmp?.cleanup();
  });

  const stillServing = async (): Promise<void> => {
    expect((await httpGet(server.url, '/config')).status).toBe(200);
  };

  it('closes a connection whose header never ends, after at most the header size limit', async () => {
    const r = await sendEndless(server.url, 'POST /api/v1/repos/default/refs/heads/main HTTP/1.1\r\nHost: x\r\nX-Pad: ', () => filler);
    expect(r.closedByServer, `still open after ${r.sent} bytes`).toBe(true);
    expect(r.status).toBe(431);
    expect(r.fin).toBe(true);
    console.log(`endless header: 431 and closed by the server after ${(r.sent / 1024).toFixed(0)} KiB`);
    await stillServing();
  });

  const bodies: Array<{ name: string; head: () => string; status: number }> = [
    {
      name: 'to an API endpoint without a token (refused before the body is read)',
      head: () => 'POST /api/v1/repos/default/refs/heads/main HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n',
      status: 401,
    },
    {
      name: 'to an API endpoint with a token (refused past its 64 KiB body limit)',
      head: () => `POST /api/v1/repos/default/refs/heads/main HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n`,
      status: 413,
    },
    {
      name: 'to a rollout with an admin token (refused past its body limit)',
      head: () => `PUT /api/v1/repos/default/rollouts/main HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n`,
      status: 413,
    },
    {
      name: 'to a static file (answered without reading the body)',
      head: () => 'GET /config HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n',
      status: 200,
    },
  ];
  for (const b of bodies) {
    it(`answers an endless chunked body ${b.name}, then closes the connection`, async () => {
      const r = await sendEndless(server.url, b.head(), () => chunked, stillServing);
      expect(r.status).toBe(b.status);
      expect(r.closedByServer, `still open after ${r.sent} bytes`).toBe(true);
      expect(r.fin, 'the server reset the connection without ending it after its answer').toBe(true);
      console.log(`endless body, status ${r.status}: closed by the server after ${(r.sent / 1024 / 1024).toFixed(1)} MiB`);
      await stillServing();
    });
  }
});
