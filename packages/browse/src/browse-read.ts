/**
 * The read side of the console: refs, history, directory listings, diffs and static deltas of one
 * repository, as plain JSON-ready data (browse-types.ts). No HTTP here; browse-api.ts does routing,
 * authorization and error mapping.
 *
 * Everything is read-only and takes no repository lock: objects are immutable once published, refs
 * are replaced by rename, and delta directories appear whole (renamed into place), so a concurrent
 * publish can only make a listing slightly stale, never torn. Every listing has a limit, so a huge
 * directory or history costs a bounded amount of work per request; the limits are named constants
 * below and can be lowered (never raised past them) by the caller.
 *
 * Hostile content: every dirtree name is validated by core-store's `readTree` before it is joined
 * into a path, and user-supplied paths go through `splitSafePath` (no "", ".", "..", NUL).
 */
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import {
  diffCommits,
  LarchError,
  listDeltaDirs,
  log,
  readMeta,
  readTree,
  splitSafePath,
  sanitize,
  S_IFLNK,
  S_IFMT,
  traverseCommit,
  type Checksum,
  type Commit,
  type Repo,
} from '@larch/core-store';
import type { ChangeKind, CommitInfo, DeltaInfo, DeltasResponse, DiffResponse, LogResponse, RefInfo, RefsResponse, TreeEntry, TreeResponse } from './browse-types.js';

/** Most refs one listing returns. */
export const MAX_REFS = 5000;
/** Commits a history returns by default, and at most. */
export const DEFAULT_LOG_LIMIT = 50;
export const MAX_LOG_LIMIT = 1000;
/** Entries a directory listing returns by default, and at most (each file entry costs one object header read). */
export const DEFAULT_TREE_LIMIT = 1000;
export const MAX_TREE_LIMIT = 5000;
/** Most changes one diff returns. */
export const MAX_DIFF_CHANGES = 10_000;
/** Most static deltas one listing returns. */
export const MAX_DELTAS = 500;
/** How far back each ref's history is searched when naming the ref of a delta. */
export const DELTA_REF_DEPTH = 50;
/** Commit objects read in total, per delta listing, to name refs. */
export const DELTA_REF_MAX_READS = 2000;
/** Commit objects read in total to find which commits a ref-scoped caller may read. */
export const REACH_MAX_READS = 20_000;
/** Parallel object reads/stats per request. */
const IO_CONCURRENCY = 16;

/**
 * Which commits a caller limited to the head refs under a prefix may read: those in the histories
 * of those refs (at most REACH_MAX_READS commits in all, newest first per ref). A commit that no
 * such ref reaches is treated as absent, so a ref-scoped token cannot read other refs' trees by
 * checksum. The set is kept per repository and prefix while the heads under the prefix stay the
 * same (at most 64 sets), so a request costs one listing of the refs. Locking: none.
 */
export class ReachableCommits {
  private readonly sets = new Map<string, { heads: string; commits: Promise<Set<Checksum>> }>();

  /** True when `commit` is in the history of a head ref of `repo` whose name starts with `prefix`. */
  async has(repo: Repo, prefix: string, commit: Checksum): Promise<boolean> {
    const refs = await repo.listRefs({ kind: 'heads', prefix });
    const heads = [...refs].map(([r, c]) => `${r}\0${c}`).sort().join('\n');
    const key = `${repo.path}\0${prefix}`;
    let entry = this.sets.get(key);
    if (entry === undefined || entry.heads !== heads) {
      if (entry === undefined && this.sets.size >= 64) this.sets.delete(this.sets.keys().next().value!);
      entry = { heads, commits: reachable(repo, [...new Set(refs.values())]) };
      this.sets.set(key, entry);
      // A failed walk (a corrupt commit) is retried on the next request.
      entry.commits.catch(() => this.sets.get(key) === entry && this.sets.delete(key));
    }
    return (await entry.commits).has(commit);
  }
}

async function reachable(repo: Repo, heads: Checksum[]): Promise<Set<Checksum>> {
  const seen = new Set<Checksum>();
  for (const head of heads) {
    if (seen.has(head)) continue;
    try {
      for await (const e of log(repo, head)) {
        if (e.commit === null || seen.size >= REACH_MAX_READS) break;
        // Histories join: the rest of this one is already in the set.
        if (seen.has(e.checksum)) break;
        seen.add(e.checksum);
      }
    } catch (e) {
      if (!isMissing(e)) throw e;
    }
  }
  return seen;
}

/** ISO 8601 (UTC) of a commit timestamp; a value outside Date's range becomes "@<seconds>". */
export function isoTime(seconds: bigint): string {
  const ms = Number(seconds) * 1000;
  if (!Number.isFinite(ms) || Math.abs(ms) > 8.64e15) return `@${seconds}`;
  return new Date(ms).toISOString();
}

function versionOf(c: Commit): string | null {
  const v = c.metadata.find(([k]) => k === 'version')?.[1];
  return v && v.type === 's' && typeof v.value === 'string' ? v.value : null;
}

function commitInfo(checksum: Checksum, c: Commit): CommitInfo {
  return { checksum, parent: c.parent, timestamp: isoTime(c.timestamp), subject: c.subject, body: c.body, version: versionOf(c) };
}

function isMissing(e: unknown): boolean {
  return e instanceof LarchError && e.code === 'OBJECT_MISSING';
}

/** Run `fn` over `items` with at most `limit` in flight; results keep the input order. */
async function mapBounded<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

function clamp(n: number | undefined, dflt: number, max: number): number {
  if (n === undefined) return dflt;
  return Math.max(1, Math.min(max, Math.floor(n)));
}

/**
 * The head refs of `repo` (refs/heads, not remotes or mirrors) whose name starts with `prefix`,
 * sorted by name, at most MAX_REFS, each with its commit's timestamp, subject and version (null
 * when the commit is not in the repository). Locking: none.
 */
export async function listHeadRefs(repo: Repo, opts: { prefix?: string } = {}): Promise<RefsResponse> {
  const heads = await repo.listRefs({ kind: 'heads', ...(opts.prefix ? { prefix: opts.prefix } : {}) });
  const names = [...heads.keys()];
  const shown = names.slice(0, MAX_REFS);
  const refs = await mapBounded(shown, IO_CONCURRENCY, async (ref): Promise<RefInfo> => {
    const commit = heads.get(ref)!;
    try {
      const c = await repo.readCommit(commit);
      return { ref, commit, timestamp: isoTime(c.timestamp), subject: c.subject, version: versionOf(c) };
    } catch (e) {
      if (!isMissing(e)) throw e;
      return { ref, commit, timestamp: null, subject: null, version: null };
    }
  });
  return { refs, truncated: names.length > shown.length };
}

/** The checksum a head ref points at; REF_NOT_FOUND when there is no such head. Locking: none. */
export async function resolveHead(repo: Repo, ref: string): Promise<Checksum> {
  const heads = await repo.listRefs({ kind: 'heads', prefix: ref });
  const c = heads.get(ref);
  if (c === undefined) throw new LarchError('REF_NOT_FOUND', `Refspec '${sanitize(ref, 256).slice(1, -1)}' not found`, { ref });
  return c;
}

/**
 * The history of head `ref`, newest first, at most `limit` commits (default DEFAULT_LOG_LIMIT,
 * at most MAX_LOG_LIMIT). A parent missing from the repository ends the list with
 * `historyMissing: true`. Locking: none. Errors: REF_NOT_FOUND, OBJECT_MISSING (the ref's own
 * commit), OBJECT_CORRUPTED.
 */
export async function readLog(repo: Repo, ref: string, opts: { limit?: number } = {}): Promise<LogResponse> {
  const limit = clamp(opts.limit, DEFAULT_LOG_LIMIT, MAX_LOG_LIMIT);
  const head = await resolveHead(repo, ref);
  const commits: CommitInfo[] = [];
  let truncated = false;
  let historyMissing = false;
  for await (const entry of log(repo, head)) {
    if (entry.commit === null) {
      historyMissing = true;
      break;
    }
    if (commits.length === limit) {
      truncated = true;
      break;
    }
    commits.push(commitInfo(entry.checksum, entry.commit));
  }
  return { ref, commits, truncated, historyMissing };
}

/** One commit's metadata. Locking: none. Errors: OBJECT_MISSING, OBJECT_CORRUPTED. */
export async function readCommitInfo(repo: Repo, commit: Checksum): Promise<CommitInfo> {
  return commitInfo(commit, await repo.readCommit(commit));
}

function joinPath(dir: string, name: string): string {
  return dir === '/' ? `/${name}` : `${dir}/${name}`;
}

/**
 * The entries of directory `path` in `commit`: subdirectories first, then files and symlinks, each
 * group in dirtree (byte) order; `offset`/`limit` page through it (limit default DEFAULT_TREE_LIMIT,
 * at most MAX_TREE_LIMIT). Only the returned entries are read (one dirmeta or content header each).
 * Locking: none. Errors: INVALID_NAME for "..", "." or NUL in `path`; INVALID_ARGUMENT with
 * `data.reason` 'not-found' or 'not-a-directory'; OBJECT_MISSING / OBJECT_CORRUPTED from the
 * objects read.
 */
export async function listTree(repo: Repo, commit: Checksum, path: string, opts: { offset?: number; limit?: number } = {}): Promise<TreeResponse> {
  const limit = clamp(opts.limit, DEFAULT_TREE_LIMIT, MAX_TREE_LIMIT);
  const offset = Math.max(0, Math.floor(opts.offset ?? 0));
  const c = await repo.readCommit(commit);
  const parts = splitSafePath(path, { path });
  let tree = c.rootTree;
  let cur = '/';
  for (const name of parts) {
    const dt = await readTree(repo, tree);
    const d = dt.dirs.find((x) => x.name === name);
    cur = joinPath(cur, name);
    if (d === undefined) {
      const isFile = dt.files.some((f) => f.name === name);
      throw new LarchError(
        'INVALID_ARGUMENT',
        isFile ? `Not a directory: ${sanitize(cur)}` : `No such file or directory: ${sanitize(cur)}`,
        { path: cur, commit, reason: isFile ? 'not-a-directory' : 'not-found' },
      );
    }
    tree = d.treeChecksum;
  }
  const dt = await readTree(repo, tree);
  type Item = { kind: 'dir'; name: string; tree: Checksum; meta: Checksum } | { kind: 'file'; name: string; checksum: Checksum };
  const all: Item[] = [
    ...dt.dirs.map((d): Item => ({ kind: 'dir', name: d.name, tree: d.treeChecksum, meta: d.metaChecksum })),
    ...dt.files.map((f): Item => ({ kind: 'file', name: f.name, checksum: f.checksum })),
  ];
  const page = all.slice(offset, offset + limit);
  const entries = await mapBounded(page, IO_CONCURRENCY, async (it): Promise<TreeEntry> => {
    if (it.kind === 'dir') {
      const m = await readMeta(repo, it.meta);
      return { name: it.name, type: 'dir', mode: m.mode, uid: m.uid, gid: m.gid, size: null, checksum: it.tree, metaChecksum: it.meta, target: null };
    }
    const f = await repo.openFile(it.checksum);
    const link = (f.meta.mode & S_IFMT) === S_IFLNK;
    return {
      name: it.name,
      type: link ? 'symlink' : 'file',
      mode: f.meta.mode,
      uid: f.meta.uid,
      gid: f.meta.gid,
      size: link ? 0 : f.size,
      checksum: it.checksum,
      metaChecksum: null,
      target: link ? f.meta.symlinkTarget : null,
    };
  });
  return { commit, path: cur, entries, truncated: all.length > offset + page.length, total: all.length };
}

const KIND: Record<'A' | 'D' | 'M', ChangeKind> = { A: 'added', D: 'removed', M: 'modified' };

/**
 * What `commit` changed against its parent, in `ostree diff` order (modified, removed, added);
 * a commit without a parent lists its whole tree as added. At most MAX_DIFF_CHANGES changes
 * (then `truncated`). Locking: none. Errors: OBJECT_MISSING when the commit, or its named parent,
 * is not in the repository (`data.parent` set for the latter).
 */
export async function diffToParent(repo: Repo, commit: Checksum): Promise<DiffResponse> {
  const c = await repo.readCommit(commit);
  if (c.parent === null) {
    const changes: DiffResponse['changes'] = [];
    const truncated = await addAll(repo, c.rootTree, '/', changes);
    return { commit, parent: null, changes, truncated };
  }
  if (!(await repo.hasObject('commit', c.parent))) {
    throw new LarchError('OBJECT_MISSING', `Parent commit ${c.parent} of ${commit} is not in the repository`, { type: 'commit', checksum: c.parent, parent: c.parent, commit });
  }
  const diff = await diffCommits(repo, c.parent, commit);
  const shown = diff.slice(0, MAX_DIFF_CHANGES);
  return { commit, parent: c.parent, changes: shown.map((d) => ({ path: d.path, kind: KIND[d.kind] })), truncated: diff.length > shown.length };
}

/** Append every path under `tree` as added (files, then each directory followed by its content); true when cut at the limit. */
async function addAll(repo: Repo, tree: Checksum, dir: string, out: DiffResponse['changes']): Promise<boolean> {
  const dt = await readTree(repo, tree);
  for (const f of dt.files) {
    if (out.length >= MAX_DIFF_CHANGES) return true;
    out.push({ path: joinPath(dir, f.name), kind: 'added' });
  }
  for (const d of dt.dirs) {
    if (out.length >= MAX_DIFF_CHANGES) return true;
    const p = joinPath(dir, d.name);
    out.push({ path: p, kind: 'added' });
    if (await addAll(repo, d.treeChecksum, p, out)) return true;
  }
  return false;
}

/**
 * A cache of full commit sizes (commit checksum → bytes). Objects never change once written, so an
 * entry stays right as long as the commit is not pruned; the cache holds at most `max` entries and
 * drops the oldest first.
 */
export class FullSizeCache {
  private readonly map = new Map<string, number>();
  constructor(private readonly max = 1024) {}
  get(key: string): number | undefined {
    return this.map.get(key);
  }
  set(key: string, bytes: number): void {
    if (this.map.size >= this.max) this.map.delete(this.map.keys().next().value as string);
    this.map.set(key, bytes);
  }
}

/**
 * Bytes of every stored object reachable from `commit` alone (commit, commitmeta, dirtrees,
 * dirmetas, content): what a client fetches object by object when no delta applies. For an
 * archive repository these are the compressed `.filez` sizes. Null when an object is missing.
 * Locking: none; cost: one stat per object, IO_CONCURRENCY in flight.
 */
export async function fullCommitBytes(repo: Repo, commit: Checksum): Promise<number | null> {
  let objects;
  try {
    objects = [...(await traverseCommit(repo, commit, { depth: 0 })).values()];
  } catch (e) {
    if (isMissing(e)) return null;
    throw e;
  }
  let total = 0;
  let missing = false;
  await mapBounded(objects, IO_CONCURRENCY, async (o) => {
    let size: number;
    try {
      size = (await fsp.lstat(repo.objectPath(o.type, o.checksum))).size;
    } catch {
      missing = true;
      return;
    }
    total += size;
  });
  return missing ? null : total;
}

async function deltaDirSize(dir: string): Promise<{ bytes: number; parts: number }> {
  let bytes = 0;
  let parts = 0;
  for (const ent of await fsp.readdir(dir, { withFileTypes: true })) {
    if (!ent.isFile()) continue;
    bytes += (await fsp.lstat(join(dir, ent.name))).size;
    if (/^[0-9]+$/.test(ent.name)) parts++;
  }
  return { bytes, parts };
}

/**
 * Every static delta of `repo` with its size on disk against the full size of its target commit,
 * and the ref whose recent history (DELTA_REF_DEPTH commits) holds the target. Sorted by ref, then
 * newest target first, from-scratch deltas before FROM-TO ones. At most MAX_DELTAS. Locking: none.
 */
export async function listStaticDeltas(repo: Repo, opts: { cache?: FullSizeCache; refPrefix?: string } = {}): Promise<DeltasResponse> {
  const dirs = await listDeltaDirs(repo);
  // Name each target after the first ref (by name) whose recent history holds it.
  const position = new Map<Checksum, { ref: string; index: number }>();
  const heads = await repo.listRefs({ kind: 'heads', ...(opts.refPrefix ? { prefix: opts.refPrefix } : {}) });
  let reads = 0;
  for (const [ref, head] of heads) {
    let index = 0;
    try {
      for await (const e of log(repo, head)) {
        if (e.commit === null || index >= DELTA_REF_DEPTH || reads >= DELTA_REF_MAX_READS) break;
        reads++;
        if (!position.has(e.checksum)) position.set(e.checksum, { ref, index });
        index++;
      }
    } catch (e) {
      if (!isMissing(e)) throw e;
    }
  }
  // A ref-scoped caller sees only the deltas of its refs.
  const visible = opts.refPrefix ? dirs.filter((d) => position.has(d.to)) : dirs;
  visible.sort((a, b) => {
    const pa = position.get(a.to);
    const pb = position.get(b.to);
    if (pa && pb && pa.ref !== pb.ref) return pa.ref < pb.ref ? -1 : 1;
    if (pa && pb && pa.index !== pb.index) return pa.index - pb.index;
    if (!pa !== !pb) return pa ? -1 : 1;
    if (a.to !== b.to) return a.to < b.to ? -1 : 1;
    if ((a.from === null) !== (b.from === null)) return a.from === null ? -1 : 1;
    return (a.from ?? '') < (b.from ?? '') ? -1 : 1;
  });
  const shown = visible.slice(0, MAX_DELTAS);
  const cache = opts.cache;
  const deltas = await mapBounded(shown, 4, async (d): Promise<DeltaInfo> => {
    const size = await deltaDirSize(d.dir);
    const key = `${repo.path}\0${d.to}`;
    let full = cache?.get(key) ?? null;
    if (full === null) {
      full = await fullCommitBytes(repo, d.to);
      if (full !== null) cache?.set(key, full);
    }
    return { from: d.from, to: d.to, ref: position.get(d.to)?.ref ?? null, deltaBytes: size.bytes, fullBytes: full, parts: size.parts };
  });
  return { deltas, truncated: visible.length > shown.length };
}
