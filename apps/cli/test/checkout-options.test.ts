/**
 * `larch checkout` options against the real `ostree checkout`, side by side: each case runs the
 * same arguments with both tools on the same repository (written by ostree) into two
 * destinations, and compares the exit status, the error line where ostree's tests grep it, and
 * the resulting trees (names, types, modes, sizes, contents, symlink targets, device numbers,
 * whether files are hardlinks). The cases follow OSTree's tests/basic-test.sh and
 * tests/test-admin-deploy-whiteouts.sh.
 */
import { createHash } from 'node:crypto';
import { chmodSync, lstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOneErrorLine, larch, ok, ostree, requireOstree, RUN_INTEROP, scratch, type RunResult } from './helpers.js';

let dir: string;
let cleanup: () => Promise<void>;
let n = 0;

beforeAll(async () => {
  if (!RUN_INTEROP) return;
  requireOstree();
  ({ dir, cleanup } = await scratch('larch-checkout-opts-'));
});
afterAll(async () => cleanup?.());

/** The tree of libtest.sh's setup_test_repository, plus an empty file and overlayfs whiteout sources. */
async function makeTree(root: string): Promise<string> {
  await mkdir(join(root, 'baz/deeper'), { recursive: true });
  await mkdir(join(root, 'baz/another'), { recursive: true });
  await mkdir(join(root, 'yet/another/tree'), { recursive: true });
  await mkdir(join(root, 'whiteouts'), { recursive: true });
  await mkdir(join(root, 'wide'), { recursive: true });
  await writeFile(join(root, 'firstfile'), 'first\n');
  await writeFile(join(root, 'baz/cow'), 'moo\n');
  await writeFile(join(root, 'baz/saucer'), 'alien\n');
  await writeFile(join(root, 'baz/deeper/ohyeah'), 'hi\n');
  await writeFile(join(root, 'baz/another/y'), 'x\n');
  await writeFile(join(root, 'yet/another/tree/green'), 'leaf\n');
  await writeFile(join(root, 'anemptyfile'), '');
  await symlink('nosuchfile', join(root, 'somelink'));
  await writeFile(join(root, 'whiteouts/.ostree-wh.whiteout'), '');
  await writeFile(join(root, 'whiteouts/.ostree-wh.whiteout2'), '');
  chmodSync(join(root, 'whiteouts/.ostree-wh.whiteout'), 0o400);
  chmodSync(join(root, 'whiteouts/.ostree-wh.whiteout2'), 0o777);
  chmodSync(join(root, 'wide'), 0o777);
  return root;
}

/** A repository of `mode` written by ostree, with the tree above committed as `test2`. */
async function repoOf(mode: string): Promise<string> {
  const repo = join(dir, `repo-${mode}-${n++}`);
  const tree = await makeTree(join(dir, `tree-${n++}`));
  ok(ostree(['init', `--repo=${repo}`, `--mode=${mode}`]));
  ok(ostree(['commit', `--repo=${repo}`, '-b', 'test2', '-s', 'two', tree]));
  return repo;
}

interface Entry {
  type: string;
  mode: number;
  size?: number;
  sha?: string;
  target?: string;
  rdev?: number;
  linked?: boolean;
}

/** Everything below `root` that a checkout decides, by relative path. */
function describeTree(root: string): Record<string, Entry> {
  const out: Record<string, Entry> = {};
  const walk = (rel: string): void => {
    const p = rel === '' ? root : join(root, rel);
    const st = lstatSync(p);
    const e: Entry = { type: '?', mode: st.mode & 0o7777 };
    if (st.isDirectory()) {
      e.type = 'dir';
      for (const name of readdirSync(p).sort()) walk(rel === '' ? name : `${rel}/${name}`);
    } else if (st.isSymbolicLink()) {
      e.type = 'symlink';
      e.target = readlinkSync(p);
      delete (e as Partial<Entry>).mode;
    } else if (st.isFile()) {
      e.type = 'file';
      e.size = st.size;
      e.sha = createHash('sha256').update(readFileSync(p)).digest('hex');
      e.linked = st.nlink > 1;
    } else if (st.isCharacterDevice()) {
      e.type = 'chardev';
      e.rdev = st.rdev;
    }
    out[rel === '' ? '.' : rel] = e;
  };
  walk('');
  return out;
}

/** Run `checkout ARGS… DEST` with both tools (DEST differs); exit status must agree. */
function both(repo: string, args: string[], name: string): { real: RunResult; ours: RunResult; realDest: string; ourDest: string } {
  const realDest = join(dir, `${name}-ostree`);
  const ourDest = join(dir, `${name}-larch`);
  const real = ostree(['checkout', `--repo=${repo}`, ...args, realDest]);
  const ours = larch(['checkout', `--repo=${repo}`, ...args, ourDest]);
  expect({ args, code: ours.code, err: ours.stderr }).toMatchObject({ args, code: real.code });
  return { real, ours, realDest, ourDest };
}

/** Both tools' error lines, for where ostree's tests grep them. */
function errors(r: { real: RunResult; ours: RunResult }): { real: string; ours: string } {
  return { real: r.real.stderr.trim().split('\n').pop()!.replace(/^error: /, ''), ours: expectOneErrorLine(r.ours) };
}

function sameTrees(r: { realDest: string; ourDest: string }): Record<string, Entry> {
  const t = describeTree(r.ourDest);
  expect(t).toEqual(describeTree(r.realDest));
  return t;
}

describe.runIf(RUN_INTEROP)('larch checkout options, compared with ostree checkout', () => {
  it('-H hardlinks in the matching mode, refuses the other with ostree words, copies empty files', async () => {
    const bareUser = await repoOf('bare-user');
    const r1 = both(bareUser, ['-U', '-H', 'test2'], 'h-bu');
    const t = sameTrees(r1);
    expect(t.firstfile.linked).toBe(true);
    expect(t.anemptyfile.linked).toBe(false);
    const r2 = both(bareUser, ['-H', 'test2'], 'h-bu-root');
    expect(errors(r2).ours).toBe(errors(r2).real);
    expect(errors(r2).ours).toMatch(/User repository.*requires.*user/);

    const bare = await repoOf('bare');
    sameTrees(both(bare, ['-H', 'test2'], 'h-bare'));
    const r3 = both(bare, ['-U', '-H', 'test2'], 'h-bare-user');
    expect(errors(r3).ours).toBe(errors(r3).real);
    expect(errors(r3).ours).toContain('Bare repository mode cannot hardlink in user');

    const archive = await repoOf('archive');
    const r4 = both(archive, ['-H', 'test2'], 'h-archive');
    expect(errors(r4).ours).toBe(errors(r4).real);
  });

  it('refuses -H with -C, and --union-identical without -H, with ostree words', async () => {
    const repo = await repoOf('bare-user');
    const r1 = both(repo, ['-U', '-H', '-C', 'test2'], 'hc');
    expect(errors(r1).ours).toBe(errors(r1).real);
    const r2 = both(repo, ['-U', '--union-identical', 'test2'], 'ui');
    expect(errors(r2).ours).toBe(errors(r2).real);
    expect(errors(r2).ours).toMatch(/--union-identical requires --require-hardlinks/);
    // With -H the layering works, twice over the same destination.
    const dest = join(dir, 'ui-ok');
    for (const tool of [ostree, larch]) {
      await rm(dest, { recursive: true, force: true });
      ok(tool(['checkout', `--repo=${repo}`, '-U', '-H', '--union-identical', 'test2', dest]));
      ok(tool(['checkout', `--repo=${repo}`, '-U', '-H', '--union-identical', 'test2', dest]));
    }
  });

  it('--skip-list leaves out the listed files and directories (with their trailing slash), also below --subpath', async () => {
    const repo = await repoOf('bare-user');
    const list = join(dir, 'skip.txt');
    await writeFile(list, '/baz/saucer\n/yet/another/tree/\n/yet/another\n\n/firstfile\n');
    const t = sameTrees(both(repo, ['-U', `--skip-list=${list}`, 'test2'], 'skip'));
    expect(t['baz/saucer']).toBeUndefined();
    expect(t['yet/another/tree']).toBeUndefined();
    expect(t.firstfile).toBeUndefined();
    expect(t['baz/cow']).toBeDefined();
    await writeFile(list, '/saucer\n/deeper/\n');
    const t2 = sameTrees(both(repo, ['-U', `--skip-list=${list}`, '--subpath=/baz', 'test2'], 'skip-sub'));
    expect(Object.keys(t2).sort()).toEqual(['.', 'another', 'another/y', 'cow']);
    const missing = both(repo, ['-U', `--skip-list=${join(dir, 'no-such-list')}`, 'test2'], 'skip-missing');
    expectOneErrorLine(missing.ours);
  });

  it('--allow-noent makes a missing subpath a no-op; without it the error says No such file or directory', async () => {
    const repo = await repoOf('bare-user');
    const r1 = both(repo, ['-U', '--subpath=/enoent', 'test2'], 'noent');
    expect(errors(r1).ours).toContain('No such file or directory');
    const r2 = both(repo, ['-U', '--allow-noent', '--subpath=/enoent', 'test2'], 'noent-ok');
    expect(r2.ours.code).toBe(0);
    expect(() => lstatSync(r2.ourDest)).toThrow();
  });

  it('--from-file and --from-stdin check out each REV NUL SUBPATH NUL entry into the destination', async () => {
    const repo = await repoOf('bare-user');
    const list = join(dir, 'from.txt');
    await writeFile(list, 'test2\0/baz\0test2\0/yet\0');
    sameTrees(both(repo, ['-U', '--union', `--from-file=${list}`], 'from-file'));
    const realDest = join(dir, 'from-stdin-ostree');
    const ourDest = join(dir, 'from-stdin-larch');
    const input = 'test2\0/baz/deeper\0';
    const { spawnSync } = await import('node:child_process');
    expect(spawnSync('ostree', ['checkout', `--repo=${repo}`, '-U', '--from-stdin', realDest], { input }).status).toBe(0);
    ok(larch(['checkout', `--repo=${repo}`, '-U', '--from-stdin', ourDest], { input }));
    expect(describeTree(ourDest)).toEqual(describeTree(realDest));
    await writeFile(list, 'nosuchref\0/\0');
    const bad = both(repo, ['-U', `--from-file=${list}`], 'from-bad');
    expect(errors(bad).ours).toBe(errors(bad).real);
  });

  it('-M keeps directory modes within 0775; bare-user-only does so by itself', async () => {
    const repo = await repoOf('bare-user');
    const t = sameTrees(both(repo, ['-U', '-H', '-M', 'test2'], 'm'));
    expect(t.wide.mode).toBe(0o775);
    expect(sameTrees(both(repo, ['-U', '-H', 'test2'], 'no-m')).wide.mode).toBe(0o777);
    const buo = join(dir, 'repo-buo');
    ok(ostree(['init', `--repo=${buo}`, '--mode=bare-user-only']));
    ok(ostree(['commit', `--repo=${buo}`, '-b', 'test2', '--canonical-permissions', '-s', 's', await makeTree(join(dir, 'tree-buo'))]));
    sameTrees(both(buo, ['test2'], 'buo'));
  });

  it('--whiteouts applies .wh.NAME and .wh..wh..opq over a union, and a file or symlink replaces a directory', async () => {
    const repo = await repoOf('bare');
    const overlay = join(dir, 'overlay');
    await mkdir(join(overlay, 'baz/another'), { recursive: true });
    await mkdir(join(overlay, 'anewdir'), { recursive: true });
    await writeFile(join(overlay, 'baz/.wh.cow'), '');
    await writeFile(join(overlay, 'baz/.wh.deeper'), '');
    await writeFile(join(overlay, 'baz/another/.wh..wh..opq'), '');
    await writeFile(join(overlay, 'anewfile'), 'new\n');
    await writeFile(join(overlay, 'anewdir/blah'), 'blah\n');
    ok(ostree(['commit', `--repo=${repo}`, '-b', 'overlay', '-s', 'overlay', `--tree=dir=${overlay}`]));
    const convert = join(dir, 'convert');
    await mkdir(convert);
    await writeFile(join(convert, 'baz'), 'baz to file\n');
    await symlink('firstfile', join(convert, 'yet'));
    ok(ostree(['commit', `--repo=${repo}`, '-b', 'convert', '-s', 'convert', `--tree=dir=${convert}`]));
    for (const mode of [[], ['-U']]) {
      const name = `wh${mode.join('')}`;
      both(repo, [...mode, '--union', '--whiteouts', 'test2'], name);
      const t = sameTrees(both(repo, [...mode, '--union', '--whiteouts', 'overlay'], name));
      expect(t['baz/cow']).toBeUndefined();
      expect(t['baz/.wh.cow']).toBeUndefined();
      expect(t['baz/deeper']).toBeUndefined();
      expect(t['baz/another/y']).toBeUndefined();
      expect(t['anewdir/blah']).toBeDefined();
      const t2 = sameTrees(both(repo, [...mode, '--union', '--whiteouts', 'convert'], name));
      expect(t2.baz.type).toBe('file');
      expect(t2.yet.type).toBe('symlink');
    }
    // Without --whiteouts the markers are ordinary files.
    both(repo, ['--union', 'test2'], 'wh-off');
    const off = sameTrees(both(repo, ['--union', 'overlay'], 'wh-off'));
    expect(off['baz/.wh.cow'].type).toBe('file');
  });

  it('--whiteouts refuses a whiteout naming . or .. (.wh.. / .wh...) and removes nothing', async () => {
    const repo = await repoOf('bare');
    for (const bad of ['.wh..', '.wh...']) {
      const layer = join(dir, `layer-${n++}`);
      await mkdir(join(layer, 'sub'), { recursive: true });
      await writeFile(join(layer, 'sub', bad), '');
      ok(ostree(['commit', `--repo=${repo}`, '-b', 'hostile', '-s', 'h', `--tree=dir=${layer}`]));
      const dest = join(dir, `hostile-${n++}`);
      ok(larch(['checkout', `--repo=${repo}`, 'test2', dest]));
      const before = describeTree(dest);
      expect(expectOneErrorLine(larch(['checkout', `--repo=${repo}`, '--union', '--whiteouts', 'hostile', dest]))).toMatch(/Invalid whiteout/);
      const after = describeTree(dest);
      for (const k of Object.keys(before)) expect(after[k]).toBeDefined();
    }
  });

  it('--process-passthrough-whiteouts makes .ostree-wh.NAME a character device 0:0 with the file mode; unions agree', async () => {
    const repo = await repoOf('bare');
    const t = sameTrees(both(repo, ['--process-passthrough-whiteouts', 'test2'], 'pw'));
    expect(t['whiteouts/whiteout']).toEqual({ type: 'chardev', mode: 0o400, rdev: 0 });
    expect(t['whiteouts/whiteout2']).toEqual({ type: 'chardev', mode: 0o777, rdev: 0 });
    expect(t['whiteouts/.ostree-wh.whiteout']).toBeUndefined();
    for (const union of ['--union', '--union-add']) sameTrees(both(repo, [union, '--process-passthrough-whiteouts', 'test2'], 'pw'));
    const again = both(repo, ['--process-passthrough-whiteouts', 'test2'], 'pw');
    expect(again.ours.code).not.toBe(0);
    // Without the option the files are checked out as they are.
    expect(sameTrees(both(repo, ['test2'], 'pw-off'))['whiteouts/.ostree-wh.whiteout'].type).toBe('file');
  });

  it('--subpath of a file puts the file, under its own name, in the destination directory (or in ".")', async () => {
    const repo = await repoOf('bare-user');
    const t = sameTrees(both(repo, ['-U', '--subpath=/baz/saucer', 'test2'], 'sub-file'));
    expect(Object.keys(t).sort()).toEqual(['.', 'saucer']);
    const realCwd = join(dir, 'sub-file-cwd-ostree');
    const ourCwd = join(dir, 'sub-file-cwd-larch');
    await mkdir(realCwd);
    await mkdir(ourCwd);
    ok(ostree(['checkout', `--repo=${repo}`, '-U', '--subpath=/baz/saucer', 'test2', '.'], { cwd: realCwd }));
    ok(larch(['checkout', `--repo=${repo}`, '-U', '--subpath=/baz/saucer', 'test2', '.'], { cwd: ourCwd }));
    expect(describeTree(ourCwd)).toEqual(describeTree(realCwd));
  });

  it('a plain -U checkout of an archive repository hardlinks from uncompressed-objects-cache; --disable-cache does not', async () => {
    const repo = await repoOf('archive');
    const other = join(dir, `repo-archive-copy-${n++}`);
    ok(ostree(['init', `--repo=${other}`, '--mode=archive']));
    ok(ostree(['pull-local', `--repo=${other}`, repo]));
    const cacheOf = (r: string): string[] => {
      try {
        return readdirSync(join(r, 'uncompressed-objects-cache')).flatMap((d) => readdirSync(join(r, 'uncompressed-objects-cache', d)).map((f) => `${d}/${f}`)).sort();
      } catch {
        return [];
      }
    };
    // ostree works on `repo`, larch on `other`: the caches they leave must match too.
    const plain = (tool: typeof ostree, r: string, dest: string, extra: string[]): RunResult => tool(['checkout', `--repo=${r}`, '-U', ...extra, 'test2', dest]);
    ok(plain(ostree, repo, join(dir, 'cache-nc-ostree'), ['--disable-cache']));
    ok(plain(larch, other, join(dir, 'cache-nc-larch'), ['--disable-cache']));
    expect(cacheOf(other)).toEqual([]);
    expect(cacheOf(repo)).toEqual([]);
    ok(plain(ostree, repo, join(dir, 'cache-ostree'), []));
    ok(plain(larch, other, join(dir, 'cache-larch'), []));
    expect(cacheOf(other)).toEqual(cacheOf(repo));
    expect(cacheOf(other).length).toBeGreaterThan(0);
    const t = describeTree(join(dir, 'cache-larch'));
    expect(t).toEqual(describeTree(join(dir, 'cache-ostree')));
    expect(t['baz/cow'].linked).toBe(true);
    // The cached file has the object's content and mode.
    const cow = cacheOf(other).find((f) => readFileSync(join(other, 'uncompressed-objects-cache', f), 'utf8') === 'moo\n');
    expect(cow).toBeDefined();
  });

  it('a user checkout copies a file recorded as unreadable (mode 0) and makes it readable by its owner, as ostree', async () => {
    for (const mode of ['bare-user', 'bare']) {
      const repo = await repoOf(mode);
      const tree = await makeTree(join(dir, `tree-unreadable-${n++}`));
      await writeFile(join(tree, 'unreadable'), '');
      await writeFile(join(tree, 'secret'), 'not empty\n');
      const over = join(dir, `statoverride-${n++}.txt`);
      await writeFile(over, '=0 /unreadable\n=0 /secret\n');
      ok(ostree(['commit', `--repo=${repo}`, '-b', 'unreadable', `--statoverride=${over}`, '-s', 'u', `--tree=dir=${tree}`]));
      const args = mode === 'bare-user' ? ['-U', '-H', 'unreadable'] : ['-U', 'unreadable'];
      const t = sameTrees(both(repo, args, `unreadable-${mode}`));
      expect(t.unreadable).toMatchObject({ mode: 0o400, linked: false });
      expect(t.secret).toMatchObject({ mode: 0o400, linked: false });
    }
  });

  it('--union over an earlier hardlink checkout of the same commit leaves the same tree (no stray links)', async () => {
    const repo = await repoOf('bare');
    both(repo, ['test2'], 'union-again');
    const t = sameTrees(both(repo, ['--union', 'test2'], 'union-again'));
    expect(Object.keys(t).filter((k) => k.includes('.larch-'))).toEqual([]);
  });

  it('accepts -z, --disable-cache and --fsync, and refuses an --fsync that is not a boolean with ostree words', async () => {
    const repo = await repoOf('bare-user');
    sameTrees(both(repo, ['-U', '-H', '-z', '--disable-cache', '--fsync=false', 'test2'], 'z'));
    const bad = both(repo, ['-U', '--fsync=sometimes', 'test2'], 'fsync-bad');
    expect(errors(bad).ours).toBe(errors(bad).real);
  });

  it('-C leaves directory mtimes alone, as ostree does; a hardlink checkout sets them to 0', async () => {
    const repo = await repoOf('bare-user');
    const r = both(repo, ['-U', '-C', 'test2'], 'c');
    sameTrees(r);
    expect(lstatSync(join(r.realDest, 'baz')).mtimeMs).not.toBe(0);
    expect(lstatSync(join(r.ourDest, 'baz')).mtimeMs).not.toBe(0);
    const h = both(repo, ['-U', 'test2'], 'c-h');
    expect(lstatSync(join(h.ourDest, 'baz')).mtimeMs).toBe(lstatSync(join(h.realDest, 'baz')).mtimeMs);
  });
});
