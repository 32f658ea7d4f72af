import { existsSync, mkdirSync, readFileSync, writeFileSync, symlinkSync, lstatSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Repo } from '../src/repo.js';
import { checkout } from '../src/repo-checkout.js';
import { LarchError } from '../src/errors.js';
import { HAVE_OSTREE, SAMPLE, cleanup, makeTree, ostree, ostreeInitCommit, ostreeRun, snapshot, tmp, type Node } from './helpers.js';

afterAll(cleanup);

function compare(theirs: Map<string, Node>, ours: Map<string, Node>, checkLinks = true): void {
  expect([...ours.keys()]).toEqual([...theirs.keys()]);
  for (const [p, t] of theirs) {
    const o = ours.get(p)!;
    const msg = `${p}: ours ${JSON.stringify(o)} theirs ${JSON.stringify(t)}`;
    expect(o.type, msg).toBe(t.type);
    expect(o.mode, msg).toBe(t.mode);
    expect(o.uid, msg).toBe(t.uid);
    expect(o.gid, msg).toBe(t.gid);
    expect(o.content, msg).toBe(t.content);
    expect(o.target, msg).toBe(t.target);
    expect(o.xattrs, msg).toBe(t.xattrs);
    // ostree leaves mtime 0 on directories and hardlinked objects, "now" on copies.
    expect(o.mtime === 0, msg).toBe(t.mtime === 0);
    if (checkLinks) expect(o.nlink > 1 && o.type !== 'd', msg).toBe(t.nlink > 1 && t.type !== 'd');
  }
}

const CASES: Array<{ mode: 'bare' | 'bare-user' | 'bare-user-only' | 'archive'; userMode: boolean; hardlinks: boolean }> = [
  { mode: 'bare', userMode: false, hardlinks: true },
  { mode: 'bare', userMode: true, hardlinks: false },
  { mode: 'bare-user', userMode: true, hardlinks: true },
  { mode: 'bare-user', userMode: false, hardlinks: false },
  { mode: 'bare-user-only', userMode: true, hardlinks: true },
  { mode: 'bare-user-only', userMode: false, hardlinks: true },
  { mode: 'archive', userMode: false, hardlinks: false },
  { mode: 'archive', userMode: true, hardlinks: false },
];

describe.skipIf(!HAVE_OSTREE)('checkout matches ostree checkout', () => {
  for (const c of CASES) {
    it(`${c.mode} repo, ${c.userMode ? '-U' : 'as root'}`, async () => {
      const d = tmp();
      const tree = path.join(d, 'tree');
      makeTree(tree, SAMPLE);
      const repoPath = path.join(d, 'repo');
      const extra = c.mode === 'bare-user-only' ? ['--canonical-permissions'] : [];
      const commit = ostreeInitCommit(repoPath, c.mode, tree, 'main', extra);
      const theirs = path.join(d, 'theirs');
      const args = ['checkout', `--repo=${repoPath}`, ...(c.userMode ? ['-U'] : []), 'main', theirs];
      ostree(...args);
      const repo = await Repo.open(repoPath);
      const ours = path.join(d, 'ours');
      const stats = await checkout(repo, { commit, dest: ours, userMode: c.userMode });
      // ostree -U on an archive repo hardlinks from its uncompressed-objects-cache, which we do not keep.
      compare(snapshot(theirs), snapshot(ours), !(c.mode === 'archive' && c.userMode));
      expect(stats.files).toBe(10);
      if (c.hardlinks) expect(stats.hardlinked).toBeGreaterThan(0);
      else expect(stats.hardlinked).toBe(0);
      expect(stats.hardlinked + stats.copied).toBe(stats.files);
    });
  }

  it('reports progress, honours noHardlinks and stops when aborted', async () => {
    const d = tmp();
    const tree = path.join(d, 'tree');
    const spec: Record<string, string> = {};
    for (let i = 0; i < 600; i++) spec[`d${i % 5}/f${i}`] = `content ${i}\n`;
    makeTree(tree, spec);
    const commit = ostreeInitCommit(path.join(d, 'repo'), 'bare-user', tree);
    const repo = await Repo.open(path.join(d, 'repo'));
    const seen: number[] = [];
    const s1 = await checkout(repo, { commit, dest: path.join(d, 'a'), userMode: true, onProgress: (p) => seen.push(p.files) });
    expect(s1).toMatchObject({ files: 600, hardlinked: 600, copied: 0, dirs: 6 });
    expect(seen.length).toBeGreaterThan(1);
    expect(seen[seen.length - 1]).toBe(600);
    const s2 = await checkout(repo, { commit, dest: path.join(d, 'b'), userMode: true, noHardlinks: true });
    expect(s2).toMatchObject({ files: 600, hardlinked: 0, copied: 600 });
    expect(lstatSync(path.join(d, 'b', 'd0', 'f0')).nlink).toBe(1);
    const ac = new AbortController();
    ac.abort();
    await expect(checkout(repo, { commit, dest: path.join(d, 'c'), signal: ac.signal })).rejects.toMatchObject({ code: 'ABORTED' });
  });

  it('refuses an existing destination without a union mode', async () => {
    const d = tmp();
    const tree = path.join(d, 'tree');
    makeTree(tree, { a: 'a' });
    const commit = ostreeInitCommit(path.join(d, 'repo'), 'archive', tree);
    const repo = await Repo.open(path.join(d, 'repo'));
    mkdirSync(path.join(d, 'dest'));
    expect(ostreeRun('checkout', `--repo=${repo.path}`, 'main', path.join(d, 'dest')).status).not.toBe(0);
    await expect(checkout(repo, { commit, dest: path.join(d, 'dest') })).rejects.toMatchObject({ code: 'EXISTS' });
  });

  for (const mode of ['bare', 'archive'] as const) it(`union overwrites, union-add keeps, union-identical accepts only identical files (${mode})`, async () => {
    const d = tmp();
    const tree = path.join(d, 'tree');
    makeTree(tree, { 'a': 'new-a\n', 'sub/b': 'new-b\n', 'l': { symlink: 'a' } });
    const commit = ostreeInitCommit(path.join(d, 'repo'), mode, tree);
    const repo = await Repo.open(path.join(d, 'repo'));

    const u = path.join(d, 'union');
    makeTree(u, { a: 'old-a\n', extra: 'keep\n', 'sub/b': 'old-b\n' });
    await checkout(repo, { commit, dest: u, union: true });
    expect(readFileSync(path.join(u, 'a'), 'utf8')).toBe('new-a\n');
    expect(readFileSync(path.join(u, 'sub/b'), 'utf8')).toBe('new-b\n');
    expect(readFileSync(path.join(u, 'extra'), 'utf8')).toBe('keep\n');

    const ua = path.join(d, 'union-add');
    makeTree(ua, { a: 'old-a\n' });
    await checkout(repo, { commit, dest: ua, unionAdd: true });
    expect(readFileSync(path.join(ua, 'a'), 'utf8')).toBe('old-a\n');
    expect(readFileSync(path.join(ua, 'sub/b'), 'utf8')).toBe('new-b\n');

    const ui = path.join(d, 'union-identical');
    await checkout(repo, { commit, dest: ui });
    await checkout(repo, { commit, dest: ui, unionIdentical: true }); // same objects: accepted
    writeFileSync(path.join(d, 'x'), 'different\n');
    const ui2 = path.join(d, 'union-identical-2');
    makeTree(ui2, { a: 'different\n' });
    await expect(checkout(repo, { commit, dest: ui2, unionIdentical: true })).rejects.toMatchObject({ code: 'EXISTS' });
    // ostree agrees on both outcomes (it only supports --union-identical with hardlinks).
    if (mode === 'bare') {
      expect(ostreeRun('checkout', `--repo=${repo.path}`, '--union-identical', '--require-hardlinks', 'main', ui).status).toBe(0);
      expect(ostreeRun('checkout', `--repo=${repo.path}`, '--union-identical', '--require-hardlinks', 'main', ui2).status).not.toBe(0);
    }
  });

  it('checks out a subpath, and a single file', async () => {
    const d = tmp();
    const tree = path.join(d, 'tree');
    makeTree(tree, SAMPLE);
    const commit = ostreeInitCommit(path.join(d, 'repo'), 'archive', tree);
    const repo = await Repo.open(path.join(d, 'repo'));
    ostree('checkout', `--repo=${repo.path}`, '--subpath=/deep/a', 'main', path.join(d, 'theirs'));
    await checkout(repo, { commit, dest: path.join(d, 'ours'), subpath: '/deep/a' });
    compare(snapshot(path.join(d, 'theirs')), snapshot(path.join(d, 'ours')));
    ostree('checkout', `--repo=${repo.path}`, '--subpath=/bin/tool', 'main', path.join(d, 'theirs-file'));
    await checkout(repo, { commit, dest: path.join(d, 'ours-file'), subpath: '/bin/tool' });
    expect(snapshot(path.join(d, 'ours-file')).get('.')?.content).toBe(snapshot(path.join(d, 'theirs-file')).get('.')?.content);
    await expect(checkout(repo, { commit, dest: path.join(d, 'nope'), subpath: '/no/such' })).rejects.toBeInstanceOf(LarchError);
  });

  it('a union over a directory replaced by a symlink never writes outside the destination', async () => {
    const d = tmp();
    const tree = path.join(d, 'tree');
    makeTree(tree, { 'sub/f': 'payload\n', 'sub/g': 'g\n' });
    const commit = ostreeInitCommit(path.join(d, 'repo'), 'archive', tree);
    const repo = await Repo.open(path.join(d, 'repo'));
    const outside = path.join(d, 'outside');
    mkdirSync(outside);
    writeFileSync(path.join(outside, 'sentinel'), 'untouched');
    const dest = path.join(d, 'dest');
    mkdirSync(dest);
    symlinkSync(outside, path.join(dest, 'sub'));
    for (const mode of [{ union: true }, { unionAdd: true }, { unionIdentical: true }]) {
      await expect(checkout(repo, { commit, dest, ...mode })).rejects.toMatchObject({ code: 'EXISTS' });
    }
    expect(readFileSync(path.join(outside, 'sentinel'), 'utf8')).toBe('untouched');
    expect(existsSync(path.join(outside, 'f'))).toBe(false);
    expect(existsSync(path.join(outside, 'g'))).toBe(false);
    expect(lstatSync(path.join(dest, 'sub')).isSymbolicLink()).toBe(true);
  });
});
