/**
 * The signature check a puller calls before it stores a commit or trusts a summary, built from a
 * remote's `[remote "NAME"]` keys (spec/pull-and-signing.md 5, 6): `gpg-verify` and
 * `gpg-verify-summary` against `<repo>/<remote>.trustedkeys.gpg` (and `gpgkeypath`, and the
 * global keyring directory when the remote has none), `sign-verify` and `sign-verify-summary`
 * against `verification-ed25519-key` / `-file` (else the well-known ed25519 key files).
 *
 * The object returned is structurally the `PullVerifier` of `@larch/http-pull` (this package does
 * not depend on it, nor it on this one; an application composes the two). Each call throws a
 * SigningError worded as OSTree's pull reports it, or returns when the signatures are good.
 *
 * A remote that requires GPG but has no keyring at all is not a configuration error here: as in
 * OSTree, the pull then fails on the commit (`… no signatures found`, or `Can't check signature:
 * public key not found`), which tells the user what is missing.
 */

import { decodeDetachedMetadata, type DetachedMetadata } from './detached-metadata.js';
import { SigningError, isSigningError, sanitize } from './errors.js';
import { GpgKeyring, loadRemoteGpgKeyring } from './gpg-keyring.js';
import { loadEd25519Verifier } from './ed25519-keys.js';
import { parseRemoteSigningConfig, type RemoteSigningConfig } from './remote-config.js';
import { GpgVerifier } from './sign-gpg.js';
import { verifyDetached, type Verifier } from './sign.js';
import { assertPullVerified } from './text.js';

/** What the puller tells the verifier (the shape of http-pull's `VerifyContext`). */
export interface PullVerifyContext {
  remote: string;
  /** The remote's config group; only `options` (every raw key) is read. */
  config: { options: Record<string, string> };
  /** The policy keys that require this check: `gpg-verify`, `sign-verify`, `gpg-verify-summary`, `sign-verify-summary`. */
  required: string[];
}

/** A verifier for `pull` (structurally http-pull's `PullVerifier`). */
export interface SigningPullVerifier {
  verifyCommit(commitBytes: Uint8Array, detachedMeta: Uint8Array | null, ctx: PullVerifyContext & { checksum: string }): Promise<void>;
  verifySummary(summaryBytes: Uint8Array, sigBytes: Uint8Array | null, ctx: PullVerifyContext): Promise<void>;
}

/** Options of {@link createPullVerifier}. */
export interface PullVerifierOptions {
  /** The local repository (where `<remote>.trustedkeys.gpg` lives). */
  repoPath: string;
  /** Override `/etc/ostree/remotes.d` (tests, relocated systems). */
  etcRemotesDir?: string;
  /** Override the global keyring directory (default `$OSTREE_GPG_HOME`, else `/usr/share/ostree/trusted.gpg.d`). */
  globalGpgDir?: string;
  /** Override the well-known ed25519 roots (`/etc/ostree`, `/usr/share/ostree`). */
  ed25519KeysDirs?: string[];
  /** "Now" for key expiry and revocation; default the current time. */
  now?: () => Date;
}

/**
 * Detached metadata as OSTree reads it on a pull: bytes that do not decode as `a{sv}` hold no
 * signature (GLib reads them as an empty dictionary), so the check then fails with "no signatures
 * found" rather than an error about the file.
 */
function decodeMeta(bytes: Uint8Array | null): DetachedMetadata {
  if (bytes === null) return [];
  try {
    return decodeDetachedMetadata(bytes);
  } catch {
    return [];
  }
}

/**
 * Build the verifier a pull uses. Keys are loaded on first use per remote and cached for the
 * life of the object (one pull). Reads key files only; no locks; safe to call concurrently.
 * Throws (from the methods) SigningError: SIGNATURE_MISSING, SIGNATURE_INVALID, KEY_REVOKED,
 * KEY_EXPIRED, METADATA_INVALID (a signature key of the wrong type, too many signatures),
 * CONFIG_INVALID (bad remote keys, a `gpgkeypath` mixing separators), IO_ERROR (a `gpgkeypath`
 * entry that cannot be opened), KEY_NOT_FOUND / KEY_INVALID (sign-verify without any usable
 * ed25519 key). An undecodable `.commitmeta` / `summary.sig` holds no signature.
 */
export function createPullVerifier(options: PullVerifierOptions): SigningPullVerifier {
  const gpgCache = new Map<string, Promise<GpgVerifier>>();
  const edCache = new Map<string, Promise<Verifier>>();

  const gpgFor = (remote: string, cfg: RemoteSigningConfig): Promise<GpgVerifier> => {
    let p = gpgCache.get(remote);
    if (p === undefined) {
      p = loadRemoteGpgKeyring({
        repoPath: options.repoPath,
        remote,
        gpgkeypath: cfg.gpgKeyPath,
        etcRemotesDir: options.etcRemotesDir,
        globalDir: options.globalGpgDir,
      }).then(
        (ring) => new GpgVerifier(ring),
        (e: unknown) => {
          // No keyring anywhere: every signature is then by an unknown key, as in OSTree.
          if (isSigningError(e, 'KEY_NOT_FOUND')) return new GpgVerifier(new GpgKeyring([]));
          throw e;
        },
      );
      gpgCache.set(remote, p);
    }
    return p;
  };
  const edFor = (remote: string, cfg: RemoteSigningConfig): Promise<Verifier> => {
    let p = edCache.get(remote);
    if (p === undefined) {
      p = loadEd25519Verifier({
        inline: cfg.ed25519Key ? [cfg.ed25519Key] : undefined,
        files: cfg.ed25519File ? [cfg.ed25519File] : undefined,
        keysDirs: options.ed25519KeysDirs,
      });
      edCache.set(remote, p);
    }
    return p;
  };

  const verifiersFor = async (ctx: PullVerifyContext, summary: boolean): Promise<Verifier[]> => {
    const cfg = parseRemoteSigningConfig(ctx.config.options);
    const gpgKey = summary ? 'gpg-verify-summary' : 'gpg-verify';
    const signKey = summary ? 'sign-verify-summary' : 'sign-verify';
    const out: Verifier[] = [];
    if (ctx.required.includes(gpgKey)) out.push(await gpgFor(ctx.remote, cfg));
    if (ctx.required.includes(signKey)) {
      const types = summary ? cfg.signVerifySummary : cfg.signVerify;
      if (types.includes('ed25519') || types.length === 0) out.push(await edFor(ctx.remote, cfg));
    }
    return out;
  };

  return {
    async verifyCommit(commitBytes, detachedMeta, ctx) {
      // OSTree reads keys and `gpgkeypath` while verifying, so its errors about them (a missing
      // key directory, a mixed separator) come out as the commit's: `Commit CSUM: opendir(…): …`.
      const verifiers = await verifiersFor(ctx, false).catch((e: unknown) => {
        if (e instanceof SigningError && (e.code === 'IO_ERROR' || e.code === 'CONFIG_INVALID')) {
          throw new SigningError(e.code, `Commit ${ctx.checksum}: ${e.message}`, { ...e.data, checksum: ctx.checksum }, { cause: e });
        }
        throw e;
      });
      if (verifiers.length === 0) return;
      const dict = decodeMeta(detachedMeta);
      const result = await verifyDetached({ data: commitBytes, dict, policy: { verifiers }, now: options.now?.() });
      assertPullVerified(result, { kind: 'commit', checksum: ctx.checksum });
    },
    async verifySummary(summaryBytes, sigBytes, ctx) {
      const verifiers = await verifiersFor(ctx, true);
      if (verifiers.length === 0) return;
      const dict = decodeMeta(sigBytes);
      const result = await verifyDetached({ data: summaryBytes, dict, policy: { verifiers }, now: options.now?.() });
      assertPullVerified(result, { kind: 'summary', hasSigFile: sigBytes !== null });
    },
  };
}
