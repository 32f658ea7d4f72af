/**
 * dirmeta `(uuua(ayay))` (repo-format.md 3.2): uid, gid, mode big-endian, sorted xattrs.
 * The mode must be a directory with only 07777 permission bits.
 */
import { S_IFDIR, S_IFMT, type DirMeta } from '../types.js';
import { corrupt, equalBytes } from './framing.js';
import { parseXattrs, serializeXattrs } from './xattrs.js';

export function validateDirMode(mode: number): void {
  if (!Number.isInteger(mode) || mode < 0 || mode > 0xffffffff || (mode & S_IFMT) !== S_IFDIR || (mode & ~(S_IFMT | 0o7777)) !== 0) {
    throw corrupt('dirmeta', `Invalid directory metadata mode 0${Number(mode).toString(8)}`);
  }
}

/** Shared with bare-user's `user.ostreemeta`, which has the same layout. */
export function serializeUuuXattrs(uid: number, gid: number, mode: number, xattrs: DirMeta['xattrs']): Uint8Array {
  for (const n of [uid, gid]) if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw corrupt('metadata', `invalid uid/gid ${n}`);
  const x = serializeXattrs(xattrs);
  const out = new Uint8Array(12 + x.length);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, uid, false);
  dv.setUint32(4, gid, false);
  dv.setUint32(8, mode, false);
  out.set(x, 12);
  return out;
}

export function parseUuuXattrs(bytes: Uint8Array, what: string): { uid: number; gid: number; mode: number; xattrs: DirMeta['xattrs'] } {
  if (bytes.length < 12) throw corrupt(what, 'too short');
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return {
    uid: dv.getUint32(0, false),
    gid: dv.getUint32(4, false),
    mode: dv.getUint32(8, false),
    xattrs: parseXattrs(bytes, 12, bytes.length, what),
  };
}

export function serializeDirMeta(m: DirMeta): Uint8Array {
  validateDirMode(m.mode);
  return serializeUuuXattrs(m.uid, m.gid, m.mode, m.xattrs);
}

/** Parse and validate a dirmeta object (mode, sorted xattrs, normal form). */
export function parseDirMeta(bytes: Uint8Array): DirMeta {
  const m = parseUuuXattrs(bytes, 'dirmeta');
  validateDirMode(m.mode);
  if (!equalBytes(serializeDirMeta(m), bytes)) throw corrupt('dirmeta', 'not in normal form');
  return m;
}
