/**
 * The per-remote summary cache, as OSTree keeps it (ostree-repo-pull.c: `_ostree_repo_cache_summary`,
 * `_ostree_repo_load_cache_summary_if_same_sig`): `CACHE/summaries/REMOTE` and `REMOTE.sig`, where
 * CACHE is `REPO/tmp/cache` (none when `OSTREE_SKIP_CACHE` is set) or the `--cache-dir` given.
 * The library uses a cache only when its caller names one (`PullOptions.cacheDir`); the CLI does,
 * as `ostree pull` does.
 *
 * Why: a summary can be large and its signature small. A pull fetches `summary.sig` first; when
 * it is byte for byte the cached one, the cached summary is used and `summary` is not fetched.
 * Requests carry `If-Modified-Since` with the cached file's mtime, and a saved file gets the
 * server's `Last-Modified` as its mtime, so an unchanged file costs a 304. (OSTree also keeps the
 * ETag in a `user.etag` xattr and sends `If-None-Match`; Larch does not.)
 *
 * The pair is written only after the summary verified (when verification is on) and parsed, and
 * only when both files came from the server, so the cache never holds a summary with a signature
 * that does not belong to it; a cached summary that fails verification against a fresh signature
 * is fetched again, without cache headers, and verified again (OSTree's recovery from a cache
 * written by older versions). `OSTREE_REPO_TEST_ERROR=invalid-cache` makes that case fail instead,
 * with OSTree's message, for its tests. Remotes on the local disk (file://) are never cached.
 *
 * Locking: none of its own; callers hold the repo lock the pull takes. Cache files are replaced
 * by tmp + rename, so a crash leaves the old file or the new one.
 */
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { LarchError, readSummary, validateRemoteName, type Repo } from '@larch/core-store';
import type { FetchOptions, FetchResponse, Fetcher } from './fetcher.js';
import { HttpSource } from './pull-source.js';
import type { TransferContext } from './pull-transfer.js';

/** `summaries`, below the cache dir. */
export const SUMMARY_CACHE_DIR = 'summaries';

/**
 * The cache dir of a repo: `cacheDir` when given (`--cache-dir`), else `REPO/tmp/cache`, or null
 * (no cache) when `OSTREE_SKIP_CACHE` is set, as in OSTree.
 */
export function summaryCacheRoot(repo: Repo, cacheDir?: string, env: NodeJS.ProcessEnv = process.env): string | null {
  if (cacheDir !== undefined) return cacheDir;
  if (env.OSTREE_SKIP_CACHE !== undefined) return null;
  return join(repo.path, 'tmp', 'cache');
}

function cachePath(root: string, remote: string, ext: '' | '.sig'): string {
  return join(root, SUMMARY_CACHE_DIR, `${remote}${ext}`);
}

async function readOptional(path: string): Promise<Uint8Array | null> {
  try {
    return new Uint8Array(await fsp.readFile(path));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new LarchError('IO_ERROR', `openat(${path}): ${(e as Error).message}`, { path }, { cause: e });
  }
}

/** The cached file's mtime in seconds (what `If-Modified-Since` carries), or null. */
async function cachedMtime(path: string): Promise<number | null> {
  try {
    return Math.floor((await fsp.stat(path)).mtimeMs / 1000);
  } catch {
    return null;
  }
}

async function saveFile(root: string, remote: string, ext: '' | '.sig', bytes: Uint8Array, lastModified: number, fsync: boolean): Promise<void> {
  const dir = join(root, SUMMARY_CACHE_DIR);
  await fsp.mkdir(dir, { recursive: true, mode: 0o775 });
  const dest = cachePath(root, remote, ext);
  const tmp = join(dir, `.${remote}${ext}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    const fh = await fsp.open(tmp, 'wx', 0o644);
    try {
      await fh.writeFile(bytes);
      if (fsync) await fh.datasync();
    } finally {
      await fh.close();
    }
    if (lastModified > 0) await fsp.utimes(tmp, lastModified, lastModified);
    await fsp.rename(tmp, dest);
  } catch (e) {
    await fsp.rm(tmp, { force: true });
    throw new LarchError('IO_ERROR', `Writing ${dest}: ${(e as Error).message}`, { path: dest }, { cause: e });
  }
}

/** One file as the server answered a (conditional) GET. */
export interface CachedFetchResult {
  /** The body; null when the server has no such file. Empty on 304. */
  bytes: Uint8Array | null;
  /** The server answered 304 Not Modified. */
  notModified: boolean;
  /** `Last-Modified` in Unix seconds, 0 when absent. */
  lastModified: number;
}

/** GET `summary` or `summary.sig`, with `If-Modified-Since` when `ifModifiedSince` is not null. */
export type SummaryFileFetch = (name: 'summary' | 'summary.sig', ifModifiedSince: number | null) => Promise<CachedFetchResult>;

/** What {@link fetchSummaryWithCache} found. */
export interface SummaryPair {
  summary: Uint8Array | null;
  signatures: Uint8Array | null;
  /** The summary came from the cache. */
  fromCache: boolean;
}

/** Options of {@link fetchSummaryWithCache}. */
export interface SummaryCacheFetchOptions {
  repo: Repo;
  remote: string;
  /** The cache dir ({@link summaryCacheRoot}), or null for none. */
  cacheRoot: string | null;
  fetch: SummaryFileFetch;
  /** Fetch `summary.sig` at all (always, when there is a cache). */
  wantSignatures: boolean;
  /**
   * Verify the pair (throws on a bad one); called only when both are present and verification
   * is on. Without it nothing is verified.
   */
  verify?: (summary: Uint8Array, signatures: Uint8Array) => void | Promise<void>;
  /**
   * `ostree pull` retries a cached summary that fails verification with a fresh one; `remote
   * summary` does not (ostree_repo_remote_fetch_summary_with_options).
   */
  retryStaleCache: boolean;
  env?: NodeJS.ProcessEnv;
}

/** Whether `OSTREE_REPO_TEST_ERROR` lists `invalid-cache`. */
function testErrorInvalidCache(env: NodeJS.ProcessEnv): boolean {
  return (env.OSTREE_REPO_TEST_ERROR ?? '').split(',').some((s) => s.trim() === 'invalid-cache');
}

/**
 * Fetch a remote's summary and signatures through the cache, in OSTree's order: `summary.sig`
 * (conditional on the cached one); on 304, or when it equals the cached one, the cached summary;
 * otherwise `summary` (conditional). Then `verify`, then the pair is cached when both came from
 * the server and the summary parses. Errors: those of `fetch` and `verify`; IO_ERROR for the
 * cache files; INVALID_REF for a remote name that is not one.
 */
export async function fetchSummaryWithCache(o: SummaryCacheFetchOptions): Promise<SummaryPair> {
  // The name becomes a file name in the cache: only a valid remote name (no `/`, no `..`).
  validateRemoteName(o.remote);
  const env = o.env ?? process.env;
  const root = o.cacheRoot;
  let signatures: Uint8Array | null = null;
  let summary: Uint8Array | null = null;
  let sigLastModified = 0;
  let summaryLastModified = 0;
  if (o.wantSignatures || root !== null) {
    const since = root === null ? null : await cachedMtime(cachePath(root, o.remote, '.sig'));
    const r = await o.fetch('summary.sig', since);
    signatures = r.bytes;
    sigLastModified = r.lastModified;
    if (r.notModified && root !== null) {
      signatures = await readOptional(cachePath(root, o.remote, '.sig'));
      summary = await readOptional(cachePath(root, o.remote, ''));
    }
  }
  if (signatures !== null && summary === null && root !== null) {
    const old = await readOptional(cachePath(root, o.remote, '.sig'));
    if (old !== null && Buffer.compare(Buffer.from(old), Buffer.from(signatures)) === 0) {
      summary = await readOptional(cachePath(root, o.remote, ''));
      // A cached signature without its summary is useless: drop it.
      if (summary === null) await fsp.rm(cachePath(root, o.remote, '.sig'), { force: true });
    }
  }
  let fromCache = summary !== null;
  if (summary === null) {
    const since = root === null ? null : await cachedMtime(cachePath(root, o.remote, ''));
    const r = await o.fetch('summary', since);
    summary = r.bytes;
    summaryLastModified = r.lastModified;
    if (r.notModified && root !== null) summary = await readOptional(cachePath(root, o.remote, ''));
  }
  if (o.verify !== undefined && summary !== null && signatures !== null) {
    try {
      await o.verify(summary, signatures);
    } catch (e) {
      if (!fromCache || !o.retryStaleCache) throw e;
      if (testErrorInvalidCache(env)) {
        throw new LarchError('BAD_CONFIG', `Remote ${o.remote} cached summary invalid and OSTREE_REPO_TEST_ERROR_INVALID_CACHE specified`, { remote: o.remote }, { cause: e });
      }
      fromCache = false;
      const r = await o.fetch('summary', null);
      summary = r.bytes;
      summaryLastModified = r.lastModified;
      if (summary !== null) await o.verify(summary, signatures);
    }
  }
  if (!fromCache && summary !== null && signatures !== null && root !== null && parses(summary)) {
    await saveFile(root, o.remote, '', summary, summaryLastModified, o.repo.fsyncEnabled);
    await saveFile(root, o.remote, '.sig', signatures, sigLastModified, o.repo.fsyncEnabled);
  }
  return { summary, signatures, fromCache };
}

function parses(summary: Uint8Array): boolean {
  try {
    readSummary(summary);
    return true;
  } catch {
    return false;
  }
}

/**
 * A Fetcher for one conditional GET at a time: `ifModifiedSince` becomes `If-Modified-Since`; a
 * 304 answer is handed on as an empty 200 and noted in `notModified`; `Last-Modified` of the
 * answer is noted in `lastModified`. Closing it does not close `inner`.
 */
export class ConditionalFetcher implements Fetcher {
  ifModifiedSince: number | null = null;
  notModified = false;
  lastModified = 0;
  constructor(private readonly inner: Fetcher) {}

  async get(url: string, opts: FetchOptions): Promise<FetchResponse> {
    this.notModified = false;
    this.lastModified = 0;
    const headers = { ...(opts.headers ?? {}) };
    if (this.ifModifiedSince !== null) headers['if-modified-since'] = new Date(this.ifModifiedSince * 1000).toUTCString();
    const res = await this.inner.get(url, { ...opts, headers });
    const lm = res.headers['last-modified'];
    const parsed = lm === undefined ? NaN : Date.parse(lm);
    if (Number.isFinite(parsed) && parsed > 0) this.lastModified = Math.floor(parsed / 1000);
    if (res.status !== 304) return res;
    await res.dump();
    this.notModified = true;
    return { status: 200, headers: { 'content-length': '0' }, body: (async function* () {})(), dump: async () => undefined };
  }
}

/**
 * Remove cache files of remotes the repo no longer has (`REMOTE` and `REMOTE.sig` whose REMOTE
 * is not in `remotes`), as `ostree prune` does (`_ostree_repo_prune_tmp`). Locking: none.
 */
export async function pruneSummaryCache(root: string | null, remotes: readonly string[]): Promise<void> {
  if (root === null) return;
  const dir = join(root, SUMMARY_CACHE_DIR);
  let names: string[];
  try {
    names = await fsp.readdir(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw new LarchError('IO_ERROR', `Reading ${dir}: ${(e as Error).message}`, { path: dir }, { cause: e });
  }
  const keep = new Set(remotes);
  for (const n of names) {
    const remote = n.length > 4 && n.endsWith('.sig') ? n.slice(0, -4) : n;
    if (!keep.has(remote)) await fsp.rm(join(dir, n), { force: true });
  }
}

/**
 * {@link SummaryFileFetch} over the pull's transfer layer (retries, limits, progress): the files
 * of the repo at `url`, each bounded by the metadata limit.
 */
export function transferSummaryFetch(ctx: TransferContext, url: string): SummaryFileFetch {
  const conditional = new ConditionalFetcher(ctx.fetcher);
  const source = new HttpSource({ ...ctx, fetcher: conditional }, url, url);
  return async (name, ifModifiedSince) => {
    conditional.ifModifiedSince = ifModifiedSince;
    const bytes = await source.file(name, ctx.limits.maxMetadataSize, true);
    return { bytes, notModified: conditional.notModified, lastModified: conditional.lastModified };
  };
}
