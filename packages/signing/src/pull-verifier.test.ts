// createPullVerifier (the signature hook of a pull), importGpgKeys / loadRepoGpgKeyring and
// the OSTree-worded text helpers. Keys are made with OpenPGP.js and node:crypto (no gpg).
import { mkdtempSync, rmSync, writeFileSync, mkdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as openpgp from 'openpgp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Ed25519Signer,
  OpenPgpSigner,
  createPullVerifier,
  encodeDetachedMetadata,
  formatCDate,
  generateEd25519Key,
  importGpgKeys,
  isSigningError,
  loadRepoGpgKeyring,
  signDetached,
  signatureBlock,
  type SigningError,
} from './index.js';

const commit = new TextEncoder().encode('exact bytes of a .commit object');
const checksum = 'ab'.repeat(32);
let dir = '';
let signer: OpenPgpSigner;
let otherSigner: OpenPgpSigner;
let publicArmored = '';
let keyId = '';

const ctx = (options: Record<string, string>, required: string[], remote = 'origin') => ({ remote, config: { options }, required, checksum });

async function failure(p: Promise<unknown>): Promise<SigningError> {
  const e = await p.then(
    () => null,
    (x: unknown) => x,
  );
  if (!isSigningError(e)) throw new Error(`expected a SigningError, got ${String(e)}`);
  return e;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'larch-pullverifier-'));
  const k = await openpgp.generateKey({ type: 'ecc', curve: 'ed25519Legacy', userIDs: [{ name: 'Larch Test', email: 'larch@example.com' }], format: 'armored' });
  const o = await openpgp.generateKey({ type: 'ecc', curve: 'ed25519Legacy', userIDs: [{ name: 'Other', email: 'o@example.com' }], format: 'armored' });
  signer = await OpenPgpSigner.fromArmored(k.privateKey);
  otherSigner = await OpenPgpSigner.fromArmored(o.privateKey);
  publicArmored = k.publicKey;
  keyId = signer.keyId;
  const r = await importGpgKeys({ repoPath: dir, remote: 'origin', sources: [{ bytes: new TextEncoder().encode(publicArmored), name: 'pub.asc' }] });
  expect(r.imported).toBe(1);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('createPullVerifier: gpg-verify', () => {
  const opts = () => ({ repoPath: dir, etcRemotesDir: join(dir, 'no-etc'), globalGpgDir: join(dir, 'no-global') });

  it('accepts a commit signed by a key in REMOTE.trustedkeys.gpg', async () => {
    const meta = encodeDetachedMetadata(await signDetached({ data: commit, signers: [signer] }));
    await createPullVerifier(opts()).verifyCommit(commit, meta, ctx({}, ['gpg-verify']));
  });

  it('refuses an unsigned commit in OSTree\'s words', async () => {
    const e = await failure(createPullVerifier(opts()).verifyCommit(commit, null, ctx({}, ['gpg-verify'])));
    expect(e.code).toBe('SIGNATURE_MISSING');
    expect(e.message).toBe(`Commit ${checksum}: GPG verification enabled, but no signatures found (use gpg-verify=false in remote config to disable)`);
  });

  it('refuses an unknown key, also for a remote without any keyring', async () => {
    const meta = encodeDetachedMetadata(await signDetached({ data: commit, signers: [otherSigner] }));
    const e = await failure(createPullVerifier(opts()).verifyCommit(commit, meta, ctx({}, ['gpg-verify'])));
    expect(e.message).toMatch(new RegExp(`^Commit ${checksum}: Signature made .* using EdDSA key ID ${otherSigner.keyId}; Can't check signature: public key not found$`));
    const good = encodeDetachedMetadata(await signDetached({ data: commit, signers: [signer] }));
    const e2 = await failure(createPullVerifier(opts()).verifyCommit(commit, good, ctx({}, ['gpg-verify'], 'nokeys')));
    expect(e2.message).toContain("Can't check signature: public key not found");
  });

  it('refuses altered bytes with BAD signature', async () => {
    const meta = encodeDetachedMetadata(await signDetached({ data: commit, signers: [signer] }));
    const altered = Uint8Array.from(commit);
    altered[0] ^= 1;
    const e = await failure(createPullVerifier(opts()).verifyCommit(altered, meta, ctx({}, ['gpg-verify'])));
    expect(e.code).toBe('SIGNATURE_INVALID');
    expect(e.message).toContain('BAD signature from "Larch Test <larch@example.com>"');
  });

  it('summary: a missing summary.sig and a signature over other bytes are refused', async () => {
    const v = createPullVerifier(opts());
    const e = await failure(v.verifySummary(commit, null, ctx({ 'gpg-verify-summary': 'true' }, ['gpg-verify-summary'])));
    expect(e.message).toBe('GPG verification enabled, but no summary.sig found (use gpg-verify-summary=false in remote config to disable)');
    const sig = encodeDetachedMetadata(await signDetached({ data: new Uint8Array([1, 2, 3]), signers: [signer] }));
    const e2 = await failure(v.verifySummary(commit, sig, ctx({ 'gpg-verify-summary': 'true' }, ['gpg-verify-summary'])));
    expect(e2.message).toMatch(/^Signature made .*; BAD signature from/);
    await v.verifySummary(commit, encodeDetachedMetadata(await signDetached({ data: commit, signers: [signer] })), ctx({}, ['gpg-verify-summary']));
  });

  it('checks only what the policy requires', async () => {
    await createPullVerifier(opts()).verifyCommit(commit, null, ctx({ 'gpg-verify': 'false' }, []));
  });
});

describe('createPullVerifier: sign-verify (ed25519)', () => {
  const key = generateEd25519Key();
  const other = generateEd25519Key();

  it('accepts the remote\'s inline key, refuses others and revoked keys', async () => {
    const keysDir = join(dir, 'ed-roots');
    mkdirSync(keysDir, { recursive: true });
    const v = createPullVerifier({ repoPath: dir, ed25519KeysDirs: [keysDir] });
    const options = { 'sign-verify': 'true', 'verification-ed25519-key': key.publicKey.base64 };
    const meta = encodeDetachedMetadata(await signDetached({ data: commit, signers: [new Ed25519Signer(key)] }));
    await v.verifyCommit(commit, meta, ctx(options, ['sign-verify']));
    const bad = encodeDetachedMetadata(await signDetached({ data: commit, signers: [new Ed25519Signer(other)] }));
    const e = await failure(v.verifyCommit(commit, bad, ctx(options, ['sign-verify'])));
    expect(e.message).toBe(`Can't verify commit ${checksum}: signature: ed25519: Signature couldn't be verified with: key '${Buffer.from(key.publicKey.bytes).toString('hex')}'`);
    const none = await failure(v.verifyCommit(commit, null, ctx(options, ['sign-verify'])));
    expect(none.code).toBe('SIGNATURE_MISSING');
    expect(none.message).toBe(`Can't verify commit ${checksum}: signature: ed25519: commit have no signatures of my type`);
    const noSig = await failure(v.verifySummary(commit, null, ctx(options, ['sign-verify-summary'])));
    expect(noSig.message).toBe('Signatures verification enabled, but no summary.sig found (use sign-verify-summary=false in remote config to disable)');

    writeFileSync(join(keysDir, 'revoked.ed25519'), `${key.publicKey.base64}\n`);
    const v2 = createPullVerifier({ repoPath: dir, ed25519KeysDirs: [keysDir] });
    const r = await failure(v2.verifyCommit(commit, meta, ctx(options, ['sign-verify'])));
    expect(r.code).toBe('KEY_REVOKED');
    expect(r.message).toContain('revoked');
  });
});

describe('keyrings in the repository', () => {
  it('importGpgKeys merges, counts only new keys, filters by key id, and writes a binary keyring', async () => {
    const repo = mkdtempSync(join(dir, 'repo-'));
    const src = [{ bytes: new TextEncoder().encode(publicArmored), name: 'pub.asc' }];
    expect((await importGpgKeys({ repoPath: repo, remote: 'r', sources: src })).imported).toBe(1);
    expect((await importGpgKeys({ repoPath: repo, remote: 'r', sources: src })).imported).toBe(0);
    const bytes = readFileSync(join(repo, 'r.trustedkeys.gpg'));
    expect(bytes.toString('latin1')).not.toContain('BEGIN PGP');
    await expect(importGpgKeys({ repoPath: repo, remote: 'r2', sources: src, keyIds: ['0123456789ABCDEF'] })).rejects.toThrow(/not found/);
    expect((await importGpgKeys({ repoPath: repo, remote: 'r2', sources: src, keyIds: [keyId] })).imported).toBe(1);
    const all = await loadRepoGpgKeyring({ repoPath: repo, globalDir: join(dir, 'none') });
    expect(all.keys).toHaveLength(1);
    expect((await loadRepoGpgKeyring({ repoPath: repo, remote: 'missing', etcRemotesDir: join(dir, 'none'), globalDir: join(dir, 'none') })).keys).toHaveLength(0);
    await expect(importGpgKeys({ repoPath: repo, remote: '../x', sources: src })).rejects.toThrow(/Invalid remote name/);
  });
});

describe('text', () => {
  it('formats %c dates and the Found N signatures block', () => {
    // GLib pads %e with U+2007 FIGURE SPACE (g_print turns it into `?` in the C locale).
    expect(formatCDate(new Date(Date.UTC(2024, 0, 1)), { utc: true })).toBe('Mon Jan \u20071 00:00:00 2024');
    expect(formatCDate(new Date(Date.UTC(2026, 10, 25, 23, 44, 31)), { utc: true })).toBe('Wed Nov 25 23:44:31 2026');
    expect(signatureBlock([])).toBe('');
    const block = signatureBlock([
      { scheme: 'gpg', keyId: 'ABCDEF0123456789', fingerprint: 'F'.repeat(40), userId: 'A <a@x>', algorithm: 'RSA', valid: true, reason: null, expired: false, revoked: false, timestamp: new Date(0), keysTried: [] },
      { scheme: 'gpg', keyId: '0123456789ABCDEF', fingerprint: null, algorithm: 'EdDSA', valid: false, reason: "Can't check signature: public key not found", expired: false, revoked: false, timestamp: new Date(0), keysTried: [] },
    ]);
    expect(block).toMatch(/^Found 2 signatures:\n\n {2}Signature made .* 1970 using RSA key ID ABCDEF0123456789\n {2}Good signature from "A <a@x>"\n\n {2}Signature made .* using EdDSA key ID 0123456789ABCDEF\n {2}Can't check signature: public key not found\n$/);
  });
});
