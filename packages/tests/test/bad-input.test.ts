/**
 * Bad input must fail cleanly: exactly one `error:` line on stderr, no stack
 * trace, a non-zero exit, nothing left in the repo's tmp/ and no ref change.
 * Unreadable inputs are made real ways that stop root too: a FIFO, a unix
 * socket, a path under a dangling symlink, and a 0000 file read by a root
 * process whose DAC-override capabilities were dropped (setpriv).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { access, chmod, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import {
  larch,
  larchCliPath,
  makeFixtureTree,
  makeTree,
  run,
  tmpDirs,
} from '@larch/test-fixtures';
import { COMMIT_ARGS, commitWith, expectCleanFailure, expectOneLineError, initLarch, listFiles, snapshotRefs } from './helpers.js';

const tmp = tmpDirs('larch-bad-');
afterAll(tmp.cleanupAll);

async function exists(p: string): Promise<boolean> {
  return access(p).then(
    () => true,
    () => false,
  );
}

/** A larch archive repo with one commit on `main`. */
async function repoWithMain() {
  const d = await tmp.make();
  const repo = d.join('repo');
  await initLarch(repo, 'archive');
  await makeFixtureTree(d.join('tree'), 'small-files');
  const main = await commitWith('larch', repo, d.join('tree'), 'main');
  return { d, repo, main };
}

describe('bad input fails cleanly', () => {
  it('missing repo: log names the repo and creates nothing', async () => {
    const d = await tmp.make();
    const missing = d.join('no-such-repo');
    await expectCleanFailure(['log', `--repo=${missing}`, 'main'], null);
    expect(await exists(missing)).toBe(false);
  });

  it('missing repo: commit fails and creates nothing', async () => {
    const d = await tmp.make();
    await makeTree(d.join('tree'), { f: 'x' });
    const missing = d.join('no-such-repo');
    await expectCleanFailure(['commit', `--repo=${missing}`, '-b', 'main', ...COMMIT_ARGS, `--tree=dir=${d.join('tree')}`], null);
    expect(await exists(missing)).toBe(false);
  });

  it('unknown ref: log, rev-parse and checkout name the ref', async () => {
    const { d, repo } = await repoWithMain();
    for (const args of [
      ['log', `--repo=${repo}`, 'nosuch'],
      ['rev-parse', `--repo=${repo}`, 'nosuch'],
      ['checkout', `--repo=${repo}`, 'nosuch', d.join('dest')],
    ]) {
      const msg = await expectCleanFailure(args, repo);
      expect(msg).toContain('nosuch');
    }
    expect(await exists(d.join('dest'))).toBe(false);
  });

  it('bad mode: init refuses it and writes no config', async () => {
    const d = await tmp.make();
    const msg = await expectCleanFailure(['init', `--repo=${d.join('repo')}`, '--mode=bogus'], null);
    expect(msg).toContain('bogus');
    expect(await exists(d.join('repo', 'config'))).toBe(false);
  });

  it('bad mode: a repo whose config names an unknown mode is refused', async () => {
    const { repo } = await repoWithMain();
    const config = `[core]\nrepo_version=1\nmode=bogus\n`;
    await writeFile(`${repo}/config`, config);
    const msg = await expectCleanFailure(['log', `--repo=${repo}`, 'main'], repo);
    expect(msg).toContain('bogus');
  });

  it('unreadable input: a FIFO in the tree is refused without hanging', async () => {
    const { d, repo } = await repoWithMain();
    await makeFixtureTree(d.join('t2'), 'small-files');
    execFileSync('mkfifo', [d.join('t2', 'text', 'fifo')]);
    const msg = await expectCleanFailure(['commit', `--repo=${repo}`, '-b', 'main', ...COMMIT_ARGS, `--tree=dir=${d.join('t2')}`], repo);
    expect(msg).toContain('fifo');
  });

  it('unreadable input: a unix socket in the tree is refused', async () => {
    const { d, repo } = await repoWithMain();
    await makeFixtureTree(d.join('t3'), 'small-files');
    const sock = d.join('t3', 'sock');
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(sock, resolve));
    try {
      const msg = await expectCleanFailure(['commit', `--repo=${repo}`, '-b', 'other', ...COMMIT_ARGS, `--tree=dir=${d.join('t3')}`], repo);
      expect(msg).toContain('sock');
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('unreadable input: a tree path under a dangling symlink is refused', async () => {
    const { d, repo } = await repoWithMain();
    await makeTree(d.join('links'), { dangling: { type: 'symlink', target: 'gone' } });
    await expectCleanFailure(['commit', `--repo=${repo}`, '-b', 'main', ...COMMIT_ARGS, `--tree=dir=${d.join('links/dangling/sub')}`], repo);
  });

  it('unreadable input: a 0000 file fails the commit when root lacks DAC override', async () => {
    // root ignores file modes through CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH; dropping them from
    // the bounding set (setpriv, util-linux) makes a mode-0000 file unreadable to the commit
    const hasSetpriv = spawnSync('setpriv', ['--version']).status === 0;
    expect(hasSetpriv, 'setpriv (util-linux) is needed to drop capabilities').toBe(true);
    const { d, repo } = await repoWithMain();
    await makeFixtureTree(d.join('tree2'), 'small-files');
    await chmod(d.join('tree2', 'text', 'lorem.txt'), 0o000);
    const tmpBefore = await listFiles(`${repo}/tmp`);
    const refsBefore = await snapshotRefs(repo);
    const cli = process.env.LARCH_CLI ? [process.env.LARCH_CLI] : [process.execPath, larchCliPath()];
    const r = await run('setpriv', [
      '--bounding-set=-dac_override,-dac_read_search',
      '--',
      ...cli,
      'commit',
      `--repo=${repo}`,
      '-b',
      'main',
      ...COMMIT_ARGS,
      `--tree=dir=${d.join('tree2')}`,
    ]);
    const msg = expectOneLineError(r);
    expect(msg).toContain('lorem.txt');
    expect(await listFiles(`${repo}/tmp`)).toEqual(tmpBefore);
    expect(await snapshotRefs(repo)).toEqual(refsBefore);
  });

  it('unknown options and verbs are usage errors', async () => {
    const { repo } = await repoWithMain();
    const r1 = await larch(['log', `--repo=${repo}`, '--no-such-option', 'main']);
    expect(r1.code).not.toBe(0);
    const r2 = await larch(['no-such-verb', `--repo=${repo}`]);
    expect(r2.code).not.toBe(0);
  });
});
