/**
 * Archive-mode `.filez` objects (repo-format.md 4.1): BE32 len(H) | 4 zero bytes | H | raw
 * deflate of the payload, with H = `(tuuuusa(ayay))` = (uncompressed size, uid, gid, mode,
 * rdev, symlink target, xattrs), integers big-endian. The content checksum is taken over the
 * re-synthesized plain file header, never over the stored file.
 */
import { S_IFLNK, S_IFMT, type FileMeta } from '../types.js';
import { corrupt, equalBytes } from './framing.js';
import { parseHeaderTail, serializeHeaderBody, validateFileMode } from './file-header.js';

/** Bound on the archive header length we accept before reading it (OSTree bounds it by the file size; we also cap it). */
export const MAX_ARCHIVE_HEADER_SIZE = 16 * 1024 * 1024;
/** Bytes before H: the BE32 length and 4 reserved zero bytes. */
export const ARCHIVE_HEADER_PREFIX = 8;

export interface ArchiveHeader {
  meta: FileMeta;
  /** Uncompressed payload size (0 for symlinks). */
  size: number;
}

export function serializeArchiveHeaderVariant(h: ArchiveHeader): Uint8Array {
  validateFileMode(h.meta.mode, 'archive header');
  if (!Number.isSafeInteger(h.size) || h.size < 0) throw corrupt('archive header', `invalid size ${h.size}`);
  const lead = new Uint8Array(24);
  const dv = new DataView(lead.buffer);
  dv.setBigUint64(0, BigInt(h.size), false);
  dv.setUint32(8, h.meta.uid, false);
  dv.setUint32(12, h.meta.gid, false);
  dv.setUint32(16, h.meta.mode, false);
  dv.setUint32(20, 0, false);
  return serializeHeaderBody(lead, h.meta);
}

/** The stored prefix of a `.filez`: BE32 len | 0000 | H. */
export function serializeArchiveHeader(h: ArchiveHeader): Uint8Array {
  const v = serializeArchiveHeaderVariant(h);
  const out = new Uint8Array(ARCHIVE_HEADER_PREFIX + v.length);
  new DataView(out.buffer).setUint32(0, v.length, false);
  out.set(v, ARCHIVE_HEADER_PREFIX);
  return out;
}

/**
 * Read the header length from the first 8 bytes of a `.filez`; throws OBJECT_CORRUPTED when it
 * is 0, exceeds the bound, or exceeds `fileSize - 8`.
 */
export function archiveHeaderLength(prefix: Uint8Array, fileSize: number): number {
  if (prefix.length < ARCHIVE_HEADER_PREFIX || fileSize < ARCHIVE_HEADER_PREFIX) throw corrupt('archive header', 'file too short');
  const dv = new DataView(prefix.buffer, prefix.byteOffset, prefix.byteLength);
  const len = dv.getUint32(0, false);
  if (len === 0) throw corrupt('archive header', 'zero header length');
  if (len > MAX_ARCHIVE_HEADER_SIZE) throw corrupt('archive header', `File header size ${len} exceeds limit ${MAX_ARCHIVE_HEADER_SIZE}`);
  if (len > fileSize - ARCHIVE_HEADER_PREFIX) throw corrupt('archive header', `File header size ${len} exceeds size ${fileSize}`);
  return len;
}

/** Parse and validate H (normal form, mode, rdev 0, symlinks have size 0). */
export function parseArchiveHeaderVariant(v: Uint8Array): ArchiveHeader {
  const what = 'archive header';
  if (v.length < 25) throw corrupt(what, 'too short');
  const dv = new DataView(v.buffer, v.byteOffset, v.byteLength);
  const size64 = dv.getBigUint64(0, false);
  if (size64 > BigInt(Number.MAX_SAFE_INTEGER)) throw corrupt(what, `size ${size64} too large`);
  const uid = dv.getUint32(8, false);
  const gid = dv.getUint32(12, false);
  const mode = dv.getUint32(16, false);
  const rdev = dv.getUint32(20, false);
  if (rdev !== 0) throw corrupt(what, `non-zero rdev ${rdev}`);
  validateFileMode(mode, what);
  const { symlinkTarget, xattrs } = parseHeaderTail(v, 24, what);
  const isLink = (mode & S_IFMT) === S_IFLNK;
  if (isLink !== (symlinkTarget.length > 0)) throw corrupt(what, 'symlink target does not match mode');
  const h: ArchiveHeader = { meta: { uid, gid, mode, symlinkTarget, xattrs }, size: Number(size64) };
  if (isLink && h.size !== 0) throw corrupt(what, 'symlink with non-zero size');
  if (!equalBytes(serializeArchiveHeaderVariant(h), v)) throw corrupt(what, 'not in normal form');
  return h;
}
