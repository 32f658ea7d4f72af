/**
 * Stale staging files: a bare-user commit killed with SIGKILL leaves its staged files in `tmp/`.
 * The next commit, or a prune, must clear them, following ostree's rules (a staging directory of
 * this boot is taken over by the next transaction; prune removes every unlocked one), without
 * ever touching the staging directory of a writer that is still running: a stopped larch commit
 * (holding its flock) or a stopped ostree commit (holding its OFD lock). The repository must
 * pass `ostree fsck` afterwards.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, HAVE_OSTREE, larch, makeSpecTree, ok, ostree, RUN_INTEROP, requireOstree, scratch } from './helpers.js';

const describeInterop = RUN_INTEROP ? describe : describe.skip;

/** 20,000 small files in 100 directories. */
function bigTree(dir: string): string {
  for (let d = 0; d < 100; d++) {
    const sub = join(dir, `d${d}`);
    mkdirSync(sub, { recursive: true });
    for (let f = 0; f < 200; f++) writeFileSync(join(sub, `f${f}`), `file ${d}/${f}\n`);
  }
  return dir;
}

/** Files under each `staging-*` directory of `tmp/` (ostree stages into XX/ subdirectories). */
function staged(repo: string): Map<string, number> {
  const out = new Map<string, number>();
  const tmp = join(repo, 'tmp');
  for (const name of readdirSync(tmp)) {
    if (!name.startsWith('staging-') || !statSync(join(tmp, name)).isDirectory()) continue;
    let n = 0;
    const count = (p: string): void => {
      for (const e of readdirSync(p, { withFileTypes: true })) {
        if (e.isDirectory()) count(join(p, e.name));
        else n++;
      }
    };
    try {
      count(join(tmp, name));
    } catch {
      // removed meanwhile
    }
    out.set(name, n);
  }
  return out;
}

/** Files anywhere in `tmp/` but `cache/`, lock files aside: staged files, loose or in a staging directory. */
function tmpFiles(repo: string): number {
  let n = 0;
  const count = (p: string): void => {
    for (const e of readdirSync(p, { withFileTypes: true })) {
      if (e.isDirectory()) {
        if (p !== join(repo, 'tmp') || e.name !== 'cache') count(join(p, e.name));
      } else if (!e.name.endsWith('-lock')) n++;
    }
  };
  try {
    count(join(repo, 'tmp'));
  } catch {
    // an entry removed meanwhile: count again next time
  }
  return n;
}

/** Start a commit of `tree` into `repo`; resolves once at least `min` files are staged. */
async function startCommit(cmd: string, args: string[], repo: string, min: number, env: NodeJS.ProcessEnv = {}): Promise<{ child: ChildProcess; exit: Promise<number | null> }> {
  const before = tmpFiles(repo);
  const e = { ...process.env, ...env };
  delete e.OSTREE_REPO;
  const child = spawn(cmd, args, { env: e, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  let code: number | null | undefined;
  const exit = new Promise<number | null>((r) => child.once('exit', (c) => r((code = c))));
  while (tmpFiles(repo) - before < min) {
    if (code !== undefined) throw new Error(`the commit ended (${code}) before ${min} files were staged: ${out}`);
    await new Promise((r) => setTimeout(r, 10));
  }
  return { child, exit };
}

/** SIGKILL a larch bare-user commit of a large tree once it has staged files. */
async function killedCommit(repo: string, tree: string): Promise<Map<string, number>> {
  const { child, exit } = await startCommit(process.execPath, [CLI, 'commit', `--repo=${repo}`, '-b', 'big', `--tree=dir=${tree}`], repo, 500);
  child.kill('SIGKILL');
  await exit;
  expect(tmpFiles(repo)).toBeGreaterThanOrEqual(500);
  return staged(repo);
}

function tmpEntries(repo: string): string[] {
  return readdirSync(join(repo, 'tmp')).sort();
}

describe('tmp/ after a killed commit', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let tree: string;
  let small: string;

  beforeAll(async () => {
    ({ dir, cleanup } = await scratch('larch-tmp-'));
    tree = bigTree(join(dir, 'tree'));
    small = await makeSpecTree(join(dir, 'small'));
  }, 120_000);
  afterAll(async () => cleanup());

  function repoWithCommit(name: string): string {
    const repo = join(dir, name);
    ok(larch(['init', `--repo=${repo}`, '--mode=bare-user']));
    ok(larch(['commit', `--repo=${repo}`, '-b', 'main', `--tree=dir=${small}`]));
    return repo;
  }

  it('the next commit takes the dead staging directory over and leaves tmp/ clean', async () => {
    const repo = repoWithCommit('next-commit');
    await killedCommit(repo, tree);
    ok(larch(['commit', `--repo=${repo}`, '-b', 'main', '-s', 'after the crash', `--tree=dir=${small}`]));
    expect(tmpEntries(repo)).toEqual(['cache']);
    if (HAVE_OSTREE) ok(ostree(['fsck', `--repo=${repo}`]));
    ok(larch(['fsck', `--repo=${repo}`]));
  }, 300_000);

  it('prune removes a dead staging directory of this boot and of an earlier one', async () => {
    const repo = repoWithCommit('prune');
    await killedCommit(repo, tree);
    // The same crash before a reboot: a directory named after another boot id.
    const { child, exit } = await startCommit(process.execPath, [CLI, 'commit', `--repo=${repo}`, '-b', 'big', `--tree=dir=${tree}`], repo, 500, { OSTREE_BOOTID: 'an-earlier-boot' });
    child.kill('SIGKILL');
    await exit;
    ok(larch(['prune', `--repo=${repo}`]));
    expect(tmpEntries(repo)).toEqual(['cache']);
    if (HAVE_OSTREE) ok(ostree(['fsck', `--repo=${repo}`]));
  }, 300_000);

  it("never removes a running commit's staging directory, even of another boot", async () => {
    const repo = repoWithCommit('running');
    const { child, exit } = await startCommit(process.execPath, [CLI, 'commit', `--repo=${repo}`, '-b', 'big', `--tree=dir=${tree}`], repo, 500, { OSTREE_BOOTID: 'an-earlier-boot' });
    child.kill('SIGSTOP');
    try {
      const before = staged(repo);
      const [name] = [...before.keys()];
      expect(name).toMatch(/^staging-an-earlier-boot-/);
      // Another commit runs (shared lock) and cleans tmp/ at its end: the held directory stays.
      ok(larch(['commit', `--repo=${repo}`, '-b', 'main', '-s', 'meanwhile', `--tree=dir=${small}`]));
      expect(staged(repo).get(name)).toBe(before.get(name));
    } finally {
      child.kill('SIGCONT');
    }
    expect(await exit).toBe(0);
    expect(tmpEntries(repo)).toEqual(['cache']);
    ok(larch(['ls', `--repo=${repo}`, 'big', '/d99/f199']));
    if (HAVE_OSTREE) ok(ostree(['fsck', `--repo=${repo}`]));
  }, 300_000);
});

describeInterop('interop: tmp/ shared with a running ostree commit', () => {
  let dir: string;
  let cleanup: () => Promise<void>;

  beforeAll(async () => {
    requireOstree();
    ({ dir, cleanup } = await scratch('larch-tmp-ostree-'));
  });
  afterAll(async () => cleanup());

  it("larch prune clears a dead larch commit's files but not the staging directory of a running ostree commit", async () => {
    const repo = join(dir, 'repo');
    const tree = bigTree(join(dir, 'tree'));
    ok(larch(['init', `--repo=${repo}`, '--mode=bare-user']));
    // ostree stages into a directory of this same boot, locked with an OFD lock. (Started
    // second, it would take the dead larch directory over, as ostree's rules say.)
    const { child, exit } = await startCommit('ostree', ['commit', `--repo=${repo}`, '-b', 'ostree', `--tree=dir=${tree}`], repo, 500);
    child.kill('SIGSTOP');
    try {
      const [held] = [...staged(repo).keys()];
      // larch sees the OFD lock, makes its own directory, and is killed.
      await killedCommit(repo, tree);
      const dead = [...staged(repo).keys()].find((n) => n !== held)!;
      expect(dead).toMatch(/^staging-/);
      const files = staged(repo).get(held);
      ok(larch(['prune', `--repo=${repo}`]));
      expect(staged(repo).has(dead)).toBe(false);
      expect(staged(repo).get(held)).toBe(files);
    } finally {
      child.kill('SIGCONT');
    }
    expect(await exit).toBe(0);
    ok(ostree(['fsck', `--repo=${repo}`]));
    ok(larch(['ls', `--repo=${repo}`, 'ostree', '/d99/f199']));
  }, 300_000);
});
