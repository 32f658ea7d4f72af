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
import { SigningError, sanitize } from './errors.js';

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

/**
 * The trusted keys for a remote, in OSTree's order: `<repo>/<remote>.trustedkeys.gpg`, else
 * `<etcRemotesDir>/<remote>.trustedkeys.gpg`; plus every `gpgkeypath` entry; plus the global
 * directory only when the remote has no keyring of its own. Missing optional locations are
 * skipped; KEY_NOT_FOUND when no key was found at all.
 */
export async function loadRemoteGpgKeyring(args: {
  repoPath: string;
  remote: string;
  gpgkeypath?: readonly string[];
  etcRemotesDir?: string;
  globalDir?: string;
}): Promise<GpgKeyring> {
  if (!/^[^/\0]+$/.test(args.remote) || args.remote === '.' || args.remote === '..') {
    throw new SigningError('CONFIG_INVALID', `Invalid remote name ${sanitize(args.remote)}`, { remote: args.remote });
  }
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
  for (const p of args.gpgkeypath ?? []) rings.push(await loadGpgKeyring(p));
  if (!hasOwn) {
    const g = args.globalDir ?? '/usr/share/ostree/trusted.gpg.d';
    if (await stat(g).then((s) => s.isDirectory(), () => false)) {
      try {
        rings.push(await loadGpgKeyring(g));
      } catch (e) {
        if (!(e instanceof SigningError && e.code === 'KEY_NOT_FOUND')) throw e;
      }
    }
  }
  if (rings.length === 0) throw new SigningError('KEY_NOT_FOUND', `No GPG keys found for remote "${sanitize(args.remote)}"`, { remote: args.remote });
  return GpgKeyring.merge(rings);
}
