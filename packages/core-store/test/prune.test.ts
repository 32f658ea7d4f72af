import { execFileSync } from 'node:child_process';
import { readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Repo } from '../src/repo.js';
import { prune, type PruneOptions } from '../src/repo-prune.js';
import { HAVE_OSTREE, cleanup, makeTree, ostree, tmp } from './helpers.js';

afterAll(cleanup);

function objects(repo: string): string[] {
  const out: string[] = [];
  const root = path.join(repo, 'objects');
  for (const d of readdirSync(root)) for (const f of readdirSync(path.join(root, d))) out.push(d + f);
  return out.sort();
}

/** main: c1 <- c2 <- c3 (one file changes each time), other: o1 (its ref deleted), all at fixed times. */
function history(mode: string): { repo: string; c: string[]; o1: string } {
  const d = tmp();
  const repo = path.join(d, 'repo');
  ostree('init', `--repo=${repo}`, `--mode=${mode}`);
  const tree = path.join(d, 'tree');
  makeTree(tree, { 'common/a': 'shared\n', 'v': '1\n' });
  const c: string[] = [];
  for (let i = 1; i <= 3; i++) {
    writeFileSync(path.join(tree, 'v'), `${i}\n`);
    writeFileSync(path.join(tree, `only-${i}`), `unique ${i}\n`);
    ostree('commit', `--repo=${repo}`, '-b', 'main', `--tree=dir=${tree}`, `--timestamp=2020-01-0${i} 00:00:00 +0000`, '-s', `c${i}`);
    c.push(ostree('rev-parse', `--repo=${repo}`, 'main').trim());
  }
  const t2 = path.join(d, 'tree2');
  makeTree(t2, { 'other-file': 'other\n', 'common/a': 'shared\n' });
  ostree('commit', `--repo=${repo}`, '-b', 'other', `--tree=dir=${t2}`, '--timestamp=2019-06-01 00:00:00 +0000', '-s', 'o1');
  const o1 = ostree('rev-parse', `--repo=${repo}`, 'other').trim();
  ostree('refs', `--repo=${repo}`, '--delete', 'other');
  return { repo, c, o1 };
}

function copyRepo(src: string): string {
  const dst = path.join(tmp(), 'repo');
  execFileSync('cp', ['-a', src, dst]);
  return dst;
}

function parseOstree(out: string): { total: number; deleted: number } {
  const total = Number(/Total objects: (\d+)/.exec(out)?.[1]);
  const m = /(?:Deleted|Would delete:) (\d+) objects/.exec(out);
  return { total, deleted: m ? Number(m[1]) : 0 };
}

const SCENARIOS: Array<{ name: string; args: string[]; opts: (h: ReturnType<typeof history>) => PruneOptions }> = [
  { name: 'plain prune (every commit is a root)', args: [], opts: () => ({}) },
  { name: '--refs-only', args: ['--refs-only'], opts: () => ({ refsOnly: true }) },
  { name: '--refs-only --depth=0', args: ['--refs-only', '--depth=0'], opts: () => ({ refsOnly: true, depth: 0 }) },
  { name: '--refs-only --depth=1', args: ['--refs-only', '--depth=1'], opts: () => ({ refsOnly: true, depth: 1 }) },
  { name: '--no-prune --refs-only --depth=0', args: ['--no-prune', '--refs-only', '--depth=0'], opts: () => ({ noPrune: true, refsOnly: true, depth: 0 }) },
  { name: '--keep-younger-than', args: ['--keep-younger-than=2020-01-02 12:00:00 +0000'], opts: () => ({ keepYoungerThan: BigInt(Date.UTC(2020, 0, 2, 12) / 1000) }) },
];

describe.skipIf(!HAVE_OSTREE)('prune matches ostree prune', () => {
  for (const mode of ['archive', 'bare-user']) {
    for (const s of SCENARIOS) {
      it(`${s.name} (${mode})`, async () => {
        const h = history(mode);
        const theirs = copyRepo(h.repo);
        const out = ostree('prune', `--repo=${theirs}`, ...s.args);
        const expected = parseOstree(out);
        const repo = await Repo.open(h.repo);
        const r = await prune(repo, s.opts(h));
        expect({ total: r.total, deleted: r.deleted }).toEqual(expected);
        expect(objects(h.repo)).toEqual(objects(theirs));
        if (r.deleted > 0 && !s.args.includes('--no-prune')) expect(r.bytesFreed).toBeGreaterThan(0);
        // Whatever remains must still verify.
        expect(() => ostree('fsck', `--repo=${h.repo}`)).not.toThrow();
      });
    }
  }

  it('--delete-commit deletes the commit and what only it reached, and refuses a referenced commit', async () => {
    const h = history('archive');
    const theirs = copyRepo(h.repo);
    const expected = parseOstree(ostree('prune', `--repo=${theirs}`, `--delete-commit=${h.o1}`));
    const repo = await Repo.open(h.repo);
    await expect(prune(repo, { deleteCommit: h.c[2] })).rejects.toMatchObject({ code: 'EXISTS' });
    const r = await prune(repo, { deleteCommit: h.o1 });
    expect(r.deleted).toBe(expected.deleted);
    expect(objects(h.repo).filter((o) => !o.endsWith('.tombstone-commit'))).toEqual(objects(theirs).filter((o) => !o.endsWith('.tombstone-commit')));
    expect(await repo.hasObject('commit', h.o1)).toBe(false);
    expect(await repo.isCommitPartial(h.o1)).toBe(false);
    expect(repo.config.getBoolean('core', 'tombstone-commits', false)).toBe(true);
    expect(await repo.hasObject('tombstone-commit', h.o1)).toBe(true);
  });

  it('removes static deltas whose target commit is gone, like ostree', async () => {
    const h = history('archive');
    ostree('refs', `--repo=${h.repo}`, `--create=other`, h.o1);
    ostree('static-delta', 'generate', `--repo=${h.repo}`, '--empty', 'other');
    ostree('static-delta', 'generate', `--repo=${h.repo}`, '--empty', 'main');
    ostree('refs', `--repo=${h.repo}`, '--delete', 'other');
    const theirs = copyRepo(h.repo);
    ostree('prune', `--repo=${theirs}`, '--refs-only');
    const repo = await Repo.open(h.repo);
    await prune(repo, { refsOnly: true });
    const list = (r: string): string => ostree('static-delta', 'list', `--repo=${r}`);
    expect(list(h.repo)).toBe(list(theirs));
    expect(list(h.repo)).toContain(h.c[2]);
    expect(list(h.repo)).not.toContain(h.o1);
  });

  it('deletes detached metadata together with its commit', async () => {
    const h = history('archive');
    const repo = await Repo.open(h.repo);
    ostree('commit', `--repo=${h.repo}`, '-b', 'main', '--tree=ref=main', '-s', 'x'); // noop, keeps history
    writeFileSync(repo.objectPath('commitmeta', h.c[0]), Buffer.from('00', 'hex'));
    const r = await prune(repo, { refsOnly: true, depth: 0 });
    expect(r.deleted).toBeGreaterThan(0);
    expect(await repo.hasObject('commit', h.c[0])).toBe(false);
    expect(await repo.hasObject('commitmeta', h.c[0])).toBe(false);
  });
});
