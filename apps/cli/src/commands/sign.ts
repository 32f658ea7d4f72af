/**
 * `larch sign`: ed25519 signatures on commits, in the forms of `ostree sign` (2022.7 with
 * ed25519 support; the Debian build of the reference `ostree` lacks it):
 *
 *   sign [--sign-type=ed25519] [--keys-file=F] COMMIT [SECRET-KEY…]     sign (base64 64-byte keys)
 *   sign --verify [--sign-type=ed25519] [--keys-file=F] [--keys-dir=D] COMMIT [PUBLIC-KEY…]
 *   sign --delete COMMIT KEY…                                           drop signatures by these keys
 *
 * `--verify` prints `ed25519: Signature verified successfully with key 'HEX'` and fails with
 * `No valid signatures found`, as OSTree does. Without public keys on the command line or in
 * `--keys-file`, the well-known locations are used (`trusted.ed25519(.d)` under `/etc/ostree`
 * and `/usr/share/ostree`, or under `--keys-dir`), and `revoked.ed25519(.d)` there always applies.
 *
 * Signers come from @larch/signing's `signersFromOptions`; the signatures are read and written
 * by @larch/core-store (`signCommit`, `verifyCommitSignatures`, `deleteCommitSignatures`).
 * The helpers `gpg-sign` and `remote` share are re-exported here under their old names.
 */
import type { Command } from 'commander';
import { deleteCommitSignatures, signCommit as signCommitSignatures, updateCommitMeta, verifyCommitSignatures, type Checksum, type DetachedDict, type Repo, type RepoSigner } from '@larch/core-store';
import {
  ED25519_SIGNATURES_KEY,
  checkSignType,
  describeSignature,
  ed25519PublicKeyOf,
  ed25519VerifierFromOptions,
  loadEd25519Verifier,
  readEd25519KeyFile,
  signersFromOptions,
  type SignerOptions,
  type Signer,
} from '@larch/signing';
import type { VerbContext } from '../cli.js';
import { CommandError, openRepo, UsageError } from '../context.js';
import { allOptions, verb } from './common.js';

export { gnupgHome, gpgLookupKeyring } from '@larch/signing';

/** Signing options shared by `commit`, `summary` and `gpg-sign` (@larch/signing's shape). */
export type SigningOptions = SignerOptions;

/** OpenPGP signers for `--gpg-sign` / `--gpg-secret-key-file` (`gpg-sign`). */
export async function gpgSigners(keyIds: string[], opts: SigningOptions): Promise<Signer[]> {
  const { gpgHomedir, gpgSecretKeyFile, gpgPassphraseFile } = opts;
  return (await signersFromOptions({ gpgSign: keyIds, gpgHomedir, gpgSecretKeyFile, gpgPassphraseFile })) as Signer[];
}

/** Sign a commit (see @larch/core-store's `signCommit`: exclusive lock, a GPG key is refused twice). */
export async function signCommit(repo: Repo, commit: Checksum, signers: readonly RepoSigner[]): Promise<void> {
  await signCommitSignatures(repo, commit, signers);
}

/** Rewrite a commit's detached metadata (see @larch/core-store's `updateCommitMeta`: exclusive lock). */
export async function rewriteCommitMeta(repo: Repo, commit: Checksum, change: (dict: DetachedDict) => Promise<DetachedDict | null>): Promise<void> {
  await updateCommitMeta(repo, commit, change);
}

interface SignOpts {
  delete?: boolean;
  verify?: boolean;
  signType?: string;
  keysFile?: string;
  keysDir?: string;
}

/** Register `sign`. */
export function registerSign(program: Command, ctx: VerbContext): void {
  verb(program, 'sign', 'Sign a commit')
    .argument('<commit>', 'Commit or ref')
    .argument('[keys...]', 'Keys: base64 secret keys to sign with, public keys with --verify')
    .option('-d, --delete', 'Delete signatures having any of the KEY-IDs')
    .option('--verify', 'Verify signatures')
    .option('-s, --sign-type <name>', "Signature type to use (defaults to 'ed25519')")
    .option('--keys-file <file>', 'Read key(s) from file')
    .option('--keys-dir <dir>', 'Redefine system-wide directories with public and revoked keys for verification')
    .action(async (commitArg: string, keys: string[], _o: SignOpts, cmd: Command) => {
      const opts = allOptions<SignOpts>(cmd);
      checkSignType(opts.signType);
      if (!opts.verify && keys.length === 0 && opts.keysFile === undefined) throw new UsageError('Need at least one KEY-ID to sign with');
      const repo = await openRepo(opts);
      const commit = await repo.revParse(commitArg);
      if (opts.verify) {
        await verifyEd25519(ctx, repo, commit, keys, opts);
        return;
      }
      if (opts.delete) {
        // Public keys only (no well-known files): a signature is deleted when one of them verifies it.
        const pubs = keys.map((k) => ed25519PublicKeyOf(k));
        if (opts.keysFile !== undefined) pubs.push(...(await readEd25519KeyFile(opts.keysFile, 'public')).keys);
        const verifier = await loadEd25519Verifier({ inline: pubs.map((p) => p.base64), useWellKnown: false });
        // As ostree, the detached metadata is written back even when nothing matched.
        await deleteCommitSignatures(
          repo,
          commit,
          ED25519_SIGNATURES_KEY,
          async (sigs, data) => (await verifier.verify(data, sigs)).flatMap((r, i) => (r.valid ? [i] : [])),
          { writeUnchanged: true },
        );
        return;
      }
      await signCommitSignatures(repo, commit, await signersFromOptions({ sign: keys, ...(opts.keysFile !== undefined ? { keysFile: opts.keysFile } : {}) }));
    });
}

async function verifyEd25519(ctx: VerbContext, repo: Repo, commit: string, keys: string[], opts: SignOpts): Promise<void> {
  const verifier = await ed25519VerifierFromOptions(keys, opts);
  const result = await verifyCommitSignatures(repo, commit, [verifier]);
  const good = result.signatures.find((r) => r.valid);
  if (good === undefined) {
    const why = result.signatures.map((r) => describeSignature(r).join('; ')).join('; ');
    throw new CommandError(`No valid signatures found${why ? ` (${why})` : ''}`);
  }
  ctx.io.out(`${describeSignature(good)[0]}\n`);
}
