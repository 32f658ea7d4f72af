// Larch against the real `ostree` 2022.7 on what OSTree's own signing tests check
// (test-commit-sign, test-gpg-signed-commit, test-remote-gpg-import, test-remote-gpg-list-keys,
// test-pull-summary-sigs): the same repositories, keys and environment given to both, and the
// same output or the same error (OSTree's multi-line signature descriptions are one line in
// Larch's errors, parts joined with "; ").
//
// Keys and signatures are dated with gpg's --faked-system-time (signing through a gpg.conf that
// sets it), so every date both tools print is fixed and nothing waits for a key to expire.
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, cpSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { interopDescribe } from '@larch/test-fixtures';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exists, expectOneErrorLine, IN_CI, larch, ok, ostree, requireOstree, scratch, type RunResult } from './helpers.js';

const HAVE_GPG = spawnSync('gpg', ['--version'], { encoding: 'utf8' }).status === 0;
const describeGpg = HAVE_GPG || IN_CI ? describe : describe.skip;

let dir = '';
let cleanup: () => Promise<void> = async () => undefined;
let home = '';
let n = 0;

/** Run gpg on the test's home directory, at a faked time when given (`20200101T000000!`). */
function gpg(args: string[], at?: string, input?: string): string {
  if (!HAVE_GPG) throw new Error('gpg is required for the signing conformance tests (CI=true): apt-get install -y gnupg');
  const r = spawnSync('gpg', ['--homedir', home, '--batch', '--passphrase', '', ...(at ? ['--faked-system-time', at] : []), ...args], {
    encoding: 'utf8',
    input: input ?? '',
  });
  if (r.status !== 0) throw new Error(`gpg ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout;
}

function gpgBytes(args: string[]): Buffer {
  const r = spawnSync('gpg', ['--homedir', home, '--batch', ...args]);
  if (r.status !== 0) throw new Error(`gpg ${args.join(' ')} failed: ${r.stderr.toString()}`);
  return r.stdout;
}

interface Key {
  fpr: string;
  id: string;
  /** The signing subkey's id, for keys made with one. */
  subId?: string;
  subFpr?: string;
}

/** A key created on 2020-01-01; `subkey` adds a signing subkey (the primary key then only certifies). */
function newKey(uid: string, subkey = false): Key {
  gpg(['--quick-gen-key', uid, 'ed25519', subkey ? 'cert' : 'sign', 'never'], '20200101T000000!');
  const listing = gpg(['--list-keys', '--with-colons', '--', `=${uid}`]);
  const fprs = [...listing.matchAll(/^fpr:+([0-9A-F]{40}):/gm)].map((m) => m[1]);
  const key: Key = { fpr: fprs[0], id: fprs[0].slice(-16) };
  if (subkey) {
    gpg(['--quick-add-key', key.fpr, 'ed25519', 'sign', 'never'], '20200101T000000!');
    const sub = [...gpg(['--list-keys', '--with-colons', key.fpr]).matchAll(/^fpr:+([0-9A-F]{40}):/gm)].map((m) => m[1])[1];
    Object.assign(key, { subFpr: sub, subId: sub.slice(-16) });
  }
  return key;
}

/** gpg's signatures are made at `at` while this runs (through gpg.conf, which `gpg` reads whoever runs it). */
function signingAt<T>(at: string, f: () => T): T {
  writeFileSync(join(home, 'gpg.conf'), `faked-system-time ${at}\n`);
  try {
    return f();
  } finally {
    rmSync(join(home, 'gpg.conf'));
  }
}

/** Replace the contents of a trusted keyring directory with these keys. */
function trust(trusted: string, ...fprs: string[]): void {
  mkdirSync(trusted, { recursive: true });
  for (const f of readdirSync(trusted)) rmSync(join(trusted, f));
  writeFileSync(join(trusted, 'keys.gpg'), gpgBytes(['--export', ...fprs]));
}

/** Import the revocation certificate gpg wrote when it made the key. */
function revoke(k: Key): void {
  const cert = readFileSync(join(home, 'openpgp-revocs.d', `${k.fpr}.rev`), 'utf8').replace(/^:-----/m, '-----');
  gpg(['--import'], undefined, cert);
}

function tree(label: string): string {
  const t = join(dir, `tree${++n}`);
  mkdirSync(t, { recursive: true });
  writeFileSync(join(t, 'file'), `${label} ${n}\n`);
  return t;
}

function larchRepo(mode: 'archive' | 'bare-user'): string {
  const r = join(dir, `repo${++n}`);
  ok(larch(['init', `--repo=${r}`, `--mode=${mode}`]));
  return r;
}

function ostreeRepo(mode: 'archive' | 'bare-user'): string {
  const r = join(dir, `ostree-repo${++n}`);
  ok(ostree(['init', `--repo=${r}`, `--mode=${mode}`]));
  return r;
}

/** One error line from each tool: ostree's message with its lines joined as Larch joins them. */
function sameError(mine: RunResult, theirs: RunResult): string {
  const msg = expectOneErrorLine(mine);
  expect(theirs.code).not.toBe(0);
  const their = theirs.stderr.trimEnd().replace(/^error: /, '').split('\n').join('; ');
  expect(msg).toBe(their);
  return msg;
}

const url = (p: string): string => pathToFileURL(p).href;
const obj = (repo: string, c: string, ext: string): string => join(repo, 'objects', c.slice(0, 2), `${c.slice(2)}.${ext}`);

beforeAll(async () => {
  ({ dir, cleanup } = await scratch('larch-signing-conformance-'));
  home = join(dir, 'gnupg');
  mkdirSync(home, { mode: 0o700 });
});

afterAll(async () => {
  if (home) spawnSync('gpgconf', ['--homedir', home, '--kill', 'gpg-agent']);
  await cleanup();
});

interopDescribe(describeGpg)('signing conformance with ostree 2022.7', () => {
  beforeAll(() => requireOstree());

  it('show prints the signature block ostree prints, as the keys are re-dated, expire and are revoked', () => {
    const plain = newKey('Plain Signer <plain@example.com>');
    const sub = newKey('Sub Keyed', true);
    const srv = larchRepo('archive');
    const c = signingAt('20200102T000000!', () =>
      ok(larch(['commit', `--repo=${srv}`, '-b', 'main', '-s', 'two signatures', `--gpg-sign=${plain.id}`, `--gpg-sign=${sub.subId!}`, `--gpg-homedir=${home}`, tree('show')])).trim(),
    );
    const trusted = join(dir, 'trusted-show');
    const env = { OSTREE_GPG_HOME: trusted };
    const same = (): string => {
      trust(trusted, plain.fpr, sub.fpr);
      const theirs = ok(ostree(['show', `--repo=${srv}`, c], { env }));
      expect(ok(larch(['show', `--repo=${srv}`, c], { env }))).toBe(theirs);
      return theirs;
    };
    // A user id without an address is printed "Name <>"; a subkey's signature names its primary key.
    let out = same();
    expect(out).toContain('Good signature from "Plain Signer <plain@example.com>"');
    expect(out).toContain(`  Signature made Thu Jan \u20072 00:00:00 2020 using EdDSA key ID ${sub.subId}\n  Good signature from "Sub Keyed <>"\n  Primary key ID ${sub.id}\n`);
    // gpg replaces the self-signature when the expiry changes: the key's only self-signature is
    // now younger than the signature, which is still good.
    gpg(['--quick-set-expire', plain.fpr, '2099-01-01'], '20200102T120000!');
    out = same();
    expect(out).toMatch(/Good signature from "Plain Signer <plain@example\.com>"\n {2}Key expires Thu Jan \u20071 12:00:00 2099\n/);
    // An expired key: BAD, with the expiry.
    gpg(['--quick-set-expire', plain.fpr, '1d'], '20200103T000000!');
    out = same();
    expect(out).toMatch(/BAD signature from "Plain Signer <plain@example\.com>"\n {2}Key expired Sat Jan \u20074 00:00:00 2020\n/);
    // A subkey whose primary key expired, then with an expiry of its own.
    gpg(['--quick-set-expire', sub.fpr, '1d'], '20200103T000000!');
    gpg(['--quick-set-expire', sub.fpr, '2030-01-01', sub.subFpr!], '20200103T000000!');
    out = same();
    expect(out).toMatch(/BAD signature from "Sub Keyed <>"\n {2}Primary key ID [0-9A-F]{16}\n {2}Key expired Tue Jan \u20071 12:00:00 2030\n {2}Primary key expired Sat Jan \u20074 00:00:00 2020\n/);
    // A revoked key (not expired): "Key revoked".
    gpg(['--quick-set-expire', plain.fpr, '0'], '20200105T000000!');
    revoke(plain);
    out = same();
    expect(out).toMatch(/ {2}Key revoked\n/);
    // A pull refuses it with ostree's description (the last signature first).
    const mine = larchRepo('bare-user');
    const theirs = ostreeRepo('bare-user');
    for (const r of [mine, theirs]) ok(ostree(['remote', 'add', `--repo=${r}`, 'origin', url(srv)]));
    trust(trusted, plain.fpr);
    const msg = sameError(larch(['pull', `--repo=${mine}`, 'origin', 'main'], { env }), ostree(['pull', `--repo=${theirs}`, 'origin', 'main'], { env }));
    expect(msg).toMatch(new RegExp(`^Commit ${c}: Signature made .* key ID ${sub.subId}; Can't check signature: public key not found; Signature made .*; Key revoked$`));
  });

  it('pull and show trust the keyrings of $OSTREE_GPG_HOME when the remote has none of its own', () => {
    const k = newKey('Global Signer <global@example.com>');
    const srv = larchRepo('archive');
    const c = ok(larch(['commit', `--repo=${srv}`, '-b', 'main', `--gpg-sign=${k.id}`, `--gpg-homedir=${home}`, tree('global')])).trim();
    const trusted = join(dir, 'trusted-global');
    trust(trusted, k.fpr);
    const empty = join(dir, 'trusted-empty');
    mkdirSync(empty);
    const mine = larchRepo('bare-user');
    const theirs = ostreeRepo('bare-user');
    for (const r of [mine, theirs]) ok(larch(['remote', 'add', `--repo=${r}`, 'origin', url(srv)]));
    const untrusted = { env: { OSTREE_GPG_HOME: empty } };
    expect(sameError(larch(['pull', `--repo=${mine}`, 'origin', 'main'], untrusted), ostree(['pull', `--repo=${theirs}`, 'origin', 'main'], untrusted))).toMatch(
      /Can't check signature: public key not found$/,
    );
    const env = { env: { OSTREE_GPG_HOME: trusted } };
    ok(ostree(['pull', `--repo=${theirs}`, 'origin', 'main'], env));
    ok(larch(['pull', `--repo=${mine}`, 'origin', 'main'], env));
    expect(ok(larch(['rev-parse', `--repo=${mine}`, 'origin:main'])).trim()).toBe(c);
    expect(ok(larch(['show', `--repo=${mine}`, c], env))).toBe(ok(ostree(['show', `--repo=${theirs}`, c], env)));
    expect(ok(larch(['show', `--repo=${mine}`, '--gpg-verify-remote=origin', c], env))).toContain('Good signature from "Global Signer <global@example.com>"');
  });

  it('remote gpg-list-keys prints what ostree prints: expiry, revocation, subkeys, WKD URLs, global keys', () => {
    const expired = newKey('List Expired <Expired.User@Example.COM>');
    gpg(['--quick-set-expire', expired.fpr, '1d'], '20200102T000000!');
    const revoked = newKey('List Revoked (comment) <revoked@example.org>');
    const beforeRevocation = gpgBytes(['--export', revoked.fpr]);
    revoke(revoked);
    const sub = newKey('List Sub', true);
    gpg(['--quick-set-expire', sub.fpr, '2031-05-06', sub.subFpr!], '20200102T000000!');
    const repo = larchRepo('archive');
    ok(larch(['remote', 'add', `--repo=${repo}`, 'R1', 'http://example.com/repo']));
    ok(larch(['remote', 'add', `--repo=${repo}`, 'R2', 'http://example.com/repo']));
    const trusted = join(dir, 'trusted-list');
    trust(trusted, sub.fpr);
    const env = { env: { OSTREE_GPG_HOME: trusted } };
    const list = (...args: string[]): string => {
      const theirs = ok(ostree(['remote', 'gpg-list-keys', `--repo=${repo}`, ...args], env));
      expect(ok(larch(['remote', 'gpg-list-keys', `--repo=${repo}`, ...args], env))).toBe(theirs);
      return theirs;
    };
    // No keyring: nothing, even with global keys around.
    expect(list('R1')).toBe('');
    const keys = join(dir, 'list-keys.gpg');
    writeFileSync(keys, gpgBytes(['--export', expired.fpr, revoked.fpr, sub.fpr]));
    ok(larch(['remote', 'gpg-import', `--repo=${repo}`, '-k', keys, 'R1']));
    const out = list('R1');
    expect(out).toContain(`Key: ${expired.fpr}\n  Created: Wed Jan \u20071 00:00:00 2020\n  Expired: Fri Jan \u20073 00:00:00 2020\n  UID: List Expired <Expired.User@Example.COM>\n`);
    expect(out).toContain(`Key: ${revoked.fpr} (revoked)\n`);
    expect(out).toContain('  UID: List Revoked (comment) <revoked@example.org> (revoked)\n');
    expect(out).toContain(`  UID: List Sub\n  Advanced update URL: \n  Direct update URL: \n  Subkey: ${sub.subFpr}\n    Created: Wed Jan \u20071 00:00:00 2020\n    Expires: Tue May \u20076 12:00:00 2031\n`);
    // The global keys, listed without a remote name.
    expect(list()).toContain(`Key: ${sub.fpr}\n`);
    expect(ok(larch(['remote', 'gpg-list-keys', `--repo=${repo}`], { env: { OSTREE_GPG_HOME: join(dir, 'no-such-dir') } }))).toBe('');
    // A key imported again from a copy made before its revocation stays revoked, as with gpg.
    const old = join(dir, 'before-revocation.gpg');
    writeFileSync(old, beforeRevocation);
    ok(larch(['remote', 'gpg-import', `--repo=${repo}`, '-k', old, 'R1']));
    expect(list('R1')).toContain(`Key: ${revoked.fpr} (revoked)\n`);
    expect(sameError(larch(['remote', 'gpg-list-keys', `--repo=${repo}`, 'nosuch']), ostree(['remote', 'gpg-list-keys', `--repo=${repo}`, 'nosuch']))).toBe('Remote "nosuch" not found');
    // Deleting a remote deletes its keyring.
    expect(exists(join(repo, 'R1.trustedkeys.gpg'))).toBe(true);
    ok(larch(['remote', 'delete', `--repo=${repo}`, 'R1']));
    expect(exists(join(repo, 'R1.trustedkeys.gpg'))).toBe(false);
  });

  it('gpgkeypath: files and directories as ostree reads them, and ostree\'s errors', () => {
    const k = newKey('Keypath Signer <keypath@example.com>');
    const srv = larchRepo('archive');
    ok(larch(['commit', `--repo=${srv}`, '-b', 'main', `--gpg-sign=${k.id}`, `--gpg-homedir=${home}`, tree('keypath')]));
    const keydir = join(dir, 'keydir');
    mkdirSync(keydir);
    writeFileSync(join(keydir, 'signer.asc'), gpg(['--armor', '--export', k.fpr]));
    writeFileSync(join(keydir, 'trustdb.gpg'), 'not a key');
    writeFileSync(join(keydir, 'notes.txt'), 'not a key either\n');
    const empty = join(dir, 'trusted-keypath-empty');
    mkdirSync(empty);
    const env = { env: { OSTREE_GPG_HOME: empty } };
    const cases: Array<[string, boolean]> = [
      [keydir, true],
      [`${keydir}/`, true],
      [`${join(keydir, 'notes.txt')},${join(keydir, 'signer.asc')}`, true],
      [`${join(keydir, 'notes.txt')};`, false],
      [join(keydir, 'INVALIDKEYPATH.asc'), false],
      [`${join(dir, 'INVALIDKEYDIRPATH')}/,${join(keydir, 'signer.asc')}`, false],
      [`,${join(keydir, 'signer.asc')}`, false],
      [`${keydir};${keydir},x`, false],
    ];
    for (const [value, good] of cases) {
      const mine = larchRepo('bare-user');
      const theirs = ostreeRepo('bare-user');
      for (const r of [mine, theirs]) ok(larch(['remote', 'add', `--repo=${r}`, `--set=gpgkeypath=${value}`, 'origin', url(srv)]));
      const m = larch(['pull', `--repo=${mine}`, 'origin', 'main'], env);
      const t = ostree(['pull', `--repo=${theirs}`, 'origin', 'main'], env);
      if (good) {
        ok(t);
        ok(m);
      } else {
        sameError(m, t);
      }
    }
  });

  it('gpg-sign refuses a key that already signed, and --delete finds a subkey\'s signature by its primary key', () => {
    const k = newKey('Twice Signer <twice@example.com>');
    const sub = newKey('Delete Sub <delsub@example.com>', true);
    const trusted = join(dir, 'trusted-sign');
    trust(trusted, k.fpr, sub.fpr);
    const env = { env: { OSTREE_GPG_HOME: trusted } };
    const repo = larchRepo('archive');
    const c = ok(larch(['commit', `--repo=${repo}`, '-b', 'main', tree('twice')])).trim();
    ok(larch(['gpg-sign', `--repo=${repo}`, `--gpg-homedir=${home}`, c, k.id], env));
    const copy = join(dir, `copy${++n}`);
    cpSync(repo, copy, { recursive: true });
    const again = sameError(larch(['gpg-sign', `--repo=${repo}`, `--gpg-homedir=${home}`, c, k.id], env), ostree(['gpg-sign', `--repo=${copy}`, `--gpg-homedir=${home}`, c, k.id], env));
    expect(again).toBe(`Commit is already signed with GPG key ${k.id}`);
    // Through its fingerprint too, and through the primary key for a subkey's signature.
    expect(expectOneErrorLine(larch(['gpg-sign', `--repo=${repo}`, `--gpg-homedir=${home}`, c, k.fpr], env))).toBe(`Commit is already signed with GPG key ${k.fpr}`);
    ok(larch(['gpg-sign', `--repo=${repo}`, `--gpg-homedir=${home}`, c, sub.subId!], env));
    expect(expectOneErrorLine(larch(['gpg-sign', `--repo=${repo}`, `--gpg-homedir=${home}`, c, sub.id], env))).toBe(`Commit is already signed with GPG key ${sub.id}`);
    rmSync(copy, { recursive: true });
    cpSync(repo, copy, { recursive: true });
    const del = ['gpg-sign', '--delete', c, sub.id, sub.id, k.id];
    expect(ok(ostree([...del, `--repo=${copy}`], env))).toBe('Signatures deleted: 2\n');
    expect(ok(larch([...del, `--repo=${repo}`], env))).toBe('Signatures deleted: 2\n');
    expect(ok(larch(['show', `--repo=${repo}`, c], env))).not.toMatch(/Found/);
  });

  it('a signature deleted on the server is deleted on the client by its next pull', () => {
    const k = newKey('Removed Later <removed@example.com>');
    const srv = larchRepo('archive');
    const c = ok(larch(['commit', `--repo=${srv}`, '-b', 'main', `--gpg-sign=${k.id}`, `--gpg-homedir=${home}`, tree('removed')])).trim();
    const client = larchRepo('bare-user');
    ok(larch(['remote', 'add', `--repo=${client}`, '--set=gpg-verify=false', 'origin', url(srv)]));
    ok(larch(['pull', `--repo=${client}`, 'origin', 'main']));
    expect(ok(larch(['show', `--repo=${client}`, c]))).toContain('Found 1 signature');
    expect(ok(larch(['gpg-sign', `--repo=${srv}`, '--delete', c, k.id]))).toBe('Signatures deleted: 1\n');
    // As ostree: the emptied detached metadata stays, so clients see the signature gone.
    expect(exists(obj(srv, c, 'commitmeta'))).toBe(true);
    ok(larch(['pull', `--repo=${client}`, 'origin', 'main']));
    expect(ok(larch(['show', `--repo=${client}`, c]))).not.toMatch(/Found/);
  });

  it('--require-static-deltas: the delta\'s commit is verified, and a missing delta is ostree\'s error', () => {
    const k = newKey('Delta Signer <delta@example.com>');
    const stranger = newKey('Delta Stranger <stranger@example.com>');
    const srv = larchRepo('archive');
    ok(larch(['commit', `--repo=${srv}`, '-b', 'main', `--gpg-sign=${k.id}`, `--gpg-homedir=${home}`, tree('d1')]));
    ok(larch(['summary', '-u', `--repo=${srv}`]));
    const trusted = join(dir, 'trusted-delta');
    trust(trusted, k.fpr);
    const env = { env: { OSTREE_GPG_HOME: trusted } };
    const mine = larchRepo('bare-user');
    const theirs = ostreeRepo('bare-user');
    for (const r of [mine, theirs]) ok(larch(['remote', 'add', `--repo=${r}`, 'origin', url(srv)]));
    const head = ok(larch(['rev-parse', `--repo=${srv}`, 'main'])).trim();
    expect(sameError(larch(['pull', '--require-static-deltas', `--repo=${mine}`, 'origin', 'main'], env), ostree(['pull', '--require-static-deltas', `--repo=${theirs}`, 'origin', 'main'], env))).toBe(
      `Static deltas required, but none found for main to ${head}`,
    );
    ok(larch(['static-delta', 'generate', `--repo=${srv}`, '--empty', 'main']));
    ok(larch(['summary', '-u', `--repo=${srv}`]));
    ok(larch(['pull', '--require-static-deltas', `--repo=${mine}`, 'origin', 'main'], env));
    ok(larch(['fsck', `--repo=${mine}`]));
    // The next commit, by a key the remote does not trust, offered only as a delta.
    const next = ok(larch(['commit', `--repo=${srv}`, '-b', 'main', `--gpg-sign=${stranger.id}`, `--gpg-homedir=${home}`, tree('d2')])).trim();
    ok(larch(['static-delta', 'generate', `--repo=${srv}`, 'main']));
    ok(larch(['summary', '-u', `--repo=${srv}`]));
    const msg = expectOneErrorLine(larch(['pull', '--require-static-deltas', `--repo=${mine}`, 'origin', 'main'], env));
    expect(msg).toMatch(new RegExp(`^Commit ${next}: Signature made .* key ID ${stranger.id}; Can't check signature: public key not found$`));
    expect(ok(larch(['rev-parse', `--repo=${mine}`, 'origin:main'])).trim()).toBe(head);
    expect(expectOneErrorLine(larch(['pull', '--require-static-deltas', '--disable-static-deltas', `--repo=${mine}`, 'origin', 'main']))).toMatch(/--disable-static-deltas/);
  });
});

/** `python3 -m http.server` on an ephemeral port, as in signing.test.ts (a separate process: the runs here are synchronous). */
async function serve(root: string): Promise<{ url: string; stop: () => Promise<void> }> {
  const child = spawn('python3', ['-u', '-m', 'http.server', '0', '--bind', '127.0.0.1', '--directory', root], { stdio: ['ignore', 'pipe', 'ignore'] });
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d: string) => {
      out += d;
      const m = /port (\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    child.on('error', reject);
    child.on('exit', (code) => reject(new Error(`http.server exited with ${code}: ${out}`)));
  });
  return {
    url: `http://127.0.0.1:${port}/`,
    stop: async () => {
      if (child.exitCode !== null) return;
      const gone = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await gone;
    },
  };
}

interopDescribe(describeGpg)('undecodable detached metadata over HTTP, as ostree reads it', () => {
  beforeAll(() => requireOstree());

  it('a garbage .commitmeta holds no signature: refused with gpg-verify, ignored without; a garbage summary.sig likewise', async () => {
    const k = newKey('Http Signer <http@example.com>');
    const srv = larchRepo('archive');
    const c = ok(larch(['commit', `--repo=${srv}`, '-b', 'main', `--gpg-sign=${k.id}`, `--gpg-homedir=${home}`, tree('http')])).trim();
    ok(larch(['summary', '-u', `--repo=${srv}`, `--gpg-sign=${k.id}`, `--gpg-homedir=${home}`]));
    writeFileSync(obj(srv, c, 'commitmeta'), 'borkborkbork\n');
    const trusted = join(dir, 'trusted-http');
    trust(trusted, k.fpr);
    const env = { env: { OSTREE_GPG_HOME: trusted } };
    const server = await serve(srv);
    try {
      const mine = larchRepo('bare-user');
      const theirs = ostreeRepo('bare-user');
      for (const r of [mine, theirs]) ok(larch(['remote', 'add', `--repo=${r}`, 'origin', server.url]));
      expect(sameError(larch(['pull', `--repo=${mine}`, 'origin', 'main'], env), ostree(['pull', `--repo=${theirs}`, 'origin', 'main'], env))).toBe(
        `Commit ${c}: GPG verification enabled, but no signatures found (use gpg-verify=false in remote config to disable)`,
      );
      for (const r of [mine, theirs]) ok(larch(['remote', 'add', `--repo=${r}`, '--set=gpg-verify=false', 'unverified', server.url]));
      ok(ostree(['pull', `--repo=${theirs}`, 'unverified', 'main'], env));
      ok(larch(['pull', `--repo=${mine}`, 'unverified', 'main'], env));
      expect(ok(larch(['rev-parse', `--repo=${mine}`, 'unverified:main'])).trim()).toBe(c);

      chmodSync(join(srv, 'summary.sig'), 0o644);
      writeFileSync(join(srv, 'summary.sig'), 'invalid\n');
      for (const r of [mine, theirs]) ok(larch(['remote', 'add', `--repo=${r}`, '--set=gpg-verify=false', '--set=gpg-verify-summary=true', 'summaries', server.url]));
      expect(sameError(larch(['pull', `--repo=${mine}`, 'summaries', 'main'], env), ostree(['pull', `--repo=${theirs}`, 'summaries', 'main'], env))).toMatch(/no signatures found/);
    } finally {
      await server.stop();
    }
  });
});
