/**
 * Materialising a file by copy: archive objects inflated (small ones whole and synchronously,
 * larger ones as a stream), bare objects copied by the kernel (reflink when it can), symlinks
 * recreated; then the owner, xattrs and mode (user mode: no owner or xattrs, no setuid/setgid).
 */
import { chmodSync, closeSync, constants as C, fstatSync, lchownSync, openSync, promises as fsp, readSync, symlinkSync } from 'node:fs';
import { Readable } from 'node:stream';
import { inflateRawSync } from 'node:zlib';
import path from 'node:path';
import * as native from '@larch/native';
import { LarchError } from './errors.js';
import { writeAllSync } from './objects/content-io.js';
import { CREATE_EXCL_NOFOLLOW, sanitize } from './fs-safety.js';
import { archiveHeaderLength, parseArchiveHeaderVariant } from './objects/index.js';
import type { Repo } from './repo.js';
import { S_IFLNK, S_IFMT, S_IFREG, type Checksum, type FileMeta } from './types.js';
import { type Ctx, checkAbort, ioErr, report, tmpName, userFileMode } from './checkout-context.js';
import { identicalToObject } from './checkout-union.js';

/** Create one file by copy (regular files) or symlink(2), honouring the union mode. */
export async function copyFile(ctx: Ctx, dir: string, name: string, csum: Checksum): Promise<void> {
  checkAbort(ctx.opts.signal);
  const obj = (ctx.repo.mode === 'archive' ? readSmallArchive(ctx, csum) : null) ?? (await ctx.repo.openFile(csum));
  const meta = obj.meta;
  const target = path.join(dir, name);
  const type = meta.mode & S_IFMT;
  if (type !== S_IFREG && type !== S_IFLNK) {
    throw new LarchError('OBJECT_CORRUPTED', `Corrupted file object ${csum}: invalid mode 0${meta.mode.toString(8)}`, {
      type: 'file',
      checksum: csum,
    });
  }
  // Write to the final name exclusively; on EEXIST decide per union mode.
  let writeTo = target;
  let replacing = false;
  if (await createEntry(ctx, obj, writeTo)) {
    // created
  } else {
    const o = ctx.opts;
    if (o.unionAdd) return;
    if (o.unionIdentical) {
      if (await identicalToObject(ctx, obj, target)) {
        ctx.stats.files++;
        return;
      }
      throw new LarchError('EXISTS', `Copying ${csum}.file to ${sanitize(name)}: File exists`, { path: target, checksum: csum });
    }
    if (!o.union) throw new LarchError('EXISTS', `Copying ${csum}.file to ${sanitize(name)}: File exists`, { path: target, checksum: csum });
    writeTo = tmpName(dir, name);
    replacing = true;
    if (!(await createEntry(ctx, obj, writeTo))) throw new LarchError('EXISTS', `${sanitize(writeTo)}: File exists`, { path: writeTo });
  }
  try {
    await applyMeta(ctx, writeTo, meta);
    if (replacing && ctx.opts.processWhiteouts) await fsp.rm(target, { recursive: true, force: true });
    if (replacing) await fsp.rename(writeTo, target);
  } catch (e) {
    if (replacing) await fsp.unlink(writeTo).catch(() => undefined);
    throw ioErr(e, 'Setting metadata of', target);
  }
  ctx.stats.copied++;
  ctx.stats.files++;
  report(ctx, false);
}

/**
 * The copy path's common case done synchronously: a small archive object (regular file or
 * symlink) checked out without a union mode. False when the object is too large to read whole
 * (the caller streams it with {@link copyFile}). Same checks and errors as copyFile; being
 * synchronous, it leaves nothing alive across event-loop turns, which keeps a long copy
 * checkout's memory flat.
 */
export function copySmallArchiveSync(ctx: Ctx, dir: string, name: string, csum: Checksum): boolean {
  checkAbort(ctx.opts.signal);
  const obj = readSmallArchive(ctx, csum);
  if (obj === null) return false;
  const meta = obj.meta;
  const type = meta.mode & S_IFMT;
  if (type !== S_IFREG && type !== S_IFLNK) {
    throw new LarchError('OBJECT_CORRUPTED', `Corrupted file object ${csum}: invalid mode 0${meta.mode.toString(8)}`, { type: 'file', checksum: csum });
  }
  const target = path.join(dir, name);
  try {
    if (type === S_IFLNK) symlinkSync(meta.symlinkTarget, target);
    else {
      const fd = openSync(target, CREATE_EXCL_NOFOLLOW, 0o600);
      try {
        writeAllSync(fd, obj.payload!);
      } finally {
        closeSync(fd);
      }
    }
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new LarchError('EXISTS', `Copying ${csum}.file to ${sanitize(name)}: File exists`, { path: target, checksum: csum });
    }
    throw ioErr(e, 'Creating', target);
  }
  try {
    applyMetaSync(ctx, target, meta);
  } catch (e) {
    throw ioErr(e, 'Setting metadata of', target);
  }
  ctx.stats.copied++;
  ctx.stats.files++;
  report(ctx, false);
  return true;
}

export type OpenedFile = Awaited<ReturnType<Repo['openFile']>> & { payload?: Buffer };

/** Archive objects up to this size, on disk and inflated, are read and inflated in one go instead of streamed. */
export const SMALL_ARCHIVE_OBJECT = 1024 * 1024;

/**
 * Read a small archive object whole and inflate it: one open/fstat/read/close and one inflate,
 * instead of a header read plus a stream pipeline per file. Null when the object is larger than
 * SMALL_ARCHIVE_OBJECT (the caller streams it). The checksum is not verified here, as with
 * ostree's checkout; fsck verifies.
 */
export function readSmallArchive(ctx: Ctx, csum: Checksum): OpenedFile | null {
  // In the repository itself or an archive parent; one of another mode is read by openFile.
  const objectPath = ctx.repo.objectReadPath('file', csum);
  let fd: number;
  try {
    fd = openSync(objectPath, C.O_RDONLY | C.O_NOFOLLOW);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT' && ctx.repo.parent !== null) return null;
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new LarchError('OBJECT_MISSING', `Object missing: ${csum}.file`, { type: 'file', checksum: csum });
    throw ioErr(e, 'Opening', objectPath);
  }
  let buf: Buffer;
  try {
    const size = fstatSync(fd).size;
    if (size > SMALL_ARCHIVE_OBJECT) return null;
    // Read into one reused buffer: only the header (copied out by its parser) and the
    // inflated payload (a buffer of its own) outlive this call.
    if (ctx.objBuf.length < size) ctx.objBuf = Buffer.allocUnsafeSlow(Math.max(size, 2 * ctx.objBuf.length));
    buf = ctx.objBuf;
    let off = 0;
    while (off < size) {
      const n = readSync(fd, buf, off, size - off, off);
      if (n === 0) break;
      off += n;
    }
    buf = buf.subarray(0, off);
  } finally {
    closeSync(fd);
  }
  const bad = (detail: string, cause?: unknown): LarchError =>
    new LarchError('OBJECT_CORRUPTED', `Corrupted file object ${csum}: ${detail}`, { type: 'file', checksum: csum }, cause !== undefined ? { cause } : undefined);
  let h;
  let hlen: number;
  try {
    hlen = archiveHeaderLength(buf.subarray(0, 8), buf.length);
    h = parseArchiveHeaderVariant(buf.subarray(8, 8 + hlen));
  } catch (e) {
    throw bad((e as Error).message, e);
  }
  let payload: Buffer = Buffer.alloc(0);
  if ((h.meta.mode & S_IFMT) === S_IFREG) {
    // A well-compressed large file is small on disk: stream it rather than inflate it whole.
    if (h.size > SMALL_ARCHIVE_OBJECT) return null;
    try {
      // One output chunk of the declared size, and never more than it: a payload that inflates
      // past its header's size fails here instead of filling memory.
      payload = inflateRawSync(buf.subarray(8 + hlen), { chunkSize: h.size + 64, maxOutputLength: Math.max(1, h.size) });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') throw bad(`payload inflates past the ${h.size} bytes its header declares`, e);
      throw bad(`decompression failed: ${(e as Error).message}`, e);
    }
    if (payload.length !== h.size) throw bad(`payload is ${payload.length} bytes, header says ${h.size}`);
  }
  const p = payload;
  return { meta: h.meta, size: h.size, objectPath, payload: p, open: () => Readable.from([p]) };
}

/** Create `p` exclusively (never through a symlink) with the object's content. False on EEXIST. */
export async function createEntry(ctx: Ctx, obj: OpenedFile, p: string): Promise<boolean> {
  const meta = obj.meta;
  try {
    if ((meta.mode & S_IFMT) === S_IFLNK) {
      await fsp.symlink(meta.symlinkTarget, p);
      return true;
    }
    if (obj.payload !== undefined) {
      const fd = openSync(p, CREATE_EXCL_NOFOLLOW, 0o600);
      try {
        writeAllSync(fd, obj.payload);
      } finally {
        closeSync(fd);
      }
      return true;
    }
    if (!obj.objectPath.endsWith('.filez')) {
      // Bare objects (here, or in a parent of a bare mode) hold the raw content: let the kernel copy (reflink when it can). COPYFILE_EXCL
      // opens with O_CREAT|O_EXCL, which fails on any existing entry including a dangling symlink.
      await fsp.copyFile(obj.objectPath, p, C.COPYFILE_EXCL | C.COPYFILE_FICLONE);
      return true;
    }
    const fh = await fsp.open(p, CREATE_EXCL_NOFOLLOW, 0o600);
    try {
      for await (const chunk of obj.open() as AsyncIterable<Buffer>) {
        let off = 0;
        while (off < chunk.length) off += (await fh.write(chunk, off, chunk.length - off)).bytesWritten;
      }
    } finally {
      await fh.close();
    }
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw ioErr(e, 'Creating', p);
  }
}

/** Owner, xattrs and mode of a file this checkout just created (metadata syscalls, done inline). */
export async function applyMeta(ctx: Ctx, p: string, meta: FileMeta): Promise<void> {
  applyMetaSync(ctx, p, meta);
}

export function applyMetaSync(ctx: Ctx, p: string, meta: FileMeta): void {
  const isLink = (meta.mode & S_IFMT) === S_IFLNK;
  if (!ctx.userMode) {
    lchownSync(p, meta.uid, meta.gid);
    for (const x of meta.xattrs) native.lsetxattr(p, x.name, x.value);
  }
  if (!isLink) chmodSync(p, ctx.userMode ? userFileMode(meta.mode) : meta.mode & 0o7777);
}
