/**
 * Pulling a commit through a static delta (spec static-deltas.md section 8.3): find a delta for
 * (FROM, TO) in the remote's delta index, fetch its superblock (checked against the digest the
 * index or summary gives), and apply it part by part into the local repository.
 *
 * Every byte fetched is bounded (superblock by a fixed cap, each part by its header's size) and
 * verified before use: part SHA-256, bounded xz, per-object checksums (see @larch/delta's apply).
 * Requests go through the puller's transfer layer (pull-transfer.ts), so each one also runs
 * under the request and stall timeouts of {@link PullLimits}, is never read past its size, and
 * releases its body on every failure.
 * Parts are published one by one, so an interrupted pull resumes at part granularity: parts whose
 * objects are all present are neither fetched nor run. Fallback objects are handed to the
 * caller's `fetchFallback` (ordinary object fetches); without it a delta with missing fallbacks is
 * refused, so the caller falls back to an object pull. Any failure is a LarchError whose
 * `data.reason` says why; the TO commit is written only after every part and fallback is in.
 */
import { createHash } from 'node:crypto';
import { LarchError, deltaIndexRelPath, deltaRelDir, deltaRelPath, type Checksum, type Repo } from '@larch/core-store';
import {
  applySuperblock,
  decodeSuperblock,
  parseDeltaIndex,
  type DeltaProgress,
  type FallbackEntry,
  type PartHeader,
  type Superblock,
} from '@larch/delta';
import { joinUrl, type Fetcher } from './fetcher.js';
import { resolveLimits, type PullLimits } from './limits.js';
import { ProgressTracker } from './progress.js';
import { collect } from './pull-source.js';
import { PrioritySemaphore, transfer, type TransferContext } from './pull-transfer.js';

/** Largest superblock fetched (inline parts can make it big). */
export const MAX_DELTA_SUPERBLOCK = 256 * 1024 * 1024;
/** Largest delta index fetched. */
const MAX_DELTA_INDEX = 16 * 1024 * 1024;

export interface DeltaPullProgress extends DeltaProgress {
  /** Bytes of superblock, index and parts received over the wire. */
  wireBytes: number;
}

export interface DeltaPullOptions {
  repo: Repo;
  fetcher: Fetcher;
  /** Base URL of the remote repository. */
  baseUrl: string;
  from: Checksum | null;
  to: Checksum;
  /** Expected SHA-256 (hex) of the superblock, from the summary or the delta index. */
  superblockSha256?: string;
  /** Fetch one fallback object as an ordinary object into `repo`. */
  fetchFallback?: (f: FallbackEntry) => Promise<void>;
  onProgress?: (p: DeltaPullProgress) => void;
  signal?: AbortSignal;
  /** Retries per request after the first attempt, for network errors, timeouts, HTTP 5xx and 408 (default 3). */
  retries?: number;
  /** Request and stall timeouts and retry delays of each request (defaults: {@link DEFAULT_PULL_LIMITS}). */
  limits?: Partial<PullLimits>;
}

export interface DeltaPullResult {
  from: Checksum | null;
  to: Checksum;
  partsApplied: number;
  partsSkipped: number;
  objectsWritten: number;
  fallbacksFetched: number;
  /** Bytes received over the wire for the delta (superblock + parts). */
  wireBytes: number;
}

function deltaError(reason: string, msg: string, data: Record<string, unknown> = {}, cause?: unknown): LarchError {
  return new LarchError(reason === 'not-found' ? 'OBJECT_MISSING' : reason === 'network' ? 'IO_ERROR' : 'OBJECT_CORRUPTED', msg, { reason, ...data }, cause !== undefined ? { cause } : undefined);
}

/**
 * The transfer context of a delta's requests, each with its own retry budget. How many parts are
 * fetched at once is up to the applier's prefetch window (at most a few); the semaphore only
 * caps it at the size of the connection pool.
 */
function deltaContext(fetcher: Fetcher, signal: AbortSignal, retries: number, limits: Partial<PullLimits> | undefined): TransferContext {
  return { fetcher, limits: resolveLimits({ ...limits, retries }), progress: new ProgressTracker(undefined), semaphore: new PrioritySemaphore(8), signal };
}

/** GET a whole body of at most `maxBytes`; null on 404 or 410 (retries as in pull-transfer.ts). */
async function fetchBytes(ctx: TransferContext, url: string, maxBytes: number, what: string): Promise<Buffer | null> {
  const got = await transfer(ctx, { url, object: what, maxBytes, optional: true, high: true }, collect);
  return got === null ? null : Buffer.from(got.buffer, got.byteOffset, got.byteLength);
}

export interface DeltaCandidate {
  from: Checksum | null;
  to: Checksum;
  superblockSha256: string;
}

/**
 * Choose a delta ending at `to` from the remote's delta index (`delta-indexes/…`): among FROM
 * commits present locally (and not partial) the newest by commit timestamp; else the scratch delta
 * when `allowScratch`; else null (also when the remote has no index for `to`). Read-only locally.
 */
export async function findDelta(opts: { repo: Repo; fetcher: Fetcher; baseUrl: string; to: Checksum; allowScratch?: boolean; signal?: AbortSignal; index?: Map<string, string> }): Promise<DeltaCandidate | null> {
  const signal = opts.signal ?? new AbortController().signal;
  let index = opts.index;
  if (index === undefined) {
    const ctx = deltaContext(opts.fetcher, signal, 3, undefined);
    const bytes = await fetchBytes(ctx, joinUrl(opts.baseUrl, deltaIndexRelPath(opts.to)), MAX_DELTA_INDEX, `delta index of ${opts.to}`);
    if (bytes === null) return null;
    index = parseDeltaIndex(bytes);
  }
  let best: DeltaCandidate | null = null;
  let bestTs = -1n;
  let scratch: DeltaCandidate | null = null;
  for (const [name, sha] of index) {
    const m = /^(?:([0-9a-f]{64})-)?([0-9a-f]{64})$/.exec(name);
    if (!m || m[2] !== opts.to) continue;
    if (m[1] === undefined) {
      scratch = { from: null, to: opts.to, superblockSha256: sha };
      continue;
    }
    const from = m[1];
    if (!(await opts.repo.hasObject('commit', from)) || (await opts.repo.isCommitPartial(from))) continue;
    const ts = (await opts.repo.readCommit(from)).timestamp;
    if (ts > bestTs) {
      bestTs = ts;
      best = { from, to: opts.to, superblockSha256: sha };
    }
  }
  return best ?? (opts.allowScratch ? scratch : null);
}

/**
 * Pull `to` through the static delta (from, to) of the remote at `baseUrl` into `repo`.
 *
 * Locking: the shared repo lock while parts are applied (see `applySuperblock`). Crash
 * guarantee: each part's objects are published together after all of them verified; the commit
 * object is written last, so an interrupted pull leaves no commit and resumes with the parts
 * still missing. Does not move refs. Limits: superblock ≤ {@link MAX_DELTA_SUPERBLOCK}; each part
 * exactly its declared size; part bodies bounded as in @larch/delta.
 */
export async function pullDelta(opts: DeltaPullOptions): Promise<DeltaPullResult> {
  const signal = opts.signal ?? new AbortController().signal;
  const ctx = deltaContext(opts.fetcher, signal, opts.retries ?? 3, opts.limits);
  const rel = deltaRelDir(opts.from, opts.to);
  const sbUrl = joinUrl(opts.baseUrl, deltaRelPath(opts.from, opts.to, 'superblock'));
  const sbBytes = await fetchBytes(ctx, sbUrl, MAX_DELTA_SUPERBLOCK, `static delta superblock ${rel}`);
  if (sbBytes === null) throw deltaError('not-found', `Static delta ${rel} not found on the remote (${sbUrl})`, { url: sbUrl });
  let wireBytes = sbBytes.length;
  if (opts.superblockSha256 !== undefined) {
    const actual = createHash('sha256').update(sbBytes).digest('hex');
    if (actual !== opts.superblockSha256) {
      throw deltaError('corrupted', `Invalid checksum for static delta ${rel}/superblock: expected ${opts.superblockSha256}, actual ${actual}`, { expected: opts.superblockSha256, actual });
    }
  }
  const sb: Superblock = decodeSuperblock(sbBytes);
  if (sb.to !== opts.to || sb.from !== opts.from) {
    throw deltaError('corrupted', `Static delta ${rel} describes ${sb.from ?? 'scratch'}→${sb.to}, not the requested delta`);
  }
  // Fallbacks first (ordinary objects): the parts never depend on them, but the commit does.
  let fallbacksFetched = 0;
  for (const f of sb.fallbacks) {
    if (await opts.repo.hasObject('file', f.checksum)) continue;
    if (!opts.fetchFallback) throw deltaError('unsupported', `Static delta ${rel} has fallback object ${f.checksum} and no way to fetch it`, { checksum: f.checksum });
    await opts.fetchFallback(f);
    fallbacksFetched++;
  }
  const res = await applySuperblock(
    opts.repo,
    sb,
    {
      async readPart(i: number, h: PartHeader): Promise<Uint8Array> {
        const url = joinUrl(opts.baseUrl, deltaRelPath(opts.from, opts.to, i));
        const b = await fetchBytes(ctx, url, h.size, `static delta part ${rel}/${i}`);
        if (b === null) throw deltaError('not-found', `Static delta part ${rel}/${i} not found on the remote (${url})`, { url });
        wireBytes += b.length;
        return b;
      },
    },
    {
      publish: 'per-part',
      allowFallbacks: true,
      signal,
      onProgress: (p) => opts.onProgress?.({ ...p, wireBytes }),
    },
  );
  return {
    from: sb.from,
    to: sb.to,
    partsApplied: res.partsApplied,
    partsSkipped: res.partsSkipped,
    objectsWritten: res.objectsWritten,
    fallbacksFetched,
    wireBytes,
  };
}
