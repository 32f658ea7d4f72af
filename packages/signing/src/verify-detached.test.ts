import * as openpgp from 'openpgp';
import { describe, expect, it } from 'vitest';
import {
  Ed25519Signer,
  Ed25519Verifier,
  GpgKeyring,
  GpgVerifier,
  OpenPgpSigner,
  assertVerified,
  generateEd25519Key,
  getSignatures,
  GPG_SIGNATURES_KEY,
  parseGpgKeyring,
  signDetached,
  verifyDetached,
} from './index.js';

const data = new TextEncoder().encode('the exact bytes of a .commit object');

async function pgpKey(opts: { keyExpirationTime?: number; date?: Date } = {}) {
  const { privateKey, publicKey } = await openpgp.generateKey({
    type: 'ecc',
    curve: 'ed25519Legacy',
    userIDs: [{ name: 'Test', email: 't@example.com' }],
    format: 'armored',
    ...opts,
  });
  return { privateKey, publicKey };
}

describe('verifyDetached with ed25519', () => {
  it('accepts a signed dict and refuses tampered data, naming the key in the error', async () => {
    const k = generateEd25519Key();
    const dict = await signDetached({ data, signers: [new Ed25519Signer(k)] });
    const policy = { verifiers: [new Ed25519Verifier({ trusted: [k.publicKey] })] };
    const ok = await verifyDetached({ data, dict, policy });
    expect(ok.valid).toBe(true);
    expect(() => assertVerified(ok, 'commit abc')).not.toThrow();
    const bad = await verifyDetached({ data: data.subarray(1), dict, policy });
    expect(bad.valid).toBe(false);
    expect(() => assertVerified(bad, 'commit abc')).toThrow(expect.objectContaining({ code: 'SIGNATURE_INVALID', message: expect.stringContaining(`ed25519: Signature couldn't be verified with: key '${Buffer.from(k.publicKey.bytes).toString('hex')}'`) }));
  });

  it('reports SIGNATURE_MISSING for an unsigned object and KEY_REVOKED for a revoked signer', async () => {
    const k = generateEd25519Key();
    const policy = { verifiers: [new Ed25519Verifier({ trusted: [k.publicKey], revoked: [k.publicKey] })] };
    const none = await verifyDetached({ data, dict: [], policy });
    expect(() => assertVerified(none, 'commit abc')).toThrow(expect.objectContaining({ code: 'SIGNATURE_MISSING' }));
    const dict = await signDetached({ data, signers: [new Ed25519Signer(k)] });
    const revoked = await verifyDetached({ data, dict, policy });
    expect(() => assertVerified(revoked, 'commit abc')).toThrow(expect.objectContaining({ code: 'KEY_REVOKED' }));
  });

  it('one valid signature is enough, other failing ones are only reported', async () => {
    const [good, unknown] = [generateEd25519Key(), generateEd25519Key()];
    const dict = await signDetached({ data, signers: [new Ed25519Signer(unknown), new Ed25519Signer(good)] });
    const r = await verifyDetached({ data, dict, policy: { verifiers: [new Ed25519Verifier({ trusted: [good.publicKey] })] } });
    expect(r.valid).toBe(true);
    expect(r.signatures.map((s) => s.valid)).toEqual([false, true]);
  });

  it('requires every enabled scheme', async () => {
    const k = generateEd25519Key();
    const { publicKey } = await pgpKey();
    const dict = await signDetached({ data, signers: [new Ed25519Signer(k)] });
    const r = await verifyDetached({
      data,
      dict,
      policy: { verifiers: [new Ed25519Verifier({ trusted: [k.publicKey] }), new GpgVerifier(await parseGpgKeyring(Buffer.from(publicKey)))] },
    });
    expect(r.valid).toBe(false);
    expect(r.schemes).toEqual([
      { scheme: 'ed25519', found: 1, validCount: 1 },
      { scheme: 'gpg', found: 0, validCount: 0 },
    ]);
    expect(() => assertVerified(r, 'summary')).toThrow(expect.objectContaining({ code: 'SIGNATURE_MISSING', message: expect.stringContaining('GPG verification enabled, but no signatures found') }));
    await expect(verifyDetached({ data, dict, policy: { verifiers: [] } })).rejects.toBeInstanceOf(TypeError);
  });
});

describe('GpgVerifier (OpenPGP.js only)', () => {
  it('verifies an OpenPgpSigner signature and reports key id, fingerprint and timestamp', async () => {
    const { privateKey, publicKey } = await pgpKey();
    const signer = await OpenPgpSigner.fromArmored(privateKey);
    const dict = await signDetached({ data, signers: [signer] });
    const ring = await parseGpgKeyring(Buffer.from(publicKey));
    const r = await verifyDetached({ data, dict, policy: { verifiers: [new GpgVerifier(ring)] } });
    expect(r.valid).toBe(true);
    const [s] = r.signatures;
    expect(s.keyId).toBe(signer.keyId);
    expect(s.fingerprint).toBe(ring.fingerprints()[0]);
    expect(s.userId).toBe('Test <t@example.com>');
    expect(s.timestamp).toBeInstanceOf(Date);
    // binary, not armored, and a signature packet (tag 2)
    const [blob] = getSignatures(dict, GPG_SIGNATURES_KEY);
    expect(blob[0] & 0x80).toBe(0x80);
  });

  it('refuses tampered data and unknown keys', async () => {
    const a = await pgpKey();
    const b = await pgpKey();
    const dict = await signDetached({ data, signers: [await OpenPgpSigner.fromArmored(a.privateKey)] });
    const ringA = await parseGpgKeyring(Buffer.from(a.publicKey));
    const tampered = await verifyDetached({ data: Uint8Array.from([...data, 1]), dict, policy: { verifiers: [new GpgVerifier(ringA)] } });
    expect(tampered.signatures[0]).toMatchObject({ valid: false, revoked: false, expired: false });
    expect(tampered.signatures[0].reason).toMatch(/BAD signature/);
    const ringB = await parseGpgKeyring(Buffer.from(b.publicKey));
    const unknown = await verifyDetached({ data, dict, policy: { verifiers: [new GpgVerifier(ringB)] } });
    expect(unknown.signatures[0].reason).toBe("Can't check signature: public key not found");
    expect(unknown.signatures[0].keysTried).toEqual(ringB.fingerprints());
  });

  it('refuses a signature by a key revoked afterwards (KEY_REVOKED)', async () => {
    const a = await pgpKey();
    const dict = await signDetached({ data, signers: [await OpenPgpSigner.fromArmored(a.privateKey)] });
    const priv = await openpgp.readPrivateKey({ armoredKey: a.privateKey });
    const { publicKey: revokedPub } = await openpgp.revokeKey({ key: priv, format: 'armored', date: new Date(Date.now() + 1000) });
    const r = await verifyDetached({ data, dict, policy: { verifiers: [new GpgVerifier(await parseGpgKeyring(Buffer.from(revokedPub)))] }, now: new Date(Date.now() + 60_000) });
    expect(r.signatures[0]).toMatchObject({ valid: false, revoked: true });
    expect(() => assertVerified(r, 'commit x')).toThrow(expect.objectContaining({ code: 'KEY_REVOKED' }));
  });

  it('refuses a signature by a key that has expired since (KEY_EXPIRED), and accepts it before expiry', async () => {
    const created = new Date(Date.now() - 3600_000);
    const a = await pgpKey({ keyExpirationTime: 600, date: created });
    const signer = await OpenPgpSigner.fromArmored(a.privateKey, { now: () => new Date(created.getTime() + 60_000) });
    const dict = await signDetached({ data, signers: [signer] });
    const policy = { verifiers: [new GpgVerifier(await parseGpgKeyring(Buffer.from(a.publicKey)))] };
    const before = await verifyDetached({ data, dict, policy, now: new Date(created.getTime() + 120_000) });
    expect(before.valid).toBe(true);
    const after = await verifyDetached({ data, dict, policy });
    expect(after.signatures[0]).toMatchObject({ valid: false, expired: true, revoked: false });
    expect(() => assertVerified(after, 'commit x')).toThrow(expect.objectContaining({ code: 'KEY_EXPIRED' }));
  });

  it('selects the signing key by id, and refuses an id the key does not have', async () => {
    const a = await pgpKey();
    const id = (await openpgp.readKey({ armoredKey: a.publicKey })).getKeyID().toHex().toUpperCase();
    expect((await OpenPgpSigner.fromArmored(a.privateKey, { keyId: `0x${id}` })).keyId).toBe(id);
    await expect(OpenPgpSigner.fromArmored(a.privateKey, { keyId: 'DEADBEEFDEADBEEF' })).rejects.toMatchObject({ code: 'KEY_NOT_FOUND' });
  });

  it('a valid signature from a second keyring entry with the same key id is not marked revoked by the first', async () => {
    const a = await pgpKey();
    const dict = await signDetached({ data, signers: [await OpenPgpSigner.fromArmored(a.privateKey)] });
    const priv = await openpgp.readPrivateKey({ armoredKey: a.privateKey });
    const revoked = (await openpgp.revokeKey({ key: priv, format: 'object' })).publicKey;
    const good = await openpgp.readKey({ armoredKey: a.publicKey });
    // Two copies of one key (a stale revoked copy first) in a keyring built by hand.
    const ring = new GpgKeyring([revoked, good]);
    const [r] = await new GpgVerifier(ring).verify(data, getSignatures(dict, GPG_SIGNATURES_KEY));
    expect(r).toMatchObject({ valid: true, revoked: false });
  });

  it('reports malformed signature blobs without throwing', async () => {
    const a = await pgpKey();
    const ring = await parseGpgKeyring(Buffer.from(a.publicKey));
    const [r] = await new GpgVerifier(ring).verify(data, [Uint8Array.from([1, 2, 3])]);
    expect(r.valid).toBe(false);
    expect(r.reason).toMatch(/Malformed/);
  });

  it('merges keyrings and refuses non-GnuPG-2.2 keys for signing', async () => {
    const a = await pgpKey();
    const ring = await parseGpgKeyring(Buffer.from(a.publicKey));
    expect(GpgKeyring.merge([ring, ring]).keys.length).toBe(1);
    const v6 = await openpgp.generateKey({ type: 'curve25519', userIDs: [{ name: 'x' }], format: 'armored', config: { v6Keys: true } });
    await expect(OpenPgpSigner.fromArmored(v6.privateKey)).rejects.toMatchObject({ code: 'KEY_INVALID' });
    const rfc9580 = await openpgp.generateKey({ type: 'curve25519', userIDs: [{ name: 'x' }], format: 'armored' });
    await expect(OpenPgpSigner.fromArmored(rfc9580.privateKey)).rejects.toMatchObject({ code: 'KEY_INVALID' });
  });
});
