/**
 * Reachability (spec/repo-format.md section 8), and the small tree readers the read-side
 * operations (checkout, fsck, prune, diff, ls) share.
 *
 * Why our own dirtree reader here: every consumer of a dirtree must validate its names before
 * acting on them, and must say *which* dirtree was at fault. `readTree` decodes the raw object
 * bytes and checks every name (no "", ".", "..", "/", NUL) and every checksum length, and reports
 * failures with the dirtree checksum in `data`. Nothing here writes to the repository.
 */
import { closeSync, constants as C, openSync, readSync } from 'node:fs';
import { decode, isNormalForm } from '@larch/gvariant';
import { LarchError } from './errors.js';
import { validatePathComponent } from './fs-safety.js';
import { MAX_METADATA_SIZE, parseDirMeta } from './objects/index.js';
import type { Repo } from './repo.js';
import type { Checksum, DirMeta, DirTree, ObjectType } from './types.js';

/** One reachable object. */
export interface ObjectRef {
  type: ObjectType;
  checksum: Checksum;
}

/** Key of an object in reachability maps: `${checksum}.${type}` (the on-disk name without the fan-out). */
export function objectKey(type: ObjectType, checksum: Checksum): string {
  return `${checksum}.${type}`;
}

/** Lowercase hex of a 32-byte checksum. */
export function _hex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

function withObject(e: unknown, type: string, checksum: Checksum): LarchError {
  if (e instanceof LarchError) {
    const msg = e.message.includes(checksum) ? e.message : `${e.message} (${type} ${checksum})`;
    return new LarchError(e.code, msg, { ...e.data, type, checksum, [type]: checksum }, { cause: e });
  }
  return new LarchError('OBJECT_CORRUPTED', `Corrupted ${type} object ${checksum}: ${(e as Error).message}`, { type, checksum }, { cause: e });
}

const DIRTREE_TYPE = '(a(say)a(sayay))';

/** Byte order of the UTF-8 encodings (OSTree sorts dirtree entries with strcmp). */
function utf8Compare(a: string, b: string): number {
  // UTF-16 code-unit order equals UTF-8 byte order unless a surrogate or U+E000..U+FFFF is involved.
  if (/[\uD800-\uFFFF]/.test(a) || /[\uD800-\uFFFF]/.test(b)) return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
  return a < b ? -1 : a > b ? 1 : 0;
}

function corruptTree(checksum: Checksum, detail: string, cause?: unknown): LarchError {
  return new LarchError('OBJECT_CORRUPTED', `Corrupted dirtree object ${checksum}: ${detail}`, { type: 'dirtree', checksum, dirtree: checksum }, cause !== undefined ? { cause } : undefined);
}

function treeChecksumOf(c: unknown, what: string, checksum: Checksum): Checksum {
  if (!(c instanceof Uint8Array) || c.length !== 32) {
    throw new LarchError('INVALID_CHECKSUM', `Corrupted dirtree object ${checksum}: Invalid checksum of length ${(c as Uint8Array)?.length} expected 32 for ${what}`, {
      type: 'dirtree',
      checksum,
      dirtree: checksum,
      name: what,
    });
  }
  return _hex(c);
}

/**
 * Decode dirtree bytes, validating every name (INVALID_NAME, `data.name`) and every checksum
 * length (INVALID_CHECKSUM) before anything else, so a hostile entry is reported as such whatever
 * other rule it also breaks. With `strict` (fsck), also require normal form, strcmp-sorted lists
 * and no name in both lists (OBJECT_CORRUPTED). Every error carries the dirtree checksum in
 * `data.dirtree` and `data.checksum`.
 *
 * Why not the strict parser for everything: checkout, ls, diff and traversal read thousands of
 * dirtrees and only need the entries to be safe to act on; the normal-form check costs more than
 * the decode, so it is kept to fsck.
 */
export function _decodeDirTree(bytes: Uint8Array, checksum: Checksum, opts: { strict?: boolean } = {}): DirTree {
  let v: [Array<[string, unknown]>, Array<[string, unknown, unknown]>];
  try {
    v = decode(DIRTREE_TYPE, bytes) as typeof v;
  } catch (e) {
    throw corruptTree(checksum, (e as Error).message, e);
  }
  const ctx = { dirtree: checksum, checksum };
  for (const [name] of v[0]) validatePathComponent(name, ctx);
  for (const [name] of v[1]) validatePathComponent(name, ctx);
  const files = v[0].map(([name, c]) => ({ name, checksum: treeChecksumOf(c, name, checksum) }));
  const dirs = v[1].map(([name, t, m]) => ({ name, treeChecksum: treeChecksumOf(t, name, checksum), metaChecksum: treeChecksumOf(m, name, checksum) }));
  if (opts.strict) {
    if (!isNormalForm(DIRTREE_TYPE, bytes)) throw corruptTree(checksum, 'not in normal form');
    for (const list of [files, dirs] as Array<Array<{ name: string }>>) {
      for (let i = 1; i < list.length; i++) {
        if (utf8Compare(list[i - 1].name, list[i].name) >= 0) throw corruptTree(checksum, `entries not sorted or duplicated at ${JSON.stringify(list[i].name)}`);
      }
    }
    const names = new Set(files.map((f) => f.name));
    for (const d of dirs) if (names.has(d.name)) throw corruptTree(checksum, `duplicate name ${JSON.stringify(d.name)}`);
  }
  return { files, dirs };
}

/** Parse dirmeta bytes (host-order integers); errors name the dirmeta checksum. */
export function _decodeDirMeta(bytes: Uint8Array, checksum: Checksum): DirMeta {
  try {
    return parseDirMeta(bytes);
  } catch (e) {
    throw withObject(e, 'dirmeta', checksum);
  }
}

/**
 * A buffer a tree walk reads its metadata objects into, one at a time: each read returns a view
 * of it, valid until the next read. A walk over thousands of dirtrees then allocates nothing
 * per object; fresh buffers would each be a separate allocation outside the JS heap, freed only
 * by a later collection, and the C allocator keeps what it once held.
 */
export class _ReadBuffer {
  buf: Buffer = Buffer.allocUnsafeSlow(16384);
}

/**
 * Read a small metadata object synchronously: open without following symlinks, read to EOF
 * within MAX_METADATA_SIZE (LIMIT_EXCEEDED beyond). Tree walks read thousands of these; one synchronous read costs a few
 * microseconds, while the promise API pays four thread-pool round trips per object. With
 * `into`, the bytes are read into that buffer (grown as needed) and the result is a view of it.
 */
export function _readMetadataSync(repo: Repo, type: 'dirtree' | 'dirmeta' | 'commit', checksum: Checksum, into?: _ReadBuffer): Uint8Array {
  const p = repo.objectReadPath(type, checksum);
  let fd: number;
  try {
    fd = openSync(p, C.O_RDONLY | C.O_NOFOLLOW);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new LarchError('OBJECT_MISSING', `Object missing: ${checksum}.${type}`, { type, checksum });
    if (code === 'ELOOP') throw new LarchError('OBJECT_CORRUPTED', `Corrupted ${type} object ${checksum}: is a symlink`, { type, checksum });
    throw new LarchError('IO_ERROR', `Reading ${checksum}.${type}: ${(e as Error).message}`, { type, checksum }, { cause: e });
  }
  try {
    // Read to EOF without an fstat: most dirtrees fit the first (pooled) small buffer.
    let buf = into?.buf ?? Buffer.allocUnsafe(4000);
    let off = 0;
    for (;;) {
      if (off === buf.length) {
        if (off > MAX_METADATA_SIZE) {
          throw new LarchError('LIMIT_EXCEEDED', `Metadata object ${checksum}.${type} exceeds the limit of ${MAX_METADATA_SIZE} bytes`, { type, checksum, limit: MAX_METADATA_SIZE });
        }
        const bigger = Buffer.allocUnsafe(Math.min(buf.length * 4, MAX_METADATA_SIZE + 1));
        buf.copy(bigger, 0, 0, off);
        buf = bigger;
        if (into !== undefined) into.buf = bigger;
      }
      const n = readSync(fd, buf, off, buf.length - off, off);
      if (n === 0) break;
      off += n;
    }
    return new Uint8Array(buf.buffer, buf.byteOffset, off);
  } finally {
    closeSync(fd);
  }
}

/** Read and validate a dirtree (see `_decodeDirTree`); a missing object is OBJECT_MISSING. */
export async function readTree(repo: Repo, checksum: Checksum): Promise<DirTree> {
  return _decodeDirTree(_readMetadataSync(repo, 'dirtree', checksum), checksum);
}

/** Read a dirmeta; a missing object is OBJECT_MISSING. */
export async function readMeta(repo: Repo, checksum: Checksum): Promise<DirMeta> {
  return _decodeDirMeta(_readMetadataSync(repo, 'dirmeta', checksum), checksum);
}

/**
 * Run `fn` over `items` with at most `limit` calls in flight; rejects with the first error after
 * the in-flight calls settle. Order of completion is not preserved.
 */
export async function _forEachBounded<T>(items: Iterable<T>, limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  const it = items[Symbol.iterator]();
  let failed: unknown = null;
  let hasFailed = false;
  const worker = async (): Promise<void> => {
    for (;;) {
      if (hasFailed) return;
      const n = it.next();
      if (n.done) return;
      try {
        await fn(n.value);
      } catch (e) {
        if (!hasFailed) {
          hasFailed = true;
          failed = e;
        }
        return;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, limit) }, worker));
  if (hasFailed) throw failed;
}

/** A counting semaphore for bounding concurrent I/O across recursive walks. */
export class _Semaphore {
  private active = 0;
  private readonly waiters: Array<() => void> = [];
  constructor(private readonly limit: number) {}
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active >= this.limit) await new Promise<void>((r) => this.waiters.push(r));
    else this.active++;
    try {
      return await fn();
    } finally {
      const next = this.waiters.shift();
      if (next) next();
      else this.active--;
    }
  }
}

function isMissing(e: unknown): boolean {
  return e instanceof LarchError && e.code === 'OBJECT_MISSING';
}

/**
 * Everything reachable from `commit` (spec section 8): the commit, its detached metadata when
 * present, its root dirtree and dirmeta, and recursively every dirtree, dirmeta and content
 * object; then the parent commits up to `depth` (0 = this commit only, -1 = unlimited). A parent
 * that is missing locally ends the walk without error (a partial-history boundary).
 *
 * Locking: none (callers that need a stable view, such as prune, hold the repo lock).
 * Throws OBJECT_MISSING when the starting commit or an object inside a tree is missing, unless
 * `ignoreMissingTrees` (used for partial commits, whose trees are incomplete by definition).
 * Limits: dirtrees are read with at most `concurrency` (default 16) reads in flight.
 */
export async function traverseCommit(
  repo: Repo,
  commit: Checksum,
  opts: { depth?: number; ignoreMissingTrees?: boolean; concurrency?: number; into?: Map<string, ObjectRef> } = {},
): Promise<Map<string, ObjectRef>> {
  const out = opts.into ?? new Map<string, ObjectRef>();
  const depth = opts.depth ?? 0;
  const sem = new _Semaphore(opts.concurrency ?? 16);
  let cur: Checksum | null = commit;
  let remaining = depth;
  let first = true;
  while (cur !== null) {
    const key = objectKey('commit', cur);
    if (out.has(key) && !first) break;
    let c;
    try {
      c = await repo.readCommit(cur);
    } catch (e) {
      if (!first && isMissing(e)) break;
      throw e;
    }
    first = false;
    out.set(key, { type: 'commit', checksum: cur });
    if (await repo.hasObject('commitmeta', cur)) out.set(objectKey('commitmeta', cur), { type: 'commitmeta', checksum: cur });
    await walkTree(repo, c.rootTree, c.rootMeta, out, sem, opts.ignoreMissingTrees === true);
    if (remaining === 0 || c.parent === null) break;
    if (remaining > 0) remaining--;
    cur = c.parent;
  }
  return out;
}

async function walkTree(
  repo: Repo,
  tree: Checksum,
  meta: Checksum,
  out: Map<string, ObjectRef>,
  sem: _Semaphore,
  ignoreMissing: boolean,
): Promise<void> {
  out.set(objectKey('dirmeta', meta), { type: 'dirmeta', checksum: meta });
  const key = objectKey('dirtree', tree);
  if (out.has(key)) return;
  out.set(key, { type: 'dirtree', checksum: tree });
  let dt: DirTree;
  try {
    dt = await sem.run(() => readTree(repo, tree));
  } catch (e) {
    if (ignoreMissing && isMissing(e)) return;
    throw e;
  }
  for (const f of dt.files) out.set(objectKey('file', f.checksum), { type: 'file', checksum: f.checksum });
  await Promise.all(dt.dirs.map((d) => walkTree(repo, d.treeChecksum, d.metaChecksum, out, sem, ignoreMissing)));
}
