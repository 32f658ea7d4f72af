// Interop with the real `ostree` 2022.7 and GnuPG (tag: interop): signatures made by
// `ostree gpg-sign` / `ostree summary -u --gpg-sign` verify with our verifier, and commitmeta /
// summary.sig written by us are accepted by `ostree show --gpg-verify-remote` and by a real
// `ostree pull` with gpg-verify=true and gpg-verify-summary=true.
// In CI (CI=true) a missing ostree or gpg fails these tests; locally they are skipped.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  GPG_SIGNATURES_KEY,
  GpgProgramSigner,
  GpgVerifier,
  OpenPgpSigner,
  decodeDetachedMetadata,
  encodeDetachedMetadata,
  getSignatures,
  loadRemoteGpgKeyring,
  signDetached,
  verifyDetached,
  type GpgKeyring,
} from './index.js';

const have = (cmd: string) => spawnSync(cmd, ['--version'], { encoding: 'utf8' }).status === 0;
const haveTools = have('ostree') && have('gpg');
const inCI = process.env.CI === 'true';
const interop = haveTools || inCI ? it : it.skip;

let dir = '';
let home = '';
let keyId = '';
let pubAsc = '';
let counter = 0;

function run(cmd: string, args: string[], input?: string): { status: number | null; stdout: string; stderr: string } {
  if (!haveTools) throw new Error('ostree and gpg are required for interop tests (CI=true) but were not found in PATH');
  const r = spawnSync(cmd, args, { encoding: 'utf8', input });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}
function ok(cmd: string, ...args: string[]): string {
  const r = run(cmd, args);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout;
}

/** A fresh archive repo with one commit on `main`; returns its path and the commit checksum. */
function makeRepo(): { repo: string; commit: string } {
  const repo = join(dir, `repo${++counter}`);
  const tree = join(dir, `tree${counter}`);
  mkdirSync(join(tree, 'usr/bin'), { recursive: true });
  writeFileSync(join(tree, 'usr/bin/hello'), `hello ${counter}\n`);
  ok('ostree', 'init', `--repo=${repo}`, '--mode=archive');
  const commit = ok('ostree', 'commit', `--repo=${repo}`, '-b', 'main', `--tree=dir=${tree}`, '-s', `commit ${counter}`).trim();
  return { repo, commit };
}
const objPath = (repo: string, c: string, ext: string) => join(repo, 'objects', c.slice(0, 2), `${c.slice(2)}.${ext}`);

/** Pull `main` from `repo` over file:// with GPG verification of commits and summary. */
function pull(repo: string): { status: number | null; stderr: string } {
  const client = join(dir, `client${++counter}`);
  ok('ostree', 'init', `--repo=${client}`, '--mode=archive');
  ok('ostree', 'remote', 'add', `--repo=${client}`, '--set=gpg-verify-summary=true', `--gpg-import=${pubAsc}`, 'origin', `file://${repo}`);
  const r = run('ostree', ['pull', `--repo=${client}`, 'origin', 'main']);
  return { status: r.status, stderr: r.stderr };
}

async function remoteKeyring(repo: string): Promise<GpgKeyring> {
  ok('ostree', 'remote', 'add', `--repo=${repo}`, `--gpg-import=${pubAsc}`, 'self', `file://${repo}`);
  // The keyring exactly as `ostree remote add --gpg-import` stored it.
  return loadRemoteGpgKeyring({ repoPath: repo, remote: 'self', etcRemotesDir: join(dir, 'no-etc'), globalDir: join(dir, 'no-global') });
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'larch-signing-ostree-'));
  home = join(dir, 'gnupg');
  mkdirSync(home, { mode: 0o700 });
  if (!haveTools) return;
  ok('gpg', '--homedir', home, '--batch', '--passphrase', '', '--quick-gen-key', 'Larch Test <larch@example.com>', 'ed25519', 'sign', 'never');
  keyId = /^pub:[^:]*:[^:]*:[^:]*:([0-9A-F]{16}):/m.exec(ok('gpg', '--homedir', home, '--list-keys', '--with-colons'))![1];
  pubAsc = join(dir, 'pub.asc');
  writeFileSync(pubAsc, ok('gpg', '--homedir', home, '--armor', '--export', keyId));
});

afterAll(() => {
  if (haveTools) spawnSync('gpgconf', ['--homedir', home, '--kill', 'gpg-agent']);
  rmSync(dir, { recursive: true, force: true });
});

describe('ostree-made signatures verify with Larch', () => {
  interop('ostree gpg-sign: the .commitmeta signature verifies over the .commit bytes; tampering is refused', async () => {
    const { repo, commit } = makeRepo();
    ok('ostree', 'gpg-sign', `--repo=${repo}`, `--gpg-homedir=${home}`, commit, keyId);
    const dict = decodeDetachedMetadata(readFileSync(objPath(repo, commit, 'commitmeta')));
    expect(getSignatures(dict, GPG_SIGNATURES_KEY)).toHaveLength(1);
    const data = readFileSync(objPath(repo, commit, 'commit'));
    const policy = { verifiers: [new GpgVerifier(await remoteKeyring(repo))] };
    const r = await verifyDetached({ data, dict, policy });
    expect(r.valid).toBe(true);
    expect(r.signatures[0]).toMatchObject({ keyId, userId: 'Larch Test <larch@example.com>', revoked: false, expired: false });
    const tampered = Buffer.from(data);
    tampered[tampered.length - 1] ^= 1;
    expect((await verifyDetached({ data: tampered, dict, policy })).valid).toBe(false);
  });

  interop('ostree summary -u --gpg-sign: summary.sig verifies over the summary bytes', async () => {
    const { repo } = makeRepo();
    ok('ostree', 'summary', '-u', `--repo=${repo}`, `--gpg-sign=${keyId}`, `--gpg-homedir=${home}`);
    const dict = decodeDetachedMetadata(readFileSync(join(repo, 'summary.sig')));
    const r = await verifyDetached({ data: readFileSync(join(repo, 'summary')), dict, policy: { verifiers: [new GpgVerifier(await remoteKeyring(repo))] } });
    expect(r.valid).toBe(true);
    expect(r.signatures[0].keyId).toBe(keyId);
  });
});

describe('Larch-made signatures verify with ostree', () => {
  interop('a commit signed through gpg and a summary signed with OpenPGP.js pass ostree pull with gpg-verify and gpg-verify-summary', async () => {
    const { repo, commit } = makeRepo();
    const data = readFileSync(objPath(repo, commit, 'commit'));
    const dict = await signDetached({ data, signers: [new GpgProgramSigner({ homedir: home, keyId })] });
    writeFileSync(objPath(repo, commit, 'commitmeta'), encodeDetachedMetadata(dict));
    ok('ostree', 'summary', '-u', `--repo=${repo}`);
    const secret = ok('gpg', '--homedir', home, '--batch', '--pinentry-mode', 'loopback', '--passphrase', '', '--armor', '--export-secret-keys', keyId);
    const sumDict = await signDetached({ data: readFileSync(join(repo, 'summary')), signers: [await OpenPgpSigner.fromArmored(secret)] });
    writeFileSync(join(repo, 'summary.sig'), encodeDetachedMetadata(sumDict));
    const p = pull(repo);
    expect(p.status, p.stderr).toBe(0);
    ok('ostree', 'remote', 'add', `--repo=${repo}`, `--gpg-import=${pubAsc}`, 'self', `file://${repo}`);
    const shown = ok('ostree', 'show', `--repo=${repo}`, '--gpg-verify-remote=self', commit);
    expect(shown).toMatch(/Found 1 signature/);
    expect(shown).toMatch(/Good signature from "Larch Test <larch@example.com>"/);
  });

  interop('appending our signature keeps ostree\'s, and ostree sees both', async () => {
    const { repo, commit } = makeRepo();
    ok('ostree', 'gpg-sign', `--repo=${repo}`, `--gpg-homedir=${home}`, commit, keyId);
    const meta = objPath(repo, commit, 'commitmeta');
    const secret = ok('gpg', '--homedir', home, '--batch', '--pinentry-mode', 'loopback', '--passphrase', '', '--armor', '--export-secret-keys', keyId);
    const dict = await signDetached({ data: readFileSync(objPath(repo, commit, 'commit')), dict: decodeDetachedMetadata(readFileSync(meta)), signers: [await OpenPgpSigner.fromArmored(secret)] });
    writeFileSync(meta, encodeDetachedMetadata(dict));
    ok('ostree', 'remote', 'add', `--repo=${repo}`, `--gpg-import=${pubAsc}`, 'self', `file://${repo}`);
    const shown = ok('ostree', 'show', `--repo=${repo}`, '--gpg-verify-remote=self', commit);
    expect(shown).toMatch(/Found 2 signatures/);
    expect(shown.match(/Good signature/g)).toHaveLength(2);
  });

  interop('ostree pull refuses a commit signature over other bytes, and a summary.sig over another summary', async () => {
    const { repo, commit } = makeRepo();
    const signer = new GpgProgramSigner({ homedir: home, keyId });
    const data = readFileSync(objPath(repo, commit, 'commit'));
    const wrong = await signDetached({ data: Buffer.concat([data, Buffer.from('x')]), signers: [signer] });
    writeFileSync(objPath(repo, commit, 'commitmeta'), encodeDetachedMetadata(wrong));
    ok('ostree', 'summary', '-u', `--repo=${repo}`);
    const summary = readFileSync(join(repo, 'summary'));
    writeFileSync(join(repo, 'summary.sig'), encodeDetachedMetadata(await signDetached({ data: summary, signers: [signer] })));
    const badCommit = pull(repo);
    expect(badCommit.status).not.toBe(0);
    expect(badCommit.stderr).toMatch(/BAD signature/);
    // Now a good commit signature but a summary.sig over different bytes.
    writeFileSync(objPath(repo, commit, 'commitmeta'), encodeDetachedMetadata(await signDetached({ data, signers: [signer] })));
    writeFileSync(join(repo, 'summary.sig'), encodeDetachedMetadata(await signDetached({ data: Buffer.concat([summary, Buffer.from('x')]), signers: [signer] })));
    const badSummary = pull(repo);
    expect(badSummary.status).not.toBe(0);
    expect(badSummary.stderr).toMatch(/BAD signature/);
    // And with both right, the same repo pulls.
    writeFileSync(join(repo, 'summary.sig'), encodeDetachedMetadata(await signDetached({ data: summary, signers: [signer] })));
    expect(pull(repo).status).toBe(0);
  });
});
