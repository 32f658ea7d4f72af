import { chmodSync, mkdirSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Variant } from '@larch/gvariant';
import { afterAll, describe, expect, it } from 'vitest';
import { Repo } from '../src/repo.js';
import { diffCommits } from '../src/repo-diff.js';
import { log } from '../src/repo-log.js';
import { formatLsEntry, ls } from '../src/repo-ls.js';
import { objectKey, traverseCommit } from '../src/repo-traverse.js';
import { HAVE_OSTREE, SAMPLE, cleanup, makeTree, ostree, ostreeRun, tmp } from './helpers.js';

afterAll(cleanup);

/** Two commits on main: SAMPLE, then a tree with modifications, deletions, additions and a type change. */
function fixture(mode = 'archive'): { repo: string; c1: string; c2: string } {
  const d = tmp();
  const repo = path.join(d, 'repo');
  ostree('init', `--repo=${repo}`, `--mode=${mode}`);
  const tree = path.join(d, 'tree');
  makeTree(tree, SAMPLE);
  ostree('commit', `--repo=${repo}`, '-b', 'main', `--tree=dir=${tree}`, '--timestamp=2020-01-01 00:00:00 +0000', '-s', 'one');
  const c1 = ostree('rev-parse', `--repo=${repo}`, 'main').trim();
  writeFileSync(path.join(tree, 'hello.txt'), 'changed\n');
  rmSync(path.join(tree, 'deep/a/b'), { recursive: true });
  makeTree(tree, { 'newdir/inner/x': 'n\n', 'newfile': 'y\n' });
  chmodSync(path.join(tree, 'bin'), 0o700);
  unlinkSync(path.join(tree, 'link'));
  mkdirSync(path.join(tree, 'link'));
  rmSync(path.join(tree, 'emptydir'), { recursive: true });
  writeFileSync(path.join(tree, 'emptydir'), 'now a file\n');
  ostree('commit', `--repo=${repo}`, '-b', 'main', `--tree=dir=${tree}`, '--timestamp=2020-01-02 00:00:00 +0000', '-s', 'two', '--body=second commit');
  const c2 = ostree('rev-parse', `--repo=${repo}`, 'main').trim();
  return { repo, c1, c2 };
}

const lines = (s: string): string[] => s.split('\n').filter((l) => l.length > 0);

describe.skipIf(!HAVE_OSTREE)('diff, log, ls and traverse against the ostree CLI', () => {
  it('diffCommits lists what `ostree diff` prints, in the same order', async () => {
    const f = fixture();
    const repo = await Repo.open(f.repo);
    const ours = (await diffCommits(repo, f.c1, f.c2)).map((e) => `${e.kind}    ${e.path}`);
    expect(ours.length).toBeGreaterThan(8);
    expect(ours).toEqual(lines(ostree('diff', `--repo=${f.repo}`, f.c1, f.c2)));
    const back = (await diffCommits(repo, f.c2, f.c1)).map((e) => `${e.kind}    ${e.path}`);
    expect(back).toEqual(lines(ostree('diff', `--repo=${f.repo}`, f.c2, f.c1)));
    expect(await diffCommits(repo, f.c1, f.c1)).toEqual([]);
  });

  for (const args of [['/'], ['-R', '/'], ['-R', '-C', '/'], ['/bin/tool'], ['-d', '/deep'], ['-R', '/deep'], ['/link']]) {
    it(`ls matches \`ostree ls ${args.join(' ')}\``, async () => {
      const f = fixture('bare-user');
      const repo = await Repo.open(f.repo);
      const p = args[args.length - 1];
      const entries = await ls(repo, f.c1, p, { recursive: args.includes('-R'), directoryOnly: args.includes('-d') });
      const ours = entries.map((e) => formatLsEntry(e, { checksums: args.includes('-C') }));
      expect(ours).toEqual(lines(ostree('ls', `--repo=${f.repo}`, ...args.slice(0, -1), f.c1, p)));
    });
  }

  it('ls of a missing path fails like ostree', async () => {
    const f = fixture();
    const repo = await Repo.open(f.repo);
    await expect(ls(repo, f.c1, '/no/such')).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    expect(ostreeRun('ls', `--repo=${f.repo}`, f.c1, '/no/such').status).not.toBe(0);
  });

  it('log walks parents and marks the history boundary once', async () => {
    const f = fixture();
    const repo = await Repo.open(f.repo);
    const all = [];
    for await (const e of log(repo, f.c2)) all.push(e);
    expect(all.map((e) => e.checksum)).toEqual([f.c2, f.c1]);
    expect(all[0].commit?.subject).toBe('two');
    expect(all[0].commit?.body).toBe('second commit');
    unlinkSync(repo.objectPath('commit', f.c1));
    const cut = [];
    for await (const e of log(repo, f.c2)) cut.push(e);
    expect(cut).toHaveLength(2);
    expect(cut[1]).toEqual({ checksum: f.c1, commit: null });
    expect(ostree('log', `--repo=${f.repo}`, 'main')).toContain('History beyond this commit not fetched');
  });

  it('traverseCommit reaches exactly the objects of a one-commit repo; depth and missing parents', async () => {
    const f = fixture();
    const repo = await Repo.open(f.repo);
    const all = new Set<string>();
    for await (const o of repo.listObjects()) all.add(objectKey(o.type, o.checksum));
    const both = await traverseCommit(repo, f.c2, { depth: -1 });
    expect(new Set(both.keys())).toEqual(all);
    const only2 = await traverseCommit(repo, f.c2);
    expect(only2.has(objectKey('commit', f.c2))).toBe(true);
    expect(only2.has(objectKey('commit', f.c1))).toBe(false);
    expect(only2.size).toBeLessThan(both.size);
    await repo.writeCommitMeta(f.c2, [['note', new Variant('s', 'x')]]);
    expect((await traverseCommit(repo, f.c2)).has(objectKey('commitmeta', f.c2))).toBe(true);
    unlinkSync(repo.objectPath('commitmeta', f.c2));
    unlinkSync(repo.objectPath('commit', f.c1));
    const cut = await traverseCommit(repo, f.c2, { depth: -1 });
    expect(new Set(cut.keys())).toEqual(new Set(only2.keys()));
    await expect(traverseCommit(repo, f.c1)).rejects.toMatchObject({ code: 'OBJECT_MISSING' });
  });
});
