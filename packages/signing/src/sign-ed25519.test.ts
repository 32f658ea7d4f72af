import { createHash, verify as nodeVerify, createPublicKey } from 'node:crypto';
import { ed25519 } from '@noble/curves/ed25519.js';
import { describe, expect, it } from 'vitest';
import {
  Ed25519PublicKey,
  Ed25519SecretKey,
  Ed25519Signer,
  Ed25519Verifier,
  ed25519Sign,
  ed25519Verify,
  generateEd25519Key,
  isSigningError,
  type Ed25519Engine,
} from './index.js';

const h = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'));
const ENGINES: Ed25519Engine[] = ['node', 'noble', 'both'];

// RFC 8032 section 7.1, TEST 1-3.
const RFC8032 = [
  {
    seed: '9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60',
    pub: 'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a',
    msg: '',
    sig: 'e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b',
  },
  {
    seed: '4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb',
    pub: '3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c',
    msg: '72',
    sig: '92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00',
  },
  {
    seed: 'c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7',
    pub: 'fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025',
    msg: 'af82',
    sig: '6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a',
  },
];

const L = 2n ** 252n + 27742317777372353535851937790883648493n;
function leToBig(b: Uint8Array): bigint {
  let n = 0n;
  for (let i = b.length - 1; i >= 0; i--) n = (n << 8n) | BigInt(b[i]);
  return n;
}
function bigToLe(n: bigint): Uint8Array {
  const out = new Uint8Array(32);
  for (let i = 0; i < 32; i++) {
    out[i] = Number(n & 0xffn);
    n >>= 8n;
  }
  return out;
}

describe('ed25519 known answers (RFC 8032 7.1)', () => {
  for (const [i, v] of RFC8032.entries()) {
    it(`TEST ${i + 1}: derives the public key, signs and verifies with every engine`, () => {
      const sk = Ed25519SecretKey.fromSeed(h(v.seed));
      expect(Buffer.from(sk.publicKey.bytes).toString('hex')).toBe(v.pub);
      for (const engine of ENGINES) {
        expect(Buffer.from(ed25519Sign(sk, h(v.msg), engine)).toString('hex')).toBe(v.sig);
        expect(ed25519Verify(Ed25519PublicKey.from(h(v.pub)), h(v.msg), h(v.sig), engine)).toBe(true);
      }
    });
  }

  it('accepts the 64-byte seed||public secret key form and base64 forms', () => {
    const v = RFC8032[1];
    const b64 = Buffer.concat([Buffer.from(v.seed, 'hex'), Buffer.from(v.pub, 'hex')]).toString('base64');
    const sk = Ed25519SecretKey.from(b64);
    expect(sk.base64).toBe(b64);
    expect(Ed25519PublicKey.from(Buffer.from(v.pub, 'hex').toString('base64')).equals(sk.publicKey)).toBe(true);
  });

  it('verifies the upstream pre-signed-pull-data public key format (32 bytes base64)', () => {
    const k = Ed25519PublicKey.from('45yzbkuEok0lLabxzdAHWUDSMZgYfxU40sN+LMfYHVA=');
    expect(k.bytes.length).toBe(32);
  });
});

describe('ed25519 strictness', () => {
  const v = RFC8032[2];
  const pub = Ed25519PublicKey.from(h(v.pub));
  const msg = h(v.msg);
  const sig = h(v.sig);

  it('rejects a non-canonical S (S + L) that the raw equation would accept modulo L', () => {
    const s = leToBig(sig.subarray(32));
    const bad = new Uint8Array(64);
    bad.set(sig.subarray(0, 32));
    bad.set(bigToLe(s + L), 32);
    for (const engine of ENGINES) expect(ed25519Verify(pub, msg, bad, engine)).toBe(false);
  });

  it('rejects every small-order public key and non-canonical encodings', () => {
    const smallOrder = [
      '0100000000000000000000000000000000000000000000000000000000000000',
      'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a',
      '0000000000000000000000000000000000000000000000000000000000000080',
      '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05',
      'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
      '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85',
      '0000000000000000000000000000000000000000000000000000000000000000',
      'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa',
    ];
    for (const enc of smallOrder) {
      // Cross-check the list itself: each is a point of small order.
      expect(ed25519.Point.fromBytes(h(enc)).isSmallOrder()).toBe(true);
      expect(() => Ed25519PublicKey.from(h(enc))).toThrow(expect.objectContaining({ code: 'KEY_INVALID' }));
    }
    // y = p and y = p + 1 (non-canonical field elements)
    for (const enc of ['edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f', 'eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f']) {
      expect(() => Ed25519PublicKey.from(h(enc))).toThrow(expect.objectContaining({ code: 'KEY_INVALID' }));
    }
  });

  it('rejects a signature whose R is the identity even though the cofactorless equation holds', () => {
    // For R = identity and S = k·a, [S]B = R + [k]A holds exactly, yet no nonce was used.
    // libsodium (OSTree's backend) rejects small-order R; so must we, with every engine.
    const sk = Ed25519SecretKey.fromSeed(h(RFC8032[0].seed));
    const ext = ed25519.utils.getExtendedPublicKey(sk.seed);
    const R = h('0100000000000000000000000000000000000000000000000000000000000000');
    const m = new TextEncoder().encode('forged');
    const k = leToBig(createHash('sha512').update(R).update(sk.publicKey.bytes).update(m).digest()) % L;
    const S = (k * ext.scalar) % L;
    const forged = new Uint8Array(64);
    forged.set(R);
    forged.set(bigToLe(S), 32);
    // The equation is satisfied: OpenSSL's ed25519 (node:crypto) and even noble's strict mode
    // accept this signature on their own, which is why R is checked separately.
    expect(ed25519.verify(forged, m, sk.publicKey.bytes, { zip215: false })).toBe(true);
    expect(nodeVerify(null, m, sk.publicKey.keyObject(), forged)).toBe(true);
    for (const engine of ENGINES) expect(ed25519Verify(sk.publicKey, m, forged, engine)).toBe(false);
  });

  it('engines differ only on a torsion component in R: noble (cofactored) accepts, node and both refuse', () => {
    const sk = Ed25519SecretKey.fromSeed(h(RFC8032[1].seed));
    const ext = ed25519.utils.getExtendedPublicKey(sk.seed);
    const T = ed25519.Point.fromBytes(h('c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a')); // order 8
    const r = 123456789n;
    const R = ed25519.Point.BASE.multiply(r).add(T).toBytes();
    const m = new TextEncoder().encode('torsion');
    const k = leToBig(createHash('sha512').update(R).update(sk.publicKey.bytes).update(m).digest()) % L;
    const sig = new Uint8Array(64);
    sig.set(R);
    sig.set(bigToLe((r + k * ext.scalar) % L), 32);
    expect(ed25519Verify(sk.publicKey, m, sig, 'noble')).toBe(true);
    expect(ed25519Verify(sk.publicKey, m, sig, 'node')).toBe(false);
    expect(ed25519Verify(sk.publicKey, m, sig, 'both')).toBe(false);
  });

  it('rejects wrong lengths, flipped bits and other messages', () => {
    for (const engine of ENGINES) {
      expect(ed25519Verify(pub, msg, sig.subarray(0, 63), engine)).toBe(false);
      const flipped = Uint8Array.from(sig);
      flipped[10] ^= 1;
      expect(ed25519Verify(pub, msg, flipped, engine)).toBe(false);
      expect(ed25519Verify(pub, h('af83'), sig, engine)).toBe(false);
    }
  });

  it('node and noble engines agree on random keys and messages', () => {
    for (let i = 0; i < 20; i++) {
      const sk = generateEd25519Key();
      const m = new Uint8Array(i * 7).fill(i);
      const a = ed25519Sign(sk, m, 'node');
      expect(Buffer.from(ed25519Sign(sk, m, 'noble')).equals(Buffer.from(a))).toBe(true);
      const spki = createPublicKey({ key: Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), sk.publicKey.bytes]), format: 'der', type: 'spki' });
      expect(nodeVerify(null, m, spki, a)).toBe(true);
    }
  });

  it('refuses a secret key whose public half does not match its seed', () => {
    const sk = generateEd25519Key();
    const other = generateEd25519Key();
    const bad = new Uint8Array(64);
    bad.set(sk.seed);
    bad.set(other.publicKey.bytes, 32);
    try {
      Ed25519SecretKey.from(bad);
      expect.unreachable();
    } catch (e) {
      expect(isSigningError(e, 'KEY_INVALID')).toBe(true);
      expect((e as { data: { reason: string } }).data.reason).toBe('mismatch');
    }
    expect(() => Ed25519SecretKey.from('not base64!')).toThrow(expect.objectContaining({ code: 'KEY_INVALID' }));
  });
});

describe('Ed25519Signer / Ed25519Verifier', () => {
  const data = new TextEncoder().encode('commit bytes');

  it('round-trips and reports the key that matched and the keys tried', async () => {
    const a = generateEd25519Key();
    const b = generateEd25519Key();
    const sig = await new Ed25519Signer(b).sign(data);
    const [r] = await new Ed25519Verifier({ trusted: [a.publicKey, b.publicKey] }).verify(data, [sig]);
    expect(r).toMatchObject({ scheme: 'ed25519', valid: true, keyId: b.publicKey.base64, revoked: false, reason: null });
    expect(r.keysTried).toEqual([a.publicKey.base64, b.publicKey.base64]);
  });

  it('refuses tampered data', async () => {
    const a = generateEd25519Key();
    const sig = await new Ed25519Signer(a).sign(data);
    const tampered = Uint8Array.from(data);
    tampered[0] ^= 0x20;
    const [r] = await new Ed25519Verifier({ trusted: [a.publicKey] }).verify(tampered, [sig]);
    expect(r.valid).toBe(false);
    expect(r.keyId).toBeNull();
  });

  it('refuses a signature by a revoked key, even when the key is also trusted', async () => {
    const a = generateEd25519Key();
    const sig = await new Ed25519Signer(a).sign(data);
    const [r] = await new Ed25519Verifier({ trusted: [a.publicKey], revoked: [a.publicKey] }).verify(data, [sig]);
    expect(r).toMatchObject({ valid: false, revoked: true, keyId: a.publicKey.base64 });
  });

  it('reports a wrong-length element instead of throwing', async () => {
    const a = generateEd25519Key();
    const [r] = await new Ed25519Verifier({ trusted: [a.publicKey] }).verify(data, [new Uint8Array(10)]);
    expect(r.valid).toBe(false);
    expect(r.reason).toMatch(/length/);
  });
});
