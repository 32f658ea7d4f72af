/**
 * `larch ls -X` and `larch ls --nul-filenames-only`, side by side with the real ostree on
 * bare-user and archive repositories whose files, directories and symlinks carry `user.*`
 * extended attributes (set with setfattr, committed by ostree): the same bytes, with -R, -C, -d
 * and paths, including names and values that need quoting or escapes in the GVariant text.
 */
import { spawnSync } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { larch, larchBytes, ok, ostree, RUN_INTEROP, requireOstree, scratch } from './helpers.js';

let dir: string;
let cleanup: () => Promise<void>;
const repos: Record<string, string> = {};

function setfattr(name: string, value: string, path: string): void {
  const r = spawnSync('setfattr', ['-n', name, '-v', value, path], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`setfattr ${name} ${path}: ${r.stderr}`);
}

beforeAll(async () => {
  ({ dir, cleanup } = await scratch('larch-cli-ls-xattrs-'));
  if (!RUN_INTEROP) return;
  requireOstree();
  const tree = join(dir, 'tree');
  await fsp.mkdir(join(tree, 'sub/deeper'), { recursive: true });
  await fsp.writeFile(join(tree, 'a'), 'hi\n');
  await fsp.writeFile(join(tree, 'plain'), 'no xattrs\n');
  await fsp.writeFile(join(tree, 'sub/b'), 'yo\n');
  await fsp.writeFile(join(tree, 'sub/deeper/c'), 'deep\n');
  await fsp.symlink('a', join(tree, 'link'));
  setfattr('user.foo', 'bar', join(tree, 'a'));
  setfattr('user.bin', '0x00ff01', join(tree, 'sub/b'));
  setfattr('user.d', 'dirval', join(tree, 'sub'));
  setfattr(`user.q'"x`, `a'b\\c`, join(tree, 'sub/deeper/c'));
  setfattr('user.ü', '0x0a0900', join(tree, 'sub/deeper/c'));
  setfattr('user.tab', 'line\ntwo', join(tree, 'sub/deeper/c'));
  for (const mode of ['bare-user', 'archive']) {
    const repo = join(dir, mode);
    ok(ostree(['init', `--repo=${repo}`, `--mode=${mode}`]));
    ok(ostree(['commit', `--repo=${repo}`, '-b', 'main', `--tree=dir=${tree}`]));
    repos[mode] = repo;
  }
});
afterAll(async () => {
  await cleanup();
});

function ostreeBytes(args: string[]): { code: number; stdout: Buffer; stderr: string } {
  const r = spawnSync('ostree', args, { input: '', maxBuffer: 64 * 1024 * 1024 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr.toString('utf8') };
}

/** Same exit status, stdout bytes and stderr from both; returns ostree's stdout. */
function same(repo: string, args: string[]): Buffer {
  const all = [`--repo=${repo}`, 'ls', ...args];
  const want = ostreeBytes(all);
  const got = larchBytes(all);
  expect({ code: got.code, stdout: got.stdout.toString('latin1'), stderr: got.stderr }, args.join(' ')).toEqual({
    code: want.code,
    stdout: want.stdout.toString('latin1'),
    stderr: want.stderr,
  });
  return want.stdout;
}

describe.runIf(RUN_INTEROP)('ls -X and --nul-filenames-only as ostree', () => {
  for (const mode of ['bare-user', 'archive']) {
    it(`-X prints each entry's xattrs (${mode})`, () => {
      const repo = repos[mode];
      const out = same(repo, ['-X', '-R', 'main']).toString('utf8');
      expect(out).toContain("-00644 0 0      3 { [(b'user.foo', [byte 0x62, 0x61, 0x72])] } /a\n");
      expect(out).toContain('l00777 0 0      0 { @a(ayay) [] } /link -> a\n');
      expect(out).toContain("d00755 0 0      0 { [(b'user.d', [byte 0x64, 0x69, 0x72, 0x76, 0x61, 0x6c])] } /sub\n");
      same(repo, ['-X', 'main']);
      same(repo, ['-X', '-C', '-R', 'main']);
      same(repo, ['-X', '-d', 'main', '/sub']);
      same(repo, ['-X', '-C', 'main', '/sub/deeper/c', '/link', '/plain']);
      same(repo, ['--xattrs', 'main', '/sub/deeper']);
      // A missing path after listed ones: the same partial output and error.
      same(repo, ['-X', 'main', '/a', '/nope']);
    });

    it(`--nul-filenames-only prints NUL-terminated paths (${mode})`, () => {
      const repo = repos[mode];
      expect(same(repo, ['--nul-filenames-only', '-R', 'main']).toString('utf8')).toBe('/\0/a\0/link\0/plain\0/sub\0/sub/b\0/sub/deeper\0/sub/deeper/c\0');
      same(repo, ['--nul-filenames-only', 'main']);
      same(repo, ['--nul-filenames-only', '-d', 'main', '/sub']);
      same(repo, ['--nul-filenames-only', '-X', '-C', '-R', 'main', '/sub']);
    });
  }

  it('--json and --nul-filenames-only together are refused in one line', () => {
    const r = larch([`--repo=${repos.archive}`, 'ls', '--json', '--nul-filenames-only', 'main']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toBe('error: --json and --nul-filenames-only cannot be combined\n');
  });
});
