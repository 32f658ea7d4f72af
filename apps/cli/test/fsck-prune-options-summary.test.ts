/**
 * The summary as ostree keeps it, side by side with the real `ostree`: `summary --raw` on its own
 * views the summary, and with `core.auto-update-summary` (or the older
 * `core.commit-update-summary`) every ref change — commit, reset, refs --delete — regenerates it,
 * while without it the summary is left alone. The cases follow OSTree's tests/test-auto-summary.sh
 * and tests/test-summary-view.sh.
 */
import { cpSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { larch, ok, ostree, requireOstree, RUN_INTEROP, scratch, type RunResult } from './helpers.js';

let dir: string;
let cleanup: () => Promise<void>;
let base: string;
let tree: string;
let n = 0;

beforeAll(async () => {
  if (!RUN_INTEROP) return;
  requireOstree();
  ({ dir, cleanup } = await scratch('larch-summary-auto-'));
  tree = join(dir, 'tree');
  await mkdir(tree, { recursive: true });
  await writeFile(join(tree, 'a'), 'hello\n');
  base = join(dir, 'base');
  ok(ostree(['init', `--repo=${base}`, '--mode=archive']));
  ok(ostree([`--repo=${base}`, 'commit', '-b', 'test', '-s', 'one', '--timestamp=2020-01-01 00:00:00 +0000', tree]));
  ok(ostree([`--repo=${base}`, 'commit', '-b', 'test', '-s', 'two', '--timestamp=2020-01-02 00:00:00 +0000', tree]));
  ok(ostree([`--repo=${base}`, 'summary', '-u']));
}, 60_000);
afterAll(async () => cleanup?.());

function pair(): { real: string; ours: string } {
  n++;
  const real = join(dir, `r${n}-ostree`);
  const ours = join(dir, `r${n}-larch`);
  cpSync(base, real, { recursive: true });
  cpSync(base, ours, { recursive: true });
  return { real, ours };
}

/** Run with both tools on their own copy; exit status and stderr must agree. */
function both(repos: { real: string; ours: string }, args: string[]): { real: RunResult; ours: RunResult } {
  const real = ostree([`--repo=${repos.real}`, ...args]);
  const ours = larch([`--repo=${repos.ours}`, ...args]);
  expect({ args, code: ours.code, stderr: ours.stderr }).toEqual({ args, code: real.code, stderr: real.stderr });
  return { real, ours };
}

/** `summary --view` without the Last-Modified line (each tool writes its own time). */
function view(repo: string, tool: typeof ostree): string {
  return ok(tool([`--repo=${repo}`, 'summary', '--view']))
    .split('\n')
    .filter((l) => !l.startsWith('Last-Modified'))
    .join('\n');
}

const summaryBytes = (repo: string): Buffer => readFileSync(join(repo, 'summary'));

describe.skipIf(!RUN_INTEROP)('summary kept as ostree keeps it', () => {
  it('summary --raw alone prints the summary as GVariant text, as ostree does', () => {
    const repos = pair();
    const r = both(repos, ['summary', '--raw']);
    expect(r.ours.stdout).toBe(r.real.stdout);
    expect(r.ours.stdout).toContain("('test', (");
  });

  it('without auto-update-summary, ref changes leave the summary alone', () => {
    const repos = pair();
    const before = { real: summaryBytes(repos.real), ours: summaryBytes(repos.ours) };
    both(repos, ['commit', '-b', 'test2', '-s', 'x', '--timestamp=2020-01-03 00:00:00 +0000', tree]);
    both(repos, ['reset', 'test', 'test^']);
    both(repos, ['refs', '--delete', 'test']);
    expect(summaryBytes(repos.real).equals(before.real)).toBe(true);
    expect(summaryBytes(repos.ours).equals(before.ours)).toBe(true);
  });

  for (const key of ['core.auto-update-summary', 'core.commit-update-summary']) {
    it(`with ${key}, commit, reset and refs --delete each regenerate it`, () => {
      const repos = pair();
      both(repos, ['config', 'set', key, 'true']);
      const steps: string[][] = [
        ['commit', '-b', 'test', '-s', 'three', '--timestamp=2020-01-03 00:00:00 +0000', tree],
        ['reset', 'test', 'test^'],
        ['commit', '-b', 'other', '-s', 'four', '--timestamp=2020-01-04 00:00:00 +0000', tree],
        ['refs', '--delete', 'test'],
      ];
      for (const step of steps) {
        both(repos, step);
        expect({ step, view: view(repos.ours, larch) }).toEqual({ step, view: view(repos.real, ostree) });
      }
    });
  }
});
