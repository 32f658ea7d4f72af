/**
 * Larch must read repos the real ostree wrote: `log`, `ls -R`, `cat`,
 * `rev-parse` (and `show`) print what ostree prints for the same repo.
 * Repos are built here with ostree (archive and bare-user), and the golden
 * repos in test-fixtures/golden are read as well.
 */
import { rm, writeFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  goldenPath,
  interopDescribe,
  larch,
  makeFixtureTree,
  ostreeOk,
  requireOstree,
  runOk,
  tmpDirs,
  type TmpDir,
} from '@larch/test-fixtures';
import { readFile } from 'node:fs/promises';
import { COMMIT_ARGS, copyRepo, initOstree, type Mode } from './helpers.js';

const describeInterop = interopDescribe(describe);
const tmp = tmpDirs('larch-read-');
afterAll(tmp.cleanupAll);

/** Runs the same read-only command with both tools and expects identical stdout and success. */
async function same(args: string[]): Promise<void> {
  const theirs = await ostreeOk(args);
  const ours = await larch(args);
  expect(ours.stderr).toBe('');
  expect(ours.code).toBe(0);
  expect(ours.stdoutBytes.equals(theirs.stdoutBytes), `larch ${args.join(' ')}\n--- larch ---\n${ours.stdout}\n--- ostree ---\n${theirs.stdout}`).toBe(true);
}

for (const mode of ['archive', 'bare-user'] as Mode[]) {
  describeInterop(`interop: larch reads a repo ostree wrote (${mode})`, () => {
    let d: TmpDir;
    let repo: string;
    beforeAll(async () => {
      requireOstree();
      d = await tmp.make();
      repo = d.join('repo');
      await initOstree(repo, mode);
      const tree = d.join('tree');
      await makeFixtureTree(tree, 'mixed');
      const commit = (subject: string, extra: string[] = []) =>
        ostreeOk(['commit', `--repo=${repo}`, '-b', 'main', '-s', subject, '--timestamp=2021-02-03 04:05:06 +0000',
          '--owner-uid=0', '--owner-gid=0', ...extra, `--tree=dir=${tree}`]);
      await commit('first commit');
      await writeFile(`${tree}/small/hello.txt`, 'hello again\n');
      await commit('second commit', ['--body=with a body\n\nand a second paragraph']);
      await rm(`${tree}/odd`, { recursive: true });
      await commit('third commit', ['--add-metadata-string=version=3.0']);
      await ostreeOk(['commit', `--repo=${repo}`, '-b', 'other/branch', ...COMMIT_ARGS, `--tree=dir=${tree}/small`]);
    });

    it('log prints the same history', async () => {
      await same(['log', `--repo=${repo}`, 'main']);
    });

    it('log marks missing history the same way', async () => {
      const copy = d.join(`cut-${mode}`);
      await copyRepo(repo, copy);
      const first = (await ostreeOk(['rev-parse', `--repo=${copy}`, 'main^^'])).stdout.trim();
      await rm(`${copy}/objects/${first.slice(0, 2)}/${first.slice(2)}.commit`);
      await same(['log', `--repo=${copy}`, 'main']);
    });

    it('ls -R prints the same listing', async () => {
      await same(['ls', `--repo=${repo}`, '-R', 'main']);
    });

    it('ls -R -C prints the same listing with checksums', async () => {
      await same(['ls', `--repo=${repo}`, '-R', '-C', 'main']);
    });

    it('ls of a subdirectory and of the previous commit prints the same', async () => {
      await same(['ls', `--repo=${repo}`, 'main^', '/odd']);
    });

    it('cat prints the same bytes', async () => {
      for (const path of ['/small/hello.txt', '/small/bytes.bin', '/small/seeded-100k.bin', '/unicode/cafe\u0301', '/symlinks/sub/file']) {
        await same(['cat', `--repo=${repo}`, 'main', path]);
      }
      await same(['cat', `--repo=${repo}`, 'main^', '/odd/-rf']);
    });

    it('rev-parse resolves refs, parents and prefixes the same way', async () => {
      const head = (await ostreeOk(['rev-parse', `--repo=${repo}`, 'main'])).stdout.trim();
      for (const spec of ['main', 'main^', 'main^^', 'other/branch', head, head.slice(0, 12)]) {
        await same(['rev-parse', `--repo=${repo}`, spec]);
      }
    });

    it('show prints the same commit', async () => {
      await same(['show', `--repo=${repo}`, 'main']);
    });
  });
}

describeInterop('interop: larch reads the golden repos', () => {
  for (const mode of ['archive', 'bare-user']) {
    it(`${mode}: show and ls -R -C match the output ostree recorded`, async () => {
      requireOstree();
      const d = await tmp.make();
      const repo = d.join('repo');
      await runOk('mkdir', ['-p', repo]);
      await runOk('tar', ['--xattrs', '--xattrs-include=user.*', '-xzf', goldenPath('repos', `${mode}.tar.gz`), '-C', repo]);
      const commit = (await readFile(goldenPath('example-commit.txt'), 'utf8')).trim();
      const show = await larch(['show', `--repo=${repo}`, commit]);
      expect(show.stderr).toBe('');
      expect(show.stdout).toBe(await readFile(goldenPath('show.txt'), 'utf8'));
      const ls = await larch(['ls', `--repo=${repo}`, '-R', '-C', 'test']);
      expect(ls.stdout).toBe(await readFile(goldenPath('ls-R.txt'), 'utf8'));
      const rp = await larch(['rev-parse', `--repo=${repo}`, 'test']);
      expect(rp.stdout.trim()).toBe(commit);
    });
  }

  it('archive: summary --view matches the output ostree recorded for the same summary file', async () => {
    requireOstree();
    const d = await tmp.make();
    const repo = d.join('repo');
    await runOk('mkdir', ['-p', repo]);
    await runOk('tar', ['-xzf', goldenPath('repos', 'archive.tar.gz'), '-C', repo]);
    const r = await larch(['summary', '--view', `--repo=${repo}`]);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe(await readFile(goldenPath('summary-view.txt'), 'utf8'));
  });
});
