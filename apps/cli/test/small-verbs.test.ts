/**
 * The small verbs' options and wording, side by side with the real ostree: each case runs the
 * same command line through larch and ostree, each on its own copy of the same repository, and
 * compares exit status, output and error wording.
 */
import { cp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
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
});

void writeFile;
