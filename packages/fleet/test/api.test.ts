/**
 * The fleet API over HTTP (node:http around the handler, a real database file, real tokens):
 * check-in validation and authorization, the device list, write-behind to `fleet_devices`
 * (and reload on restart), failure events, the rollout health of a ref, and the pause rule.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { Database } from '@larch/db';
import { TokenStore } from '@larch/publish';
import { tmpDir, type TmpDir } from '@larch/test-fixtures';
import { commitHealth, createFleet, shouldPause, type DeviceRecord, type Fleet, type FleetOptions } from '../src/index.js';
import { C1, C2, C3, call, payload, rawStatus, serve, type TestServer } from './helpers.js';

/**
 * How long to wait for the write-behind thread or the pause timer to get there: a guard against
 * a hang, not a bound on speed (a loaded machine may take many times longer than an idle one).
 */
const POLL_MS = 60_000;

describe('fleet API', () => {
  let work: TmpDir;
  let db: Database;
  let tokens: TokenStore;
  let fleet: Fleet;
  let srv: TestServer;
  let heads: Record<string, string | null>;
  let pauses: Array<[string, string, string]>;
  let failPause: boolean;
  const tok: Record<string, string> = {};

  const open = (extra: Partial<FleetOptions> = {}): Fleet =>
    createFleet({
      db,
      tokens,
      repos: ['main', 'other'],
      refCommit: async (_repo, ref) => heads[ref] ?? null,
      onAutoPause: async (repo, ref, reason) => {
        if (failPause) throw new Error('summary signing key unavailable');
        pauses.push([repo, ref, reason]);
      },
      autoPause: { threshold: 0.5, minFailed: 2 },
      flushIntervalMs: 20,
      log: () => undefined,
      ...extra,
    });

  beforeAll(async () => {
    work = await tmpDir('larch-fleet-api-');
  });
  afterAll(async () => {
    await work?.cleanup();
  });

  beforeEach(async () => {
    db = Database.open(work.join(`fleet-${Date.now()}-${Math.random()}.db`));
    tokens = new TokenStore(db);
    heads = { 'os/stable': C2, 'os/beta': C3 };
    pauses = [];
    failPause = false;
    for (const d of ['dev-1', 'dev-2', 'dev-3', 'dev-4']) tok[d] = tokens.create({ repo: 'main', rights: ['checkin'], deviceId: d }).token;
    tok.admin = tokens.create({ repo: '*', rights: ['admin'] }).token;
    tok.read = tokens.create({ repo: 'main', rights: ['read'] }).token;
    tok.unbound = tokens.create({ repo: 'main', rights: ['checkin'] }).token;
    tok.otherRepo = tokens.create({ repo: 'other', rights: ['checkin'], deviceId: 'dev-1' }).token;
    tok.betaOnly = tokens.create({ repo: 'main', rights: ['checkin'], deviceId: 'dev-1', refPrefix: 'os/beta' }).token;
    tok.expired = tokens.create({ repo: 'main', rights: ['checkin'], deviceId: 'dev-1', expiresAt: new Date(Date.now() - 1000) }).token;
    fleet = open();
    srv = await serve([fleet.handler]);
  });

  afterEach(async () => {
    await srv.close();
    await fleet.close();
    db.close();
  });

  const checkInUrl = (dev: string, repo = 'main'): string => `${srv.url}/api/v1/repos/${repo}/devices/${dev}/check-in`;
  const checkIn = (dev: string, over: Parameters<typeof payload>[1] = {}, token = tok[dev]) => call('POST', checkInUrl(dev), { token, body: payload(dev, over) });

  it('accepts a check-in with the device token: 204, then listed', async () => {
    const before = Date.now();
    const r = await checkIn('dev-1', { health: [{ name: '10-ok', kind: 'required', ok: true }] });
    const after = Date.now();
    expect(r).toEqual({ status: 204, body: null });
    const list = await call('GET', `${srv.url}/api/v1/repos/main/devices`, { token: tok.read });
    expect(list.status).toBe(200);
    expect(list.body.devices).toHaveLength(1);
    expect(list.body.devices[0]).toMatchObject({
      deviceId: 'dev-1',
      ref: 'os/stable',
      phase: 'idle',
      degraded: false,
      booted: { commit: C1, version: '1' },
      target: null,
      badCommits: [],
      lastError: null,
      health: [{ name: '10-ok', kind: 'required', ok: true }],
      reportedAt: '2026-11-26T00:00:00.000Z',
    });
    // Stamped while the check-in was handled.
    const seen = Date.parse(list.body.devices[0].lastSeen);
    expect(seen).toBeGreaterThanOrEqual(before);
    expect(seen).toBeLessThanOrEqual(after);
  });

  it('refuses bad bodies with 400 naming the field', async () => {
    const bad = async (body: unknown): Promise<string> => {
      const r = await call('POST', checkInUrl('dev-1'), { token: tok['dev-1'], body });
      expect(r.status).toBe(400);
      return `${r.body.error.code}: ${r.body.error.message}`;
    };
    expect(await bad({ ...payload('dev-1'), phase: 'flying' })).toMatch(/^invalid-body: Invalid request body at phase: /);
    const { degraded: _d, ...noDegraded } = payload('dev-1');
    expect(await bad(noDegraded)).toMatch(/^invalid-body: Invalid request body at degraded: /);
    expect(await bad({ ...payload('dev-1'), booted: { commit: 'xyz', deployment: 'd', version: null } })).toBe('invalid-body: Invalid request body at booted.commit: expected a 64-character hex checksum');
    expect(await bad({ ...payload('dev-1'), badCommits: [C1, 'nope'] })).toBe('invalid-body: Invalid request body at badCommits.1: expected a 64-character hex checksum');
    expect(await bad({ ...payload('dev-1'), ref: '../etc' })).toMatch(/^invalid-body: Invalid request body at ref: Invalid ref name/);
    expect(await bad({ ...payload('dev-1'), extra: 1 })).toMatch(/^invalid-body: Invalid request body/);
    expect(await bad({ ...payload('dev-1'), health: [{ name: 'x', kind: 'maybe', ok: true }] })).toMatch(/^invalid-body: Invalid request body at health\.0\.kind: /);
    expect(await bad(payload('dev-2'))).toBe('invalid-body: Invalid request body at deviceId: "dev-2" is not the device of the path (dev-1)');
    expect(await bad('{"deviceId":')).toMatch(/^invalid-json: /);
    const big = await call('POST', checkInUrl('dev-1'), { token: tok['dev-1'], body: { ...payload('dev-1'), lastError: { phase: 'pull', code: 'X', message: 'm'.repeat(70_000) } } });
    expect(big.status).toBe(413);
    const badId = await call('POST', `${srv.url}/api/v1/repos/main/devices/-bad/check-in`, { token: tok.admin, body: payload('-bad') });
    expect(badId.status).toBe(400);
    expect(badId.body.error.code).toBe('invalid-device');
    // Nothing was stored.
    expect((await call('GET', `${srv.url}/api/v1/repos/main/devices`, { token: tok.read })).body.devices).toEqual([]);
  });

  it('no token is 401, a wrong device, repo, ref prefix or right is 403, and nothing changes', async () => {
    const s = async (dev: string, token: string | undefined, over = {}): Promise<[number, string]> => {
      const r = await call('POST', checkInUrl(dev), { ...(token !== undefined ? { token } : {}), body: payload(dev, over) });
      return [r.status, r.body?.error?.code];
    };
    expect(await s('dev-1', undefined)).toEqual([401, 'unauthorized']);
    expect(await s('dev-1', 'larch_unknown')).toEqual([401, 'invalid-token']);
    expect(await s('dev-1', tok.expired)).toEqual([401, 'token-expired']);
    expect(await s('dev-1', tok['dev-2'])).toEqual([403, 'forbidden']);
    expect(await s('dev-1', tok.otherRepo)).toEqual([403, 'forbidden']);
    expect(await s('dev-1', tok.read)).toEqual([403, 'forbidden']);
    expect(await s('dev-1', tok.unbound)).toEqual([403, 'forbidden']);
    expect(await s('dev-1', tok.betaOnly)).toEqual([403, 'forbidden']);
    const wrong = await call('POST', checkInUrl('dev-1'), { token: tok['dev-2'], body: payload('dev-1') });
    expect(wrong.body.error.message).toMatch(/is bound to another device/);
    expect((await call('GET', `${srv.url}/api/v1/repos/main/devices`, { token: tok.read })).body.devices).toEqual([]);
    // The ref-prefixed token may report its own refs; an admin token may report for any device.
    expect(await s('dev-1', tok.betaOnly, { ref: 'os/beta' })).toEqual([204, undefined]);
    expect(await s('dev-3', tok.admin)).toEqual([204, undefined]);
    // Reads need `read`; a device token has only `checkin`.
    expect((await call('GET', `${srv.url}/api/v1/repos/main/devices`, { token: tok['dev-1'] })).status).toBe(403);
    expect((await call('GET', `${srv.url}/api/v1/repos/main/devices`)).status).toBe(401);
    expect((await call('GET', `${srv.url}/api/v1/repos/main/fleet/refs/os/stable`)).status).toBe(401);
  });

  it('trusts a check-in token for tokenCacheMs after a lookup; expiry is checked on every request', async () => {
    // The fleet and the token store read the time through Date: frozen here and moved only by
    // the test, so "still cached" and "run out" do not depend on how fast the requests go.
    vi.useFakeTimers({ toFake: ['Date'], now: Date.now() });
    try {
      await srv.close();
      await fleet.close();
      fleet = open({ tokenCacheMs: 400 });
      srv = await serve([fleet.handler]);
      expect((await checkIn('dev-1')).status).toBe(204);
      // Revoked: still trusted until the cached entry runs out (300..400 ms), then refused.
      const id = tokens.list().find((t) => t.deviceId === 'dev-1' && t.rights.join() === 'checkin' && t.refPrefix === '' && t.repo === 'main' && t.expiresAt === null)!.id;
      expect(tokens.revoke(id)).toBe(true);
      expect((await checkIn('dev-1')).status).toBe(204);
      // The cached record still carries the scope: another device is refused at once.
      expect((await call('POST', checkInUrl('dev-2'), { token: tok['dev-1'], body: payload('dev-2') })).status).toBe(403);
      vi.setSystemTime(Date.now() + 401);
      expect(await checkIn('dev-1').then((r) => [r.status, r.body.error.code])).toEqual([401, 'invalid-token']);
      // Expired while cached (for 10 s): refused on the next request.
      await srv.close();
      await fleet.close();
      fleet = open({ tokenCacheMs: 10_000 });
      srv = await serve([fleet.handler]);
      const soon = tokens.create({ repo: 'main', rights: ['checkin'], deviceId: 'dev-4', expiresAt: new Date(Date.now() + 300) });
      expect((await checkIn('dev-4', {}, soon.token)).status).toBe(204);
      vi.setSystemTime(Date.now() + 301);
      expect(await checkIn('dev-4', {}, soon.token).then((r) => [r.status, r.body.error.code])).toEqual([401, 'token-expired']);
      // With the cache off, a revocation is effective at once.
      await srv.close();
      await fleet.close();
      fleet = open({ tokenCacheMs: 0 });
      srv = await serve([fleet.handler]);
      expect((await checkIn('dev-2')).status).toBe(204);
      tokens.revoke(tokens.list().find((t) => t.deviceId === 'dev-2')!.id);
      expect((await checkIn('dev-2')).status).toBe(401);
    } finally {
      vi.useRealTimers();
    }
  });

  it('refuses traversal, unknown repositories, wrong methods and unknown paths', async () => {
    const r1 = await call('POST', `${srv.url}/api/v1/repos/main/devices/..%2f..%2fx/check-in`, { token: tok.admin, body: payload('x') });
    expect(r1.status).toBe(400);
    // Sent as is (fetch would resolve the dot segments before sending).
    expect(await rawStatus(`${srv.url}/api/v1/repos/main/devices/%2e%2e`, tok.admin)).toBe(400);
    expect(await rawStatus(`${srv.url}/api/v1/repos/main/devices/../../other/devices`, tok.admin)).toBe(400);
    const r3 = await call('POST', `${srv.url}/api/v1/repos/nope/devices/dev-1/check-in`, { token: tok.admin, body: payload('dev-1') });
    expect([r3.status, r3.body.error.code]).toEqual([404, 'not-found']);
    const r4 = await call('GET', checkInUrl('dev-1'), { token: tok.admin });
    expect(r4.status).toBe(405);
    const r5 = await call('GET', `${srv.url}/api/v1/repos/main/devices/dev-1/x/y`, { token: tok.admin });
    expect(r5.status).toBe(404);
    const r6 = await call('GET', `${srv.url}/api/v1/repos/main/fleet/refs/os/stable?x=1`, { token: tok.read });
    expect([r6.status, r6.body.error.code]).toEqual([400, 'invalid-query']);
    const r7 = await call('GET', `${srv.url}/api/v1/repos/main/devices?ref=os/stable&ref=os/beta`, { token: tok.read });
    expect(r7.status).toBe(400);
    // Not its paths: left to other handlers (here the test server's 404).
    const r8 = await call('GET', `${srv.url}/api/v1/repos/main/rollouts`, { token: tok.read });
    expect([r8.status, r8.body.error.message]).toEqual([404, 'No such API path /api/v1/repos/main/rollouts']);
  });

  it('lists devices sorted, filtered by ref, one by id; writes them behind and reloads them', async () => {
    await checkIn('dev-3');
    await checkIn('dev-1', { ref: 'os/beta' });
    await checkIn('dev-2', { phase: 'pull', target: { commit: C2, version: '2' } });
    const all = await call('GET', `${srv.url}/api/v1/repos/main/devices`, { token: tok.read });
    expect(all.body.devices.map((d: { deviceId: string }) => d.deviceId)).toEqual(['dev-1', 'dev-2', 'dev-3']);
    const stable = await call('GET', `${srv.url}/api/v1/repos/main/devices?ref=os/stable`, { token: tok.read });
    expect(stable.body.devices.map((d: { deviceId: string }) => d.deviceId)).toEqual(['dev-2', 'dev-3']);
    const one = await call('GET', `${srv.url}/api/v1/repos/main/devices/dev-2`, { token: tok.read });
    expect(one.body).toMatchObject({ deviceId: 'dev-2', phase: 'pull', target: { commit: C2, version: '2' } });
    expect((await call('GET', `${srv.url}/api/v1/repos/main/devices/dev-9`, { token: tok.read })).status).toBe(404);
    expect((await call('GET', `${srv.url}/api/v1/repos/other/devices`, { token: tok.admin })).body.devices).toEqual([]);

    // Written behind: within a few flush intervals the rows are in the table.
    await expect.poll(() => db.get<{ n: number }>('SELECT count(*) AS n FROM fleet_devices')?.n, { timeout: POLL_MS }).toBe(3);
    // A later check-in replaces the row; close() flushes what is pending.
    await checkIn('dev-3', { phase: 'check' });
    await fleet.close();
    expect(db.get<{ phase: string }>("SELECT phase FROM fleet_devices WHERE device_id = 'dev-3'")?.phase).toBe('check');
    // A new fleet over the same database starts with every device.
    await srv.close();
    fleet = open();
    srv = await serve([fleet.handler]);
    const again = await call('GET', `${srv.url}/api/v1/repos/main/devices/dev-2`, { token: tok.read });
    expect(again.body).toEqual(one.body);
    expect((await call('GET', `${srv.url}/api/v1/repos/main/devices/dev-3`, { token: tok.read })).body.phase).toBe('check');
  });

  it('records failures as events', async () => {
    await checkIn('dev-1', { phase: 'pull', target: { commit: C2, version: '2' } });
    await checkIn('dev-1', { phase: 'idle', lastError: { phase: 'pull', code: 'IO_ERROR', message: 'Server returned HTTP 500' } });
    await checkIn('dev-1', { phase: 'idle', lastError: { phase: 'pull', code: 'IO_ERROR', message: 'Server returned HTTP 500' } });
    await checkIn('dev-1', { badCommits: [C2], degraded: true });
    const ev = await call('GET', `${srv.url}/api/v1/repos/main/fleet/events`, { token: tok.read });
    expect(ev.status).toBe(200);
    expect(ev.body.events.map((e: { kind: string; deviceId: string; commit: string | null }) => [e.kind, e.deviceId, e.commit])).toEqual([
      ['degraded', 'dev-1', C1],
      ['bad-commit', 'dev-1', C2],
      ['error', 'dev-1', null],
    ]);
    expect(ev.body.events[2].message).toBe('pull: IO_ERROR: Server returned HTTP 500');
    const limited = await call('GET', `${srv.url}/api/v1/repos/main/fleet/events?limit=1&deviceId=dev-1`, { token: tok.read });
    expect(limited.body.events).toHaveLength(1);
    expect((await call('GET', `${srv.url}/api/v1/repos/main/fleet/events?limit=0`, { token: tok.read })).status).toBe(400);
  });

  it('pauses a ref once when enough devices fail its newest commit', async () => {
    // dev-1..3 follow os/stable (newest C2); dev-4 follows os/beta.
    for (const d of ['dev-1', 'dev-2', 'dev-3']) await checkIn(d);
    await checkIn('dev-4', { ref: 'os/beta', badCommits: [C3] });
    // dev-1 takes C2 and it fails: one failure, below minFailed.
    await checkIn('dev-1', { phase: 'rollback', booted: { commit: C2, deployment: `${C2}.0`, version: '2' }, target: { commit: C2, version: '2' }, badCommits: [C2], lastError: { phase: 'confirm', code: 'INVALID_ARGUMENT', message: 'Required health check failed' } });
    await fleet.evaluate();
    expect(pauses).toEqual([]);
    let h = await call('GET', `${srv.url}/api/v1/repos/main/fleet/refs/os/stable`, { token: tok.read });
    expect(h.body).toMatchObject({ ref: 'os/stable', commit: C2, devices: 3, onCommit: 1, attempted: 1, failed: 1, failedShare: 1, autoPaused: false });
    // dev-2 is on C2 and healthy: 1 of 2.
    await checkIn('dev-2', { booted: { commit: C2, deployment: `${C2}.0`, version: '2' } });
    // dev-3 is confirming C2 and its health check failed (rollback not reported yet): 2 of 3.
    await checkIn('dev-3', { phase: 'rollback', booted: { commit: C2, deployment: `${C2}.0`, version: '2' }, target: { commit: C2, version: '2' }, lastError: { phase: 'confirm', code: 'INVALID_ARGUMENT', message: 'Required health check failed' } });
    await fleet.evaluate();
    expect(pauses).toHaveLength(1);
    expect(pauses[0][0]).toBe('main');
    expect(pauses[0][1]).toBe('os/stable');
    expect(pauses[0][2]).toBe(`Automatic pause: commit ${C2.slice(0, 12)} failed on 2 of 3 devices that attempted it (66.7%; threshold 50%, at least 2)`);
    h = await call('GET', `${srv.url}/api/v1/repos/main/fleet/refs/os/stable`, { token: tok.read });
    expect(h.body).toMatchObject({ commit: C2, devices: 3, onCommit: 3, attempted: 3, failed: 2, autoPaused: true, autoPauseReason: pauses[0][2], policy: { threshold: 0.5, minFailed: 2 } });
    // Once per (ref, commit): more failures do not pause again, nor does a restart.
    await checkIn('dev-2', { badCommits: [C2] });
    await fleet.evaluate();
    expect(pauses).toHaveLength(1);
    expect(db.get<{ n: number }>("SELECT count(*) AS n FROM fleet_auto_pauses WHERE ref = 'os/stable'")?.n).toBe(1);
    const ev = await call('GET', `${srv.url}/api/v1/repos/main/fleet/events?ref=os/stable`, { token: tok.read });
    expect(ev.body.events.find((e: { kind: string }) => e.kind === 'auto-pause')).toMatchObject({ deviceId: null, commit: C2, message: pauses[0][2] });
    await fleet.close();
    fleet = open();
    await fleet.evaluate();
    expect((await fleet.refHealth('main', 'os/stable')).autoPaused).toBe(true);
    // os/beta: one failed device of one: below minFailed, never paused.
    expect((await fleet.refHealth('main', 'os/beta'))).toMatchObject({ failed: 1, attempted: 1, autoPaused: false });
    // A new commit on the ref is judged afresh.
    heads['os/stable'] = C3;
    expect(await fleet.refHealth('main', 'os/stable')).toMatchObject({ commit: C3, attempted: 0, failed: 0, failedShare: 0, autoPaused: false });
    // Unknown refs: 404.
    await srv.close();
    srv = await serve([fleet.handler]);
    expect((await call('GET', `${srv.url}/api/v1/repos/main/fleet/refs/os/none`, { token: tok.read })).status).toBe(404);
  });

  it('retries a pause whose callback failed, and only once it succeeded records it', async () => {
    failPause = true;
    for (const d of ['dev-1', 'dev-2']) await checkIn(d, { badCommits: [C2], target: null });
    await fleet.evaluate();
    expect(pauses).toEqual([]);
    expect((await fleet.refHealth('main', 'os/stable')).autoPaused).toBe(false);
    const ev = await call('GET', `${srv.url}/api/v1/repos/main/fleet/events?ref=os/stable`, { token: tok.read });
    expect(ev.body.events[0]).toMatchObject({ kind: 'auto-pause-failed', message: 'Pausing os/stable of main failed: summary signing key unavailable' });
    failPause = false;
    // The timer runs the rule again by itself.
    await expect.poll(() => pauses.length, { timeout: POLL_MS }).toBe(1);
    // Recorded once the writer thread has committed it.
    await expect.poll(async () => (await fleet.refHealth('main', 'os/stable')).autoPaused, { timeout: POLL_MS }).toBe(true);
    expect(pauses.length).toBe(1);
  });

  it('bounds the write queue: past maxPending check-ins get 503 until a flush; failed writes are retried', async () => {
    await srv.close();
    await fleet.close();
    fleet = open({ maxPending: 3, flushIntervalMs: 3_600_000 });
    srv = await serve([fleet.handler]);
    for (const d of ['dev-1', 'dev-2', 'dev-3']) expect((await checkIn(d)).status).toBe(204);
    // A device already queued replaces its entry; a new one does not fit.
    expect((await checkIn('dev-2', { phase: 'check' })).status).toBe(204);
    const full = await checkIn('dev-4');
    expect([full.status, full.body.error.code]).toEqual([503, 'busy']);
    expect((await call('GET', `${srv.url}/api/v1/repos/main/devices/dev-4`, { token: tok.read })).status).toBe(404);
    await fleet.flush();
    expect(db.get<{ n: number }>('SELECT count(*) AS n FROM fleet_devices')?.n).toBe(3);
    expect(db.get<{ phase: string }>("SELECT phase FROM fleet_devices WHERE device_id = 'dev-2'")?.phase).toBe('check');
    expect((await checkIn('dev-4')).status).toBe(204);
    // Writes fail (a trigger, seen by the writer thread's connection too, stands for a full
    // disk): the batch stays queued and lands later.
    db.exec("CREATE TRIGGER fleet_test_fail BEFORE INSERT ON fleet_devices BEGIN SELECT RAISE(ABORT, 'disk full'); END");
    expect((await checkIn('dev-1', { phase: 'pull' })).status).toBe(204);
    await expect(fleet.flush()).rejects.toThrow(/disk full/);
    expect(db.get<{ phase: string }>("SELECT phase FROM fleet_devices WHERE device_id = 'dev-1'")?.phase).toBe('idle');
    db.exec('DROP TRIGGER fleet_test_fail');
    await fleet.flush();
    expect(db.all<{ device_id: string; phase: string }>('SELECT device_id, phase FROM fleet_devices ORDER BY device_id')).toEqual([
      { device_id: 'dev-1', phase: 'pull' },
      { device_id: 'dev-2', phase: 'check' },
      { device_id: 'dev-3', phase: 'idle' },
      { device_id: 'dev-4', phase: 'idle' },
    ]);
  });

  it('the rule: shares and minimum count', () => {
    const dev = (id: string, over: Partial<DeviceRecord>): DeviceRecord => ({
      repo: 'main',
      deviceId: id,
      ref: 'r',
      phase: 'idle',
      degraded: false,
      booted: { commit: C1, version: null },
      target: null,
      badCommits: [],
      lastError: null,
      health: [],
      counters: { checks: 0, bytesFetched: 0, failures: 0, updates: 0, rollbacks: 0 },
      reportedAt: '',
      lastSeen: '',
      ...over,
    });
    const fleetOf = [
      dev('a', { badCommits: [C2] }),
      dev('b', { booted: { commit: C2, version: null } }),
      dev('c', { booted: { commit: C2, version: null } }),
      dev('d', { target: { commit: C2, version: null } }),
      dev('e', {}),
      dev('f', { ref: 'other', badCommits: [C2] }),
      // An error outside the confirmation of C2 is not a failure of C2.
      dev('g', { target: { commit: C2, version: null }, lastError: { phase: 'pull', code: 'IO_ERROR', message: 'x' } }),
    ];
    const h = commitHealth(fleetOf, 'r', C2);
    expect(h).toEqual({ devices: 6, onCommit: 2, attempted: 5, failed: 1, failedShare: 0.2 });
    expect(shouldPause(h, { threshold: 0.2, minFailed: 1 })).toBe(true);
    expect(shouldPause(h, { threshold: 0.2, minFailed: 2 })).toBe(false);
    expect(shouldPause(h, { threshold: 0.21, minFailed: 1 })).toBe(false);
    expect(commitHealth(fleetOf, 'r', null)).toEqual({ devices: 6, onCommit: 0, attempted: 0, failed: 0, failedShare: 0 });
    expect(() => createFleet({ db, tokens, refCommit: async () => null, onAutoPause: async () => undefined, autoPause: { threshold: 1.5 } })).toThrow(RangeError);
  });
});
