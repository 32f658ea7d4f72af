/**
 * Tree walks in constant memory. A repository of 146 objects whose 40 levels each point twice at
 * the next dirtree holds 2^40 paths; `larch checkout` and `larch ls -R` must write and print them
 * as ostree does, file after file, without their memory growing with the paths done. Each runs as
 * a child process, its resident set sampled from /proc while it works, and is stopped once it
 * has done 1,000,000 paths. A second, slow suite checks the peak RSS of checking out a plain
 * 200,000-file tree.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Repo, serializeCommit, serializeDirMeta, serializeDirTree, type Checksum } from '@larch/core-store';
import { CLI, HAVE_OSTREE, scratch } from './helpers.js';

const LEVELS = 40;
const FILES_PER_DIR = 100;
const MB = 1024 * 1024;

/**
 * A bare-user repo with ref `dag`: every directory holds FILES_PER_DIR files (FILES_PER_DIR
 * distinct content objects, shared by all directories) and two subdirectories `d0` and `d1` that
 * are the same dirtree, LEVELS levels deep. Distinct objects per name keep every object's link
 * count far below ext4's 65,000 in a hardlink checkout of a million paths.
 */
async function dagRepo(path: string): Promise<void> {
  const repo = await Repo.init({ path, mode: 'bare-user' });
  const files: Array<{ name: string; checksum: Checksum }> = [];
  for (let i = 0; i < FILES_PER_DIR; i++) {
    const checksum = await repo.writeFile({ uid: 0, gid: 0, mode: 0o100644, symlinkTarget: '', xattrs: [] }, { bytes: Buffer.from(`file ${i}\n`) });
    files.push({ name: `f${String(i).padStart(2, '0')}`, checksum });
  }
  const meta = await repo.writeMetadata('dirmeta', serializeDirMeta({ uid: 0, gid: 0, mode: 0o40755, xattrs: [] }));
  let tree = await repo.writeMetadata('dirtree', serializeDirTree({ files, dirs: [] }));
  for (let level = 0; level < LEVELS; level++) {
    const dirs = ['d0', 'd1'].map((name) => ({ name, treeChecksum: tree, metaChecksum: meta }));
    tree = await repo.writeMetadata('dirtree', serializeDirTree({ files, dirs }));
  }
  const commit = await repo.writeMetadata('commit', serializeCommit({ metadata: [], parent: null, subject: 'dag', body: '', timestamp: 0n, rootTree: tree, rootMeta: meta }));
  await repo.setRef('dag', commit);
}

/** Resident set of a running process in bytes, or null once it has exited. */
function rss(pid: number): number | null {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

/**
 * Paths a depth-first checkout of the DAG has written so far, read from the destination: at each
 * level, an existing `d1` means the whole `d0` subtree is done (2^h - 1 directories of
 * FILES_PER_DIR + 1 paths each, for a subtree of height h - 1).
 */
function writtenPaths(dest: string): number {
  const perDir = FILES_PER_DIR + 1;
  let n = 0;
  let p = dest;
  for (let h = LEVELS; h >= 0; h--) {
    if (!existsSync(p)) break;
    n += perDir;
    if (existsSync(join(p, 'd1'))) {
      n += perDir * (2 ** h - 1);
      p = join(p, 'd1');
    } else p = join(p, 'd0');
  }
  return n;
}

interface Watch {
  /** RSS when 100,000 paths were done. */
  at100k: number;
  /** Largest RSS seen from then until 1,000,000 paths. */
  max: number;
  paths: number;
}

/**
 * Sample `child`'s RSS while `done()` counts its progress; stop it once it has done 1,000,000
 * paths. Fails when it exits first, or grows past `ceiling` bytes (the old code did, long before
 * a million paths).
 */
async function watch(child: ChildProcess, done: () => number, ceiling = 1024 * MB): Promise<Watch> {
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  let at100k = -1;
  let max = 0;
  let paths = 0;
  try {
    for (;;) {
      await new Promise((r) => setTimeout(r, 50));
      const r = rss(child.pid!);
      paths = done();
      if (r === null) throw new Error(`stopped after ${paths} paths: ${stderr}`);
      if (r > ceiling) throw new Error(`RSS ${Math.round(r / MB)} MB after ${paths} paths`);
      if (at100k < 0 && paths >= 100_000) at100k = r;
      if (at100k >= 0) max = Math.max(max, r);
      if (paths >= 1_000_000) return { at100k, max, paths };
    }
  } finally {
    child.kill('SIGKILL');
    await exited;
  }
}

describe('tree walks over a DAG of 2^40 paths', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let repo: string;

  beforeAll(async () => {
    ({ dir, cleanup } = await scratch('larch-dag-'));
    repo = join(dir, 'repo');
    await dagRepo(repo);
  });
  afterAll(async () => cleanup());

  it('larch ls -R prints as it walks, in flat memory', async () => {
    const child = spawn(process.execPath, [CLI, 'ls', `--repo=${repo}`, '-R', 'dag'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let lines = 0;
    let first = '';
    child.stdout!.on('data', (d: Buffer) => {
      if (first === '') first = d.subarray(0, d.indexOf(10)).toString();
      for (let i = d.indexOf(10); i >= 0; i = d.indexOf(10, i + 1)) lines++;
    });
    const w = await watch(child, () => lines);
    console.log(`ls -R: RSS ${Math.round(w.at100k / MB)} MB at 100,000 lines, at most ${Math.round(w.max / MB)} MB up to ${w.paths}`);
    expect(first).toBe('d00755 0 0      0 /');
    expect(w.max - w.at100k).toBeLessThan(32 * MB);
  }, 600_000);

  it('larch checkout writes file after file, in flat memory', async () => {
    const dest = join(dir, 'co');
    const child = spawn(process.execPath, [CLI, 'checkout', `--repo=${repo}`, '-U', 'dag', dest], { stdio: ['ignore', 'ignore', 'pipe'] });
    try {
      const w = await watch(child, () => writtenPaths(dest));
      console.log(`checkout: RSS ${Math.round(w.at100k / MB)} MB at 100,000 paths, at most ${Math.round(w.max / MB)} MB up to ${w.paths}`);
      expect(w.max - w.at100k).toBeLessThan(32 * MB);
      // Depth-first, like ostree: the first leaf directory is complete.
      expect(existsSync(join(dest, ...Array<string>(LEVELS).fill('d0'), `f${FILES_PER_DIR - 1}`))).toBe(true);
    } finally {
      await rm(dest, { recursive: true, force: true });
    }
  }, 600_000);
});

/**
 * A repo with ref `big`: FILES files in 20 × 100 directories of 100 files, the content drawn
 * from 2,000 distinct objects (each linked, or copied, 100 times by the checkout).
 */
async function bigRepo(path: string, files: number, mode: 'bare-user' | 'archive'): Promise<void> {
  const repo = await Repo.init({ path, mode });
  const objects: Checksum[] = [];
  for (let i = 0; i < 2000; i++) {
    objects.push(await repo.writeFile({ uid: 0, gid: 0, mode: i % 7 === 0 ? 0o100755 : 0o100644, symlinkTarget: '', xattrs: [] }, { bytes: Buffer.from(`content ${i}\n`.repeat(1 + (i % 20))) }));
  }
  const meta = await repo.writeMetadata('dirmeta', serializeDirMeta({ uid: 0, gid: 0, mode: 0o40755, xattrs: [] }));
  const top = [];
  for (let p = 0; p * 10_000 < files; p++) {
    const leaves = [];
    for (let d = 0; d < 100 && p * 10_000 + d * 100 < files; d++) {
      const entries = [];
      for (let f = 0; f < 100; f++) {
        const i = p * 10_000 + d * 100 + f;
        if (i < files) entries.push({ name: `file-${i}.txt`, checksum: objects[(d * 100 + f + p) % objects.length] });
      }
      leaves.push({ name: `d${String(d).padStart(2, '0')}`, treeChecksum: await repo.writeMetadata('dirtree', serializeDirTree({ files: entries, dirs: [] })), metaChecksum: meta });
    }
    top.push({ name: `p${String(p).padStart(2, '0')}`, treeChecksum: await repo.writeMetadata('dirtree', serializeDirTree({ files: [], dirs: leaves })), metaChecksum: meta });
  }
  const tree = await repo.writeMetadata('dirtree', serializeDirTree({ files: [], dirs: top }));
  const commit = await repo.writeMetadata('commit', serializeCommit({ metadata: [], parent: null, subject: 'big', body: '', timestamp: 0n, rootTree: tree, rootMeta: meta }));
  await repo.setRef('big', commit);
}

/** Peak RSS (bytes) and wall time (s) of a command, from GNU time. */
function timed(cmd: string, args: string[]): { peak: number; wall: number; status: number | null; stderr: string } {
  const r = spawnSync('/usr/bin/time', ['-f', '%e %M', cmd, ...args], { encoding: 'utf8' });
  const last = r.stderr.trim().split('\n').pop() ?? '';
  const [wall, kb] = last.split(' ').map(Number);
  return { peak: kb * 1024, wall, status: r.status, stderr: r.stderr };
}

describe('slow: checkout of a 200,000-file tree', () => {
  let dir: string;
  let cleanup: () => Promise<void>;

  beforeAll(async () => {
    if (!existsSync('/usr/bin/time')) throw new Error('GNU time is needed: apt-get install -y time');
    ({ dir, cleanup } = await scratch('larch-big-'));
    await bigRepo(join(dir, 'bare-user'), 200_000, 'bare-user');
    await bigRepo(join(dir, 'archive'), 200_000, 'archive');
  }, 600_000);
  afterAll(async () => cleanup());

  for (const [mode, args] of [
    ['bare-user', ['-U']],
    ['archive', []],
  ] as const) {
    it(`peaks at no more than 64 MB of RSS (${mode === 'archive' ? 'archive repo: copies' : 'bare-user repo, -U: hardlinks'})`, async () => {
      const repo = join(dir, mode);
      const dest = join(dir, 'co');
      const larch = timed(process.execPath, [CLI, 'checkout', `--repo=${repo}`, ...args, 'big', dest]);
      expect(larch.status, larch.stderr).toBe(0);
      expect(existsSync(join(dest, 'p19', 'd99', 'file-199999.txt'))).toBe(true);
      await rm(dest, { recursive: true, force: true });
      let ostree = '';
      if (HAVE_OSTREE) {
        const o = timed('ostree', ['checkout', `--repo=${repo}`, ...args, 'big', dest]);
        ostree = `, ostree ${o.wall} s and ${Math.round(o.peak / MB)} MB`;
        await rm(dest, { recursive: true, force: true });
      }
      console.log(`checkout of 200,000 files from ${mode === 'archive' ? 'an' : 'a'} ${mode} repo: larch ${larch.wall} s and ${Math.round(larch.peak / MB)} MB peak RSS${ostree}`);
      expect(larch.peak).toBeLessThanOrEqual(64 * MB);
    }, 600_000);
  }
});
