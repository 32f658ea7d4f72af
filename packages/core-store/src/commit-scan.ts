/**
 * Scanning a directory source of a commit (`--tree=dir=PATH`): one synchronous walk with
 * lstat/readdir (on small machines a thread-pool round trip costs about ten times the system
 * call), names checked as ostree checks them (valid UTF-8, no `/`, `.`, `..`), skip-list paths
 * left out, anything but directories, regular files and symlinks refused. Also the dev:ino
 * index of `--link-checkout-speedup` and the removal of `--consume`.
 */
import { lstatSync, readdirSync, realpathSync, rmdirSync, rmSync, statSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import { LarchError, ioError } from './errors.js';
import type { Repo } from './repo.js';
import type { Checksum, FileMeta } from './types.js';
import { validateName } from './validate.js';
import { OBJECTS_DIR } from './layout.js';

export interface FileNode {
  name: string;
  abs: string;
  rel: string;
  st: Stats;
  checksum?: Checksum;
  /** bare-user, --link-checkout-speedup: the metadata of the object this file is a hard link to. */
  source?: FileMeta;
}
export interface DirNode {
  name: string;
  abs: string;
  rel: string;
  st: Stats;
  files: FileNode[];
  dirs: DirNode[];
  /** Skip-list entries found here (removed too by `consume`). */
  skipped: string[];
}

/** Names must be valid UTF-8, as ostree requires (a lossy decode would commit a different name). */
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

export function walk(abs: string, name: string, rel: string, st: Stats, skip: Set<string>, matched: Set<string>, out: { files: number; bytes: number }): DirNode {
  let raw: Buffer[];
  try {
    raw = readdirSync(abs, { encoding: 'buffer' });
  } catch (e) {
    throw ioError(e, 'Reading directory', abs);
  }
  const node: DirNode = { name, abs, rel, st, files: [], dirs: [], skipped: [] };
  for (const bytes of raw) {
    let child: string;
    try {
      child = strictUtf8.decode(bytes);
    } catch {
      throw new LarchError('INVALID_ARGUMENT', `Invalid UTF-8 in filename ${bytes.toString('utf8')}`, { path: join(abs, bytes.toString('utf8')) });
    }
    const childRel = `${rel}/${child}`;
    const childAbs = join(abs, child);
    if (skip.size && skip.has(childRel)) {
      matched.add(childRel);
      node.skipped.push(childAbs);
      continue;
    }
    validateName(child);
    let cst: Stats;
    try {
      cst = lstatSync(childAbs);
    } catch (e) {
      throw ioError(e, 'Reading', childAbs);
    }
    if (cst.isDirectory()) node.dirs.push(walk(childAbs, child, childRel, cst, skip, matched, out));
    else if (cst.isFile() || cst.isSymbolicLink()) {
      node.files.push({ name: child, abs: childAbs, rel: childRel, st: cst });
      out.files++;
      out.bytes += cst.size;
    } else throw new LarchError('UNSUPPORTED_FILE', `Not a regular file or symlink: ${childAbs}`, { path: childAbs });
  }
  return node;
}

/** dev:ino → checksum of every loose content object of a bare-mode repository. */
export function scanDevino(repo: Repo): Map<string, Checksum> {
  const map = new Map<string, Checksum>();
  const objects = join(repo.path, OBJECTS_DIR);
  let dirs: string[];
  try {
    dirs = readdirSync(objects);
  } catch (e) {
    throw ioError(e, 'Reading directory', objects);
  }
  for (const d of dirs) {
    if (!/^[0-9a-f]{2}$/.test(d)) continue;
    const dir = join(objects, d);
    for (const name of readdirSync(dir)) {
      if (!name.endsWith('.file') || name.length !== 62 + 5) continue;
      const st = lstatSync(join(dir, name), { throwIfNoEntry: false });
      if (st !== undefined) map.set(`${st.dev}:${st.ino}`, d + name.slice(0, 62));
    }
  }
  return map;
}

/** `--consume`: remove what the walk of a `dir` source found (its root too, unless given as "."). */
export function consumeWalked(d: DirNode, removeSelf: boolean): void {
  for (const f of d.files) rmSync(f.abs, { force: true });
  for (const s of d.skipped) rmSync(s, { recursive: true, force: true });
  for (const c of d.dirs) consumeWalked(c, true);
  if (removeSelf) {
    try {
      rmdirSync(d.abs);
    } catch (e) {
      throw ioError(e, 'Removing consumed directory', d.abs);
    }
  }
}

/**
 * Walk the directory source `path` (which may itself be a symlink to the directory, as with
 * ostree), adding its file count and bytes to `counts`. Skip-list hits are recorded in `matched`.
 */
export function scanSource(path: string, skip: Set<string>, matched: Set<string>, counts: { files: number; bytes: number }): DirNode {
  let rootSt: Stats;
  let rootPath: string;
  try {
    rootPath = realpathSync(path);
    rootSt = statSync(rootPath);
  } catch (e) {
    throw ioError(e, 'Reading', path);
  }
  if (!rootSt.isDirectory()) throw new LarchError('INVALID_ARGUMENT', `Not a directory: ${path}`, { path });
  return walk(rootPath, '', '', rootSt, skip, matched, counts);
}
