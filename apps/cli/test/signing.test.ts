// Signing through the CLI: gpg-sign, sign (ed25519), commit/summary --gpg-sign and --sign,
// remote add --gpg-import / --sign-verify, show/log signature status, and pull's enforcement:
// unsigned, unknown-key, altered and summary-mismatch refusals (one error line, exit 1, ref
// unchanged, fsck clean) and downgrade protection. Interop suites check against the real
// `ostree` 2022.7 (skipped without it, failing in CI); GnuPG is needed for the GPG parts.
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { interopDescribe } from '@larch/test-fixtures';
import { generateEd25519Key } from '@larch/signing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOneErrorLine, IN_CI, larch, ok, ostree, requireOstree, scratch } from './helpers.js';

const HAVE_GPG = spawnSync('gpg', ['--version'], { encoding: 'utf8' }).status === 0;
const describeGpg = HAVE_GPG || IN_CI ? describe : describe.skip;

let dir = '';
let cleanup: () => Promise<void> = async () => undefined;
let home = '';
let otherHome = '';
let keyId = '';
let otherKeyId = '';
let pubAsc = '';
let secAsc = '';
let n = 0;

function gpg(h: string, ...args: string[]): string {
  if (!HAVE_GPG) throw new Error('gpg is required for the signing tests (CI=true): apt-get install -y gnupg');
  const r = spawnSync('gpg', ['--homedir', h, '--batch', ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`gpg ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout;
}

function newKey(h: string, uid: string): string {
  mkdirSync(h, { recursive: true, mode: 0o700 });
  gpg(h, '--passphrase', '', '--quick-gen-key', uid, 'ed25519', 'sign', 'never');
  return /^pub:[^:]*:[^:]*:[^:]*:([0-9A-F]{16}):/m.exec(gpg(h, '--list-keys', '--with-colons'))![1];
}

/** A small tree whose content differs per call. */
function tree(label: string): string {
  const t = join(dir, `tree${++n}`);
  mkdirSync(join(t, 'etc'), { recursive: true });
  writeFileSync(join(t, 'etc/release'), `${label} ${n}\n`);
  return t;
}

const obj = (repo: string, c: string, ext: string): string => join(repo, 'objects', c.slice(0, 2), `${c.slice(2)}.${ext}`);
const url = (p: string): string => pathToFileURL(p).href;

function larchRepo(mode: 'archive' | 'bare-user'): string {
  const r = join(dir, `repo${++n}`);
  ok(larch(['init', `--repo=${r}`, `--mode=${mode}`]));
  return r;
}

function revParse(repo: string, ref: string): string | null {
  const r = larch(['rev-parse', `--repo=${repo}`, ref]);
  return r.code === 0 ? r.stdout.trim() : null;
}

function objectFiles(repo: string): string[] {
  const out: string[] = [];
  for (const d of readdirSync(join(repo, 'objects'))) for (const f of readdirSync(join(repo, 'objects', d))) out.push(`${d}/${f}`);
  return out.sort();
}

beforeAll(async () => {
  ({ dir, cleanup } = await scratch('larch-signing-'));
  if (!HAVE_GPG) return;
  home = join(dir, 'gnupg');
  otherHome = join(dir, 'gnupg-other');
  keyId = newKey(home, 'Larch Test <larch@example.com>');
  otherKeyId = newKey(otherHome, 'Somebody Else <else@example.com>');
  pubAsc = join(dir, 'pub.asc');
  writeFileSync(pubAsc, gpg(home, '--armor', '--export', keyId));
  secAsc = join(dir, 'sec.asc');
  writeFileSync(secAsc, gpg(home, '--pinentry-mode', 'loopback', '--passphrase', '', '--armor', '--export-secret-keys', keyId));
});

afterAll(async () => {
  for (const h of [home, otherHome]) if (h) spawnSync('gpgconf', ['--homedir', h, '--kill', 'gpg-agent']);
  await cleanup();
});

interopDescribe(describeGpg)('GPG signatures interoperate with ostree 2022.7', () => {
  beforeAll(() => requireOstree());

  it('a commit and summary signed by larch verify with ostree show and ostree pull (gpg-verify, gpg-verify-summary)', () => {
    const srv = larchRepo('archive');
    const c = ok(larch(['commit', `--repo=${srv}`, '-b', 'main', '-s', 'signed', `--gpg-sign=${keyId}`, `--gpg-homedir=${home}`, tree('a')])).trim();
    ok(larch(['summary', '-u', `--repo=${srv}`, `--gpg-sign=${keyId}`, `--gpg-homedir=${home}`]));
    // ostree reads the keyring larch imported, and larch prints exactly what ostree prints.
    expect(ok(larch(['remote', 'add', `--repo=${srv}`, `--gpg-import=${pubAsc}`, 'self', 'file:///nonexistent']))).toBe('Imported 1 GPG key to remote "self"\n');
    const theirs = ok(ostree(['show', `--repo=${srv}`, '--gpg-verify-remote=self', c]));
    expect(theirs).toContain('Good signature from "Larch Test <larch@example.com>"');
    expect(ok(larch(['show', `--repo=${srv}`, '--gpg-verify-remote=self', c]))).toBe(theirs);
    expect(ok(larch(['show', `--repo=${srv}`, c]))).toBe(ok(ostree(['show', `--repo=${srv}`, c])));

    const client = join(dir, `ostree-client${++n}`);
    ok(ostree(['init', `--repo=${client}`, '--mode=archive']));
    ok(ostree(['remote', 'add', `--repo=${client}`, '--set=gpg-verify-summary=true', `--gpg-import=${pubAsc}`, 'origin', url(srv)]));
    ok(ostree(['pull', `--repo=${client}`, 'origin', 'main']));
    expect(ok(ostree(['rev-parse', `--repo=${client}`, 'origin:main'])).trim()).toBe(c);
  });

  it('a commit signed with --gpg-secret-key-file (no gpg) verifies with ostree', () => {
    const srv = larchRepo('archive');
    const c = ok(larch(['commit', `--repo=${srv}`, '-b', 'main', tree('sk')])).trim();
    ok(larch(['gpg-sign', `--repo=${srv}`, `--gpg-secret-key-file=${secAsc}`, c]));
    ok(ostree(['remote', 'add', `--repo=${srv}`, `--gpg-import=${pubAsc}`, 'self', 'file:///nonexistent']));
    expect(ok(ostree(['show', `--repo=${srv}`, '--gpg-verify-remote=self', c]))).toContain('Good signature from "Larch Test <larch@example.com>"');
  });

  it('a commit and summary signed by ostree verify with larch show and larch pull', () => {
    const srv = join(dir, `ostree-srv${++n}`);
    ok(ostree(['init', `--repo=${srv}`, '--mode=archive']));
    const c = ok(ostree(['commit', `--repo=${srv}`, '-b', 'main', '-s', 'by ostree', tree('o')])).trim();
    ok(ostree(['gpg-sign', `--repo=${srv}`, `--gpg-homedir=${home}`, c, keyId]));
    ok(ostree(['summary', '-u', `--repo=${srv}`, `--gpg-sign=${keyId}`, `--gpg-homedir=${home}`]));
    const client = larchRepo('bare-user');
    ok(larch(['remote', 'add', `--repo=${client}`, '--set=gpg-verify-summary=true', `--gpg-import=${pubAsc}`, 'origin', url(srv)]));
    ok(larch(['pull', `--repo=${client}`, 'origin', 'main']));
    expect(revParse(client, 'origin:main')).toBe(c);
    expect(ok(larch(['show', `--repo=${client}`, 'origin:main']))).toContain('Good signature from "Larch Test <larch@example.com>"');
    ok(larch(['fsck', `--repo=${client}`]));
  });
});

describeGpg('larch pull enforces GPG signatures', () => {
  let srv = '';
  let client = '';
  let a = '';
  let b = '';
  const pull = (...extra: string[]) => larch(['pull', `--repo=${client}`, ...extra, 'origin', 'main']);
  const signSummary = () => ok(larch(['summary', '-u', `--repo=${srv}`, `--gpg-sign=${keyId}`, `--gpg-homedir=${home}`]));

  /** The pull fails with one line matching `re`, the ref stays at `at`, fsck is clean and nothing new is referenced. */
  function refused(re: RegExp, at: string, ...extra: string[]): string {
    const before = objectFiles(client);
    const msg = expectOneErrorLine(pull(...extra));
    expect(msg).toMatch(re);
    expect(revParse(client, 'origin:main')).toBe(at);
    ok(larch(['fsck', `--repo=${client}`]));
    expect(objectFiles(client).filter((f) => f.endsWith('.commit'))).toEqual(before.filter((f) => f.endsWith('.commit')));
    return msg;
  }

  beforeAll(() => {
    srv = larchRepo('archive');
    a = ok(larch(['commit', `--repo=${srv}`, '-b', 'main', '--timestamp=2024-01-01 00:00:00 +0000', `--gpg-sign=${keyId}`, `--gpg-homedir=${home}`, tree('a')])).trim();
    signSummary();
    client = larchRepo('bare-user');
    ok(larch(['remote', 'add', `--repo=${client}`, '--set=gpg-verify-summary=true', `--gpg-import=${pubAsc}`, 'origin', url(srv)]));
    ok(pull());
    expect(revParse(client, 'origin:main')).toBe(a);
    b = ok(larch(['commit', `--repo=${srv}`, '-b', 'main', '--timestamp=2024-01-02 00:00:00 +0000', tree('b')])).trim();
    signSummary();
  });

  it('refuses an unsigned commit', () => {
    const msg = refused(/no signatures found/, a);
    expect(msg).toBe(`Commit ${b}: GPG verification enabled, but no signatures found (use gpg-verify=false in remote config to disable)`);
    expect(objectFiles(client)).not.toContain(`${b.slice(0, 2)}/${b.slice(2)}.commit`);
  });

  it('refuses a commit signed by an unknown key', () => {
    ok(larch(['gpg-sign', `--repo=${srv}`, `--gpg-homedir=${otherHome}`, b, otherKeyId]));
    const msg = refused(/public key not found/, a);
    expect(msg).toMatch(new RegExp(`^Commit ${b}: Signature made .* key ID ${otherKeyId}; Can't check signature: public key not found$`));
  });

  it('refuses a commit whose detached metadata belongs to another commit (bytes altered after signing)', () => {
    copyFileSync(obj(srv, a, 'commitmeta'), obj(srv, b, 'commitmeta'));
    const msg = refused(/BAD signature/, a);
    expect(msg).toContain(`Commit ${b}: `);
    expect(msg).toContain('BAD signature from "Larch Test <larch@example.com>"');
  });

  it('refuses a summary whose signature does not match', () => {
    rmSync(obj(srv, b, 'commitmeta'));
    ok(larch(['gpg-sign', `--repo=${srv}`, `--gpg-homedir=${home}`, b, keyId]));
    signSummary();
    const oldSig = readFileSync(join(srv, 'summary.sig'));
    ok(larch(['commit', `--repo=${srv}`, '-b', 'other', tree('other')]));
    ok(larch(['summary', '-u', `--repo=${srv}`]));
    expect(readdirSync(srv)).not.toContain('summary.sig');
    expect(refused(/no summary\.sig found/, a)).toBe('GPG verification enabled, but no summary.sig found (use gpg-verify-summary=false in remote config to disable)');
    writeFileSync(join(srv, 'summary.sig'), oldSig);
    const msg = refused(/BAD signature/, a);
    expect(msg).toMatch(/^Signature made .* key ID [0-9A-F]{16}; BAD signature from "Larch Test <larch@example.com>"$/);
  });

  it('pulls once everything is signed, and shows the status in show and log', () => {
    signSummary();
    ok(pull());
    expect(revParse(client, 'origin:main')).toBe(b);
    const show = ok(larch(['show', `--repo=${client}`, 'origin:main']));
    expect(show).toMatch(/\n\nFound 1 signature:\n\n {2}Signature made .* using EdDSA key ID [0-9A-F]{16}\n {2}Good signature from "Larch Test <larch@example.com>"\n$/);
    const log = ok(larch(['log', `--repo=${client}`, 'origin:main']));
    expect(log).toContain('Good signature from "Larch Test <larch@example.com>"');
  });

  it('with -T refuses a rollback to an older signed commit, before fetching its content; without -T follows it', () => {
    // An older commit the client has never seen, validly signed, with new content.
    const old = ok(larch(['commit', `--repo=${srv}`, '-b', 'main', '--timestamp=2023-12-31 00:00:00 +0000', `--gpg-sign=${keyId}`, `--gpg-homedir=${home}`, tree('old')])).trim();
    signSummary();
    const before = objectFiles(client);
    const msg = expectOneErrorLine(pull('-T'));
    expect(msg).toBe(
      `Upgrade target revision '${old}' with timestamp 'Sun Dec 31 00:00:00 2023' is chronologically older than current revision '${b}' with timestamp 'Tue Jan  2 00:00:00 2024'; use --allow-downgrade to permit`,
    );
    expect(objectFiles(client)).toEqual(before); // neither the commit nor its tree were stored
    expect(revParse(client, 'origin:main')).toBe(b);
    ok(larch(['fsck', `--repo=${client}`]));
    // A server rolled back to a commit the client already had: refused too.
    writeFileSync(join(srv, 'refs/heads/main'), `${a}\n`);
    signSummary();
    expect(expectOneErrorLine(pull('-T'))).toMatch(/is chronologically older than current revision/);
    expect(revParse(client, 'origin:main')).toBe(b);
    ok(pull());
    expect(revParse(client, 'origin:main')).toBe(a);
    ok(larch(['fsck', `--repo=${client}`]));
  });

  it('pull-local --gpg-verify checks signatures with the remote keyring before copying', () => {
    const local = larchRepo('bare-user');
    ok(larch(['remote', 'add', `--repo=${local}`, `--gpg-import=${pubAsc}`, 'origin', 'file:///nonexistent']));
    expectOneErrorLine(larch(['pull-local', `--repo=${local}`, '--gpg-verify', srv, 'other']));
    const msg = expectOneErrorLine(larch(['pull-local', `--repo=${local}`, '--remote=origin', '--gpg-verify', srv, 'other']));
    expect(msg).toMatch(/GPG verification enabled, but no signatures found/);
    expect(revParse(local, 'origin:other')).toBeNull();
    ok(larch(['pull-local', `--repo=${local}`, '--remote=origin', '--gpg-verify', '--gpg-verify-summary', srv, 'main']));
    expect(revParse(local, 'origin:main')).toBe(a);
    ok(larch(['fsck', `--repo=${local}`]));
  });
});

/**
 * `python3 -m http.server` on an ephemeral port (a plain static server, 404 for anything missing),
 * as in the pull tests. A separate process: the larch runs here are synchronous.
 */
async function serve(root: string): Promise<{ url: string; stop: () => Promise<void> }> {
  const child = spawn('python3', ['-u', '-m', 'http.server', '0', '--bind', '127.0.0.1', '--directory', root], { stdio: ['ignore', 'pipe', 'ignore'] });
  // Waits for the line naming the port, however long a loaded machine takes to start Python; a
  // server that dies first fails here, one that hangs runs into the test's timeout.
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

describeGpg('larch pull over HTTP with gpg-verify', () => {
  it('pulls a signed commit and refuses one whose signature belongs to another commit', async () => {
    const srv = larchRepo('archive');
    const a = ok(larch(['commit', `--repo=${srv}`, '-b', 'main', '--timestamp=2024-01-01 00:00:00 +0000', `--gpg-sign=${keyId}`, `--gpg-homedir=${home}`, tree('h1')])).trim();
    ok(larch(['summary', '-u', `--repo=${srv}`, `--gpg-sign=${keyId}`, `--gpg-homedir=${home}`]));
    const server = await serve(srv);
    try {
      const client = larchRepo('archive');
      ok(larch(['remote', 'add', `--repo=${client}`, '--set=gpg-verify-summary=true', `--gpg-import=${pubAsc}`, 'origin', server.url]));
      ok(larch(['pull', `--repo=${client}`, 'origin', 'main']));
      expect(revParse(client, 'origin:main')).toBe(a);
      const b = ok(larch(['commit', `--repo=${srv}`, '-b', 'main', '--timestamp=2024-01-02 00:00:00 +0000', tree('h2')])).trim();
      copyFileSync(obj(srv, a, 'commitmeta'), obj(srv, b, 'commitmeta'));
      ok(larch(['summary', '-u', `--repo=${srv}`, `--gpg-sign=${keyId}`, `--gpg-homedir=${home}`]));
      expect(expectOneErrorLine(larch(['pull', `--repo=${client}`, 'origin', 'main']))).toMatch(new RegExp(`^Commit ${b}: Signature made .*; BAD signature from "Larch Test <larch@example.com>"$`));
      expect(revParse(client, 'origin:main')).toBe(a);
      ok(larch(['fsck', `--repo=${client}`]));
    } finally {
      await server.stop();
    }
  });
});

describeGpg('larch gpg-sign', () => {
  it('appends signatures and --delete removes one per key id', () => {
    const srv = larchRepo('archive');
    const c = ok(larch(['commit', `--repo=${srv}`, '-b', 'main', tree('d')])).trim();
    ok(larch(['gpg-sign', `--repo=${srv}`, `--gpg-homedir=${home}`, c, keyId]));
    ok(larch(['gpg-sign', `--repo=${srv}`, `--gpg-homedir=${otherHome}`, c, otherKeyId]));
    ok(larch(['remote', 'add', `--repo=${srv}`, `--gpg-import=${pubAsc}`, 'self', 'file:///nonexistent']));
    const show = ok(larch(['show', `--repo=${srv}`, c]));
    expect(show).toContain('Found 2 signatures:');
    expect(show).toContain('Good signature from "Larch Test <larch@example.com>"');
    expect(show).toContain("Can't check signature: public key not found");
    expect(ok(larch(['gpg-sign', `--repo=${srv}`, '--delete', c, otherKeyId]))).toBe('Signatures deleted: 1\n');
    expect(ok(larch(['show', `--repo=${srv}`, c]))).toContain('Found 1 signature:');
    expect(ok(larch(['gpg-sign', `--repo=${srv}`, '--delete', c, otherKeyId]))).toBe('Signatures deleted: 0\n');
    expectOneErrorLine(larch(['gpg-sign', `--repo=${srv}`, `--gpg-homedir=${home}`, c, 'NOSUCHKEY']));
  });

  it('remote gpg-import merges keys into REMOTE.trustedkeys.gpg and reports new keys only', () => {
    const repo = larchRepo('archive');
    ok(larch(['remote', 'add', `--repo=${repo}`, 'origin', 'file:///nonexistent']));
    expect(ok(larch(['remote', 'gpg-import', `--repo=${repo}`, '-k', pubAsc, 'origin']))).toBe('Imported 1 GPG key to remote "origin"\n');
    expect(ok(larch(['remote', 'gpg-import', `--repo=${repo}`, '-k', pubAsc, 'origin']))).toBe('Imported 0 GPG keys to remote "origin"\n');
    const otherAsc = join(dir, 'other.asc');
    writeFileSync(otherAsc, gpg(otherHome, '--armor', '--export', otherKeyId));
    expect(ok(larch(['remote', 'gpg-import', `--repo=${repo}`, '--stdin', 'origin'], { input: readFileSync(otherAsc, 'utf8') }))).toBe('Imported 1 GPG key to remote "origin"\n');
    expectOneErrorLine(larch(['remote', 'gpg-import', `--repo=${repo}`, '-k', pubAsc, 'nosuch']));
    expectOneErrorLine(larch(['remote', 'gpg-import', `--repo=${repo}`, '-k', pubAsc, 'origin', '0123456789ABCDEF']));
    // Both keys are trusted now.
    const c = ok(larch(['commit', `--repo=${repo}`, '-b', 'main', `--gpg-sign=${otherKeyId}`, `--gpg-homedir=${otherHome}`, tree('imp')])).trim();
    expect(ok(larch(['show', `--repo=${repo}`, '--gpg-verify-remote=origin', c]))).toContain('Good signature from "Somebody Else <else@example.com>"');
  });

  it('commit --gpg-sign with a key gpg cannot use fails before the branch moves', () => {
    const srv = larchRepo('archive');
    expect(expectOneErrorLine(larch(['commit', `--repo=${srv}`, '-b', 'main', '--gpg-sign=NOSUCHKEY', `--gpg-homedir=${home}`, tree('x')]))).toMatch(/No secret key/);
    expect(revParse(srv, 'main')).toBeNull();
  });
});

describe('ed25519 through the CLI', () => {
  const key = generateEd25519Key();
  const other = generateEd25519Key();
  const pub = key.publicKey.base64;
  const hex = Buffer.from(key.publicKey.bytes).toString('hex');
  let srv = '';
  let c = '';

  beforeAll(() => {
    srv = larchRepo('archive');
    c = ok(larch(['commit', `--repo=${srv}`, '-b', 'main', '--timestamp=2024-01-01 00:00:00 +0000', `--sign=${key.base64}`, tree('ed')])).trim();
    ok(larch(['summary', '-u', `--repo=${srv}`, '--sign-type=ed25519', `--sign=${key.base64}`]));
  });

  it('sign --verify prints ostree sign\'s line; a wrong or revoked key is refused', () => {
    expect(ok(larch(['sign', `--repo=${srv}`, '--verify', '--sign-type=ed25519', c, pub]))).toBe(`ed25519: Signature verified successfully with key '${hex}'\n`);
    expect(expectOneErrorLine(larch(['sign', `--repo=${srv}`, '--verify', c, other.publicKey.base64]))).toMatch(/^No valid signatures found/);
    const keys = join(dir, 'keys-file');
    writeFileSync(keys, `${other.publicKey.base64}\n${pub}\n`);
    ok(larch(['sign', `--repo=${srv}`, '--verify', `--keys-file=${keys}`, c]));
    const keysDir = join(dir, `keysdir${++n}`);
    mkdirSync(keysDir);
    writeFileSync(join(keysDir, 'trusted.ed25519'), `${pub}\n`);
    ok(larch(['sign', `--repo=${srv}`, '--verify', `--keys-dir=${keysDir}`, c]));
    writeFileSync(join(keysDir, 'revoked.ed25519'), `${pub}\n`);
    expect(expectOneErrorLine(larch(['sign', `--repo=${srv}`, '--verify', `--keys-dir=${keysDir}`, c]))).toMatch(/^No valid signatures found.*revoked/);
    expectOneErrorLine(larch(['sign', `--repo=${srv}`, '--sign-type=rsa', c, key.base64]));
  });

  it('sign adds signatures and --delete removes those of a key', () => {
    ok(larch(['sign', `--repo=${srv}`, c, other.base64]));
    ok(larch(['remote', 'add', `--repo=${srv}`, '--no-gpg-verify', `--sign-verify=ed25519=inline:${pub}`, 'self', 'file:///nonexistent']));
    const show = ok(larch(['show', `--repo=${srv}`, c]));
    expect(show).toContain('Found 2 ed25519 signatures:');
    expect(show).toContain(`ed25519: Signature verified successfully with key '${hex}'`);
    ok(larch(['sign', `--repo=${srv}`, '--delete', c, other.publicKey.base64]));
    expect(ok(larch(['show', `--repo=${srv}`, c]))).toContain('Found 1 ed25519 signature:');
  });

  it('remote add --sign-verify writes the keys in ostree\'s order; pull verifies commit and summary', () => {
    const client = larchRepo('bare-user');
    ok(larch(['remote', 'add', `--repo=${client}`, '--set=sign-verify-summary=true', '--no-gpg-verify', `--sign-verify=ed25519=inline:${pub}`, 'origin', url(srv), 'main']));
    expect(readFileSync(join(client, 'config'), 'utf8')).toContain(
      `[remote "origin"]\nurl=${url(srv)}\nbranches=main;\nsign-verify-summary=true\ngpg-verify=false\nverification-ed25519-key=${pub}\nsign-verify=ed25519\n`,
    );
    ok(larch(['remote', 'add', `--repo=${client}`, '--sign-verify=ed25519=file:/etc/keys/pub.ed25519', 'other', url(srv)]));
    expect(readFileSync(join(client, 'config'), 'utf8')).toContain(`[remote "other"]\nurl=${url(srv)}\nverification-ed25519-file=/etc/keys/pub.ed25519\nsign-verify=ed25519\n`);
    expectOneErrorLine(larch(['remote', 'add', `--repo=${client}`, '--sign-verify=ed25519=http:x', 'bad', url(srv)]));
    ok(larch(['pull', `--repo=${client}`, 'origin']));
    expect(revParse(client, 'origin:main')).toBe(c);
    // An unsigned newer commit is refused; so is one signed by a key the remote does not trust.
    const d = ok(larch(['commit', `--repo=${srv}`, '-b', 'main', '--timestamp=2024-01-02 00:00:00 +0000', tree('ed2')])).trim();
    ok(larch(['summary', '-u', `--repo=${srv}`, `--sign=${key.base64}`]));
    expect(expectOneErrorLine(larch(['pull', `--repo=${client}`, 'origin']))).toBe(
      `Can't verify commit ${d}: signature: ed25519: commit have no signatures of my type`,
    );
    ok(larch(['sign', `--repo=${srv}`, d, other.base64]));
    expect(expectOneErrorLine(larch(['pull', `--repo=${client}`, 'origin']))).toBe(`Can't verify commit ${d}: signature: ed25519: Signature couldn't be verified with: key '${hex}'`);
    // Detached metadata of another commit (a trusted signature, over other bytes).
    copyFileSync(obj(srv, c, 'commitmeta'), obj(srv, d, 'commitmeta'));
    expect(expectOneErrorLine(larch(['pull', `--repo=${client}`, 'origin']))).toBe(`Can't verify commit ${d}: signature: ed25519: Signature couldn't be verified with: key '${hex}'`);
    rmSync(obj(srv, d, 'commitmeta'));
    ok(larch(['sign', `--repo=${srv}`, d, key.base64]));
    // A summary signed by the wrong key, and a summary.sig left from an older summary.
    ok(larch(['summary', '-u', `--repo=${srv}`, `--sign=${other.base64}`]));
    expect(expectOneErrorLine(larch(['pull', `--repo=${client}`, 'origin']))).toMatch(/^Can't verify summary: signature: ed25519: Signature couldn't be verified/);
    ok(larch(['summary', '-u', `--repo=${srv}`, `--sign=${key.base64}`]));
    const staleSig = readFileSync(join(srv, 'summary.sig'));
    ok(larch(['commit', `--repo=${srv}`, '-b', 'other', tree('ed3')]));
    ok(larch(['summary', '-u', `--repo=${srv}`]));
    expect(expectOneErrorLine(larch(['pull', `--repo=${client}`, 'origin']))).toBe(
      'Signatures verification enabled, but no summary.sig found (use sign-verify-summary=false in remote config to disable)',
    );
    writeFileSync(join(srv, 'summary.sig'), staleSig);
    expect(expectOneErrorLine(larch(['pull', `--repo=${client}`, 'origin']))).toMatch(/^Can't verify summary: signature: ed25519: Signature couldn't be verified/);
    expect(revParse(client, 'origin:main')).toBe(c);
    ok(larch(['fsck', `--repo=${client}`]));
    ok(larch(['summary', '-u', `--repo=${srv}`, `--sign=${key.base64}`]));
    ok(larch(['pull', `--repo=${client}`, 'origin']));
    expect(revParse(client, 'origin:main')).toBe(d);
    ok(larch(['fsck', `--repo=${client}`]));
  });
});
