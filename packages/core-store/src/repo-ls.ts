/**
 * ls: list a path inside a commit like `ostree ls [-R] [-d] [-C]` (checked against the real CLI).
 *
 * Listing a directory yields the directory itself, then its entries (files, then directories, in
 * dirtree order); with `recursive` each subdirectory's entries follow right after it. Listing a
 * file yields that file. `formatLsEntry` reproduces the CLI's line format.
 */
import { LarchError } from './errors.js';
import { sanitize, splitSafePath } from './fs-safety.js';
import { _forEachBounded, readMeta, readTree } from './repo-traverse.js';
import type { Repo } from './repo.js';
import { S_IFLNK, S_IFMT, type Checksum } from './types.js';

export interface LsEntry {
  /** Absolute path inside the commit ("/", "/usr/bin/sh"). */
  path: string;
  type: 'd' | '-' | 'l';
  /** Full st_mode, including the type bits. */
  mode: number;
  uid: number;
  gid: number;
  /** Content size; 0 for directories and symlinks. */
  size: number;
  /** Content checksum for files, dirtree checksum for directories. */
  checksum: Checksum;
  /** Dirmeta checksum (directories only). */
  metaChecksum?: Checksum;
  /** Symlink target (symlinks only). */
  target?: string;
}

export interface LsOptions {
  /** `-R`: descend into subdirectories. */
  recursive?: boolean;
  /** `-d`: list a directory itself, not its entries. */
  directoryOnly?: boolean;
}

function join(dir: string, name: string): string {
  return dir === '/' ? `/${name}` : `${dir}/${name}`;
}

/**
 * List `path` in `commit`. Locking: none. Errors: INVALID_ARGUMENT when the path does not exist
 * ("No such file or directory: PATH"), OBJECT_MISSING / OBJECT_CORRUPTED from the objects read.
 */
export async function ls(repo: Repo, commit: Checksum, path: string, opts: LsOptions = {}): Promise<LsEntry[]> {
  const c = await repo.readCommit(commit);
  const parts = splitSafePath(path, { path });
  let tree = c.rootTree;
  let meta = c.rootMeta;
  let cur = '/';
  for (let i = 0; i < parts.length; i++) {
    const dt = await readTree(repo, tree);
    const name = parts[i];
    const d = dt.dirs.find((x) => x.name === name);
    cur = join(cur, name);
    if (d) {
      tree = d.treeChecksum;
      meta = d.metaChecksum;
      continue;
    }
    const f = dt.files.find((x) => x.name === name);
    if (f && i === parts.length - 1) return [await fileEntry(repo, cur, f.checksum)];
    throw new LarchError('INVALID_ARGUMENT', `No such file or directory: ${sanitize(path)}`, { path, reason: 'not-found' });
  }
  const out: LsEntry[] = [await dirEntry(repo, cur, tree, meta)];
  if (!opts.directoryOnly) await listDir(repo, cur, tree, opts.recursive === true, out);
  return out;
}

async function dirEntry(repo: Repo, path: string, tree: Checksum, meta: Checksum): Promise<LsEntry> {
  const m = await readMeta(repo, meta);
  return { path, type: 'd', mode: m.mode, uid: m.uid, gid: m.gid, size: 0, checksum: tree, metaChecksum: meta };
}

async function fileEntry(repo: Repo, path: string, checksum: Checksum): Promise<LsEntry> {
  const f = await repo.openFile(checksum);
  const isLink = (f.meta.mode & S_IFMT) === S_IFLNK;
  const e: LsEntry = {
    path,
    type: isLink ? 'l' : '-',
    mode: f.meta.mode,
    uid: f.meta.uid,
    gid: f.meta.gid,
    size: isLink ? 0 : f.size,
    checksum,
  };
  if (isLink) e.target = f.meta.symlinkTarget;
  return e;
}

async function listDir(repo: Repo, dir: string, tree: Checksum, recursive: boolean, out: LsEntry[]): Promise<void> {
  const dt = await readTree(repo, tree);
  const files: LsEntry[] = new Array(dt.files.length);
  await _forEachBounded(dt.files.keys(), 16, async (i) => {
    files[i] = await fileEntry(repo, join(dir, dt.files[i].name), dt.files[i].checksum);
  });
  out.push(...files);
  for (const d of dt.dirs) {
    const p = join(dir, d.name);
    out.push(await dirEntry(repo, p, d.treeChecksum, d.metaChecksum));
    if (recursive) await listDir(repo, p, d.treeChecksum, true, out);
  }
}

/**
 * One line as `ostree ls` prints it: type, 5-digit octal permissions, uid, gid, size (width 6),
 * with `checksums` (-C) the content checksum (files) or dirtree and dirmeta checksums
 * (directories), the path, and " -> target" for symlinks.
 */
export function formatLsEntry(e: LsEntry, opts: { checksums?: boolean } = {}): string {
  const perms = (e.mode & ~S_IFMT & 0o7777).toString(8).padStart(5, '0');
  let s = `${e.type}${perms} ${e.uid} ${e.gid} ${String(e.size).padStart(6, ' ')} `;
  if (opts.checksums) s += e.type === 'd' ? `${e.checksum} ${e.metaChecksum} ` : `${e.checksum} `;
  s += e.path;
  if (e.type === 'l') s += ` -> ${e.target}`;
  return s;
}

