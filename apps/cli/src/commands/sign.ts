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
 * This file also holds the signing helpers shared by `commit`, `summary` and `gpg-sign`: building
 * signers from options and writing signatures into `.commitmeta` / `summary.sig`.
 */
import { homedir } from 'node:os';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Command } from 'commander';
import type { Repo } from '@larch/core-store';
import {
  ED25519_SIGNATURES_KEY,
  GPG_SIGNATURES_KEY,
  GpgKeyring,
  findGpgSignatureByKey,
  loadGlobalGpgKeyring,
  loadGpgHomedirKeyring,
  Ed25519PublicKey,
  Ed25519SecretKey,
  Ed25519Signer,
  GpgProgramSigner,
  OpenPgpSigner,
  decodeDetachedMetadata,
  describeSignature,
  encodeDetachedMetadata,
  getSignatures,
  loadEd25519Verifier,
  readEd25519KeyFile,
  readEd25519SecretKeys,
  removeSignatures,
  signDetached,
  verifyDetached,
  type DetachedMetadata,
  type Signer,
} from '@larch/signing';
import type { VerbContext } from '../cli.js';
import { CommandError, openRepo, UsageError } from '../context.js';
import { allOptions, verb } from './common.js';

/** Signing options shared by `commit`, `summary` and `gpg-sign`. */
export interface SigningOptions {
  /** `--gpg-sign=KEYID` (repeatable). */
  gpgSign?: string[];
  /** `--gpg-homedir=DIR`: the GnuPG home holding the secret keys (default $GNUPGHOME, else ~/.gnupg). */
  gpgHomedir?: string;
  /** `--gpg-secret-key-file=FILE`: sign in-process with this armored secret key, no gpg needed. */
  gpgSecretKeyFile?: string;
  /** `--gpg-passphrase-file=FILE`: passphrase of the key (first line). */
  gpgPassphraseFile?: string;
  /** `--sign=KEY` (repeatable): base64 ed25519 secret keys. */
  sign?: string[];
  /** `--sign-type=NAME` (only `ed25519`). */
  signType?: string;
  /** `--keys-file=FILE`: ed25519 secret keys, one base64 key per line. */
  keysFile?: string;
}

/** The sign types Larch offers: ed25519 (ostree's `dummy` is a test engine and is not offered). */
export function checkSignType(t: string | undefined): void {
  if (t !== undefined && t !== 'ed25519') throw new CommandError(`Unsupported signature type '${t}'; the supported type is ed25519`);
}

async function readPassphrase(file: string | undefined): Promise<string | undefined> {
  if (file === undefined) return undefined;
  const text = await readFile(file, 'utf8').catch((e: Error) => {
    throw new CommandError(`Reading passphrase file ${file}: ${e.message}`);
  });
  return text.split('\n')[0];
}

/** The GnuPG home for `--gpg-homedir` (default $GNUPGHOME, else ~/.gnupg, as gpg itself). */
export function gnupgHome(dir: string | undefined): string {
  return dir ?? (process.env.GNUPGHOME || join(homedir(), '.gnupg'));
}

/** OpenPGP signers for `--gpg-sign` / `--gpg-secret-key-file`. */
export async function gpgSigners(keyIds: string[], opts: SigningOptions): Promise<Signer[]> {
  const passphrase = await readPassphrase(opts.gpgPassphraseFile);
  if (opts.gpgSecretKeyFile !== undefined) {
    let armored: string;
    try {
      armored = await readFile(opts.gpgSecretKeyFile, 'utf8');
    } catch (e) {
      throw new CommandError(`Reading secret key file ${opts.gpgSecretKeyFile}: ${(e as Error).message}`);
    }
    const ids = keyIds.length > 0 ? keyIds : [undefined];
    return Promise.all(ids.map((keyId) => OpenPgpSigner.fromArmored(armored, { ...(passphrase !== undefined ? { passphrase } : {}), ...(keyId !== undefined ? { keyId } : {}) })));
  }
  const home = gnupgHome(opts.gpgHomedir);
  return keyIds.map((keyId) => new GpgProgramSigner({ homedir: home, keyId, ...(passphrase !== undefined ? { passphrase } : {}) }));
}

/** ed25519 signers for `--sign=KEY` and `--keys-file=F`. */
export async function ed25519Signers(keys: string[], keysFile: string | undefined): Promise<Signer[]> {
  const secret: Ed25519SecretKey[] = keys.map((k) => {
    try {
      return Ed25519SecretKey.from(k);
    } catch {
      throw new CommandError(`Invalid KEY '${k.length > 12 ? `${k.slice(0, 6)}…` : k}'`);
    }
  });
  if (keysFile !== undefined) secret.push(...(await readEd25519SecretKeys(keysFile)));
  return secret.map((k) => new Ed25519Signer(k));
}

/** Every signer the options ask for (may be empty). */
export async function signersFromOptions(opts: SigningOptions): Promise<Signer[]> {
  checkSignType(opts.signType);
  const out: Signer[] = [];
  if ((opts.gpgSign?.length ?? 0) > 0 || opts.gpgSecretKeyFile !== undefined) out.push(...(await gpgSigners(opts.gpgSign ?? [], opts)));
  if ((opts.sign?.length ?? 0) > 0 || opts.keysFile !== undefined) out.push(...(await ed25519Signers(opts.sign ?? [], opts.keysFile)));
  return out;
}

/**
 * Sign a throwaway message with every signer, so a missing key, a locked agent or a wrong
 * passphrase fails before `commit` moves its branch (the commit is signed after the ref is
 * written; OSTree signs inside its transaction). One extra `gpg` run per GPG key.
 */
export async function preflightSigners(signers: Signer[]): Promise<void> {
  const probe = new TextEncoder().encode('larch signing check');
  for (const s of signers) await s.sign(probe);
}

/**
 * The keys OSTree consults to tell which key made a commit's existing GPG signatures (the global
 * keyring directory, `--gpg-homedir`'s keyring) plus, for an in-process signer, its own key.
 * Missing or unreadable keyrings just contribute nothing.
 */
export async function gpgLookupKeyring(homedir: string | undefined, extra: GpgKeyring['keys'] = []): Promise<GpgKeyring> {
  const rings: GpgKeyring[] = [new GpgKeyring(extra)];
  const quiet = <T>(p: Promise<T>): Promise<T | null> => p.catch(() => null);
  if (homedir !== undefined) {
    const h = await quiet(loadGpgHomedirKeyring(homedir));
    if (h !== null) rings.push(h);
  }
  const g = await quiet(loadGlobalGpgKeyring());
  if (g !== null) rings.push(g);
  return GpgKeyring.merge(rings);
}

/**
 * Append one signature per signer to the commit's detached metadata (`.commitmeta`), keeping
 * every other key. A GPG key that already signed the commit is refused, as `ostree gpg-sign`
 * and `ostree commit --gpg-sign` do (`Commit is already signed with GPG key KEYID`; the key is
 * recognised through its GnuPG home's keyring and the global keyrings). Locking: the repo's
 * exclusive lock, so two signers cannot lose each other's signature. Crash: the old or the new
 * `.commitmeta`; the signatures are written together, so a failing key leaves none of them.
 */
export async function signCommit(repo: Repo, commit: string, signers: Signer[]): Promise<void> {
  if (signers.length === 0) return;
  const data = await repo.readMetadata('commit', commit);
  await repo.withLock('exclusive', async () => {
    let dict = (await repo.readCommitMeta(commit)) ?? [];
    for (const signer of signers) {
      if (signer.scheme === 'gpg') {
        const existing = getSignatures(dict, GPG_SIGNATURES_KEY);
        if (existing.length > 0) {
          const ring = await gpgLookupKeyring(
            signer instanceof GpgProgramSigner ? signer.homedir : undefined,
            signer instanceof OpenPgpSigner ? [signer.publicKey] : [],
          );
          if ((await findGpgSignatureByKey(existing, ring, signer.keyId)) >= 0) throw new CommandError(`Commit is already signed with GPG key ${signer.keyId}`);
        }
      }
      dict = await signDetached({ data, dict, signers: [signer] });
    }
    await repo.writeCommitMeta(commit, dict);
  });
}

/**
 * Replace the commit's detached metadata (used by the delete forms). An emptied dictionary is
 * written as such, not removed, as OSTree does: a client that pulls the commit again then drops
 * the signatures too (a missing `.commitmeta` would leave its copy alone). Exclusive lock.
 */
export async function rewriteCommitMeta(repo: Repo, commit: string, change: (dict: DetachedMetadata) => Promise<DetachedMetadata | null>): Promise<void> {
  await repo.withLock('exclusive', async () => {
    const dict = (await repo.readCommitMeta(commit)) ?? [];
    const next = await change(dict);
    if (next !== null) await repo.writeCommitMeta(commit, next);
  });
}

/**
 * Sign the repository's `summary` into `summary.sig` (`a{sv}` with `ostree.gpgsigs` /
 * `ostree.sign.ed25519`). `append` keeps the signatures already in summary.sig (signing an
 * existing summary again); otherwise summary.sig is written fresh. Exclusive lock; atomic
 * (temp file, fsync, rename).
 */
export async function signSummary(repo: Repo, signers: Signer[], append: boolean): Promise<void> {
  if (signers.length === 0) return;
  await repo.withLock('exclusive', async () => {
    let summary: Uint8Array;
    try {
      summary = await readFile(join(repo.path, 'summary'));
    } catch (e) {
      throw new CommandError(`openat(summary): ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'No such file or directory' : (e as Error).message}`);
    }
    let dict: DetachedMetadata = [];
    if (append) {
      const old = await readFile(join(repo.path, 'summary.sig')).catch(() => null);
      if (old !== null) dict = decodeDetachedMetadata(old);
    }
    const next = await signDetached({ data: summary, dict, signers });
    await repo.writeSummarySignature(encodeDetachedMetadata(next));
  });
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
        const pubs = await Promise.all(keys.map(async (k) => publicKeyOf(k)));
        if (opts.keysFile !== undefined) pubs.push(...(await readEd25519KeyFile(opts.keysFile, 'public')).keys);
        const verifier = await loadEd25519Verifier({ inline: pubs.map((p) => p.base64), useWellKnown: false });
        const data = await repo.readMetadata('commit', commit);
        await rewriteCommitMeta(repo, commit, async (dict) => {
          const sigs = getSignatures(dict, ED25519_SIGNATURES_KEY);
          const reports = await verifier.verify(data, sigs);
          return removeSignatures(dict, ED25519_SIGNATURES_KEY, (_s, i) => reports[i]?.valid === true).dict;
        });
        return;
      }
      await signCommit(repo, commit, await ed25519Signers(keys, opts.keysFile));
    });
}

/** A public key from a base64 public (32-byte) or secret (64-byte) key. */
export function publicKeyOf(k: string): Ed25519PublicKey {
  try {
    return Ed25519PublicKey.from(k);
  } catch {
    try {
      return Ed25519SecretKey.from(k).publicKey;
    } catch {
      throw new CommandError(`Invalid KEY '${k.length > 12 ? `${k.slice(0, 6)}…` : k}'`);
    }
  }
}

async function verifyEd25519(ctx: VerbContext, repo: Repo, commit: string, keys: string[], opts: SignOpts): Promise<void> {
  const inline = keys.map((k) => publicKeyOf(k).base64);
  const verifier = await loadEd25519Verifier({
    ...(inline.length > 0 ? { inline } : {}),
    ...(opts.keysFile !== undefined ? { files: [opts.keysFile] } : {}),
    ...(opts.keysDir !== undefined ? { keysDirs: [opts.keysDir] } : {}),
  });
  const data = await repo.readMetadata('commit', commit);
  const dict = (await repo.readCommitMeta(commit)) ?? [];
  const result = await verifyDetached({ data, dict, policy: { verifiers: [verifier] } });
  const good = result.signatures.find((r) => r.valid);
  if (good === undefined) {
    const why = result.signatures.map((r) => describeSignature(r).join('; ')).join('; ');
    throw new CommandError(`No valid signatures found${why ? ` (${why})` : ''}`);
  }
  ctx.io.out(`${describeSignature(good)[0]}\n`);
}
