/**
 * The per-repository `publish` section of larch-server's config file, and the signers it
 * names. Keys are loaded once when the publisher opens, so a missing key file or a bad
 * passphrase fails the server start, not the first publish.
 */
import { buildSigners, type Signer, type SignerSpec } from '@larch/signing';
import { z } from 'zod';

/** Schema of `repos[].publish`. */
export const publishConfigSchema = z
  .object({
    /** Sign with a key of a GnuPG home directory, through `gpg`. */
    gpg: z
      .object({
        homedir: z.string().min(1),
        keyId: z.string().min(1),
        passphraseFile: z.string().min(1).optional(),
      })
      .strict()
      .optional(),
    /** Sign in-process with this armored OpenPGP secret key (no gpg needed). */
    gpgSecretKeyFile: z.string().min(1).optional(),
    /** Passphrase of `gpgSecretKeyFile` (first line of the file). */
    gpgPassphraseFile: z.string().min(1).optional(),
    /** Sign with the ed25519 secret keys in this file (base64, one per line, `ostree sign` format). */
    ed25519: z.object({ secretKeyFile: z.string().min(1) }).strict().optional(),
    deltas: z
      .object({
        /** Deltas to each new commit from this many earlier commits of the ref (default 2; 0 disables). */
        fromLast: z.number().int().min(0).max(16).optional(),
        /** Also a from-scratch delta to each new commit. */
        fromScratch: z.boolean().optional(),
        /** Worker threads per delta (default: the machine's cores). */
        concurrency: z.number().int().min(1).max(64).optional(),
        /** Target part size in MB (default 32). */
        maxChunkSize: z.number().int().min(1).max(1024).optional(),
      })
      .strict()
      .optional(),
    /** Prune after each publish, keeping this many parents of every ref (none by default). */
    prune: z.object({ keepDepth: z.number().int().min(0).max(100_000) }).strict().optional(),
    /**
     * After each publish, mirror the repository to a published store (an S3-compatible bucket
     * `s3://BUCKET/PREFIX`, or a directory) in reader-safe order; optionally prune the store of
     * objects unreachable for longer than `pruneGraceSeconds`.
     */
    mirror: z
      .object({
        to: z.string().min(1),
        endpoint: z.string().url().optional(),
        region: z.string().min(1).optional(),
        concurrency: z.number().int().min(1).max(256).optional(),
        pruneGraceSeconds: z.number().int().min(0).optional(),
      })
      .strict()
      .optional(),
    /** Largest uncompressed content object accepted by uploads, bytes (default 16 GiB). */
    maxFileSize: z.number().int().min(1).optional(),
  })
  .strict();

/** A repository's publish settings. */
export type PublishConfig = z.infer<typeof publishConfigSchema>;

/** Default number of earlier commits deltas are generated from. */
export const DEFAULT_DELTAS_FROM_LAST = 2;

/**
 * The signers a publish config asks for (possibly none), built by @larch/signing's
 * `buildSigners`. Reads key files now; throws the signing package's errors (naming the file)
 * when a key cannot be loaded.
 */
export async function loadSigners(cfg: PublishConfig | undefined): Promise<Signer[]> {
  if (cfg === undefined) return [];
  const specs: Array<Exclude<SignerSpec, { type: 'dummy' }>> = [];
  if (cfg.gpg) {
    const { homedir, keyId, passphraseFile } = cfg.gpg;
    specs.push({ type: 'gpg', homedir, keyId, ...(passphraseFile !== undefined ? { passphraseFile } : {}) });
  }
  if (cfg.gpgSecretKeyFile !== undefined) {
    specs.push({ type: 'gpg-secret-key-file', file: cfg.gpgSecretKeyFile, ...(cfg.gpgPassphraseFile !== undefined ? { passphraseFile: cfg.gpgPassphraseFile } : {}) });
  }
  if (cfg.ed25519) specs.push({ type: 'ed25519-keys-file', file: cfg.ed25519.secretKeyFile });
  return buildSigners(specs);
}
