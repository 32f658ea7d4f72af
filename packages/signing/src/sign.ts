/**
 * The engine-neutral part of signing, shaped after OSTree's `ostree-sign.h`: a `Signer` produces
 * one detached signature over bytes, a `Verifier` checks the signatures found under its
 * metadata key, and `verifyDetached` applies a policy across engines. Engines live beside this
 * file (`sign-ed25519.ts`, `sign-gpg.ts`).
 *
 * Policy semantics mirror OSTree's pull: for every enabled scheme at least one signature must
 * verify under a trusted key that is neither revoked nor expired; other signatures that fail
 * (unknown keys, garbage) do not spoil a valid one, they are only reported.
 */

import type { Variant } from '@larch/gvariant';
import { appendSignature, getSignatures, type DetachedMetadata } from './detached-metadata.js';
import { SigningError, sanitize } from './errors.js';

/** Signature schemes OSTree stores in detached metadata. */
export type SignatureScheme = 'gpg' | 'ed25519';

/** What a verifier found out about one signature. */
export interface SignatureReport {
  scheme: SignatureScheme;
  /** gpg: long key id (16 hex, upper case) of the key that made it; ed25519: base64 public key. null when unknown. */
  keyId: string | null;
  /** gpg: fingerprint of the primary key, when the key is in the keyring. */
  fingerprint?: string | null;
  /** gpg: primary user id of the key, when known. */
  userId?: string | null;
  /** gpg: the name part of that user id (`Name (Comment) <email>`), as gpgme splits it. */
  userName?: string | null;
  /** gpg: the email part of that user id ('' when it has none). */
  userEmail?: string | null;
  /** gpg: public-key algorithm of the signature as GnuPG names it (`RSA`, `EdDSA`, `DSA`, `ECDSA`). */
  algorithm?: string | null;
  /** gpg: true when the signature was made by a subkey (its primary key id is then `primaryKeyId`). */
  primaryKeyId?: string | null;
  /** True only for a cryptographically valid signature by a trusted, non-revoked, non-expired key. */
  valid: boolean;
  /** Why it is not valid (null when valid), in words a user can act on. */
  reason: string | null;
  /** The signing key or the signature has expired (`keyExpired || sigExpired`). */
  expired: boolean;
  revoked: boolean;
  /** gpg: the signing key (or, for a subkey, its primary key) has expired. */
  keyExpired?: boolean;
  /** gpg: the signature itself has expired. */
  sigExpired?: boolean;
  /** gpg: when the signature expires (null: never). */
  signatureExpires?: Date | null;
  /** gpg: when the key that made the signature (subkey or primary) expires (null: never or unknown). */
  keyExpires?: Date | null;
  /** gpg: when the primary key expires (null: never or unknown). */
  primaryKeyExpires?: Date | null;
  /** Creation time from the signature (gpg); ed25519 signatures carry none. */
  timestamp: Date | null;
  /** Identifiers of the keys the signature was checked against. */
  keysTried: string[];
}

/** Options common to every verification call. */
export interface VerifyOptions {
  /** "Now" for expiry and revocation checks; defaults to the current time. */
  now?: Date;
  signal?: AbortSignal;
}

/** Produces detached signatures for one scheme (like OstreeSign's `data`). */
export interface Signer {
  readonly scheme: SignatureScheme;
  /** Detached-metadata key the signature goes under (`ostree.gpgsigs`, `ostree.sign.ed25519`). */
  readonly metadataKey: string;
  /** Identifier of the signing key (gpg key id, ed25519 base64 public key), for messages. */
  readonly keyId: string;
  sign(data: Uint8Array, options?: { signal?: AbortSignal }): Promise<Uint8Array>;
}

/** Checks detached signatures for one scheme against a trusted key set (like OstreeSign's `data_verify`). */
export interface Verifier {
  readonly scheme: SignatureScheme;
  readonly metadataKey: string;
  /** One report per signature, in input order (a gpg blob holding several packets yields several). */
  verify(data: Uint8Array, signatures: readonly Uint8Array[], options?: VerifyOptions): Promise<SignatureReport[]>;
}

/**
 * Most signatures checked per scheme in one call. OSTree sets no limit; a commit rarely carries
 * more than a handful, and each OpenPGP check costs about a millisecond, so hostile detached
 * metadata with thousands of elements is refused instead of verified one by one.
 */
export const MAX_SIGNATURES_PER_SCHEME = 256;

/** Which schemes are required: one verifier per enabled scheme. */
export interface VerifyPolicy {
  verifiers: readonly Verifier[];
}

export interface SchemeResult {
  scheme: SignatureScheme;
  /** Signatures found under the scheme's key. */
  found: number;
  /** Of those, how many are valid. */
  validCount: number;
}

export interface VerifyResult {
  /** True when every enabled scheme has at least one valid signature. */
  valid: boolean;
  signatures: SignatureReport[];
  schemes: SchemeResult[];
}

/**
 * Sign `data` with every signer and return a new detached-metadata dictionary with the
 * signatures appended under each signer's key; other keys are kept. Pure apart from the signers
 * (the gpg program signer spawns `gpg`). Writing the result (`.commitmeta` via the store, or
 * `summary.sig`) is the caller's job and should be atomic (temp file + rename).
 */
export async function signDetached(args: {
  data: Uint8Array;
  dict?: ReadonlyArray<readonly [string, Variant]>;
  signers: readonly Signer[];
  signal?: AbortSignal;
}): Promise<DetachedMetadata> {
  if (args.signers.length === 0) throw new TypeError('signDetached needs at least one signer');
  let dict: DetachedMetadata = (args.dict ?? []).map(([k, v]) => [k, v]);
  for (const s of args.signers) {
    const sig = await s.sign(args.data, { signal: args.signal });
    dict = appendSignature(dict, s.metadataKey, sig);
  }
  return dict;
}

/**
 * Verify `data` (exact `.commit` or `summary` bytes) against the signatures in its detached
 * metadata under `policy`. Never throws for bad signatures: read `valid`, or pass the result to
 * `assertVerified` for an OSTree-worded error. Throws METADATA_INVALID when a signature key holds
 * the wrong GVariant type or more than MAX_SIGNATURES_PER_SCHEME elements, and TypeError for a
 * policy with no verifier (nothing would be checked).
 * No locks; safe to run concurrently.
 */
export async function verifyDetached(args: {
  data: Uint8Array;
  dict: ReadonlyArray<readonly [string, Variant]>;
  policy: VerifyPolicy;
  now?: Date;
  signal?: AbortSignal;
  /** Override MAX_SIGNATURES_PER_SCHEME. */
  maxSignatures?: number;
}): Promise<VerifyResult> {
  const { verifiers } = args.policy;
  if (verifiers.length === 0) throw new TypeError('verification policy enables no signature scheme');
  const limit = args.maxSignatures ?? MAX_SIGNATURES_PER_SCHEME;
  const signatures: SignatureReport[] = [];
  const schemes: SchemeResult[] = [];
  for (const v of verifiers) {
    const sigs = getSignatures(args.dict, v.metadataKey);
    if (sigs.length > limit) {
      throw new SigningError('METADATA_INVALID', `Too many ${v.scheme} signatures in detached metadata: ${sigs.length} (limit ${limit})`, {
        scheme: v.scheme,
        limit,
        observed: sigs.length,
      });
    }
    const reports = sigs.length === 0 ? [] : await v.verify(args.data, sigs, { now: args.now, signal: args.signal });
    signatures.push(...reports);
    schemes.push({ scheme: v.scheme, found: reports.length, validCount: reports.filter((r) => r.valid).length });
  }
  return { valid: schemes.every((s) => s.validCount > 0), signatures, schemes };
}

/**
 * Throw the error OSTree would report when `result` is not valid; return silently otherwise.
 * `subject` names what was verified, e.g. `commit 65fe…` or `summary`.
 * Codes: SIGNATURE_MISSING (no signature for a required scheme), KEY_REVOKED / KEY_EXPIRED
 * (the only matching signatures are by revoked / expired keys), SIGNATURE_INVALID otherwise.
 */
export function assertVerified(result: VerifyResult, subject: string): void {
  if (result.valid) return;
  const failed = result.schemes.find((s) => s.validCount === 0)!;
  const reports = result.signatures.filter((r) => r.scheme === failed.scheme);
  const data = { subject, scheme: failed.scheme, signatures: reports };
  if (failed.found === 0) {
    const msg =
      failed.scheme === 'gpg'
        ? `${subject}: GPG verification enabled, but no signatures found (use gpg-verify=false in remote config to disable)`
        : `No signatures found for ${subject} (${failed.scheme})`;
    throw new SigningError('SIGNATURE_MISSING', msg, data);
  }
  const detail = reports.map((r) => describe(r)).join('; ');
  // The most specific fact wins: a signature that would verify but for a revoked (or expired)
  // key says more than one from an unknown key.
  if (reports.some((r) => r.revoked)) throw new SigningError('KEY_REVOKED', `${subject}: ${detail}`, data);
  if (reports.some((r) => r.expired)) throw new SigningError('KEY_EXPIRED', `${subject}: ${detail}`, data);
  throw new SigningError('SIGNATURE_INVALID', `${subject}: ${detail}`, data);
}

function describe(r: SignatureReport): string {
  if (r.scheme === 'ed25519') {
    // OSTree prints ed25519 keys in hex in these messages.
    const hexKey = (b64: string): string => sanitize(Buffer.from(b64, 'base64').toString('hex'), 80);
    if (r.revoked) return `ed25519: key '${hexKey(r.keyId ?? '')}' is revoked`;
    if (r.keysTried.length === 1) return `ed25519: Signature couldn't be verified with: key '${hexKey(r.keysTried[0])}'`;
    return `ed25519: Signature couldn't be verified; tried ${r.keysTried.length} keys`;
  }
  const made = r.timestamp ? `Signature made ${r.timestamp.toUTCString()} using key ID ${r.keyId ?? 'unknown'}` : `Signature by key ID ${r.keyId ?? 'unknown'}`;
  return `${made}: ${r.reason ?? 'invalid'}`;
}
