/**
 * Editing a remote's cookie jar through the repository (`addRemoteCookie`, `deleteRemoteCookie`,
 * `listRemoteCookies`): the jar ostree's CLI writes and reads, junk lines in it, and the hostile
 * inputs refused (remote names that leave the repository, fields that would split a header).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, promises as fsp } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Repo } from '@larch/core-store';
import { interopDescribe, tmpDir, type TmpDir } from '@larch/test-fixtures';
import { addRemoteCookie, deleteRemoteCookie, listRemoteCookies, loadRemoteCookies } from '../src/index.js';

const describeInterop = interopDescribe(describe);
const NOW = new Date('2024-02-29T12:00:00Z');
const IN_25_YEARS = Date.UTC(2049, 1, 28, 12) / 1000; // 29 February → 28th, as GLib

let tmp: TmpDir;
let n = 0;
beforeAll(async () => {
  tmp = await tmpDir('larch-cookie-edit-');
});
afterAll(async () => {
  await tmp?.cleanup();
});
const fresh = (): Promise<Repo> => Repo.init({ path: tmp.join(`r${n++}/repo`), mode: 'archive' });
const jarOf = (repo: Repo, remote = 'origin'): Promise<string> => fsp.readFile(`${repo.path}/${remote}.cookies.txt`, 'utf8');

describe('remote cookie jar editing', () => {
  it('appends cookies in ostree\'s line format, lists them, and deletes one (mode 0644, then 0600)', async () => {
    const repo = await fresh();
    await addRemoteCookie(repo, 'origin', { domain: '127.0.0.1', path: '/', name: 'foo', value: 'bar' }, NOW);
    await addRemoteCookie(repo, 'origin', { domain: '.example.com', path: '/repo', name: 'baz', value: 'a=b' }, NOW);
    expect(await jarOf(repo)).toBe(`127.0.0.1\tFALSE\t/\tFALSE\t${IN_25_YEARS}\tfoo\tbar\n.example.com\tTRUE\t/repo\tFALSE\t${IN_25_YEARS}\tbaz\ta=b\n`);
    expect((await fsp.stat(`${repo.path}/origin.cookies.txt`)).mode & 0o777).toBe(0o644 & ~process.umask());
    expect(await listRemoteCookies(repo, 'origin')).toEqual([
      { domain: '127.0.0.1', flag: 'FALSE', path: '/', secure: 'FALSE', expiration: BigInt(IN_25_YEARS), name: 'foo', value: 'bar' },
      { domain: '.example.com', flag: 'TRUE', path: '/repo', secure: 'FALSE', expiration: BigInt(IN_25_YEARS), name: 'baz', value: 'a=b' },
    ]);
    // What the puller reads from the same jar.
    expect((await loadRemoteCookies(repo, 'origin')).map((c) => c.name)).toEqual(['foo', 'baz']);
    await deleteRemoteCookie(repo, 'origin', { domain: '.example.com', path: '/repo', name: 'baz' });
    expect(await jarOf(repo)).toBe(`127.0.0.1\tFALSE\t/\tFALSE\t${IN_25_YEARS}\tfoo\tbar\n`);
    expect((await fsp.stat(`${repo.path}/origin.cookies.txt`)).mode & 0o777).toBe(0o600);
  });

  it('reads a jar with junk lines as ostree\'s CLI does, and a delete drops the junk', async () => {
    const repo = await fresh();
    const text =
      '# Netscape HTTP Cookie File\n\n' +
      'h\tFALSE\t/\tFALSE\t0\tkeep\t1\n' +
      'h FALSE / FALSE 5 spaced 2\n' +
      'h\tFALSE\t/\tFALSE\tnot-a-number\tx\ty\n' +
      'short\tline\n' +
      'h\tFALSE\t/\tFALSE\t-1\tneg\tv\n' +
      'h\tFALSE\t/\tFALSE\t99999999999999999999999\thuge\tv\n' +
      '\u0000\u0001\u0002 junk\n' +
      'h\tFALSE\t/\tFALSE\t0\tgone\t3\n';
    await fsp.writeFile(`${repo.path}/o.cookies.txt`, text);
    const listed = await listRemoteCookies(repo, 'o');
    expect(listed.map((c) => [c.name, c.expiration])).toEqual([
      ['keep', 0n],
      ['spaced', 5n],
      ['neg', (1n << 64n) - 1n],
      ['huge', (1n << 64n) - 1n],
      ['gone', 0n],
    ]);
    await deleteRemoteCookie(repo, 'o', { domain: 'h', path: '/', name: 'gone' });
    expect(await jarOf(repo, 'o')).toBe('h\tFALSE\t/\tFALSE\t0\tkeep\t1\nh FALSE / FALSE 5 spaced 2\nh\tFALSE\t/\tFALSE\t-1\tneg\tv\nh\tFALSE\t/\tFALSE\t99999999999999999999999\thuge\tv\n');
  });

  it('a delete that matches nothing says so, after rewriting (or creating) the jar as ostree does', async () => {
    const repo = await fresh();
    await expect(deleteRemoteCookie(repo, 'nojar', { domain: 'h', path: '/', name: 'n' })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: 'Cookie not found in jar' });
    expect(await jarOf(repo, 'nojar')).toBe('');
    expect(await listRemoteCookies(repo, 'none')).toEqual([]);
    expect((await fsp.readdir(repo.path)).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('refuses a jar that is not UTF-8', async () => {
    const repo = await fresh();
    await fsp.writeFile(`${repo.path}/o.cookies.txt`, Buffer.from([0x68, 0x09, 0xff, 0xfe, 0x0a]));
    await expect(listRemoteCookies(repo, 'o')).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: 'Invalid UTF-8' });
    await expect(deleteRemoteCookie(repo, 'o', { domain: 'h', path: '/', name: 'n' })).rejects.toMatchObject({ message: 'Invalid UTF-8' });
  });

  it.each(['../evil', 'a/b', '..', ''])('refuses the remote name %j and touches nothing outside the repository', async (name) => {
    const repo = await fresh();
    const outside = `${repo.path}/../evil.cookies.txt`;
    await fsp.writeFile(outside, 'h\tFALSE\t/\tFALSE\t0\tn\tv\n');
    await expect(addRemoteCookie(repo, name, { domain: 'h', path: '/', name: 'n', value: 'v' })).rejects.toMatchObject({ code: 'INVALID_REF' });
    await expect(deleteRemoteCookie(repo, name, { domain: 'h', path: '/', name: 'n' })).rejects.toMatchObject({ code: 'INVALID_REF' });
    await expect(listRemoteCookies(repo, name)).rejects.toMatchObject({ code: 'INVALID_REF' });
    expect(await fsp.readFile(outside, 'utf8')).toBe('h\tFALSE\t/\tFALSE\t0\tn\tv\n');
    expect(existsSync(`${repo.path}/../.evil.cookies.txt`)).toBe(false);
  });

  it('refuses fields it could not read back or that would split a Cookie header, writing nothing', async () => {
    const repo = await fresh();
    const base = { domain: 'h', path: '/', name: 'n', value: 'v' };
    const bad: Array<[Partial<typeof base>, string]> = [
      [{ value: 'a; admin=1' }, "Invalid cookie value 'a; admin=1': it must be non-empty and hold no whitespace or control characters and no ';'"],
      [{ name: 'a=b' }, "Invalid cookie name 'a=b': it must be non-empty and hold no whitespace or control characters and no ';', '='"],
      [{ domain: 'h\tTRUE' }, "Invalid cookie domain 'h?TRUE': it must be non-empty and hold no whitespace or control characters"],
      [{ path: '/\nx' }, "Invalid cookie path '/?x': it must be non-empty and hold no whitespace or control characters"],
      [{ value: '' }, "Invalid cookie value '': it must be non-empty and hold no whitespace or control characters and no ';'"],
    ];
    for (const [over, message] of bad) {
      await expect(addRemoteCookie(repo, 'origin', { ...base, ...over })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message });
    }
    expect(existsSync(`${repo.path}/origin.cookies.txt`)).toBe(false);
  });
});

describeInterop('remote cookie jar editing (against ostree)', () => {
  it('writes the line ostree writes (but for the expiry, taken at another second), and lists a jar ostree wrote', async () => {
    const repo = await fresh();
    const theirs = tmp.join(`o${n++}`);
    execFileSync('ostree', ['init', `--repo=${theirs}`, '--mode=archive']);
    execFileSync('ostree', ['remote', 'add-cookie', `--repo=${theirs}`, 'origin', '.example.com', '/repo', 'baz', 'badger']);
    const jar = await fsp.readFile(`${theirs}/origin.cookies.txt`, 'utf8');
    const expires = Number(jar.split('\t')[4]);
    await addRemoteCookie(repo, 'origin', { domain: '.example.com', path: '/repo', name: 'baz', value: 'badger' });
    expect((await jarOf(repo)).replace(/\t\d{10,}\t/, '\tT\t')).toBe(jar.replace(/\t\d{10,}\t/, '\tT\t'));
    await fsp.copyFile(`${theirs}/origin.cookies.txt`, `${repo.path}/origin.cookies.txt`);
    expect(await listRemoteCookies(repo, 'origin')).toEqual([{ domain: '.example.com', flag: 'TRUE', path: '/repo', secure: 'FALSE', expiration: BigInt(expires), name: 'baz', value: 'badger' }]);
  });
});
