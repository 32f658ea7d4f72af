/**
 * Reading a repository's objects (spec/repo-format.md): metadata objects read whole and bounded,
 * verified and parsed; content objects opened in the repository's mode; listing and deleting
 * the loose objects of `objects/`. Reads fall through the `core.parent` chain; listing and
 * deleting look at the repository itself only. `Repo`'s methods of the same names call these.
 */
import { createHash } from 'node:crypto';
import { closeSync, constants as fsc, fstatSync, openSync, promises as fsp, readdirSync, readSync } from 'node:fs';
import { join } from 'node:path';
import type { Variant } from '@larch/gvariant';
import { LarchError, fileChecksumMismatch, hasErrno, ioError } from './errors.js';
import type { Checksum, Commit, DirMeta, DirTree, ObjectType } from './types.js';
import { isChecksum, validateChecksum } from './validate.js';
import { MAX_METADATA_SIZE, parseCommit } from './objects/commit.js';
import { parseCommitMeta } from './objects/commitmeta.js';
import { parseDirMeta } from './objects/dirmeta.js';
import { parseDirTree } from './objects/dirtree.js';
import { parseTombstone } from './objects/tombstone.js';
import { contentHasher } from './objects/file-header.js';
import { openBareRegularSync, openContentObject, type OpenedContent } from './objects/content-io.js';
import type { Repo } from './repo.js';
import { OBJECTS_DIR } from './layout.js';

/**
 * Raw bytes of a metadata object, bounded by MAX_METADATA_SIZE (LIMIT_EXCEEDED). With
 * `verify`, checks sha256 == name for dirtree/dirmeta/commit and normal form for every type.
 */
export async function readMetadata(repo: Repo, type: Exclude<ObjectType, 'file'>, checksum: Checksum, opts: { verify?: boolean } = {}): Promise<Uint8Array> {
  // Synchronous syscalls: metadata objects are small (bounded below) and, on a local
  // filesystem, open/fstat/read/close cost microseconds, far less than four thread-pool round
  // trips; a checkout or prune reads one dirtree and one dirmeta per directory.
  const p = repo.objectPath(type, checksum);
  let bytes: Buffer;
  let fd = -1;
  try {
    fd = openSync(p, fsc.O_RDONLY | fsc.O_NOFOLLOW);
    const st = fstatSync(fd);
    if (!st.isFile()) throw new LarchError('OBJECT_CORRUPTED', `Corrupted ${type} object ${checksum}: not a regular file`, { type, checksum });
    if (st.size > MAX_METADATA_SIZE) {
      throw new LarchError('LIMIT_EXCEEDED', `Metadata object ${checksum}.${type} is ${st.size} bytes, exceeding the limit of ${MAX_METADATA_SIZE}`, { type, checksum, size: st.size, limit: MAX_METADATA_SIZE });
    }
    bytes = Buffer.alloc(st.size);
    let off = 0;
    while (off < st.size) {
      const n = readSync(fd, bytes, off, st.size - off, off);
      if (n === 0) break;
      off += n;
    }
    if (off !== st.size) throw new LarchError('OBJECT_CORRUPTED', `Corrupted ${type} object ${checksum}: short read`, { type, checksum });
  } catch (e) {
    if (hasErrno(e, 'ENOENT')) {
      if (repo.parent !== null) return repo.parent.readMetadata(type, checksum, opts);
      throw new LarchError('OBJECT_MISSING', `No such metadata object ${checksum}.${type}`, { type, checksum });
    }
    if (hasErrno(e, 'ELOOP')) throw new LarchError('OBJECT_CORRUPTED', `Corrupted ${type} object ${checksum}: is a symlink`, { type, checksum });
    throw ioError(e, 'Reading object', p);
  } finally {
    if (fd >= 0) closeSync(fd);
  }
  const u8 = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (opts.verify) {
    if (type === 'dirtree' || type === 'dirmeta' || type === 'commit') checkDigest(repo, type, checksum, u8);
    try {
      if (type === 'dirtree') parseDirTree(u8);
      else if (type === 'dirmeta') parseDirMeta(u8);
      else if (type === 'commit') parseCommit(u8);
      else if (type === 'commitmeta') parseCommitMeta(u8);
      else parseTombstone(u8);
    } catch (e) {
      throw corrupted(repo, type, checksum, e);
    }
  }
  return u8;
}

export function checkDigest(repo: Repo, type: ObjectType, checksum: Checksum, bytes: Uint8Array): void {
  const actual = createHash('sha256').update(bytes).digest('hex');
  if (actual !== checksum) {
    throw new LarchError('OBJECT_CORRUPTED', `Corrupted ${type} object; checksum expected='${checksum}' actual='${actual}'`, { type, checksum, actual });
  }
}

export function corrupted(repo: Repo, type: ObjectType, checksum: Checksum, e: unknown): LarchError {
  if (e instanceof LarchError && e.code !== 'OBJECT_CORRUPTED' && e.code !== 'INVALID_NAME' && e.code !== 'INVALID_CHECKSUM') return e;
  const msg = e instanceof Error ? e.message : String(e);
  return new LarchError('OBJECT_CORRUPTED', `Corrupted ${type} object ${checksum}: ${msg}`, { type, checksum }, { cause: e });
}

/** Read, checksum-verify and parse a commit. */
export async function readCommit(repo: Repo, checksum: Checksum): Promise<Commit> {
  const b = await repo.readMetadata('commit', checksum);
  checkDigest(repo, 'commit', checksum, b);
  try {
    return parseCommit(b);
  } catch (e) {
    throw corrupted(repo, 'commit', checksum, e);
  }
}

/** Read, checksum-verify and parse a dirtree (names, 32-byte checksums, order, normal form). */
export async function readDirTree(repo: Repo, checksum: Checksum): Promise<DirTree> {
  const b = await repo.readMetadata('dirtree', checksum);
  checkDigest(repo, 'dirtree', checksum, b);
  try {
    return parseDirTree(b);
  } catch (e) {
    throw corrupted(repo, 'dirtree', checksum, e);
  }
}

/** Read, checksum-verify and parse a dirmeta. */
export async function readDirMeta(repo: Repo, checksum: Checksum): Promise<DirMeta> {
  const b = await repo.readMetadata('dirmeta', checksum);
  checkDigest(repo, 'dirmeta', checksum, b);
  try {
    return parseDirMeta(b);
  } catch (e) {
    throw corrupted(repo, 'dirmeta', checksum, e);
  }
}

/** Detached metadata of a commit, or null when there is none. */
export async function readCommitMeta(repo: Repo, commit: Checksum): Promise<Array<[string, Variant]> | null> {
  let b: Uint8Array;
  try {
    b = await repo.readMetadata('commitmeta', commit);
  } catch (e) {
    if (e instanceof LarchError && e.code === 'OBJECT_MISSING') return null;
    throw e;
  }
  try {
    return parseCommitMeta(b);
  } catch (e) {
    throw corrupted(repo, 'commitmeta', commit, e);
  }
}

/** Open a content object: its meta, uncompressed size, and a factory for fresh content streams. */
export async function openFile(repo: Repo, checksum: Checksum): Promise<OpenedContent> {
  try {
    return await openContentObject(repo.mode, repo.objectPath('file', checksum), checksum);
  } catch (e) {
    if (repo.parent !== null && e instanceof LarchError && e.code === 'OBJECT_MISSING') return repo.parent.openFile(checksum);
    throw e;
  }
}

/**
 * A regular-file content object of a bare mode opened for positioned reads, synchronously: its
 * descriptor (the caller closes it) and size. Throws OBJECT_MISSING, or OBJECT_CORRUPTED for an
 * object that is not a regular file. Not verified (see {@link verifyFile}).
 */
export function openRegularFileSync(repo: Repo, checksum: Checksum): { fd: number; size: number } {
  validateChecksum(checksum);
  try {
    return openBareRegularSync(repo.mode, repo.objectPath('file', checksum), checksum);
  } catch (e) {
    // A parent of another mode stores another format: the caller's bare read cannot use it.
    if (repo.parent?.mode === repo.mode && e instanceof LarchError && e.code === 'OBJECT_MISSING') return repo.parent.openRegularFileSync(checksum);
    throw e;
  }
}

/** Re-hash a content object. Throws OBJECT_MISSING, or OBJECT_CORRUPTED with data {checksum, actual}. */
export async function verifyFile(repo: Repo, checksum: Checksum): Promise<void> {
  let actual: string;
  try {
    const f = await repo.openFile(checksum);
    const h = contentHasher(f.meta);
    for await (const chunk of f.open() as AsyncIterable<Buffer>) h.update(chunk);
    actual = h.digest('hex');
  } catch (e) {
    if (e instanceof LarchError && e.code === 'OBJECT_MISSING') throw e;
    if (e instanceof LarchError && (e.code === 'OBJECT_CORRUPTED' || e.code === 'INVALID_NAME')) {
      throw new LarchError('OBJECT_CORRUPTED', e.message.includes(checksum) ? e.message : `Corrupted object ${checksum}.file: ${e.message}`, { ...e.data, checksum, actual: null }, { cause: e });
    }
    throw e;
  }
  if (actual !== checksum) {
    throw fileChecksumMismatch(checksum, actual);
  }
}

/**
 * Every object in this repository's `objects/` (any order), not its parent's (ostree's
 * LIST_OBJECTS_NO_PARENTS). Files that are not objects of this mode are skipped.
 */
export async function *listObjects(repo: Repo): AsyncIterable<{ type: ObjectType; checksum: Checksum }> {
  const root = join(repo.path, OBJECTS_DIR);
  const contentExt = repo.mode === 'archive' ? 'filez' : 'file';
  const byExt = new Map<string, ObjectType>([
    [contentExt, 'file'],
    ['dirtree', 'dirtree'],
    ['dirmeta', 'dirmeta'],
    ['commit', 'commit'],
    ['tombstone-commit', 'tombstone-commit'],
    ['commitmeta', 'commitmeta'],
  ]);
  let dirs: string[];
  try {
    dirs = await fsp.readdir(root);
  } catch (e) {
    throw ioError(e, 'Listing objects in', root);
  }
  for (const d of dirs.sort()) {
    if (!/^[0-9a-f]{2}$/.test(d)) continue;
    let names: string[];
    try {
      // Synchronous: one of 256 directories at a time, far cheaper than a thread-pool round trip each.
      names = readdirSync(join(root, d));
    } catch (e) {
      if (hasErrno(e, 'ENOTDIR') || hasErrno(e, 'ENOENT')) continue;
      throw ioError(e, 'Listing objects in', join(root, d));
    }
    for (const n of names) {
      const dot = n.indexOf('.');
      if (dot !== 62) continue;
      const type = byExt.get(n.slice(63));
      const checksum = d + n.slice(0, 62);
      if (type && isChecksum(checksum)) yield { type, checksum };
    }
  }
}

/** Unlink one object. Throws OBJECT_MISSING when absent. Callers hold the exclusive lock. */
export async function deleteObject(repo: Repo, type: ObjectType, checksum: Checksum): Promise<void> {
  const p = repo.objectPath(type, checksum);
  try {
    await fsp.unlink(p);
  } catch (e) {
    if (hasErrno(e, 'ENOENT')) throw new LarchError('OBJECT_MISSING', `Object missing: ${checksum}.${type}`, { type, checksum });
    throw ioError(e, 'Deleting object', p);
  }
}
