import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, linkSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Repo } from './repo.js';
import { commitTree } from './repo-commit.js';
import { checkout } from './repo-checkout.js';
import { LinkWorker } from './link-worker.js';

const HAVE_OSTREE = spawnSync('ostree', ['--version']).status === 0;
const interop = HAVE_OSTREE || process.env.CI === 'true' ? it : it.skip;

// Large enough for the hardlink checkout to hand links to the worker thread.
const DIRS = 41;
const PER_DIR = 205;

let dir: string;
let tree: string;
let repo: Repo;
let commit: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'larch-linkw-'));
  chmodSync(dir, 0o755);
  tree = join(dir, 'tree');
  for (let d = 0; d < DIRS; d++) {
    mkdirSync(join(tree, `d${d}`), { recursive: true });
    for (let f = 0; f < PER_DIR; f++) writeFileSync(join(tree, `d${d}`, `f${f}`), `${d}/${f}\n`);
  }
  writeFileSync(join(tree, 'empty'), '');
  symlinkSync('d0/f0', join(tree, 'link'));
  linkSync(join(tree, 'd1', 'f1'), join(tree, 'same-inode'));
  writeFileSync(join(tree, 'd2', 'dup'), '2/0\n'); // same content as d2/f0
  repo = await Repo.init({ path: join(dir, 'repo'), mode: 'bare-user' });
  commit = (await commitTree(repo, { tree, branch: 'b', bindings: false })).commit;
}, 120000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const objectOf = (csumPath: string) => lstatSync(csumPath).ino;

describe('hardlink checkout of a large tree', () => {
  it('links every linkable file to its object, copies the rest, and a union over it relinks', async () => {
    const dest = join(dir, 'co');
    const stats = await checkout(repo, { commit, dest, userMode: true });
    const total = DIRS * PER_DIR + 4;
    expect(stats.files).toBe(total);
    expect(stats.hardlinked).toBe(total - 2); // the empty file and the symlink are copies
    expect(stats.copied).toBe(2);
    expect(readlinkSync(join(dest, 'link'))).toBe('d0/f0');
    expect(lstatSync(join(dest, 'empty')).nlink).toBe(1);
    for (const p of ['d0/f0', 'd40/f204', 'd17/f99', 'same-inode', 'd2/dup']) {
      expect(readFileSync(join(dest, p), 'utf8')).toBe(readFileSync(join(tree, p), 'utf8'));
      expect(lstatSync(join(dest, p)).nlink).toBeGreaterThan(1);
    }
    expect(objectOf(join(dest, 'd2', 'dup'))).toBe(objectOf(join(dest, 'd2', 'f0')));
    expect(readdirSync(join(dest, 'd40')).length).toBe(PER_DIR);

    // Every link now fails with EEXIST (on both threads) and goes through the union path.
    rmSync(join(dest, 'd5', 'f7'));
    rmSync(join(dest, 'd6', 'f8')); // a hardlink to the object: replace it, do not write through it
    writeFileSync(join(dest, 'd6', 'f8'), 'local change\n');
    const again = await checkout(repo, { commit, dest, userMode: true, union: true });
    expect(again.files).toBe(total);
    expect(readFileSync(join(dest, 'd5', 'f7'), 'utf8')).toBe('5/7\n');
    expect(readFileSync(join(dest, 'd6', 'f8'), 'utf8')).toBe('6/8\n');
    // Without a union mode an existing name is an error naming it.
    rmSync(join(dest, 'd9'), { recursive: true });
    mkdirSync(join(dest, 'd9'));
    writeFileSync(join(dest, 'd9', 'f3'), 'mine\n');
    await expect(checkout(repo, { commit, dest, userMode: true, unionIdentical: true })).rejects.toMatchObject({ code: 'EXISTS' });
    rmSync(dest, { recursive: true, force: true });
  }, 60000);

  interop('gives the same tree as ostree checkout -U', async () => {
    const ours = join(dir, 'ours');
    const theirs = join(dir, 'theirs');
    await checkout(repo, { commit, dest: ours, userMode: true });
    execFileSync('ostree', ['checkout', `--repo=${repo.path}`, '-U', commit, theirs]);
    const list = (root: string) =>
      execFileSync('find', ['.', '-printf', '%p %y %m %s %n %l\\n'], { cwd: root, encoding: 'utf8', maxBuffer: 64 << 20 })
        .split('\n')
        .sort()
        .join('\n');
    // Link counts differ by the extra links of the other checkout, so compare without them first
    // and check that each checked-out file is linked to the same object in both.
    expect(list(ours).replace(/ \d+ (\S*)$/gm, ' $1')).toBe(list(theirs).replace(/ \d+ (\S*)$/gm, ' $1'));
    expect(lstatSync(join(ours, 'd30', 'f30')).ino).toBe(lstatSync(join(theirs, 'd30', 'f30')).ino);
    rmSync(ours, { recursive: true, force: true });
    rmSync(theirs, { recursive: true, force: true });
  }, 60000);
});

describe('LinkWorker', () => {
  it('makes the links it is given and reports the ones that failed, in order', async () => {
    const w = new LinkWorker();
    try {
      const src = join(dir, 'lw-src');
      writeFileSync(src, 'x');
      const a = join(dir, 'lw-a');
      const b = join(dir, 'lw-b');
      const first = w.link([src, a, join(dir, 'missing'), join(dir, 'lw-c'), src, b]);
      const second = w.link([src, a]);
      expect(await first).toEqual([1]);
      expect(await second).toEqual([0]); // EEXIST: link never replaces
      expect(lstatSync(a).ino).toBe(lstatSync(src).ino);
      expect(lstatSync(b).ino).toBe(lstatSync(src).ino);
    } finally {
      await w.close();
    }
  });
});
