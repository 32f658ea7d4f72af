/**
 * FsStore and the publish/prune logic on a local directory (no S3 engine needed): atomic puts,
 * listing, publish order and skipping, refusing inconsistent repos, prune reachability.
 */
import { promises as fsp } from 'node:fs';
import { Readable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { ostreeOk, requireOstree, tmpDir, type TmpDir } from '@larch/test-fixtures';
import { FsStore, publishRepo, pruneStore, deltaDirKey, mb64, classify, cacheControlFor } from '../src/index.js';
import { makeDebianLikeTree, changeFiles } from './engine.js';

const dirs: TmpDir[] = [];
afterAll(async () => {
  for (const d of dirs) await d.cleanup();
});
async function newDir(): Promise<TmpDir> {
  const d = await tmpDir('larch-fs-');
  dirs.push(d);
  return d;
}

describe('FsStore', () => {
  it('puts atomically, checks length and MD5, lists by prefix in key order, deletes', async () => {
    const d = await newDir();
    const s = new FsStore(d.join('store'));
    const md5 = '5d41402abc4b2a76b9719d911017c592'; // "hello"
    expect((await s.put('a/b/c', Buffer.from('hello'), { contentType: 'x', cacheControl: 'y', length: 5, md5 })).etag).toBe(md5);
    await s.put('a/b/d', () => Readable.from([Buffer.from('hel'), Buffer.from('lo!')]), { contentType: 'x', cacheControl: 'y', length: 6 });
    // A body that reopens at a range is written whole.
    const ranged = { open: (r?: { start: number; end: number }) => Readable.from([Buffer.from('ranged!').subarray(r?.start ?? 0, (r?.end ?? 6) + 1)]) };
    await s.put('a/b/e', ranged, { contentType: 'x', cacheControl: 'y', length: 7 });
    expect(await fsp.readFile(d.join('store/a/b/e'), 'utf8')).toBe('ranged!');
    await expect(s.put('a/x', Buffer.from('hello'), { contentType: 'x', cacheControl: 'y', length: 5, md5: '0'.repeat(32) })).rejects.toThrow(/PUT a\/x: .*BadDigest/);
    await expect(s.put('a/y', Buffer.from('hello'), { contentType: 'x', cacheControl: 'y', length: 4 })).rejects.toThrow(/wrote 5 bytes, expected 4/);
    await expect(s.put('../escape', Buffer.from('x'), { contentType: 'x', cacheControl: 'y', length: 1 })).rejects.toThrow(/Invalid object key/);
    expect(await fsp.readdir(d.join('store/a'))).toEqual(['b']); // no temporary files left
    const keys = [];
    for await (const o of s.list('a/b/')) keys.push([o.key, o.size]);
    expect(keys).toEqual([['a/b/c', 5], ['a/b/d', 6], ['a/b/e', 7]]);
    expect(Buffer.from((await s.getBytes('a/b/d', 100))!).toString()).toBe('hello!');
    expect(await s.getBytes('nope', 100)).toBeNull();
    await expect(s.getBytes('a/b/d', 3)).rejects.toThrow(/more than 3/);
    const chunks: Buffer[] = [];
    for await (const c of await s.get('a/b/d', { start: 1, end: 3 })) chunks.push(c as Buffer);
    expect(Buffer.concat(chunks).toString()).toBe('ell');
    await expect(s.get('nope')).rejects.toThrow(/No such object: nope/);
    await s.deleteMany(['a/b/c', 'missing']);
    expect(await s.head('a/b/c')).toBeNull();
    expect((await s.head('a/b/d'))?.size).toBe(6);
  });

  it('names keys as OSTree does', () => {
    const to = 'ab'.repeat(32);
    expect(mb64(to)).toBe(Buffer.from(to, 'hex').toString('base64').replace(/=+$/, '').replace(/\//g, '_'));
    expect(deltaDirKey(to)).toBe(`deltas/${mb64(to).slice(0, 2)}/${mb64(to).slice(2)}/`);
    expect(classify('objects/ab/cd.filez')).toBe('object');
    expect(classify('objects/ab/cd.commitmeta')).toBe('commitmeta');
    expect(classify('deltas/ab/cd/superblock')).toBe('delta-superblock');
    expect(cacheControlFor('commitmeta')).toMatch(/max-age=60/);
    expect(cacheControlFor('delta-part')).toMatch(/immutable/);
  });
});

describe('publishRepo and pruneStore on a directory', () => {
  it('mirrors an archive repo, then uploads only what changed; refuses a summary naming a missing commit', async () => {
    requireOstree();
    const d = await newDir();
    const repo = d.join('repo');
    const files = makeDebianLikeTree(d.join('tree'), 120, 4);
    await ostreeOk(['init', `--repo=${repo}`, '--mode=archive']);
    const v1 = (await ostreeOk(['commit', `--repo=${repo}`, '-b', 'main', `--tree=dir=${d.join('tree')}`])).stdout.trim();
    await ostreeOk(['summary', '-u', `--repo=${repo}`]);
    const store = new FsStore(d.join('pub'));
    const phases: string[] = [];
    const r1 = await publishRepo(repo, store, { onProgress: (p) => phases.at(-1) !== p.phase && phases.push(p.phase) });
    expect(phases).toEqual(['scan', 'list', 'objects', 'commits', 'metadata', 'deltas', 'verify', 'refs', 'summary', 'done']);
    // Order: every object before the commit, the commit before the ref, the summary last.
    const at = (k: string): number => r1.uploaded.indexOf(k);
    const commitKey = `objects/${v1.slice(0, 2)}/${v1.slice(2)}.commit`;
    expect(Math.max(...r1.uploaded.filter((k) => classify(k) === 'object').map(at))).toBeLessThan(at(commitKey));
    expect(at(commitKey)).toBeLessThan(at('refs/heads/main'));
    expect(r1.uploaded.at(-1)).toBe('summary');
    expect(await fsp.readFile(d.join('pub/refs/heads/main'), 'utf8')).toBe(`${v1}\n`);
    const r2 = await publishRepo(repo, store);
    expect(r2.uploaded).toEqual([]);
    changeFiles(d.join('tree'), files, 3, 1);
    await ostreeOk(['commit', `--repo=${repo}`, '-b', 'main', `--tree=dir=${d.join('tree')}`]);
    const dry = await publishRepo(repo, store, { dryRun: true });
    expect(dry.uploaded).toContain('refs/heads/main');
    expect(dry.summaryPublished).toBe(false); // summary not regenerated: still names v1, which is there
    expect(await fsp.readFile(d.join('pub/refs/heads/main'), 'utf8')).toBe(`${v1}\n`);
    // A summary naming a commit the repo lacks is refused before anything is uploaded.
    await fsp.rm(d.join(`repo/${commitKey}`));
    await expect(publishRepo(repo, store)).rejects.toThrow(new RegExp(`summary of .* names commit ${v1}`));
  });

  it('prune keeps what refs reach and deletes the rest after the grace period', async () => {
    requireOstree();
    const d = await newDir();
    const repo = d.join('repo');
    makeDebianLikeTree(d.join('a'), 60, 5);
    makeDebianLikeTree(d.join('b'), 60, 6);
    await ostreeOk(['init', `--repo=${repo}`, '--mode=archive']);
    await ostreeOk(['commit', `--repo=${repo}`, '-b', 'a', `--tree=dir=${d.join('a')}`]);
    await ostreeOk(['commit', `--repo=${repo}`, '-b', 'b', `--tree=dir=${d.join('b')}`]);
    const store = new FsStore(d.join('pub'));
    await publishRepo(repo, store);
    await ostreeOk(['refs', `--repo=${repo}`, '--delete', 'b']);
    expect((await publishRepo(repo, store)).deletedRefs).toEqual(['refs/heads/b']);
    const young = await pruneStore(store, { graceSeconds: 3600 });
    expect(young.deleted).toEqual([]);
    expect(young.keptYoung).toBeGreaterThan(60);
    const old = await pruneStore(store, { graceSeconds: 0, now: new Date(Date.now() + 1000) });
    expect(old.deleted.length).toBe(young.keptYoung);
    const again = await pruneStore(store, { graceSeconds: 0, now: new Date(Date.now() + 1000) });
    expect(again.deleted).toEqual([]);
    expect(again.reachable).toBe(old.reachable);
  });
});
