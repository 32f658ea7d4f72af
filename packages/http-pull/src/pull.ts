/**
 * `pull`: fetch commits from a remote into a repository, as `ostree pull` 2022.7 does over
 * HTTP (spec pull-and-signing.md 2, 8), object by object (static deltas are not used; every
 * server that publishes deltas also has the loose objects, section 3).
 *
 * Order: summary.sig (only when summary verification is required or with `mirror`; OSTree always
 * asks for it), summary (both optional unless summary verification is required), the
 * remote config when the summary carries the mode and tombstone keys (OSTree's quirk 2.5; the
 * remote must be an archive repo), ref resolution from the summary or `refs/heads/REF`, then the
 * commits and their trees (pull-engine.ts; each commit's signatures and, when asked for, its
 * timestamp against the local ref are checked before it is stored or its tree fetched), then
 * refs: `refs/remotes/REMOTE/REF`, or with `mirror` `refs/heads/REF` plus the summary files
 * copied byte for byte.
 *
 * Locking: the shared repo lock for the whole transaction (OSTree takes the same for pull).
 * Crash guarantee: refs move only after every object of their commit is published and the
 * commit's partial marker is gone; an interrupted pull leaves verified objects in place and the
 * next run fetches only what is missing.
 */
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import {
  KeyFile,
  LarchError,
  isChecksum,
  parseCommit,
  readSummary,
  validateRefName,
  type Checksum,
  type Repo,
  type Summary,
} from '@larch/core-store';
import { fetchError } from './errors.js';
import { FileFetcher } from './fetcher-file.js';
import { UndiciFetcher, type UndiciFetcherOptions } from './fetcher-undici.js';
import { remoteTransport } from './fetcher-tls.js';
import { joinUrl, type FetchOptions, type FetchResponse, type Fetcher } from './fetcher.js';
import { resolveLimits, type PullLimits } from './limits.js';
import { ProgressTracker, type PullProgress } from './progress.js';
import { PullEngine, type CommitTarget, type EngineResult } from './pull-engine.js';
import { HttpSource } from './pull-source.js';
import { PrioritySemaphore, TaskGroup, abortedError, type TransferContext } from './pull-transfer.js';
import { getRemote } from './remote-config.js';
import { checkNotDowngrade, compareTimestamps } from './timestamp-check.js';
import { fetchSummaryWithCache, transferSummaryFetch } from './summary-cache.js';
import { withRemoteCookies } from './remote-cookies.js';
import type { DeltaPullResult } from './pull-delta.js';
import { pullDeltas, summaryDeltaIndex } from './pull-static-deltas.js';
import { deltaDryRun, type DeltaDryRun } from './pull-dry-run.js';
import { assertVerifierAvailable, verificationPolicy, type PullVerifier } from './verifier.js';

/** Options of {@link pull}. */
export interface PullOptions {
  repo: Repo;
  /** A configured remote (`[remote "NAME"]`). */
  remote: string;
  /** Ref names, or commit checksums, to pull. Default: the remote's `branches`, or every ref with `mirror`. */
  refs?: string[];
  /** Commit checksums to pull without writing a ref. */
  commits?: string[];
  /**
   * `ostree pull REMOTE REF@CHECKSUM`: pull this commit for the ref (which must be in `refs`) and
   * point the ref at it, whatever the remote's ref says. As in OSTree the ref is not looked up on
   * the remote and the timestamp check applies only with `timestampCheck` (this is how a pinned
   * or older commit is pulled); the commit's ref bindings, if any, must still name the ref.
   */
  overrideCommits?: Record<string, string>;
  /**
   * `ostree pull -T`: refuse to move a ref to a commit older than the one the local ref points
   * to (`Upgrade target revision … is chronologically older than current revision …`), for every
   * ref pulled, `overrideCommits` included. Default false, as ostree's pull: without it a ref
   * follows the remote back to an older commit (a server-side revert reaches mirrors).
   */
  timestampCheck?: boolean;
  /**
   * `ostree pull --timestamp-check-from-rev=REV`: every commit pulled must be no older than REV
   * (a checksum, or a rev of the local repository, resolved before anything is fetched), whatever
   * the refs point to now.
   */
  timestampCheckFromRev?: string;
  /** Base URL to use instead of the remote's `url` for this pull (`--url`); content follows unless `contenturl` is set. */
  url?: string;
  /** Parents to follow: 0 (default), N, or -1 for the whole history. */
  depth?: number;
  /** Write `refs/heads/REF` instead of `refs/remotes/REMOTE/REF`, and copy summary + summary.sig. */
  mirror?: boolean;
  /** Fetch commit objects (and detached metadata) only; the commits stay partial. */
  commitMetadataOnly?: boolean;
  /** Fetch only this directory of the tree (e.g. `/usr/share`), or these paths; the commit stays partial. */
  subpath?: string | string[];
  /** Transport; default: undici for http(s), the file fetcher for file:// URLs. */
  fetcher?: Fetcher;
  /**
   * Keep the remote's summary in this cache dir (summary-cache.ts): `ostree pull` uses
   * `REPO/tmp/cache` (`summaryCacheRoot`), or `--cache-dir`. With a cache, summary.sig is always
   * fetched, as OSTree does; without one (the default) only when it is verified or mirrored.
   */
  cacheDir?: string;
  /** Signature checks (from the signing package); required when the remote asks for verification. */
  verifier?: PullVerifier;
  /**
   * The device paths' switch (`admin upgrade --allow-downgrade`, the agent): `false` applies the
   * timestamp check to every ref pulled except `overrideCommits` (the caller checks those against
   * what it runs), `true` turns the ref check off even with `timestampCheck`. Not given: the check
   * follows `timestampCheck` alone.
   */
  allowDowngrade?: boolean;
  /**
   * Never use static deltas (`ostree pull --disable-static-deltas`). By default a target not yet
   * complete locally is pulled through the remote's delta from the commit its local ref points
   * to (or its from-scratch delta when there is none), when the summary lists one; any delta
   * failure falls back to object-by-object.
   */
  disableStaticDeltas?: boolean;
  /**
   * Only static deltas (`ostree pull --require-static-deltas`): a target the summary offers no
   * delta for fails the pull (`Static deltas required, but none found for REF to CHECKSUM`), and
   * so does a delta that cannot be applied.
   */
  requireStaticDeltas?: boolean;
  /**
   * `ostree pull --dry-run` (with `requireStaticDeltas` only, as in ostree): fetch the summary and
   * the deltas' superblocks, count what the deltas would download (`PullResult.dryRun`), and
   * write nothing.
   */
  dryRun?: boolean;
  /** Skip the commits' ref and collection binding checks (`ostree pull --disable-verify-bindings`). */
  disableVerifyBindings?: boolean;
  /** Refuse regular files with mode bits outside 0775, as `ostree pull --bareuseronly-files`. */
  bareuseronlyFiles?: boolean;
  /**
   * `ostree pull --http-trusted`: with `mirror` into an archive repository (and without
   * `bareuseronlyFiles`), content objects are stored as received without checking them against
   * their names, as ostree copies them. Metadata is still verified, and so is everything pulled
   * into another mode or without `mirror`.
   */
  httpTrusted?: boolean;
  /** Extra headers sent with every request of the pull (`ostree pull --http-header=NAME=VALUE`). */
  httpHeaders?: Array<[string, string]>;
  signal?: AbortSignal;
  onProgress?: (p: PullProgress) => void;
  limits?: Partial<PullLimits>;
}

/** One ref the pull wrote (or found unchanged). */
export interface PulledRef {
  /** The remote's ref name. */
  ref: string;
  /** The local refspec written (`REMOTE:REF`, or `REF` with mirror). */
  refspec: string;
  checksum: Checksum;
  previous: Checksum | null;
}

/** What a pull did: refs written, commits pulled, and the final progress snapshot. */
export interface PullResult {
  refs: PulledRef[];
  /** Every commit pulled (targets and, with depth, their parents). */
  commits: Checksum[];
  /** Commits left partial on purpose (commit-metadata-only, subpath). */
  partialCommits: Checksum[];
  progress: PullProgress;
  /** Static deltas applied (network pulls only; a delta abandoned for objects is not listed). */
  deltas?: DeltaPullResult[];
  /** With `dryRun`: what the deltas would download (nothing was written). */
  dryRun?: DeltaDryRun;
}

const optionsSchema = z.object({
  remote: z.string().min(1),
  refs: z.array(z.string().min(1)).optional(),
  commits: z.array(z.string().regex(/^[0-9a-f]{64}$/, { message: 'Invalid checksum' })).optional(),
  overrideCommits: z.record(z.string(), z.string().regex(/^[0-9a-f]{64}$/, { message: 'Invalid checksum' })).optional(),
  url: z.string().min(1).optional(),
  timestampCheck: z.boolean().optional(),
  timestampCheckFromRev: z.string().min(1).optional(),
  depth: z.number().int().min(-1).optional(),
  mirror: z.boolean().optional(),
  commitMetadataOnly: z.boolean().optional(),
  subpath: z.union([z.string(), z.array(z.string())]).optional(),
  allowDowngrade: z.boolean().optional(),
  disableStaticDeltas: z.boolean().optional(),
  requireStaticDeltas: z.boolean().optional(),
  dryRun: z.boolean().optional(),
  disableVerifyBindings: z.boolean().optional(),
  bareuseronlyFiles: z.boolean().optional(),
  httpTrusted: z.boolean().optional(),
  httpHeaders: z.array(z.tuple([z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, { message: 'Invalid header name' }), z.string().regex(/^[^\r\n\0]*$/, { message: 'Invalid header value' })])).optional(),
});

/** Validate the caller's options (TypeError for programming mistakes, as STYLE.md 4 asks). */
function checkOptions(opts: PullOptions): void {
  const r = optionsSchema.safeParse(opts);
  if (!r.success) {
    const i = r.error.issues[0];
    throw new TypeError(`Invalid pull option ${i?.path.join('.') ?? ''}: ${i?.message ?? 'invalid'}`);
  }
  if (opts.dryRun && !opts.requireStaticDeltas) throw new LarchError('INVALID_ARGUMENT', '--dry-run requires --require-static-deltas', {});
}

/** Split `--subpath` into validated components; `/` or empty means the whole tree. */
export function parseSubpath(subpath: string | undefined): string[] | null {
  if (subpath === undefined) return null;
  const parts = subpath.split('/').filter((p) => p.length > 0);
  for (const p of parts) {
    if (p === '.' || p === '..') throw new LarchError('INVALID_ARGUMENT', `Invalid subpath ${subpath}`, { subpath });
  }
  return parts.length === 0 ? null : parts;
}

/** Several `--subpath`s, as {@link parseSubpath} each; null (the whole tree) when any is `/`. */
function parseSubpaths(subpath: string | string[] | undefined): string[][] | null {
  if (subpath === undefined) return null;
  const paths = (Array.isArray(subpath) ? subpath : [subpath]).map(parseSubpath);
  return paths.length === 0 || paths.some((p) => p === null) ? null : (paths as string[][]);
}

/**
 * Dispatch by URL scheme: file:// to {@link FileFetcher}, the rest to one lazily created
 * {@link UndiciFetcher} made with `httpOptions` (a remote's proxy and TLS keys).
 */
export class DefaultFetcher implements Fetcher {
  private http: UndiciFetcher | null = null;
  private readonly file = new FileFetcher();
  constructor(private readonly httpOptions: UndiciFetcherOptions = {}) {}
  get(url: string, opts: FetchOptions): Promise<FetchResponse> {
    if (url.startsWith('file:')) return this.file.get(url, opts);
    this.http ??= new UndiciFetcher(this.httpOptions);
    return this.http.get(url, opts);
  }
  async close(): Promise<void> {
    await this.http?.close();
  }
}

const ARCHIVE_MODES = new Set(['archive-z2', 'archive']);

function summaryMetaString(s: Summary, key: string): string | null {
  const v = s.metadata.find(([k]) => k === key)?.[1];
  return v && v.type === 's' ? (v.value as string) : null;
}

/**
 * A remote `refs/heads/REF` file's checksum, or ostree's error: `Fetching checksum for ref
 * (COLLECTION|(empty), REF): Invalid rev …`, the text cut to 64 bytes with newlines as spaces
 * (an HTML page served in place of the ref is not dumped whole).
 */
function parseRefFile(bytes: Uint8Array, ref: string, collectionId: string | null): Checksum {
  const text = Buffer.from(bytes).toString('utf8').trimEnd();
  if (isChecksum(text)) return text;
  const raw = Buffer.from(text, 'utf8');
  let why: string;
  if (raw.length !== 64) why = `Invalid rev ${raw.subarray(0, 64).toString('utf8').replace(/\n/g, ' ')}`;
  else why = `Invalid character '${raw.find((c) => !((c >= 48 && c <= 57) || (c >= 97 && c <= 102)))}' in rev '${text}'`;
  throw new LarchError('INVALID_REF', `Fetching checksum for ref (${collectionId ?? '(empty)'}, ${ref}): ${why}`, { ref });
}

async function writeRootFile(repo: Repo, name: string, bytes: Uint8Array | null): Promise<void> {
  const dest = join(repo.path, name);
  if (bytes === null) {
    await fsp.rm(dest, { force: true });
    return;
  }
  const tmp = join(repo.tmpPath, `larch-${name}-${randomBytes(6).toString('hex')}`);
  await fsp.writeFile(tmp, bytes, { mode: 0o644 });
  if (repo.fsyncEnabled) {
    const fh = await fsp.open(tmp, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  }
  await fsp.rename(tmp, dest);
  await repo.fsyncDir(repo.path);
}

/**
 * Pull refs or commits from a configured remote. See the top of this file for the order of
 * requests, the lock and the crash guarantee. Limits: {@link PullLimits} (metadata ≤ 10 MiB,
 * commit ≤ the summary's commit_size, 5 retries, stall and request timeouts).
 *
 * Throws LarchError: REF_NOT_FOUND (unknown remote or ref), BAD_CONFIG (verification required
 * without a verifier, bad remote config), INVALID_ARGUMENT with `data.reason = 'downgrade'` (with
 * `timestampCheck`, `timestampCheckFromRev` or `allowDowngrade: false`, a commit older than the
 * one it is checked against), REF_NOT_FOUND for a `timestampCheckFromRev` that does not resolve,
 * OBJECT_MISSING when its commit is not in the repository, whatever the verifier
 * throws for bad signatures (before the commit is stored; no ref moves), BAD_MODE (remote is
 * not an archive repo), IO_ERROR
 * (HTTP status, network, timeout, after retries), OBJECT_MISSING (404 on a required object),
 * OBJECT_CORRUPTED (checksum or format), LIMIT_EXCEEDED, ABORTED. Fetch errors carry
 * `data.object` and `data.url`.
 */
export async function pull(opts: PullOptions): Promise<PullResult> {
  checkOptions(opts);
  const { repo } = opts;
  const configured = getRemote(repo, opts.remote);
  if (opts.url !== undefined && !URL.canParse(opts.url)) {
    throw new LarchError('INVALID_ARGUMENT', `Invalid URL ${opts.url}: URI is not absolute, and no base URI was provided`, { url: opts.url });
  }
  const cfg =
    opts.url === undefined
      ? configured
      : { ...configured, url: opts.url, contentUrl: configured.options['contenturl'] !== undefined ? configured.contentUrl : opts.url };
  // As ostree: deltas are never required into an archive repository.
  if (opts.requireStaticDeltas && repo.mode === 'archive') throw new LarchError('INVALID_ARGUMENT', "Can't use static deltas in an archive repo", { remote: opts.remote });
  const policy = verificationPolicy(cfg);
  assertVerifierAvailable(opts.remote, policy, opts.verifier);
  const subpath = parseSubpaths(opts.subpath);
  for (const r of opts.refs ?? []) if (!isChecksum(r)) validateRefName(r);
  const limits = resolveLimits(opts.limits);
  const ownFetcher = opts.fetcher === undefined;
  // As ostree, every request carries the remote's cookie jar (`remote add-cookie`).
  const fetcher = await withRemoteCookies(opts.fetcher ?? new DefaultFetcher({ transport: remoteTransport(cfg) }), repo.path, opts.remote);
  const progress = new ProgressTracker(opts.onProgress);
  const group = new TaskGroup(opts.signal);
  const ctx: TransferContext = {
    fetcher,
    limits,
    progress,
    semaphore: new PrioritySemaphore(limits.concurrency),
    signal: group.signal,
    ...(opts.httpHeaders !== undefined && opts.httpHeaders.length > 0 ? { headers: Object.fromEntries(opts.httpHeaders) } : {}),
  };
  const source = new HttpSource(ctx, cfg.url, cfg.contentUrl);
  const verifyCtx = { remote: opts.remote, config: cfg };
  try {
    return await repo.withLock(
      'shared',
      async () => {
        // 1. summary.sig, then summary, through the summary cache (summary-cache.ts; without a
        // cache summary.sig is fetched only when it is verified or mirrored). Skipped, as in
        // ostree, when nothing needs it (see needsSummary).
        const wantSummary = await needsSummary(opts, source);
        const { summary: summaryBytes, signatures: sig } = wantSummary
          ? await fetchSummaryWithCache({
              repo,
              remote: opts.remote,
              cacheRoot: opts.cacheDir === undefined || cfg.url.startsWith('file:') ? null : opts.cacheDir,
              fetch: transferSummaryFetch(ctx, cfg.url),
              wantSignatures: policy.summary.length > 0 || Boolean(opts.mirror),
              retryStaleCache: true,
              ...(policy.summary.length > 0 ? { verify: (s: Uint8Array, g: Uint8Array) => opts.verifier!.verifySummary(s, g, { ...verifyCtx, required: policy.summary }) } : {}),
            })
          : { summary: null, signatures: null };
        if (wantSummary && policy.summary.length > 0 && (summaryBytes === null || sig === null)) {
          if (summaryBytes === null) {
            // OSTree's wording for each policy key.
            const msg = policy.summary.includes('gpg-verify-summary')
              ? 'GPG verification enabled, but no summary found (use gpg-verify-summary=false in remote config to disable)'
              : 'Signatures verification enabled, but no summary.sig found (use sign-verify-summary=false in remote config to disable)';
            throw new LarchError('BAD_CONFIG', msg, { remote: opts.remote, reason: 'verification' });
          }
          await opts.verifier!.verifySummary(summaryBytes, sig, { ...verifyCtx, required: policy.summary });
        }
        let summary: Summary | null = null;
        if (summaryBytes !== null) {
          try {
            summary = readSummary(summaryBytes);
          } catch (e) {
            throw fetchError('OBJECT_CORRUPTED', 'corrupted', 'summary', joinUrl(cfg.url, 'summary'), (e as Error).message, {}, e);
          }
        }
        // 2. The remote's mode (config is fetched when the summary carries mode + tombstone keys).
        if (summary !== null) {
          let mode = summaryMetaString(summary, 'ostree.summary.mode');
          const hasTombstoneKey = summary.metadata.some(([k]) => k === 'ostree.summary.tombstone-commits');
          if (mode !== null && hasTombstoneKey) {
            const remoteConfig = await source.file('config', 1024 * 1024, true);
            if (remoteConfig !== null) {
              const kf = KeyFile.parse(Buffer.from(remoteConfig).toString('utf8'), `${cfg.url} config`);
              mode = kf.get('core', 'mode') ?? mode;
            }
          }
          if (mode !== null && !ARCHIVE_MODES.has(mode.trim())) {
            throw new LarchError('BAD_MODE', `Can't pull from archives with mode "${mode}"`, { remote: opts.remote, mode });
          }
        }
        // 3. What to pull.
        progress.phase = 'commits';
        const targets = await resolveTargets(opts, cfg.branches, summary, source, limits, cfg.collectionId);
        progress.objectsBegin();
        if (opts.dryRun) {
          const dryRun = await deltaDryRun({ repo, remote: opts.remote, url: cfg.contentUrl, ctx, index: summaryDeltaIndex(summary), targets, refspecOf: (ref) => (opts.mirror ? ref : `${opts.remote}:${ref}`) });
          progress.phase = 'done';
          return { refs: [], commits: [], partialCommits: [], progress: progress.snapshot(), dryRun };
        }
        // 4. Commits and trees. Each commit is checked before it is stored and before any of its
        // tree is fetched: signatures first (as OSTree does when the commit arrives), then the
        // timestamp checks asked for: for the commits refs will point to, against the local ref
        // (downgrade check), and for every commit, against `timestampCheckFromRev`.
        const refspecOf = (ref: string): string => (opts.mirror ? ref : `${opts.remote}:${ref}`);
        const refsByCommit = new Map<Checksum, string[]>();
        const checkRefs = opts.allowDowngrade === undefined ? Boolean(opts.timestampCheck) : !opts.allowDowngrade;
        const overridden = new Set(opts.timestampCheck ? [] : Object.keys(opts.overrideCommits ?? {}));
        if (checkRefs) for (const t of targets) if (t.ref !== null && !overridden.has(t.ref)) refsByCommit.set(t.checksum, [...(refsByCommit.get(t.checksum) ?? []), t.ref]);
        const fromRev = opts.timestampCheckFromRev === undefined ? null : await timestampFromRev(repo, opts.timestampCheckFromRev);
        const checkDowngrade = refsByCommit.size > 0 || fromRev !== null;
        const verifyCommit = async (checksum: Checksum, bytes: Uint8Array, meta: Uint8Array | null): Promise<void> => {
          if (policy.commit.length > 0) await opts.verifier!.verifyCommit(bytes, meta, { ...verifyCtx, required: policy.commit, checksum });
          const refs = refsByCommit.get(checksum);
          if (refs === undefined && fromRev === null) return;
          const commit = parseCommit(bytes);
          for (const ref of refs ?? []) await checkNotDowngrade(repo, refspecOf(ref), checksum, commit);
          if (fromRev !== null) compareTimestamps(fromRev.checksum, fromRev.timestamp, checksum, commit.timestamp, { from: opts.timestampCheckFromRev });
        };
        const engineOptions = {
          repo,
          source,
          limits,
          progress,
          depth: opts.depth ?? 0,
          commitMetadataOnly: Boolean(opts.commitMetadataOnly),
          subpath,
          collectionId: cfg.collectionId,
          disableVerifyBindings: Boolean(opts.disableVerifyBindings),
          bareuseronlyFiles: Boolean(opts.bareuseronlyFiles),
          trustedContent: Boolean(opts.httpTrusted && opts.mirror && repo.mode === 'archive' && !opts.bareuseronlyFiles),
          ...(policy.commit.length > 0 || checkDowngrade ? { verifyCommit } : {}),
        };
        // 4a. Static deltas, where offered (the object walk below completes and checks them).
        const deltas =
          opts.disableStaticDeltas || opts.commitMetadataOnly || subpath !== null
            ? []
            : await pullDeltas({ repo, remote: opts.remote, url: cfg.contentUrl, fetcher, limits, summary, targets, refspecOf, progress, signal: group.signal, require: Boolean(opts.requireStaticDeltas), metadataRun: (t) => new PullEngine({ ...engineOptions, depth: 0, commitMetadataOnly: true, group: new TaskGroup(group.signal) }).run(t) });
        progress.phase = 'objects';
        const engine = new PullEngine({ ...engineOptions, group });
        const done = await engine.run(targets);
        // 5. Refs, last.
        if (opts.signal?.aborted) throw abortedError(opts.signal);
        const refs = await moveRefs(repo, targets, refspecOf);
        if (opts.mirror && summaryBytes !== null && (opts.refs ?? []).length === 0 && (opts.commits ?? []).length === 0) {
          await writeRootFile(repo, 'summary', summaryBytes);
          await writeRootFile(repo, 'summary.sig', sig);
        }
        return { ...pullResult(refs, done, targets, progress), deltas };
      },
      opts.signal ? { signal: opts.signal } : {},
    );
  } finally {
    if (ownFetcher) await fetcher.close?.();
  }
}

/**
 * Whether the pull needs the remote's summary, as ostree 2022.7 decides: always for a mirror of
 * every ref and whenever a ref must be resolved; when every ref is pinned (`overrideCommits`) or
 * only commits are asked for, only to find static deltas, that is unless they are disabled or
 * the remote's config says `indexed-deltas=true` (Larch does not read delta indexes: such a pull
 * goes object by object). Without the summary its signatures are not checked either: the
 * commits are named by checksum, and their own signatures are still verified.
 */
async function needsSummary(opts: PullOptions, source: HttpSource): Promise<boolean> {
  const refs = opts.refs ?? [];
  if (refs.length === 0 && (opts.commits ?? []).length === 0) return true;
  if (refs.some((r) => !isChecksum(r) && opts.overrideCommits?.[r] === undefined)) return true;
  if (opts.disableStaticDeltas) return false;
  if (opts.requireStaticDeltas || opts.dryRun) return true;
  const config = await source.file('config', 1024 * 1024, true);
  if (config === null) return true;
  return !KeyFile.parse(Buffer.from(config).toString('utf8'), `${opts.remote} config`).getBoolean('core', 'indexed-deltas', false);
}

/**
 * `timestampCheckFromRev`: a checksum as given, or a rev of the local repository; its commit must
 * be there (OSTree's `Reading REV for timestamp-check-from-rev: …`).
 */
async function timestampFromRev(repo: Repo, rev: string): Promise<{ checksum: Checksum; timestamp: bigint }> {
  const checksum = isChecksum(rev) ? rev : await repo.revParse(rev);
  try {
    return { checksum, timestamp: (await repo.readCommit(checksum)).timestamp };
  } catch (e) {
    if (e instanceof LarchError) throw new LarchError(e.code, `Reading ${checksum} for timestamp-check-from-rev: ${e.message}`, { ...e.data, rev });
    throw e;
  }
}

async function resolveTargets(opts: PullOptions, branches: string[], summary: Summary | null, source: HttpSource, limits: PullLimits, collectionId: string | null): Promise<CommitTarget[]> {
  const targets: CommitTarget[] = [];
  let names = opts.refs ?? [];
  const commits = opts.commits ?? [];
  if (names.length === 0 && commits.length === 0) {
    if (opts.mirror) {
      if (summary === null) {
        throw new LarchError('OBJECT_MISSING', 'Fetching all refs was requested in mirror mode, but remote repository does not have a summary', { remote: opts.remote });
      }
      names = summary.refs.map((r) => r.name);
    } else {
      names = branches;
      if (names.length === 0) throw new LarchError('INVALID_ARGUMENT', `No refs specified and no branches configured for remote ${opts.remote}`, { remote: opts.remote });
    }
  }
  const seen = new Set<string>();
  for (const name of names) {
    if (seen.has(name)) continue;
    seen.add(name);
    if (isChecksum(name)) {
      targets.push({ checksum: name, ref: null, maxSize: limits.maxMetadataSize });
      continue;
    }
    const pinned = opts.overrideCommits?.[name];
    if (pinned !== undefined) {
      targets.push({ checksum: pinned, ref: name, maxSize: limits.maxMetadataSize });
      continue;
    }
    if (summary !== null) {
      const entry = summary.refs.find((r) => r.name === name);
      if (entry === undefined) throw new LarchError('REF_NOT_FOUND', `No such branch '${name}' in repository summary`, { remote: opts.remote, ref: name });
      targets.push({ checksum: entry.checksum, ref: name, maxSize: Math.min(entry.size, limits.maxMetadataSize) });
    } else {
      const rel = `refs/heads/${name}`;
      const bytes = (await source.file(rel, 4096, false))!;
      targets.push({ checksum: parseRefFile(bytes, name, collectionId), ref: name, maxSize: limits.maxMetadataSize });
    }
  }
  for (const c of commits) targets.push({ checksum: c, ref: null, maxSize: limits.maxMetadataSize });
  return targets;
}

/**
 * Point each target's ref (`refspecOf(ref)`) at its commit, writing only refs that change. Called
 * last, once every object of every target is published.
 */
export async function moveRefs(repo: Repo, targets: CommitTarget[], refspecOf: (ref: string) => string): Promise<PulledRef[]> {
  const refs: PulledRef[] = [];
  for (const t of targets) {
    if (t.ref === null) continue;
    const refspec = refspecOf(t.ref);
    const previous = await repo.resolveRef(refspec).catch(() => null);
    if (previous !== t.checksum) await repo.setRef(refspec, t.checksum);
    refs.push({ ref: t.ref, refspec, checksum: t.checksum, previous });
  }
  return refs;
}

/** Mark the pull done and assemble its result. */
export function pullResult(refs: PulledRef[], done: EngineResult, targets: CommitTarget[], progress: ProgressTracker): PullResult {
  progress.phase = 'done';
  progress.emit();
  return {
    refs,
    commits: [...new Set([...done.complete, ...done.partial, ...targets.map((t) => t.checksum)])],
    partialCommits: done.partial,
    progress: progress.snapshot(),
  };
}
