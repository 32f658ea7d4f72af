/**
 * Signed superblocks (spec static-deltas.md section 6): the superblock file is replaced by a
 * wrapper carrying the plain superblock and signatures over its bytes, one `aay` per engine under
 * `ostree.sign.<engine>`. This package holds no keys and no cryptography: a signer or verifier is
 * anything with a metadata key and `sign`/`verify` (`@larch/signing`'s `Ed25519Signer` and
 * `Ed25519Verifier` fit as they are).
 *
 * As in ostree: `apply-offline` checks a signed delta when given a verifier; with the repo config
 * `[core] sign-verify-deltas=true` a signed delta is refused without one; an unsigned delta is
 * applied either way (ostree checks only signed ones). `ostree pull` cannot read the wrapper, so
 * sign deltas meant for `apply-offline`, not ones served to pulls (sign the commits instead).
 */
import { LarchError, type Repo } from '@larch/core-store';
import { Variant } from '@larch/gvariant';
import { decodeSuperblock, encodeSignedSuperblock, type Superblock } from './format.js';

/** Makes one signature over bytes (like OstreeSign's `data`). */
export interface SuperblockSigner {
  /** `ostree.sign.ed25519`, `ostree.sign.dummy`, … */
  readonly metadataKey: string;
  sign(data: Uint8Array): Promise<Uint8Array>;
}

/** Checks the signatures found under its metadata key (like OstreeSign's `data_verify`). */
export interface SuperblockVerifier {
  readonly metadataKey: string;
  /** One report per signature; a delta verifies when any is valid. */
  verify(data: Uint8Array, signatures: readonly Uint8Array[]): Promise<ReadonlyArray<{ valid: boolean; reason: string | null }>>;
}

/** Most signatures read under one key (ostree sets no limit; a delta carries a handful). */
export const MAX_SUPERBLOCK_SIGNATURES = 256;

/** The signed wrapper around `plain`: one signature per signer, grouped by metadata key in signer order. */
export async function signSuperblock(plain: Uint8Array, signers: readonly SuperblockSigner[]): Promise<Uint8Array> {
  if (signers.length === 0) throw new LarchError('INVALID_ARGUMENT', 'No key to sign the static delta with');
  // The plain bytes must be a superblock (a wrapper inside a wrapper would never verify).
  if (decodeSuperblock(plain).signed) throw new LarchError('INVALID_ARGUMENT', 'Static delta superblock is already signed');
  const byKey = new Map<string, Uint8Array[]>();
  for (const s of signers) {
    if (!s.metadataKey.startsWith('ostree.sign.')) throw new LarchError('INVALID_ARGUMENT', `Invalid signature key '${s.metadataKey}': expected ostree.sign.<type>`);
    const list = byKey.get(s.metadataKey) ?? [];
    list.push(await s.sign(plain));
    byKey.set(s.metadataKey, list);
  }
  return encodeSignedSuperblock(
    plain,
    [...byKey].map(([k, sigs]) => [k, new Variant('aay', sigs)]),
  );
}

export interface SuperblockVerification {
  /** True when at least one signature under the verifier's key is valid. */
  valid: boolean;
  /** How many signatures were under the key. */
  signatures: number;
  /** Why each invalid signature failed. */
  reasons: string[];
}

/**
 * Check a decoded superblock's signatures under `verifier`'s key. Throws INVALID_ARGUMENT with
 * ostree's wording when the superblock is not signed ("no signatures in static-delta") or holds
 * nothing under that key ("no signature for 'KEY' in static-delta superblock").
 */
export async function verifySuperblock(sb: Superblock, verifier: SuperblockVerifier): Promise<SuperblockVerification> {
  if (!sb.signed || sb.signedData === null || !sb.signatures.some(([k]) => k.startsWith('ostree.sign.'))) {
    throw new LarchError('INVALID_ARGUMENT', 'no signatures in static-delta', { reason: 'unsigned' });
  }
  const v = sb.signatures.find(([k]) => k === verifier.metadataKey)?.[1];
  if (v === undefined || v.type !== 'aay') {
    throw new LarchError('INVALID_ARGUMENT', `no signature for '${verifier.metadataKey}' in static-delta superblock`, { reason: 'no-signature', key: verifier.metadataKey });
  }
  const sigs = v.value as Uint8Array[];
  if (sigs.length > MAX_SUPERBLOCK_SIGNATURES) {
    throw new LarchError('LIMIT_EXCEEDED', `Static delta superblock holds ${sigs.length} signatures under '${verifier.metadataKey}', more than ${MAX_SUPERBLOCK_SIGNATURES}`);
  }
  const reports = await verifier.verify(sb.signedData, sigs);
  return {
    valid: reports.some((r) => r.valid),
    signatures: sigs.length,
    reasons: reports.filter((r) => !r.valid).map((r) => r.reason ?? 'invalid signature'),
  };
}

/**
 * Whether `repo` requires signed deltas to be checked before they are applied offline
 * (`[core] sign-verify-deltas`, default false).
 */
export function signVerifyDeltas(repo: Repo): boolean {
  return repo.config.getBoolean('core', 'sign-verify-deltas', false);
}

/**
 * The policy of `apply-offline` for one superblock, as ostree applies it: a signed superblock is
 * verified when a verifier is given, and refused without one when the repo demands it; an
 * unsigned one passes. Throws INVALID_ARGUMENT "Key is mandatory to check delta signature" or
 * "Delta signature verification failed".
 */
export async function checkSuperblockPolicy(repo: Repo, sb: Superblock, verifier: SuperblockVerifier | undefined): Promise<void> {
  if (!sb.signed) return;
  if (verifier === undefined) {
    if (signVerifyDeltas(repo)) throw new LarchError('INVALID_ARGUMENT', 'Key is mandatory to check delta signature', { reason: 'key-mandatory' });
    return;
  }
  const r = await verifySuperblock(sb, verifier);
  if (!r.valid) throw new LarchError('INVALID_ARGUMENT', 'Delta signature verification failed', { reason: 'verification-failed', reasons: r.reasons });
}
