/**
 * Reading and staging content objects in each repo mode (repo-format.md 4).
 *
 * Write protocol: the object is written to a private temporary file in the repo's `tmp/`, its
 * checksum is computed from the bytes as they stream through (never by re-reading a path
 * someone else controls), the result is compared with any expected checksum, and only then is
 * the file published under `objects/XX/` by the caller (see repo.ts: fsync, link without
 * replacing, fsync the directory). A failure at any step unlinks the temporary file.
 *
 * Read protocol: archive headers are length-checked against the file size before being read,
 * and the inflated payload is cut off with an error as soon as it exceeds the declared size.
 */
import {
  closeSync,
  constants as fsc,
  createReadStream,
  createWriteStream,
  fchmodSync,
  fchownSync,
  fstatSync,
  futimesSync,
  lchownSync,
  lutimesSync,
  openSync,
  promises as fsp,
  symlinkSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createDeflateRaw, createInflateRaw, deflateRaw } from 'node:zlib';
import { promisify } from 'node:util';
import type { Hash } from 'node:crypto';
import { lgetxattr, llistxattr, lsetxattr } from '@larch/native';
import { LarchError, hasErrno, ioError } from '../errors.js';
import { S_IFLNK, S_IFMT, S_IFREG, type FileMeta, type RepoMode, type Xattr } from '../types.js';
import { ARCHIVE_HEADER_PREFIX, archiveHeaderLength, parseArchiveHeaderVariant, serializeArchiveHeader } from './archive-header.js';
import { contentHasher, MAX_SYMLINK_TARGET } from './file-header.js';
import { corrupt, utf8 } from './framing.js';
import { bareUserStoredMode, parseUserMeta, serializeUserMeta, USER_META_XATTR } from './user-meta.js';
import { sortXattrs } from './xattrs.js';

const deflateRawAsync = promisify(deflateRaw);

export type ContentSource =
  | { path: string }
  | { bytes: Uint8Array }
  | { stream: NodeJS.ReadableStream; size: number };

export interface OpenedContent {
  meta: FileMeta;
  size: number;
  open(): NodeJS.ReadableStream;
  objectPath: string;
}

/** Counts bytes, feeds a hash, and fails when more than `limit` bytes arrive. */
export class HashCounter extends Transform {
  count = 0;
  constructor(private readonly hash: Hash | null, private readonly limit: number, private readonly what: string) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.count += chunk.length;
    if (this.count > this.limit) {
      cb(new LarchError('OBJECT_CORRUPTED', `${this.what}: more data than the declared size ${this.limit}`, { size: this.limit }));
      return;
    }
    this.hash?.update(chunk);
    cb(null, chunk);
  }
  override _flush(cb: TransformCallback): void {
    if (this.count !== this.limit) {
      cb(new LarchError('OBJECT_CORRUPTED', `${this.what}: got ${this.count} bytes, declared size ${this.limit}`, { size: this.limit, actual: this.count }));
      return;
    }
    cb();
  }
}

/** Read all xattrs of a path (no-follow), sorted by name. */
export function readXattrs(path: string, skip?: (name: string) => boolean): Xattr[] {
  const names = llistxattr(path);
  if (names.length === 0) return [];
  const out: Xattr[] = [];
  for (const name of names) {
    if (skip?.(name)) continue;
    const v = lgetxattr(path, name);
    if (v !== null) out.push({ name, value: new Uint8Array(v) });
  }
  return sortXattrs(out);
}

/** Open a content object for reading in the repo's mode. Throws OBJECT_MISSING / OBJECT_CORRUPTED. */
export async function openContentObject(mode: RepoMode, objectPath: string, checksum: string): Promise<OpenedContent> {
  const missing = (e: unknown): never => {
    if (hasErrno(e, 'ENOENT')) throw new LarchError('OBJECT_MISSING', `Object missing: ${checksum}.file`, { checksum, type: 'file' });
    throw ioError(e, 'Opening content object', objectPath);
  };
  if (mode === 'archive') {
    let fh: fsp.FileHandle;
    try {
      fh = await fsp.open(objectPath, 'r');
    } catch (e) {
      return missing(e);
    }
    let headerLen: number;
    let parsed;
    try {
      const st = await fh.stat();
      const prefix = Buffer.alloc(ARCHIVE_HEADER_PREFIX);
      await fh.read(prefix, 0, ARCHIVE_HEADER_PREFIX, 0);
      headerLen = archiveHeaderLength(prefix, st.size);
      const h = Buffer.alloc(headerLen);
      const { bytesRead } = await fh.read(h, 0, headerLen, ARCHIVE_HEADER_PREFIX);
      if (bytesRead !== headerLen) throw corrupt('archive header', 'truncated');
      parsed = parseArchiveHeaderVariant(h);
    } catch (e) {
      throw withChecksum(e, checksum);
    } finally {
      await fh.close();
    }
    const { meta, size } = parsed;
    const start = ARCHIVE_HEADER_PREFIX + headerLen;
    return {
      meta,
      size,
      objectPath,
      open: () => {
        if ((meta.mode & S_IFMT) === S_IFLNK) return emptyStream();
        return chain(createReadStream(objectPath, { start }), createInflateRaw(), new HashCounter(null, size, `Corrupted object ${checksum}.file`), checksum);
      },
    };
  }
  let st;
  try {
    st = await fsp.lstat(objectPath);
  } catch (e) {
    return missing(e);
  }
  if (mode === 'bare-user') {
    let raw: Buffer | null;
    try {
      raw = lgetxattr(objectPath, USER_META_XATTR);
    } catch (e) {
      throw ioError(e, 'Reading user.ostreemeta of', objectPath);
    }
    if (raw === null) throw corrupt(`object ${checksum}.file`, 'Unable to read user.ostreemeta xattr');
    let um;
    try {
      um = parseUserMeta(raw);
    } catch (e) {
      throw withChecksum(e, checksum);
    }
    if (!st.isFile()) throw corrupt(`object ${checksum}.file`, 'bare-user object is not a regular file');
    if ((um.mode & S_IFMT) === S_IFLNK) {
      if (st.size > MAX_SYMLINK_TARGET + 1) throw corrupt(`object ${checksum}.file`, 'symlink target too long');
      const b = await fsp.readFile(objectPath);
      if (b.length === 0 || b[b.length - 1] !== 0) throw corrupt(`object ${checksum}.file`, 'symlink content not NUL-terminated');
      let target: string;
      try {
        target = new TextDecoder('utf-8', { fatal: true }).decode(b.subarray(0, -1));
      } catch {
        throw corrupt(`object ${checksum}.file`, 'symlink target is not valid UTF-8');
      }
      return { meta: { ...um, symlinkTarget: target }, size: 0, objectPath, open: emptyStream };
    }
    const size = st.size;
    return { meta: { ...um, symlinkTarget: '' }, size, objectPath, open: () => boundedFile(objectPath, size, checksum) };
  }
  const isLink = st.isSymbolicLink();
  if (!isLink && !st.isFile()) throw corrupt(`object ${checksum}.file`, 'Not a regular file or symlink');
  const target = isLink ? await fsp.readlink(objectPath) : '';
  const size = isLink ? 0 : st.size;
  let meta: FileMeta;
  if (mode === 'bare') {
    meta = { uid: st.uid, gid: st.gid, mode: st.mode, symlinkTarget: target, xattrs: readXattrs(objectPath) };
  } else {
    // bare-user-only: ownership and xattrs are not stored
    meta = { uid: 0, gid: 0, mode: isLink ? S_IFLNK | 0o777 : st.mode, symlinkTarget: target, xattrs: [] };
  }
  return { meta, size, objectPath, open: isLink ? emptyStream : () => boundedFile(objectPath, size, checksum) };
}

/**
 * Open the content of a regular-file object of a bare mode for positioned reads, synchronously:
 * its descriptor (the caller closes it) and size. OBJECT_MISSING when absent; OBJECT_CORRUPTED
 * when it is not a regular file (a symlink object, or a bare-user object whose stored mode says
 * symlink). The content is not verified.
 */
export function openBareRegularSync(mode: RepoMode, objectPath: string, checksum: string): { fd: number; size: number } {
  if (mode === 'archive') throw new LarchError('INVALID_ARGUMENT', 'openBareRegularSync is for bare modes');
  let fd: number;
  try {
    fd = openSync(objectPath, fsc.O_RDONLY | fsc.O_NOFOLLOW);
  } catch (e) {
    if (hasErrno(e, 'ENOENT')) throw new LarchError('OBJECT_MISSING', `Object missing: ${checksum}.file`, { checksum, type: 'file' });
    if (hasErrno(e, 'ELOOP')) throw corrupt(`object ${checksum}.file`, 'not a regular file');
    throw ioError(e, 'Opening content object', objectPath);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw corrupt(`object ${checksum}.file`, 'not a regular file');
    if (mode === 'bare-user') {
      const raw = lgetxattr(objectPath, USER_META_XATTR);
      if (raw === null) throw corrupt(`object ${checksum}.file`, 'Unable to read user.ostreemeta xattr');
      if ((parseUserMeta(raw).mode & S_IFMT) !== S_IFREG) throw corrupt(`object ${checksum}.file`, 'not a regular file');
    }
    return { fd, size: st.size };
  } catch (e) {
    closeSync(fd);
    throw withChecksum(e, checksum);
  }
}

function boundedFile(path: string, size: number, checksum: string): NodeJS.ReadableStream {
  return chain(createReadStream(path), null, new HashCounter(null, size, `Corrupted object ${checksum}.file`), checksum);
}

/**
 * src -> [inflate] -> bound, where any error (mapped to OBJECT_CORRUPTED for zlib data errors)
 * surfaces on `bound`, and closing `bound` early closes the file descriptor.
 */
function chain(src: Readable, inflate: Transform | null, bound: HashCounter, checksum: string): NodeJS.ReadableStream {
  const fail = (e: unknown): void => {
    const err =
      e instanceof LarchError
        ? e
        : typeof (e as NodeJS.ErrnoException)?.code === 'string' && (e as NodeJS.ErrnoException).code!.startsWith('Z_')
          ? corrupt(`object ${checksum}.file`, `decompression failed: ${(e as Error).message}`)
          : (e as Error);
    src.destroy();
    inflate?.destroy();
    bound.destroy(err);
  };
  src.on('error', fail);
  inflate?.on('error', fail);
  bound.on('close', () => {
    src.destroy();
    inflate?.destroy();
  });
  if (inflate) src.pipe(inflate).pipe(bound);
  else src.pipe(bound);
  return bound;
}

function emptyStream(): NodeJS.ReadableStream {
  const t = new Transform();
  t.end();
  return t;
}

function withChecksum(e: unknown, checksum: string): unknown {
  if (e instanceof LarchError && e.code === 'OBJECT_CORRUPTED') {
    return new LarchError('OBJECT_CORRUPTED', `Corrupted object ${checksum}.file: ${e.message}`, { ...e.data, checksum }, { cause: e });
  }
  return e;
}

/** Validate `meta` for storing in `mode` (bare-user-only refuses what it cannot represent). */
export function checkStorable(mode: RepoMode, meta: FileMeta): void {
  const type = meta.mode & S_IFMT;
  if (type !== S_IFREG && type !== S_IFLNK) {
    throw new LarchError('UNSUPPORTED_FILE', `Not a regular file or symlink: mode 0${meta.mode.toString(8)}`, { mode: meta.mode });
  }
  if (mode === 'bare-user-only') {
    if (type === S_IFREG && (meta.mode & ~(S_IFREG | 0o775)) !== 0) {
      throw new LarchError('UNSUPPORTED_FILE', `Invalid mode 0${meta.mode.toString(8)} with bits 0${(meta.mode & ~(S_IFREG | 0o775)).toString(8)} in bare-user-only`, { mode: meta.mode });
    }
    if (meta.uid !== 0 || meta.gid !== 0 || meta.xattrs.length !== 0) {
      throw new LarchError('UNSUPPORTED_FILE', 'bare-user-only repositories cannot store ownership or xattrs (uid/gid must be 0, no xattrs)', { uid: meta.uid, gid: meta.gid });
    }
  }
}

export interface StagedObject {
  checksum: string;
  tmpPath: string;
  /** Bytes written to disk for this object. */
  written: number;
}

/**
 * Write a content object into `tmpPath` in the layout of `mode`, hashing the payload as it
 * streams. `size` is the payload size (0 for symlinks). `zlibLevel` applies to archive mode.
 * Does not fsync or publish; on error the temporary file is removed.
 */
export async function stageContent(opts: {
  mode: RepoMode;
  meta: FileMeta;
  size: number;
  /** The payload: bytes, or a stream that must deliver exactly `size` bytes. Ignored for symlinks. */
  payload: Uint8Array | NodeJS.ReadableStream | null;
  tmpPath: string;
  zlibLevel: number;
  what: string;
}): Promise<StagedObject> {
  const { mode, meta, size, payload, tmpPath, zlibLevel, what } = opts;
  checkStorable(mode, meta);
  const isLink = (meta.mode & S_IFMT) === S_IFLNK;
  const hash = contentHasher(meta);
  let written = 0;
  try {
    if (isLink) {
      if (mode === 'archive') {
        const header = serializeArchiveHeader({ meta, size: 0 });
        await fsp.writeFile(tmpPath, header, { mode: 0o644 });
        written = header.length;
      } else if (mode === 'bare-user') {
        const content = Buffer.concat([utf8.encode(meta.symlinkTarget), Buffer.alloc(1)]);
        await fsp.writeFile(tmpPath, content, { mode: 0o644 });
        lsetxattr(tmpPath, USER_META_XATTR, serializeUserMeta(meta));
        written = content.length;
      } else {
        await fsp.symlink(meta.symlinkTarget, tmpPath);
        if (mode === 'bare') {
          await fsp.lchown(tmpPath, meta.uid, meta.gid);
          for (const x of meta.xattrs) lsetxattr(tmpPath, x.name, x.value);
        }
        await fsp.lutimes(tmpPath, 0, 0);
      }
      return { checksum: hash.digest('hex'), tmpPath, written };
    }
    if (mode === 'archive') {
      const header = serializeArchiveHeader({ meta, size });
      if (payload instanceof Uint8Array) {
        if (payload.length !== size) throw new LarchError('OBJECT_CORRUPTED', `${what}: size changed while reading`, { size });
        hash.update(payload);
        const z = await deflateRawAsync(payload, { level: zlibLevel });
        const fh = await fsp.open(tmpPath, 'w', 0o644);
        try {
          await fh.writev([header, z]);
        } finally {
          await fh.close();
        }
        written = header.length + z.length;
      } else {
        const out = createWriteStream(tmpPath, { mode: 0o644 });
        out.write(header);
        const counter = new HashCounter(hash, size, what);
        await pipeline(streamOf(payload), counter, createDeflateRaw({ level: zlibLevel }), out);
        written = out.bytesWritten;
      }
    } else {
      const diskMode = mode === 'bare-user' ? bareUserStoredMode(meta.mode) & 0o7777 : meta.mode & 0o7777;
      if (payload instanceof Uint8Array) {
        if (payload.length !== size) throw new LarchError('OBJECT_CORRUPTED', `${what}: size changed while reading`, { size });
        hash.update(payload);
        await fsp.writeFile(tmpPath, payload, { mode: 0o600 });
      } else {
        const counter = new HashCounter(hash, size, what);
        await pipeline(streamOf(payload), counter, createWriteStream(tmpPath, { mode: 0o600 }));
      }
      written = size;
      await finishBareFile(mode, tmpPath, meta, diskMode);
    }
    return { checksum: hash.digest('hex'), tmpPath, written };
  } catch (e) {
    await fsp.rm(tmpPath, { force: true }).catch(() => undefined);
    throw e;
  }
}

/** Apply ownership, mode, xattrs and mtime 0 to a staged bare/bare-user/bare-user-only regular file. */
export async function finishBareFile(mode: RepoMode, tmpPath: string, meta: FileMeta, diskMode: number): Promise<void> {
  if (mode === 'bare') {
    await fsp.chown(tmpPath, meta.uid, meta.gid);
    for (const x of meta.xattrs) lsetxattr(tmpPath, x.name, x.value);
  } else if (mode === 'bare-user') {
    lsetxattr(tmpPath, USER_META_XATTR, serializeUserMeta(meta));
  }
  // chmod after chown: chown clears setuid/setgid bits.
  await fsp.chmod(tmpPath, diskMode);
  await fsp.utimes(tmpPath, 0, 0);
}

function streamOf(s: NodeJS.ReadableStream | null): Readable {
  if (s === null) throw new LarchError('INVALID_ARGUMENT', 'regular file content required');
  return s as Readable;
}

/** Raw-deflate a buffer on the libuv threadpool (archive payloads). */
export function compressForArchive(data: Uint8Array, level: number): Promise<Buffer> {
  // An output buffer as large as deflate's worst case makes the whole job one threadpool
  // round-trip instead of one per 16 KiB of output.
  const bound = data.length + (data.length >>> 10) + 64;
  return deflateRawAsync(data, { level, chunkSize: Math.max(16 * 1024, bound) });
}

/**
 * Synchronously write a content object whose payload is in memory (or a symlink, `data` null)
 * into `tmpPath`. For archive mode `compressed` must be the raw-deflated payload. Returns the
 * bytes written. Used on the commit hot path, where the checksum is already known; on error the
 * temporary file is removed.
 */
export function stageBytesSync(mode: RepoMode, meta: FileMeta, data: Uint8Array | null, tmpPath: string, compressed: Uint8Array | null): number {
  checkStorable(mode, meta);
  const isLink = (meta.mode & S_IFMT) === S_IFLNK;
  try {
    if (isLink && mode !== 'archive' && mode !== 'bare-user') {
      symlinkSync(meta.symlinkTarget, tmpPath);
      if (mode === 'bare') {
        lchownSync(tmpPath, meta.uid, meta.gid);
        for (const x of meta.xattrs) lsetxattr(tmpPath, x.name, x.value);
      }
      lutimesSync(tmpPath, 0, 0);
      return 0;
    }
    const fd = openSync(tmpPath, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, mode === 'archive' ? 0o644 : 0o600);
    try {
      let written = 0;
      if (mode === 'archive') {
        const header = serializeArchiveHeader({ meta, size: isLink ? 0 : (data?.length ?? 0) });
        written = writeAllSync(fd, header);
        if (!isLink) {
          if (compressed === null) throw new LarchError('INVALID_ARGUMENT', 'archive payload must be compressed');
          written += writeAllSync(fd, compressed);
        }
        return written;
      }
      if (isLink) {
        // bare-user: symlinks are regular files holding the target and a NUL
        written = writeAllSync(fd, Buffer.concat([utf8.encode(meta.symlinkTarget), Buffer.alloc(1)]));
        lsetxattr(tmpPath, USER_META_XATTR, serializeUserMeta(meta));
        fchmodSync(fd, 0o644);
        futimesSync(fd, 0, 0);
        return written;
      }
      written = data ? writeAllSync(fd, data) : 0;
      finishBareFileSync(mode, meta, fd, tmpPath);
      return written;
    } finally {
      closeSync(fd);
    }
  } catch (e) {
    try {
      unlinkSync(tmpPath);
    } catch {
      // not created
    }
    throw e;
  }
}

/**
 * Give a staged regular file of a bare mode, its content written, the ownership, xattrs, mode and
 * times the mode stores (bare: the real ones; bare-user: the `user.ostreemeta` xattr and a safe
 * mode). `fd` stays open.
 */
export function finishBareFileSync(mode: RepoMode, meta: FileMeta, fd: number, tmpPath: string): void {
  if (mode === 'bare') {
    fchownSync(fd, meta.uid, meta.gid);
    for (const x of meta.xattrs) lsetxattr(tmpPath, x.name, x.value);
  } else if (mode === 'bare-user') {
    lsetxattr(tmpPath, USER_META_XATTR, serializeUserMeta(meta));
  }
  const diskMode = mode === 'bare-user' ? bareUserStoredMode(meta.mode) & 0o7777 : meta.mode & 0o7777;
  fchmodSync(fd, diskMode); // after fchown, which clears setuid/setgid
  futimesSync(fd, 0, 0);
}

/** Write all of `b` to `fd` (writeSync may write less); returns its length. */
export function writeAllSync(fd: number, b: Uint8Array): number {
  let off = 0;
  while (off < b.length) off += writeSync(fd, b, off, b.length - off);
  return b.length;
}
