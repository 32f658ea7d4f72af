/**
 * bare-user objects keep the real ownership and mode in the `user.ostreemeta` xattr as
 * `(uuua(ayay))` (repo-format.md 4.3), with the file type bits of the logical object (so 0120777
 * for a symlink that is stored as a regular file holding its target and a NUL).
 */
import { S_IFMT, S_IFREG, type FileMeta } from '../types.js';
import { corrupt, equalBytes } from './framing.js';
import { parseUuuXattrs, serializeUuuXattrs } from './dirmeta.js';
import { validateFileMode } from './file-header.js';

export const USER_META_XATTR = 'user.ostreemeta';

export function serializeUserMeta(meta: FileMeta): Uint8Array {
  validateFileMode(meta.mode, 'user.ostreemeta');
  return serializeUuuXattrs(meta.uid, meta.gid, meta.mode, meta.xattrs);
}

/** Parse `user.ostreemeta`; the symlink target is not in it (it is the object's content). */
export function parseUserMeta(bytes: Uint8Array): Omit<FileMeta, 'symlinkTarget'> {
  const m = parseUuuXattrs(bytes, 'user.ostreemeta');
  validateFileMode(m.mode, 'user.ostreemeta');
  if (!equalBytes(serializeUuuXattrs(m.uid, m.gid, m.mode, m.xattrs), bytes)) throw corrupt('user.ostreemeta', 'not in normal form');
  return m;
}

/** The on-disk mode of a bare-user object: `(mode & (S_IFREG|0775)) | 0400` for files, 0644 regular files for symlinks (confirmed against ostree 2022.7). */
export function bareUserStoredMode(mode: number): number {
  if ((mode & S_IFMT) === S_IFREG) return (mode & (S_IFREG | 0o775)) | 0o400;
  if ((mode & S_IFMT) === 0o120000) return S_IFREG | 0o644;
  throw corrupt('file', `Not a regular file or symlink: mode 0${mode.toString(8)}`);
}
