/**
 * OpenPGP keyrings as OSTree finds them (spec/pull-and-signing.md 6.1):
 * - `<repo>/<remote>.trustedkeys.gpg`, written by `ostree remote add --gpg-import`: binary
 *   transferable public keys, back to back (what `gpg --export` prints);
 * - keyring directories such as `/usr/share/ostree/trusted.gpg.d/`: every `*.gpg` file in them
 *   except GnuPG's own `trustdb.gpg` and `secring.gpg`, as OSTree does;
 * - `gpgkeypath` entries, which may be either.
 * Files may also be ASCII-armored (one or more armor blocks), or GnuPG 2.1+ keybox files
 * (`pubring.kbx` of a GnuPG home directory), whose OpenPGP blobs are extracted here so a
 * keyring can be taken straight from `--gpg-homedir`.
 * Files are read whole but capped at MAX_KEYRING_SIZE; keyrings are small.
 */

import { readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import * as openpgp from 'openpgp';
import { SigningError, isSigningError, sanitize } from './errors.js';
import { strerror } from './internal/errno.js';

/** Largest keyring file we read (16 MiB; distribution keyrings are a few KiB). */
export const MAX_KEYRING_SIZE = 16 * 1024 * 1024;

/** The trusted OpenPGP public keys a verifier checks against. */
export class GpgKeyring {
  constructor(readonly keys: readonly openpgp.PublicKey[]) {}

  /** Keys (primary or subkey) whose long key id matches `keyIdHex`. */
  findByKeyId(keyIdHex: string): openpgp.PublicKey[] {
    const want = keyIdHex.toLowerCase();
    return this.keys.filter((k) => k.getKeys().some((sub) => sub.getKeyID().toHex() === want));
  }

  /**
   * The key `wanted` names, as `gpg` resolves a key argument: a fingerprint, a long (16) or
   * short (8) key id of the primary key or of a subkey (optionally `0x`-prefixed), else a
   * case-insensitive substring of a user id. Null when no key matches.
   */
  find(wanted: string): openpgp.PublicKey | null {
    const hex = wanted.replace(/^0[xX]/, '').toUpperCase();
    if (/^[0-9A-F]{8,40}$/.test(hex)) {
      for (const k of this.keys) {
        for (const sub of k.getKeys()) {
          const fp = sub.getFingerprint().toUpperCase();
          if (fp === hex || (hex.length <= 16 && fp.endsWith(hex))) return k;
        }
      }
      return null;
    }
    const needle = wanted.toLowerCase();
    return this.keys.find((k) => k.getUserIDs().some((u) => u.toLowerCase().includes(needle))) ?? null;
  }

  /** Fingerprints (upper-case hex) of every primary key. */
  fingerprints(): string[] {
    return this.keys.map((k) => k.getFingerprint().toUpperCase());
  }

  /** Combine keyrings; keys with the same fingerprint are kept once (first wins). */
  static merge(rings: readonly GpgKeyring[]): GpgKeyring {
    const seen = new Set<string>();
    const out: openpgp.PublicKey[] = [];
    for (const r of rings) for (const k of r.keys) if (!seen.has(k.getFingerprint())) {
      seen.add(k.getFingerprint());
      out.push(k);
    }
    return new GpgKeyring(out);
  }
}

function isArmored(bytes: Uint8Array): boolean {
  const head = Buffer.from(bytes.subarray(0, Math.min(bytes.length, 4096))).toString('latin1');
  return head.includes('-----BEGIN PGP ');
}

function isKeybox(bytes: Uint8Array): boolean {
  // The first blob of a keybox is its header blob (type 1) with the magic "KBXf" at offset 8.
  return bytes.length >= 32 && bytes[4] === 1 && Buffer.from(bytes.subarray(8, 12)).toString('latin1') === 'KBXf';
}

/**
 * Extract the OpenPGP keyblocks of a keybox file. Layout per blob: u32 length, u8 type
 * (2 = OpenPGP), u8 version, u16 flags, u32 keyblock offset, u32 keyblock length (big endian,
 * offsets relative to the blob). Every offset is bounds-checked; a malformed keybox throws.
 */
function keyboxKeyblocks(bytes: Uint8Array, source: string): Uint8Array[] {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: Uint8Array[] = [];
  let pos = 0;
  while (pos < bytes.length) {
    if (pos + 5 > bytes.length) throw new SigningError('KEY_INVALID', `Truncated keybox ${sanitize(source)}`, { source, offset: pos });
    const len = dv.getUint32(pos);
    const type = bytes[pos + 4];
    if (len < 5 || pos + len > bytes.length) throw new SigningError('KEY_INVALID', `Corrupted keybox ${sanitize(source)}: blob length ${len} at ${pos}`, { source, offset: pos });
    if (type === 2) {
      if (len < 16) throw new SigningError('KEY_INVALID', `Corrupted keybox ${sanitize(source)}: short OpenPGP blob at ${pos}`, { source, offset: pos });
      const off = dv.getUint32(pos + 8);
      const kl = dv.getUint32(pos + 12);
      if (off + kl > len) throw new SigningError('KEY_INVALID', `Corrupted keybox ${sanitize(source)}: keyblock outside blob at ${pos}`, { source, offset: pos });
      out.push(bytes.subarray(pos + off, pos + off + kl));
    }
    pos += len;
  }
  return out;
}

/**
 * Parse keyring bytes: binary OpenPGP, ASCII armor (one or more blocks) or a GnuPG keybox.
 * Secret keys are reduced to their public part. Throws KEY_INVALID when nothing parses.
 * Pure (no I/O).
 */
export async function parseGpgKeyring(bytes: Uint8Array, source = '<keyring>'): Promise<GpgKeyring> {
  const keys: openpgp.PublicKey[] = [];
  try {
    if (isArmored(bytes)) {
      const text = Buffer.from(bytes).toString('utf8');
      const blocks = text.match(/-----BEGIN PGP (?:PUBLIC|PRIVATE) KEY BLOCK-----[\s\S]*?-----END PGP (?:PUBLIC|PRIVATE) KEY BLOCK-----/g) ?? [];
      for (const b of blocks) keys.push(...(await openpgp.readKeys({ armoredKeys: b })).map((k) => k.toPublic()));
    } else if (isKeybox(bytes)) {
      for (const kb of keyboxKeyblocks(bytes, source)) keys.push(...(await openpgp.readKeys({ binaryKeys: kb })).map((k) => k.toPublic()));
    } else if (bytes.length > 0) {
      keys.push(...(await openpgp.readKeys({ binaryKeys: bytes })).map((k) => k.toPublic()));
    }
  } catch (e) {
    if (e instanceof SigningError) throw e;
    throw new SigningError('KEY_INVALID', `Invalid keyring ${sanitize(source)}: ${sanitize((e as Error).message)}`, { source }, { cause: e });
  }
  if (keys.length === 0) throw new SigningError('KEY_INVALID', `No OpenPGP keys in ${sanitize(source)}`, { source });
  return new GpgKeyring(keys);
}

/**
 * Load a keyring file, or a keyring directory (every `*.gpg` file in name order, like
 * OSTree's `trusted.gpg.d`). Throws KEY_NOT_FOUND for a missing path, KEY_INVALID for a file
 * that is not a keyring or exceeds MAX_KEYRING_SIZE. Reads only; no locks.
 */
export async function loadGpgKeyring(path: string): Promise<GpgKeyring> {
  let st;
  try {
    st = await stat(path);
  } catch (e) {
    throw new SigningError('KEY_NOT_FOUND', `Keyring ${sanitize(path)} not found`, { path }, { cause: e });
  }
  if (st.isDirectory()) {
    const names = (await readdir(path)).filter((n) => n.endsWith('.gpg') && n !== 'trustdb.gpg' && n !== 'secring.gpg').sort();
    const rings: GpgKeyring[] = [];
    for (const n of names) {
      const p = join(path, n);
      if ((await stat(p)).isFile()) rings.push(await loadGpgKeyring(p));
    }
    if (rings.length === 0) throw new SigningError('KEY_NOT_FOUND', `No keyrings (*.gpg) in ${sanitize(path)}`, { path });
    return GpgKeyring.merge(rings);
  }
  if (st.size > MAX_KEYRING_SIZE) throw new SigningError('KEY_INVALID', `Keyring ${sanitize(path)} is larger than ${MAX_KEYRING_SIZE} bytes`, { path, limit: MAX_KEYRING_SIZE, observed: st.size });
  const bytes = await readFile(path);
  return parseGpgKeyring(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), path);
}

/**
 * The keyring of a GnuPG home directory (`pubring.kbx`, else `pubring.gpg`), for verifying
 * against the same keys `gpg --homedir H` would use. Trust levels in the home directory's
 * trustdb are not consulted: every key in the file is trusted, as in OSTree's per-remote keyrings.
 */
export async function loadGpgHomedirKeyring(homedir: string): Promise<GpgKeyring> {
  for (const name of ['pubring.kbx', 'pubring.gpg']) {
    const p = join(homedir, name);
    const st = await stat(p).catch(() => null);
    if (st?.isFile()) return loadGpgKeyring(p);
  }
  throw new SigningError('KEY_NOT_FOUND', `No public keyring in GnuPG home directory ${sanitize(homedir)}`, { path: homedir });
}

/** Where OSTree's global keyrings live when `$OSTREE_GPG_HOME` is not set (Debian's DATADIR). */
export const DEFAULT_GLOBAL_GPG_DIR = '/usr/share/ostree/trusted.gpg.d';

/**
 * The global keyring directory, as OSTree picks it: `$OSTREE_GPG_HOME` when the variable is set
 * (even to an empty value, which then names no directory), else DEFAULT_GLOBAL_GPG_DIR. Pure
 * apart from reading `env` (default `process.env`).
 */
export function globalGpgKeyringDir(env: Readonly<Record<string, string | undefined>> = process.env): string {
  return env.OSTREE_GPG_HOME ?? DEFAULT_GLOBAL_GPG_DIR;
}

/**
 * Split a `gpgkeypath` value as OSTree does: either `;` or `,` separates the entries, never both
 * (CONFIG_INVALID `key value list contains more than one separator`); a value without a
 * separator is one entry; empty entries are kept (they name no file, which fails later), except
 * after a trailing separator, as with GKeyFile lists. Pure.
 */
export function parseGpgKeyPath(value: string): string[] {
  const seps = [';', ','].filter((c) => value.includes(c));
  if (seps.length > 1) throw new SigningError('CONFIG_INVALID', 'key value list contains more than one separator', { key: 'gpgkeypath', value: sanitize(value) });
  if (seps.length === 0) return [value];
  const parts = value.split(seps[0]);
  if (parts[parts.length - 1] === '') parts.pop();
  return parts;
}

/** The keys of one key file; files that hold no key (or are too large) give none, as gpg ignores them. */
async function keysOfKeyFile(path: string): Promise<openpgp.PublicKey[]> {
  let bytes: Buffer;
  try {
    const st = await stat(path);
    if (st.size > MAX_KEYRING_SIZE) return [];
    bytes = await readFile(path);
  } catch (e) {
    throw new SigningError('IO_ERROR', `openat(${sanitize(path)}): ${strerror(e)}`, { path }, { cause: e });
  }
  try {
    return [...(await parseGpgKeyring(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), path)).keys];
  } catch (e) {
    if (isSigningError(e, 'KEY_INVALID')) return [];
    throw e;
  }
}

/**
 * The keys of one `gpgkeypath` entry, as OSTree reads it: a directory contributes every regular
 * file directly in it (symbolic links and subdirectories are skipped; files that are not keys
 * are ignored), anything else that exists is one key file (armored or binary). A path that
 * cannot be opened fails with IO_ERROR `opendir(PATH): No such file or directory` (OSTree's
 * wording). Files are read in name order. Reads only.
 */
export async function loadGpgKeyPathEntry(path: string): Promise<GpgKeyring> {
  let entries;
  try {
    entries = await readdir(path, { withFileTypes: true });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOTDIR') return new GpgKeyring(await keysOfKeyFile(path));
    throw new SigningError('IO_ERROR', `opendir(${sanitize(path)}): ${strerror(e)}`, { path }, { cause: e });
  }
  const keys: openpgp.PublicKey[] = [];
  for (const d of entries.filter((x) => x.isFile()).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    keys.push(...(await keysOfKeyFile(join(path, d.name))));
  }
  return GpgKeyring.merge([new GpgKeyring(keys)]);
}

/** Where a remote's trusted keys come from (see {@link collectRemoteGpgKeys}). */
export interface RemoteGpgKeySources {
  repoPath: string;
  remote: string;
  /** The remote's `gpgkeypath` entries (already split, see {@link parseGpgKeyPath}). */
  gpgkeypath?: readonly string[];
  /** Override `/etc/ostree/remotes.d`. */
  etcRemotesDir?: string;
  /** Override the global keyring directory (default {@link globalGpgKeyringDir}). */
  globalDir?: string;
  /**
   * When the global directory is used: `fallback` (verification: only when the remote has no
   * keyring of its own, as OSTree), or `never` (`remote gpg-list-keys NAME`).
   */
  global?: 'fallback' | 'never';
}

function checkRemoteName(remote: string): void {
  if (!/^[^/\0]+$/.test(remote) || remote === '.' || remote === '..') {
    throw new SigningError('CONFIG_INVALID', `Invalid remote name ${sanitize(remote)}`, { remote });
  }
}

/**
 * A remote's trusted keys, in OSTree's order (`_ostree_repo_gpg_prepare_verifier`): its own
 * keyring `<repo>/<remote>.trustedkeys.gpg`, else `<etcRemotesDir>/<remote>.trustedkeys.gpg`;
 * when it has neither, the global directory (unless `global: 'never'`); then every `gpgkeypath`
 * entry. The result may be empty. Throws IO_ERROR for a `gpgkeypath` entry that cannot be
 * opened, KEY_INVALID for an own keyring that is not one, CONFIG_INVALID for a remote name that
 * could escape the repository. Reads only; no locks.
 */
export async function collectRemoteGpgKeys(args: RemoteGpgKeySources): Promise<GpgKeyring> {
  checkRemoteName(args.remote);
  const rings: GpgKeyring[] = [];
  const own = [join(args.repoPath, `${args.remote}.trustedkeys.gpg`), join(args.etcRemotesDir ?? '/etc/ostree/remotes.d', `${args.remote}.trustedkeys.gpg`)];
  let hasOwn = false;
  for (const p of own) {
    if (await stat(p).then((s) => s.isFile(), () => false)) {
      rings.push(await loadGpgKeyring(p));
      hasOwn = true;
      break;
    }
  }
  if (!hasOwn && args.global !== 'never') {
    const g = await loadGlobalGpgKeyring(args.globalDir);
    if (g !== null) rings.push(g);
  }
  for (const p of args.gpgkeypath ?? []) rings.push(await loadGpgKeyPathEntry(p));
  return GpgKeyring.merge(rings);
}

/**
 * The keys of the global keyring directory (`*.gpg` files, see {@link loadGpgKeyring}), or null
 * when it does not exist or holds no keyring. `dir` defaults to {@link globalGpgKeyringDir}.
 */
export async function loadGlobalGpgKeyring(dir: string = globalGpgKeyringDir()): Promise<GpgKeyring | null> {
  if (!(await stat(dir).then((s) => s.isDirectory(), () => false))) return null;
  try {
    return await loadGpgKeyring(dir);
  } catch (e) {
    if (isSigningError(e, 'KEY_NOT_FOUND')) return null;
    throw e;
  }
}

/**
 * The trusted keys for a remote (see {@link collectRemoteGpgKeys}); KEY_NOT_FOUND when there is
 * none at all.
 */
export async function loadRemoteGpgKeyring(args: RemoteGpgKeySources): Promise<GpgKeyring> {
  const ring = await collectRemoteGpgKeys(args);
  if (ring.keys.length === 0) throw new SigningError('KEY_NOT_FOUND', `No GPG keys found for remote "${sanitize(args.remote)}"`, { remote: args.remote });
  return ring;
}

/**
 * The keys OSTree consults to tell which key made a commit's existing GPG signatures: `extra`
 * (an in-process signer's own key), the keyring of GnuPG home `homedir`, and the global keyring
 * directory. A missing or unreadable keyring just contributes nothing. Read-only; no locks.
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
