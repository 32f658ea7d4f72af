/**
 * The /etc three-way merge on hand-made trees: modified, removed, added and type-changed entries
 * (file ↔ symlink ↔ directory) on the admin's side and on the defaults' side, with modes and
 * xattrs kept; the one unmergeable case; the dry-run preview on a real sysroot.
 */
import { lstatSync, mkdirSync, readFileSync, readlinkSync, writeFileSync, chmodSync, symlinkSync, rmSync, unlinkSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as native from '@larch/native';
import { makeTree, tmpDir, type TmpDir, type TreeSpec } from '@larch/test-fixtures';
import { applyEtcMerge, deploy, diffEtc, initFs, osInit, previewDeploy, Sysroot } from '../src/index.js';
import { copyTree } from '../src/fsutil.js';
import { commitOs, mutating, removeSysroot } from './helpers.js';

let work: TmpDir;
beforeAll(async () => {
  work = await tmpDir('larch-etc-merge-');
});
afterAll(async () => {
  await work?.cleanup();
});

let n = 0;
/** old defaults, the admin's tree (old defaults + `edit`), new defaults → merged result. */
async function merge(oldDefaults: TreeSpec, edit: (live: string) => void, newDefaults: TreeSpec): Promise<{ dest: string; diff: Awaited<ReturnType<typeof diffEtc>> }> {
  const base = work.join(`case-${++n}`);
  const orig = path.join(base, 'orig');
  const live = path.join(base, 'live');
  const newDef = path.join(base, 'new-defaults');
  const dest = path.join(base, 'dest');
  mkdirSync(orig, { recursive: true });
  mkdirSync(newDef, { recursive: true });
  await makeTree(orig, oldDefaults);
  await makeTree(newDef, newDefaults);
  copyTree(orig, live);
  edit(live);
  copyTree(newDef, dest);
  const diff = await diffEtc(orig, live);
  applyEtcMerge(live, dest, diff);
  return { dest, diff };
}

const kind = (p: string): string => {
  try {
    const st = lstatSync(p);
    return st.isFile() ? 'file' : st.isSymbolicLink() ? 'symlink' : st.isDirectory() ? 'dir' : 'other';
  } catch {
    return 'absent';
  }
};

describe('etc three-way merge', () => {
  it('modified locally keeps the local version, with its mode and xattrs', async () => {
    const { dest, diff } = await merge(
      { 'a.conf': 'default\n', 'b.conf': 'b\n' },
      (live) => {
        writeFileSync(path.join(live, 'a.conf'), 'local\n');
        native.lsetxattr(path.join(live, 'a.conf'), 'user.larch', Buffer.from('kept'));
        chmodSync(path.join(live, 'b.conf'), 0o600);
      },
      { 'a.conf': 'new default\n', 'b.conf': 'new b\n' },
    );
    expect(diff).toEqual({ modified: ['a.conf', 'b.conf'], removed: [], added: [] });
    expect(readFileSync(path.join(dest, 'a.conf'), 'utf8')).toBe('local\n');
    expect(native.lgetxattr(path.join(dest, 'a.conf'), 'user.larch')?.toString()).toBe('kept');
    expect(lstatSync(path.join(dest, 'b.conf')).mode & 0o7777).toBe(0o600);
    expect(readFileSync(path.join(dest, 'b.conf'), 'utf8')).toBe('b\n');
    expect(lstatSync(path.join(dest, 'a.conf')).nlink).toBe(1);
  });

  it('removed locally stays removed, new defaults arrive, unchanged files take the new default', async () => {
    const { dest, diff } = await merge(
      { 'gone.conf': 'x\n', 'gonedir/f': 'y\n', 'same.conf': 's\n' },
      (live) => {
        unlinkSync(path.join(live, 'gone.conf'));
        rmSync(path.join(live, 'gonedir'), { recursive: true });
      },
      { 'gone.conf': 'x2\n', 'gonedir/f': 'y2\n', 'same.conf': 's2\n', 'fresh.conf': 'f\n' },
    );
    expect(diff).toEqual({ modified: [], removed: ['gone.conf', 'gonedir'], added: [] });
    expect(kind(path.join(dest, 'gone.conf'))).toBe('absent');
    expect(kind(path.join(dest, 'gonedir'))).toBe('absent');
    expect(readFileSync(path.join(dest, 'same.conf'), 'utf8')).toBe('s2\n');
    expect(readFileSync(path.join(dest, 'fresh.conf'), 'utf8')).toBe('f\n');
  });

  it('added locally arrives: files, symlinks, whole directories with their modes and xattrs', async () => {
    const { dest, diff } = await merge(
      { 'keep.conf': 'k\n' },
      (live) => {
        writeFileSync(path.join(live, 'mine.conf'), 'mine\n', { mode: 0o640 });
        symlinkSync('../usr/share/zoneinfo/UTC', path.join(live, 'localtime'));
        mkdirSync(path.join(live, 'private/sub'), { recursive: true });
        writeFileSync(path.join(live, 'private/sub/key'), 'secret\n');
        chmodSync(path.join(live, 'private'), 0o700);
        native.lsetxattr(path.join(live, 'private'), 'user.dir', Buffer.from('d'));
      },
      { 'keep.conf': 'k\n' },
    );
    expect(diff.added).toEqual(['localtime', 'mine.conf', 'private']);
    expect(lstatSync(path.join(dest, 'mine.conf')).mode & 0o7777).toBe(0o640);
    expect(readlinkSync(path.join(dest, 'localtime'))).toBe('../usr/share/zoneinfo/UTC');
    expect(readFileSync(path.join(dest, 'private/sub/key'), 'utf8')).toBe('secret\n');
    expect(lstatSync(path.join(dest, 'private')).mode & 0o7777).toBe(0o700);
    expect(native.lgetxattr(path.join(dest, 'private'), 'user.dir')?.toString()).toBe('d');
  });

  it('type changes by the admin: file→symlink, symlink→file, file→dir, dir→file, symlink→dir', async () => {
    const { dest, diff } = await merge(
      { f2l: 'f\n', l2f: { type: 'symlink', target: 'x' }, f2d: 'f\n', 'd2f/inner': 'i\n', l2d: { type: 'symlink', target: 'y' } },
      (live) => {
        unlinkSync(path.join(live, 'f2l'));
        symlinkSync('target', path.join(live, 'f2l'));
        unlinkSync(path.join(live, 'l2f'));
        writeFileSync(path.join(live, 'l2f'), 'now a file\n');
        unlinkSync(path.join(live, 'f2d'));
        mkdirSync(path.join(live, 'f2d'));
        writeFileSync(path.join(live, 'f2d/child'), 'c\n');
        rmSync(path.join(live, 'd2f'), { recursive: true });
        writeFileSync(path.join(live, 'd2f'), 'was a dir\n');
        unlinkSync(path.join(live, 'l2d'));
        mkdirSync(path.join(live, 'l2d'), { mode: 0o750 });
      },
      { f2l: 'f\n', l2f: { type: 'symlink', target: 'x' }, f2d: 'f\n', l2d: { type: 'symlink', target: 'y' } },
    );
    expect(diff.modified).toEqual(['d2f', 'f2d', 'f2l', 'l2d', 'l2f']);
    expect(kind(path.join(dest, 'f2l'))).toBe('symlink');
    expect(readlinkSync(path.join(dest, 'f2l'))).toBe('target');
    expect(kind(path.join(dest, 'l2f'))).toBe('file');
    expect(readFileSync(path.join(dest, 'f2d/child'), 'utf8')).toBe('c\n');
    expect(readFileSync(path.join(dest, 'd2f'), 'utf8')).toBe('was a dir\n');
    expect(kind(path.join(dest, 'l2d'))).toBe('dir');
    expect(lstatSync(path.join(dest, 'l2d')).mode & 0o7777).toBe(0o750);
  });

  it('type changes in the defaults reach entries the admin did not touch', async () => {
    const { dest, diff } = await merge(
      { x: 'file\n', 'y/inner': 'i\n', z: { type: 'symlink', target: 't' } },
      () => undefined,
      { 'x/now-dir': 'd\n', y: { type: 'symlink', target: 'elsewhere' }, z: 'now a file\n' },
    );
    expect(diff).toEqual({ modified: [], removed: [], added: [] });
    expect(kind(path.join(dest, 'x'))).toBe('dir');
    expect(kind(path.join(dest, 'y'))).toBe('symlink');
    expect(kind(path.join(dest, 'z'))).toBe('file');
  });

  it("an admin's directory replaces a default that became a file", async () => {
    const { dest } = await merge({ d: 'file\n' }, (live) => {
      unlinkSync(path.join(live, 'd'));
      mkdirSync(path.join(live, 'd'));
      writeFileSync(path.join(live, 'd/x'), 'x\n');
    }, { d: { type: 'symlink', target: 'other' } });
    expect(readFileSync(path.join(dest, 'd/x'), 'utf8')).toBe('x\n');
  });

  it("an admin's file where the new defaults have a directory cannot merge", async () => {
    await expect(
      merge({ d: 'file\n' }, (live) => writeFileSync(path.join(live, 'd'), 'changed\n'), { 'd/child': 'c\n' }),
    ).rejects.toMatchObject({ code: 'EXISTS', data: { reason: 'etc-conflict', path: 'd' } });
  });

  it('an added file whose parent the new defaults dropped gets the parent from the live tree', async () => {
    const { dest } = await merge({ 'sub/a': 'a\n' }, (live) => {
      writeFileSync(path.join(live, 'sub/added'), 'mine\n');
      chmodSync(path.join(live, 'sub'), 0o710);
      native.lsetxattr(path.join(live, 'sub'), 'user.p', Buffer.from('parent'));
    }, {});
    expect(readFileSync(path.join(dest, 'sub/added'), 'utf8')).toBe('mine\n');
    expect(kind(path.join(dest, 'sub/a'))).toBe('absent');
    expect(lstatSync(path.join(dest, 'sub')).mode & 0o7777).toBe(0o710);
    expect(native.lgetxattr(path.join(dest, 'sub'), 'user.p')?.toString()).toBe('parent');
  });
});

describe('deploy --dry-run preview', () => {
  let root = '';
  afterAll(async () => {
    if (root) await removeSysroot(root);
  });

  it('names what will happen and the conflicts, and writes nothing', async () => {
    root = work.join('sysroot');
    mkdirSync(root);
    await initFs(root);
    await osInit(root, 'testos');
    const repo = path.join(root, 'ostree/repo');
    const c1 = await commitOs(work.path, repo, { version: '1', etc: { 'a.conf': 'a1\n', 'b.conf': 'b1\n', 'gone.conf': 'g\n', sub: { type: 'dir' } } });
    await deploy(root, { stateroot: 'testos', refspec: 'testos/main' });
    const sr = await Sysroot.open(root);
    const dir = sr.deploymentDir(sr.deployments[0]);
    await mutating(dir, () => {
      writeFileSync(path.join(dir, 'etc/a.conf'), 'local a\n');
      writeFileSync(path.join(dir, 'etc/b.conf'), 'local b\n');
      unlinkSync(path.join(dir, 'etc/gone.conf'));
      writeFileSync(path.join(dir, 'etc/new.conf'), 'n\n');
      rmSync(path.join(dir, 'etc/sub'), { recursive: true });
      writeFileSync(path.join(dir, 'etc/sub'), 'not a dir\n');
    });
    const c2 = await commitOs(work.path, repo, { version: '2', etc: { 'a.conf': 'a2\n', 'b.conf': 'b1\n', 'gone.conf': 'g2\n', 'new.conf': 'vendor\n', 'sub/x': 'x\n' } });
    const before = JSON.stringify((await Sysroot.open(root)).deployments.map((d) => d.csum));
    const p = await previewDeploy(root, { stateroot: 'testos', refspec: 'testos/main' });
    expect(p.commit).toBe(c2);
    expect(p.merge?.csum).toBe(c1);
    expect(p.etc?.entries).toEqual([
      { path: 'a.conf', action: 'keep-local', local: 'file', newDefault: 'file', conflict: 'default-changed' },
      { path: 'b.conf', action: 'keep-local', local: 'file', newDefault: 'file' },
      { path: 'gone.conf', action: 'remove', local: null, newDefault: 'file', conflict: 'removed-default-changed' },
      { path: 'new.conf', action: 'add-local', local: 'file', newDefault: 'file', conflict: 'default-added' },
      { path: 'sub', action: 'keep-local', local: 'file', newDefault: 'dir', conflict: 'newly-directory' },
    ]);
    expect(p.etc?.blocked).toBe(true);
    expect(p.list.map((d) => d.isNew)).toEqual([true, false]);
    expect(JSON.stringify((await Sysroot.open(root)).deployments.map((d) => d.csum))).toBe(before);
    // and the real deploy fails exactly there, leaving the old configuration
    await expect(deploy(root, { stateroot: 'testos', refspec: 'testos/main' })).rejects.toMatchObject({ data: { reason: 'etc-conflict' } });
    expect(JSON.stringify((await Sysroot.open(root)).deployments.map((d) => d.csum))).toBe(before);
  });
});
