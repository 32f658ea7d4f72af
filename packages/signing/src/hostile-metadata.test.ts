// Detached metadata is not checksummed by OSTree: anything a server sends is parsed. Every
// single-byte mutation of a signed commitmeta must either decode, or fail with a SigningError;
// verification must never throw anything else and never report a mutated signature as valid.
import { describe, expect, it } from 'vitest';
import {
  ED25519_SIGNATURES_KEY,
  Ed25519SecretKey,
  Ed25519Signer,
  Ed25519Verifier,
  SigningError,
  decodeDetachedMetadata,
  encodeDetachedMetadata,
  getSignatures,
  signDetached,
  verifyDetached,
} from './index.js';
import { Variant } from '@larch/gvariant';

describe('hostile detached metadata', () => {
  it('survives every single-byte mutation of a signed commitmeta', async () => {
    const key = Ed25519SecretKey.fromSeed(new Uint8Array(32).fill(3));
    const data = new TextEncoder().encode('commit');
    const dict = await signDetached({ data, dict: [['extra', new Variant('s', 'x')]], signers: [new Ed25519Signer(key)] });
    const bytes = encodeDetachedMetadata(dict);
    const policy = { verifiers: [new Ed25519Verifier({ trusted: [key.publicKey] })] };
    let decoded = 0;
    for (let i = 0; i < bytes.length; i++) {
      for (const x of [0x01, 0x80, 0xff]) {
        const m = Uint8Array.from(bytes);
        m[i] ^= x;
        try {
          const d = decodeDetachedMetadata(m);
          decoded++;
          const r = await verifyDetached({ data, dict: d, policy });
          const sigs = getSignatures(d, ED25519_SIGNATURES_KEY);
          // Valid only if the signature bytes themselves are untouched.
          if (r.valid) expect(sigs.some((s) => Buffer.from(s).equals(Buffer.from(getSignatures(dict, ED25519_SIGNATURES_KEY)[0])))).toBe(true);
        } catch (e) {
          expect(e).toBeInstanceOf(SigningError);
        }
      }
    }
    expect(decoded).toBeGreaterThan(0);
  });

  it('refuses more signatures than the limit before verifying any', async () => {
    const key = Ed25519SecretKey.fromSeed(new Uint8Array(32).fill(4));
    const many = Array.from({ length: 300 }, () => new Uint8Array(64));
    const dict: Array<[string, Variant]> = [[ED25519_SIGNATURES_KEY, new Variant('aay', many)]];
    await expect(verifyDetached({ data: new Uint8Array(1), dict, policy: { verifiers: [new Ed25519Verifier({ trusted: [key.publicKey] })] } })).rejects.toMatchObject({
      code: 'METADATA_INVALID',
      data: { limit: 256, observed: 300 },
    });
  });
});
