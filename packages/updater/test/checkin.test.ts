/**
 * Check-in sending, with real agents (in-process `Agent` over a temporary sysroot) against
 * `larch-server` for the updates and a small node:http endpoint that records every check-in:
 * the payload is POSTed with the bearer token (from the config or a token file), validates
 * against `checkInSchema`, carries the health results; a rollback checks in before its reboot
 * with the commit marked bad; a refused, unreachable or silent endpoint is logged as
 * `sent: false` and never holds up or fails the update.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tmpDir, type TmpDir } from '@larch/test-fixtures';
import { Agent, checkInSchema, checkInUrlFor, resolveConfig, type AgentConfigInput, type LogRecord } from '../src/index.js';
import { Device, Publisher } from './harness.js';

interface Received {
  url: string;
  auth: string | null;
  contentType: string | null;
  body: unknown;
}

/** A check-in endpoint: records requests; `mode` decides the answer. */
class Endpoint {
  server: Server | null = null;
  url = '';
  got: Received[] = [];
  mode: 'ok' | 'forbidden' | 'silent' = 'ok';
  private readonly hanging: ServerResponse[] = [];

  async start(): Promise<void> {
    this.server = createServer((req: IncomingMessage, res: ServerResponse) => {
      let text = '';
      req.setEncoding('utf8');
      req.on('data', (c: string) => (text += c));
      req.on('end', () => {
        this.got.push({ url: req.url ?? '', auth: req.headers.authorization ?? null, contentType: req.headers['content-type'] ?? null, body: JSON.parse(text) as unknown });
        if (this.mode === 'silent') {
          this.hanging.push(res);
          return;
        }
        if (this.mode === 'forbidden') {
          const body = JSON.stringify({ error: { code: 'forbidden', message: 'token is bound to device other-device, not device-x' } });
          res.writeHead(403, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
          res.end(body);
          return;
        }
        res.writeHead(204);
        res.end();
      });
    });
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', () => r()));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    for (const r of this.hanging) r.destroy();
    this.server?.closeAllConnections();
    await new Promise<void>((r) => this.server?.close(() => r()) ?? r());
  }
}

describe('agent check-ins', () => {
  let work: TmpDir;
  let pub: Publisher;
  let ep: Endpoint;
  let dev: Device;

  beforeAll(async () => {
    work = await tmpDir('larch-agent-checkin-');
    pub = new Publisher(work.join('pub'));
    await pub.init();
    await pub.publish({ version: '1' });
    await pub.start();
    ep = new Endpoint();
    await ep.start();
    dev = new Device(work.join('device-x'), 'device-x');
    await dev.provision(pub.url);
  }, 60_000);

  afterAll(async () => {
    await pub?.stop();
    await ep?.stop();
    await dev?.remove();
    await work?.cleanup();
  });

  /** Run cycles in-process (as the daemon does after a simulated reboot) until idle; return the log. */
  async function cycles(extra: Partial<AgentConfigInput>, max = 3): Promise<LogRecord[]> {
    const lines: LogRecord[] = [];
    const agent = Agent.open(resolveConfig(dev.config(pub.url, extra)), { log: (r) => lines.push(r) });
    try {
      for (let i = 0; i < max; i++) {
        const r = await agent.runOnce();
        if (r.phase === 'idle') break;
      }
    } finally {
      await agent.close();
    }
    return lines;
  }

  const checkIns = (lines: LogRecord[]): LogRecord[] => lines.filter((l) => l.event === 'check-in');

  it('expands {deviceId} in the URL', () => {
    expect(checkInUrlFor('http://h/api/v1/repos/os/devices/{deviceId}/check-in', 'a b/c')).toBe('http://h/api/v1/repos/os/devices/a%20b%2Fc/check-in');
    expect(checkInUrlFor('http://h/x/%7BdeviceId%7D/check-in', 'd1')).toBe('http://h/x/d1/check-in');
    expect(checkInUrlFor('http://h/fixed', 'd1')).toBe('http://h/fixed');
  });

  it('refuses a token and a token file together, naming the field', () => {
    expect(() => resolveConfig({ ref: 'a/b', checkInToken: 't', checkInTokenFile: '/x' })).toThrow(/checkInTokenFile: set either checkInToken or checkInTokenFile, not both/);
    const c = resolveConfig({ ref: 'a/b' });
    expect(c.timeouts.checkInSeconds).toBe(10);
  });

  it('an update cycle POSTs the payload with the bearer token; the health results are in it', async () => {
    const v2 = await pub.publish({ version: '2' });
    ep.got = [];
    const url = `${ep.url}/api/v1/repos/os/devices/{deviceId}/check-in`;
    const lines = await cycles({ checkInUrl: url, checkInToken: 'tok-123' });
    expect(lines.find((l) => l.event === 'transition' && l.to === 'idle')).toMatchObject({ result: 'confirmed', commit: v2 });
    // One check-in per cycle: after the reboot command returned, and after the confirmation.
    const sent = checkIns(lines);
    expect(sent.map((l) => [l.sent, l.status, l.reason])).toEqual([
      [true, 204, 'cycle'],
      [true, 204, 'cycle'],
    ]);
    expect(sent.every((l) => !JSON.stringify(l).includes('tok-123'))).toBe(true);
    expect(ep.got).toHaveLength(2);
    for (const g of ep.got) {
      expect(g.url).toBe('/api/v1/repos/os/devices/device-x/check-in');
      expect(g.auth).toBe('Bearer tok-123');
      expect(g.contentType).toBe('application/json');
      expect(checkInSchema.parse(g.body)).toEqual(g.body);
    }
    expect(ep.got[0].body).toMatchObject({ deviceId: 'device-x', phase: 'reboot', target: { commit: v2 } });
    expect(ep.got[0].body).not.toHaveProperty('health');
    expect(ep.got[1].body).toMatchObject({
      phase: 'idle',
      booted: { commit: v2, version: '2' },
      target: null,
      health: [
        { name: '10-not-broken', kind: 'required', ok: true },
        { name: '10-nice', kind: 'wanted', ok: true },
      ],
    });
  }, 60_000);

  it('a rollback checks in with the commit marked bad before rebooting into the fallback', async () => {
    const tokenFile = work.join('token');
    writeFileSync(tokenFile, 'from-file-456\n');
    const bad = await pub.publish({ version: '3', extra: { 'usr/share/broken': 'yes\n' } });
    ep.got = [];
    const lines = await cycles({ checkInUrl: `${ep.url}/c/{deviceId}`, checkInTokenFile: tokenFile });
    expect(lines.find((l) => l.event === 'transition' && l.to === 'idle')).toMatchObject({ result: 'rolled-back', commit: bad });
    const reasons = checkIns(lines).map((l) => [l.reason, l.sent]);
    expect(reasons).toEqual([
      ['cycle', true],
      ['marked-bad', true],
      ['cycle', true],
      ['cycle', true],
    ]);
    // The marked-bad check-in is logged after marked-bad and before the reboot command.
    const idx = (pred: (l: LogRecord) => boolean): number => lines.findIndex(pred);
    const markedBad = idx((l) => l.event === 'check-in' && l.reason === 'marked-bad');
    expect(markedBad).toBeGreaterThan(idx((l) => l.event === 'marked-bad'));
    expect(markedBad).toBeLessThan(lines.findLastIndex((l) => l.event === 'reboot'));
    expect(ep.got.every((g) => g.auth === 'Bearer from-file-456')).toBe(true);
    expect(ep.got[1].body).toMatchObject({
      phase: 'rollback',
      booted: { commit: bad },
      badCommits: [bad],
      lastError: { phase: 'confirm', code: 'INVALID_ARGUMENT' },
      health: [
        { name: '10-not-broken', kind: 'required', ok: false },
        { name: '10-nice', kind: 'wanted', ok: true },
      ],
    });
    expect((ep.got[3].body as { phase: string; badCommits: string[] }).badCommits).toEqual([bad]);
  }, 60_000);

  it('a refused check-in is logged with the server message; the cycle is unaffected', async () => {
    ep.mode = 'forbidden';
    const lines = await cycles({ checkInUrl: `${ep.url}/c/{deviceId}`, checkInToken: 'wrong' });
    ep.mode = 'ok';
    expect(lines.find((l) => l.event === 'transition' && l.to === 'idle')).toMatchObject({ result: 'skip-bad' });
    expect(checkIns(lines)).toHaveLength(1);
    expect(checkIns(lines)[0]).toMatchObject({
      sent: false,
      error: { code: 'IO_ERROR', message: `Check-in to ${ep.url}/c/device-x: Server returned HTTP 403: token is bound to device other-device, not device-x` },
    });
    expect(lines.some((l) => l.event === 'error')).toBe(false);
  }, 60_000);

  it('a silent or unreachable endpoint is given up after checkInSeconds; an unreadable token file is logged', async () => {
    ep.mode = 'silent';
    // The silent endpoint never answers and every other limit is an hour: only checkInSeconds
    // can end the check-in, so a cycle that ends at all gave up there (one that waited for the
    // endpoint would run into the test's timeout).
    const lines = await cycles({ checkInUrl: `${ep.url}/c/{deviceId}`, checkInToken: 't', timeouts: { noProgressSeconds: 3600, requestSeconds: 3600, rebootSeconds: 3600, checkInSeconds: 0.5 } });
    ep.mode = 'ok';
    const [c] = checkIns(lines);
    expect(c).toMatchObject({ sent: false, error: { code: 'TimeoutError' } });
    // Not before the limit (a later give-up is only the machine being slow).
    expect(c.ms as number).toBeGreaterThanOrEqual(450);

    // Nothing listening: connection refused, logged.
    const down = createServer();
    await new Promise<void>((r) => down.listen(0, '127.0.0.1', () => r()));
    const port = (down.address() as AddressInfo).port;
    await new Promise<void>((r) => down.close(() => r()));
    const l2 = await cycles({ checkInUrl: `http://127.0.0.1:${port}/c`, checkInToken: 't' });
    expect(checkIns(l2)[0]).toMatchObject({ sent: false, error: { code: 'ECONNREFUSED' } });

    const l3 = await cycles({ checkInUrl: `${ep.url}/c`, checkInTokenFile: work.join('no-such-token') });
    expect(checkIns(l3)[0]).toMatchObject({ sent: false, error: { code: 'BAD_CONFIG' } });
    expect((checkIns(l3)[0].error as { message: string }).message).toMatch(/^Cannot read checkInTokenFile .*no-such-token: ENOENT/);
    for (const l of [lines, l2, l3]) expect(l.find((x) => x.event === 'transition' && x.to === 'idle')).toMatchObject({ result: 'skip-bad' });
  }, 60_000);
});
