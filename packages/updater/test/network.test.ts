/**
 * Bad networks and small disks, with real processes: a counting proxy in front of
 * `larch-server` that can stall a response mid-body (headers and the first bytes, then silence)
 * or drop the connection mid-body. The agent must time out, back off, and resume later without
 * fetching again what it already has (requests counted per object). A `/boot` or sysroot too
 * small for the update is refused before staging, with the exact shortfall.
 */
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Sysroot } from '@larch/sysroot';
import { tmpDir, type TmpDir } from '@larch/test-fixtures';
import { readState } from '../src/index.js';
import { Device, Publisher, runAgent, transitions } from './harness.js';

interface Hit {
  path: string;
  range: string | null;
  status: number;
  completed: boolean;
}

class Proxy {
  server: Server | null = null;
  url = '';
  hits: Hit[] = [];
  /** Requests whose path matches get `mode` treatment after `afterBytes` body bytes. */
  fault: { match: RegExp; mode: 'stall' | 'drop'; afterBytes: number; times: number } | null = null;
  constructor(private readonly upstream: string) {}

  async start(): Promise<void> {
    const up = new URL(this.upstream);
    this.server = createServer((req, res) => {
      const hit: Hit = { path: req.url ?? '', range: (req.headers.range as string | undefined) ?? null, status: 0, completed: false };
      this.hits.push(hit);
      const headers = { ...req.headers, host: up.host };
      const preq = request({ host: up.hostname, port: up.port, path: req.url, method: req.method, headers }, (pres) => {
        hit.status = pres.statusCode ?? 0;
        res.writeHead(pres.statusCode ?? 502, pres.headers);
        const f = this.fault;
        if (!f || !f.match.test(hit.path)) {
          pres.pipe(res);
          pres.on('end', () => (hit.completed = true));
          return;
        }
        let sent = 0;
        let faulted = false;
        pres.on('data', (chunk: Buffer) => {
          if (faulted) return;
          if (f.times > 0 && sent + chunk.length >= f.afterBytes) {
            res.write(chunk.subarray(0, f.afterBytes - sent));
            sent = f.afterBytes;
            faulted = true;
            f.times -= 1;
            pres.pause();
            if (f.mode === 'drop') res.socket?.destroy();
            // 'stall': say nothing more; the socket stays open until the client gives up.
            return;
          }
          res.write(chunk);
          sent += chunk.length;
        });
        pres.on('end', () => {
          if (!faulted) {
            hit.completed = true;
            res.end();
          }
        });
      });
      preq.on('error', () => res.destroy());
      req.pipe(preq);
    });
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', () => r()));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/`;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((r) => this.server?.close(() => r()) ?? r());
  }
}

/**
 * How long a test may take: only a guard against a hang (a loaded machine runs the agents many
 * times slower than an idle one), never an assertion about speed.
 */
const LIMIT_MS = 300_000;

describe('bad networks and small disks', () => {
  let work: TmpDir;
  let pub: Publisher;
  let proxy: Proxy;
  const devices: Device[] = [];

  beforeAll(async () => {
    work = await tmpDir('larch-agent-net-');
    pub = new Publisher(work.join('pub'));
    await pub.init();
    await pub.publish({ version: '1' });
    const url = await pub.start();
    proxy = new Proxy(url);
    await proxy.start();
    for (const id of ['net-one', 'net-two', 'disk-one', 'window-one', 'slow-one']) {
      const d = new Device(work.join(id), id);
      await d.provision(proxy.url);
      // Only the no-progress watchdog may end a stalled pull (requests may take an hour), and it
      // waits long enough that a loaded machine's pauses never look like a stall.
      d.writeConfig(proxy.url, { timeouts: { noProgressSeconds: 10, requestSeconds: 3600, rebootSeconds: 60 }, backoff: { initialSeconds: 0.5, maxSeconds: 2 } });
      devices.push(d);
    }
  }, LIMIT_MS);

  afterAll(async () => {
    await proxy?.stop();
    await pub?.stop();
    for (const d of devices) await d.remove();
    await work?.cleanup();
  });

  const objectHits = (hits: Hit[]): Hit[] => hits.filter((h) => h.path.includes('/objects/') || h.path.startsWith('objects/'));

  it('a server stalling mid-body: timeout, backoff, then resume without re-fetching', async () => {
    const d = devices[0];
    const blob = randomBytes(600_000).toString('base64');
    const extra: Record<string, string> = { 'usr/share/blob': blob };
    for (let i = 0; i < 20; i++) extra[`usr/share/small/${i}`] = `small file ${i} ${'y'.repeat(i * 10)}\n`;
    const v2 = await pub.publish({ version: '2', extra });
    // Stall every .filez larger than the first 16 KiB sent: only the blob is that big.
    proxy.hits = [];
    proxy.fault = { match: /\.filez$/, mode: 'stall', afterBytes: 16 * 1024, times: 1000 };
    // Small files finish before the fault threshold; only the blob stalls. Requests may take an
    // hour: a run that ends at all was ended by the no-progress watchdog.
    const r1 = await runAgent(['run', '--once', `--config=${d.configPath}`]);
    expect(r1.code, r1.stderr).toBe(0);
    expect(transitions(r1)).toEqual(['idle>check', 'check>pull']);
    expect(r1.lines.find((l) => l.event === 'error')).toMatchObject({ failedPhase: 'pull', attempt: 1 });
    const st1 = readState(d.stateDir);
    expect(st1.phase).toBe('pull');
    expect(st1.nextAttemptAt).toBeGreaterThan(0);
    const first = proxy.hits.slice();
    const stalled = new Set(objectHits(first).filter((h) => !h.completed).map((h) => h.path));
    const done = new Set(objectHits(first).filter((h) => h.completed && h.status === 200).map((h) => h.path));
    expect(stalled.size).toBe(1);
    expect(done.size).toBeGreaterThan(10);

    // Before the backoff ends, a run only waits.
    const early = await runAgent(['run', '--once', `--config=${d.configPath}`]);
    if (Date.now() < st1.nextAttemptAt!) expect(early.lines.find((l) => l.event === 'waiting')).toMatchObject({ reason: 'backoff' });

    // The network is fine again: the pull resumes and the update goes through.
    proxy.fault = null;
    proxy.hits = [];
    await delay(Math.max(0, readState(d.stateDir).nextAttemptAt! - Date.now()) + 50);
    const r2 = await runAgent(['run', '--once', `--config=${d.configPath}`]);
    expect(r2.code, r2.stderr).toBe(0);
    expect(transitions(r2)).toEqual(['pull>preflight', 'preflight>stage', 'stage>reboot']);
    // Only the stalled object is asked for again (plus the optional .commitmeta, absent: 404).
    const second = objectHits(proxy.hits).filter((h) => !(h.path.endsWith('.commitmeta') && h.status === 404));
    for (const h of second) expect(done.has(h.path), `re-fetched ${h.path}`).toBe(false);
    expect(second.map((h) => h.path)).toEqual([...stalled]);
    expect(proxy.hits.filter((h) => h.path.endsWith('.commitmeta')).every((h) => h.status === 404)).toBe(true);
    expect(d.bootedCommit()).toBe(v2);
  }, LIMIT_MS);

  it('a connection dropped mid-body is resumed with a Range request within the same pull', async () => {
    const d = devices[1];
    const blob = randomBytes(500_000).toString('base64');
    const v3 = await pub.publish({ version: '3', extra: { 'usr/share/blob3': blob } });
    proxy.hits = [];
    proxy.fault = { match: /\.filez$/, mode: 'drop', afterBytes: 64 * 1024, times: 1 };
    const r = await runAgent(['run', '--once', `--config=${d.configPath}`]);
    expect(r.code, r.stderr).toBe(0);
    expect(transitions(r)).toEqual(['idle>check', 'check>pull', 'pull>preflight', 'preflight>stage', 'stage>reboot']);
    const dropped = objectHits(proxy.hits).find((h) => !h.completed)!;
    expect(dropped).toBeDefined();
    const again = objectHits(proxy.hits).filter((h) => h.path === dropped.path && h !== dropped);
    expect(again).toHaveLength(1);
    expect(again[0].range).toMatch(/^bytes=[1-9][0-9]*-$/);
    expect(d.bootedCommit()).toBe(v3);
    proxy.fault = null;
  }, LIMIT_MS);

  it('a /boot or sysroot too small is refused before staging with the exact shortfall', async () => {
    const d = devices[2];
    const kernel = 'k'.repeat(40_000);
    const v4 = await pub.publish({ version: '4', kernel });
    const bootNeeded = kernel.length + 'an initramfs\n'.length;
    d.writeConfig(proxy.url, { space: { bootFreeBytes: 1000 } });
    const before = (await Sysroot.open(d.sysroot)).deployments.map((x) => x.csum);
    const r = await runAgent(['run', '--once', `--config=${d.configPath}`]);
    expect(transitions(r)).toEqual(['idle>check', 'check>pull', 'pull>preflight', 'preflight>idle']);
    const err = r.lines.find((l) => l.event === 'error') as { message: string; data: Record<string, unknown> };
    expect(err.data).toMatchObject({ reason: 'no-space', filesystem: 'boot', needed: bootNeeded, free: 1000, shortfall: bootNeeded - 1000 });
    expect(err.message).toBe(`Not enough space on /boot for the update: need ${bootNeeded} bytes, 1000 bytes free; short by ${bootNeeded - 1000} bytes`);
    expect((await Sysroot.open(d.sysroot)).deployments.map((x) => x.csum)).toEqual(before);

    // The sysroot: /etc is copied (42 + 15 + 21 bytes here: os-release, aconfigfile), every
    // directory costs a block, plus one for the origin.
    d.writeConfig(proxy.url, { space: { bootFreeBytes: 10_000_000, diskFreeBytes: 5000 } });
    const r2 = await runAgent(['run', '--once', `--config=${d.configPath}`]);
    expect(transitions(r2)).toEqual(['idle>check', 'check>pull', 'pull>preflight', 'preflight>idle']);
    const etcBytes = `PRETTY_NAME="TestOS 4"\nID=testos\n`.length + 'default config\n'.length;
    // Directories of the tree: / usr usr/bin usr/etc usr/lib usr/lib/modules usr/lib/modules/6.1.0 usr/share
    const diskNeeded = etcBytes + 8 * 4096 + 4096;
    const err2 = r2.lines.find((l) => l.event === 'error') as { message: string; data: Record<string, unknown> };
    expect(err2.data).toMatchObject({ reason: 'no-space', filesystem: 'sysroot', needed: diskNeeded, free: 5000, shortfall: diskNeeded - 5000 });
    expect((await Sysroot.open(d.sysroot)).deployments.map((x) => x.csum)).toEqual(before);

    // With room (real statfs), it goes through.
    d.writeConfig(proxy.url);
    const r3 = await runAgent(['run', '--once', `--config=${d.configPath}`]);
    expect(transitions(r3)).toEqual(['idle>check', 'check>pull', 'pull>preflight', 'preflight>stage', 'stage>reboot']);
    expect(d.bootedCommit()).toBe(v4);
  }, LIMIT_MS);

  it('metered: no download outside a maintenance window; the reboot waits for the window', async () => {
    const d = devices[3];
    const before = d.bootedCommit();
    const h = new Date().getUTCHours();
    const hh = (n: number): string => `${String(n % 24).padStart(2, '0')}:00`;
    const closed = [{ start: hh(h + 2), end: hh(h + 3) }];
    d.writeConfig(proxy.url, { metered: true, maintenanceWindows: closed });
    const v5 = await pub.publish({ version: '5' });
    proxy.hits = [];
    const a = await runAgent(['run', '--once', `--config=${d.configPath}`]);
    expect(transitions(a)).toEqual(['idle>check', 'check>idle']);
    expect(a.lines.find((l) => l.to === 'idle')).toMatchObject({ result: 'deferred' });
    expect(proxy.hits).toEqual([]);
    // Not metered: downloads and stages now, but the reboot waits for the window.
    d.writeConfig(proxy.url, { maintenanceWindows: closed });
    const b = await runAgent(['run', '--once', `--config=${d.configPath}`]);
    expect(transitions(b)).toEqual(['idle>check', 'check>pull', 'pull>preflight', 'preflight>stage', 'stage>reboot']);
    const wait = b.lines.find((l) => l.event === 'waiting') as { reason: string; until: string };
    expect(wait.reason).toBe('outside maintenance windows');
    expect(new Date(wait.until).getUTCHours()).toBe((h + 2) % 24);
    expect(b.lines.some((l) => l.event === 'reboot')).toBe(false);
    expect(d.bootedCommit()).toBe(before);
    expect((await Sysroot.open(d.sysroot)).deployments[0].csum).toBe(v5);
    // The window opens (here: the configuration allows any time).
    d.writeConfig(proxy.url);
    const c = await runAgent(['run', '--once', `--config=${d.configPath}`]);
    expect(c.lines.some((l) => l.event === 'reboot')).toBe(true);
    expect(d.bootedCommit()).toBe(v5);
  }, LIMIT_MS);

  it('the bandwidth limit holds on a real pull', async () => {
    const d = devices[4];
    d.writeConfig(proxy.url, { bandwidthLimit: 100_000 });
    const blob = randomBytes(300_000).toString('base64'); // ~300 KB compressed, incompressible
    const v6 = await pub.publish({ version: '6', extra: { 'usr/share/blob6': blob } });
    const r = await runAgent(['run', '--once', `--config=${d.configPath}`]);
    expect(transitions(r)).toEqual(['idle>check', 'check>pull', 'pull>preflight', 'preflight>stage', 'stage>reboot']);
    const pulled = r.lines.find((l) => l.event === 'pulled') as { bytes: number; ms: number };
    expect(pulled.bytes).toBeGreaterThan(300_000);
    // One second of burst, then 100 kB/s.
    const floor = ((pulled.bytes - 100_000) / 100_000) * 1000;
    expect(pulled.ms).toBeGreaterThanOrEqual(floor * 0.9);
    // Progress is logged while it runs (at most once a second).
    const progress = r.lines.filter((l) => l.event === 'progress') as Array<{ bytesReceived: number }>;
    expect(progress.length).toBeGreaterThanOrEqual(1);
    expect(progress[0].bytesReceived).toBeGreaterThan(0);
    expect(progress[0].bytesReceived).toBeLessThan(pulled.bytes);
    expect(d.bootedCommit()).toBe(v6);
  }, LIMIT_MS);
});
