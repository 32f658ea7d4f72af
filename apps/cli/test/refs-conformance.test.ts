/**
 * `larch refs` against the real `ostree refs`, side by side on copies of one repository: hidden
 * files that are not ref names, a ref name left as an empty directory by deleted refs, `REMOTE:.`,
 * and the alias rules (no alias to a remote ref, no deleting a ref an alias points at, repointing
 * an alias without --force). The cases follow OSTree's own tests/test-refs.sh.
 */
import { cp, mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOneErrorLine, larch, makeSpecTree, ok, ostree, requireOstree, RUN_INTEROP, scratch, type RunResult } from './helpers.js';

let dir: string;
let cleanup: () => Promise<void>;
let base: string;

beforeAll(async () => {
  if (!RUN_INTEROP) return;
  requireOstree();
  ({ dir, cleanup } = await scratch('larch-refs-conf-'));
  const tree = await makeSpecTree(join(dir, 'tree'));
  base = join(dir, 'base');
  ok(ostree(['init', `--repo=${base}`, '--mode=archive']));
  for (const b of ['ctest', 'foo/ctest', 'origin:remote1']) ok(ostree(['commit', `--repo=${base}`, `--branch=${b}`, '-s', 's', tree]));
});
afterAll(async () => cleanup?.());

/** Two copies of the base repository, one for each tool. */
async function pair(name: string): Promise<{ real: string; ours: string }> {
  const real = join(dir, `${name}-ostree`);
  const ours = join(dir, `${name}-larch`);
  await cp(base, real, { recursive: true, verbatimSymlinks: true });
  await cp(base, ours, { recursive: true, verbatimSymlinks: true });
  return { real, ours };
}

/** Run the same `refs` arguments with both tools; exit status and stdout (ostree's in hash order, so sorted) must agree. */
function both(repos: { real: string; ours: string }, args: string[]): { real: RunResult; ours: RunResult } {
  const real = ostree(['refs', `--repo=${repos.real}`, ...args]);
  const ours = larch(['refs', `--repo=${repos.ours}`, ...args]);
  expect({ args, code: ours.code }).toEqual({ args, code: real.code });
  const sorted = (s: string): string[] => s.split('\n').filter(Boolean).sort();
  expect(sorted(ours.stdout)).toEqual(sorted(real.stdout));
  return { real, ours };
}

describe.runIf(RUN_INTEROP)('larch refs, compared with ostree refs', () => {
  it('skips files under refs/ whose names cannot be refs (.spooky_and_hidden), at any depth and within remotes', async () => {
    const repos = await pair('hidden');
    for (const repo of [repos.real, repos.ours]) {
      await writeFile(join(repo, 'refs/heads/.spooky_and_hidden'), '👻\n');
      await mkdir(join(repo, 'refs/heads/exampleos/x86_64'), { recursive: true });
      await writeFile(join(repo, 'refs/heads/exampleos/x86_64/.further_spooky_and_hidden'), '👻\n');
      await writeFile(join(repo, 'refs/remotes/origin/.rsync_info'), 'x\n');
    }
    const { ours } = both(repos, []);
    expect(ours.stdout).toBe('ctest\nfoo/ctest\norigin:remote1\n');
    both(repos, ['exampleos']);
    both(repos, ['origin:']);
    both(repos, ['--list', 'foo']);
  });

  it('creates a ref where deleted refs left an empty directory, and refuses one that would hide refs', async () => {
    const repos = await pair('leftover');
    both(repos, ['--delete', 'foo/ctest']);
    both(repos, ['ctest', '--create=foo']);
    both(repos, []);
    both(repos, ['ctest', '--create=bar/baz']);
    const { ours } = both(repos, ['ctest', '--create=bar']);
    expect(expectOneErrorLine(ours)).toMatch(/bar/);
    both(repos, []);
  });

  it('refuses to list every ref when refs/remotes or refs/heads is missing, with ostree words', async () => {
    for (const missing of ['refs/remotes', 'refs/heads']) {
      const repos = await pair(`missing-${missing.replace('/', '-')}`);
      for (const repo of [repos.real, repos.ours]) await rename(join(repo, missing), join(repo, `${missing}.orig`));
      for (const args of [[], ['--list'], ['-A'], ['--delete', 'nosuch'], ['ctest', '--create=new']]) {
        const r = both(repos, args);
        expect(expectOneErrorLine(r.ours)).toBe(expectOneErrorLine(r.real));
      }
    }
    const repos = await pair('missing-with-prefix');
    for (const repo of [repos.real, repos.ours]) await rename(join(repo, 'refs/remotes'), join(repo, 'refs/remotes.orig'));
    expect(both(repos, ['ctest']).ours.stdout).toBe('ctest\n');
  });

  it('lists a whole remote with REMOTE:. as with REMOTE:', async () => {
    const repos = await pair('remote-dot');
    const { ours } = both(repos, ['origin:.']);
    expect(ours.stdout).toBe('origin:remote1\n');
  });

  it('refuses an alias to a remote ref and deleting an aliased ref, and repoints an alias without --force', async () => {
    const repos = await pair('alias');
    both(repos, ['ctest', '--create=exampleos/x86_64/26/server']);
    both(repos, ['ctest', '--create=exampleos/x86_64/27/server']);
    both(repos, ['-A', 'exampleos/x86_64/26/server', '--create=exampleos/x86_64/stable/server']);
    const remote = both(repos, ['-A', 'exampleos/x86_64/26/server', '--create=exampleos:exampleos/x86_64/stable/server']);
    expect(expectOneErrorLine(remote.ours)).toBe(expectOneErrorLine(remote.real));
    const del = both(repos, ['--delete', 'exampleos/x86_64/26/server']);
    expect(expectOneErrorLine(del.ours)).toBe(expectOneErrorLine(del.real));
    both(repos, ['-A', 'exampleos/x86_64/27/server', '--create=exampleos/x86_64/stable/server']);
    const { ours } = both(repos, ['-A']);
    expect(ours.stdout).toBe('exampleos/x86_64/stable/server -> exampleos/x86_64/27/server\n');
    expect(ok(larch(['rev-parse', `--repo=${repos.ours}`, 'exampleos/x86_64/stable/server']))).toBe(
      ok(ostree(['rev-parse', `--repo=${repos.real}`, 'exampleos/x86_64/stable/server'])),
    );
  });
});
