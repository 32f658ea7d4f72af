/**
 * `larch fsck` and `larch prune` against the real `ostree`, side by side on copies of the same
 * repository: fsck's wording for each kind of damage (corrupted commit, dirtree with a `../` name,
 * missing and corrupted content, with and without --delete), the commits it marks partial and
 * what a later fsck says of them, its progress lines, --add-tombstones and --verify-back-refs; and
 * prune's --only-branch, --retain-branch-depth, --commit-only, --keep-younger-than with a relative
 * date, --static-deltas-only and their errors. The cases follow OSTree's tests/test-corruption.sh
 * and tests/test-prune.sh.
 */
import { execFileSync } from 'node:child_process';
import { appendFileSync, cpSync, existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { larch, ok, ostree, requireOstree, RUN_INTEROP, scratch, type RunResult } from './helpers.js';

const SUITE_TARBALL = '/usr/libexec/installed-tests/libostree/ostree-path-traverse.tar.gz';

let dir: string;
let cleanup: () => Promise<void>;
/** A bare repository: test2 with two commits (firstfile, baz/cow, baz/alien). */
let bareBase: string;
/** An archive repository: stable and dev, five commits each of 1985, then three of today. */
let dateBase: string;
/** An archive repository: test with five commits, for tombstones and deltas. */
let chainBase: string;
let n = 0;

beforeAll(async () => {
  if (!RUN_INTEROP) return;
  requireOstree();
  ({ dir, cleanup } = await scratch('larch-fsck-prune-'));
  const tree = join(dir, 'tree');
  await mkdir(join(tree, 'baz'), { recursive: true });
  await writeFile(join(tree, 'firstfile'), 'first\n');
  await writeFile(join(tree, 'baz/cow'), 'moo\n');
  await writeFile(join(tree, 'baz/alien'), 'x\n');

  bareBase = join(dir, 'bare-base');
  ok(ostree(['init', `--repo=${bareBase}`, '--mode=bare']));
  ok(ostree(['commit', `--repo=${bareBase}`, '-b', 'test2', '-s', 'one', tree]));
  appendFileSync(join(tree, 'firstfile'), 'second\n');
  ok(ostree(['commit', `--repo=${bareBase}`, '-b', 'test2', '-s', 'two', tree]));

  dateBase = join(dir, 'date-base');
  ok(ostree(['init', `--repo=${dateBase}`, '--mode=archive']));
  for (let day = 1; day <= 5; day++) {
    for (const b of ['stable', 'dev']) ok(ostree(['commit', `--repo=${dateBase}`, `--branch=${b}`, '-s', `old ${b} ${day}`, tree, `--timestamp=October ${day} 1985`]));
  }
  for (let x = 1; x <= 3; x++) {
    await writeFile(join(tree, 'new'), `new ${x}\n`);
    for (const b of ['stable', 'dev']) ok(ostree(['commit', `--repo=${dateBase}`, `--branch=${b}`, '-s', `new ${b} ${x}`, tree]));
  }

  chainBase = join(dir, 'chain-base');
  ok(ostree(['init', `--repo=${chainBase}`, '--mode=archive']));
  for (let x = 1; x <= 5; x++) {
    appendFileSync(join(tree, 'firstfile'), `${x}\n`);
    ok(ostree(['commit', `--repo=${chainBase}`, '-b', 'test', '-s', `c${x}`, tree]));
  }
}, 120_000);
afterAll(async () => cleanup?.());

/** Two copies of `base`, one for each tool. */
function pair(base: string): { real: string; ours: string } {
  n++;
  const real = join(dir, `r${n}-ostree`);
  const ours = join(dir, `r${n}-larch`);
  cpSync(base, real, { recursive: true, verbatimSymlinks: true });
  cpSync(base, ours, { recursive: true, verbatimSymlinks: true });
  return { real, ours };
}

/** Apply `f` to both copies. */
function each(repos: { real: string; ours: string }, f: (repo: string) => void): void {
  f(repos.real);
  f(repos.ours);
}

function both(repos: { real: string; ours: string }, args: string[]): { real: RunResult; ours: RunResult } {
  const real = ostree([`--repo=${repos.real}`, ...args]);
  const ours = larch([`--repo=${repos.ours}`, ...args]);
  expect({ args, code: ours.code, stderr: ours.stderr }).toEqual({ args, code: real.code, stderr: real.stderr });
  return { real, ours };
}

/**
 * stdout of fsck, made comparable: ostree prints progress lines at most once a second, so on a
 * loaded machine either tool may print more of them; the first and the last are always printed.
 */
function fsckOut(stdout: string): { text: string; first?: string; last?: string } {
  const lines = stdout.split('\n');
  const progress = lines.filter((l) => l.startsWith('fsck objects'));
  return { text: lines.filter((l) => !l.startsWith('fsck objects')).join('\n'), first: progress[0], last: progress[progress.length - 1] };
}

function bothFsck(repos: { real: string; ours: string }, args: string[] = []): { real: RunResult; ours: RunResult } {
  const r = both(repos, ['fsck', ...args]);
  expect(fsckOut(r.ours.stdout)).toEqual(fsckOut(r.real.stdout));
  return r;
}

function rev(repo: string, ref: string): string {
  return ok(ostree([`--repo=${repo}`, 'rev-parse', ref])).trim();
}

function objectFile(repo: string, checksum: string, ext: string): string {
  return join(repo, 'objects', checksum.slice(0, 2), `${checksum.slice(2)}.${ext}`);
}

/** The content checksum of PATH in REF (ostree ls -C). */
function fileChecksum(repo: string, ref: string, path: string): string {
  const line = ok(ostree([`--repo=${repo}`, 'ls', '-C', ref, path])).trim();
  return line.split(/\s+/)[4];
}

function commitsIn(repo: string): string[] {
  const out: string[] = [];
  for (const d of readdirSync(join(repo, 'objects'))) {
    for (const f of readdirSync(join(repo, 'objects', d))) if (f.endsWith('.commit')) out.push(d + f.slice(0, -'.commit'.length));
  }
  return out.sort();
}

function countExt(repo: string, ext: string): number {
  let k = 0;
  for (const d of readdirSync(join(repo, 'objects'))) for (const f of readdirSync(join(repo, 'objects', d))) if (f.endsWith(ext)) k++;
  return k;
}

describe.skipIf(!RUN_INTEROP)('fsck against ostree', () => {
  it('a clean repository: the same phase, progress and closing lines, also with -q', () => {
    const repos = pair(bareBase);
    const r = bothFsck(repos);
    expect(r.ours.stdout).toMatch(/^fsck objects \(1\/\d+\) \d+%$/m);
    bothFsck(repos, ['-q']);
  });

  it('a dirtree with a ../ name: "fsck T.dirtree: T.dirtree: Invalid / in filename ../afile"', () => {
    const repos = pair(bareBase);
    for (const repo of [repos.real, repos.ours]) {
      execFileSync('tar', ['xf', SUITE_TARBALL, '-C', repo]);
    }
    const r = both({ real: join(repos.real, 'ostree-path-traverse/repo'), ours: join(repos.ours, 'ostree-path-traverse/repo') }, ['fsck', '-q']);
    expect(r.ours.stderr).toMatch(/^error: In commits [0-9a-f]{64}: fsck [0-9a-f]{64}\.dirtree: [0-9a-f]{64}\.dirtree: Invalid \/ in filename \.\.\/afile\n$/);
  });

  it('checkout of a dirtree with a ../ name fails with the bare name, as ostree, and writes nothing', () => {
    const repos = pair(bareBase);
    for (const repo of [repos.real, repos.ours]) execFileSync('tar', ['xf', SUITE_TARBALL, '-C', repo]);
    const at = (repo: string): string => join(repo, 'ostree-path-traverse/repo');
    const real = ostree(['checkout', `--repo=${at(repos.real)}`, 'pathtraverse-test', join(repos.real, 'co')]);
    const ours = larch(['checkout', `--repo=${at(repos.ours)}`, 'pathtraverse-test', join(repos.ours, 'co')]);
    expect(real.code).toBe(1);
    expect(ours.code).toBe(1);
    expect(real.stderr).toContain('Invalid / in filename ../afile');
    expect(ours.stderr).toMatch(/^error: Invalid \/ in filename \.\.\/afile( \(dirtree [0-9a-f]{64}\))?\n$/);
    expect(existsSync(join(repos.ours, 'afile'))).toBe(false);
  });

  it('an emptied commit: "Corrupted commit object; checksum expected"', () => {
    const repos = pair(bareBase);
    const c = rev(repos.real, 'test2');
    each(repos, (repo) => writeFileSync(objectFile(repo, c, 'commit'), ''));
    const r = bothFsck(repos, ['-q']);
    expect(r.ours.stderr).toContain('Corrupted commit object; checksum expected');
  });

  it('a missing file object: listed with its commits, the commit marked partial, later checks fail', () => {
    const repos = pair(bareBase);
    const c = rev(repos.real, 'test2');
    const f = fileChecksum(repos.real, 'test2', '/firstfile');
    each(repos, (repo) => rmSync(objectFile(repo, f, 'file')));
    const r = bothFsck(repos, ['-q']);
    expect(r.ours.stderr).toContain(`Object missing in commits ${c}: ${f}.file`);
    expect(r.ours.stderr).toContain(`Marking commit as partial: ${c}`);
    expect(readFileSync(join(repos.ours, 'state', `${c}.commitpartial`), 'utf8')).toBe(readFileSync(join(repos.real, 'state', `${c}.commitpartial`), 'utf8'));
    // The next check counts the commit as partial and fails on fsck's own mark.
    const again = bothFsck(repos);
    expect(again.ours.stderr).toBe('error: 1 partial commits from fsck-detected corruption\n');
  });

  it('a corrupted file object with --delete and with -a --delete', () => {
    for (const args of [['-q', '--delete'], ['-a', '--delete']]) {
      const repos = pair(bareBase);
      const c = rev(repos.real, 'test2');
      const f = fileChecksum(repos.real, 'test2', '/firstfile');
      each(repos, (repo) => appendFileSync(objectFile(repo, f, 'file'), 'corrupted\n'));
      const r = bothFsck(repos, args);
      expect(r.ours.stderr).toMatch(new RegExp(`In commits ${c}: fsck content object ${f}: Corrupted file object; checksum expected='${f}'`));
      expect(r.ours.stderr).toContain(`Marking commit as partial: ${c}`);
      expect(existsSync(objectFile(repos.ours, f, 'file'))).toBe(false);
    }
  });

  it('--add-tombstones: the commit whose parent is gone becomes a tombstone, tombstones turned on', () => {
    const repos = pair(chainBase);
    ok(ostree([`--repo=${repos.real}`, 'prune', '--refs-only', '--depth=1']));
    ok(larch([`--repo=${repos.ours}`, 'prune', '--refs-only', '--depth=1']));
    expect(commitsIn(repos.ours)).toEqual(commitsIn(repos.real));
    const r = bothFsck(repos, ['--add-tombstones']);
    expect(r.ours.stdout).toMatch(/^Adding tombstone for commit [0-9a-f]{64}$/m);
    expect(countExt(repos.ours, '.tombstone-commit')).toBe(1);
    expect(countExt(repos.real, '.tombstone-commit')).toBe(1);
    expect(commitsIn(repos.ours)).toEqual(commitsIn(repos.real));
    expect(readFileSync(join(repos.ours, 'config'), 'utf8')).toContain('tombstone-commits=true');
  });

  it('--verify-back-refs: a ref in the bindings that is missing, or points elsewhere', () => {
    n++;
    const base = join(dir, `r${n}-base`);
    ok(ostree(['init', `--repo=${base}`, '--mode=archive']));
    ok(ostree([`--repo=${base}`, 'commit', '-b', 'bound', '--bind-ref=other', '-s', 'bound', join(dir, 'tree')]));
    const repos = pair(base);
    const missing = bothFsck(repos, ['--verify-back-refs']);
    expect(missing.ours.stderr).toMatch(/^error: Ref \u2018other\u2019 in bindings for commit [0-9a-f]{64} does not exist\n$/);
    each(repos, (repo) => ok(ostree([`--repo=${repo}`, 'refs', '--create=other', 'bound'])));
    bothFsck(repos, ['--verify-back-refs']);
    each(repos, (repo) => {
      ok(ostree([`--repo=${repo}`, 'refs', '--delete', 'other']));
      ok(ostree([`--repo=${repo}`, 'commit', '-b', 'other', '-s', 'elsewhere', '--tree=ref=bound']));
    });
    const elsewhere = bothFsck(repos, ['--verify-back-refs']);
    expect(elsewhere.ours.stderr).toContain('does not resolve to that commit');
  });
});

describe.skipIf(!RUN_INTEROP)('prune options against ostree', () => {
  function bothPrune(repos: { real: string; ours: string }, args: string[]): { real: RunResult; ours: RunResult } {
    const r = both(repos, ['prune', ...args]);
    expect(r.ours.stdout).toBe(r.real.stdout);
    expect(commitsIn(repos.ours)).toEqual(commitsIn(repos.real));
    return r;
  }

  it('--keep-younger-than="3 days ago" with --retain-branch-depth', () => {
    bothPrune(pair(dateBase), ['--keep-younger-than=3 days ago', '--retain-branch-depth=stable=-1']);
    bothPrune(pair(dateBase), ['--keep-younger-than=1 week ago', '--retain-branch-depth=stable=5']);
    bothPrune(pair(dateBase), ['--keep-younger-than=1 week ago']);
  });

  it('--only-branch with --depth, several branches, and with --retain-branch-depth', () => {
    bothPrune(pair(dateBase), ['--only-branch=dev', '--depth=0']);
    bothPrune(pair(dateBase), ['--only-branch=dev', '--depth=1']);
    bothPrune(pair(dateBase), ['--only-branch=dev', '--only-branch=stable', '--depth=0', '--retain-branch-depth=stable=2']);
    bothPrune(pair(dateBase), ['--only-branch=stable', '--keep-younger-than=1 week ago']);
  });

  it('--commit-only keeps every non-commit object', () => {
    const repos = pair(dateBase);
    const before = countExt(repos.ours, '.filez') + countExt(repos.ours, '.dirtree');
    bothPrune(repos, ['--commit-only', '--only-branch=dev', '--depth=0']);
    expect(countExt(repos.ours, '.filez') + countExt(repos.ours, '.dirtree')).toBe(before);
    bothPrune(pair(dateBase), ['--commit-only', '--refs-only', '--depth=1']);
  });

  it('--static-deltas-only --delete-commit removes only the deltas to that commit', () => {
    const repos = pair(chainBase);
    each(repos, (repo) => {
      ok(ostree([`--repo=${repo}`, 'static-delta', 'generate', 'test^']));
      ok(ostree([`--repo=${repo}`, 'static-delta', 'generate', 'test']));
    });
    bothPrune(repos, ['--static-deltas-only', `--delete-commit=${rev(repos.real, 'test')}`]);
    expect(ok(larch([`--repo=${repos.ours}`, 'static-delta', 'list']))).toBe(ok(ostree([`--repo=${repos.real}`, 'static-delta', 'list'])));
  });

  it('bad input: the same error lines', () => {
    const repos = pair(dateBase);
    bothPrune(repos, ['--keep-younger-than=1 week ago', '--retain-branch-depth=stable=BACON']);
    bothPrune(repos, ['--static-deltas-only', '--keep-younger-than=October 20 2015']);
    bothPrune(repos, ['--only-branch=BACON']);
    bothPrune(repos, ['--retain-branch-depth=stable']);
  });
});
