/**
 * The vocabulary of an OSTree repository, shared by every module of core-store
 * and by its users. See spec/repo-format.md (sections 1-4) for the on-disk forms.
 */

/** 64 lowercase hex characters (sha256). */
export type Checksum = string & { readonly __brand?: 'Checksum' };

/** Object types, named as the on-disk suffixes ("file" is .file or .filez). */
export type ObjectType =
  | 'file'
  | 'dirtree'
  | 'dirmeta'
  | 'commit'
  | 'tombstone-commit'
  | 'commitmeta';

/** Repository modes. `archive` is written to the config as `archive-z2`. */
export type RepoMode = 'archive' | 'bare' | 'bare-user' | 'bare-user-only';

/** One extended attribute. `name` excludes the trailing NUL the GVariant form carries. */
export interface Xattr {
  name: string;
  value: Uint8Array;
}

/** Metadata of a content object (the `(uuuusa(ayay))` file header). Integers are host values. */
export interface FileMeta {
  uid: number;
  gid: number;
  /** Full st_mode including S_IFREG / S_IFLNK type bits. */
  mode: number;
  /** Symlink target; "" for regular files. */
  symlinkTarget: string;
  /** Sorted by name (byte order). */
  xattrs: Xattr[];
}

/** A dirmeta object `(uuua(ayay))`. */
export interface DirMeta {
  uid: number;
  gid: number;
  /** Full st_mode including S_IFDIR. */
  mode: number;
  xattrs: Xattr[];
}

export interface DirTreeFile {
  name: string;
  checksum: Checksum;
}
export interface DirTreeDir {
  name: string;
  treeChecksum: Checksum;
  metaChecksum: Checksum;
}
/** A dirtree object `(a(say)a(sayay))`; both lists sorted by name (byte order). */
export interface DirTree {
  files: DirTreeFile[];
  dirs: DirTreeDir[];
}

/** A commit object `(a{sv}aya(say)sstayay)`. */
export interface Commit {
  /** Metadata entries in their serialized order (order matters for the checksum). */
  metadata: Array<[string, import('@larch/gvariant').Variant]>;
  parent: Checksum | null;
  subject: string;
  body: string;
  /** Seconds since the epoch, UTC. */
  timestamp: bigint;
  rootTree: Checksum;
  rootMeta: Checksum;
}

export const S_IFMT = 0o170000;
export const S_IFREG = 0o100000;
export const S_IFLNK = 0o120000;
export const S_IFDIR = 0o040000;
