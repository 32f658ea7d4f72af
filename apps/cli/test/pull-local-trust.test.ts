/**
 * Which local sources `larch pull-local` trusts, side by side with `ostree pull-local` (2022.7):
 * a source owned by the invoking user is trusted as ostree trusts every local source (a corrupted
 * object is copied as it is, converted between modes; fsck finds it), `--untrusted` verifies in
 * both, and a source owned by another user is verified by larch unless `--trust-source`.
 * Also content hardlinked between bare-user repositories and from bare-user into bare-user-only,
 * and `--bareuseronly-files`.
 */
import { spawnSync } from 'node:child_process';
import { chownSync, lstatSync, mkdirSync, readdirSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exists, IN_CI, larch, ok, ostree, requireOstree, RUN_INTEROP, scratch, type RunResult } from './helpers.js';

const IS_ROOT = process.getuid?.() === 0;

/** Every content object of a bare-user repository, relative to it. */
function fileObjects(repo: string): string[] {
  const out: string[] = [];
  for (const d of readdirSync(join(repo, 'objects'))) {
    for (const f of readdirSync(join(repo, 'objects', d))) if (f.endsWith('.file')) out.push(join('objects', d, f));
  }
  return out.sort();
}

describe.skipIf(!RUN_INTEROP)('pull-local: trusted and untrusted local sources (interop)', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let tree: string;
  let n = 0;
  const fresh = (mode: string): { o: string; l: string } => {
    n++;
    const o = join(dir, `o${n}`);
    const l = join(dir, `l${n}`);
    ok(ostree(['init', `--repo=${o}`, `--mode=${mode}`]));
    ok(larch(['init', `--repo=${l}`, `--mode=${mode}`]));
    return { o, l };
  };
  const both = (r: { o: string; l: string }, args: string[], larchArgs: string[] = args): { o: RunResult; l: RunResult } => ({
    o: ostree(['pull-local', `--repo=${r.o}`, ...args]),
    l: larch(['pull-local', `--repo=${r.l}`, ...larchArgs]),
  });
  /** A bare-user repository made by ostree, with one regular file whose bytes are then swapped. */
  const corruptedSource = (name: string): { src: string; checksum: string; bad: string } => {
    const src = join(dir, name);
    ok(ostree(['init', `--repo=${src}`, '--mode=bare-user']));
    ok(ostree(['commit', `--repo=${src}`, '-b', 'main', `--tree=dir=${tree}`, '-s', 'x', '--timestamp=2020-01-01T00:00:00Z']));
    const sum = ok(ostree(['ls', `--repo=${src}`, '-C', 'main', '/data'])).trim().split(/\s+/)[4];
    const obj = join(src, 'objects', sum.slice(0, 2), `${sum.slice(2)}.file`);
    // Same inode and size, user.ostreemeta kept: only the bytes differ from the name.
    const bad = 'corrupted data!\n';
    writeFileSync(obj, bad);
    return { src, checksum: sum, bad };
  };

  beforeAll(async () => {
    requireOstree();
    ({ dir, cleanup } = await scratch('larch-pull-local-trust-'));
    tree = join(dir, 'tree');
    mkdirSync(join(tree, 'sub'), { recursive: true });
    writeFileSync(join(tree, 'data'), 'original data!!\n');
    writeFileSync(join(tree, 'sub', 'other'), 'another file\n'.repeat(50));
  });
  afterAll(async () => {
    await cleanup?.();
  });

  it('a corrupted object of a source owned by the user: copied into archive as ostree copies it (fsck finds it in both); --untrusted refuses it in both', () => {
    const { src, checksum, bad } = corruptedSource('own-src');
    const r = fresh('archive');
    const { o, l } = both(r, [src, 'main']);
    expect(o.code).toBe(0);
    expect(l.code, l.stderr).toBe(0);
    expect(l.stdout).toBe(o.stdout);
    // The corrupted bytes, under the original name, in both.
    expect(ok(larch(['cat', `--repo=${r.l}`, 'main', '/data']))).toBe(bad);
    expect(ok(ostree(['cat', `--repo=${r.o}`, 'main', '/data']))).toBe(bad);
    const fo = ostree(['fsck', `--repo=${r.o}`]);
    const fl = larch(['fsck', `--repo=${r.l}`]);
    expect(fo.code).toBe(1);
    expect(fl.code).toBe(1);
    expect(fo.stderr).toContain(checksum);
    expect(fl.stderr).toContain(checksum);

    // The same source with --untrusted: both refuse the object, naming it.
    const u = fresh('archive');
    const { o: uo, l: ul } = both(u, ['--untrusted', src, 'main']);
    expect(uo.code).toBe(1);
    expect(ul.code).toBe(1);
    expect(uo.stderr).toMatch(new RegExp(`Corrupted.*${checksum}`));
    expect(ul.stderr).toMatch(new RegExp(`^error: [^\\n]*Corrupted[^\\n]*${checksum}[^\\n]*\\n$`));
    expect(ostree(['rev-parse', `--repo=${u.l}`, 'main']).code).toBe(1);
  });

  it.skipIf(!IS_ROOT && !IN_CI)('a source owned by another user is verified (ostree copies it), unless --trust-source', () => {
    const { src, checksum, bad } = corruptedSource('other-src');
    // Owned by the user, the same source is copied (as above); owned by nobody, it is checked.
    chownSync(src, 65534, 65534);
    expect(statSync(src).uid).toBe(65534);
    const r = fresh('archive');
    const { o, l } = both(r, [src, 'main']);
    expect(o.code).toBe(0);
    expect(l.code).toBe(1);
    expect(l.stderr).toMatch(new RegExp(`^error: [^\\n]*Corrupted[^\\n]*${checksum}[^\\n]*\\n$`));
    const t = fresh('archive');
    const { o: o2, l: l2 } = both(t, [src, 'main'], ['--trust-source', src, 'main']);
    expect(o2.code).toBe(0);
    expect(l2.code, l2.stderr).toBe(0);
    expect(l2.stdout).toBe(o2.stdout);
    expect(ok(larch(['cat', `--repo=${t.l}`, 'main', '/data']))).toBe(bad);
  });

  it('bare-user to bare-user: content hardlinked as by ostree, trusted and --untrusted', () => {
    const src = join(dir, 'link-src');
    ok(ostree(['init', `--repo=${src}`, '--mode=bare-user']));
    ok(ostree(['commit', `--repo=${src}`, '-b', 'main', `--tree=dir=${tree}`, '-s', 'x', '--timestamp=2020-01-01T00:00:00Z']));
    const objects = fileObjects(src);
    expect(objects.length).toBe(2);
    for (const args of [[src, 'main'], ['--untrusted', src, 'main']]) {
      const r = fresh('bare-user');
      const { o, l } = both(r, args);
      expect(o.code).toBe(0);
      expect(l.code, l.stderr).toBe(0);
      expect(l.stdout).toBe(o.stdout);
      for (const f of objects) {
        expect(statSync(join(r.o, f)).ino).toBe(statSync(join(src, f)).ino);
        expect(statSync(join(r.l, f)).ino, `${f} hardlinked`).toBe(statSync(join(src, f)).ino);
      }
      ok(larch(['fsck', `--repo=${r.l}`]));
    }
  });

  /**
   * Which content objects of `src` each destination holds by hardlink: for every object, whether
   * ostree's and larch's copies are the source's inode, and their link counts (the same in both).
   */
  const expectLinkedAsOstree = (src: string, r: { o: string; l: string }, objects: string[]): Map<string, boolean> => {
    const linked = new Map<string, boolean>();
    for (const f of objects) {
      const s = statSync(join(src, f)).ino;
      // bare-user-only stores a symlink as a symlink.
      const o = lstatSync(join(r.o, f));
      const l = lstatSync(join(r.l, f));
      expect(l.ino === s, `${f} hardlinked as by ostree`).toBe(o.ino === s);
      expect(l.nlink, `${f} link count`).toBe(o.nlink);
      linked.set(f, o.ino === s);
    }
    return linked;
  };
  /** The object path of `path` in commit `ref` of `repo`. */
  const objectOf = (repo: string, ref: string, path: string): string => {
    const sum = ok(ostree(['ls', `--repo=${repo}`, '-C', ref, path])).trim().split(/\s+/)[4];
    return join('objects', sum.slice(0, 2), `${sum.slice(2)}.file`);
  };

  it('bare-user to bare-user-only: regular files hardlinked as by ostree, symlinks copied, trusted and --untrusted', () => {
    const src = join(dir, 'conv-src');
    const files = join(dir, 'conv-files');
    mkdirSync(files);
    writeFileSync(join(files, 'afile'), 'afile\n');
    writeFileSync(join(files, 'group-writable'), 'shared\n', { mode: 0o664 });
    writeFileSync(join(files, 'tool'), '#!/bin/sh\n', { mode: 0o755 });
    symlinkSync('afile', join(files, 'afile-link'));
    ok(ostree(['init', `--repo=${src}`, '--mode=bare-user']));
    ok(ostree(['commit', `--repo=${src}`, '--canonical-permissions', '-b', 'testtree', `--tree=dir=${files}`, '-s', 'x', '--timestamp=2020-01-01T00:00:00Z']));
    const objects = fileObjects(src);
    expect(objects.length).toBe(4);
    for (const args of [[src], ['--untrusted', src]]) {
      const r = fresh('bare-user-only');
      const { o, l } = both(r, args);
      expect(o.code, o.stderr).toBe(0);
      expect(l.code, l.stderr).toBe(0);
      expect(l.stdout).toBe(o.stdout);
      const linked = expectLinkedAsOstree(src, r, objects);
      expect(linked.get(objectOf(src, 'testtree', '/afile'))).toBe(true);
      expect(linked.get(objectOf(src, 'testtree', '/group-writable'))).toBe(true);
      expect(linked.get(objectOf(src, 'testtree', '/tool'))).toBe(true);
      expect(linked.get(objectOf(src, 'testtree', '/afile-link'))).toBe(false);
      ok(ostree(['fsck', '-q', `--repo=${r.l}`]));
      ok(larch(['fsck', '-q', `--repo=${r.l}`]));
      expect(ok(larch(['cat', `--repo=${r.l}`, 'testtree', '/afile']))).toBe('afile\n');
    }
  });

  it('bare-user to bare-user-only: objects bare-user-only cannot hold (owner, xattr, setuid) linked from a trusted source as by ostree; --untrusted refuses them', () => {
    const src = join(dir, 'odd-src');
    const files = join(dir, 'odd-files');
    mkdirSync(files);
    writeFileSync(join(files, 'plain'), 'plain\n');
    writeFileSync(join(files, 'tagged'), 'tagged\n');
    const attr = spawnSync('setfattr', ['-n', 'user.larch', '-v', 'yes', join(files, 'tagged')], { encoding: 'utf8' });
    expect(attr.status, attr.stderr).toBe(0);
    writeFileSync(join(dir, 'odd-statoverride.txt'), '2048 /setuid\n');
    writeFileSync(join(files, 'setuid'), 'setuid\n');
    ok(ostree(['init', `--repo=${src}`, '--mode=bare-user']));
    ok(ostree(['commit', `--repo=${src}`, '-b', 'xattr', `--tree=dir=${files}`, `--statoverride=${join(dir, 'odd-statoverride.txt')}`, '-s', 'x', '--timestamp=2020-01-01T00:00:00Z']));
    ok(ostree(['commit', `--repo=${src}`, '--owner-uid=1000', '--owner-gid=1000', '-b', 'owned', `--tree=dir=${files}`, '--no-xattrs', '-s', 'x', '--timestamp=2020-01-01T00:00:00Z']));
    const odd = [objectOf(src, 'xattr', '/tagged'), objectOf(src, 'xattr', '/setuid'), objectOf(src, 'owned', '/plain')];
    const r = fresh('bare-user-only');
    const { o, l } = both(r, [src, 'xattr', 'owned']);
    expect(o.code, o.stderr).toBe(0);
    expect(l.code, l.stderr).toBe(0);
    expect(l.stdout).toBe(o.stdout);
    const linked = expectLinkedAsOstree(src, r, fileObjects(src));
    for (const f of [...odd, objectOf(src, 'xattr', '/plain')]) expect(linked.get(f), f).toBe(true);
    // Under its bare-user name, read with owner 0 and no xattrs: fsck of either repository finds it.
    const fo = ostree(['fsck', `--repo=${r.o}`]);
    const fl = larch(['fsck', `--repo=${r.l}`]);
    expect(fo.code).toBe(1);
    expect(fl.code).toBe(1);
    expect(fl.stderr).toMatch(/Corrupted file object/);

    // Untrusted, larch links only what bare-user-only reads as the named object: the others go to
    // the copy, which refuses them in one line (ostree links them all).
    const sumOf = (f: string): string => f.slice(8, 10) + f.slice(11, 73);
    for (const [ref, bad] of [['xattr', [odd[0], odd[1]]], ['owned', [odd[2]]]] as const) {
      const u = fresh('bare-user-only');
      const { o: uo, l: ul } = both(u, ['--untrusted', src, ref]);
      expect(uo.code, uo.stderr).toBe(0);
      expect(ul.code).toBe(1);
      const line = /^error: ([^\n]*)\n$/.exec(ul.stderr)?.[1] ?? '';
      expect(bad.some((f) => line.includes(sumOf(f))), ul.stderr).toBe(true);
      expect(line).toMatch(/bare-user-only repositories cannot store ownership or xattrs|invalid mode 0104644 with bits 04000/);
      for (const f of bad) expect(exists(join(u.l, f)), f).toBe(false);
      expect(ostree(['rev-parse', `--repo=${u.l}`, ref]).code).toBe(1);
    }
  });

  it('--bareuseronly-files: a setuid file is refused in ostree\'s words', () => {
    const src = join(dir, 'suid-src');
    const files = join(dir, 'suid-files');
    mkdirSync(files);
    writeFileSync(join(files, 'some-setuid'), 'a setuid file\n');
    writeFileSync(join(dir, 'statoverride.txt'), '2048 /some-setuid\n');
    ok(ostree(['init', `--repo=${src}`, '--mode=archive']));
    ok(ostree(['commit', `--repo=${src}`, '-b', 'suid', `--statoverride=${join(dir, 'statoverride.txt')}`, `--tree=dir=${files}`, '-s', 'x']));
    const r = fresh('bare-user');
    const { o, l } = both(r, ['--bareuseronly-files', src, 'suid']);
    expect(o.code).toBe(1);
    expect(l.code).toBe(1);
    const words = /Content object [0-9a-f]{64}: invalid mode 0104644 with bits 04000/;
    expect(o.stderr).toMatch(words);
    expect(l.stderr).toMatch(words);
    expect(ostree(['rev-parse', `--repo=${r.l}`, 'suid']).code).toBe(1);
  });
});
