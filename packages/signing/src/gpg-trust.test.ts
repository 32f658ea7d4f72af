// Where OSTree finds trusted GPG keys and how it reports them: $OSTREE_GPG_HOME as the global
// keyring directory, `gpgkeypath` entries (files or directories, `;` or `,` but not both),
// `remote gpg-list-keys`' listing of key states, gpg's way of merging a re-imported key, and
// gpg's judgement of a signature by a key whose self-signature was replaced after it signed.
// Keys are made with OpenPGP.js at fixed dates, so nothing depends on the clock.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as openpgp from 'openpgp';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  DEFAULT_GLOBAL_GPG_DIR,
  GpgKeyring,
  GpgVerifier,
  collectRemoteGpgKeys,
  createPullVerifier,
  describeGpgKeys,
  encodeDetachedMetadata,
  findGpgSignatureByKey,
  globalGpgKeyringDir,
  gpgKeyListText,
  importGpgKeys,
  isSigningError,
  loadGpgKeyPathEntry,
  loadRepoGpgKeyring,
  parseGpgKeyPath,
  signDetached,
  OpenPgpSigner,
  type SigningError,
} from './index.js';

const tmp = mkdtempSync(join(tmpdir(), 'larch-signing-trust-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const T2020 = new Date('2020-01-01T00:00:00Z');
const DAY = 86400;
const data = new TextEncoder().encode('exact bytes of a .commit object');

let plain: openpgp.PrivateKey; // "Plain <plain@example.com>", signs with its primary key, never expires
let expiring: openpgp.PrivateKey; // "Short Lived", expired on 2020-01-02
let other: openpgp.PrivateKey;

async function failure(p: Promise<unknown>): Promise<SigningError> {
  const e = await p.then(
    () => null,
    (x: unknown) => x,
  );
  if (!isSigningError(e)) throw new Error(`expected a SigningError, got ${String(e)}`);
  return e;
}

beforeAll(async () => {
  const gen = async (name: string, email: string | undefined, keyExpirationTime = 0) =>
    (await openpgp.generateKey({ type: 'ecc', curve: 'ed25519Legacy', userIDs: [{ name, ...(email ? { email } : {}) }], date: T2020, keyExpirationTime, format: 'object' })).privateKey;
  plain = await gen('Plain', 'plain@example.com');
  expiring = await gen('Short Lived', undefined, DAY);
  other = await gen('Other', 'other@example.com');
});

describe('the global keyring directory', () => {
  const saved = process.env.OSTREE_GPG_HOME;
  afterEach(() => {
    if (saved === undefined) delete process.env.OSTREE_GPG_HOME;
    else process.env.OSTREE_GPG_HOME = saved;
  });

  it('is $OSTREE_GPG_HOME when set (even empty), else /usr/share/ostree/trusted.gpg.d', () => {
    expect(globalGpgKeyringDir({})).toBe(DEFAULT_GLOBAL_GPG_DIR);
    expect(DEFAULT_GLOBAL_GPG_DIR).toBe('/usr/share/ostree/trusted.gpg.d');
    expect(globalGpgKeyringDir({ OSTREE_GPG_HOME: '/x/trusted' })).toBe('/x/trusted');
    expect(globalGpgKeyringDir({ OSTREE_GPG_HOME: '' })).toBe('');
  });

  it('is where a pull looks for keys when the remote has no keyring of its own', async () => {
    const repo = mkdtempSync(join(tmp, 'repo-'));
    const trusted = mkdtempSync(join(tmp, 'trusted-'));
    writeFileSync(join(trusted, 'pubring.gpg'), plain.toPublic().write());
    const meta = encodeDetachedMetadata(await signDetached({ data, signers: [await OpenPgpSigner.fromArmored(plain.armor())] }));
    const ctx = { remote: 'origin', config: { options: {} }, required: ['gpg-verify'], checksum: 'ab'.repeat(32) };
    const etc = join(tmp, 'no-etc');
    process.env.OSTREE_GPG_HOME = trusted;
    await createPullVerifier({ repoPath: repo, etcRemotesDir: etc }).verifyCommit(data, meta, ctx);
    process.env.OSTREE_GPG_HOME = join(tmp, 'empty-global');
    const e = await failure(createPullVerifier({ repoPath: repo, etcRemotesDir: etc }).verifyCommit(data, meta, ctx));
    expect(e.message).toMatch(/Can't check signature: public key not found$/);
    // `show` without a remote reads it too.
    process.env.OSTREE_GPG_HOME = trusted;
    expect((await loadRepoGpgKeyring({ repoPath: repo })).fingerprints()).toEqual([plain.getFingerprint().toUpperCase()]);
  });
});

describe('gpgkeypath', () => {
  it('splits on ; or , as OSTree, and refuses both', () => {
    expect(parseGpgKeyPath('/a.asc')).toEqual(['/a.asc']);
    expect(parseGpgKeyPath('/a.asc;/b.asc;')).toEqual(['/a.asc', '/b.asc']);
    expect(parseGpgKeyPath(',/a.asc')).toEqual(['', '/a.asc']);
    expect(() => parseGpgKeyPath('/a,/b;/c')).toThrow('key value list contains more than one separator');
  });

  it('reads every regular file of a directory, skipping what is not a key, and fails on a path that does not open', async () => {
    const d = join(tmp, 'keydir');
    mkdirSync(join(d, 'sub'), { recursive: true });
    writeFileSync(join(d, 'key.asc'), plain.toPublic().armor());
    writeFileSync(join(d, 'trustdb.gpg'), 'not a key at all');
    writeFileSync(join(d, 'sub', 'other.asc'), other.toPublic().armor()); // not one level below: ignored
    expect((await loadGpgKeyPathEntry(d)).fingerprints()).toEqual([plain.getFingerprint().toUpperCase()]);
    expect((await loadGpgKeyPathEntry(join(d, 'trustdb.gpg'))).keys).toEqual([]);
    const e = await failure(loadGpgKeyPathEntry(join(d, 'INVALIDKEYPATH.asc')));
    expect(e.code).toBe('IO_ERROR');
    expect(e.message).toBe(`opendir(${join(d, 'INVALIDKEYPATH.asc')}): No such file or directory`);
    expect((await failure(loadGpgKeyPathEntry(''))).message).toBe('opendir(): No such file or directory');
  });

  it('fails a pull the way OSTree does: the error is the commit\'s', async () => {
    const repo = mkdtempSync(join(tmp, 'repo-'));
    const v = createPullVerifier({ repoPath: repo, etcRemotesDir: join(tmp, 'none'), globalGpgDir: join(tmp, 'none') });
    const ctx = (gpgkeypath: string) => ({ remote: 'o', config: { options: { gpgkeypath } }, required: ['gpg-verify'], checksum: 'cd'.repeat(32) });
    const meta = encodeDetachedMetadata(await signDetached({ data, signers: [await OpenPgpSigner.fromArmored(plain.armor())] }));
    expect((await failure(v.verifyCommit(data, meta, ctx(join(tmp, 'INVALIDKEYDIRPATH/'))))).message).toBe(
      `Commit ${'cd'.repeat(32)}: opendir(${join(tmp, 'INVALIDKEYDIRPATH/')}): No such file or directory`,
    );
    expect((await failure(v.verifyCommit(data, meta, ctx('/a,/b;/c')))).message).toBe(`Commit ${'cd'.repeat(32)}: key value list contains more than one separator`);
  });

  it('never falls back to the global keys when listing a remote\'s keys', async () => {
    const repo = mkdtempSync(join(tmp, 'repo-'));
    const global = mkdtempSync(join(tmp, 'global-'));
    writeFileSync(join(global, 'k.gpg'), other.toPublic().write());
    const base = { repoPath: repo, remote: 'R1', etcRemotesDir: join(tmp, 'none'), globalDir: global };
    expect((await collectRemoteGpgKeys(base)).keys).toHaveLength(1);
    expect((await collectRemoteGpgKeys({ ...base, global: 'never' })).keys).toHaveLength(0);
  });
});

describe('remote gpg-list-keys text', () => {
  // Dates are printed in local time, as GLib's %c: pin the zone.
  const savedTz = process.env.TZ;
  beforeAll(() => {
    process.env.TZ = 'UTC';
  });
  afterAll(() => {
    if (savedTz === undefined) delete process.env.TZ;
    else process.env.TZ = savedTz;
  });

  it('prints fingerprints, dates, expiry, user ids and WKD URLs in OSTree\'s layout', async () => {
    const ring = new GpgKeyring([plain.toPublic(), expiring.toPublic()]);
    const text = gpgKeyListText(await describeGpgKeys(ring, new Date('2021-01-01T00:00:00Z')));
    const fp = (k: openpgp.PrivateKey) => k.getFingerprint().toUpperCase();
    const sub = (k: openpgp.PrivateKey) => k.getSubkeys()[0].getFingerprint().toUpperCase();
    const c = (d: Date) => (d.getTime() === T2020.getTime() ? 'Wed Jan \u20071 00:00:00 2020' : 'Thu Jan \u20072 00:00:00 2020');
    const lines = text.split('\n');
    expect(lines.slice(0, 3)).toEqual([`Key: ${fp(plain)}`, `  Created: ${c(T2020)}`, '  UID: Plain <plain@example.com>']);
    expect(lines[3]).toMatch(/^ {2}Advanced update URL: https:\/\/openpgpkey\.example\.com\/\.well-known\/openpgpkey\/example\.com\/hu\/[a-z0-9]{32}\?l=plain$/);
    expect(lines[4]).toMatch(/^ {2}Direct update URL: https:\/\/example\.com\/\.well-known\/openpgpkey\/hu\/[a-z0-9]{32}\?l=plain$/);
    expect(lines.slice(5, 7)).toEqual([`  Subkey: ${sub(plain)}`, `    Created: ${c(T2020)}`]);
    // The expired key: "Expired:", and a user id without an address has empty URLs.
    expect(lines.slice(7, 13)).toEqual([
      `Key: ${fp(expiring)}`,
      `  Created: ${c(T2020)}`,
      `  Expired: ${c(new Date(T2020.getTime() + DAY * 1000))}`,
      '  UID: Short Lived',
      '  Advanced update URL: ',
      '  Direct update URL: ',
    ]);
    expect(lines[13]).toBe(`  Subkey: ${sub(expiring)}`);
    expect(text.endsWith('\n')).toBe(true);
  });

  it('marks a revoked key, its user ids and its subkeys revoked, and not expired', async () => {
    const revoked = (await openpgp.revokeKey({ key: expiring, date: new Date(T2020.getTime() + 3600_000), format: 'object' })).publicKey;
    const [k] = await describeGpgKeys(new GpgKeyring([revoked]), new Date('2021-01-01T00:00:00Z'));
    expect(k.subkeys.map((s) => [s.revoked, s.expired])).toEqual([
      [true, false],
      [true, false],
    ]);
    expect(k.uids.map((u) => u.revoked)).toEqual([true]);
    const text = gpgKeyListText([k]);
    expect(text).toMatch(/^Key: [0-9A-F]{40} \(revoked\)\n {2}Created: .*\n {2}Expires: .*\n {2}UID: Short Lived \(revoked\)\n/);
    expect(text).toMatch(/\n {2}Subkey: [0-9A-F]{40} \(revoked\)\n/);
  });
});

describe('importGpgKeys merges a key already there, as gpg does', () => {
  it('keeps a revocation when an older copy of the key is imported again', async () => {
    const repo = mkdtempSync(join(tmp, 'repo-'));
    const revoked = (await openpgp.revokeKey({ key: plain, date: new Date('2020-06-01T00:00:00Z'), format: 'object' })).publicKey;
    const src = (k: openpgp.PublicKey) => [{ bytes: k.write(), name: 'k.gpg' }];
    expect((await importGpgKeys({ repoPath: repo, remote: 'r', sources: src(revoked) })).imported).toBe(1);
    // The copy from before the revocation adds nothing new, and takes nothing away.
    expect((await importGpgKeys({ repoPath: repo, remote: 'r', sources: src(plain.toPublic()) })).imported).toBe(0);
    const ring = await loadRepoGpgKeyring({ repoPath: repo, remote: 'r', etcRemotesDir: join(tmp, 'none'), globalDir: join(tmp, 'none') });
    expect(await ring.keys[0].isRevoked()).toBe(true);
    const meta = await signDetached({ data, signers: [await OpenPgpSigner.fromArmored(plain.armor(), { now: () => new Date('2020-02-01T00:00:00Z') })] });
    const [report] = await new GpgVerifier(ring).verify(data, [(meta[0][1].value as Uint8Array[])[0]]);
    expect(report).toMatchObject({ valid: false, revoked: true });
  });
});

describe('findGpgSignatureByKey', () => {
  it('finds a signature by key id, fingerprint or user id through the keyring, and none for an unknown key', async () => {
    const sigs = [
      (await signDetached({ data, signers: [await OpenPgpSigner.fromArmored(other.armor())] }))[0][1].value as Uint8Array[],
      (await signDetached({ data, signers: [await OpenPgpSigner.fromArmored(plain.armor())] }))[0][1].value as Uint8Array[],
    ].map((a) => a[0]);
    const ring = new GpgKeyring([plain.toPublic(), other.toPublic()]);
    expect(await findGpgSignatureByKey(sigs, ring, plain.getFingerprint())).toBe(1);
    expect(await findGpgSignatureByKey(sigs, ring, plain.getKeyID().toHex().slice(-8))).toBe(1);
    expect(await findGpgSignatureByKey(sigs, ring, 'other@example')).toBe(0);
    expect(await findGpgSignatureByKey(sigs, ring, other.getKeyID().toHex(), new Set([0]))).toBe(-1);
    expect(await findGpgSignatureByKey(sigs, new GpgKeyring([other.toPublic()]), plain.getKeyID().toHex())).toBe(-1);
  });
});
