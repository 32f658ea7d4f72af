import { lstat, readFile, readlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  exists,
  expectOneErrorLine,
  larch,
  makeSpecTree,
  ok,
  ostree,
  requireOstree,
  RUN_INTEROP,
  scratch,
  SPEC_COMMIT,
  SPEC_COMMIT_ARGS,
} from './helpers.js';

let dir: string;
let cleanup: () => Promise<void>;
let tree: string;

beforeAll(async () => {
  ({ dir, cleanup } = await scratch());
  tree = await makeSpecTree(join(dir, 'tree'));
});
afterAll(async () => cleanup());

function specRepo(name: string): string {
  const repo = join(dir, name);
  ok(larch(['init', `--repo=${repo}`, '--mode=archive']));
  ok(larch(['commit', `--repo=${repo}`, ...SPEC_COMMIT_ARGS, tree]));
  return repo;
}

describe('larch refs', () => {
  it('creates, lists (sorted, prefix-stripped), aliases and deletes refs', () => {
    const repo = specRepo('refs');
    const r = `--repo=${repo}`;
    ok(larch(['refs', r, '--create=a/b', 'test']));
    ok(larch(['refs', r, '--create=a/c', SPEC_COMMIT.slice(0, 12)]));
    ok(larch(['refs', r, '--alias', '--create=al', 'test']));
    expect(ok(larch(['refs', r]))).toBe('a/b\na/c\nal\ntest\n');
    expect(ok(larch(['refs', r, 'a']))).toBe('b\nc\n');
    expect(ok(larch(['refs', r, '--list', 'a']))).toBe('a/b\na/c\n');
    expect(ok(larch(['refs', r, 't']))).toBe('');
    expect(ok(larch(['refs', r, '--alias']))).toBe('al -> test\n');
    expect(JSON.parse(ok(larch(['refs', r, '--json', 'a'])))).toEqual([
      { name: 'a/b', checksum: SPEC_COMMIT },
      { name: 'a/c', checksum: SPEC_COMMIT },
    ]);
    expect(ok(larch(['rev-parse', r, 'al']))).toBe(`${SPEC_COMMIT}\n`);
    ok(larch(['refs', r, '--delete', 'a', 'al']));
    expect(ok(larch(['refs', r]))).toBe('test\n');
    ok(larch(['refs', r, '--delete', 'nosuch']));
  });

  it('lists remote refs after local ones and resolves them', () => {
    const repo = specRepo('refs-remote');
    const r = `--repo=${repo}`;
    ok(larch(['refs', r, '--create=origin:main', 'test']));
    ok(larch(['refs', r, '--create=origin:a/b', 'test']));
    expect(ok(larch(['refs', r]))).toBe('test\norigin:a/b\norigin:main\n');
    expect(ok(larch(['refs', r, 'origin:']))).toBe('origin:a/b\norigin:main\n');
    expect(ok(larch(['rev-parse', r, 'origin:main']))).toBe(`${SPEC_COMMIT}\n`);
    ok(larch(['refs', r, '--delete', 'origin:']));
    expect(ok(larch(['refs', r]))).toBe('test\n');
  });

  it('fails with ostree wording', () => {
    const repo = specRepo('refs-err');
    const r = `--repo=${repo}`;
    expect(expectOneErrorLine(larch(['refs', r, '--create=test', 'test']))).toBe('--create specified but ref test already exists');
    expect(expectOneErrorLine(larch(['refs', r, '--create=x']))).toBe('You must specify a revision when creating a new ref');
    expect(expectOneErrorLine(larch(['refs', r, '--create=y', 'nosuch']))).toBe("Refspec 'nosuch' not found");
    expect(expectOneErrorLine(larch(['refs', r, '--alias', '--create=al2', 'nosuch']))).toBe('Cannot create alias to non-existent ref: nosuch');
    expect(expectOneErrorLine(larch(['refs', r, '--delete']))).toBe('At least one PREFIX is required when deleting refs');
    expectOneErrorLine(larch(['refs', r, '--create=-bad', 'test']));
    ok(larch(['refs', r, '--force', '--create=test', 'test']));
  });
});

describe('larch checkout', () => {
  it('checks out a commit, refuses an existing destination, and layers unions', async () => {
    const repo = specRepo('co');
    const r = `--repo=${repo}`;
    const dest = join(dir, 'co1');
    ok(larch(['checkout', r, 'test', dest]));
    expect(await readFile(join(dest, 'hello.txt'), 'utf8')).toBe('hello\n');
    expect(await readlink(join(dest, 'link'))).toBe('hello.txt');
    expect((await lstat(join(dest, 'sub/empty'))).size).toBe(0);
    expect((await lstat(join(dest, 'sub'))).mode & 0o7777).toBe(0o755);
    expectOneErrorLine(larch(['checkout', r, 'test', dest]));

    await writeFile(join(dest, 'hello.txt'), 'local edit\n');
    await writeFile(join(dest, 'extra'), 'kept\n');
    ok(larch(['checkout', r, '--union-add', 'test', dest]));
    expect(await readFile(join(dest, 'hello.txt'), 'utf8')).toBe('local edit\n');
    ok(larch(['checkout', r, '--union', 'test', dest]));
    expect(await readFile(join(dest, 'hello.txt'), 'utf8')).toBe('hello\n');
    expect(await readFile(join(dest, 'extra'), 'utf8')).toBe('kept\n');
    // As in ostree, --union-identical needs -H, which an archive repo cannot do.
    const identical = larch(['checkout', r, '--union-identical', 'test', dest]);
    expectOneErrorLine(identical);
    expect(identical.stderr).toContain('--union-identical requires --require-hardlinks');
  });

  it('checks out a subpath in user mode, with JSON statistics', async () => {
    const repo = specRepo('co-sub');
    const dest = join(dir, 'co-sub-dest');
    const stats = JSON.parse(ok(larch(['checkout', `--repo=${repo}`, '-U', '--subpath=/sub', '--json', 'test', dest])));
    expect(stats.commit).toBe(SPEC_COMMIT);
    expect(stats.files).toBe(1);
    expect(exists(join(dest, 'empty'))).toBe(true);
    expect(exists(join(dest, 'hello.txt'))).toBe(false);
  });

  it('defaults the destination to the revision, as ostree', async () => {
    const repo = specRepo('co-default');
    const cwd = join(dir, 'cwd');
    ok(larch(['init', `--repo=${cwd}`, '--mode=archive'])); // any existing directory
    ok(larch(['checkout', `--repo=${repo}`, 'test'], { cwd }));
    expect(await readFile(join(cwd, 'test/hello.txt'), 'utf8')).toBe('hello\n');
  });

  it('rejects conflicting union modes and unknown revisions', () => {
    const repo = specRepo('co-err');
    const r = `--repo=${repo}`;
    expect(expectOneErrorLine(larch(['checkout', r, '--union', '--union-add', 'test', join(dir, 'x')]))).toBe(
      'Cannot specify both --union and --union-add',
    );
    expect(expectOneErrorLine(larch(['checkout', r, 'nosuch', join(dir, 'y')]))).toBe("Refspec 'nosuch' not found");
  });
});

describe.skipIf(!RUN_INTEROP)('refs and checkout (interop)', () => {
  beforeAll(requireOstree);

  it('ostree sees the refs and aliases larch writes', () => {
    const repo = specRepo('refs-interop');
    const r = `--repo=${repo}`;
    ok(larch(['refs', r, '--create=x/y', 'test']));
    ok(larch(['refs', r, '--alias', '--create=al', 'test']));
    expect(ok(ostree(['refs', r])).split('\n').filter(Boolean).sort()).toEqual(['al', 'test', 'x/y']);
    expect(ok(ostree(['refs', r, '--alias']))).toBe(ok(larch(['refs', r, '--alias'])));
    expect(ok(ostree(['rev-parse', r, 'x/y']))).toBe(`${SPEC_COMMIT}\n`);
    expect(ok(ostree(['refs', r, 'x']))).toBe(ok(larch(['refs', r, 'x'])));
  });

  it('lists local and remote refs as ostree does', () => {
    const repo = specRepo('refs-remote-interop');
    const r = `--repo=${repo}`;
    ok(ostree(['refs', r, '--create=origin:main', 'test']));
    expect(ok(larch(['refs', r]))).toBe(ok(ostree(['refs', r])));
    expect(ok(larch(['refs', r, 'origin:']))).toBe(ok(ostree(['refs', r, 'origin:'])));
  });

  it('checks out the same tree as ostree', async () => {
    const repo = specRepo('co-interop');
    ok(larch(['checkout', `--repo=${repo}`, 'test', join(dir, 'lco')]));
    ok(ostree(['checkout', `--repo=${repo}`, 'test', join(dir, 'oco')]));
    for (const f of ['hello.txt', 'sub/empty']) {
      expect(await readFile(join(dir, 'lco', f))).toEqual(await readFile(join(dir, 'oco', f)));
      expect((await lstat(join(dir, 'lco', f))).mode).toBe((await lstat(join(dir, 'oco', f))).mode);
    }
    expect(await readlink(join(dir, 'lco/link'))).toBe(await readlink(join(dir, 'oco/link')));
    const o = ostree(['checkout', `--repo=${repo}`, 'test', join(dir, 'oco')]);
    const l = larch(['checkout', `--repo=${repo}`, 'test', join(dir, 'lco')]);
    expect(l.code).toBe(o.code);
  });
});

describe('larch checkout progress', () => {
  it('draws a progress display on a terminal stderr, and none when stderr is not a terminal', async () => {
    const { spawnSync } = await import('node:child_process');
    const { CLI } = await import('./helpers.js');
    if (spawnSync('script', ['--version']).status !== 0) throw new Error('script(1) (util-linux) is needed for this test');
    const repo = specRepo('co-progress');
    const dest = join(dir, 'co-progress-out');
    const r = spawnSync('script', ['-qec', `${process.execPath} ${CLI} checkout --repo=${repo} test ${dest}`, '/dev/null'], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('Checking out');
    expect(await exists(join(dest, 'hello.txt'))).toBe(true);
    const piped = larch(['checkout', `--repo=${repo}`, 'test', join(dir, 'co-progress-piped')]);
    expect(piped.code).toBe(0);
    expect(piped.stderr).toBe('');
  });
});
