import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Variant, bswap64 } from '@larch/gvariant';
import { afterAll, describe, expect, it } from 'vitest';
import { Repo } from '../src/repo.js';
import { generateSummary, readSummary, summaryRefTimestamp } from '../src/repo-summary.js';
import { HAVE_OSTREE, cleanup, makeTree, ostree, tmp } from './helpers.js';

afterAll(cleanup);

function fixture(): { repo: string; main: string; rel: string } {
  const d = tmp();
  const repo = path.join(d, 'repo');
  ostree('init', `--repo=${repo}`, '--mode=archive');
  const tree = path.join(d, 'tree');
  makeTree(tree, { a: 'a\n' });
  ostree('commit', `--repo=${repo}`, '-b', 'main', `--tree=dir=${tree}`, '--timestamp=2020-01-01 00:00:00 +0000', '-s', 's');
  ostree('commit', `--repo=${repo}`, '-b', 'release/1.0', `--tree=dir=${tree}`, '--timestamp=2021-06-01 12:00:00 +0000', '-s', 'r', '--add-metadata-string=version=1.0.3');
  ostree('commit', `--repo=${repo}`, '-b', 'Zeta', `--tree=dir=${tree}`, '--timestamp=2021-06-01 12:00:00 +0000', '-s', 'z');
  // A remote ref must never appear in the summary.
  ostree('remote', 'add', `--repo=${repo}`, '--no-gpg-verify', 'origin', 'http://example.invalid/repo');
  ostree('refs', `--repo=${repo}`, '--create=origin:main', 'main');
  return { repo, main: ostree('rev-parse', `--repo=${repo}`, 'main').trim(), rel: ostree('rev-parse', `--repo=${repo}`, 'release/1.0').trim() };
}

describe.skipIf(!HAVE_OSTREE)('summary', () => {
  it('is byte-identical to `ostree summary -u` for the same regeneration time', async () => {
    const f = fixture();
    ostree('summary', `--repo=${f.repo}`, '-u');
    const theirs = readFileSync(path.join(f.repo, 'summary'));
    const parsed = readSummary(theirs);
    const lm = parsed.metadata.find(([k]) => k === 'ostree.summary.last-modified')![1];
    const now = bswap64(lm.value as bigint);
    const repo = await Repo.open(f.repo);
    const ours = await generateSummary(repo, { now });
    expect(Buffer.from(ours).toString('hex')).toBe(theirs.toString('hex'));
    expect(readFileSync(path.join(f.repo, 'summary')).equals(Buffer.from(ours))).toBe(true);
  });

  it('reads the summary ostree writes: refs sorted by strcmp, sizes, timestamps, versions', async () => {
    const f = fixture();
    ostree('summary', `--repo=${f.repo}`, '-u');
    const s = readSummary(readFileSync(path.join(f.repo, 'summary')));
    expect(s.refs.map((r) => r.name)).toEqual(['Zeta', 'main', 'release/1.0']);
    const main = s.refs.find((r) => r.name === 'main')!;
    const repo = await Repo.open(f.repo);
    expect(main.checksum).toBe(f.main);
    expect(main.size).toBe((await repo.readMetadata('commit', f.main)).length);
    expect(summaryRefTimestamp(main)).toBe(1577836800n);
    const rel = s.refs.find((r) => r.name === 'release/1.0')!;
    expect(rel.metadata.find(([k]) => k === 'ostree.commit.version')?.[1].value).toBe('1.0.3');
    expect(main.metadata.some(([k]) => k === 'ostree.commit.version')).toBe(false);
    expect(s.metadata.find(([k]) => k === 'ostree.summary.mode')?.[1].value).toBe('archive-z2');
  });

  it('ostree summary --view reads ours, with extra metadata', async () => {
    const f = fixture();
    const repo = await Repo.open(f.repo);
    await generateSummary(repo, { additionalMetadata: [['org.example.note', new Variant('s', 'hello')]], now: 1600000000n });
    const view = ostree('summary', `--repo=${f.repo}`, '--view');
    expect(view).toContain('* main');
    expect(view).toContain(f.main);
    expect(view).toContain('Version (ostree.commit.version): 1.0.3');
    expect(view).toContain('Timestamp (ostree.commit.timestamp): 2020-01-01T00:00:00+00');
    expect(view).toContain('Repository Mode (ostree.summary.mode): archive-z2');
    expect(view).toContain('Last-Modified (ostree.summary.last-modified): 2020-09-13T12:26:40+00');
    expect(view).toContain("org.example.note: 'hello'");
    expect(view).not.toContain('origin');
    const size = (await repo.readMetadata('commit', f.main)).length;
    expect(view).toContain(`Latest Commit (${size} bytes)`);
  });

  it('matches ostree byte for byte with a collection id (refs of the collection, collection-id key)', async () => {
    const d = tmp();
    const repoPath = path.join(d, 'repo');
    ostree('init', `--repo=${repoPath}`, '--mode=archive', '--collection-id=org.example.Os');
    const tree = path.join(d, 'tree');
    makeTree(tree, { a: 'a\n' });
    ostree('commit', `--repo=${repoPath}`, '-b', 'main', `--tree=dir=${tree}`, '--timestamp=2020-01-01 00:00:00 +0000', '-s', 's');
    // `summary -u` also commits an ostree-metadata branch in collection mode; regenerate over the same refs.
    ostree('summary', `--repo=${repoPath}`, '-u');
    const theirs = readFileSync(path.join(repoPath, 'summary'));
    const now = bswap64(readSummary(theirs).metadata.find(([k]) => k === 'ostree.summary.last-modified')![1].value as bigint);
    const repo = await Repo.open(repoPath);
    const ours = await generateSummary(repo, { now });
    expect(Buffer.from(ours).toString('hex')).toBe(theirs.toString('hex'));
  });

  it('lists static deltas by name with the sha256 of their superblock, as ostree does', async () => {
    const d = tmp();
    const repoPath = path.join(d, 'repo');
    ostree('init', `--repo=${repoPath}`, '--mode=archive');
    const tree = path.join(d, 'tree');
    makeTree(tree, { a: 'a\n' });
    ostree('commit', `--repo=${repoPath}`, '-b', 'main', `--tree=dir=${tree}`, '-s', 's1');
    makeTree(tree, { b: 'b\n' });
    ostree('commit', `--repo=${repoPath}`, '-b', 'main', `--tree=dir=${tree}`, '-s', 's2');
    ostree('static-delta', 'generate', `--repo=${repoPath}`, 'main');
    ostree('static-delta', 'generate', `--repo=${repoPath}`, '--empty', 'main');
    ostree('summary', `--repo=${repoPath}`, '-u');
    const theirs = readSummary(readFileSync(path.join(repoPath, 'summary')));
    const now = bswap64(theirs.metadata.find(([k]) => k === 'ostree.summary.last-modified')![1].value as bigint);
    const repo = await Repo.open(repoPath);
    const ours = readSummary(await generateSummary(repo, { now }));
    const deltas = (s: typeof ours): Array<[string, string]> =>
      (s.metadata.find(([k]) => k === 'ostree.static-deltas')![1].value as Array<[string, Variant]>)
        .map(([n, v]): [string, string] => [n, Buffer.from(v.value as Uint8Array).toString('hex')])
        .sort();
    expect(deltas(ours)).toHaveLength(2);
    expect(deltas(ours)).toEqual(deltas(theirs));
    expect(ours.metadata.map(([k]) => k)).toEqual(theirs.metadata.map(([k]) => k));
  });

  it('deletes a stale summary.sig and writes atomically', async () => {
    const f = fixture();
    writeFileSync(path.join(f.repo, 'summary.sig'), 'stale');
    const repo = await Repo.open(f.repo);
    await generateSummary(repo);
    expect(existsSync(path.join(f.repo, 'summary.sig'))).toBe(false);
    expect(existsSync(path.join(f.repo, 'summary'))).toBe(true);
  });

  it('rejects malformed summaries with OBJECT_CORRUPTED', () => {
    expect(() => readSummary(new Uint8Array([1, 2, 3]))).toThrow(expect.objectContaining({ code: 'OBJECT_CORRUPTED' }));
  });
});
