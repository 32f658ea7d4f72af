/**
 * Signature verification hook. Verification itself lives in the signing package; the puller
 * only decides *whether* verification is required (from the remote's `gpg-verify`,
 * `gpg-verify-summary`, `sign-verify`, `sign-verify-summary` keys, spec pull-and-signing.md 5)
 * and refuses to pull when it is required and no verifier was supplied. It never skips a
 * required check silently.
 */
import { LarchError } from '@larch/core-store';
import type { RemoteConfig } from './remote-config.js';

/** What a verifier learns about the object being checked. */
export interface VerifyContext {
  remote: string;
  /** The remote's parsed configuration (keyring paths, sign types, ...). */
  config: RemoteConfig;
  /** Which policy keys require this check (`gpg-verify`, `sign-verify`, ...). */
  required: string[];
}

/**
 * Implemented by `createPullVerifier` of `@larch/signing` (structurally: neither package depends
 * on the other; an application composes them). Each method returns (or resolves) when the
 * signatures are valid and throws otherwise (the signing package throws SigningError, worded as
 * OSTree). `verifyCommit` runs before the commit is stored or its tree fetched, so a refused commit
 * is never referenced.
 */
export interface PullVerifier {
  /** `commitBytes` are the exact `.commit` bytes; `detachedMeta` the `.commitmeta` bytes (`a{sv}`) or null when the remote has none. */
  verifyCommit(commitBytes: Uint8Array, detachedMeta: Uint8Array | null, ctx: VerifyContext & { checksum: string }): void | Promise<void>;
  /** `summaryBytes` are the exact `summary` bytes; `sigBytes` the `summary.sig` bytes (`a{sv}`), or null when absent. */
  verifySummary(summaryBytes: Uint8Array, sigBytes: Uint8Array | null, ctx: VerifyContext): void | Promise<void>;
}

/** Which checks the remote's config requires. */
export interface VerificationPolicy {
  commit: string[];
  summary: string[];
}

/** Derive the policy from a remote's config. */
export function verificationPolicy(cfg: RemoteConfig): VerificationPolicy {
  const commit: string[] = [];
  const summary: string[] = [];
  if (cfg.gpgVerify) commit.push('gpg-verify');
  if (cfg.signVerify.length > 0) commit.push('sign-verify');
  if (cfg.gpgVerifySummary) summary.push('gpg-verify-summary');
  if (cfg.signVerifySummary.length > 0) summary.push('sign-verify-summary');
  return { commit, summary };
}

/** Throw when the policy requires verification and no verifier is given. */
export function assertVerifierAvailable(remote: string, policy: VerificationPolicy, verifier: PullVerifier | undefined): void {
  if (verifier !== undefined) return;
  const keys = [...policy.commit, ...policy.summary];
  if (keys.length === 0) return;
  const fix = keys.map((k) => `${k}=false`).join(', ');
  throw new LarchError(
    'BAD_CONFIG',
    `Remote "${remote}" requires signature verification (${keys.join(', ')}), but no signature verifier is available; refusing to pull unverified content (set ${fix} in the remote config to disable)`,
    { remote, required: keys, reason: 'verification' },
  );
}
