/**
 * `larch ls` looks paths up as `ostree ls` does, side by side with the real ostree: the same exit
 * status, output and error line for paths below a file or symlink ("Not a directory", grepped by
 * ostree's basic-test.sh), missing paths (named up to the first missing component, unquoted),
 * `.`, `..`, a trailing `/`, `//` (which starts again from the root) and the empty path. `cat` and
 * `export --subpath` share the lookup.
 */
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { larch, ok, ostree, RUN_INTEROP, requireOstree, scratch, type RunResult } from './helpers.js';

let dir: string;
let cleanup: () => Promise<void>;
let repo: string;

beforeAll(async () => {
  ({ dir, cleanup } = await scratch('larch-cli-ls-paths-'));
  if (!RUN_INTEROP) return;
  requireOstree();
  const tree = join(dir, 'tree');
  await fsp.mkdir(join(tree, 'baz/deeper'), { recursive: true });
  await fsp.writeFile(join(tree, 'baz/cow'), 'moo\n');
  await fsp.writeFile(join(tree, 'baz/deeper/ohyeah'), 'hi\n');
  await fsp.symlink('cow', join(tree, 'baz/link'));
  await fsp.symlink('nowhere', join(tree, 'baz/dangling'));
  await fsp.symlink('../baz', join(tree, 'baz/dirlink'));
  repo = join(dir, 'repo');
  ok(ostree(['init', `--repo=${repo}`, '--mode=archive']));
  ok(ostree(['commit', `--repo=${repo}`, '-b', 'test2', `--tree=dir=${tree}`, '--owner-uid=0', '--owner-gid=0', '--no-xattrs']));
});
afterAll(async () => {
  await cleanup();
});

const outcome = (r: RunResult): { code: number; stdout: string; stderr: string } => ({ code: r.code, stdout: r.stdout, stderr: r.stderr });

function same(args: string[]): { code: number; stdout: string; stderr: string } {
  const want = outcome(ostree([`--repo=${repo}`, ...args]));
  expect(outcome(larch([`--repo=${repo}`, ...args])), args.join(' ')).toEqual(want);
  return want;
}

describe.runIf(RUN_INTEROP)('ls paths as ostree looks them up', () => {
  it('a path below a file, a symlink or a dangling symlink: "Not a directory"', () => {
    for (const p of ['/baz/cow/notadir', '/baz/link/x', '/baz/dirlink/cow', '/baz/dangling/x']) {
      expect(same(['ls', 'test2', p]).stderr).toBe(`error: Inspecting path '${p}': Not a directory\n`);
    }
  });

  it('a missing path is named up to its first missing component, without quotes', () => {
    expect(same(['ls', 'test2', '/nope']).stderr).toBe("error: Inspecting path '/nope': No such file or directory: /nope\n");
    expect(same(['ls', 'test2', 'nope']).stderr).toBe("error: Inspecting path 'nope': No such file or directory: /nope\n");
    expect(same(['ls', 'test2', '/baz/nope/x']).stderr).toBe("error: Inspecting path '/baz/nope/x': No such file or directory: /baz/nope\n");
    // The paths before it are listed first.
    expect(same(['ls', 'test2', '/baz/cow', '/nope']).stdout).toBe('-00644 0 0      4 /baz/cow\n');
  });

  it('".", "..", a trailing "/", "//" and the empty path are looked up literally', () => {
    for (const p of ['/baz/./cow', '/baz/../baz', '/baz/', '//baz', '', 'baz//deeper', 'baz//baz/']) expect(same(['ls', 'test2', p]).code).toBe(1);
    expect(same(['ls', 'test2', '/baz/./cow']).stderr).toContain('No such file or directory: /baz/.\n');
    // "baz//" starts again from the root and ends there.
    expect(same(['ls', 'test2', 'baz//']).stdout).toBe('d00755 0 0      0 /\nd00755 0 0      0 /baz\n');
    for (const args of [['/'], ['///'], ['baz/cow'], ['-R', '/baz/cow'], ['-d', '/baz'], ['-R', '-C', '/baz/deeper']]) {
      const flags = args.slice(0, -1);
      expect(same(['ls', ...flags, 'test2', args[args.length - 1]]).code).toBe(0);
    }
  });

  it('cat and export --subpath share the lookup and its wording', () => {
    expect(same(['cat', 'test2', '/baz/cow/x']).stderr).toBe('error: Not a directory\n');
    expect(same(['cat', 'test2', '/baz/nope']).stderr).toBe('error: No such file or directory: /baz/nope\n');
    const out = join(dir, 'out.tar');
    expect(same(['export', '--subpath=baz/cow/x', '-o', out, 'test2']).stderr).toBe('error: Not a directory\n');
  });
});
