/**
 * diffCommits: the tree difference `ostree diff A B` prints (checked against the real CLI).
 *
 * For each entry of the old tree (files, then directories, in dirtree order): absent from the
 * new tree -> D; present with another type (file vs directory) or another content checksum -> M;
 * both directories -> M when the dirmeta differs, then recurse. Then each entry only in the new
 * tree -> A, and an added directory also adds everything beneath it. Identical subtrees (same
 * dirtree and dirmeta checksums) are skipped without being read. Results come grouped as ostree
 * prints them: all M, then all D, then all A, each in discovery order. Paths are absolute ("/a/b").
 */
import { readTree } from './repo-traverse.js';
import type { Repo } from './repo.js';
import type { Checksum, DirTree } from './types.js';

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
