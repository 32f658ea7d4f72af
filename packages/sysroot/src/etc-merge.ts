/**
 * The `/etc` three-way merge OSTree performs at deploy time (spec §6 step 7).
 *
 * Inputs: the merge deployment's `usr/etc` (old defaults) and `etc` (old live config), and the new
 * deployment's `etc`, which starts as a copy of its `usr/etc` (new defaults). The old defaults and
 * old live trees are diffed by type, mode, owner and content (xattrs ignored, as OSTree does):
 * entries only in the live tree are "added", only in the defaults "removed", different "modified"
 * (a type change — file ↔ symlink ↔ directory — is a modification of the whole entry). Then, in
 * the new `etc`: removed → `rm -rf`; added or modified → the admin's version is copied over,
 * recursively for directories, parents created with the live directories' modes and xattrs. The
 * admin always wins; there is no textual merge. One case cannot merge: a modified non-directory
 * where the new defaults have a directory ("Modified config file newly defaults to directory").
 *
 * Beyond OSTree: {@link previewEtcMerge} computes the same plan without writing, and names
 * conflicts, i.e. entries the admin changed whose defaults also changed between the two commits
 * (the new default is then silently superseded by the admin's copy).
 */
import { closeSync, constants, createReadStream, lstatSync, mkdirSync, openSync, readdirSync, readSync, chmodSync, lchownSync, type Stats } from 'node:fs';
import path from 'node:path';
import { readTree, S_IFMT, S_IFLNK, type Repo } from '@larch/core-store';
import { sysrootError } from './errors.js';
import { copyEntry, copyTree, copyXattrs, IS_ROOT, lstatOrNull, removeEntry } from './fsutil.js';

export interface EtcDiff {
  /** Paths relative to `etc`, sorted. */
  modified: string[];
  removed: string[];
  added: string[];
}

type Kind = 'file' | 'symlink' | 'dir' | 'other';

function kindOf(st: Stats): Kind {
  return st.isFile() ? 'file' : st.isSymbolicLink() ? 'symlink' : st.isDirectory() ? 'dir' : 'other';
}

/** Up to `max` bytes of the file at `p` (fewer if it is shorter). */
function readAtMost(p: string, max: number): Buffer {
  const fd = openSync(p, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    const buf = Buffer.allocUnsafe(max);
    let n = 0;
    for (;;) {
      const r = readSync(fd, buf, n, max - n, null);
      if (r === 0) break;
      n += r;
      if (n === max) break;
    }
    return buf.subarray(0, n);
  } finally {
    closeSync(fd);
  }
}

/** Files up to this size are compared in memory, synchronously (most of /etc). */
const SMALL_COMPARE = 1 << 20;

async function sameContent(a: string, b: string, size: number): Promise<boolean> {
  // Small files: two reads from the page cache cost far less than two streams' thread-pool round trips.
  if (size <= SMALL_COMPARE) {
    const ca = readAtMost(a, size + 1);
    return ca.length === size && ca.equals(readAtMost(b, size + 1));
  }
  const ia = createReadStream(a, { highWaterMark: 64 * 1024 })[Symbol.asyncIterator]();
  const ib = createReadStream(b, { highWaterMark: 64 * 1024 })[Symbol.asyncIterator]();
  let ba: Buffer = Buffer.alloc(0);
  let bb: Buffer = Buffer.alloc(0);
  let doneA = false;
  let doneB = false;
  try {
    for (;;) {
      if (ba.length === 0 && !doneA) {
        const r = await ia.next();
        if (r.done) doneA = true;
        else ba = r.value as Buffer;
      }
      if (bb.length === 0 && !doneB) {
        const r = await ib.next();
        if (r.done) doneB = true;
        else bb = r.value as Buffer;
      }
      if (ba.length === 0 || bb.length === 0) return ba.length === 0 && bb.length === 0 && doneA && doneB;
      const n = Math.min(ba.length, bb.length);
      if (!ba.subarray(0, n).equals(bb.subarray(0, n))) return false;
      ba = ba.subarray(n);
      bb = bb.subarray(n);
    }
  } finally {
    await ia.return?.();
    await ib.return?.();
  }
}

async function sameEntry(a: string, sa: Stats, b: string, sb: Stats): Promise<boolean> {
  if (sa.dev === sb.dev && sa.ino === sb.ino) return true;
  if (sa.uid !== sb.uid || sa.gid !== sb.gid) return false;
  if (sa.isSymbolicLink()) {
    const { readlinkSync } = await import('node:fs');
    return readlinkSync(a) === readlinkSync(b);
  }
  if (sa.isFile()) {
    if ((sa.mode & 0o7777) !== (sb.mode & 0o7777) || sa.size !== sb.size) return false;
    return sameContent(a, b, sa.size);
  }
  return (sa.mode & 0o7777) === (sb.mode & 0o7777);
}

/**
 * Diff old defaults (`orig`) against old live config (`live`), as `ostree_diff_dirs` with
 * IGNORE_XATTRS. Read-only.
 */
export async function diffEtc(orig: string, live: string): Promise<EtcDiff> {
  const out: EtcDiff = { modified: [], removed: [], added: [] };
  const walk = async (rel: string): Promise<void> => {
    const a = path.join(orig, rel);
    const b = path.join(live, rel);
    const namesA = readdirSync(a).sort();
    const namesB = new Set(readdirSync(b));
    for (const n of namesA) {
      const r = rel === '' ? n : `${rel}/${n}`;
      const sa = lstatSync(path.join(a, n));
      const sb = namesB.has(n) ? lstatOrNull(path.join(b, n)) : null;
      if (!sb) {
        out.removed.push(r);
        continue;
      }
      const ka = kindOf(sa);
      const kb = kindOf(sb);
      if (ka !== kb) out.modified.push(r);
      else if (ka === 'dir') await walk(r);
      else if (!(await sameEntry(path.join(a, n), sa, path.join(b, n), sb))) out.modified.push(r);
    }
    const setA = new Set(namesA);
    for (const n of [...namesB].sort()) if (!setA.has(n)) out.added.push(rel === '' ? n : `${rel}/${n}`);
  };
  await walk('');
  return out;
}

/** Create the parents of `rel` in `dest`, taking modes/owners/xattrs from the live tree's directories. */
function ensureParents(live: string, dest: string, rel: string): void {
  const parts = rel.split('/').slice(0, -1);
  let cur = '';
  for (const p of parts) {
    cur = cur === '' ? p : `${cur}/${p}`;
    const d = path.join(dest, cur);
    const st = lstatOrNull(d);
    if (st?.isDirectory()) continue;
    if (st) throw sysrootError('EXISTS', 'etc-conflict', `During /etc merge: parent '${cur}' of a modified config file is not a directory in the new defaults, cannot merge`, { path: cur });
    const src = lstatSync(path.join(live, cur));
    mkdirSync(d, { mode: 0o700 });
    if (IS_ROOT) lchownSync(d, src.uid, src.gid);
    copyXattrs(path.join(live, cur), d);
    chmodSync(d, src.mode & 0o7777);
  }
}

/** Copy the admin's version of `rel` from `live` into `dest` (copy_modified_config_file). */
function copyModified(live: string, dest: string, rel: string): void {
  const src = path.join(live, rel);
  const sst = lstatSync(src);
  ensureParents(live, dest, rel);
  const d = path.join(dest, rel);
  const dst = lstatOrNull(d);
  if (dst) {
    if (dst.isDirectory()) {
      if (!sst.isDirectory()) {
        throw sysrootError('EXISTS', 'etc-conflict', `During /etc merge: Modified config file newly defaults to directory '${rel}', cannot merge`, { path: rel });
      }
      return; // both directories: the children are merged entry by entry
    }
    removeEntry(d);
  }
  if (sst.isDirectory()) copyTree(src, d);
  else if (sst.isFile() || sst.isSymbolicLink()) copyEntry(src, d, sst);
  // sockets, fifos and devices are skipped
}

/**
 * Apply a diff to the new `etc`: removed entries are deleted, added and modified ones copied
 * from `live`. Errors (EXISTS, reason etc-conflict) leave `dest` partly merged; the caller
 * deletes the unfinished deployment.
 */
export function applyEtcMerge(live: string, dest: string, diff: EtcDiff): void {
  for (const r of diff.removed) removeEntry(path.join(dest, r));
  for (const r of diff.modified) copyModified(live, dest, r);
  for (const r of diff.added) copyModified(live, dest, r);
}

// --- preview -----------------------------------------------------------------------------------

export type EtcPreviewAction = 'keep-local' | 'add-local' | 'remove';
export type EtcConflict =
  /** The admin changed it and the defaults changed too: the new default is superseded. */
  | 'default-changed'
  /** The admin removed it but the defaults changed: the new default will not appear. */
  | 'removed-default-changed'
  /** The admin added it and the new defaults add it too: the admin's version wins. */
  | 'default-added'
  /** The admin's non-directory meets a directory in the new defaults: the deploy fails. */
  | 'newly-directory';

export interface EtcPreviewEntry {
  path: string;
  action: EtcPreviewAction;
  /** Type in the admin's tree (null when removed). */
  local: Kind | null;
  /** Type in the new defaults (null when absent). */
  newDefault: Kind | null;
  conflict?: EtcConflict;
}

export interface EtcPreview extends EtcDiff {
  entries: EtcPreviewEntry[];
  /** True when the merge would fail (a `newly-directory` conflict). */
  blocked: boolean;
}

type TreeNode = { kind: 'dir'; tree: string } | { kind: 'file'; checksum: string };

/** Look up `rel` inside commit `commit` without checking anything out. */
async function lookupCommitPath(repo: Repo, rootTree: string, rel: string): Promise<TreeNode | null> {
  let node: TreeNode = { kind: 'dir', tree: rootTree };
  for (const part of rel.split('/').filter((x) => x !== '')) {
    if (node.kind !== 'dir') return null;
    const t = await readTree(repo, node.tree);
    const d = t.dirs.find((x) => x.name === part);
    if (d) {
      node = { kind: 'dir', tree: d.treeChecksum };
      continue;
    }
    const f = t.files.find((x) => x.name === part);
    if (!f) return null;
    node = { kind: 'file', checksum: f.checksum };
  }
  return node;
}

async function nodeKind(repo: Repo, n: TreeNode | null): Promise<Kind | null> {
  if (!n) return null;
  if (n.kind === 'dir') return 'dir';
  const o = await repo.openFile(n.checksum);
  return (o.meta.mode & S_IFMT) === S_IFLNK ? 'symlink' : 'file';
}

function nodeId(n: TreeNode | null): string | null {
  return n === null ? null : n.kind === 'dir' ? `d:${n.tree}` : `f:${n.checksum}`;
}

/**
 * What the merge of `orig`/`live` into commit `newCommit`'s `/usr/etc` would do, computed from
 * the trees and the repository only (nothing is written). `oldCommit` is the merge
 * deployment's commit (for detecting defaults that changed); either may lack `/usr/etc`.
 */
export async function previewEtcMerge(repo: Repo, orig: string, live: string, oldCommit: string | null, newCommit: string): Promise<EtcPreview> {
  const diff = await diffEtc(orig, live);
  const newRoot = (await repo.readCommit(newCommit)).rootTree;
  const oldRoot = oldCommit ? (await repo.readCommit(oldCommit).catch(() => null))?.rootTree ?? null : null;
  const entries: EtcPreviewEntry[] = [];
  let blocked = false;
  const consider = async (rel: string, action: EtcPreviewAction): Promise<void> => {
    const nn = await lookupCommitPath(repo, newRoot, `usr/etc/${rel}`);
    const on = oldRoot ? await lookupCommitPath(repo, oldRoot, `usr/etc/${rel}`) : null;
    const lst = action === 'remove' ? null : lstatOrNull(path.join(live, rel));
    const local = lst ? kindOf(lst) : null;
    const e: EtcPreviewEntry = { path: rel, action, local, newDefault: await nodeKind(repo, nn) };
    if (action !== 'remove' && e.newDefault === 'dir' && local !== 'dir') {
      e.conflict = 'newly-directory';
      blocked = true;
    } else if (action === 'add-local' && nn !== null) e.conflict = 'default-added';
    else if (oldRoot !== null && nodeId(nn) !== nodeId(on) && nn !== null) {
      e.conflict = action === 'remove' ? 'removed-default-changed' : 'default-changed';
    }
    entries.push(e);
  };
  for (const r of diff.modified) await consider(r, 'keep-local');
  for (const r of diff.removed) await consider(r, 'remove');
  for (const r of diff.added) await consider(r, 'add-local');
  entries.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return { ...diff, entries, blocked };
}
