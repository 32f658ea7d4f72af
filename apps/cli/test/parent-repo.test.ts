/**
 * A repository with a parent (`core.parent`), side by side with the real ostree: reads fall
 * through to the parent, writes go to the child. `pull-local` into the child stores only the
 * objects no repository of the chain has; `prune` in the child walks commits through the parent
 * but deletes only the child's own objects, even once the parent no longer references them;
 * `commit` into the child stores its objects in the child even when the parent has them; `cat`
 * reads a file the child holds only through its parent, and `fsck` verifies it there. After each step both tools must leave the
 * same object files in both repositories and print the same.
 */
import { appendFileSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { larch, ostree, RUN_INTEROP, requireOstree, scratch, type RunResult } from './helpers.js';

const describeInterop = RUN_INTEROP ? describe : describe.skip;

type Tool = 'larch' | 'ostree';
const TOOLS: Tool[] = ['ostree', 'larch'];

function objects(repo: string): string[] {
  const out: string[] = [];
  const root = join(repo, 'objects');
  for (const d of readdirSync(root)) for (const n of readdirSync(join(root, d))) out.push(`${d}/${n}`);
  return out.sort();
}

describeInterop('a repository with core.parent: reads fall through to the parent, writes go to the child', () => {
  let cleanup: () => Promise<void> = async () => undefined;
  const base: Record<Tool, string> = { larch: '', ostree: '' };

  function run(t: Tool, args: string[]): RunResult {
    return t === 'larch' ? larch(args, { cwd: base[t] }) : ostree(args, { cwd: base[t] });
  }

  /** Run in both; same exit status and stdout (stderr too when `sameStderr`); returns larch's result. */
  function both(args: string[]): RunResult {
    const r = { ostree: run('ostree', args), larch: run('larch', args) };
    expect(r.larch.code, `larch ${args.join(' ')}\n${r.larch.stderr}`).toBe(r.ostree.code);
    expect(r.larch.stdout).toBe(r.ostree.stdout);
    return r.larch;
  }

  function sameObjects(): void {
    for (const repo of ['repo', 'child-repo', 'tmp-repo']) expect(objects(join(base.larch, repo)), repo).toEqual(objects(join(base.ostree, repo)));
  }

  beforeAll(async () => {
    requireOstree();
    const s = await scratch('larch-parent-repo-');
    cleanup = s.cleanup;
    for (const t of TOOLS) {
      base[t] = join(s.dir, t);
      mkdirSync(join(base[t], 'files'), { recursive: true });
      for (const r of ['repo', 'child-repo', 'tmp-repo']) expect(run(t, ['init', `--repo=${r}`, '--mode=archive']).code).toBe(0);
      appendFileSync(join(base[t], 'child-repo/config'), `parent=${join(base[t], 'repo')}\n`);
      for (let x = 1; x <= 3; x++) writeFileSync(join(base[t], 'files', `afile${x}`), `afile${x}\n`);
    }
  });
  afterAll(() => cleanup());

  it('pull-local into the child stores only what the parent lacks', () => {
    both(['--repo=repo', 'commit', '-b', 'test', '--timestamp=2020-01-01', 'files']);
    for (const t of TOOLS) for (let x = 4; x <= 6; x++) writeFileSync(join(base[t], 'files', `afile${x}`), `afile${x}\n`);
    both(['--repo=tmp-repo', 'commit', '-b', 'childtest', '--timestamp=2020-01-02', 'files']);
    const r = { ostree: run('ostree', ['--repo=child-repo', 'pull-local', 'tmp-repo', 'childtest']), larch: run('larch', ['--repo=child-repo', 'pull-local', 'tmp-repo', 'childtest']) };
    expect(r.larch.code, r.larch.stderr).toBe(0);
    expect(r.ostree.code).toBe(0);
    sameObjects();
    expect(objects(join(base.larch, 'child-repo')).filter((n) => n.endsWith('.filez'))).toHaveLength(3);
  });

  it('the child reads a file it holds only through its parent', () => {
    expect(both(['--repo=child-repo', 'cat', 'childtest', '/afile1']).stdout).toBe('afile1\n');
    both(['--repo=child-repo', 'ls', '-R', 'childtest']);
  });

  it('prune in the child keeps everything its commits reach, and never deletes from the parent', () => {
    both(['--repo=repo', 'prune']);
    both(['--repo=child-repo', 'prune']);
    sameObjects();
    both(['--repo=repo', 'refs', '--delete', 'test']);
    both(['--repo=child-repo', 'prune', '--refs-only', '--depth=0']);
    sameObjects();
    expect(objects(join(base.larch, 'child-repo')).filter((n) => n.endsWith('.filez'))).toHaveLength(3);
    expect(objects(join(base.larch, 'repo')).filter((n) => n.endsWith('.filez'))).toHaveLength(3);
  });

  it('fsck in the child verifies the objects it reaches through its parent and marks nothing partial', () => {
    for (const t of TOOLS) {
      const r = run(t, ['--repo=child-repo', 'fsck']);
      expect(r.code, `${t} fsck\n${r.stdout}${r.stderr}`).toBe(0);
      expect(readdirSync(join(base[t], 'child-repo/state')), t).toEqual([]);
    }
  });

  it('commit into the child writes its objects to the child, even those the parent has', () => {
    both(['--repo=child-repo', 'commit', '-b', 'own', '--timestamp=2020-01-03', 'files']);
    sameObjects();
    expect(objects(join(base.larch, 'child-repo')).filter((n) => n.endsWith('.filez'))).toHaveLength(6);
  });
});
