/**
 * prune: delete objects no root reaches (spec/repo-format.md section 8), as `ostree prune` 2022.7.
 *
 * Roots: without `refsOnly` every commit object is a root (so a plain prune after deleting a
 * ref deletes nothing until the commit goes); with `refsOnly` the roots are the commits of all
 * refs (heads, remotes, collection refs), each walked to `depth` parents (-1 = all).
 * `keepYoungerThan` first deletes every commit older than the cutoff that no ref points at;
 * `deleteCommit` first deletes one commit (refused when a ref points at it) and turns on
 * `core.tombstone-commits`, as ostree does.
 *
 * Crash safety: a commit is marked partial (`state/C.commitpartial`) *before* it or anything it
 * reaches is deleted, so a crash never leaves a "complete" commit with missing objects; its
 * detached metadata goes with it, then the tombstone is written (when enabled) and the partial
 * marker removed. Content and tree objects are deleted only after the reachable set is complete.
 * Static deltas whose target commit no longer exists are removed at the end, and so is what
 * crashed writers left in `tmp/`: every staging directory whose lock nobody holds (of any boot,
 * unlike a commit's cleanup, which keeps this boot's for reuse), and every other entry older
 * than `core.tmp-expiry-secs` (repo-staging.ts).
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { LarchError } from './errors.js';
import { parseCommit, serializeTombstone } from './objects/index.js';
import { objectKey, traverseCommit, type ObjectRef } from './repo-traverse.js';
import type { Repo } from './repo.js';
import type { Checksum, ObjectType } from './types.js';
import { DELTAS_DIR, parseDeltaDirName } from './layout.js';

export interface PruneOptions {
  /** Roots are the refs only (not every commit). */
  refsOnly?: boolean;
  /** Parent commits kept per root (-1 = all, the default). */
  depth?: number;
  /** Delete commits older than this (epoch seconds) unless a ref points at them. */
  keepYoungerThan?: bigint;
  /** Report only; delete nothing. */
  noPrune?: boolean;
  /** Delete this commit first (refused when a ref points at it). */
  deleteCommit?: Checksum;
  /** With `deleteCommit`: delete only the static deltas that lead to it, not the commit. */
  staticDeltasOnly?: boolean;
  /** Refs walked to their own depth (BRANCH=DEPTH, -1 = all), whatever `depth` and `keepYoungerThan` say. */
  retainBranchDepth?: ReadonlyMap<string, number>;
  /** Prune only these refs: every other ref is kept whole (as `retainBranchDepth` REF=-1). */
  onlyBranches?: readonly string[];
  /** Walk and delete commit objects only; trees and content stay. */
  commitOnly?: boolean;
  onProgress?: (p: { phase: 'reachability' | 'delete'; done: number; total: number }) => void;
}

export interface PruneResult {
  /** Objects considered ("Total objects: N"; commit objects only with `commitOnly`). */
  total: number;
  /** Objects deleted (or that would be, with noPrune). */
  deleted: number;
  /** Bytes freed (or that would be). */
  bytesFreed: number;
}

const PRUNED_TYPES: ReadonlySet<ObjectType> = new Set(['file', 'dirtree', 'dirmeta', 'commit']);

/**
 * Prune the repository. See the file comment.
 *
 * Locking: exclusive for the whole operation (no commit or pull can run meanwhile).
 * Errors: EXISTS when `deleteCommit` is referenced by a ref; OBJECT_MISSING when `deleteCommit`
 * does not exist or a non-partial root cannot be walked (nothing is deleted then).
 * Limits: the reachable set is held in memory (one entry per reachable object).
 */
export async function prune(repo: Repo, opts: PruneOptions = {}): Promise<PruneResult> {
  return repo.withLock('exclusive', () => runPrune(repo, opts));
}

async function sizeOf(repo: Repo, type: ObjectType, checksum: Checksum): Promise<number> {
  try {
    return (await fsp.lstat(repo.objectPath(type, checksum))).size;
  } catch {
    return 0;
  }
}

async function tombstonesEnabled(repo: Repo): Promise<boolean> {
  return repo.config.getBoolean('core', 'tombstone-commits', false);
}

/**
 * Delete one commit with its detached metadata: mark partial, delete, tombstone (with
 * `tombstone`), unmark. Callers hold the exclusive lock.
 */
export async function _deleteCommitObject(repo: Repo, checksum: Checksum, tombstone: boolean): Promise<void> {
  await repo.markCommitPartial(checksum);
  if (await repo.hasLocalObject('commitmeta', checksum)) await repo.deleteObject('commitmeta', checksum);
  await repo.deleteObject('commit', checksum);
  if (tombstone && !(await repo.hasLocalObject('tombstone-commit', checksum))) {
    await writeTombstone(repo, checksum);
  }
  await repo.clearCommitPartial(checksum);
}

/** Tombstones are named after the deleted commit, so they go through a tmp file + rename here. */
async function writeTombstone(repo: Repo, checksum: Checksum): Promise<void> {
  const dest = repo.objectPath('tombstone-commit', checksum);
  await fsp.mkdir(path.dirname(dest), { recursive: true });
  const tmp = path.join(repo.tmpPath, `tombstone-${checksum}-${process.pid}`);
  const fh = await fsp.open(tmp, 'w', 0o644);
  try {
    await fh.writeFile(serializeTombstone(checksum));
    await fh.sync();
  } finally {
    await fh.close();
  }
  await fsp.rename(tmp, dest);
}

async function runPrune(repo: Repo, opts: PruneOptions): Promise<PruneResult> {
  const depth = opts.depth ?? -1;
  const refs = await repo.listRefs({ kind: 'all' });

  // An explicit deletion comes first, as in ostree; the totals count only the prune after it.
  if (opts.deleteCommit !== undefined) {
    const c = opts.deleteCommit;
    if (opts.staticDeltasOnly) {
      await pruneStaticDeltas(repo, c);
    } else {
      const referencing = [...refs].filter(([, v]) => v === c).map(([k]) => k);
      if (referencing.length > 0) {
        throw new LarchError('EXISTS', `Commit '${c}' is referenced by '${referencing[0]}'`, { checksum: c, refs: referencing });
      }
      if (!(await repo.hasObject('commit', c))) throw new LarchError('OBJECT_MISSING', `Object missing: ${c}.commit`, { type: 'commit', checksum: c });
      if (!opts.noPrune) {
        if (!(await tombstonesEnabled(repo))) {
          repo.config.set('core', 'tombstone-commits', true);
          await repo.saveConfig();
        }
        await _deleteCommitObject(repo, c, true);
      }
    }
  } else if (opts.staticDeltasOnly) {
    throw new LarchError('INVALID_ARGUMENT', '--static-deltas-only requires --delete-commit; see https://github.com/ostreedev/ostree/issues/1479', {});
  }

  const objects: ObjectRef[] = [];
  for await (const o of repo.listObjects()) {
    if (opts.commitOnly ? o.type === 'commit' : PRUNED_TYPES.has(o.type)) objects.push(o);
  }
  const total = objects.length;

  // Reachability from the roots.
  const reachable = new Map<string, ObjectRef>();
  let done = 0;
  const walk = async (c: Checksum, d: number): Promise<void> => {
    if (!(await repo.hasObject('commit', c))) return;
    if (opts.commitOnly) await walkCommitChain(repo, c, d, reachable);
    else await traverseCommit(repo, c, { depth: d, ignoreMissingTrees: await repo.isCommitPartial(c), into: reachable });
  };
  const complex = opts.retainBranchDepth !== undefined || opts.keepYoungerThan !== undefined || opts.onlyBranches !== undefined;
  if (complex) {
    // As ostree: refs only; each ref to its retained depth, else back to the first commit older
    // than keepYoungerThan (the ref's own commit is always kept), else to `depth`.
    const retain = new Map(opts.retainBranchDepth ?? []);
    if (opts.onlyBranches !== undefined) {
      const only = new Set(opts.onlyBranches);
      for (const ref of refs.keys()) if (!only.has(ref) && !retain.has(ref)) retain.set(ref, -1);
    }
    for (const [ref, c] of refs) {
      const d = retain.get(ref);
      if (d === undefined && opts.keepYoungerThan !== undefined) await walkYoungerThan(repo, c, opts.keepYoungerThan, walk);
      else await walk(c, d ?? depth);
      opts.onProgress?.({ phase: 'reachability', done: ++done, total: refs.size });
    }
  } else {
    const roots: Checksum[] = opts.refsOnly ? [...new Set(refs.values())] : objects.filter((o) => o.type === 'commit').map((o) => o.checksum);
    for (const c of roots) {
      await walk(c, opts.refsOnly ? depth : 0);
      opts.onProgress?.({ phase: 'reachability', done: ++done, total: roots.length });
    }
  }

  // Delete what nothing reaches; commits first (each marked partial before it goes).
  const tomb = await tombstonesEnabled(repo);
  const doomed = objects.filter((o) => !reachable.has(objectKey(o.type, o.checksum)));
  doomed.sort((a, b) => (a.type === 'commit' ? 0 : 1) - (b.type === 'commit' ? 0 : 1));
  let deleted = 0;
  let bytesFreed = 0;
  done = 0;
  for (const o of doomed) {
    const size = await sizeOf(repo, o.type, o.checksum);
    if (!opts.noPrune) {
      if (o.type === 'commit') await _deleteCommitObject(repo, o.checksum, tomb);
      else await repo.deleteObject(o.type, o.checksum);
    }
    deleted++;
    bytesFreed += size;
    opts.onProgress?.({ phase: 'delete', done: ++done, total: doomed.length });
  }

  if (!opts.noPrune) {
    await pruneStaticDeltas(repo, null);
    // What crashed writers left in tmp/: with the exclusive lock held no writer of ours is
    // between allocating and locking a staging directory, so every unlocked one can go.
    await repo.cleanupTmp({ allBoots: true });
  }
  return { total, deleted, bytesFreed };
}

/** Commit objects only: `c` and its parents up to `depth` (-1 = all), stopping at a missing one. */
async function walkCommitChain(repo: Repo, c: Checksum, depth: number, into: Map<string, ObjectRef>): Promise<void> {
  let cur: Checksum | null = c;
  for (let left = depth; cur !== null; left--) {
    into.set(objectKey('commit', cur), { type: 'commit', checksum: cur });
    if (left === 0) break;
    try {
      cur = parseCommit(await repo.readMetadata('commit', cur)).parent;
    } catch {
      break;
    }
  }
}

/** Keep `c` and each parent in turn while its timestamp is at least `cutoff` (epoch seconds). */
async function walkYoungerThan(repo: Repo, c: Checksum, cutoff: bigint, walk: (c: Checksum, d: number) => Promise<void>): Promise<void> {
  await walk(c, 0);
  let cur: Checksum | null = c;
  while (cur !== null) {
    let commit;
    try {
      commit = parseCommit(await repo.readMetadata('commit', cur));
    } catch {
      return; // pruned earlier, or unreadable: fsck's business
    }
    if (commit.timestamp < cutoff) return;
    await walk(cur, 0);
    cur = commit.parent;
  }
}

/** Remove the static deltas leading to `commit`, or with null those whose target commit no longer exists. */
async function pruneStaticDeltas(repo: Repo, commit: Checksum | null): Promise<void> {
  const root = path.join(repo.path, DELTAS_DIR);
  let prefixes: string[];
  try {
    prefixes = await fsp.readdir(root);
  } catch {
    return;
  }
  for (const pre of prefixes) {
    let names: string[];
    try {
      names = await fsp.readdir(path.join(root, pre));
    } catch {
      continue;
    }
    for (const rest of names) {
      const to = parseDeltaDirName(pre, rest)?.to ?? null;
      if (to === null) continue;
      if (commit !== null ? to === commit : !(await repo.hasObject('commit', to))) await fsp.rm(path.join(root, pre, rest), { recursive: true, force: true });
    }
  }
}
