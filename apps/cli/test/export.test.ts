/**
 * `larch export`: the same GNU tar bytes as `ostree export`, to a file and to stdout, for trees
 * with long names and symlink targets around the 100-byte limit, multi-byte names, large owner
 * ids, special mode bits, empty and multi-megabyte files; `--subpath` and `--prefix`; errors that
 * leave no partial archive.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOneErrorLine, larch, larchBytes, ok, ostree, RUN_INTEROP, requireOstree, scratch } from './helpers.js';

let dir: string;
let cleanup: () => Promise<void>;
let repo: string;

beforeAll(async () => {
  ({ dir, cleanup } = await scratch('larch-cli-export-'));
  repo = join(dir, 'repo');
  const t = join(dir, 'tree');
  mkdirSync(join(t, 'usr/share/doc'), { recursive: true });
  mkdirSync(join(t, 'empty-dir'));
  writeFileSync(join(t, 'usr/big.bin'), randomBytes(3 * 1024 * 1024 + 7));
  writeFileSync(join(t, 'empty'), '');
  writeFileSync(join(t, 'usr/suid'), '#!/bin/sh\n');
  chmodSync(join(t, 'usr/suid'), 0o4755);
  for (const n of [98, 99, 100, 101, 150]) writeFileSync(join(t, 'usr/share/doc', 'n'.repeat(n - 'usr/share/doc/'.length)), `${n}\n`);
  writeFileSync(join(t, 'usr/share/doc', `${'é'.repeat(45)}x`), 'multi-byte\n'); // 106 bytes as a path
  for (const n of [99, 100, 101, 200]) symlinkSync('t'.repeat(n), join(t, `link${n}`));
  ok(larch(['init', `--repo=${repo}`, '--mode=archive']));
  ok(larch(['commit', `--repo=${repo}`, '-b', 'main', '-s', 'tree', '--timestamp=2021-06-01 12:00:00 +0000', '--owner-uid=3000000', '--owner-gid=70000', `--tree=dir=${t}`]));
});
afterAll(async () => {
  await cleanup();
});

describe.runIf(RUN_INTEROP)('larch export with the real ostree', () => {
  beforeAll(() => requireOstree());

  for (const args of [[], ['--subpath=/usr'], ['--prefix=root'], ['--prefix=rootfs/', '--subpath=usr/share'], [`--prefix=${'p'.repeat(95)}/`]]) {
    it(`writes ostree's bytes to a file${args.length ? ` (${args.join(' ').slice(0, 40)})` : ''}`, () => {
      const tag = args.join('').replace(/[^a-z]/g, '').slice(0, 20);
      ok(larch(['export', `--repo=${repo}`, ...args, '-o', join(dir, `l${tag}.tar`), 'main']));
      ok(ostree(['export', `--repo=${repo}`, ...args, '-o', join(dir, `o${tag}.tar`), 'main']));
      expect(readFileSync(join(dir, `l${tag}.tar`)).equals(readFileSync(join(dir, `o${tag}.tar`)))).toBe(true);
    });
  }

  it('streams ostree\'s bytes to stdout, and GNU tar reads them back', () => {
    const mine = larchBytes(['export', `--repo=${repo}`, 'main']);
    expect(mine.code, mine.stderr).toBe(0);
    // In a non-UTF-8 locale ostree writes an empty name for a long non-ASCII path (see the locale test below).
    const theirs = spawnSync('ostree', ['export', `--repo=${repo}`, 'main'], { maxBuffer: 256 * 1024 * 1024, env: { ...process.env, LC_ALL: 'C.UTF-8' } });
    expect(mine.stdout.equals(theirs.stdout)).toBe(true);
    expect(mine.stdout.length % 10240).toBe(0);
    const x = join(dir, 'x');
    mkdirSync(x);
    const tar = spawnSync('tar', ['-x', '-C', x, '--numeric-owner'], { input: mine.stdout, maxBuffer: 16 * 1024 * 1024 });
    expect(tar.status, tar.stderr.toString()).toBe(0);
    expect(readdirSync(join(x, 'usr/share/doc')).length).toBe(6);
    expect(readFileSync(join(x, 'usr/big.bin')).length).toBe(3 * 1024 * 1024 + 7);
  });

  it('writes the UTF-8 names of the tree in any locale, where ostree under LANG=C writes an empty name', () => {
    const mine = larchBytes(['export', `--repo=${repo}`, 'main'], { env: { LC_ALL: undefined, LANG: 'C' } });
    expect(mine.code, mine.stderr).toBe(0);
    expect(mine.stdout.equals(larchBytes(['export', `--repo=${repo}`, 'main']).stdout)).toBe(true);
    const theirs = spawnSync('ostree', ['export', `--repo=${repo}`, 'main'], { maxBuffer: 256 * 1024 * 1024, env: { ...process.env, LC_ALL: undefined, LANG: 'C' } });
    expect(theirs.status).toBe(0);
    const listing = (tarBytes: Buffer): string[] => spawnSync('tar', ['-t'], { input: tarBytes, env: { ...process.env, LC_ALL: 'C.UTF-8' }, encoding: 'utf8' }).stdout.split('\n');
    expect(listing(mine.stdout)).toContain(`usr/share/doc/${'é'.repeat(45)}x`);
    expect(listing(theirs.stdout)).not.toContain(`usr/share/doc/${'é'.repeat(45)}x`);
  });

  it('refuses a missing or non-directory subpath with one line and leaves no file behind', () => {
    const out = join(dir, 'bad.tar');
    expect(expectOneErrorLine(larch(['export', `--repo=${repo}`, '--subpath=/nope', '-o', out, 'main']))).toBe('No such file or directory: /nope');
    expect(expectOneErrorLine(larch(['export', `--repo=${repo}`, '--subpath=/empty', '-o', out, 'main']))).toBe('Not a directory: /empty');
    expect(existsSync(out)).toBe(false);
    expect(readdirSync(dir).filter((n) => n.includes('.tmp-'))).toEqual([]);
    expect(expectOneErrorLine(larch(['export', `--repo=${repo}`, '-o', join(dir, 'no/such/dir.tar'), 'main']))).toContain('No such file or directory');
  });
});
