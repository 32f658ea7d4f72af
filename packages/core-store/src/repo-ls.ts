/**
 * ls: list a path inside a commit like `ostree ls [-R] [-d] [-C]` (checked against the real CLI).
 *
 * Listing a directory yields the directory itself, then its entries (files, then directories, in
 * dirtree order); with `recursive` each subdirectory's entries follow right after it. Listing a
 * file yields that file. `formatLsEntry` reproduces the CLI's line format.
 *
 * A path is looked up as ostree looks it up (`ostree ls`, `cat` and `export --subpath` alike; see
 * {@link ostreePathNames}): its components are names taken literally, so `.`, `..` and the empty
 * name after a trailing `/` are found nowhere; a component below a file or symlink fails with
 * "Not a directory", a missing one with "No such file or directory: /PATH" naming the path up to
 * the first missing component.
 *
 * `lsStream` yields the entries as it walks, depth-first like ostree's print_directory_recurse,
 * keeping only the current path (each level's name and subdirectory list) and a window of file
 * entries being read: a tree whose paths outnumber its objects by any factor (a DAG whose levels
 * each point twice at the next) lists in constant memory, as with ostree, which prints until it
 * is stopped. Full paths are built per entry from the names, so a very deep tree costs memory
 * in its depth, not in its depth squared. A dirtree that contains itself (only a corrupted
 * repository can have one: its objects are not named by their hash) fails with
 * OBJECT_CORRUPTED instead of being walked forever.
 */
import { LarchError } from './errors.js';
import { sanitize } from './fs-safety.js';
import { _DirTreeCursor } from './dirtree-cursor.js';
import { _decodeDirMeta, _readMetadataSync, _ReadBuffer, readMeta, readTree } from './repo-traverse.js';
import type { Repo } from './repo.js';
import { S_IFLNK, S_IFMT, type Checksum, type DirMeta, type DirTreeDir } from './types.js';

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
 * The names ostree looks up, from the root, for `path` (as `ostree_repo_file_resolve_relative_path`
 * splits it): each component up to a `/` is a name, taken literally ("", "." and ".." included);
 * `/` alone is the root; and a component that starts with `/` (the second slash of `a//b`) starts
 * again from the root, so `a//b` is `/b`.
 */
export function ostreePathNames(path: string): string[] {
  let names: string[] = [];
  let rest = path;
  for (;;) {
    if (rest.startsWith('/')) {
      if (rest === '/') return [];
      names = [];
      rest = rest.slice(1);
    }
    const slash = rest.indexOf('/');
    if (slash < 0) {
      names.push(rest);
      return names;
    }
    names.push(rest.slice(0, slash));
    rest = rest.slice(slash + 1);
  }
}

/** A path in a message: as it is (ostree's wording), quoted only if it holds control characters. */
function shown(path: string): string {
  return /[\u0000-\u001f\u007f]/.test(path) ? sanitize(path) : path;
}

/**
 * List `path` in `commit`, all entries at once (see {@link lsStream} for a listing of any size).
 * Locking: none. Errors: INVALID_ARGUMENT when the path does not exist ("No such file or
 * directory: PATH", `reason` 'not-found') or goes below a file or symlink ("Not a directory",
 * `reason` 'not-a-directory'), OBJECT_MISSING / OBJECT_CORRUPTED from the objects read.
 */
export async function ls(repo: Repo, commit: Checksum, path: string, opts: LsOptions = {}): Promise<LsEntry[]> {
  const out: LsEntry[] = [];
  for await (const e of lsStream(repo, commit, path, opts)) out.push(e);
  return out;
}

/** File entries read at once, in order, while a directory is listed. */
const FILE_WINDOW = 16;
/** Distinct dirmetas remembered while walking (most directories share a few). */
const META_CACHE = 1024;

/**
 * List `path` in `commit`, yielding each entry as soon as it is read, in the order of {@link ls}.
 * A missing path fails before anything is yielded. Locking: none; safe alongside other readers.
 * Errors: as {@link ls}; an error met later in the walk ends it after the entries before it.
 * Limits: memory grows with the depth of the tree, never with the number of entries.
 */
export async function* lsStream(repo: Repo, commit: Checksum, path: string, opts: LsOptions = {}): AsyncGenerator<LsEntry> {
  const c = await repo.readCommit(commit);
  let tree = c.rootTree;
  let meta = c.rootMeta;
  let file: Checksum | null = null;
  let cur = '/';
  for (const name of ostreePathNames(path)) {
    if (file !== null) throw new LarchError('INVALID_ARGUMENT', 'Not a directory', { path, at: cur, reason: 'not-a-directory' });
    const dt = await readTree(repo, tree);
    cur = join(cur, name);
    const f = dt.files.find((x) => x.name === name);
    const d = f === undefined ? dt.dirs.find((x) => x.name === name) : undefined;
    if (f !== undefined) file = f.checksum;
    else if (d !== undefined) {
      tree = d.treeChecksum;
      meta = d.metaChecksum;
    } else throw new LarchError('INVALID_ARGUMENT', `No such file or directory: ${shown(cur)}`, { path, at: cur, reason: 'not-found' });
  }
  if (file !== null) {
    yield await fileEntry(repo, cur, file);
    return;
  }
  yield dirEntry(cur, tree, meta, await readMeta(repo, meta));
  if (opts.directoryOnly) return;
  yield* walk(repo, cur, tree, opts.recursive === true);
}

function dirEntry(path: string, tree: Checksum, meta: Checksum, m: DirMeta): LsEntry {
  return { path, type: 'd', mode: m.mode, uid: m.uid, gid: m.gid, size: 0, checksum: tree, metaChecksum: meta };
}

async function fileEntry(repo: Repo, path: string, checksum: Checksum): Promise<LsEntry> {
  let f;
  try {
    f = await repo.openFile(checksum);
  } catch (e) {
    // A file left out of a partial commit (pull --subpath), in ostree_repo_load_file's words:
    // the bare modes' loader prefixes the object it was opening.
    if (e instanceof LarchError && e.code === 'OBJECT_MISSING') {
      const prefix = repo.mode === 'archive' ? '' : `Opening content object ${checksum}: `;
      throw new LarchError('OBJECT_MISSING', `${prefix}Couldn't find file object '${checksum}'`, { ...e.data, path }, { cause: e });
    }
    throw e;
  }
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

/**
 * The entries below `root` (the directory `top`), depth-first. Each level keeps its name, its
 * dirtree checksum and its subdirectory list; a level's files are read in windows of
 * FILE_WINDOW concurrent reads and yielded in dirtree order before its subdirectories.
 */
async function* walk(repo: Repo, root: string, top: Checksum, recursive: boolean): AsyncGenerator<LsEntry> {
  const buf = new _ReadBuffer();
  const metas = new Map<Checksum, DirMeta>();
  const metaOf = (m: Checksum): DirMeta => {
    let v = metas.get(m);
    if (v === undefined) {
      if (metas.size >= META_CACHE) metas.clear();
      v = _decodeDirMeta(_readMetadataSync(repo, 'dirmeta', m, buf), m);
      metas.set(m, v);
    }
    return v;
  };
  const names: string[] = [];
  const pathOf = (name: string): string => (root === '/' ? '' : root) + (names.length > 0 ? `/${names.join('/')}` : '') + `/${name}`;
  const onPath = new Set<Checksum>([top]);
  const stack: Array<{ tree: Checksum; dirs: DirTreeDir[]; i: number }> = [];

  /** Open a directory: yield its files, then leave a frame for its subdirectories. */
  async function* enter(tree: Checksum): AsyncGenerator<LsEntry> {
    const cursor = new _DirTreeCursor(_readMetadataSync(repo, 'dirtree', tree, buf), tree);
    const window: Array<Promise<LsEntry>> = [];
    while (cursor.nextFile()) {
      window.push(fileEntry(repo, pathOf(cursor.name), cursor.checksum));
      if (window.length === FILE_WINDOW) yield* drain(window);
    }
    yield* drain(window);
    stack.push({ tree, dirs: cursor.dirs, i: 0 });
  }

  yield* enter(top);
  while (stack.length > 0) {
    const frame = stack[stack.length - 1];
    if (frame.i >= frame.dirs.length) {
      stack.pop();
      onPath.delete(frame.tree);
      names.pop();
      continue;
    }
    const d = frame.dirs[frame.i++];
    yield dirEntry(pathOf(d.name), d.treeChecksum, d.metaChecksum, metaOf(d.metaChecksum));
    if (!recursive) continue;
    if (onPath.has(d.treeChecksum)) {
      throw new LarchError('OBJECT_CORRUPTED', `Corrupted dirtree object ${frame.tree}: its directory ${sanitize(d.name)} leads back to dirtree ${d.treeChecksum}, which contains it`, {
        type: 'dirtree',
        checksum: frame.tree,
        dirtree: frame.tree,
        name: d.name,
      });
    }
    onPath.add(d.treeChecksum);
    names.push(d.name);
    yield* enter(d.treeChecksum);
  }
}

/** Yield the settled entries of `window` in order, emptying it; every read settles first. */
async function* drain(window: Array<Promise<LsEntry>>): AsyncGenerator<LsEntry> {
  const settled = await Promise.allSettled(window.splice(0));
  for (const r of settled) {
    if (r.status === 'rejected') throw r.reason;
    yield r.value;
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

