import { lstat, readFile, readlink, stat } from 'node:fs/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { tmpDirs } from './tmp.js';
import { SeededBytes, makeTree, writeSeededFile } from './tree.js';
import { ALL_FIXTURE_KINDS, FIXTURE_KINDS, canonicalSpec, fixtureSpec, makeFixtureTree } from './fixtures.js';
import { compareTrees, sha256File } from './compare.js';

const tmp = tmpDirs();
afterAll(tmp.cleanupAll);

describe('makeTree', () => {
  it('creates files, dirs, symlinks and hardlinks with exact modes', async () => {
    const d = await tmp.make();
    await makeTree(d.join('t'), {
      'a.txt': 'A',
      'ro/file': { type: 'file', content: 'x', mode: 0o444 },
      ro: { type: 'dir', mode: 0o555 },
      'suid': { type: 'file', content: 's', mode: 0o4755 },
      'sticky': { type: 'dir', mode: 0o1777 },
      'ln': { type: 'symlink', target: '../outside' },
      'hl': { type: 'hardlink', to: 'a.txt' },
    });
    expect((await stat(d.join('t/ro'))).mode & 0o7777).toBe(0o555);
    expect((await stat(d.join('t/ro/file'))).mode & 0o7777).toBe(0o444);
    expect((await stat(d.join('t/suid'))).mode & 0o7777).toBe(0o4755);
    expect((await stat(d.join('t/sticky'))).mode & 0o7777).toBe(0o1777);
    expect((await stat(d.join('t'))).mode & 0o7777).toBe(0o755);
    expect(await readlink(d.join('t/ln'))).toBe('../outside');
    const [a, hl] = await Promise.all([stat(d.join('t/a.txt')), stat(d.join('t/hl'))]);
    expect(hl.ino).toBe(a.ino);
    expect(a.nlink).toBe(2);
  });

  it('gives implicit parent directories 0755 whatever the umask', async () => {
    const d = await tmp.make();
    const old = process.umask(0o077);
    try {
      await makeTree(d.join('t'), { 'x/y/z.txt': 'z' });
    } finally {
      process.umask(old);
    }
    expect((await stat(d.join('t/x'))).mode & 0o7777).toBe(0o755);
    expect((await stat(d.join('t/x/y'))).mode & 0o7777).toBe(0o755);
    expect((await stat(d.join('t/x/y/z.txt'))).mode & 0o7777).toBe(0o644);
  });

  it('rejects spec paths that leave the tree', async () => {
    const d = await tmp.make();
    await expect(makeTree(d.join('t'), { '../evil': 'x' })).rejects.toThrow(/bad spec path/);
    await expect(makeTree(d.join('t2'), { '/abs': 'x' })).rejects.toThrow(/bad spec path/);
  });
});

describe('SeededBytes', () => {
  it('is deterministic per seed and differs across seeds', () => {
    const a = new SeededBytes(7).fill(new Uint8Array(1027));
    const b = new SeededBytes(7).fill(new Uint8Array(1027));
    const c = new SeededBytes(8).fill(new Uint8Array(1027));
    expect(Buffer.from(a).equals(Buffer.from(b))).toBe(true);
    expect(Buffer.from(a).equals(Buffer.from(c))).toBe(false);
  });

  it('continues the sequence across fills (chunking does not change the stream)', () => {
    const whole = new SeededBytes(3).fill(new Uint8Array(64));
    const g = new SeededBytes(3);
    const parts = Buffer.concat([g.fill(new Uint8Array(32)), g.fill(new Uint8Array(32))]);
    expect(parts.equals(Buffer.from(whole))).toBe(true);
  });

  it('writeSeededFile streams the same bytes as one fill', async () => {
    const d = await tmp.make();
    const size = (1 << 20) + 4093; // crosses a chunk boundary
    await writeSeededFile(d.join('f'), size, 99);
    const expected = new SeededBytes(99).fill(new Uint8Array(size));
    const got = await readFile(d.join('f'));
    expect(got.length).toBe(size);
    expect(got.equals(Buffer.from(expected))).toBe(true);
  });
});

describe('makeFixtureTree', () => {
  it.each(FIXTURE_KINDS)('builds %s identically twice', async (kind) => {
    const d = await tmp.make();
    await makeFixtureTree(d.join('a'), kind);
    await makeFixtureTree(d.join('b'), kind);
    expect(await compareTrees(d.join('a'), d.join('b'))).toEqual([]);
  });

  it('refuses the large file without the flag', async () => {
    const d = await tmp.make();
    await expect(makeFixtureTree(d.join('t'), 'large-file')).rejects.toThrow(/large: true/);
    expect(ALL_FIXTURE_KINDS).toContain('large-file');
  });

  it('covers the required modes, names and link kinds', async () => {
    const d = await tmp.make();
    await makeFixtureTree(d.join('m'), 'mixed');
    const mode = async (p: string): Promise<number> => (await lstat(d.join('m', p))).mode & 0o7777;
    expect(await mode('modes/setuid-04755')).toBe(0o4755);
    expect(await mode('modes/setgid-02755')).toBe(0o2755);
    expect(await mode('modes/sticky-01777')).toBe(0o1777);
    expect(await mode('modes/readonly-0444')).toBe(0o444);
    expect(await mode('modes/group-0640')).toBe(0o640);
    expect(await readlink(d.join('m/symlinks/dangling'))).toBe('does-not-exist');
    expect((await readlink(d.join('m/symlinks/absolute'))).startsWith('/')).toBe(true);
    expect(await readFile(d.join('m/unicode/caf\u00e9'), 'utf8')).toBe('nfc\n');
    expect(await readFile(d.join('m/unicode/cafe\u0301'), 'utf8')).toBe('nfd\n');
    expect(await readFile(d.join('m/odd/-rf'), 'utf8')).toBe('dash rf\n');
    expect(await readFile(d.join('m/odd/--x'), 'utf8')).toBe('double dash\n');
    const [o, s] = await Promise.all([stat(d.join('m/hardlinks/original')), stat(d.join('m/hardlinks/sub/third-name'))]);
    expect(s.ino).toBe(o.ino);
    expect((await stat(d.join('m/nested/empty-dir'))).isDirectory()).toBe(true);
  });

  it('canonical variants keep every mode within 0755', async () => {
    const d = await tmp.make();
    const spec = await makeFixtureTree(d.join('c'), 'modes', { canonical: true });
    expect((await stat(d.join('c/setuid-04755'))).mode & 0o7777).toBe(0o755);
    expect((await stat(d.join('c/sticky-01777'))).mode & 0o7777).toBe(0o755);
    expect((await stat(d.join('c/group-0640'))).mode & 0o7777).toBe(0o640);
    expect(canonicalSpec(spec)).toEqual(spec);
    expect(fixtureSpec('modes')['setuid-04755']).toMatchObject({ mode: 0o4755 });
  });
});

describe('sha256File', () => {
  it('hashes by streaming', async () => {
    const d = await tmp.make();
    await makeTree(d.path + '/t', { f: 'hello\n' });
    expect(await sha256File(d.join('t/f'))).toBe('5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03');
  });
});
