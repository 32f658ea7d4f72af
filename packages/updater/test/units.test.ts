/**
 * Unit tests of the pure and small parts: configuration (TOML and JSON, defaults, errors),
 * maintenance windows, the rollout hash and the `larch.rollout` layouts, the bandwidth limiter,
 * the state file, health check execution, metrics text and the check-in schema.
 */
import { createHash } from 'node:crypto';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { Variant } from '@larch/gvariant';
import type { Fetcher } from '@larch/http-pull';
import { tmpDir, type TmpDir } from '@larch/test-fixtures';
import {
  assertSpace,
  checkInPayload,
  checkInSchema,
  formatMetrics,
  inMaintenanceWindow,
  initialState,
  inRollout,
  loadConfig,
  meteredFetcher,
  msUntilWindow,
  readState,
  resolveConfig,
  rolloutBucket,
  rolloutPercent,
  runHealthChecks,
  TokenBucket,
  writeState,
} from '../src/index.js';

let work: TmpDir;
beforeAll(async () => {
  work = await tmpDir('larch-updater-units-');
});
afterAll(async () => {
  await work?.cleanup();
});

describe('configuration', () => {
  it('fills in every default from a minimal TOML file', () => {
    const f = work.join('min.toml');
    writeFileSync(f, 'ref = "os/stable"\n[remote]\nurl = "http://updates.example/repo/"\n');
    const c = loadConfig(f);
    expect(c).toMatchObject({
      sysroot: '/',
      repo: '/ostree/repo',
      ref: 'os/stable',
      remote: { name: 'origin', url: 'http://updates.example/repo/', gpgVerify: true, options: {} },
      schedule: { intervalSeconds: 3600, jitterSeconds: 300 },
      maintenanceWindows: [],
      bandwidthLimit: 0,
      metered: false,
      rebootCommand: ['systemctl', 'reboot', '--no-block'],
      healthChecks: { dir: '/etc/larch/health.d', checkTimeoutSeconds: 60, confirmTimeoutSeconds: 900, maxBootAttempts: 3 },
      timeouts: { noProgressSeconds: 60, requestSeconds: 600, rebootSeconds: 300 },
      backoff: { initialSeconds: 30, maxSeconds: 3600 },
      stateDir: '/var/lib/larch-agent',
      machineIdFile: '/etc/machine-id',
      bootIdFile: '/proc/sys/kernel/random/boot_id',
      allowDowngrade: false,
      reserveBytes: 0,
    });
    expect(c.metricsPort).toBeUndefined();
    expect(c.checkInUrl).toBeUndefined();
  });

  it('reads the README sample (TOML) and the same as JSON', () => {
    const toml = work.join('full.toml');
    writeFileSync(
      toml,
      [
        'sysroot = "/"',
        'stateroot = "myos"',
        'ref = "myos/x86_64/stable"',
        'bandwidthLimit = 2_000_000',
        'rebootCommand = ["systemctl", "reboot"]',
        'metricsPort = 9477',
        '[remote]',
        'name = "origin"',
        'url = "https://updates.example.com/repo/"',
        '[schedule]',
        'intervalSeconds = 1800',
        'jitterSeconds = 600',
        '[[maintenanceWindows]]',
        'days = ["sat", "sun"]',
        'start = "02:00"',
        'end = "05:00"',
      ].join('\n'),
    );
    const c = loadConfig(toml);
    expect(c.maintenanceWindows).toEqual([{ days: ['sat', 'sun'], start: '02:00', end: '05:00' }]);
    expect(c.bandwidthLimit).toBe(2_000_000);
    expect(c.repo).toBe('/ostree/repo');
    const json = work.join('full.json');
    writeFileSync(json, JSON.stringify({ ref: 'a', sysroot: '/srv/sys', metered: true }));
    expect(loadConfig(json)).toMatchObject({ ref: 'a', sysroot: '/srv/sys', repo: '/srv/sys/ostree/repo', metered: true });
  });

  it('rejects unknown keys and bad values, naming the field', () => {
    expect(() => resolveConfig({ ref: 'a', intervall: 3 })).toThrow(/Invalid configuration: \(root\): Unrecognized key/);
    expect(() => resolveConfig({ ref: 'a', schedule: { intervalSeconds: -1 } })).toThrow(/schedule\.intervalSeconds/);
    expect(() => resolveConfig({ ref: 'a', maintenanceWindows: [{ start: '25:00', end: '01:00' }] })).toThrow(/maintenanceWindows\.0\.start: expected HH:MM/);
    expect(() => resolveConfig({})).toThrow(/ref/);
    const bad = work.join('bad.toml');
    writeFileSync(bad, 'ref = \n');
    expect(() => loadConfig(bad)).toThrow(/Cannot parse configuration/);
  });

  it('maintenance windows, including one across midnight', () => {
    const w = [{ days: ['sat' as const], start: '23:00', end: '02:00' }];
    // 2026-11-28 is a Saturday.
    expect(inMaintenanceWindow(w, new Date('2026-11-28T23:30:00Z'))).toBe(true);
    expect(inMaintenanceWindow(w, new Date('2026-11-29T01:59:00Z'))).toBe(true); // Sunday morning, Saturday's window
    expect(inMaintenanceWindow(w, new Date('2026-11-29T02:00:00Z'))).toBe(false);
    expect(inMaintenanceWindow(w, new Date('2026-11-28T01:00:00Z'))).toBe(false); // Saturday morning is Friday's
    expect(inMaintenanceWindow([], new Date())).toBe(true);
    expect(msUntilWindow(w, new Date('2026-11-28T22:00:00Z'))).toBe(3600_000);
    expect(msUntilWindow(w, new Date('2026-11-28T23:10:00Z'))).toBe(0);
  });
});

describe('phased rollout', () => {
  const commit = 'a1'.repeat(32);
  it('bucket = first 4 bytes of sha256(deviceId:commit), big-endian, mod 100', () => {
    for (const id of ['dev-1', 'dev-2', '0123456789abcdef0123456789abcdef']) {
      const hex = createHash('sha256').update(`${id}:${commit}`).digest('hex');
      expect(rolloutBucket(id, commit)).toBe(parseInt(hex.slice(0, 8), 16) % 100);
    }
    // A fixed vector, so the mapping cannot drift: sha256("dev-1:a1a1…") starts with these bytes.
    const first4 = createHash('sha256').update(`dev-1:${commit}`).digest().readUInt32BE(0);
    expect(rolloutBucket('dev-1', commit)).toBe(first4 % 100);
  });

  it('at 34%, exactly the devices under 34 take the update (about a third of 2000)', () => {
    let taken = 0;
    for (let i = 0; i < 2000; i++) {
      const id = `device-${i}`;
      const b = rolloutBucket(id, commit);
      expect(inRollout(id, commit, 34)).toBe(b < 34);
      if (b < 34) taken++;
      expect(inRollout(id, commit, 0)).toBe(false);
      expect(inRollout(id, commit, 100)).toBe(true);
    }
    expect(taken).toBeGreaterThan(600);
    expect(taken).toBeLessThan(760);
  });

  it('reads larch.rollout as a{sv} or a{su}; absent means 100', () => {
    const sv: Array<[string, Variant]> = [['larch.rollout', new Variant('a{sv}', [['os/a', new Variant('u', 34)], ['os/b', new Variant('t', 5n)]])]];
    expect(rolloutPercent(sv, 'os/a')).toBe(34);
    expect(rolloutPercent(sv, 'os/b')).toBe(5);
    expect(rolloutPercent(sv, 'os/c')).toBe(100);
    const su: Array<[string, Variant]> = [['larch.rollout', new Variant('a{su}', [['os/a', 250]])]];
    expect(rolloutPercent(su, 'os/a')).toBe(100);
    expect(rolloutPercent([['larch.rollout', new Variant('a{su}', [['os/a', 12]])]], 'os/a')).toBe(12);
    expect(rolloutPercent([], 'os/a')).toBe(100);
  });
});

describe('bandwidth limit', () => {
  // The bucket reads the time and waits through fake timers here, so the time a transfer is made
  // to take is exact and the same on any machine, however loaded.
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'], now: 1_700_000_000_000 });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  /** Run `work`, firing each fake timer it waits on as it comes; the fake time it took, in ms. */
  async function timed(work: () => Promise<void>): Promise<number> {
    const t0 = Date.now();
    let done = false;
    const p = work().finally(() => {
      done = true;
    });
    while (!done) await vi.advanceTimersToNextTimerAsync();
    await p;
    return Date.now() - t0;
  }

  it('throttles body bytes to the limit and counts them', async () => {
    const chunk = new Uint8Array(16 * 1024);
    const inner: Fetcher = {
      async get() {
        return {
          status: 200,
          headers: {},
          dump: async () => undefined,
          body: (async function* () {
            for (let i = 0; i < 16; i++) yield chunk; // 256 KiB
          })(),
        };
      },
    };
    let counted = 0;
    let n = 0;
    const f = meteredFetcher(inner, { bandwidthLimit: 128 * 1024, onBytes: (b) => (counted += b) });
    const took = await timed(async () => {
      const res = await f.get('http://x/objects/aa/bb.filez', { maxBytes: 1 << 30, signal: new AbortController().signal });
      for await (const c of res.body) n += c.byteLength;
    });
    expect(n).toBe(256 * 1024);
    expect(counted).toBe(256 * 1024);
    // 256 KiB at 128 KiB/s with a one-second burst: the second 128 KiB takes exactly 1 s.
    expect(took).toBe(1000);
    const unlimited = meteredFetcher(inner, { bandwidthLimit: 0, onBytes: () => undefined });
    const free = await timed(async () => {
      for await (const c of (await unlimited.get('u', { maxBytes: 1 << 30, signal: new AbortController().signal })).body) void c;
    });
    expect(free).toBe(0);
  });

  it('a chunk larger than the burst waits for its whole size', async () => {
    const b = new TokenBucket(100_000);
    // 100 kB of burst, then 150 kB at 100 kB/s.
    expect(await timed(() => b.take(250_000))).toBe(1500);
    const ac = new AbortController();
    ac.abort();
    await expect(b.take(50_000, ac.signal)).rejects.toThrow();
  });
});

describe('state, space, checks and reports', () => {
  it('state round-trips through an atomic write and rejects a corrupt file', () => {
    const dir = work.join('state');
    expect(readState(dir)).toEqual(initialState());
    const s = initialState();
    s.phase = 'pull';
    s.badCommits = ['b'.repeat(64)];
    writeState(dir, s);
    expect(readState(dir)).toEqual(s);
    writeFileSync(path.join(dir, 'state.json'), '{"version":1,"phase":"dancing"}');
    expect(() => readState(dir)).toThrow(/Invalid agent state/);
  });

  it('reports the exact shortfall, /boot first', () => {
    expect(() => assertSpace({ disk: 100, boot: 50, bootcsum: null, diskFree: 1000, bootFree: 20, reserve: 0 })).toThrow('Not enough space on /boot for the update: need 50 bytes, 20 bytes free; short by 30 bytes');
    expect(() => assertSpace({ disk: 100, boot: 0, bootcsum: null, diskFree: 90, bootFree: 0, reserve: 5 })).toThrow('need 100 bytes (+5 reserved), 90 bytes free; short by 15 bytes');
    expect(() => assertSpace({ disk: 100, boot: 10, bootcsum: null, diskFree: 100, bootFree: 10, reserve: 0 })).not.toThrow();
  });

  it('runs required and wanted checks in order, with a time limit', async () => {
    const dir = work.join('health');
    mkdirSync(path.join(dir, 'required.d'), { recursive: true });
    mkdirSync(path.join(dir, 'wanted.d'), { recursive: true });
    const script = (p: string, body: string): void => {
      writeFileSync(path.join(dir, p), `#!/bin/sh\n${body}\n`);
      chmodSync(path.join(dir, p), 0o755);
    };
    script('required.d/20-ok', 'exit 0');
    script('required.d/10-env', 'test "$LARCH_BOOTED_COMMIT" = abc');
    // Never ends on its own (it stops when its reader is gone): only the 2 s limit can end it, so
    // a run that returns at all applied the limit.
    script('wanted.d/10-slow', 'while echo waiting; do sleep 0.2; done');
    writeFileSync(path.join(dir, 'wanted.d/README'), 'not executable: skipped\n');
    const r = await runHealthChecks(dir, { checkTimeoutMs: 2000, env: { LARCH_BOOTED_COMMIT: 'abc' } });
    expect(r.results.map((x) => [x.kind, x.name, x.ok, x.timedOut])).toEqual([
      ['required', '10-env', true, false],
      ['required', '20-ok', true, false],
      ['wanted', '10-slow', false, true],
    ]);
    expect(r.ok).toBe(true);
    script('required.d/30-fail', 'echo broken >&2; exit 4');
    const r2 = await runHealthChecks(dir, { checkTimeoutMs: 2000, env: { LARCH_BOOTED_COMMIT: 'abc' } });
    expect(r2.ok).toBe(false);
    expect(r2.results.find((x) => x.name === '30-fail')).toMatchObject({ ok: false, exitCode: 4, output: 'broken' });
  });

  it('metrics text and the check-in payload', () => {
    const s = initialState();
    s.phase = 'confirm';
    s.counters.bytesFetched = 1234;
    s.counters.failures = 2;
    s.lastCheckAt = 1_700_000_000_000;
    const m = formatMetrics(s);
    expect(m).toContain('# TYPE larch_agent_state gauge');
    expect(m).toContain('larch_agent_state{state="confirm"} 1');
    expect(m).toContain('larch_agent_state{state="idle"} 0');
    expect(m).toContain('larch_agent_bytes_fetched_total 1234');
    expect(m).toContain('larch_agent_failures_total 2');
    expect(m).toContain('larch_agent_last_check_timestamp_seconds 1700000000');
    const p = checkInPayload('dev', 'os/main', s, { commit: 'c', deployment: 'c.0', version: '1' }, new Date(0));
    expect(checkInSchema.parse(p)).toEqual(p);
    expect(p).toMatchObject({ deviceId: 'dev', time: '1970-01-01T00:00:00.000Z', phase: 'confirm', booted: { commit: 'c' } });
    expect(() => checkInSchema.parse({ ...p, extra: 1 })).toThrow();
  });
});
