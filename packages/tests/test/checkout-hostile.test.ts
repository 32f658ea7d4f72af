/**
 * Hostile commits, written object by object so that no validation of ours
 * stands in the way: checkout must refuse entry names "", ".", "..", "a/b"
 * and must never write through a symlink to outside the target directory.
 * A sentinel directory sits just outside the target (the target is created
 * inside it), so `..` and escaping links all point at it.
 */
import { access } from 'node:fs/promises';
import { afterAll, describe, expect, it } from 'vitest';
import {
  interopDescribe,
  larch,
  makeSentinel,
  requireOstree,
  tmpDirs,
  writeHostileCommit,
  type HostileDir,
} from '@larch/test-fixtures';
import { expectOneLineError, initOstree, type Mode } from './helpers.js';

const describeInterop = interopDescribe(describe);
const tmp = tmpDirs('larch-hostile-');
afterAll(tmp.cleanupAll);

async function exists(p: string): Promise<boolean> {
  return access(p).then(
    () => true,
    () => false,
  );
}

/** A repo with `root` committed, an outside sentinel dir, and a target path inside it. */
async function setup(mode: Mode, root: HostileDir) {
  const d = await tmp.make();
  const repo = d.join('repo');
  await initOstree(repo, mode);
  const sentinel = await makeSentinel(d.join('outside'), { allow: ['dest'] });
  const { commit } = await writeHostileCommit(repo, root, { ref: 'hostile' });
  return { d, repo, sentinel, commit, dest: d.join('outside', 'dest') };
}

const BAD_NAMES: Array<[string, string]> = [
  ['the empty name', ''],
  ['"."', '.'],
  ['".."', '..'],
  ['"a/b"', 'a/b'],
];

for (const mode of ['archive', 'bare-user'] as Mode[]) {
  describeInterop(`interop: checkout of hostile commits (${mode})`, () => {
    for (const [label, name] of BAD_NAMES) {
      it(`refuses a file entry named ${label}`, async () => {
        requireOstree();
        const { repo, sentinel, commit, dest } = await setup(mode, {
          files: [
            { name: 'ok.txt', content: 'fine\n' },
            { name, content: 'pwned\n' },
          ],
          dirs: [{ name: 'a', tree: { files: [{ name: 'keep', content: 'k\n' }] } }],
        });
        const r = await larch(['checkout', `--repo=${repo}`, commit, dest]);
        expectOneLineError(r);
        await sentinel.assertUntouched();
        expect(await exists(`${dest}/a/b`)).toBe(false);
      });

      it(`refuses a directory entry named ${label}`, async () => {
        requireOstree();
        const { repo, sentinel, commit, dest } = await setup(mode, {
          files: [{ name: 'ok.txt', content: 'fine\n' }],
          dirs: [{ name, tree: { files: [{ name: 'sentinel', content: 'pwned\n' }, { name: 'dropped', content: 'x\n' }] } }],
        });
        const r = await larch(['checkout', `--repo=${repo}`, commit, dest]);
        expectOneLineError(r);
        await sentinel.assertUntouched();
      });
    }

    it('does not write through a symlink that shares its name with a directory entry (relative target)', async () => {
      requireOstree();
      const { repo, sentinel, commit, dest } = await setup(mode, {
        files: [{ name: 'esc', symlink: '..' }],
        dirs: [{ name: 'esc', tree: { files: [{ name: 'sentinel', content: 'pwned\n' }, { name: 'dropped', content: 'x\n' }] } }],
      });
      const r = await larch(['checkout', `--repo=${repo}`, commit, dest]);
      expect(r.code).not.toBe(0);
      await sentinel.assertUntouched();
    });

    it('does not write through a symlink that shares its name with a directory entry (absolute target)', async () => {
      requireOstree();
      const d = await tmp.make();
      const repo = d.join('repo');
      await initOstree(repo, mode);
      const sentinel = await makeSentinel(d.join('elsewhere'));
      const { commit } = await writeHostileCommit(repo, {
        files: [{ name: 'esc', symlink: sentinel.dir }],
        dirs: [{ name: 'esc', tree: { files: [{ name: 'sentinel', content: 'pwned\n' }, { name: 'dropped', content: 'x\n' }] } }],
      });
      const r = await larch(['checkout', `--repo=${repo}`, commit, d.join('dest')]);
      expect(r.code).not.toBe(0);
      await sentinel.assertUntouched();
    });

    it('creates an escaping symlink as a symlink and does not follow it', async () => {
      requireOstree();
      const { repo, sentinel, commit, dest } = await setup(mode, {
        files: [
          { name: 'up', symlink: '../sentinel' },
          { name: 'abs', symlink: '/etc/passwd' },
        ],
      });
      const r = await larch(['checkout', `--repo=${repo}`, commit, dest]);
      expect(r.code, r.stderr).toBe(0);
      await sentinel.assertUntouched();
    });

    it('union checkout of a second commit does not write through a symlink the first one created', async () => {
      // Real ostree 2022.7 follows the link here (it writes outside the target);
      // Larch refuses: the link came from repository content, not from the user.
      requireOstree();
      const d = await tmp.make();
      const repo = d.join('repo');
      await initOstree(repo, mode);
      const sentinel = await makeSentinel(d.join('outside'));
      const first = await writeHostileCommit(repo, { files: [{ name: 'sub', symlink: sentinel.dir }] });
      const second = await writeHostileCommit(repo, {
        dirs: [{ name: 'sub', tree: { files: [{ name: 'sentinel', content: 'pwned\n' }, { name: 'dropped', content: 'x\n' }] } }],
      });
      const dest = d.join('dest');
      const r1 = await larch(['checkout', `--repo=${repo}`, first.commit, dest]);
      expect(r1.code, r1.stderr).toBe(0);
      await larch(['checkout', '--union', `--repo=${repo}`, second.commit, dest]);
      await sentinel.assertUntouched();
    });
  });
}
