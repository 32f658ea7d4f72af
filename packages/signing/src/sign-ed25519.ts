/**
 * ed25519 signatures in OSTree's `ostree sign` formats (spec/pull-and-signing.md section 6.3):
 * a 64-byte pure Ed25519 signature (RFC 8032) over the exact object bytes, stored under
 * `ostree.sign.ed25519`; secret keys are 64 bytes (32-byte seed ‖ 32-byte public key, the
 * libsodium layout), public keys 32 bytes, both exchanged as base64.
 *
 * Verification is strict, the way libsodium (OSTree's usual backend) is strict:
 * - S must be canonical (S < L);
 * - the public key must be a canonical encoding of a curve point that is not of small order
 *   (checked once per key with @noble/curves, `zip215: false`);
 * - R must not be a small-order point (the 8 canonical encodings are listed below; a
 *   non-canonical R never verifies). Neither OpenSSL nor noble's strict mode checks this (with
 *   R = identity and S = k·a the equation holds; libsodium, OSTree's usual backend, refuses
 *   such signatures, so we do too; see the tests);
 * - the equation itself is checked by node:crypto (OpenSSL, cofactorless), which measured about
 *   20× faster than @noble/curves on this machine (see bench/sign-verify.mjs). The `noble`
 *   engine uses `ed25519.verify(…, { zip215: false })` with the same pre-checks, for
 *   portability; `both` requires both to agree.
 * The two engines differ only on signatures whose R carries a deliberately added torsion
 * component: noble's cofactored check accepts them, OpenSSL's cofactorless one does not. An
 * honest signer never produces such a signature; `both` rejects them.
 */

import { createPrivateKey, createPublicKey, randomBytes, sign as nodeSign, verify as nodeVerify, type KeyObject } from 'node:crypto';
import { ed25519 } from '@noble/curves/ed25519.js';
import { ED25519_SIGNATURES_KEY } from './detached-metadata.js';
import { SigningError } from './errors.js';
import { decodeBase64Strict, encodeBase64 } from './internal/base64.js';
import type { SignatureReport, Signer, Verifier, VerifyOptions } from './sign.js';

export const ED25519_PUBLIC_KEY_BYTES = 32;
export const ED25519_SECRET_KEY_BYTES = 64;
export const ED25519_SEED_BYTES = 32;
export const ED25519_SIGNATURE_BYTES = 64;

/** Which implementation checks the Ed25519 equation. */
export type Ed25519Engine = 'node' | 'noble' | 'both';

/** Group order L of the ed25519 base point. */
const L = 2n ** 252n + 27742317777372353535851937790883648493n;

/** Canonical encodings of the 8 points of small order (the torsion subgroup). */
const SMALL_ORDER_ENCODINGS: readonly string[] = [
  '0100000000000000000000000000000000000000000000000000000000000000',
  'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a',
  '0000000000000000000000000000000000000000000000000000000000000080',
  '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05',
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85',
  '0000000000000000000000000000000000000000000000000000000000000000',
  'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa',
];

const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
const PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

/** A validated ed25519 public key (32 bytes, canonical, not of small order). */
export class Ed25519PublicKey {
  readonly bytes: Uint8Array;
  /** Base64, as OSTree prints it and as key files hold it; also the key's id in reports. */
  readonly base64: string;
  #keyObject: KeyObject | undefined;

  private constructor(bytes: Uint8Array) {
    this.bytes = bytes;
    this.base64 = encodeBase64(bytes);
  }

  /**
   * Validate raw bytes or base64 text. Throws KEY_INVALID ("Incorrect ed25519 public key")
   * for a wrong length, bad base64, a non-canonical or off-curve point, or a point of small
   * order (such keys make forgeries trivial).
   */
  static from(key: Uint8Array | string): Ed25519PublicKey {
    const bytes = typeof key === 'string' ? decodeBase64Strict(key.trim()) : key;
    if (bytes === null || bytes.length !== ED25519_PUBLIC_KEY_BYTES) {
      throw new SigningError('KEY_INVALID', 'Incorrect ed25519 public key', { reason: 'length', length: bytes?.length ?? null });
    }
    let point;
    try {
      point = ed25519.Point.fromBytes(bytes, false);
    } catch (e) {
      throw new SigningError('KEY_INVALID', 'Incorrect ed25519 public key: not a canonical curve point', { reason: 'encoding' }, { cause: e });
    }
    if (point.isSmallOrder()) throw new SigningError('KEY_INVALID', 'Incorrect ed25519 public key: point of small order', { reason: 'small-order' });
    return new Ed25519PublicKey(Uint8Array.from(bytes));
  }

  /** node:crypto key object, created on first use and cached on this instance. */
  keyObject(): KeyObject {
    this.#keyObject ??= createPublicKey({ key: Buffer.concat([SPKI_PREFIX, this.bytes]), format: 'der', type: 'spki' });
    return this.#keyObject;
  }

  equals(other: Ed25519PublicKey): boolean {
    return this.base64 === other.base64;
  }
}

/** A validated ed25519 secret key in OSTree's 64-byte layout (seed ‖ public key). */
export class Ed25519SecretKey {
  readonly seed: Uint8Array;
  readonly publicKey: Ed25519PublicKey;
  #keyObject: KeyObject | undefined;

  private constructor(seed: Uint8Array, publicKey: Ed25519PublicKey) {
    this.seed = seed;
    this.publicKey = publicKey;
  }

  /**
   * Validate 64 raw bytes or their base64. Throws KEY_INVALID ("Incorrect ed25519 secret key")
   * for a wrong length or when the public half does not belong to the seed (a corrupted key
   * file would otherwise sign with a key nobody can verify).
   */
  static from(key: Uint8Array | string): Ed25519SecretKey {
    const bytes = typeof key === 'string' ? decodeBase64Strict(key.trim()) : key;
    if (bytes === null || bytes.length !== ED25519_SECRET_KEY_BYTES) {
      throw new SigningError('KEY_INVALID', 'Incorrect ed25519 secret key', { reason: 'length', length: bytes?.length ?? null });
    }
    const seed = Uint8Array.from(bytes.subarray(0, ED25519_SEED_BYTES));
    const derived = ed25519.getPublicKey(seed);
    if (Buffer.compare(Buffer.from(derived), Buffer.from(bytes.subarray(ED25519_SEED_BYTES))) !== 0) {
      throw new SigningError('KEY_INVALID', 'Incorrect ed25519 secret key: public part does not match the seed', { reason: 'mismatch' });
    }
    return new Ed25519SecretKey(seed, Ed25519PublicKey.from(derived));
  }

  /** Build from a 32-byte seed (RFC 8032's "private key"). */
  static fromSeed(seed: Uint8Array): Ed25519SecretKey {
    if (seed.length !== ED25519_SEED_BYTES) throw new SigningError('KEY_INVALID', 'Incorrect ed25519 seed', { length: seed.length });
    const pub = ed25519.getPublicKey(seed);
    const full = new Uint8Array(ED25519_SECRET_KEY_BYTES);
    full.set(seed, 0);
    full.set(pub, ED25519_SEED_BYTES);
    return Ed25519SecretKey.from(full);
  }

  /** The 64-byte OSTree form (seed ‖ public key). */
  get bytes(): Uint8Array {
    const full = new Uint8Array(ED25519_SECRET_KEY_BYTES);
    full.set(this.seed, 0);
    full.set(this.publicKey.bytes, ED25519_SEED_BYTES);
    return full;
  }

  /** Base64 of the 64-byte form: what `ostree sign` takes on the command line or in `--keys-file`. */
  get base64(): string {
    return encodeBase64(this.bytes);
  }

  keyObject(): KeyObject {
    this.#keyObject ??= createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, this.seed]), format: 'der', type: 'pkcs8' });
    return this.#keyObject;
  }
}

/** Generate a fresh key pair from 32 random bytes (node:crypto's CSPRNG). */
export function generateEd25519Key(): Ed25519SecretKey {
  return Ed25519SecretKey.fromSeed(new Uint8Array(randomBytes(ED25519_SEED_BYTES)));
}

/** Pure Ed25519 signature (64 bytes) over `data`. Deterministic: both engines give identical bytes. */
export function ed25519Sign(key: Ed25519SecretKey, data: Uint8Array, engine: Ed25519Engine = 'node'): Uint8Array {
  if (engine === 'noble') return ed25519.sign(data, key.seed);
  return new Uint8Array(nodeSign(null, data, key.keyObject()));
}

function bytesToNumberLE(b: Uint8Array): bigint {
  let n = 0n;
  for (let i = b.length - 1; i >= 0; i--) n = (n << 8n) | BigInt(b[i]);
  return n;
}

/**
 * Strict Ed25519 verification (see the top of this file). Returns false for any malformed or
 * non-verifying input; never throws on bad data. `key` was validated when it was constructed.
 */
export function ed25519Verify(key: Ed25519PublicKey, data: Uint8Array, signature: Uint8Array, engine: Ed25519Engine = 'node'): boolean {
  if (signature.length !== ED25519_SIGNATURE_BYTES) return false;
  if (bytesToNumberLE(signature.subarray(32)) >= L) return false;
  if (SMALL_ORDER_ENCODINGS.includes(Buffer.from(signature.subarray(0, 32)).toString('hex'))) return false;
  const viaNode = () => nodeVerify(null, data, key.keyObject(), signature);
  const viaNoble = () => ed25519.verify(signature, data, key.bytes, { zip215: false });
  if (engine === 'node') return viaNode();
  if (engine === 'noble') return viaNoble();
  return viaNode() && viaNoble();
}

/** Signs with one ed25519 secret key; signatures go under `ostree.sign.ed25519`. */
export class Ed25519Signer implements Signer {
  readonly scheme = 'ed25519' as const;
  readonly metadataKey = ED25519_SIGNATURES_KEY;
  readonly keyId: string;

  constructor(
    private readonly key: Ed25519SecretKey,
    private readonly engine: Ed25519Engine = 'node',
  ) {
    this.keyId = key.publicKey.base64;
  }

  async sign(data: Uint8Array): Promise<Uint8Array> {
    return ed25519Sign(this.key, data, this.engine);
  }
}

export interface Ed25519VerifierOptions {
  /** Trusted public keys. */
  trusted: readonly Ed25519PublicKey[];
  /** Revoked public keys; a signature that verifies only under one of these is refused. */
  revoked?: readonly Ed25519PublicKey[];
  engine?: Ed25519Engine;
}

/**
 * Accepts a signature when it verifies under a trusted key that is not revoked (OSTree's
 * ed25519 `data_verify`). A revoked key stays revoked even when it is also listed as trusted.
 * Each report's `keyId` is the base64 public key that matched, `keysTried` every key checked.
 */
export class Ed25519Verifier implements Verifier {
  readonly scheme = 'ed25519' as const;
  readonly metadataKey = ED25519_SIGNATURES_KEY;
  readonly trusted: readonly Ed25519PublicKey[];
  readonly revoked: readonly Ed25519PublicKey[];
  readonly engine: Ed25519Engine;

  constructor(options: Ed25519VerifierOptions) {
    this.revoked = [...(options.revoked ?? [])];
    this.trusted = options.trusted.filter((k) => !this.revoked.some((r) => r.equals(k)));
    this.engine = options.engine ?? 'node';
  }

  async verify(data: Uint8Array, signatures: readonly Uint8Array[], options: VerifyOptions = {}): Promise<SignatureReport[]> {
    const reports: SignatureReport[] = [];
    for (const sig of signatures) {
      if (options.signal?.aborted) throw new SigningError('ABORTED', 'ed25519 verification aborted', {}, { cause: options.signal.reason });
      const base = { scheme: 'ed25519' as const, expired: false, timestamp: null };
      const keysTried = [...this.trusted, ...this.revoked].map((k) => k.base64);
      if (sig.length !== ED25519_SIGNATURE_BYTES) {
        reports.push({ ...base, keyId: null, valid: false, revoked: false, reason: `Invalid signature length of ${sig.length} bytes, expected ${ED25519_SIGNATURE_BYTES}`, keysTried });
        continue;
      }
      const good = this.trusted.find((k) => ed25519Verify(k, data, sig, this.engine));
      if (good) {
        reports.push({ ...base, keyId: good.base64, valid: true, revoked: false, reason: null, keysTried });
        continue;
      }
      const revoked = this.revoked.find((k) => ed25519Verify(k, data, sig, this.engine));
      if (revoked) {
        reports.push({ ...base, keyId: revoked.base64, valid: false, revoked: true, reason: `ed25519: key '${revoked.base64}' is revoked`, keysTried });
        continue;
      }
      reports.push({ ...base, keyId: null, valid: false, revoked: false, reason: 'no trusted key matches', keysTried });
    }
    return reports;
  }
}
