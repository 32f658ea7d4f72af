/**
 * The fleet API of larch-server: device check-ins, the device list, per-ref rollout health, the
 * event log, and the automatic pause of a ref whose newest commit fails on too many devices.
 *
 *   POST /api/v1/repos/{repo}/devices/{deviceId}/check-in   right `checkin` (token bound to the
 *        device) or `admin`; body = @larch/updater's checkInSchema → 204
 *   GET  /api/v1/repos/{repo}/devices[?ref=R]                read → {"devices":[…]}
 *   GET  /api/v1/repos/{repo}/devices/{deviceId}             read → one device
 *   GET  /api/v1/repos/{repo}/fleet/refs/{ref…}              read → rollout health of the ref's commit
 *   GET  /api/v1/repos/{repo}/fleet/events[?limit&deviceId&ref] read → {"events":[…]} newest first
 *
 * Why answers come from memory and writes go behind (store.ts): a fleet checks in at a steady
 * few hundred requests a second; the work per check-in is a JSON parse and a schema check, and
 * nothing in it waits for the disk. The pause rule runs on a timer, over the refs that received check-ins since the
 * last run, never inside a request, so a slow `refCommit` or `onAutoPause` (summary signing)
 * cannot delay check-ins.
 *
 * Check-in tokens are remembered for `tokenCacheMs` (default 10 s, with jitter) after a
 * successful lookup: a database read costs a lock file created and removed (node-sqlite3-wasm's
 * file locking), ~0.3 ms idle and several ms while other writes fsync, which is most of a
 * check-in's cost. The price is that revoking a device token stops its check-ins only after
 * that delay; expiry is still checked on every request, and every other right is looked up
 * every time.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { validateRefName } from '@larch/core-store';
import type { Database } from '@larch/db';
import { ApiError, bearerToken, parseQuery, checkScope, hashToken, readJsonBody, parseRepoPath, requireMethod, sendApiError, sendJson, type ApiHandler, type TokenNeed, type TokenRecord, type TokenStore } from '@larch/publish';
import { checkInSchema, type CheckInPayload } from '@larch/updater/report';
import { z } from 'zod';
import { commitHealth, DEFAULT_AUTO_PAUSE, pauseReason, shouldPause, type AutoPausePolicy, type CommitHealth } from './rollout-health.js';
import { FleetStore, type DeviceRecord, type FleetEvent } from './store.js';

/** Device ids as tokens bind them. */
export const DEVICE_ID_RE = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
/** Largest check-in body (64 KiB). */
export const CHECK_IN_LIMIT = 64 * 1024;

const HEX64 = /^[0-9a-f]{64}$/;

/**
 * The check-in body as the server accepts it: the agent's schema, plus what the agent's own
 * types cannot say: a valid ref name, full checksums, a bounded list of bad commits.
 */
export const checkInBodySchema = checkInSchema.superRefine((p, ctx) => {
  try {
    validateRefName(p.ref);
  } catch {
    ctx.addIssue({ code: 'custom', path: ['ref'], message: `Invalid ref name ${JSON.stringify(p.ref.slice(0, 100))}` });
  }
  if (p.booted && !HEX64.test(p.booted.commit)) ctx.addIssue({ code: 'custom', path: ['booted', 'commit'], message: 'expected a 64-character hex checksum' });
  if (p.target && !HEX64.test(p.target.commit)) ctx.addIssue({ code: 'custom', path: ['target', 'commit'], message: 'expected a 64-character hex checksum' });
  if (p.badCommits.length > 1000) ctx.addIssue({ code: 'custom', path: ['badCommits'], message: 'at most 1000 entries' });
  const i = p.badCommits.findIndex((c) => !HEX64.test(c));
  if (i >= 0) ctx.addIssue({ code: 'custom', path: ['badCommits', i], message: 'expected a 64-character hex checksum' });
});

/** A device as the API shows it. */
export interface DeviceView {
  deviceId: string;
  ref: string;
  phase: string;
  degraded: boolean;
  booted: { commit: string; version: string | null } | null;
  target: { commit: string; version: string | null } | null;
  badCommits: string[];
  lastError: { phase: string; code: string; message: string } | null;
  lastSeen: string;
  reportedAt: string;
  health: Array<{ name: string; kind: 'required' | 'wanted'; ok: boolean }>;
  counters: CheckInPayload['counters'];
}

/** The rollout health of a ref, as `GET …/fleet/refs/{ref}` answers it. */
export interface RefHealthView extends CommitHealth {
  ref: string;
  /** The ref's newest commit (null when the ref does not exist). */
  commit: string | null;
  autoPaused: boolean;
  autoPauseReason: string | null;
  policy: AutoPausePolicy;
}

/** Options of {@link createFleet}. */
export interface FleetOptions {
  db: Database;
  /** Token checks (`authorize`), normally @larch/publish's TokenStore. */
  tokens: Pick<TokenStore, 'authorize'>;
  /** The newest commit of a ref of a served repository (null: no such repository or ref). */
  refCommit: (repo: string, ref: string) => Promise<string | null>;
  /** Pause the ref (e.g. `Publisher#setRollout(repo, ref, { paused: true, reason })`). Called at most once per (ref, commit) unless it fails. */
  onAutoPause: (repo: string, ref: string, reason: string) => Promise<void>;
  autoPause?: Partial<AutoPausePolicy>;
  /** When given, other repository names are 404. */
  repos?: readonly string[];
  /**
   * How often dirty devices are written and pause rules run (default 1000 ms). Each write is one
   * transaction, run on a writer thread for a database file (its fsyncs do not stall check-ins);
   * a crash loses at most this interval.
   */
  flushIntervalMs?: number;
  /** Dirty devices + queued events past which check-ins are refused with 503 until writes succeed again (default 10 000). */
  maxPending?: number;
  /** How long a check-in token stays trusted after a successful lookup (default 10 000 ms; 0: look up every time). */
  tokenCacheMs?: number;
  /** Where background failures (database writes, refCommit, onAutoPause) are reported; default: a JSON line on stderr. */
  log?: (rec: { event: string; message: string } & Record<string, unknown>) => void;
  /** Clock (tests). */
  now?: () => Date;
}

/** A running fleet component. */
export interface Fleet {
  handler: ApiHandler;
  /** Write dirty devices and queued events now (one transaction, on the writer thread for a database file); rejects when the write fails. */
  flush(): Promise<void>;
  /** Run the pause rule for every ref that received check-ins since the last run; resolves when done. */
  evaluate(): Promise<void>;
  /** The rollout health of a ref (what the endpoint answers). */
  refHealth(repo: string, ref: string): Promise<RefHealthView>;
  /** Stop the timer, finish a running evaluation, flush. Safe to call twice. */
  close(): Promise<void>;
}

const listQuery = z.object({ ref: z.string().min(1).max(1024).optional() }).strict();
const eventsQuery = z
  .object({
    limit: z.coerce.number().int().min(1).max(1000).default(100),
    deviceId: z.string().regex(DEVICE_ID_RE).optional(),
    ref: z.string().min(1).max(1024).optional(),
  })
  .strict();


function view(d: DeviceRecord): DeviceView {
  return {
    deviceId: d.deviceId,
    ref: d.ref,
    phase: d.phase,
    degraded: d.degraded,
    booted: d.booted,
    target: d.target,
    badCommits: d.badCommits,
    lastError: d.lastError,
    lastSeen: d.lastSeen,
    reportedAt: d.reportedAt,
    health: d.health,
    counters: d.counters,
  };
}

/** Failure events a check-in brings, compared with the device's previous record. Pure. */
export function checkInEvents(prev: DeviceRecord | undefined, next: DeviceRecord): FleetEvent[] {
  const out: FleetEvent[] = [];
  const base = { time: next.lastSeen, repo: next.repo, deviceId: next.deviceId, ref: next.ref };
  for (const c of next.badCommits) {
    if (!prev?.badCommits.includes(c)) out.push({ ...base, commit: c, kind: 'bad-commit', message: `Device ${next.deviceId} rolled back commit ${c} and marked it bad` });
  }
  const e = next.lastError;
  const pe = prev?.lastError ?? null;
  if (e !== null && (pe === null || pe.phase !== e.phase || pe.code !== e.code || pe.message !== e.message)) {
    out.push({ ...base, commit: next.target?.commit ?? null, kind: 'error', message: `${e.phase}: ${e.code}: ${e.message}`.slice(0, 2000) });
  }
  if (next.degraded && !prev?.degraded) {
    out.push({ ...base, commit: next.booted?.commit ?? null, kind: 'degraded', message: `Device ${next.deviceId} is degraded: neither the update nor the fallback passed its required health checks` });
  }
  return out;
}

/**
 * Build the fleet component over `opts.db` (tables `fleet_*`, created on first use) and start its
 * write-behind timer (unref'd). Everything it writes goes through one FleetStore; no other
 * process may write those tables while it runs. Crash: at most the last `flushIntervalMs` of
 * check-ins is lost (devices repeat their state at the next check-in); automatic pauses are
 * recorded before `onAutoPause` returns to the caller of `evaluate()`.
 */
export function createFleet(opts: FleetOptions): Fleet {
  const log = opts.log ?? ((rec) => process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), component: 'fleet', ...rec })}\n`));
  const store = new FleetStore(opts.db, opts.maxPending !== undefined ? { maxPending: opts.maxPending } : {});
  const policy: AutoPausePolicy = { ...DEFAULT_AUTO_PAUSE, ...opts.autoPause };
  if (!(policy.threshold >= 0 && policy.threshold <= 1)) throw new RangeError(`autoPause.threshold must be within 0..1, not ${policy.threshold}`);
  if (!(Number.isInteger(policy.minFailed) && policy.minFailed >= 1)) throw new RangeError(`autoPause.minFailed must be a positive integer, not ${policy.minFailed}`);
  const now = opts.now ?? (() => new Date());
  const repos = opts.repos ? new Set(opts.repos) : null;
  /** (repo, ref) pairs with check-ins since the last evaluation. */
  let dirtyRefs = new Map<string, { repo: string; ref: string }>();
  /** (repo, ref, commit) pauses in flight or failed-and-retrying, so one evaluation at a time acts. */
  const pausing = new Set<string>();
  let evaluating: Promise<void> | null = null;
  const tokenCacheMs = opts.tokenCacheMs ?? 10_000;
  /** sha256 of a check-in token → its record, trusted until `until` (epoch ms). Bounded. */
  const tokenCache = new Map<string, { rec: TokenRecord; until: number }>();
  const TOKEN_CACHE_MAX = 100_000;
  let closed = false;
  let flushFailing = false;

  const flushQuietly = async (): Promise<void> => {
    try {
      await store.flush();
      if (flushFailing) log({ event: 'flush-recovered', message: 'Device records are written again' });
      flushFailing = false;
    } catch (e) {
      if (!flushFailing) log({ event: 'flush-failed', message: `Writing device records: ${(e as Error).message}`, pending: store.pending });
      flushFailing = true;
    }
  };

  async function evaluateRef(repo: string, ref: string): Promise<void> {
    const commit = await opts.refCommit(repo, ref);
    if (commit === null || store.autoPause(repo, ref, commit)) return;
    const k = `${repo}\u0000${ref}\u0000${commit}`;
    if (pausing.has(k)) return;
    const h = commitHealth(store.devices(repo), ref, commit);
    if (!shouldPause(h, policy)) return;
    const reason = pauseReason(commit, h, policy);
    pausing.add(k);
    try {
      await opts.onAutoPause(repo, ref, reason);
      await store.recordAutoPause({ repo, ref, commit, reason, time: now().toISOString() });
      log({ event: 'auto-pause', message: reason, repo, ref, commit });
    } catch (e) {
      const message = `Pausing ${ref} of ${repo} failed: ${(e as Error).message}`;
      log({ event: 'auto-pause-failed', message, repo, ref, commit });
      store.addEvent({ time: now().toISOString(), repo, deviceId: null, ref, commit, kind: 'auto-pause-failed', message });
      // Mark the ref dirty again so the next run retries.
      dirtyRefs.set(`${repo}\u0000${ref}`, { repo, ref });
    } finally {
      pausing.delete(k);
    }
  }

  function evaluate(): Promise<void> {
    if (evaluating) return evaluating.then(() => (dirtyRefs.size > 0 ? evaluate() : undefined));
    const batch = dirtyRefs;
    dirtyRefs = new Map();
    if (batch.size === 0) return Promise.resolve();
    evaluating = (async () => {
      for (const { repo, ref } of batch.values()) {
        try {
          await evaluateRef(repo, ref);
        } catch (e) {
          log({ event: 'evaluate-failed', message: `Checking rollout health of ${ref} in ${repo}: ${(e as Error).message}`, repo, ref });
        }
      }
    })().finally(() => {
      evaluating = null;
    });
    return evaluating;
  }

  const timer = setInterval(() => {
    void flushQuietly();
    if (dirtyRefs.size > 0 && !evaluating) void evaluate();
  }, opts.flushIntervalMs ?? 1000);
  timer.unref();

  async function refHealth(repo: string, ref: string): Promise<RefHealthView> {
    const commit = await opts.refCommit(repo, ref);
    const h = commitHealth(store.devices(repo), ref, commit);
    const p = commit === null ? undefined : store.autoPause(repo, ref, commit);
    return { ref, commit, ...h, autoPaused: p !== undefined, autoPauseReason: p?.reason ?? null, policy };
  }

  function checkRepo(repo: string): void {
    if (repos && !repos.has(repo)) throw new ApiError(404, 'not-found', `No repository named ${repo}`);
  }

  /** `tokens.authorize` for check-ins, through the cache (see the file comment). */
  function authorizeCheckIn(req: IncomingMessage, need: TokenNeed): TokenRecord {
    const text = tokenCacheMs > 0 ? bearerToken(req) : null;
    if (text === null) return opts.tokens.authorize(req, need);
    const key = hashToken(text);
    const t = Date.now();
    const hit = tokenCache.get(key);
    if (hit && hit.until > t && (hit.rec.expiresAt === null || Date.parse(hit.rec.expiresAt) > now().getTime())) return checkScope(hit.rec, need);
    if (hit) tokenCache.delete(key);
    const rec = opts.tokens.authorize(req, need);
    if (tokenCache.size >= TOKEN_CACHE_MAX) tokenCache.delete(tokenCache.keys().next().value as string);
    // Jitter spreads the next lookups of a fleet that started together.
    tokenCache.set(key, { rec, until: t + tokenCacheMs * (0.75 + Math.random() * 0.25) });
    return rec;
  }

  async function checkIn(req: IncomingMessage, res: ServerResponse, repo: string, deviceId: string): Promise<void> {
    requireMethod(req, res, 'POST');
    if (closed) throw new ApiError(503, 'unavailable', 'The server is shutting down');
    const need = { repo, right: 'checkin' as const, deviceId };
    const tok: TokenRecord = authorizeCheckIn(req, need);
    if (!tok.rights.includes('admin') && tok.deviceId === null) {
      throw new ApiError(403, 'forbidden', `Token ${tok.id} is not bound to a device; check-ins need the device's own token or an admin token`);
    }
    checkRepo(repo);
    const p = await readJsonBody(req, checkInBodySchema, CHECK_IN_LIMIT);
    if (p.deviceId !== deviceId) {
      throw new ApiError(400, 'invalid-body', `Invalid request body at deviceId: ${JSON.stringify(p.deviceId.slice(0, 130))} is not the device of the path (${deviceId})`);
    }
    checkScope(tok, { ...need, ref: p.ref });
    const prev = store.device(repo, deviceId);
    const rec: DeviceRecord = {
      repo,
      deviceId,
      ref: p.ref,
      phase: p.phase,
      degraded: p.degraded,
      booted: p.booted ? { commit: p.booted.commit, version: p.booted.version } : null,
      target: p.target ? { commit: p.target.commit, version: p.target.version } : null,
      badCommits: p.badCommits,
      lastError: p.lastError,
      health: p.health ?? (prev && prev.booted?.commit === p.booted?.commit ? prev.health : []),
      counters: p.counters,
      reportedAt: p.time,
      lastSeen: now().toISOString(),
    };
    try {
      store.put(rec, checkInEvents(prev, rec));
    } catch (e) {
      throw new ApiError(503, 'busy', `Device records cannot be written: ${(e as Error).message}; try again later`, {}, { cause: e });
    }
    dirtyRefs.set(`${repo}\u0000${rec.ref}`, { repo, ref: rec.ref });
    sendJson(res, 204);
  }

  const handler: ApiHandler = async (req, res, url) => {
    let parsed: { repo: string; rest: string[] } | null;
    try {
      parsed = parseRepoPath(url);
    } catch (e) {
      // A malformed path: answer it when it has the shape of one of ours, else leave it to the
      // handler that owns the rest of /api/.
      const segs = url.pathname.split('/');
      if (segs[5] !== 'devices' && segs[5] !== 'fleet') return false;
      sendApiError(res, e);
      return true;
    }
    if (!parsed) return false;
    const { repo, rest } = parsed;
    const [head, second] = rest;
    if (head !== 'devices' && !(head === 'fleet' && (second === 'refs' || second === 'events'))) return false;
    try {
      if (head === 'devices') {
        if (rest.length === 3 && rest[2] === 'check-in') {
          if (!DEVICE_ID_RE.test(second!)) throw new ApiError(400, 'invalid-device', `Invalid device id ${JSON.stringify(second!.slice(0, 130))}`);
          await checkIn(req, res, repo, second!);
          return true;
        }
        requireMethod(req, res, 'GET');
        opts.tokens.authorize(req, { repo, right: 'read' });
        checkRepo(repo);
        if (rest.length === 1) {
          const q = parseQuery(url, listQuery);
          const list = [...store.devices(repo)].filter((d) => q.ref === undefined || d.ref === q.ref).sort((a, b) => (a.deviceId < b.deviceId ? -1 : a.deviceId > b.deviceId ? 1 : 0));
          sendJson(res, 200, { devices: list.map(view) });
          return true;
        }
        if (rest.length === 2) {
          const d = DEVICE_ID_RE.test(second!) ? store.device(repo, second!) : undefined;
          if (!d) throw new ApiError(404, 'not-found', `No device ${JSON.stringify(second!.slice(0, 130))} has checked in to ${repo}`);
          sendJson(res, 200, view(d));
          return true;
        }
        throw new ApiError(404, 'not-found', `No such API path ${url.pathname.slice(0, 200)}`);
      }
      requireMethod(req, res, 'GET');
      if (second === 'events') {
        if (rest.length !== 2) throw new ApiError(404, 'not-found', `No such API path ${url.pathname.slice(0, 200)}`);
        opts.tokens.authorize(req, { repo, right: 'read' });
        checkRepo(repo);
        const q = parseQuery(url, eventsQuery);
        const events = await store.listEvents(repo, { limit: q.limit, ...(q.deviceId !== undefined ? { deviceId: q.deviceId } : {}), ...(q.ref !== undefined ? { ref: q.ref } : {}) });
        sendJson(res, 200, { events: events.map(({ repo: _repo, ...e }) => e) });
        return true;
      }
      // fleet/refs/{ref…}
      if (rest.length < 3) throw new ApiError(404, 'not-found', 'Missing ref: expected /fleet/refs/{ref}');
      const ref = rest.slice(2).join('/');
      opts.tokens.authorize(req, { repo, right: 'read', ref });
      checkRepo(repo);
      try {
        validateRefName(ref);
      } catch {
        throw new ApiError(400, 'invalid-ref', `Invalid ref name ${JSON.stringify(ref.slice(0, 200))}`);
      }
      parseQuery(url, z.object({}).strict());
      const h = await refHealth(repo, ref);
      if (h.commit === null && h.devices === 0) throw new ApiError(404, 'not-found', `No such ref ${ref} in repository ${repo}`);
      sendJson(res, 200, h);
      return true;
    } catch (e) {
      const err = sendApiError(res, e);
      if (err.status >= 500) log({ event: 'request-failed', message: `${req.method ?? ''} ${url.pathname}: ${(e as Error).message}` });
      return true;
    }
  };

  return {
    handler,
    flush: async () => {
      await store.flush();
    },
    evaluate,
    refHealth,
    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      clearInterval(timer);
      await evaluating?.catch(() => undefined);
      await store.close();
    },
  };
}
