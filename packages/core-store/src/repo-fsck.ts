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
import { createHash } from 'node:crypto';
import { closeSync, createReadStream, fstatSync, lstatSync, openSync, readSync, readlinkSync, constants as C, promises as fsp } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { createInflateRaw, inflateRawSync } from 'node:zlib';
import { availableParallelism } from 'node:os';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import * as native from '@larch/native';
import { LarchError } from './errors.js';
import { Variant } from '@larch/gvariant';
import {
  archiveHeaderLength,
  commitRefBindings,
  contentHasher,
  parseArchiveHeaderVariant,
  parseCommit,
  parseCommitMeta,
  parseDirMeta,
  parseUserMeta,
  sortXattrs,
  validateFileMode,
  type ArchiveHeader,
} from './objects/index.js';
import { _deleteCommitObject } from './repo-prune.js';
import { parseRefspec } from './repo-refs.js';
import { _decodeDirTree, _forEachBounded, _readMetadataSync, objectKey, traverseCommit } from './repo-traverse.js';
import type { Repo } from './repo.js';
import { S_IFLNK, S_IFMT, S_IFREG, type Checksum, type Commit, type DirTreeDir, type FileMeta, type ObjectType, type RepoMode, type Xattr } from './types.js';

/** Objects up to this size are read whole (into a reused buffer) and verified synchronously. */
const SMALL_OBJECT = 1024 * 1024;
/** Read size for streaming larger objects. */
const STREAM_CHUNK = 1024 * 1024;

/**
 * One scratch buffer per thread for small objects. Safe because the small-object paths never
 * await between filling it and their last use of it.
 */
let scratch = Buffer.allocUnsafe(64 * 1024);
function scratchOf(n: number): Buffer {
  if (scratch.length < n) scratch = Buffer.allocUnsafe(Math.max(n, scratch.length * 2));
  return scratch.subarray(0, n);
}

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

interface State {
  repo: Repo;
  opts: FsckOptions;
  report: FsckReport;
  seen: Set<string>;
  bad: Set<string>;
  contentQueue: Checksum[];
  contentWaiters: Array<() => void>;
  walking: number;
  reads: number;
  queued: number;
  /** Reachable objects (commits, dirtrees, dirmetas, content), known once the walk ended. */
  total: number | null;
  /** The commit being walked, and the commits found reaching each damaged object while walking. */
  root: Checksum | null;
  reachedBy: Map<string, Set<Checksum>>;
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

  if (opts.addTombstones && tombstones.length > 0) {
    if (!repo.config.getBoolean('core', 'tombstone-commits', false)) {
      repo.config.set('core', 'tombstone-commits', true);
      await repo.saveConfig();
    }
    for (const c of tombstones.sort()) {
      await _deleteCommitObject(repo, c, true);
      report.tombstoned.push(c);
    }
  }
  return report;
}

/**
 * `verifyBackRefs`: every ref in the commit's `ostree.ref-binding` must exist and resolve to it.
 * `addTombstones`: note the commit when its parent is missing.
 */
async function checkCommitLinks(st: State, checksum: Checksum, refs: Map<string, Checksum>, tombstones: Checksum[]): Promise<void> {
  let c: Commit;
  try {
    c = parseCommit(await st.repo.readMetadata('commit', checksum));
  } catch {
    return; // the walk reports it
  }
  if (st.opts.verifyBackRefs) {
    const collection = commitCollectionBinding(c);
    for (const name of commitRefBindings(c)) {
      const target = collection === null ? (refs.get(name) ?? null) : (refs.get(`(${collection}, ${name})`) ?? null);
      const what = collection === null ? `Ref \u2018${name}\u2019` : `Collection\u2013ref (${collection}, ${name})`;
      if (target === null) {
        st.report.errors.push({ type: 'commit', checksum, code: 'INVALID_REF', ref: name, message: `${what} in bindings for commit ${checksum} does not exist` });
      } else if (target !== checksum) {
        st.report.errors.push({ type: 'commit', checksum, code: 'INVALID_REF', ref: name, message: `${what} in bindings for commit ${checksum} does not resolve to that commit` });
      }
    }
  }
  if (st.opts.addTombstones && c.parent !== null && !(await st.repo.hasObject('commit', c.parent))) tombstones.push(checksum);
}

/** Value of `ostree.collection-binding` in a commit, or null. */
function commitCollectionBinding(c: Commit): string | null {
  const v = c.metadata.find(([k]) => k === 'ostree.collection-binding')?.[1];
  return v instanceof Variant && v.type === 's' && typeof v.value === 'string' ? v.value : null;
}

/** ostree's bare message for a metadata error of `type` object `checksum`. */
function ostreeWording(e: unknown, type: ObjectType, checksum: Checksum): string {
  if (e instanceof LarchError) {
    const d = e.data as { name?: unknown; actual?: unknown };
    if (e.code === 'INVALID_NAME' && typeof d.name === 'string') return `${checksum}.${type}: ${filenameWording(d.name)}`;
    if (typeof d.actual === 'string') return `Corrupted ${type} object; checksum expected='${checksum}' actual='${d.actual}'`;
  }
  return (e as Error).message;
}

/** ot_util_filename_validate's wording for a bad name (control characters escaped so it stays one line). */
function filenameWording(name: string): string {
  const shown = name.replace(/[\u0000-\u001f\u007f]/g, (ch) => `\\x${ch.charCodeAt(0).toString(16).padStart(2, '0')}`);
  if (name === '.') return "Invalid self-referential filename '.'";
  if (name === '..') return "Invalid path uplink filename '..'";
  if (name.length === 0) return 'Invalid empty filename';
  if (name.includes('/')) return `Invalid / in filename ${shown}`;
  return `Invalid filename ${shown}`;
}

/**
 * Give each object error the commits that reach it and ostree's full wording:
 * `Object missing in commits A, B: C.file`, `In commits A: fsck C.dirtree: …`,
 * `In commits A: fsck content object C: Corrupted file object; …`. Costs a walk of each root,
 * only when something is wrong.
 */
async function attributeErrors(st: State, roots: Checksum[], errors: FsckError[]): Promise<void> {
  const byKey = new Map<string, Set<Checksum>>();
  for (const e of errors) {
    const k = objectKey(e.type === 'commitmeta' ? 'commit' : e.type, e.checksum);
    byKey.set(k, new Set(st.reachedBy.get(objectKey(e.type, e.checksum)) ?? []));
  }
  await _forEachBounded(roots, 4, async (c) => {
    let reach: Map<string, unknown>;
    try {
      reach = await traverseCommit(st.repo, c, { depth: 0, ignoreMissingTrees: true });
    } catch {
      reach = new Map([[objectKey('commit', c), null]]);
    }
    for (const [k, set] of byKey) if (reach.has(k)) set.add(c);
  });
  for (const e of errors) {
    const commits = [...(byKey.get(objectKey(e.type === 'commitmeta' ? 'commit' : e.type, e.checksum)) ?? [])].sort();
    e.commits = commits;
    const inCommits = commits.length > 0 ? `In commits ${commits.join(', ')}: ` : '';
    if (e.code === 'OBJECT_MISSING') {
      e.message = commits.length > 0 ? `Object missing in commits ${commits.join(', ')}: ${e.checksum}.${e.type}` : `Object missing: ${e.checksum}.${e.type}`;
    } else if (e.type === 'file') {
      e.message = `${inCommits}fsck content object ${e.checksum}: ${e.message}`;
    } else {
      e.message = `${inCommits}fsck ${e.checksum}.${e.type}: ${e.message}`;
    }
  }
}

function push(st: State, type: ObjectType, checksum: Checksum, code: FsckErrorCode, message: string): void {
  const key = objectKey(type, checksum);
  st.bad.add(key);
  if (st.root !== null) st.reachedBy.set(key, new Set([st.root]));
  st.report.errors.push({ type, checksum, code, message });
}

/** One reachable object checked; reported once the total is known (metadata: after the walk). */
function progress(st: State): void {
  st.report.objectsChecked++;
  if (st.total !== null) st.opts.onProgress?.({ objectsChecked: st.report.objectsChecked, total: st.total });
}

function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/**
 * Read a metadata object and check sha256 == name. Returns null (after recording the error) when
 * it is missing or corrupted.
 */
async function loadVerifiedMetadata(st: State, type: 'commit' | 'dirtree' | 'dirmeta', checksum: Checksum): Promise<Uint8Array | null> {
  let bytes: Uint8Array;
  try {
    bytes = _readMetadataSync(st.repo, type, checksum);
  } catch (e) {
    const code = e instanceof LarchError ? e.code : 'IO_ERROR';
    if (code === 'OBJECT_MISSING') push(st, type, checksum, 'OBJECT_MISSING', `Object missing: ${checksum}.${type}`);
    else if (code === 'IO_ERROR') push(st, type, checksum, 'IO_ERROR', (e as Error).message);
    else push(st, type, checksum, 'OBJECT_CORRUPTED', (e as Error).message);
    return null;
  }
  // Yield now and then: the walk itself is synchronous I/O.
  if ((++st.reads & 255) === 0) await new Promise<void>((r) => setImmediate(r));
  const actual = sha256Hex(bytes);
  if (actual !== checksum) {
    push(st, type, checksum, 'OBJECT_CORRUPTED', `Corrupted ${type} object; checksum expected='${checksum}' actual='${actual}'`);
    return null;
  }
  return bytes;
}

function structureError(st: State, type: ObjectType, checksum: Checksum, e: unknown): void {
  const wording = ostreeWording(e, type, checksum);
  const msg = wording.startsWith(`${checksum}.`) ? wording : `${checksum}.${type}: ${wording}`;
  push(st, type, checksum, 'OBJECT_CORRUPTED', msg);
}

async function walkCommit(st: State, checksum: Checksum): Promise<void> {
  const key = objectKey('commit', checksum);
  if (st.seen.has(key)) return;
  st.seen.add(key);
  const bytes = await loadVerifiedMetadata(st, 'commit', checksum);
  progress(st);
  await verifyCommitMeta(st, checksum);
  if (!bytes) return;
  let c: Commit;
  try {
    c = parseCommit(bytes);
  } catch (e) {
    structureError(st, 'commit', checksum, e);
    return;
  }
  // Parents need no walk of their own: every non-partial commit in the repository is a root, and
  // a partial parent is incomplete by definition.
  await walkDir(st, c.rootTree, c.rootMeta);
}

async function verifyCommitMeta(st: State, checksum: Checksum): Promise<void> {
  let bytes: Uint8Array;
  try {
    bytes = await fsp.readFile(st.repo.objectReadPath('commitmeta', checksum));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    push(st, 'commitmeta', checksum, 'IO_ERROR', `Reading ${checksum}.commitmeta: ${(e as Error).message}`);
    return;
  }
  try {
    parseCommitMeta(bytes);
  } catch (e) {
    structureError(st, 'commitmeta', checksum, e);
  }
}

/** Verify a dirmeta once (it is recorded as seen even when it fails). */
async function checkDirMeta(st: State, meta: Checksum): Promise<void> {
  const mkey = objectKey('dirmeta', meta);
  if (st.seen.has(mkey)) return;
  st.seen.add(mkey);
  const bytes = await loadVerifiedMetadata(st, 'dirmeta', meta);
  progress(st);
  if (!bytes) return;
  try {
    parseDirMeta(bytes);
  } catch (e) {
    structureError(st, 'dirmeta', meta, e);
  }
}

/**
 * Walk the tree under `tree` depth-first, verifying each dirtree and dirmeta not seen before
 * and queueing each content object not seen before. A dirtree already verified (reached again
 * through another parent or another commit) is not entered again, so the walk costs one visit
 * per object whatever the number of paths; the stack holds the subdirectory lists of the
 * current path, and queueing waits while the content queue is full.
 */
async function walkDir(st: State, tree: Checksum, meta: Checksum): Promise<void> {
  const stack: Array<{ dirs: DirTreeDir[]; i: number }> = [];
  const visit = async (t: Checksum, m: Checksum): Promise<void> => {
    await checkDirMeta(st, m);
    const tkey = objectKey('dirtree', t);
    if (st.seen.has(tkey)) return;
    st.seen.add(tkey);
    const bytes = await loadVerifiedMetadata(st, 'dirtree', t);
    progress(st);
    if (!bytes) return;
    let dt;
    try {
      dt = _decodeDirTree(bytes, t, { strict: true });
    } catch (e) {
      structureError(st, 'dirtree', t, e);
      return;
    }
    for (const f of dt.files) {
      const fkey = objectKey('file', f.checksum);
      if (st.seen.has(fkey)) continue;
      st.seen.add(fkey);
      await enqueue(st, f.checksum);
    }
    wake(st);
    if (dt.dirs.length > 0) stack.push({ dirs: dt.dirs, i: 0 });
  };
  await visit(tree, meta);
  while (stack.length > 0) {
    const top = stack[stack.length - 1];
    if (top.i >= top.dirs.length) {
      stack.pop();
      continue;
    }
    const d = top.dirs[top.i++];
    await visit(d.treeChecksum, d.metaChecksum);
  }
}

/** Queue a content object for verification once the walk is done. */
async function enqueue(st: State, checksum: Checksum): Promise<void> {
  st.contentQueue.push(checksum);
  st.queued++;
}

function wake(st: State): void {
  const w = st.contentWaiters.splice(0, st.contentWaiters.length);
  for (const f of w) f();
}

async function runContentConsumers(st: State): Promise<void> {
  const pool = new HashPool(st.repo.mode, st.opts.workers);
  const n = st.opts.concurrency ?? 8;
  const consumer = async (): Promise<void> => {
    for (;;) {
      // Hand out batches: per-object messages would cost more than small objects take to hash.
      const batch = st.contentQueue.splice(Math.max(0, st.contentQueue.length - BATCH), BATCH);
      if (batch.length === 0) {
        if (st.walking === 0) return;
        await new Promise<void>((r) => st.contentWaiters.push(r));
        continue;
      }
      const items = batch.map((c): [string, string] => [c, st.repo.objectReadPath('file', c)]);
      const results = await pool.check(items);
      for (let i = 0; i < batch.length; i++) {
        const r = results[i];
        if (r !== null) push(st, 'file', batch[i], r.code, r.message);
        progress(st);
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: n }, consumer));
  } finally {
    await pool.close();
  }
}

/** Objects handed to a worker at once. */
const BATCH = 64;

type CheckResult = { code: FsckErrorCode; message: string } | null;

/** Verify one content object; null when its content checksum matches its name. */
async function checkContent(mode: RepoMode, checksum: Checksum, p: string): Promise<CheckResult> {
  try {
    const actual = await contentChecksum(mode, p);
    if (actual === checksum) return null;
    return { code: 'OBJECT_CORRUPTED', message: `Corrupted file object; checksum expected='${checksum}' actual='${actual}'` };
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { code: 'OBJECT_MISSING', message: `Object missing: ${checksum}.file` };
    if (e instanceof LarchError) return { code: 'OBJECT_CORRUPTED', message: `Corrupted file object: ${e.message}` };
    if (typeof code === 'string' && code.startsWith('Z_')) {
      return { code: 'OBJECT_CORRUPTED', message: `Corrupted file object: compressed payload is damaged or truncated (${(e as Error).message})` };
    }
    return { code: 'IO_ERROR', message: `Reading ${checksum}.file: ${(e as Error).message}` };
  }
}

async function checkBatch(mode: RepoMode, items: Array<[string, string]>): Promise<CheckResult[]> {
  const out: CheckResult[] = [];
  for (const [c, p] of items) out.push(await checkContent(mode, c, p));
  return out;
}

/**
 * Content verification spread over worker threads (reading, inflating and hashing are all CPU
 * work on the calling thread otherwise). Workers run this same module; they start lazily once
 * enough objects are queued to pay for their start-up, and any worker failure falls back to
 * verifying in the calling thread, so a missing worker never loses a result.
 */
class HashPool {
  private workers: Array<{ w: Worker; busy: number }> | null = null;
  private failed = false;
  private closing = false;
  private seq = 0;
  private pending = new Map<number, { resolve: (r: CheckResult[]) => void; items: Array<[string, string]> }>();
  private submitted = 0;
  private readonly size: number;
  private readonly threshold: number;

  constructor(private readonly mode: RepoMode, workers: number | undefined) {
    this.size = workers ?? Math.min(2, availableParallelism());
    // An explicit worker count starts the workers right away.
    this.threshold = workers === undefined ? WORKER_THRESHOLD : 0;
  }

  async check(items: Array<[string, string]>): Promise<CheckResult[]> {
    this.submitted += items.length;
    if (this.size <= 0 || this.failed || (this.workers === null && this.submitted < this.threshold)) return checkBatch(this.mode, items);
    if (this.workers === null) this.start();
    if (this.failed || this.workers === null) return checkBatch(this.mode, items);
    const slot = this.workers.reduce((a, b) => (b.busy < a.busy ? b : a));
    slot.busy++;
    const id = ++this.seq;
    return new Promise<CheckResult[]>((resolve) => {
      this.pending.set(id, {
        items,
        resolve: (r) => {
          slot.busy--;
          resolve(r);
        },
      });
      slot.w.postMessage({ id, items });
    });
  }

  private start(): void {
    const url = new URL(import.meta.url);
    const workerData = { larchFsckWorker: true, mode: this.mode };
    // Under a TypeScript test runner this module is a .ts file: load it through tsx's loader.
    const viaTsx = url.pathname.endsWith('.ts');
    const tsxBoot = `import('tsx/esm/api').then((m) => m.register()).then(() => import(${JSON.stringify(url.href)}))`;
    try {
      this.workers = Array.from({ length: this.size }, () => {
        const w = viaTsx ? new Worker(tsxBoot, { eval: true, workerData }) : new Worker(url, { workerData });
        w.on('message', (m: { id: number; results: CheckResult[] }) => {
          const p = this.pending.get(m.id);
          if (!p) return;
          this.pending.delete(m.id);
          p.resolve(m.results);
        });
        w.on('error', () => this.fail());
        w.on('exit', (code) => {
          if (code !== 0) this.fail();
        });
        return { w, busy: 0 };
      });
    } catch {
      this.fail();
    }
  }

  /** A worker died: verify everything it still owed in this thread, and stop using workers. */
  private fail(): void {
    if (this.failed || this.closing) return;
    this.failed = true;
    const owed = [...this.pending.values()];
    this.pending.clear();
    for (const p of owed) void checkBatch(this.mode, p.items).then(p.resolve);
    for (const { w } of this.workers ?? []) void w.terminate();
    this.workers = null;
  }

  async close(): Promise<void> {
    this.closing = true;
    const ws = this.workers ?? [];
    this.workers = null;
    await Promise.all(ws.map(({ w }) => w.terminate()));
  }
}

/** Queued content objects before worker threads are worth starting. */
const WORKER_THRESHOLD = 1024;

if (!isMainThread && (workerData as { larchFsckWorker?: boolean } | null)?.larchFsckWorker === true && parentPort) {
  const port = parentPort;
  const mode = (workerData as { mode: RepoMode }).mode;
  port.on('message', (m: { id: number; items: Array<[string, string]> }) => {
    void checkBatch(mode, m.items).then((results) => port.postMessage({ id: m.id, results }));
  });
}

function corrupt(detail: string): LarchError {
  return new LarchError('OBJECT_CORRUPTED', detail, {});
}

/**
 * Recompute the content checksum of the object at `p`, stored as `mode` lays it out.
 * Throws ENOENT for a missing object, LarchError OBJECT_CORRUPTED for damaged framing or modes.
 */
async function contentChecksum(mode: Repo['mode'], p: string): Promise<string> {
  if (mode === 'archive') return archiveChecksum(p);
  if (mode === 'bare-user') return bareUserChecksum(p);
  return bareChecksum(p, mode === 'bare-user-only');
}

async function archiveChecksum(p: string): Promise<string> {
  const fd = openSync(p, C.O_RDONLY | C.O_NOFOLLOW);
  let closed = false;
  try {
    const size = fstatSync(fd).size;
    if (size <= SMALL_OBJECT) {
      const buf = scratchOf(size);
      readFully(fd, buf, 0);
      closeSync(fd);
      closed = true;
      const hlen = archiveHeaderLength(buf.subarray(0, 8), size);
      const h = parseArchiveHeaderVariant(buf.subarray(8, 8 + hlen));
      const hasher = contentHasher(h.meta);
      if ((h.meta.mode & S_IFMT) === S_IFREG) {
        const z = buf.subarray(8 + hlen);
        const payload = inflateRawSync(z);
        checkSize(h, payload.length);
        hasher.update(payload);
      }
      return hasher.digest('hex');
    }
    const prefix = Buffer.allocUnsafe(8);
    readFully(fd, prefix, 0);
    const hlen = archiveHeaderLength(prefix, size);
    const hv = Buffer.allocUnsafe(hlen);
    readFully(fd, hv, 8);
    const h = parseArchiveHeaderVariant(hv);
    const hasher = contentHasher(h.meta);
    if ((h.meta.mode & S_IFMT) === S_IFREG) {
      let n = 0;
      const rs = createReadStream('', { fd, start: 8 + hlen, autoClose: false, highWaterMark: STREAM_CHUNK });
      await pipeline(rs, createInflateRaw({ chunkSize: STREAM_CHUNK / 4 }), async (source: AsyncIterable<Buffer>) => {
        for await (const chunk of source) {
          n += chunk.length;
          hasher.update(chunk);
        }
      });
      checkSize(h, n);
    }
    return hasher.digest('hex');
  } finally {
    if (!closed) closeSync(fd);
  }
}

function checkSize(h: ArchiveHeader, n: number): void {
  if (n !== h.size) throw corrupt(`truncated or oversized payload: header says ${h.size} bytes, inflated ${n}`);
}

function readFully(fd: number, buf: Buffer, position: number): void {
  let off = 0;
  while (off < buf.length) {
    const r = readSync(fd, buf, off, buf.length - off, position + off);
    if (r === 0) throw corrupt(`truncated: expected ${buf.length} bytes at offset ${position}, got ${off}`);
    off += r;
  }
}

async function hashPayload(fd: number, size: number, hasher: ReturnType<typeof createHash>): Promise<void> {
  if (size <= SMALL_OBJECT) {
    const buf = scratchOf(size);
    readFully(fd, buf, 0);
    hasher.update(buf);
    return;
  }
  let n = 0;
  const rs = createReadStream('', { fd, start: 0, autoClose: false, highWaterMark: STREAM_CHUNK });
  for await (const chunk of rs as AsyncIterable<Buffer>) {
    n += chunk.length;
    hasher.update(chunk);
  }
  if (n !== size) throw corrupt(`file changed size while reading (${size} -> ${n})`);
}

async function bareUserChecksum(p: string): Promise<string> {
  const raw = native.lgetxattr(p, 'user.ostreemeta');
  if (raw === null) throw corrupt('missing user.ostreemeta xattr');
  const m = parseUserMeta(raw);
  const fd = openSync(p, C.O_RDONLY | C.O_NOFOLLOW);
  try {
    const size = fstatSync(fd).size;
    if ((m.mode & S_IFMT) === S_IFLNK) {
      if (size === 0 || size > 4097) throw corrupt(`invalid symlink object size ${size}`);
      const buf = Buffer.allocUnsafe(size);
      readFully(fd, buf, 0);
      if (buf[size - 1] !== 0) throw corrupt('symlink object content lacks its trailing NUL');
      const meta: FileMeta = { ...m, symlinkTarget: buf.subarray(0, size - 1).toString('utf8') };
      return contentHasher(meta).digest('hex');
    }
    const hasher = contentHasher({ ...m, symlinkTarget: '' });
    await hashPayload(fd, size, hasher);
    return hasher.digest('hex');
  } finally {
    closeSync(fd);
  }
}

function readXattrs(p: string): Xattr[] {
  const names = native.llistxattr(p);
  if (names.length === 0) return [];
  const out: Xattr[] = [];
  for (const name of names) {
    const v = native.lgetxattr(p, name);
    if (v !== null) out.push({ name, value: new Uint8Array(v) });
  }
  return sortXattrs(out);
}

async function bareChecksum(p: string, userOnly: boolean): Promise<string> {
  const st = lstatSync(p);
  const mode = st.mode;
  validateFileMode(mode, 'file object');
  const base = { uid: userOnly ? 0 : st.uid, gid: userOnly ? 0 : st.gid, mode };
  if (st.isSymbolicLink()) {
    const target = readlinkSync(p);
    return contentHasher({ ...base, symlinkTarget: target, xattrs: userOnly ? [] : readXattrs(p) }).digest('hex');
  }
  const hasher = contentHasher({ ...base, symlinkTarget: '', xattrs: userOnly ? [] : readXattrs(p) });
  const fd = openSync(p, C.O_RDONLY | C.O_NOFOLLOW);
  try {
    await hashPayload(fd, st.size, hasher);
  } finally {
    closeSync(fd);
  }
  return hasher.digest('hex');
}

async function deleteAndMarkPartial(st: State): Promise<void> {
  const { repo, report, opts } = st;
  const lost = new Set<Checksum>();
  for (const e of report.errors) {
    if (e.ref !== undefined || e.code === 'INVALID_REF') continue;
    // As ostree: a missing object, or with `delete` a corrupted one (then deleted), makes every
    // commit that reaches it partial.
    if (e.code !== 'OBJECT_MISSING' && !opts.delete) continue;
    if (e.code !== 'OBJECT_MISSING' && e.type !== 'commit' && e.type !== 'commitmeta' && (await repo.hasObject(e.type, e.checksum))) {
      await repo.deleteObject(e.type, e.checksum);
      report.deleted++;
    }
    if (e.type === 'commit') continue;
    for (const c of e.commits ?? []) lost.add(c);
  }
  for (const c of [...lost].sort()) {
    if ((await repo.commitPartialState(c)) !== null) continue;
    await repo.markCommitPartial(c, { reason: 'fsck' });
    report.markedPartial.push(c);
  }
}
