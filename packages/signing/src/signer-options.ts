/**
 * Signers from the shapes users give keys in, so every program builds them the same way:
 *
 * - OSTree's command-line options (`--gpg-sign=KEYID` + `--gpg-homedir=DIR`, `--sign=KEY`,
 *   `--sign-type=ed25519`, `--keys-file=FILE`, plus Larch's `--gpg-secret-key-file` and
 *   `--gpg-passphrase-file`): {@link signerSpecsFromOptions};
 * - a list of {@link SignerSpec}s (what a config file names, e.g. larch-server's `publish`
 *   section): {@link buildSigners}.
 *
 * Key material is read when the signers are built, so a missing file, an invalid key or an
 * unsupported type fails before anything is written. Errors are SigningErrors naming the file
 * or (abbreviated) key at fault; secret keys never appear whole in a message.
 */
import { homedir } from 'node:os';
import { join } from 'node:path';
import { readFile } from 'node:fs/promises';
import { loadEd25519Verifier, readEd25519SecretKeys } from './ed25519-keys.js';
import { SigningError, sanitize } from './errors.js';
import { DummySigner } from './sign-dummy.js';
import { Ed25519PublicKey, Ed25519SecretKey, Ed25519Signer } from './sign-ed25519.js';
import { GpgProgramSigner, OpenPgpSigner } from './sign-gpg.js';
import type { Signer } from './sign.js';

/** What {@link buildSigners} makes: an engine's `Signer`, or (only from a `dummy` spec) a `DummySigner`. */
export type BuiltSigner = Signer | DummySigner;

/** One source of signers. */
export type SignerSpec =
  /** A key of a GnuPG home directory, signing through `gpg` (default home: {@link gnupgHome}). */
  | { type: 'gpg'; keyId: string; homedir?: string; passphraseFile?: string }
  /** An armored OpenPGP secret key file, signing in-process; `keyId` picks a signing subkey. */
  | { type: 'gpg-secret-key-file'; file: string; keyId?: string; passphraseFile?: string }
  /** A base64 ed25519 secret key (64 bytes, `ostree sign`'s format). */
  | { type: 'ed25519'; key: string }
  /** A file of base64 ed25519 secret keys, one per line (`--keys-file`). */
  | { type: 'ed25519-keys-file'; file: string }
  /** OSTree's test-only `dummy` engine (static deltas only). */
  | { type: 'dummy'; key: string };

/** The signing options of OSTree's commands (`commit`, `summary`, `sign`, `gpg-sign`, `static-delta generate`). */
export interface SignerOptions {
  /** `--gpg-sign=KEYID` (repeatable). */
  gpgSign?: readonly string[];
  /** `--gpg-homedir=DIR`: the GnuPG home holding the secret keys (default $GNUPGHOME, else ~/.gnupg). */
  gpgHomedir?: string;
  /** `--gpg-secret-key-file=FILE`: sign in-process with this armored secret key (the KEYIDs pick subkeys). */
  gpgSecretKeyFile?: string;
  /** `--gpg-passphrase-file=FILE`: passphrase of the key (first line). */
  gpgPassphraseFile?: string;
  /** `--sign=KEY` (repeatable): base64 ed25519 secret keys (or `dummy` keys). */
  sign?: readonly string[];
  /** `--sign-type=NAME`: `ed25519` (default), or `dummy` where {@link SignerSpecOptions.signTypes} allows it. */
  signType?: string;
  /** `--keys-file=FILE`: ed25519 secret keys, one base64 key per line. */
  keysFile?: string;
}

/** Options of {@link signerSpecsFromOptions}. */
export interface SignerSpecOptions {
  /** The `--sign-type` values accepted (default: only `ed25519`; OSTree offers `dummy` for tests). */
  signTypes?: ReadonlyArray<'ed25519' | 'dummy'>;
}

/** True when the options ask for any signature. */
export function wantsSigning(opts: SignerOptions): boolean {
  return (opts.gpgSign?.length ?? 0) > 0 || opts.gpgSecretKeyFile !== undefined || (opts.sign?.length ?? 0) > 0 || opts.keysFile !== undefined;
}

/** Throw CONFIG_INVALID for a `--sign-type` outside `allowed`. */
export function checkSignType(type: string | undefined, allowed: ReadonlyArray<string> = ['ed25519']): void {
  if (type === undefined || allowed.includes(type)) return;
  const list = allowed.length === 1 ? `the supported type is ${allowed[0]}` : `the supported types are ${allowed.join(', ')}`;
  throw new SigningError('CONFIG_INVALID', `Unsupported signature type '${sanitize(type, 40)}'; ${list}`, { signType: type });
}

/**
 * The signer specs OSTree's options describe, GPG ones first: each `--gpg-sign` KEYID through
 * `gpg` in `--gpg-homedir` (or, with `--gpg-secret-key-file`, that file's key or the subkeys the
 * KEYIDs name), then each `--sign` KEY and `--keys-file`. Pure; checks only the sign type.
 */
export function signerSpecsFromOptions(opts: SignerOptions, spec: SignerSpecOptions = {}): SignerSpec[] {
  checkSignType(opts.signType, spec.signTypes ?? ['ed25519']);
  const out: SignerSpec[] = [];
  const pass = opts.gpgPassphraseFile !== undefined ? { passphraseFile: opts.gpgPassphraseFile } : {};
  const keyIds = opts.gpgSign ?? [];
  if (opts.gpgSecretKeyFile !== undefined) {
    const file = opts.gpgSecretKeyFile;
    if (keyIds.length === 0) out.push({ type: 'gpg-secret-key-file', file, ...pass });
    for (const keyId of keyIds) out.push({ type: 'gpg-secret-key-file', file, keyId, ...pass });
  } else {
    for (const keyId of keyIds) out.push({ type: 'gpg', keyId, ...(opts.gpgHomedir !== undefined ? { homedir: opts.gpgHomedir } : {}), ...pass });
  }
  if (opts.signType === 'dummy') {
    for (const key of opts.sign ?? []) out.push({ type: 'dummy', key });
    return out;
  }
  for (const key of opts.sign ?? []) out.push({ type: 'ed25519', key });
  if (opts.keysFile !== undefined) out.push({ type: 'ed25519-keys-file', file: opts.keysFile });
  return out;
}

/** The GnuPG home for `--gpg-homedir` (default $GNUPGHOME, else ~/.gnupg, as gpg itself). */
export function gnupgHome(dir?: string, env: Readonly<Record<string, string | undefined>> = process.env): string {
  return dir ?? (env.GNUPGHOME || join(homedir(), '.gnupg'));
}

/** A key as it may appear in a message: its first characters only. */
function abbreviated(k: string): string {
  return sanitize(k.length > 12 ? `${k.slice(0, 6)}…` : k, 20);
}

/** An ed25519 secret key from base64; KEY_INVALID (`Invalid KEY 'abcdef…'`) otherwise. */
export function ed25519SecretKeyOf(k: string): Ed25519SecretKey {
  try {
    return Ed25519SecretKey.from(k);
  } catch (e) {
    throw new SigningError('KEY_INVALID', `Invalid KEY '${abbreviated(k)}'`, {}, { cause: e });
  }
}

/** An ed25519 public key from a base64 public (32-byte) or secret (64-byte) key; KEY_INVALID otherwise. */
export function ed25519PublicKeyOf(k: string): Ed25519PublicKey {
  try {
    return Ed25519PublicKey.from(k);
  } catch {
    return ed25519SecretKeyOf(k).publicKey;
  }
}

async function readText(file: string, what: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (e) {
    throw new SigningError('IO_ERROR', `Reading ${what} ${sanitize(file, 500)}: ${(e as Error).message}`, { path: file }, { cause: e });
  }
}

/**
 * Build the signers `specs` describe, in order, reading key and passphrase files now (each
 * file once). Throws KEY_INVALID for a malformed key, IO_ERROR naming an unreadable file, and
 * the engines' errors (KEY_NOT_FOUND, KEY_REVOKED, …) for an unusable OpenPGP key. A `gpg`
 * spec is not checked here (its key lives in the agent): see {@link preflightSigners}.
 */
export async function buildSigners(specs: ReadonlyArray<Exclude<SignerSpec, { type: 'dummy' }>>): Promise<Signer[]>;
export async function buildSigners(specs: readonly SignerSpec[]): Promise<BuiltSigner[]>;
export async function buildSigners(specs: readonly SignerSpec[]): Promise<BuiltSigner[]> {
  const texts = new Map<string, Promise<string>>();
  const text = (file: string, what: string): Promise<string> => {
    const key = `${what}\0${file}`;
    let p = texts.get(key);
    if (p === undefined) texts.set(key, (p = readText(file, what)));
    return p;
  };
  const passphrase = async (file: string | undefined): Promise<{ passphrase?: string }> =>
    file === undefined ? {} : { passphrase: (await text(file, 'passphrase file')).split('\n')[0] };
  const out: BuiltSigner[] = [];
  for (const s of specs) {
    switch (s.type) {
      case 'gpg':
        out.push(new GpgProgramSigner({ homedir: gnupgHome(s.homedir), keyId: s.keyId, ...(await passphrase(s.passphraseFile)) }));
        break;
      case 'gpg-secret-key-file': {
        const pass = await passphrase(s.passphraseFile);
        const armored = await text(s.file, 'secret key file');
        out.push(await OpenPgpSigner.fromArmored(armored, { ...pass, ...(s.keyId !== undefined ? { keyId: s.keyId } : {}) }));
        break;
      }
      case 'ed25519':
        out.push(new Ed25519Signer(ed25519SecretKeyOf(s.key)));
        break;
      case 'ed25519-keys-file':
        for (const k of await readEd25519SecretKeys(s.file)) out.push(new Ed25519Signer(k));
        break;
      case 'dummy':
        out.push(new DummySigner(s.key));
        break;
    }
  }
  return out;
}

/** {@link buildSigners} over {@link signerSpecsFromOptions}: every signer OSTree's options ask for (may be none). */
export async function signersFromOptions(opts: SignerOptions, spec: SignerSpecOptions = {}): Promise<BuiltSigner[]> {
  return buildSigners(signerSpecsFromOptions(opts, spec));
}

/**
 * Sign a throwaway message with every signer, so a missing key, a locked agent or a wrong
 * passphrase fails before anything is written (e.g. before `commit` moves its branch). One
 * extra `gpg` run per GPG key.
 */
export async function preflightSigners(signers: ReadonlyArray<Pick<Signer, 'sign'>>): Promise<void> {
  const probe = new TextEncoder().encode('larch signing check');
  for (const s of signers) await s.sign(probe);
}

/**
 * The ed25519 verifier OSTree's `sign --verify` and `static-delta apply-offline|verify` build:
 * `keys` on the command line (base64 public keys; secret keys are reduced to theirs), `--keys-file`,
 * and, when no key is given, the well-known trusted files (`trusted.ed25519(.d)` under
 * `--keys-dir`, else /etc/ostree and /usr/share/ostree); `revoked.ed25519(.d)` always applies.
 * KEY_NOT_FOUND when no key is found anywhere, KEY_INVALID for a malformed key.
 */
export async function ed25519VerifierFromOptions(
  keys: readonly string[],
  opts: { keysFile?: string; keysDir?: string } = {},
): Promise<Awaited<ReturnType<typeof loadEd25519Verifier>>> {
  const inline = keys.map((k) => ed25519PublicKeyOf(k).base64);
  return loadEd25519Verifier({
    ...(inline.length > 0 ? { inline } : {}),
    ...(opts.keysFile !== undefined ? { files: [opts.keysFile] } : {}),
    ...(opts.keysDir !== undefined ? { keysDirs: [opts.keysDir] } : {}),
  });
}
