/**
 * The JSON shapes the read API answers with. They are plain data (no bigint, no Uint8Array), so the
 * web console can import them as types and the wire format is exactly what these interfaces say.
 * Timestamps are ISO 8601 strings in UTC, made from the commit's seconds since the epoch.
 */

/** `GET /api/v1/repos` */
export interface ReposResponse {
  repos: Array<{ name: string; mode: 'archive' | 'bare' | 'bare-user' | 'bare-user-only' }>;
}

/** One head ref. Commit fields are null when the ref's commit is not in the repository. */
export interface RefInfo {
  ref: string;
  commit: string;
  timestamp: string | null;
  subject: string | null;
  version: string | null;
}

/** `GET /api/v1/repos/{repo}/refs` */
export interface RefsResponse {
  refs: RefInfo[];
  /** More refs exist than the listing limit allowed. */
  truncated: boolean;
}

/** One commit of a history. */
export interface CommitInfo {
  checksum: string;
  parent: string | null;
  timestamp: string;
  subject: string;
  body: string;
  version: string | null;
}

/** `GET /api/v1/repos/{repo}/log/{ref…}?limit=N` */
export interface LogResponse {
  ref: string;
  commits: CommitInfo[];
  /** Older commits exist beyond `limit`. */
  truncated: boolean;
  /** The history continues with a parent that is not in the repository (pruned or not pulled). */
  historyMissing: boolean;
}

/** One entry of a directory listing. */
export interface TreeEntry {
  name: string;
  type: 'dir' | 'file' | 'symlink';
  /** Full st_mode including the type bits. */
  mode: number;
  uid: number;
  gid: number;
  /** Content size in bytes; null for directories, 0 for symlinks. */
  size: number | null;
  /** Content checksum (files, symlinks) or dirtree checksum (directories). */
  checksum: string;
  /** Dirmeta checksum (directories only, else null). */
  metaChecksum: string | null;
  /** Symlink target (symlinks only, else null). */
  target: string | null;
}

/** `GET /api/v1/repos/{repo}/commits/{csum}/tree?path=/a/b` */
export interface TreeResponse {
  commit: string;
  /** Normalised absolute path of the listed directory ("/", "/usr/bin"). */
  path: string;
  entries: TreeEntry[];
  /** The directory has more entries than `offset + limit`. */
  truncated: boolean;
  /** Total number of entries in the directory. */
  total: number;
}

export type ChangeKind = 'added' | 'removed' | 'modified';

/** `GET /api/v1/repos/{repo}/commits/{csum}/diff` */
export interface DiffResponse {
  commit: string;
  parent: string | null;
  changes: Array<{ path: string; kind: ChangeKind }>;
  truncated: boolean;
}

/** One static delta. */
export interface DeltaInfo {
  /** Source commit; null for a from-scratch delta. */
  from: string | null;
  to: string;
  /** A head ref whose recent history holds `to`, or null when none does. */
  ref: string | null;
  /** Bytes of the superblock and every part file on disk. */
  deltaBytes: number;
  /** Bytes of every stored object of `to` (what a pull without the delta fetches); null when `to` is not complete in the repository. */
  fullBytes: number | null;
  /** Number of part files. */
  parts: number;
}

/** `GET /api/v1/repos/{repo}/deltas` */
export interface DeltasResponse {
  deltas: DeltaInfo[];
  truncated: boolean;
}
