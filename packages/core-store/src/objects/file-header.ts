/**
 * The content-object header `(uuuusa(ayay))` = (uid, gid, mode, rdev, symlink target, xattrs),
 * integers big-endian (spec/repo-format.md 2 and gvariant.md 5.3-5.4), and the content checksum
 * sha256(BE32 len | 4 zero bytes | header | payload). The same bytes are checksummed in every
 * repo mode; archive objects store a variant of it with the size prepended (archive-header.ts)
 * and bare-user objects store `(uuua(ayay))` in the `user.ostreemeta` xattr (user-meta.ts).
 */
import { createHash } from 'node:crypto';
import { S_IFLNK, S_IFMT, S_IFREG, type Checksum, type FileMeta } from '../types.js';
import { corrupt, equalBytes, getOffset, putOffset, readString, readWidth, utf8, writeWidth } from './framing.js';
import { parseXattrs, serializeXattrs } from './xattrs.js';

/** Longest symlink target accepted (PATH_MAX, what the kernel allows). */
export const MAX_SYMLINK_TARGET = 4096;

/** Throws OBJECT_CORRUPTED unless `mode` is a regular file or symlink with only 07777 permission bits. */
export function validateFileMode(mode: number, what = 'file header'): void {
  if (!Number.isInteger(mode) || mode < 0 || mode > 0xffffffff) throw corrupt(what, `invalid mode ${mode}`);
  const type = mode & S_IFMT;
  if (type !== S_IFREG && type !== S_IFLNK) throw corrupt(what, `Invalid file metadata mode 0${mode.toString(8)}: not a regular file or symlink`);
  if ((mode & ~(S_IFMT | 0o7777)) !== 0) throw corrupt(what, `Invalid mode 0${mode.toString(8)} with bits outside 07777`);
}

function checkMeta(meta: FileMeta): void {
  validateFileMode(meta.mode);
  const isLink = (meta.mode & S_IFMT) === S_IFLNK;
  if (isLink && meta.symlinkTarget.length === 0) throw corrupt('file header', 'symlink with empty target');
  if (!isLink && meta.symlinkTarget.length !== 0) throw corrupt('file header', 'regular file with a symlink target');
  for (const n of [meta.uid, meta.gid]) if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw corrupt('file header', `invalid uid/gid ${n}`);
}

/**
 * Serialize the header body starting with `lead` bytes of fixed integers already laid out by
 * the caller (16 for the file header, 24 for the archive header).
 */
export function serializeHeaderBody(lead: Uint8Array, meta: FileMeta): Uint8Array {
  const target = utf8.encode(meta.symlinkTarget);
  if (target.length > MAX_SYMLINK_TARGET) throw corrupt('file header', 'symlink target too long');
  if (target.includes(0)) throw corrupt('file header', 'symlink target contains NUL');
  const xattrs = serializeXattrs(meta.xattrs);
  const strEnd = lead.length + target.length + 1;
  const body = strEnd + xattrs.length;
  const w = writeWidth(body, 1);
  const out = new Uint8Array(body + w);
  out.set(lead, 0);
  out.set(target, lead.length);
  out[strEnd - 1] = 0;
  out.set(xattrs, strEnd);
  putOffset(out, body, strEnd, w);
  return out;
}

/** Parse the shared tail of both headers: after `leadLen` bytes, `s` then `a(ayay)` with one offset. */
export function parseHeaderTail(v: Uint8Array, leadLen: number, what: string): { symlinkTarget: string; xattrs: FileMeta['xattrs'] } {
  const size = v.length;
  const w = readWidth(size);
  if (size < leadLen + 1 + w) throw corrupt(what, 'too short');
  const strEnd = getOffset(v, size - w, w);
  if (strEnd <= leadLen || strEnd > size - w) throw corrupt(what, 'string offset out of range');
  const symlinkTarget = readString(v, leadLen, strEnd, what);
  const xattrs = parseXattrs(v, strEnd, size - w, what);
  return { symlinkTarget, xattrs };
}

/** The `(uuuusa(ayay))` GVariant bytes for `meta` (xattrs sorted). */
export function serializeFileHeaderVariant(meta: FileMeta): Uint8Array {
  checkMeta(meta);
  const lead = new Uint8Array(16);
  const dv = new DataView(lead.buffer);
  dv.setUint32(0, meta.uid, false);
  dv.setUint32(4, meta.gid, false);
  dv.setUint32(8, meta.mode, false);
  dv.setUint32(12, 0, false);
  return serializeHeaderBody(lead, meta);
}

/** Parse and validate `(uuuusa(ayay))` bytes (normal form, mode, rdev 0, target consistency). */
export function parseFileHeaderVariant(v: Uint8Array): FileMeta {
  const what = 'file header';
  if (v.length < 17) throw corrupt(what, 'too short');
  const dv = new DataView(v.buffer, v.byteOffset, v.byteLength);
  const uid = dv.getUint32(0, false);
  const gid = dv.getUint32(4, false);
  const mode = dv.getUint32(8, false);
  const rdev = dv.getUint32(12, false);
  if (rdev !== 0) throw corrupt(what, `non-zero rdev ${rdev}`);
  const { symlinkTarget, xattrs } = parseHeaderTail(v, 16, what);
  const meta: FileMeta = { uid, gid, mode, symlinkTarget, xattrs };
  checkMeta(meta);
  if (!equalBytes(serializeFileHeaderVariant(meta), v)) throw corrupt(what, 'not in normal form');
  return meta;
}

/** The checksummed header prefix: BE32 len(V) | 00 00 00 00 | V (repo-format.md 2). */
export function fileHeader(meta: FileMeta): Uint8Array {
  const v = serializeFileHeaderVariant(meta);
  const out = new Uint8Array(8 + v.length);
  new DataView(out.buffer).setUint32(0, v.length, false);
  out.set(v, 8);
  return out;
}

/**
 * Content checksum of a file: sha256(fileHeader(meta) || payload). `content` is the regular
 * file's bytes (ignored for symlinks). For large files hash with {@link contentHasher} instead.
 */
export function contentChecksumOf(meta: FileMeta, content: Uint8Array = new Uint8Array(0)): Checksum {
  const h = createHash('sha256');
  h.update(fileHeader(meta));
  if ((meta.mode & S_IFMT) === S_IFREG) h.update(content);
  return h.digest('hex');
}

/** A sha256 already fed with the header, to stream the payload into. */
export function contentHasher(meta: FileMeta): ReturnType<typeof createHash> {
  const h = createHash('sha256');
  h.update(fileHeader(meta));
  return h;
}
