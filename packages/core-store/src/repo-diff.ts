/**
 * diffCommits: the tree difference `ostree diff A B` prints (checked against the real CLI).
 *
 * For each entry of the old tree (files, then directories, in dirtree order): absent from the
 * new tree -> D; present with another type (file vs directory) or another content checksum -> M;
 * both directories -> M when the dirmeta differs, then recurse. Then each entry only in the new
 * tree -> A, and an added directory also adds everything beneath it. Identical subtrees (same
 * dirtree and dirmeta checksums) are skipped without being read. Results come grouped as ostree
 * prints them: all M, then all D, then all A, each in discovery order. Paths are absolute ("/a/b").
 *
 * diffTrees: the same with either side a directory on disk (`ostree diff REV ./`). A file on disk
 * is compared by the checksum it would have as an object (its uid and gid, optionally replaced,
 * its mode, xattrs unless ignored, its bytes); a directory by its dirmeta checksum. Entries on
 * disk are visited in directory (readdir) order and named relative to their side's root ("a/b"),
 * as ostree names them; entries of a commit keep their absolute names.
 */
import { createReadStream, promises as fsp, type Stats } from 'node:fs';
import { createHash } from 'node:crypto';
import { join as joinPath, resolve } from 'node:path';
import { LarchError } from './errors.js';
import { readXattrs } from './objects/content-io.js';
import { serializeDirMeta } from './objects/dirmeta.js';
import { contentHasher } from './objects/file-header.js';
import { readTree } from './repo-traverse.js';
import type { Repo } from './repo.js';
import { S_IFDIR, S_IFLNK, S_IFMT, S_IFREG, type Checksum, type DirTree, type FileMeta } from './types.js';

export interface DiffEntry {
  kind: 'A' | 'D' | 'M';
  path: string;
}

interface Acc {
  modified: string[];
  removed: string[];
  added: string[];
}

/**
 * Compare the trees of commits `from` and `to`.
 * Locking: none (reads immutable objects). Errors: OBJECT_MISSING / OBJECT_CORRUPTED / INVALID_NAME
 * from the objects read.
 */
export async function diffCommits(repo: Repo, from: Checksum, to: Checksum): Promise<DiffEntry[]> {
  const [a, b] = await Promise.all([repo.readCommit(from), repo.readCommit(to)]);
  const acc: Acc = { modified: [], removed: [], added: [] };
  if (a.rootTree !== b.rootTree) await diffDirs(repo, a.rootTree, b.rootTree, '/', acc);
  return [
    ...acc.modified.map((path) => ({ kind: 'M' as const, path })),
    ...acc.removed.map((path) => ({ kind: 'D' as const, path })),
    ...acc.added.map((path) => ({ kind: 'A' as const, path })),
  ];
}

function join(dir: string, name: string): string {
  return dir === '/' ? `/${name}` : `${dir}/${name}`;
}

async function diffDirs(repo: Repo, ta: Checksum, tb: Checksum, dir: string, acc: Acc): Promise<void> {
  const [A, B] = await Promise.all([readTree(repo, ta), readTree(repo, tb)]);
  const bFiles = new Map(B.files.map((f) => [f.name, f.checksum]));
  const bDirs = new Map(B.dirs.map((d) => [d.name, d]));
  const aNames = new Set<string>();
  for (const f of A.files) {
    aNames.add(f.name);
    const p = join(dir, f.name);
    const other = bFiles.get(f.name);
    if (other !== undefined) {
      if (other !== f.checksum) acc.modified.push(p);
    } else if (bDirs.has(f.name)) acc.modified.push(p);
    else acc.removed.push(p);
  }
  for (const d of A.dirs) {
    aNames.add(d.name);
    const p = join(dir, d.name);
    const other = bDirs.get(d.name);
    if (other !== undefined) {
      if (other.metaChecksum !== d.metaChecksum) acc.modified.push(p);
      if (other.treeChecksum !== d.treeChecksum) await diffDirs(repo, d.treeChecksum, other.treeChecksum, p, acc);
    } else if (bFiles.has(d.name)) acc.modified.push(p);
    else acc.removed.push(p);
  }
  for (const f of B.files) if (!aNames.has(f.name)) acc.added.push(join(dir, f.name));
  for (const d of B.dirs) {
    if (aNames.has(d.name)) continue;
    const p = join(dir, d.name);
    acc.added.push(p);
    await addAll(repo, await readTree(repo, d.treeChecksum), p, acc);
  }
}

async function addAll(repo: Repo, t: DirTree, dir: string, acc: Acc): Promise<void> {
  for (const f of t.files) acc.added.push(join(dir, f.name));
  for (const d of t.dirs) {
    const p = join(dir, d.name);
    acc.added.push(p);
    await addAll(repo, await readTree(repo, d.treeChecksum), p, acc);
  }
}

// ---------------------------------------------------------------- commits and directories on disk

/** One side of {@link diffTrees}: a commit of the repository, or a directory on disk. */
export type DiffSide = { commit: Checksum } | { dir: string };

export interface DiffTreesOptions {
  /** Take files on disk on the new side as owned by this uid (`--owner-uid`). */
  ownerUid?: number;
  /** Take files on disk on the new side as owned by this gid (`--owner-gid`). */
  ownerGid?: number;
  /** Leave extended attributes of files on disk out (`--no-xattrs`). */
  ignoreXattrs?: boolean;
}

/** A directory entry on either side: enough to name it, type it and checksum it. */
type Node =
  | { where: 'repo'; name: string; path: string; isDir: boolean; checksum: Checksum; tree?: Checksum }
  | { where: 'disk'; name: string; path: string; abs: string; st: Stats };

interface Root {
  node: Node;
  /** The tree of a commit's root, when the side is a commit. */
  tree?: Checksum;
}

function isDir(n: Node): boolean {
  return n.where === 'repo' ? n.isDir : n.st.isDirectory();
}

/** ostree's file type classes: a directory, a regular file, a symlink, anything else. */
function typeOf(n: Node): 'dir' | 'reg' | 'lnk' | 'repo-file' | 'special' {
  if (n.where === 'repo') return n.isDir ? 'dir' : 'repo-file';
  const t = n.st.mode & S_IFMT;
  return t === S_IFDIR ? 'dir' : t === S_IFREG ? 'reg' : t === S_IFLNK ? 'lnk' : 'special';
}

/** Same type as ostree sees it. A commit's file (regular or symlink) is unlike a special file. */
function sameType(a: Node, b: Node): boolean {
  const ta = typeOf(a);
  const tb = typeOf(b);
  if (ta === tb) return true;
  if (ta === 'dir' || tb === 'dir' || ta === 'special' || tb === 'special') return false;
  // A commit's file against a regular file or symlink on disk: the checksums tell them apart.
  return true;
}

function statError(e: NodeJS.ErrnoException, abs: string): LarchError {
  const why = e.code === 'ENOENT' ? 'No such file or directory' : e.code === 'ENOTDIR' ? 'Not a directory' : e.code === 'EACCES' ? 'Permission denied' : e.message;
  return new LarchError(e.code === 'ENOENT' ? 'OBJECT_MISSING' : 'IO_ERROR', `Error when getting information for file “${abs}”: ${why}`, { path: abs });
}

async function lstatOrNull(abs: string): Promise<Stats | null> {
  try {
    return await fsp.lstat(abs);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw statError(e as NodeJS.ErrnoException, abs);
  }
}

async function diskChecksum(n: Extract<Node, { where: 'disk' }>, opts: { ignoreXattrs: boolean; uid?: number; gid?: number }): Promise<Checksum> {
  const { st, abs } = n;
  const uid = opts.uid ?? st.uid;
  const gid = opts.gid ?? st.gid;
  const xattrs = opts.ignoreXattrs ? [] : readXattrs(abs);
  const type = st.mode & S_IFMT;
  if (type === S_IFDIR) return createHash('sha256').update(serializeDirMeta({ uid, gid, mode: st.mode, xattrs })).digest('hex');
  if (type !== S_IFREG && type !== S_IFLNK) throw new LarchError('UNSUPPORTED_FILE', `Unsupported file type for ${abs}: mode ${st.mode.toString(8)}`, { path: abs });
  const meta: FileMeta = { uid, gid, mode: st.mode, symlinkTarget: type === S_IFLNK ? await fsp.readlink(abs) : '', xattrs };
  const h = contentHasher(meta);
  if (type === S_IFREG) for await (const chunk of createReadStream(abs)) h.update(chunk as Buffer);
  return h.digest('hex');
}

const GLIB_ENUMERATOR_CHUNK = 1000;

class TreeDiff {
  readonly acc: Acc = { modified: [], removed: [], added: [] };
  private readonly trees = new Map<Checksum, Promise<DirTree>>();

  constructor(
    private readonly repo: Repo,
    private readonly opts: { ignoreXattrs: boolean; ownerUid?: number; ownerGid?: number },
  ) {}

  private tree(c: Checksum): Promise<DirTree> {
    let t = this.trees.get(c);
    if (t === undefined) {
      t = readTree(this.repo, c);
      this.trees.set(c, t);
    }
    return t;
  }

  /** The entries of directory `dir`, in the order ostree enumerates them. */
  async children(dir: Node, tree: Checksum | undefined): Promise<Node[]> {
    if (dir.where === 'repo') {
      const t = await this.tree(tree!);
      return [
        ...t.files.map((f) => ({ where: 'repo' as const, name: f.name, path: join(dir.path, f.name), isDir: false, checksum: f.checksum })),
        ...t.dirs.map((d) => ({ where: 'repo' as const, name: d.name, path: join(dir.path, d.name), isDir: true, checksum: d.metaChecksum, tree: d.treeChecksum })),
      ];
    }
    const out: Node[] = [];
    let handle;
    try {
      handle = await fsp.opendir(dir.abs);
    } catch (e) {
      throw statError(e as NodeJS.ErrnoException, dir.abs);
    }
    // GLib's enumerator reads a directory in chunks of 1000 entries and hands each chunk out in
    // inode order; ostree's output follows that order.
    let chunk: Array<Extract<Node, { where: 'disk' }>> = [];
    const flush = (): void => {
      chunk.sort((x, y) => (x.st.ino < y.st.ino ? -1 : x.st.ino > y.st.ino ? 1 : 0));
      out.push(...chunk);
      chunk = [];
    };
    let read = 0;
    for await (const ent of handle) {
      const abs = joinPath(dir.abs, ent.name);
      const st = await lstatOrNull(abs);
      if (st !== null) chunk.push({ where: 'disk', name: ent.name, path: dir.path === '' ? ent.name : `${dir.path}/${ent.name}`, abs, st });
      if (++read % GLIB_ENUMERATOR_CHUNK === 0) flush();
    }
    flush();
    return out;
  }

  /** The entry `name` of directory `dir`, or null. */
  async child(dir: Node, tree: Checksum | undefined, name: string): Promise<Node | null> {
    if (dir.where === 'repo') {
      const t = await this.tree(tree!);
      const f = t.files.find((x) => x.name === name);
      if (f) return { where: 'repo', name, path: join(dir.path, name), isDir: false, checksum: f.checksum };
      const d = t.dirs.find((x) => x.name === name);
      if (d) return { where: 'repo', name, path: join(dir.path, name), isDir: true, checksum: d.metaChecksum, tree: d.treeChecksum };
      return null;
    }
    const abs = joinPath(dir.abs, name);
    const st = await lstatOrNull(abs);
    return st === null ? null : { where: 'disk', name, path: dir.path === '' ? name : `${dir.path}/${name}`, abs, st };
  }

  private async checksum(n: Node, owner: boolean): Promise<Checksum> {
    if (n.where === 'repo') return n.checksum;
    return diskChecksum(n, {
      ignoreXattrs: this.opts.ignoreXattrs,
      ...(owner && this.opts.ownerUid !== undefined ? { uid: this.opts.ownerUid } : {}),
      ...(owner && this.opts.ownerGid !== undefined ? { gid: this.opts.ownerGid } : {}),
    });
  }

  async dirs(a: Node, ta: Checksum | undefined, b: Node, tb: Checksum | undefined): Promise<void> {
    // Two trees of the repository with the same contents: nothing beneath differs.
    if (a.where === 'repo' && b.where === 'repo' && ta === tb) return;
    for (const ca of await this.children(a, ta)) {
      const cb = await this.child(b, tb, ca.name);
      if (cb === null) {
        this.acc.removed.push(ca.path);
        continue;
      }
      if (!sameType(ca, cb)) {
        this.acc.modified.push(ca.path);
        continue;
      }
      // The owner override applies to the new side only, as in ostree.
      if ((await this.checksum(ca, false)) !== (await this.checksum(cb, true))) this.acc.modified.push(ca.path);
      if (isDir(ca)) await this.dirs(ca, ca.where === 'repo' ? ca.tree : undefined, cb, cb.where === 'repo' ? cb.tree : undefined);
    }
    for (const cb of await this.children(b, tb)) {
      if ((await this.child(a, ta, cb.name)) !== null) continue;
      this.acc.added.push(cb.path);
      if (isDir(cb)) await this.addAll(cb, cb.where === 'repo' ? cb.tree : undefined);
    }
  }

  private async addAll(dir: Node, tree: Checksum | undefined): Promise<void> {
    for (const c of await this.children(dir, tree)) {
      this.acc.added.push(c.path);
      if (isDir(c)) await this.addAll(c, c.where === 'repo' ? c.tree : undefined);
    }
  }
}

async function rootOf(repo: Repo, side: DiffSide): Promise<Root> {
  if ('commit' in side) {
    const c = await repo.readCommit(side.commit);
    return { node: { where: 'repo', name: '', path: '/', isDir: true, checksum: c.rootMeta }, tree: c.rootTree };
  }
  const abs = resolve(side.dir);
  let st: Stats;
  try {
    st = await fsp.lstat(abs);
  } catch (e) {
    throw statError(e as NodeJS.ErrnoException, abs);
  }
  return { node: { where: 'disk', name: '', path: '', abs, st } };
}

/**
 * Compare two trees, each a commit or a directory on disk, as `ostree diff` does (see the top of
 * this file). Extended attributes are left out when `ignoreXattrs`, or when a side is a commit of
 * a repository that is bare-user-only or has `core.disable-xattrs`. Locking: none. Errors: OBJECT_MISSING /
 * OBJECT_CORRUPTED from the objects read, OBJECT_MISSING / IO_ERROR for a path that cannot be
 * read, UNSUPPORTED_FILE for a device, socket or fifo on disk compared with one.
 */
export async function diffTrees(repo: Repo, from: DiffSide, to: DiffSide, opts: DiffTreesOptions = {}): Promise<DiffEntry[]> {
  const withCommit = 'commit' in from || 'commit' in to;
  const ignoreXattrs = Boolean(opts.ignoreXattrs) || (withCommit && (repo.mode === 'bare-user-only' || repo.config.getBoolean('core', 'disable-xattrs', false)));
  const [a, b] = [await rootOf(repo, from), await rootOf(repo, to)];
  const d = new TreeDiff(repo, {
    ignoreXattrs,
    ...(opts.ownerUid !== undefined ? { ownerUid: opts.ownerUid } : {}),
    ...(opts.ownerGid !== undefined ? { ownerGid: opts.ownerGid } : {}),
  });
  await d.dirs(a.node, a.tree, b.node, b.tree);
  const acc = d.acc;
  return [
    ...acc.modified.map((path) => ({ kind: 'M' as const, path })),
    ...acc.removed.map((path) => ({ kind: 'D' as const, path })),
    ...acc.added.map((path) => ({ kind: 'A' as const, path })),
  ];
}
