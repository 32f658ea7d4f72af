/**
 * fsck: verify a repository the way `ostree fsck` 2022.7 does (spec/repo-format.md section 13).
 *
 * 1. Every ref (heads, remotes, collection refs) must point at a loadable commit; with
 *    `verifyBindings` the commit's `ostree.ref-binding` must list the ref.
 * 2. Every `.commit` is enumerated; partial commits (`state/C.commitpartial`) are counted and
 *    skipped, the others are roots.
 * 3. Everything reachable from the roots is verified once. Each root is walked at depth 0: its
 *    parents are roots themselves unless partial, as in ostree. Metadata objects are checked by
 *    sha256 of their bytes, normal form and structure (dirtree names, sort order, checksum
 *    lengths, dirmeta mode); content objects by re-synthesising the file header from the per-mode
 *    storage (archive header, `user.ostreemeta`, stat + xattrs) and hashing it with the
 *    uncompressed payload; detached metadata must parse as normal-form a{sv}.
 *
 * Unlike the CLI's default, errors never stop the walk: every missing, corrupted or truncated
 * object is collected in the report (`--all` semantics always), worded as ostree words it and
 * naming the commits that reach it. As in ostree, every commit that reaches a missing object (or,
 * with `delete`, a corrupted one, which is then removed) is marked partial, with the marker
 * saying fsck found it (`f`), so that later checks fail until it is pulled again.
 *
 * Memory: the walk is depth-first with an explicit stack (the subdirectory lists of the current
 * path) and enters each dirtree once, however many parents or commits reach it. Content objects
 * wait in a queue until the walk ends (so the number of objects is known for progress, as in
 * ostree); the queue holds references to the names already in the set of objects seen. What
 * grows is that set, one entry per object, never per path.
 *
 * Performance: content objects are verified in batches by worker threads (one per core, at most
 * two) once enough are queued to pay for starting them; the calling thread walks the metadata first.
 * Inside a worker, small objects are read and hashed synchronously (a few syscalls each, like the
 * C implementation); payloads larger than SMALL_OBJECT are read and inflated as streams, so
 * nothing buffers a whole large file.
 */
import { LarchError } from './errors.js';
import { commitRefBindings, parseCommit } from './objects/index.js';
import { parseRefspec } from './repo-refs.js';
import type { Repo } from './repo.js';
import type { Checksum, ObjectType } from './types.js';
import { addTombstones, attributeErrors, checkCommitLinks, deleteAndMarkPartial } from './fsck-repair.js';
import { type State, ostreeWording, runContentConsumers, walkCommit } from './fsck-walk.js';

export type FsckErrorCode = 'OBJECT_MISSING' | 'OBJECT_CORRUPTED' | 'INVALID_REF' | 'IO_ERROR';

export interface FsckError {
  type: ObjectType;
  checksum: Checksum;
  code: FsckErrorCode;
  /** ostree's wording, e.g. `In commits C: fsck T.dirtree: T.dirtree: Invalid / in filename ../afile`. */
  message: string;
  /** The ref at fault, for ref errors. */
  ref?: string;
  /** The commits that reach the object (sorted), for object errors. */
  commits?: Checksum[];
}

export interface FsckReport {
  /** Commit objects found in the repository. */
  commits: number;
  /** Of those, marked partial and therefore not verified. */
  partial: number;
  /** Objects verified (metadata and content). */
  objectsChecked: number;
  errors: FsckError[];
  /** Objects removed with `delete`. */
  deleted: number;
  /** Commits marked partial because they reach a missing object (or, with `delete`, a corrupted one). */
  markedPartial: Checksum[];
  /** Of the partial commits, those fsck marked partial (ostree's FSCK_PARTIAL state). */
  fsckPartial: number;
  /** With `addTombstones`: commits whose parent is missing, deleted and replaced by a tombstone. */
  tombstoned: Checksum[];
}

export interface FsckOptions {
  /** Accepted for CLI parity; fsck always continues after errors and collects them all. */
  all?: boolean;
  /** Delete corrupted objects and mark the commits that lose objects partial. */
  delete?: boolean;
  /** Check that each ref is listed in its commit's `ostree.ref-binding`. */
  verifyBindings?: boolean;
  /** Check that every ref a commit's `ostree.ref-binding` lists exists and points at it. */
  verifyBackRefs?: boolean;
  /**
   * Turn on `core.tombstone-commits` and replace each commit whose parent is missing by a
   * tombstone, as `ostree fsck --add-tombstones` does (the commit object itself is deleted).
   */
  addTombstones?: boolean;
  /** Batches of content objects in flight (default 8). */
  concurrency?: number;
  /** Worker threads for content verification (default: up to 2, one per core; 0 = this thread). */
  workers?: number;
  /**
   * Called as each phase starts (`refs`, `commits`, `content`, as ostree prints them) with the
   * errors found so far and, for `content`, the number of commits to verify. Returning false
   * ends the check there (the CLI stops where ostree stops on an error).
   */
  onPhase?: (phase: 'refs' | 'commits' | 'content', info: { errors: readonly FsckError[]; commits: number }) => boolean | void;
  /**
   * Called for each reachable object checked, once their number (`total`) is known: the metadata
   * objects are reported when the walk ends, then each content object as it is verified.
   */
  onProgress?: (p: { objectsChecked: number; total: number }) => void;
}

/**
 * Verify the repository; see the file comment for what is checked.
 *
 * Locking: shared (exclusive with `delete`). Never modifies the repository without `delete`.
 * Crash guarantee with `delete`: a commit is marked partial only after its objects were deleted;
 * a crash in between leaves a commit that the next fsck reports again.
 * Limits: the set of visited object names is held in memory (one string per object); nothing is
 * held per path (see the file comment).
 */
export async function fsck(repo: Repo, opts: FsckOptions = {}): Promise<FsckReport> {
  return repo.withLock(opts.delete || opts.addTombstones ? 'exclusive' : 'shared', () => runFsck(repo, opts));
}

async function runFsck(repo: Repo, opts: FsckOptions): Promise<FsckReport> {
  const report: FsckReport = { commits: 0, partial: 0, objectsChecked: 0, errors: [], deleted: 0, markedPartial: [], fsckPartial: 0, tombstoned: [] };
  // As in ostree, --verify-back-refs turns --verify-bindings on only after the refs were checked.
  const verifyBindings = Boolean(opts.verifyBindings);
  const st: State = {
    repo,
    opts,
    report,
    seen: new Set(),
    bad: new Set(),
    contentQueue: [],
    contentWaiters: [],
    walking: 0,
    reads: 0,
    queued: 0,
    total: null,
    root: null,
    reachedBy: new Map(),
  };

  // 1. Refs.
  opts.onPhase?.('refs', { errors: [], commits: 0 });
  const refs = await repo.listRefs({ kind: 'all' });
  for (const [ref, csum] of refs) {
    try {
      // Verified as ostree does on load: a damaged commit is named by its checksum.
      const c = parseCommit(await repo.readMetadata('commit', csum, { verify: true }));
      if (verifyBindings) {
        const name = parseRefspec(ref).name;
        const bindings = commitRefBindings(c);
        if (!bindings.includes(name)) {
          report.errors.push({
            type: 'commit',
            checksum: csum,
            code: 'INVALID_REF',
            ref,
            message: `Commit ${csum} has no requested ref '${name}' in ref binding metadata (${bindings.map((b) => `'${b}'`).join(', ')})`,
          });
        }
      }
    } catch (e) {
      const code: FsckErrorCode = e instanceof LarchError && e.code === 'OBJECT_MISSING' ? 'OBJECT_MISSING' : 'OBJECT_CORRUPTED';
      const name = parseRefspec(ref).name;
      const message =
        code === 'OBJECT_MISSING' ? `Loading commit for ref ${name}: No such metadata object ${csum}.commit` : `fsck ${csum}.commit: ${ostreeWording(e, 'commit', csum)}`;
      report.errors.push({ type: 'commit', checksum: csum, code, ref, message });
    }
  }

  // 2. Commits.
  if (opts.onPhase?.('commits', { errors: [...report.errors], commits: 0 }) === false) return report;
  const roots: Checksum[] = [];
  const tombstones: Checksum[] = [];
  for await (const o of repo.listObjects()) {
    if (o.type !== 'commit') continue;
    report.commits++;
    if (opts.verifyBackRefs || opts.addTombstones) await checkCommitLinks(st, o.checksum, refs, tombstones);
    const state = await repo.commitPartialState(o.checksum);
    if (state !== null) {
      report.partial++;
      if (state === 'fsck') report.fsckPartial++;
    } else roots.push(o.checksum);
  }

  if (opts.onPhase?.('content', { errors: [...report.errors], commits: roots.length }) === false) return report;

  // 3. Walk and verify the metadata, then verify the content objects it reaches. The walk comes
  // first so that the number of objects is known while the content is checked, as ostree reports
  // it ("fsck objects (i/N)").
  st.walking++;
  try {
    // One commit after the other: the walk is synchronous reads, and commits share most objects.
    for (const c of roots) {
      st.root = c;
      await walkCommit(st, c);
    }
  } finally {
    st.walking--;
    st.root = null;
  }
  st.total = st.seen.size;
  if (opts.onProgress) for (let i = 1; i <= report.objectsChecked; i++) opts.onProgress({ objectsChecked: i, total: st.total });
  await runContentConsumers(st);

  const objectErrors = report.errors.filter((e) => e.ref === undefined);
  if (objectErrors.length > 0) await attributeErrors(st, roots, objectErrors);
  if (st.bad.size > 0) await deleteAndMarkPartial(st);
  // Ref errors first, in the order found, then object errors by checksum.
  const refErrors = report.errors.filter((e) => e.ref !== undefined);
  objectErrors.sort((a, b) => (a.checksum < b.checksum ? -1 : a.checksum > b.checksum ? 1 : 0));
  report.errors = [...refErrors, ...objectErrors];

  if (opts.addTombstones && tombstones.length > 0) await addTombstones(repo, report, tombstones);
  return report;
}
