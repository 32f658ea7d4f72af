import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdir, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { commitTree, Repo } from '@larch/core-store';
import { join } from 'node:path';
import { tmpDir, type TmpDir } from '@larch/test-fixtures';
import { diffToParent, fullCommitBytes, listHeadRefs, listStaticDeltas, listTree, readLog, FullSizeCache, ReachableCommits } from '../src/browse-read.js';
import { makeBrowseFixture, type BrowseFixture } from './fixture.js';

let tmp: TmpDir;
let fx: BrowseFixture;

beforeAll(async () => {
  tmp = await tmpDir('larch-browse-');
  fx = await makeBrowseFixture(tmp.path);
});
afterAll(async () => {
  await tmp.cleanup();
});

describe('listHeadRefs', () => {
  it('lists the head with its commit subject, version and timestamp', async () => {
    const r = await listHeadRefs(fx.repo);
    expect(r.truncated).toBe(false);
    expect(r.refs).toEqual([{ ref: 'os/main', commit: fx.commits[2], timestamp: '2023-11-16T22:13:20.000Z', subject: 'Drop the old library', version: '1.2' }]);
  });
  it('filters by prefix', async () => {
    expect((await listHeadRefs(fx.repo, { prefix: 'apps/' })).refs).toEqual([]);
  });
});

describe('readLog', () => {
  it('walks the history newest first', async () => {
    const r = await readLog(fx.repo, 'os/main');
    expect(r.commits.map((c) => c.checksum)).toEqual([fx.commits[2], fx.commits[1], fx.commits[0]]);
    expect(r.commits.map((c) => c.version)).toEqual(['1.2', '1.1', '1.0']);
    expect(r.commits[0].parent).toBe(fx.commits[1]);
    expect(r.commits[2].parent).toBeNull();
    expect(r.commits[2].body).toBe('The base system.');
    expect(r.truncated).toBe(false);
    expect(r.historyMissing).toBe(false);
  });
  it('stops at the limit and says so', async () => {
    const r = await readLog(fx.repo, 'os/main', { limit: 2 });
    expect(r.commits).toHaveLength(2);
    expect(r.truncated).toBe(true);
  });
  it('refuses an unknown ref with REF_NOT_FOUND', async () => {
    await expect(readLog(fx.repo, 'os/none')).rejects.toMatchObject({ code: 'REF_NOT_FOUND', data: { ref: 'os/none' } });
  });
});

describe('listTree', () => {
  it('lists directories first, then files and symlinks, with their metadata', async () => {
    const r = await listTree(fx.repo, fx.commits[0], '/');
    expect(r.path).toBe('/');
    expect(r.entries.map((e) => [e.name, e.type])).toEqual([
      ['etc', 'dir'],
      ['usr', 'dir'],
      ['bin', 'symlink'],
    ]);
    const bin = r.entries[2];
    expect(bin.target).toBe('usr/bin');
    expect(r.entries[0].size).toBeNull();
    expect(r.entries[0].mode & 0o170000).toBe(0o040000);
  });
  it('descends into a subdirectory and reports file sizes', async () => {
    const r = await listTree(fx.repo, fx.commits[0], '/usr/lib');
    expect(r.path).toBe('/usr/lib');
    expect(r.entries.map((e) => e.name)).toEqual(['libold.so', 'libsym.so']);
    expect(r.entries[0]).toMatchObject({ name: 'libold.so', type: 'file', size: 'old library '.length * 200, target: null });
    expect(r.entries[0].checksum).toMatch(/^[0-9a-f]{64}$/);
  });
  it('pages with offset and limit', async () => {
    const r = await listTree(fx.repo, fx.commits[2], '/', { offset: 1, limit: 1 });
    expect(r.entries.map((e) => e.name)).toEqual(['usr']);
    expect(r.total).toBe(3);
    expect(r.truncated).toBe(true);
  });
  it('refuses traversal and names missing paths', async () => {
    await expect(listTree(fx.repo, fx.commits[0], '/usr/../etc')).rejects.toMatchObject({ code: 'INVALID_NAME' });
    await expect(listTree(fx.repo, fx.commits[0], '/nope')).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', data: { reason: 'not-found', path: '/nope' } });
    await expect(listTree(fx.repo, fx.commits[0], '/etc/os-release')).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', data: { reason: 'not-a-directory' } });
  });
});

describe('diffToParent', () => {
  it('lists everything as added for a commit without parent', async () => {
    const r = await diffToParent(fx.repo, fx.commits[0]);
    expect(r.parent).toBeNull();
    expect(r.changes.every((c) => c.kind === 'added')).toBe(true);
    expect(r.changes.map((c) => c.path).sort()).toEqual(['/bin', '/etc', '/etc/os-release', '/usr', '/usr/bin', '/usr/bin/hello', '/usr/lib', '/usr/lib/libold.so', '/usr/lib/libsym.so']);
  });
  it('lists modified, removed and added paths against the parent', async () => {
    const r2 = await diffToParent(fx.repo, fx.commits[1]);
    expect(r2.parent).toBe(fx.commits[0]);
    expect(r2.changes).toEqual([
      { path: '/etc/os-release', kind: 'modified' },
      { path: '/usr/share', kind: 'added' },
      { path: '/usr/share/doc', kind: 'added' },
      { path: '/usr/share/doc/readme', kind: 'added' },
    ]);
    const r3 = await diffToParent(fx.repo, fx.commits[2]);
    expect(r3.changes).toEqual([
      { path: '/usr/bin/hello', kind: 'modified' },
      { path: '/usr/lib/libsym.so', kind: 'modified' },
      { path: '/usr/lib/libold.so', kind: 'removed' },
    ]);
  });
});

describe('pruned history', () => {
  it('ends the log with historyMissing and refuses a diff against a missing parent', async () => {
    const pruned = await makeBrowseFixture(tmp.join('pruned'), { deltas: false });
    await rm(pruned.repo.objectPath('commit', pruned.commits[0]));
    const r = await readLog(pruned.repo, 'os/main');
    expect(r.commits.map((c) => c.checksum)).toEqual([pruned.commits[2], pruned.commits[1]]);
    expect(r.historyMissing).toBe(true);
    await expect(diffToParent(pruned.repo, pruned.commits[1])).rejects.toMatchObject({ code: 'OBJECT_MISSING', data: { parent: pruned.commits[0] } });
    expect((await diffToParent(pruned.repo, pruned.commits[2])).parent).toBe(pruned.commits[1]);
  });
});

describe('listStaticDeltas', () => {
  it('reports both deltas of the head with their sizes and ref', async () => {
    const r = await listStaticDeltas(fx.repo, { cache: new FullSizeCache() });
    expect(r.deltas.map((d) => [d.from, d.to, d.ref])).toEqual([
      [null, fx.commits[2], 'os/main'],
      [fx.commits[1], fx.commits[2], 'os/main'],
    ]);
    for (const d of r.deltas) {
      expect(d.parts).toBeGreaterThanOrEqual(1);
      expect(d.deltaBytes).toBeGreaterThan(0);
    }
    // The FROM-TO delta carries only the changes, so it is smaller than the from-scratch one.
    expect(r.deltas[1].deltaBytes).toBeLessThan(r.deltas[0].deltaBytes);
  });
  it('computes the full size as the sum of the stored objects of the commit', async () => {
    // A repository with one commit holds exactly that commit's objects.
    const repo = await Repo.init({ path: tmp.join('single', 'repo'), mode: 'archive' });
    const tree = tmp.join('single', 'tree');
    await mkdir(join(tree, 'a', 'b'), { recursive: true });
    await writeFile(join(tree, 'a', 'one'), 'one\n');
    await writeFile(join(tree, 'a', 'b', 'two'), 'two '.repeat(5000));
    const { commit } = await commitTree(repo, { tree, branch: 'single', subject: 'only' });
    let all = 0;
    const objects = join(repo.path, 'objects');
    for (const pre of await readdir(objects)) for (const f of await readdir(join(objects, pre))) all += (await stat(join(objects, pre, f))).size;
    expect(await fullCommitBytes(repo, commit)).toBe(all);
  });
  it('reports the full size of the delta target', async () => {
    const full = await fullCommitBytes(fx.repo, fx.commits[2]);
    const r = await listStaticDeltas(fx.repo);
    expect(r.deltas[0].fullBytes).toBe(full);
    expect(r.deltas[1].fullBytes).toBe(full);
    // The 6000-line library dominates: the full size is at least its compressed size.
    expect(full).toBeGreaterThan(20_000);
  });

  it('shows a ref-scoped caller only the deltas of its refs', async () => {
    expect((await listStaticDeltas(fx.repo, { refPrefix: 'apps/' })).deltas).toEqual([]);
  });
});

describe('ReachableCommits', () => {
  it('holds the histories of the refs under a prefix, and follows the refs as they move', async () => {
    const reach = new ReachableCommits();
    for (const c of fx.commits) expect(await reach.has(fx.repo, 'os/', c)).toBe(true);
    for (const c of fx.commits) expect(await reach.has(fx.repo, 'apps/', c)).toBe(false);
    // A ref under the prefix appears, pointing at the first commit: its history is that one commit.
    await fx.repo.setRef('apps/pinned', fx.commits[0]);
    try {
      expect(await reach.has(fx.repo, 'apps/', fx.commits[0])).toBe(true);
      expect(await reach.has(fx.repo, 'apps/', fx.commits[1])).toBe(false);
      await fx.repo.setRef('apps/pinned', fx.commits[1]);
      expect(await reach.has(fx.repo, 'apps/', fx.commits[1])).toBe(true);
      expect(await reach.has(fx.repo, 'apps/', fx.commits[2])).toBe(false);
    } finally {
      await fx.repo.setRef('apps/pinned', null);
    }
    expect(await reach.has(fx.repo, 'apps/', fx.commits[0])).toBe(false);
  });
});
