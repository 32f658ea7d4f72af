/**
 * fsck's reachability walk (see repo-fsck.ts): from each root commit, depth-first, every dirtree
 * and dirmeta is verified once (sha256 of its bytes, normal form, structure) and every content
 * object is queued once for fsck-content.ts; errors are recorded in ostree's words. Also the
 * consumers that drain the content queue once the walk has ended.
 */
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { LarchError } from './errors.js';
import { parseCommit, parseCommitMeta, parseDirMeta } from './objects/index.js';
import { _decodeDirTree, _readMetadataSync, objectKey } from './repo-traverse.js';
import type { Repo } from './repo.js';
import type { Checksum, Commit, DirTreeDir, ObjectType } from './types.js';
import { BATCH, HashPool } from './fsck-content.js';
import type { FsckErrorCode, FsckOptions, FsckReport } from './repo-fsck.js';

/** One fsck run: what it has seen, what it found wrong, and the content objects waiting to be verified. */
export interface State {
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

/** ostree's bare message for a metadata error of `type` object `checksum`. */
export function ostreeWording(e: unknown, type: ObjectType, checksum: Checksum): string {
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

export async function walkCommit(st: State, checksum: Checksum): Promise<void> {
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

export async function runContentConsumers(st: State): Promise<void> {
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
