import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, linkSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inflateRawSync } from 'node:zlib';
import { Repo } from './repo.js';
import { commitTree } from './repo-commit.js';
import { ArchiveStoreWorkers } from './commit-workers.js';
import { LarchError } from './errors.js';
import { fileHeader } from './objects/file-header.js';
import { serializeArchiveHeader } from './objects/archive-header.js';
import { S_IFREG } from './types.js';

const HAVE_OSTREE = spawnSync('ostree', ['--version']).status === 0;
const interop = HAVE_OSTREE || process.env.CI === 'true' ? it : it.skip;
const ostree = (...args: string[]) => execFileSync('ostree', args, { encoding: 'utf8' });
const TS = '2020-01-01 00:00:00 +0000';
const EPOCH = 1577836800n;

let dir: string;
let tree: string;
let n = 0;
const fresh = () => join(dir, `r${n++}`);
const staleTmp = (repo: Repo) => readdirSync(repo.tmpPath).filter((f) => f.startsWith('larch-'));

// A tree large enough (in file count) for commits to go through the worker pool: many small
// files (some sharing content across directories), hardlinks, symlinks, an empty file, xattrs,
// an executable, and files of more than one 1 MiB chunk.
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'larch-commitw-'));
  chmodSync(dir, 0o755);
  tree = join(dir, 'tree');
  for (let d = 0; d < 12; d++) {
    const sub = join(tree, `d${d}`);
    mkdirSync(sub, { recursive: true });
    for (let f = 0; f < 25; f++) writeFileSync(join(sub, `f${f}`), f % 5 === 0 ? `shared ${f}\n` : `file ${d}/${f} ${'x'.repeat((d * 25 + f) * 37)}\n`);
  }
  writeFileSync(join(tree, 'empty'), '');
  writeFileSync(join(tree, 'run.sh'), '#!/bin/sh\n', { mode: 0o755 });
  chmodSync(join(tree, 'run.sh'), 0o755);
  writeFileSync(join(tree, 'random-3m'), randomBytes(3 * 1024 * 1024 + 12345));
  writeFileSync(join(tree, 'exact-1m'), Buffer.alloc(1024 * 1024, 7));
  writeFileSync(join(tree, 'text-2m'), 'abcdefghij\n'.repeat(200000));
  linkSync(join(tree, 'd0', 'f1'), join(tree, 'hardlink-small'));
  linkSync(join(tree, 'random-3m'), join(tree, 'd3', 'hardlink-big'));
  symlinkSync('d0/f1', join(tree, 'link'));
  execFileSync('setfattr', ['-n', 'user.k', '-v', 'v', join(tree, 'd1', 'f2')]);
  execFileSync('setfattr', ['-n', 'user.k', '-v', 'big', join(tree, 'text-2m')]);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('archive commits on worker threads', () => {
  interop('give the same commit as ostree, pass ostree fsck and check out byte-identical', { timeout: 60000 }, async () => {
    const theirs = fresh();
    ostree('init', `--repo=${theirs}`, '--mode=archive');
    const expected = ostree('commit', `--repo=${theirs}`, '-b', 'b', `--tree=dir=${tree}`, `--timestamp=${TS}`, '-s', 's').trim();
    const repo = await Repo.init({ path: fresh(), mode: 'archive' });
    const r = await commitTree(repo, { tree, branch: 'b', subject: 's', timestamp: EPOCH });
    expect(r.commit).toBe(expected);
    expect(r.stats.files).toBe(12 * 25 + 8);
    expect(ostree('fsck', `--repo=${repo.path}`)).toContain('no errors found');
    expect(staleTmp(repo)).toEqual([]);
    // Each distinct content is stored once although several workers saw it.
    const objects = ostree('ls', `--repo=${repo.path}`, '-R', '-C', 'b')
      .split('\n')
      .filter((l) => l.startsWith('-'))
      .map((l) => l.trim().split(/\s+/)[4]);
    const files = readdirSync(join(repo.path, 'objects'), { recursive: true }).filter((p) => String(p).endsWith('.filez'));
    expect(files.length).toBe(new Set(objects).size + 1); // + the symlink
    const out = join(dir, 'co');
    ostree('checkout', `--repo=${repo.path}`, 'b', out);
    for (const p of ['random-3m', 'exact-1m', 'text-2m', 'd3/hardlink-big', 'd7/f13', 'empty']) {
      expect(readFileSync(join(out, p)).equals(readFileSync(join(tree, p)))).toBe(true);
    }
    expect(execFileSync('getfattr', ['--only-values', '-n', 'user.k', join(out, 'text-2m')], { encoding: 'utf8' })).toBe('big');
  });

  it('stores nothing new when the same tree is committed again', async () => {
    const repo = await Repo.init({ path: fresh(), mode: 'archive' });
    const a = await commitTree(repo, { tree, timestamp: EPOCH, bindings: false });
    const b = await commitTree(repo, { tree, timestamp: EPOCH + 1n, bindings: false, parent: a.commit });
    expect(b.rootTree).toBe(a.rootTree);
    expect(b.stats.newObjects).toBe(1); // the commit object only
    expect(staleTmp(repo)).toEqual([]);
  });

  it('removes every staged file and leaves no ref when aborted midway', async () => {
    const repo = await Repo.init({ path: fresh(), mode: 'archive' });
    const ac = new AbortController();
    const p = commitTree(repo, {
      tree,
      branch: 'b',
      timestamp: EPOCH,
      signal: ac.signal,
      onProgress: (x) => {
        if (x.filesDone >= 50) ac.abort();
      },
    });
    await expect(p).rejects.toMatchObject({ code: 'ABORTED' });
    expect(staleTmp(repo)).toEqual([]);
    expect(await repo.resolveRef('b')).toBe(null);
  });
});

describe('ArchiveStoreWorkers', () => {
  const meta = { uid: 0, gid: 0, mode: S_IFREG | 0o644, symlinkTarget: '', xattrs: [] };
  const job = (path: string, size: number) => ({ path, size, header: fileHeader(meta), archiveHeader: serializeArchiveHeader({ meta, size }) });

  it('stages new objects readable as archive content, and reports errors naming the path', async () => {
    const repo = await Repo.init({ path: fresh(), mode: 'archive' });
    const src = join(dir, 'w-src');
    mkdirSync(src, { recursive: true });
    const small = Buffer.from('small content\n');
    const big = randomBytes(2 * 1024 * 1024 + 3);
    writeFileSync(join(src, 'a'), small);
    writeFileSync(join(src, 'b'), big);
    const pool = new ArchiveStoreWorkers(2, { objectsDir: join(repo.path, 'objects'), tmpDir: repo.tmpPath, level: 6, maxSmall: 1024 * 1024 });
    try {
      const out = await pool.run([job(join(src, 'a'), small.length), job(join(src, 'b'), big.length), job(join(src, 'missing'), 5), job(join(src, 'a'), small.length)], 0);
      expect(out.results).toHaveLength(2);
      for (const [i, data] of [small, big].entries()) {
        const r = out.results[i];
        expect(r.read).toBe(data.length);
        const stored = readFileSync(r.tmp!);
        const hlen = stored.readUInt32BE(0);
        expect(inflateRawSync(stored.subarray(8 + hlen)).equals(data)).toBe(true);
        expect(stored.readBigUInt64BE(8)).toBe(BigInt(data.length));
        expect(r.written).toBe(stored.length);
      }
      expect(out.error).toBeInstanceOf(LarchError);
      expect(out.error!.code).toBe('IO_ERROR');
      expect(out.error!.message).toContain(join(src, 'missing'));
      // A small file that grew past the small-file limit since it was listed is refused.
      const grown = await pool.run([job(join(src, 'b'), 10)], 0);
      expect(grown.results).toHaveLength(0);
      expect(grown.error!.message).toBe(`File changed while committing: ${join(src, 'b')}`);
      // The same content again, on whichever worker: no second staged file from that worker.
      const again = await pool.run([job(join(src, 'a'), small.length)], 0);
      expect(again.results[0].checksum).toBe(out.results[0].checksum);
      expect(again.results[0].tmp).toBe(null);
    } finally {
      await pool.close();
      rmSync(repo.tmpPath, { recursive: true, force: true });
    }
  });
});
