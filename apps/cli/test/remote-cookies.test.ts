/**
 * `remote add-cookie|delete-cookie|list-cookies` side by side with the real ostree: the jar
 * `REPO/NAME.cookies.txt` each leaves (byte for byte but for the 25-years-from-now expiry, and in
 * mode), the listing, and the errors. Then the hostile inputs ostree takes and Larch refuses.
 */
import { existsSync } from 'node:fs';
import { copyFile, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOneErrorLine, larch, ok, ostree, requireOstree, RUN_INTEROP, scratch } from './helpers.js';
import { expectSame, type Places } from './remote-compare.js';

const describeInterop = RUN_INTEROP ? describe : describe.skip;

let dir: string;
let cleanup: () => Promise<void>;
let n = 0;
beforeAll(async () => {
  requireOstree();
  ({ dir, cleanup } = await scratch('larch-remote-cookies-'));
});
afterAll(async () => cleanup());

function repos(): Places {
  const i = n++;
  const places = { R: { ostree: join(dir, `o${i}`), larch: join(dir, `l${i}`) } };
  ok(ostree(['init', `--repo=${places.R.ostree}`, '--mode=archive']));
  ok(ostree(['init', `--repo=${places.R.larch}`, '--mode=archive']));
  return places;
}

/** The jar with each expiry replaced by its distance from now in whole years (25, as ostree writes it). */
async function jar(path: string): Promise<string> {
  const now = Date.now() / 1000;
  return (await readFile(path, 'utf8')).replace(/\t(\d{10,})\t/g, (_m, t: string) => `\t+${Math.round((Number(t) - now) / (365.25 * 86400))}y\t`);
}

async function expectSameJar(p: Places, remote: string): Promise<string> {
  const theirs = join(p.R!.ostree, `${remote}.cookies.txt`);
  const ours = join(p.R!.larch, `${remote}.cookies.txt`);
  const text = await jar(theirs);
  expect(await jar(ours)).toBe(text);
  expect(((await stat(ours)).mode & 0o777).toString(8)).toBe(((await stat(theirs)).mode & 0o777).toString(8));
  return text;
}

describeInterop('remote cookies (against ostree)', () => {
  it('adds, lists and deletes cookies as ostree does, jar and modes included', async () => {
    const p = repos();
    expectSame(['remote', 'add', '--repo={R}', '--no-gpg-verify', 'origin', 'http://127.0.0.1:1/repo'], p);
    expectSame(['remote', 'add-cookie', '--repo={R}', 'origin', '127.0.0.1', '/', 'foo', 'bar'], p);
    expectSame(['remote', 'add-cookie', '--repo={R}', 'origin', '.example.com', '/repo', 'baz', 'badger'], p);
    expect(await expectSameJar(p, 'origin')).toBe('127.0.0.1\tFALSE\t/\tFALSE\t+25y\tfoo\tbar\n.example.com\tTRUE\t/repo\tFALSE\t+25y\tbaz\tbadger\n');
    // The listing of the same jar (the two were written at different seconds); ostree 2022.7 reads
    // it relative to the working directory, so it runs from its repo.
    await copyFile(join(p.R!.ostree, 'origin.cookies.txt'), join(p.R!.larch, 'origin.cookies.txt'));
    const listedTheirs = ok(ostree(['remote', 'list-cookies', 'origin'], { cwd: p.R!.ostree }));
    const listedOurs = ok(larch(['remote', 'list-cookies', `--repo=${p.R!.larch}`, 'origin']));
    expect(listedOurs).toBe(listedTheirs);
    expect(listedOurs).toMatch(/^--\nDomain: 127\.0\.0\.1\nPath: \/\nName: foo\nSecure: FALSE\nExpires: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d \+0000\nValue: bar\n--\n/);
    expectSame(['remote', 'delete-cookie', '--repo={R}', 'origin', '.example.com', '/repo', 'baz'], p);
    expect(await expectSameJar(p, 'origin')).toBe('127.0.0.1\tFALSE\t/\tFALSE\t+25y\tfoo\tbar\n');
    expect(expectSame(['remote', 'delete-cookie', '--repo={R}', 'origin', '.example.com', '/repo', 'baz'], p).error).toBe('error: Cookie not found in jar');
    await expectSameJar(p, 'origin');
  });

  it('rewrites a jar as ostree does: lines that are no cookie are dropped, a missing jar is created empty', async () => {
    const p = repos();
    const text = '# Netscape HTTP Cookie File\n\nh\tFALSE\t/\tFALSE\t0\tkeep\t1\nh FALSE / FALSE 5 spaced 2\nh\tFALSE\t/\tFALSE\tnot-a-number\tx\ty\nh\tFALSE\t/\tFALSE\t0\tgone\t3\n';
    for (const r of [p.R!.ostree, p.R!.larch]) await writeFile(join(r, 'o.cookies.txt'), text, { mode: 0o644 });
    expectSame(['remote', 'delete-cookie', '--repo={R}', 'o', 'h', '/', 'gone'], p);
    expect(await expectSameJar(p, 'o')).toBe('h\tFALSE\t/\tFALSE\t0\tkeep\t1\nh FALSE / FALSE 5 spaced 2\n');
    expect(expectSame(['remote', 'delete-cookie', '--repo={R}', 'nojar', 'h', '/', 'n'], p).error).toBe('error: Cookie not found in jar');
    expect(await expectSameJar(p, 'nojar')).toBe('');
    expect(expectSame(['remote', 'list-cookies', '--repo={R}', 'none'], p).stdout).toBe('');
  });

  it('reports missing arguments as ostree does', () => {
    const p = repos();
    expect(expectSame(['remote', 'add-cookie', '--repo={R}', 'o', 'h', '/', 'n'], p).error).toBe('error: NAME, DOMAIN, PATH, COOKIE_NAME and VALUE must be specified');
    expect(expectSame(['remote', 'delete-cookie', '--repo={R}', 'o', 'h', '/'], p).error).toBe('error: NAME, DOMAIN, PATH and COOKIE_NAME must be specified');
    expect(expectSame(['remote', 'list-cookies', '--repo={R}'], p).error).toBe('error: NAME must be specified');
  });
});

describe('remote cookies: hostile input', () => {
  it('refuses a remote name that would put the jar outside the repository', async () => {
    const repo = join(dir, `h${n++}`);
    ok(larch(['init', `--repo=${repo}`, '--mode=archive']));
    expect(expectOneErrorLine(larch(['remote', 'add-cookie', `--repo=${repo}`, '../escaped', 'h', '/', 'n', 'v']))).toBe('Invalid remote name ../escaped');
    expect(existsSync(join(repo, '..', 'escaped.cookies.txt'))).toBe(false);
    expect(expectOneErrorLine(larch(['remote', 'delete-cookie', `--repo=${repo}`, '../escaped', 'h', '/', 'n']))).toBe('Invalid remote name ../escaped');
    expect(existsSync(join(repo, '..', 'escaped.cookies.txt'))).toBe(false);
  });

  it('refuses fields that would add a line to the jar or a cookie to the header', async () => {
    const repo = join(dir, `h${n++}`);
    ok(larch(['init', `--repo=${repo}`, '--mode=archive']));
    const injected = 'v\nevil.example\tTRUE\t/\tFALSE\t0\tsession\tstolen';
    expect(expectOneErrorLine(larch(['remote', 'add-cookie', `--repo=${repo}`, 'o', 'h', '/', 'n', injected]))).toMatch(/^Invalid cookie value 'v\?evil\.example\?TRUE/);
    expect(expectOneErrorLine(larch(['remote', 'add-cookie', `--repo=${repo}`, 'o', 'h', '/', 'n', 'a; admin=1']))).toMatch(/^Invalid cookie value 'a; admin=1'/);
    expect(expectOneErrorLine(larch(['remote', 'add-cookie', `--repo=${repo}`, 'o', 'h o', '/', 'n', 'v']))).toMatch(/^Invalid cookie domain 'h o'/);
    expect(existsSync(join(repo, 'o.cookies.txt'))).toBe(false);
  });
});
