// Dates that depend on the locale and time zone, side by side with the real `ostree` 2022.7:
// GPG signature dates in `show` (GLib's `%c`: U+2007 before a one-digit day in UTF-8 locales,
// `?` in C, the locale's own layout and names elsewhere) and `summary --view` timestamps (local
// time with GLib's `%:::z`). The signature is made at a fixed instant on day 7 of the month
// (gpg's faked-system-time), so the padded day is always exercised. en_US.UTF-8 and de_DE.UTF-8
// are compiled into a scratch LOCPATH with localedef; where glibc's locale sources are missing
// those cases are skipped (failing in CI).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { interopDescribe } from '@larch/test-fixtures';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IN_CI, larch, ok, ostree, requireOstree, RUN_INTEROP, scratch } from './helpers.js';

const HAVE_GPG = spawnSync('gpg', ['--version'], { encoding: 'utf8' }).status === 0;
const describeGpg = HAVE_GPG || IN_CI ? describe : describe.skip;

/** Sat 2020-03-07 18:32:20 UTC. */
const SIGNED_AT = '20200307T183220';
const FS = '\u2007';

let dir = '';
let cleanup: () => Promise<void> = async () => undefined;
let home = '';
let repo = '';
let commit = '';
let locpath = '';
const compiled = new Set<string>();

function gpg(...args: string[]): string {
  if (!HAVE_GPG) throw new Error('gpg is required for the signing tests (CI=true): apt-get install -y gnupg');
  const r = spawnSync('gpg', ['--homedir', home, '--batch', ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`gpg ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout;
}

/** Compile a glibc locale into LOCPATH; false when this system cannot. */
function compileLocale(name: string): boolean {
  const [lang, charset] = name.split('.');
  const out = join(locpath, name);
  spawnSync('localedef', ['-i', lang, '-f', charset, out], { encoding: 'utf8' });
  return existsSync(join(out, 'LC_TIME')) && existsSync(join(out, 'LC_CTYPE'));
}

/**
 * The environment of one case: the locale variables given and no others (a developer's own
 * LC_TIME must not leak in), LOCPATH for the compiled locales.
 */
function localeEnv(vars: Record<string, string>, tz: string): Record<string, string | undefined> {
  const env: Record<string, string | undefined> = { TZ: tz, LOCPATH: locpath, LANGUAGE: undefined, CHARSET: undefined, LANG: undefined };
  for (const k of Object.keys(process.env)) if (k.startsWith('LC_')) env[k] = undefined;
  env.LC_ALL = undefined;
  return { ...env, ...vars };
}

beforeAll(async () => {
  ({ dir, cleanup } = await scratch('larch-show-locale-'));
  locpath = join(dir, 'locales');
  mkdirSync(locpath);
  for (const name of ['en_US.UTF-8', 'de_DE.UTF-8']) if (compileLocale(name)) compiled.add(name);
  const tree = join(dir, 'tree');
  mkdirSync(join(tree, 'etc'), { recursive: true });
  writeFileSync(join(tree, 'etc/release'), 'locale test\n');
  repo = join(dir, 'repo');
  ok(larch(['init', `--repo=${repo}`, '--mode=archive']));
  // A commit from year 385 (larch refuses to write one; ostree does, and both read it).
  if (RUN_INTEROP) ok(ostree(['commit', `--repo=${repo}`, '-b', 'old', '-s', 'year 385', '--timestamp=@-50000000000', tree]));
  if (HAVE_GPG) {
    home = join(dir, 'gnupg');
    mkdirSync(home, { mode: 0o700 });
    gpg('--faked-system-time', '20200101T000000', '--passphrase', '', '--quick-gen-key', 'Locale Test <locale@example.com>', 'ed25519', 'sign', 'never');
    const keyId = /^pub:[^:]*:[^:]*:[^:]*:([0-9A-F]{16}):/m.exec(gpg('--list-keys', '--with-colons'))![1];
    writeFileSync(join(dir, 'pub.asc'), gpg('--armor', '--export', keyId));
    // From now on every signature this homedir makes carries SIGNED_AT ('!' stops the clock).
    writeFileSync(join(home, 'gpg.conf'), `faked-system-time ${SIGNED_AT}!\n`);
    commit = ok(larch(['commit', `--repo=${repo}`, '-b', 'main', '-s', 'signed on the 7th', '--timestamp=2020-03-05 01:02:03 +0000', `--gpg-sign=${keyId}`, `--gpg-homedir=${home}`, tree])).trim();
    ok(larch(['remote', 'add', `--repo=${repo}`, `--gpg-import=${join(dir, 'pub.asc')}`, 'self', 'file:///nonexistent']));
  }
  ok(larch(['summary', '-u', `--repo=${repo}`]));
}, 120_000);

afterAll(async () => {
  if (home) spawnSync('gpgconf', ['--homedir', home, '--kill', 'gpg-agent']);
  await cleanup();
});

interface ShowCase {
  vars: Record<string, string>;
  tz: string;
  /** What ostree prints after "Signature made ", pinned so a change in either tool shows. */
  date: string;
  needs?: string;
}

const CASES: ShowCase[] = [
  { vars: { LANG: 'C' }, tz: 'UTC', date: 'Sat Mar ?7 18:32:20 2020' },
  { vars: { LC_ALL: 'POSIX' }, tz: 'America/St_Johns', date: 'Sat Mar ?7 15:02:20 2020' },
  { vars: { LANG: 'C.UTF-8' }, tz: 'UTC', date: `Sat Mar ${FS}7 18:32:20 2020` },
  { vars: { LC_ALL: 'C.UTF-8', LANG: 'C' }, tz: 'Asia/Kolkata', date: `Sun Mar ${FS}8 00:02:20 2020` },
  // $CHARSET overrides the charset GLib converts to.
  { vars: { LC_ALL: 'C', CHARSET: 'UTF-8' }, tz: 'UTC', date: `Sat Mar ${FS}7 18:32:20 2020` },
  // One category naming a locale the system lacks: setlocale(LC_ALL, "") fails, all of it is C.
  { vars: { LANG: 'C.UTF-8', LC_MESSAGES: 'xx_XX.UTF-8' }, tz: 'UTC', date: 'Sat Mar ?7 18:32:20 2020' },
  { vars: { LANG: 'en_US.UTF-8' }, tz: 'UTC', date: 'Sat 07 Mar 2020 06:32:20 PM UTC', needs: 'en_US.UTF-8' },
  { vars: { LANG: 'en_US.UTF-8' }, tz: 'America/St_Johns', date: 'Sat 07 Mar 2020 03:02:20 PM NST', needs: 'en_US.UTF-8' },
  { vars: { LANG: 'de_DE.UTF-8' }, tz: 'Europe/Berlin', date: 'Sa 07 Mär 2020 19:32:20 CET', needs: 'de_DE.UTF-8' },
  // Names from LC_TIME, charset from LC_CTYPE (ASCII here): the ä cannot be printed.
  { vars: { LANG: 'C', LC_TIME: 'de_DE.UTF-8' }, tz: 'UTC', date: 'Sa 07 M?r 2020 18:32:20 UTC', needs: 'de_DE.UTF-8' },
];

const label = (c: ShowCase): string => `${Object.entries(c.vars).map(([k, v]) => `${k}=${v}`).join(' ')} TZ=${c.tz}`;

interopDescribe(describeGpg)('signature dates in show follow the locale as ostree prints them', () => {
  beforeAll(() => requireOstree());

  it.for(CASES.map((c) => [label(c), c] as const))('%s', ([, c], ctx) => {
    if (c.needs !== undefined && !compiled.has(c.needs)) {
      if (IN_CI) throw new Error(`cannot compile the ${c.needs} locale with localedef (CI=true): apt-get install -y locales`);
      ctx.skip();
    }
    const env = localeEnv(c.vars, c.tz);
    const theirs = ok(ostree(['show', `--repo=${repo}`, '--gpg-verify-remote=self', commit], { env }));
    expect(theirs).toContain(`\n  Signature made ${c.date} using EdDSA key ID `);
    expect(ok(larch(['show', `--repo=${repo}`, '--gpg-verify-remote=self', commit], { env }))).toBe(theirs);
  });

  it('log prints the same signature block as show', (ctx) => {
    if (!compiled.has('en_US.UTF-8')) {
      if (IN_CI) throw new Error('cannot compile the en_US.UTF-8 locale with localedef (CI=true)');
      ctx.skip();
    }
    const env = localeEnv({ LANG: 'en_US.UTF-8' }, 'Europe/Berlin');
    const block = ok(ostree(['show', `--repo=${repo}`, '--gpg-verify-remote=self', commit], { env })).split('\nFound ')[1];
    expect(block).toContain('Signature made Sat 07 Mar 2020 07:32:20 PM CET using EdDSA');
    expect(ok(larch(['log', `--repo=${repo}`, '--gpg-verify-remote=self', commit], { env }))).toContain(`\nFound ${block}`);
  });
});

interopDescribe(describe)('summary --view timestamps in local time, as ostree prints them', () => {
  beforeAll(() => requireOstree());

  // Kolkata and St. John's have half-hour offsets; Berlin had +00:53:28 in year 385.
  it.for(['UTC', 'Asia/Kolkata', 'America/St_Johns', 'Europe/Berlin'])('TZ=%s', (tz) => {
    const env = localeEnv({ LANG: 'C.UTF-8' }, tz);
    const theirs = ok(ostree(['summary', '--view', `--repo=${repo}`], { env }));
    expect(theirs).toMatch(/Timestamp \(ostree\.commit\.timestamp\): 385-07-25T/);
    expect(ok(larch(['summary', '--view', `--repo=${repo}`], { env }))).toBe(theirs);
  });
});
