/**
 * Pull features side by side with the real ostree, over OSTree's own test server: cookies from
 * `remote add-cookie` sent by `pull` and `remote refs` (the server refuses requests without
 * them), the summary cache (`tmp/cache/summaries/REMOTE` and `.sig`, `--cache-dir`, reuse while
 * summary.sig is unchanged, `prune` of a deleted remote's cache, nothing cached when the
 * signature is bad), `pull --subpath` given twice and `ls` of the partial commit, and
 * `pull-local --remote --gpg-verify` with a remote whose URL is a relative path.
 */
import { spawnSync } from 'node:child_process';
import { chmod, cp, mkdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exists, larch, ok, ostree, requireOstree, RUN_INTEROP, scratch } from './helpers.js';
import { expectSame, runBoth, startTrivialHttpd, type Places } from './remote-compare.js';

const describeInterop = RUN_INTEROP ? describe : describe.skip;
const GPG_HOME = '/usr/libexec/installed-tests/libostree/gpghome';
const GPG_KEY = '7FCA23D8472CDAFA';
const GPG_PUBKEY = `${GPG_HOME}/key1.asc`;
/** The cache is what these tests look at: make sure no outer setting turns it off. */
const CACHE_ON = { env: { OSTREE_SKIP_CACHE: undefined } };

let dir: string;
let cleanup: () => Promise<void>;
let plain: { url: string; stop: () => void } | null = null;
let cookieServer: { url: string; stop: () => void } | null = null;
let gpgHome = '';
let n = 0;

/** Run gpg-using ostree commands without capturing output (the agent would hold the pipes), then stop the agent. */
function withGpg(args: string[]): void {
  const r = spawnSync('ostree', args, { stdio: 'ignore' });
  spawnSync('gpgconf', ['--homedir', gpgHome, '--kill', 'gpg-agent'], { stdio: 'ignore' });
  if (r.status !== 0) throw new Error(`ostree ${args.join(' ')} failed with status ${r.status}`);
}

beforeAll(async () => {
  if (!RUN_INTEROP) return;
  requireOstree();
  ({ dir, cleanup } = await scratch('larch-pull-features-'));
  gpgHome = join(dir, 'gpghome');
  await cp(GPG_HOME, gpgHome, { recursive: true });
  await chmod(gpgHome, 0o700);
  const srv = join(dir, 'srv');
  const tree = join(dir, 'tree');
  await mkdir(join(tree, 'baz', 'deeper'), { recursive: true });
  await mkdir(join(tree, 'baz', 'another'), { recursive: true });
  await mkdir(join(tree, 'other'), { recursive: true });
  await writeFile(join(tree, 'firstfile'), 'first\n');
  await writeFile(join(tree, 'baz', 'cow'), 'moo\n');
  await writeFile(join(tree, 'baz', 'deeper', 'ohyeah'), 'yeah\n');
  await writeFile(join(tree, 'baz', 'another', 'x'), 'x\n');
  await writeFile(join(tree, 'other', 'y'), 'y\n');
  const repo = join(srv, 'repo');
  await mkdir(repo, { recursive: true });
  ok(ostree(['init', `--repo=${repo}`, '--mode=archive']));
  withGpg(['commit', `--repo=${repo}`, '-b', 'main', '-s', 'one', '--timestamp=2020-01-01 00:00:00 +0000', `--gpg-sign=${GPG_KEY}`, `--gpg-homedir=${gpgHome}`, tree]);
  withGpg(['summary', `--repo=${repo}`, '-u', `--gpg-sign=${GPG_KEY}`, `--gpg-homedir=${gpgHome}`]);
  // Fixed mtimes: the server's Last-Modified, which both tools give their cached copies.
  const old = new Date('2001-01-01T01:01:00Z');
  await utimes(join(repo, 'summary'), old, old);
  await utimes(join(repo, 'summary.sig'), old, old);
  plain = await startTrivialHttpd(srv, join(dir, 'port-plain'));
  cookieServer = await startTrivialHttpd(srv, join(dir, 'port-cookie'), ['--expected-cookies=session=s3cret']);
});
afterAll(async () => {
  plain?.stop();
  cookieServer?.stop();
  await cleanup?.();
});

function repos(mode = 'archive'): Places {
  const i = n++;
  const places = { R: { ostree: join(dir, `o${i}`), larch: join(dir, `l${i}`) } };
  ok(ostree(['init', `--repo=${places.R.ostree}`, `--mode=${mode}`]));
  ok(ostree(['init', `--repo=${places.R.larch}`, `--mode=${mode}`]));
  return places;
}

const srvFile = (name: string): string => join(dir, 'srv', 'repo', name);
const cached = (repo: string, name: string): string => join(repo, 'tmp', 'cache', 'summaries', name);

describeInterop('pull features (against ostree)', () => {
  it('pull and remote refs send the cookies of remote add-cookie, as ostree', () => {
    const p = repos();
    expectSame(['remote', 'add', '--repo={R}', '--no-gpg-verify', 'origin', `${cookieServer!.url}/repo`], p);
    // Without the cookie the server refuses both tools.
    const refused = runBoth(['pull', '--repo={R}', 'origin', 'main'], p);
    expect(refused.ostree.code).not.toBe(0);
    expect(refused.larch.code).toBe(refused.ostree.code);
    expectSame(['remote', 'add-cookie', '--repo={R}', 'origin', '127.0.0.1', '/', 'session', 's3cret'], p);
    expectSame(['remote', 'refs', '--repo={R}', 'origin'], p);
    const pulled = runBoth(['pull', '--repo={R}', 'origin', 'main'], p);
    expect([pulled.larch.code, pulled.ostree.code]).toEqual([0, 0]);
    expectSame(['rev-parse', '--repo={R}', 'origin:main'], p);
    const checked = runBoth(['fsck', '--repo={R}'], p);
    expect([checked.larch.code, checked.ostree.code]).toEqual([0, 0]);
  });

  it('keeps summary and summary.sig in tmp/cache/summaries as ostree does, and prune drops a deleted remote\'s', async () => {
    const p = repos();
    expectSame(['remote', 'add', '--repo={R}', '--no-gpg-verify', 'origin', `${plain!.url}/repo`], p);
    const pulled = runBoth(['pull', '--repo={R}', 'origin', 'main'], p, CACHE_ON);
    expect([pulled.larch.code, pulled.ostree.code]).toEqual([0, 0]);
    for (const who of ['ostree', 'larch'] as const) {
      const r = p.R![who];
      expect(await readFile(cached(r, 'origin'))).toEqual(await readFile(srvFile('summary')));
      expect(await readFile(cached(r, 'origin.sig'))).toEqual(await readFile(srvFile('summary.sig')));
    }
    // Both take the server's Last-Modified as the cached files' mtime.
    for (const f of ['origin', 'origin.sig']) {
      expect((await stat(cached(p.R!.larch, f))).mtimeMs).toBe((await stat(cached(p.R!.ostree, f))).mtimeMs);
    }
    for (const who of ['ostree', 'larch'] as const) {
      await writeFile(cached(p.R![who], 'foo'), '');
      await writeFile(cached(p.R![who], 'foo.sig'), '');
    }
    expectSame(['prune', '--repo={R}'], p, CACHE_ON);
    for (const who of ['ostree', 'larch'] as const) {
      expect([exists(cached(p.R![who], 'foo')), exists(cached(p.R![who], 'foo.sig'))]).toEqual([false, false]);
      expect([exists(cached(p.R![who], 'origin')), exists(cached(p.R![who], 'origin.sig'))]).toEqual([true, true]);
    }
  });

  it('uses the cached summary while summary.sig is unchanged, as ostree', async () => {
    const p = repos();
    expectSame(['remote', 'add', '--repo={R}', '--no-gpg-verify', 'origin', `${plain!.url}/repo`], p);
    expect(runBoth(['pull', '--repo={R}', 'origin', 'main'], p, CACHE_ON).larch.code).toBe(0);
    // The server's summary turns to garbage; its summary.sig stays. A tool that fetched the
    // summary again would fail to parse it; both use their cached copy.
    const good = await readFile(srvFile('summary'));
    const st = await stat(srvFile('summary'));
    try {
      await writeFile(srvFile('summary'), Buffer.concat([Buffer.from('invalid\n'), good]));
      await utimes(srvFile('summary'), st.atime, st.mtime);
      const again = runBoth(['pull', '--repo={R}', 'origin', 'main'], p, CACHE_ON);
      expect([again.larch.code, again.ostree.code]).toEqual([0, 0]);
      expect(await readFile(cached(p.R!.larch, 'origin'))).toEqual(good);
    } finally {
      await writeFile(srvFile('summary'), good);
      await utimes(srvFile('summary'), st.atime, st.mtime);
    }
  });

  it('pull --cache-dir puts the cache there and not in the repo; a missing one is refused in ostree\'s words', async () => {
    const p = repos();
    const places: Places = { ...p, C: { ostree: join(dir, `cache-o${n}`), larch: join(dir, `cache-l${n}`) } };
    await mkdir(places.C!.ostree);
    await mkdir(places.C!.larch);
    expectSame(['remote', 'add', '--repo={R}', '--no-gpg-verify', 'origin', `${plain!.url}/repo`], places);
    const pulled = runBoth(['pull', '--repo={R}', '--cache-dir={C}', 'origin', 'main'], places, CACHE_ON);
    expect([pulled.larch.code, pulled.ostree.code]).toEqual([0, 0]);
    for (const who of ['ostree', 'larch'] as const) {
      expect(exists(join(places.C![who], 'summaries', 'origin.sig'))).toBe(true);
      expect(exists(cached(places.R![who], 'origin'))).toBe(false);
    }
    expectSame(['pull', '--repo={R}', `--cache-dir=${join(dir, 'no-such-dir')}`, 'origin', 'main'], places, CACHE_ON);
  });

  it('caches nothing when the summary signature is bad (hostile summary.sig)', async () => {
    const p = repos();
    expectSame(['remote', 'add', '--repo={R}', '--set=gpg-verify-summary=true', `--gpg-import=${GPG_PUBKEY}`, 'origin', `${plain!.url}/repo`], p);
    const sig = await readFile(srvFile('summary.sig'));
    const st = await stat(srvFile('summary.sig'));
    try {
      await writeFile(srvFile('summary.sig'), 'invalid\n');
      const r = runBoth(['pull', '--repo={R}', 'origin', 'main'], p, CACHE_ON);
      expect(r.ostree.code).not.toBe(0);
      expect(r.larch.code).toBe(r.ostree.code);
      for (const who of ['ostree', 'larch'] as const) expect(exists(cached(p.R![who], 'origin'))).toBe(false);
    } finally {
      await writeFile(srvFile('summary.sig'), sig);
      await utimes(srvFile('summary.sig'), st.atime, st.mtime);
    }
    const good = runBoth(['pull', '--repo={R}', 'origin', 'main'], p, CACHE_ON);
    expect([good.larch.code, good.ostree.code]).toEqual([0, 0]);
    for (const who of ['ostree', 'larch'] as const) expect(exists(cached(p.R![who], 'origin.sig'))).toBe(true);
  });

  it('pull --subpath given twice fetches both paths; ls of the partial commit fails outside them as ostree does', () => {
    const p = repos('bare-user');
    expectSame(['remote', 'add', '--repo={R}', '--no-gpg-verify', 'origin', `${plain!.url}/repo`], p);
    const pulled = runBoth(['pull', '--repo={R}', '--subpath=/baz/deeper', '--subpath=/baz/another', 'origin', 'main'], p);
    expect([pulled.larch.code, pulled.ostree.code]).toEqual([0, 0]);
    expectSame(['ls', '--repo={R}', 'origin:main', '/baz/deeper'], p);
    expectSame(['ls', '--repo={R}', 'origin:main', '/baz/another'], p);
    const outside = expectSame(['ls', '--repo={R}', 'origin:main', '/firstfile'], p);
    expect(outside.error).toMatch(/^error: Inspecting path '\/firstfile': Opening content object [0-9a-f]{64}: Couldn't find file object '[0-9a-f]{64}'$/);
  });

  it('pull-local --remote=R --gpg-verify uses R\'s keys even when R\'s URL is a relative path', async () => {
    const p = repos();
    const places: Places = { ...p, S: { ostree: join(dir, 'srv', 'repo'), larch: join(dir, 'srv', 'repo') } };
    expectSame(['remote', 'add', '--repo={R}', `--gpg-import=${GPG_PUBKEY}`, 'origin', 'repo'], places);
    // (Exit status only: ostree counts a local pull as "imported", larch as "fetched".)
    const pulled = runBoth(['pull-local', '--repo={R}', '--remote=origin', '--gpg-verify', '{S}', 'main'], places);
    expect([pulled.larch.code, pulled.ostree.code]).toEqual([0, 0]);
    expectSame(['rev-parse', '--repo={R}', 'main'], places);
    expectSame(['remote', 'gpg-list-keys', '--repo={R}', 'origin'], places);
  });
});

afterAll(async () => {
  if (gpgHome !== '') await rm(gpgHome, { recursive: true, force: true });
});
