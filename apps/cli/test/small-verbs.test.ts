/**
 * The small verbs' options and wording, side by side with the real ostree: each case runs the
 * same command line through larch and ostree, each on its own copy of the same repository, and
 * compares exit status, output and error wording.
 */
import { cp, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exists, larch, makeSpecTree, ok, ostree, requireOstree, RUN_INTEROP, scratch, SPEC_COMMIT_ARGS, type RunResult } from './helpers.js';

let dir: string;
let cleanup: () => Promise<void>;
let n = 0;

beforeAll(async () => {
  if (RUN_INTEROP) requireOstree();
  ({ dir, cleanup } = await scratch('larch-small-verbs-'));
  await makeSpecTree(join(dir, 'tree'));
});
afterAll(async () => cleanup());

type Run = (args: string[], opts?: { cwd?: string }) => RunResult;
const TOOLS: Array<[string, Run]> = [
  ['larch', larch],
  ['ostree', ostree],
];

/** A fresh directory per tool, each holding a copy of what `setup` made there. */
async function pair(setup?: (base: string) => Promise<void>): Promise<{ larch: string; ostree: string }> {
  const base = join(dir, `case${n++}`);
  await mkdir(join(base, 'src'), { recursive: true });
  if (setup) await setup(join(base, 'src'));
  await cp(join(base, 'src'), join(base, 'larch'), { recursive: true, verbatimSymlinks: true });
  await cp(join(base, 'src'), join(base, 'ostree'), { recursive: true, verbatimSymlinks: true });
  return { larch: join(base, 'larch'), ostree: join(base, 'ostree') };
}

/** Run `args(dir)` through both tools, each in its own directory; returns [larch, ostree]. */
function both(dirs: { larch: string; ostree: string }, args: (d: string) => string[], opts: { cwd?: (d: string) => string } = {}): [RunResult, RunResult] {
  const [l, o] = TOOLS.map(([name, run]) => {
    const d = name === 'larch' ? dirs.larch : dirs.ostree;
    return run(args(d), opts.cwd ? { cwd: opts.cwd(d) } : {});
  });
  return [l, o];
}

/** The last line of stderr (ostree prints the usage before some errors; larch may not). */
function lastError(r: RunResult): string {
  return r.stderr.trimEnd().split('\n').pop() ?? '';
}

/** Same exit status and stdout, and the same closing error line. */
function expectSame([l, o]: [RunResult, RunResult], what = ''): void {
  expect({ what, code: l.code, stdout: l.stdout, error: lastError(l) }).toEqual({ what, code: o.code, stdout: o.stdout, error: lastError(o) });
}

/** A repository with `commits` commits on branch `test` of the spec tree. */
async function repoWith(base: string, commits: number, mode = 'archive'): Promise<void> {
  await mkdir(base, { recursive: true });
  ok(ostree(['init', `--repo=${base}/repo`, `--mode=${mode}`]));
  for (let i = 0; i < commits; i++) ok(ostree(['commit', `--repo=${base}/repo`, ...SPEC_COMMIT_ARGS, `--timestamp=@${1600000000 + i}`, `--tree=dir=${dir}/tree`]));
}

describe.runIf(RUN_INTEROP)('small verbs, side by side with ostree', () => {
  it('static-delta without a sub-verb: "No command specified"; an unknown one is named', async () => {
    const d = await pair();
    const r = both(d, () => ['static-delta']);
    expectSame(r);
    expect(lastError(r[0])).toBe('error: No command specified');
    expectSame(both(d, () => ['static-delta', 'bogus']));
  });

  it('remote gpg-import for an unknown remote: GPG: Remote "X" not found', async () => {
    const d = await pair((b) => repoWith(b, 0));
    const r = both(d, (b) => ['remote', 'gpg-import', `--repo=${b}/repo`, 'nope']);
    expectSame(r);
    expect(lastError(r[0])).toBe('error: GPG: Remote "nope" not found');
  });

  it('rev-parse -S / --single: the only commit, or which case it is not', async () => {
    const none = await pair((b) => repoWith(b, 0));
    const one = await pair((b) => repoWith(b, 1));
    const two = await pair((b) => repoWith(b, 2));
    const r0 = both(none, (b) => ['rev-parse', `--repo=${b}/repo`, '-S']);
    expectSame(r0);
    expect(lastError(r0[0])).toBe('error: No commit objects found');
    const r1 = both(one, (b) => ['rev-parse', `--repo=${b}/repo`, '--single']);
    expectSame(r1);
    expect(r1[0].stdout).toMatch(/^[0-9a-f]{64}\n$/);
    const r2 = both(two, (b) => ['rev-parse', `--repo=${b}/repo`, '-S']);
    expectSame(r2);
    expect(lastError(r2[0])).toBe('error: Multiple commit objects found');
    expectSame(both(one, (b) => ['rev-parse', `--repo=${b}/repo`, '-S', 'test']));
    expectSame(both(one, (b) => ['rev-parse', `--repo=${b}/repo`]));
  });

  it('init on an existing repository leaves it as it is, whatever mode or extra arguments', async () => {
    const d = await pair();
    expectSame(both(d, (b) => ['init', `--repo=${b}/repo`, '--mode=archive']));
    expectSame(both(d, (b) => ['init', `--repo=${b}/repo`, '--mode=archive']), 'again');
    expectSame(both(d, (b) => ['init', `--repo=${b}/repo`, '--mode=bare']), 'another mode');
    expectSame(both(d, (b) => ['init', `--repo=${b}/repo2`, 'init', '--mode=archive']), 'an extra argument');
    for (const r of ['repo', 'repo2']) {
      expect(await readFile(join(d.larch, r, 'config'), 'utf8')).toBe(await readFile(join(d.ostree, r, 'config'), 'utf8'));
    }
  });

  it('opening a repository recreates a removed tmp/ (as `refs` does in ostree)', async () => {
    const d = await pair((b) => repoWith(b, 1));
    for (const b of [d.larch, d.ostree]) await rm(join(b, 'repo/tmp'), { recursive: true });
    expectSame(both(d, (b) => ['refs', `--repo=${b}/repo`]));
    for (const b of [d.larch, d.ostree]) expect(exists(join(b, 'repo/tmp/cache'))).toBe(true);
  });

  it('remote --set=KEY=VALUE before the sub-verb belongs to add; elsewhere it is unknown', async () => {
    const d = await pair((b) => repoWith(b, 0));
    expectSame(
      both(d, (b) => ['--repo=' + b + '/repo', 'remote', '--set=tls-permissive=true', 'add', 'aremote', 'http://remote.example.com/repo', 'testos/buildmain/x86_64-runtime']),
    );
    expect(await readFile(join(d.larch, 'repo/config'), 'utf8')).toBe(await readFile(join(d.ostree, 'repo/config'), 'utf8'));
    expectSame(both(d, (b) => ['remote', `--repo=${b}/repo`, '--set=a=b', '--set=c=d', 'add', 'two', 'http://x.example.com/', '--set=e=f']));
    expect(await readFile(join(d.larch, 'repo/config'), 'utf8')).toBe(await readFile(join(d.ostree, 'repo/config'), 'utf8'));
    expectSame(both(d, (b) => ['remote', `--repo=${b}/repo`, '--set=a=b', 'list']));
  });

  it('diff REV ./: a commit against a directory on disk, as ostree names and orders the entries', async () => {
    const base = join(dir, `case${n++}`);
    await repoWith(base, 1);
    const repo = join(base, 'repo');
    const co = join(base, 'co');
    ok(ostree(['checkout', `--repo=${repo}`, '-U', 'test', co]));
    const same = (args: string[], cwd = co): [RunResult, RunResult] => [larch(args, { cwd }), ostree(args, { cwd })];
    const unchanged = same([`--repo=${repo}`, 'diff', '--owner-uid=0', '--owner-gid=0', 'test', './']);
    expectSame(unchanged, 'unchanged');
    expect(unchanged[0].stdout).toBe('');
    await writeFile(join(co, 'oh-look-a-file'), 'afile\n');
    const added = same([`--repo=${repo}`, 'diff', '--owner-uid=0', '--owner-gid=0', 'test', './']);
    expectSame(added, 'added');
    expect(added[0].stdout).toBe('A    oh-look-a-file\n');
    // Every entry differs in owner: the order is ostree's (files and directories of the commit, the disk in GLib's order).
    const uid = same([`--repo=${repo}`, 'diff', 'test', `--owner-uid=${(process.getuid?.() ?? 0) + 1}`, './']);
    expectSame(uid, '--owner-uid');
    expect(uid[0].stdout).toMatch(/^M {4}\/hello\.txt\n/m);
    expectSame(same([`--repo=${repo}`, 'diff', 'test', `--owner-gid=${(process.getgid?.() ?? 0) + 1}`, './']), '--owner-gid');
    expectSame(same([`--repo=${repo}`, 'diff', './', 'test']), 'reversed');
    // An extended attribute on disk makes a difference unless --no-xattrs.
    spawnSync('setfattr', ['-n', 'user.larchtest', '-v', '1', join(co, 'hello.txt')]);
    const xattr = same([`--repo=${repo}`, 'diff', '--owner-uid=0', '--owner-gid=0', 'test', './']);
    expectSame(xattr, 'an xattr');
    expect(xattr[0].stdout).toContain('M    /hello.txt\n');
    const noXattrs = same([`--repo=${repo}`, 'diff', '--no-xattrs', '--owner-uid=0', '--owner-gid=0', 'test', './']);
    expectSame(noXattrs, '--no-xattrs');
    expect(noXattrs[0].stdout).toBe('A    oh-look-a-file\n');
    expectSame(same([`--repo=${repo}`, 'diff', 'test', co], base), 'an absolute path');
    // A file that became a directory.
    await rm(join(co, 'hello.txt'));
    await mkdir(join(co, 'hello.txt'));
    await writeFile(join(co, 'hello.txt', 'other'), '');
    const retyped = same([`--repo=${repo}`, 'diff', '--owner-uid=0', '--owner-gid=0', 'test', './']);
    expectSame(retyped, 'file changing type');
    expect(retyped[0].stdout).toMatch(/^M {4}\/hello\.txt$/m);
    expectSame(same([`--repo=${repo}`, 'diff', 'test', './missing']), 'a missing directory');
    expectSame(same([`--repo=${repo}`, 'diff', '--owner-uid=x', 'test', './']), 'a bad uid');
  });

  it('diff --stats, --fs-diff and a single REV (its parent against it)', async () => {
    const base = join(dir, `case${n++}`);
    await repoWith(base, 1);
    const repo = join(base, 'repo');
    await writeFile(join(base, 'extra'), 'x\n');
    await mkdir(join(base, 't2'));
    await cp(join(dir, 'tree'), join(base, 't2'), { recursive: true, verbatimSymlinks: true });
    await writeFile(join(base, 't2', 'new'), 'new\n');
    ok(ostree(['commit', `--repo=${repo}`, '-b', 'test', '--timestamp=@1700000000', `--tree=dir=${base}/t2`]));
    const same = (args: string[]): [RunResult, RunResult] => [larch(args), ostree(args)];
    const stats = same([`--repo=${repo}`, 'diff', '--stats', 'test^', 'test']);
    expectSame(stats, '--stats');
    expect(stats[0].stdout).toMatch(/^\[A\] Object Count: \d+\n\[B\] Object Count: \d+\nCommon Object Count: \d+\nCommon Object Size: .+\n$/);
    expectSame(same([`--repo=${repo}`, 'diff', '--stats', '--fs-diff', 'test']), '--stats --fs-diff');
    const one = same([`--repo=${repo}`, 'diff', 'test']);
    expectSame(one, 'one revision');
    expect(one[0].stdout).toBe('A    /new\n');
    expectSame(same([`--repo=${repo}`, 'diff', 'test^']), 'no parent');
  });

  it('show -B / --no-byteswap, --print-sizes, --print-related, --print-variant-type', async () => {
    const base = join(dir, `case${n++}`);
    await mkdir(base);
    const repo = join(base, 'repo');
    ok(ostree(['init', `--repo=${repo}`, '--mode=archive']));
    const c = ok(
      ostree(['commit', `--repo=${repo}`, ...SPEC_COMMIT_ARGS, '--add-metadata=SOMENUM=uint64 42', '--generate-sizes', `--tree=dir=${dir}/tree`]),
    ).trim();
    const same = (args: string[]): [RunResult, RunResult] => [larch(args), ostree(args)];
    const swapped = same([`--repo=${repo}`, 'show', '--print-metadata-key=SOMENUM', 'test']);
    expectSame(swapped);
    expect(swapped[0].stdout).toBe('uint64 3026418949592973312\n');
    const unswapped = same([`--repo=${repo}`, 'show', '-B', '--print-metadata-key=SOMENUM', 'test']);
    expectSame(unswapped, '-B');
    expect(unswapped[0].stdout).toBe('uint64 42\n');
    expectSame(same([`--repo=${repo}`, 'show', '--no-byteswap', 'test']), '--no-byteswap on the commit');
    expectSame(same([`--repo=${repo}`, 'show', '-B', '--raw', 'test']), '-B --raw');
    const sizes = same([`--repo=${repo}`, 'show', '--print-sizes', 'test']);
    expectSame(sizes, '--print-sizes');
    expect(sizes[0].stdout).toMatch(/^Compressed size \(needed\/total\): 0 bytes\/\d+ bytes\n/);
    // A repository holding only the commit still needs the rest.
    const thin = join(base, 'thin');
    ok(ostree(['init', `--repo=${thin}`, '--mode=archive']));
    ok(ostree(['pull-local', `--repo=${thin}`, '--commit-metadata-only', repo, 'test']));
    const needed = same([`--repo=${thin}`, 'show', '--print-sizes', c]);
    expectSame(needed, '--print-sizes, objects missing');
    expect(needed[0].stdout).toMatch(/Number of objects \(needed\/total\): [1-9]\d*\//);
    const noSizes = ok(ostree(['commit', `--repo=${repo}`, '-b', 'plain', `--tree=dir=${dir}/tree`])).trim();
    expectSame(same([`--repo=${repo}`, 'show', '--print-sizes', noSizes]), 'no ostree.sizes');
    expectSame(same([`--repo=${repo}`, 'show', '--print-related', 'test']), '--print-related');
    const objects = join(repo, 'objects', c.slice(0, 2));
    const commitFile = join(objects, `${c.slice(2)}.commit`);
    const asCommit = same([`--repo=${repo}`, 'show', '--print-variant-type=(a{sv}aya(say)sstayay)', commitFile]);
    expectSame(asCommit, '--print-variant-type');
    expect(asCommit[0].stdout).toContain("'subj'");
    expectSame(same([`--repo=${repo}`, 'show', '--print-variant-type=a{sv}', join(base, 'nofile')]), 'a missing file');
    expect((await readdir(objects)).length).toBeGreaterThan(0);
  });

  it('static-delta reindex --to=CHECKSUM: only that revision\'s index', async () => {
    const d = await pair(async (b) => {
      await repoWith(b, 0);
      ok(ostree(['commit', `--repo=${b}/repo`, '-b', 'a', '--timestamp=@1', `--tree=dir=${dir}/tree`]));
      await mkdir(join(b, 'x'));
      await writeFile(join(b, 'x', 'x'), 'x\n');
      ok(ostree(['commit', `--repo=${b}/repo`, '-b', 'b', '--timestamp=@2', `--tree=dir=${dir}/tree`, `--tree=dir=${b}/x`]));
      ok(ostree(['static-delta', 'generate', `--repo=${b}/repo`, '--empty', '--to=a']));
      ok(ostree(['static-delta', 'generate', `--repo=${b}/repo`, '--from=a', '--to=b']));
      ok(ostree(['static-delta', 'generate', `--repo=${b}/repo`, '--empty', '--to=b']));
      await rm(join(b, 'repo/delta-indexes'), { recursive: true, force: true });
    });
    const b = ok(ostree(['rev-parse', `--repo=${d.ostree}/repo`, 'b'])).trim();
    expectSame(both(d, (r) => ['static-delta', 'reindex', `--repo=${r}/repo`, `--to=${b}`]));
    const indexes = both(d, (r) => ['static-delta', 'indexes', `--repo=${r}/repo`]);
    expectSame(indexes, 'indexes');
    expect(indexes[0].stdout).toBe(`${b}\n`);
    for (const r of [d.larch, d.ostree]) expect((await readFile(join(r, 'repo/config'), 'utf8')).includes('indexed-deltas=true')).toBe(true);
    expectSame(both(d, (r) => ['static-delta', 'reindex', `--repo=${r}/repo`, '--to=b']), 'a ref name');
  });
});
