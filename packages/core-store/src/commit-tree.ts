/**
 * The commit's tree (repo-commit.ts): sources are overlaid in order into one `MutableTree` (a
 * walked directory with its dirmetas, or a directory of the repository for `--tree=ref`,
 * rewritten entry by entry when the commit has a modifier), then serialized bottom-up into
 * sorted dirtrees, an unchanged directory keeping its dirtree.
 */
import { promises as fsp } from 'node:fs';
import { LarchError } from './errors.js';
import { serializeDirMeta } from './objects/dirmeta.js';
import { serializeDirTree } from './objects/dirtree.js';
import { stageContent } from './objects/content-io.js';
import type { MutableTree } from './mutable-tree.js';
import { rootRel } from './commit-modifier.js';
import type { DirNode } from './commit-scan.js';
import type { CommitState } from './commit-state.js';
import { S_IFLNK, S_IFMT, type Checksum, type DirTreeDir, type DirTreeFile, type FileMeta } from './types.js';

/** Overlay a walked directory into the tree: its dirmeta, its files, its subdirectories. */
export async function overlayDir(st: CommitState, d: DirNode, t: MutableTree): Promise<void> {
  const mod = st.mod;
  const m = mod.modify(rootRel(d.rel), d.st.mode, d.st.uid, d.st.gid);
  t.setMeta(st.writeMetaSync('dirmeta', serializeDirMeta({ uid: m.uid, gid: m.gid, mode: m.mode, xattrs: mod.xattrsOf(d.abs) })));
  await t.load(st.repo);
  for (const f of d.files) t.replaceFile(f.name, f.checksum!);
  for (const c of d.dirs) await overlayDir(st, c, t.ensureDir(c.name));
}

/** Overlay a directory of the repository (`--tree=ref`); with a modifier every entry is rewritten. */
export async function overlayRepoDir(st: CommitState, treeCk: Checksum, metaCk: Checksum, t: MutableTree, rel: string): Promise<void> {
  const { repo, mod } = st;
  st.checkAbort();
  if (!mod.modified) {
    if (t.isEmpty) {
      t.fillLazy(treeCk, metaCk);
      return;
    }
    t.setMeta(metaCk);
  } else {
    const dm = await repo.readDirMeta(metaCk);
    const m = mod.modify(rootRel(rel), dm.mode, dm.uid, dm.gid);
    t.setMeta(st.writeMetaSync('dirmeta', serializeDirMeta({ uid: m.uid, gid: m.gid, mode: m.mode, xattrs: mod.withXattrs ? dm.xattrs : [] })));
  }
  await t.load(repo);
  const dt = await repo.readDirTree(treeCk);
  for (const f of dt.files) {
    const childRel = `${rel}/${f.name}`;
    if (mod.skip.has(childRel)) {
      mod.matched.add(childRel);
      continue;
    }
    t.replaceFile(f.name, mod.modified ? await rewriteRepoFile(st, f.checksum, childRel) : f.checksum);
    st.stats.files++;
  }
  for (const d of dt.dirs) {
    const childRel = `${rel}/${d.name}`;
    if (mod.skip.has(childRel)) {
      mod.matched.add(childRel);
      continue;
    }
    await overlayRepoDir(st, d.treeChecksum, d.metaChecksum, t.ensureDir(d.name), childRel);
  }
}

/** A content object of the repository with the commit's modifier applied (stored anew when it changes). */
async function rewriteRepoFile(st: CommitState, checksum: Checksum, rel: string): Promise<Checksum> {
  const { repo, mod } = st;
  const oc = await repo.openFile(checksum);
  const m = mod.modify(rel, oc.meta.mode, oc.meta.uid, oc.meta.gid);
  const meta: FileMeta = { ...oc.meta, uid: m.uid, gid: m.gid, mode: m.mode, xattrs: mod.withXattrs ? oc.meta.xattrs : [] };
  const isLink = (meta.mode & S_IFMT) === S_IFLNK;
  const same = meta.uid === oc.meta.uid && meta.gid === oc.meta.gid && meta.mode === oc.meta.mode && meta.xattrs.length === oc.meta.xattrs.length;
  if (same) {
    st.sizeOfFile(checksum, isLink ? Buffer.byteLength(meta.symlinkTarget) : oc.size);
    return checksum;
  }
  const tmp = st.stage.newTmpPath();
  const r = await stageContent({ mode: repo.mode, meta, size: isLink ? 0 : oc.size, payload: isLink ? null : oc.open(), tmpPath: tmp, zlibLevel: repo.zlibLevel, what: `Reading object ${checksum}` });
  st.sizeOfFile(r.checksum, isLink ? Buffer.byteLength(meta.symlinkTarget) : oc.size);
  st.stats.contentTotal++;
  if (st.claim('file', r.checksum)) st.record(tmp, 'file', r.checksum, r.written, isLink ? Buffer.byteLength(meta.symlinkTarget) : oc.size);
  else await fsp.rm(tmp, { force: true });
  return r.checksum;
}

/** Serialize the tree bottom-up; an unchanged directory keeps its dirtree. */
export function writeTree(st: CommitState, t: MutableTree): { tree: Checksum; meta: Checksum } {
  if (t.meta === null) throw new LarchError('INVALID_ARGUMENT', "Can't commit an empty tree", {});
  if (t.contents !== null) return { tree: t.contents, meta: t.meta };
  const files: DirTreeFile[] = [...t.files].map(([name, checksum]) => ({ name, checksum }));
  const dirs: DirTreeDir[] = [...t.dirs].map(([name, c]) => {
    const r = writeTree(st, c);
    return { name, treeChecksum: r.tree, metaChecksum: r.meta };
  });
  t.contents = st.writeMetaSync('dirtree', serializeDirTree({ files, dirs }));
  return { tree: t.contents, meta: t.meta };
}
