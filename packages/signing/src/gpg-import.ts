/**
 * Keyrings on the repository side: `ostree remote add --gpg-import=FILE` / `ostree remote
 * gpg-import` store a remote's trusted keys in `<repo>/<remote>.trustedkeys.gpg` (binary
 * transferable public keys back to back, what `gpg --export` writes), merged with the keys
 * already there; and `ostree show` without a remote checks signatures against every remote's
 * keyring of the repository plus the global directory.
 *
 * Writes are atomic (temp file in the repo's directory, fsync, rename, fsync of the directory),
 * so a crash leaves the old or the new keyring. Callers that may race (two imports into the same
 * remote) hold the repository lock.
 */

import { randomBytes } from 'node:crypto';
import { open, readdir, rename, rm, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type * as openpgp from 'openpgp';
import { SigningError, isSigningError, sanitize } from './errors.js';
import { GpgKeyring, collectRemoteGpgKeys, loadGlobalGpgKeyring, loadGpgHomedirKeyring, loadGpgKeyring, parseGpgKeyring } from './gpg-keyring.js';
import { strerror } from './internal/errno.js';

function checkRemoteName(remote: string): void {
  if (!/^[^/\0]+$/.test(remote) || remote === '.' || remote === '..') {
    throw new SigningError('CONFIG_INVALID', `Invalid remote name ${sanitize(remote)}`, { remote });
  }
}

/** `<repoPath>/<remote>.trustedkeys.gpg`. */
export function remoteKeyringPath(repoPath: string, remote: string): string {
  checkRemoteName(remote);
  return join(repoPath, `${remote}.trustedkeys.gpg`);
}

function keyMatches(key: openpgp.PublicKey, wanted: string): boolean {
  const w = wanted.toUpperCase().replace(/^0X/, '');
  return key.getKeys().some((k) => {
    const fp = k.getFingerprint().toUpperCase();
    return fp === w || fp.endsWith(w);
  });
}

/**
 * Import public keys into a remote's keyring, as `ostree remote gpg-import` does: every key of
 * `sources` (keyring bytes: binary, armored or keybox), or only those matching `keyIds` (long
 * key ids or fingerprints). A key already present is merged with the new copy, as gpg merges an
 * import: new user ids, subkeys and valid self-signatures (a later expiry) and revocations come
 * in, and nothing already there is lost, so importing an older copy of a key never drops its
 * revocation. Returns how many keys were new.
 * Throws KEY_INVALID (unparsable source), KEY_NOT_FOUND (a requested key id is in no source),
 * IO_ERROR. Atomic (see the top of this file); no lock of its own.
 */
export async function importGpgKeys(args: { repoPath: string; remote: string; sources: Array<{ bytes: Uint8Array; name: string }>; keyIds?: string[] }): Promise<{ imported: number; path: string }> {
  const dest = remoteKeyringPath(args.repoPath, args.remote);
  const incoming: openpgp.PublicKey[] = [];
  for (const s of args.sources) incoming.push(...(await parseGpgKeyring(s.bytes, s.name)).keys);
  let chosen = incoming;
  if (args.keyIds && args.keyIds.length > 0) {
    chosen = [];
    for (const id of args.keyIds) {
      const found = incoming.filter((k) => keyMatches(k, id));
      if (found.length === 0) throw new SigningError('KEY_NOT_FOUND', `Key ${sanitize(id, 60)} not found in the given keyrings`, { keyId: id });
      chosen.push(...found);
    }
  }
  let existing: readonly openpgp.PublicKey[] = [];
  if (await stat(dest).then((s) => s.isFile(), () => false)) existing = (await loadGpgKeyring(dest)).keys;
  const byFp = new Map<string, openpgp.PublicKey>();
  for (const k of existing) byFp.set(k.getFingerprint(), k);
  let imported = 0;
  for (const k of chosen) {
    const old = byFp.get(k.getFingerprint());
    if (old === undefined) imported++;
    byFp.set(k.getFingerprint(), old === undefined ? k : await mergeKey(old, k));
  }
  const bytes = Buffer.concat([...byFp.values()].map((k) => Buffer.from(k.write())));
  await writeAtomic(args.repoPath, dest, bytes);
  return { imported, path: dest };
}

/** `old` updated with what `incoming` adds (signatures are checked by OpenPGP.js before they are merged). */
async function mergeKey(old: openpgp.PublicKey, incoming: openpgp.PublicKey): Promise<openpgp.PublicKey> {
  try {
    return await old.update(incoming);
  } catch (e) {
    throw new SigningError('KEY_INVALID', `Unable to import key "${old.getFingerprint().toUpperCase()}": ${sanitize((e as Error).message)}`, { fingerprint: old.getFingerprint() }, { cause: e });
  }
}

/**
 * Remove a remote's keyring `<repoPath>/<remote>.trustedkeys.gpg`, as `ostree remote delete`
 * does; nothing happens when there is none. Returns whether a file was removed. Throws
 * IO_ERROR. Callers hold the repository lock.
 */
export async function deleteRemoteKeyring(repoPath: string, remote: string): Promise<boolean> {
  const p = remoteKeyringPath(repoPath, remote);
  try {
    await unlink(p);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw new SigningError('IO_ERROR', `unlinkat(${sanitize(p)}): ${strerror(e)}`, { path: p }, { cause: e });
  }
}

async function writeAtomic(dir: string, dest: string, bytes: Uint8Array): Promise<void> {
  const tmp = join(dir, `.${randomBytes(6).toString('hex')}.trustedkeys.tmp`);
  try {
    const fh = await open(tmp, 'wx', 0o644);
    try {
      await fh.writeFile(bytes);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, dest);
    const d = await open(dir, 'r');
    try {
      await d.sync();
    } finally {
      await d.close();
    }
  } catch (e) {
    await rm(tmp, { force: true });
    throw new SigningError('IO_ERROR', `Writing keyring ${sanitize(dest)}: ${sanitize((e as Error).message)}`, { path: dest }, { cause: e });
  }
}

/**
 * The keys `ostree show` checks a commit's GPG signatures against: with `remote`, that remote's
 * trusted keys (see `collectRemoteGpgKeys`, with its `gpgkeypath` entries); without, every
 * `*.gpg` file of the repository directory (the remotes' keyrings) plus the global directory
 * (`$OSTREE_GPG_HOME`, else /usr/share/ostree/trusted.gpg.d). `homedir` (`--gpg-homedir`) adds
 * that GnuPG home's public keyring. Missing keys are not an error: the result may be empty
 * (signatures then show as "public key not found") and files that hold no key are skipped; a
 * `gpgkeypath` entry that cannot be opened is an error (IO_ERROR), as in OSTree. Reads only.
 */
export async function loadRepoGpgKeyring(args: {
  repoPath: string;
  remote?: string;
  gpgkeypath?: readonly string[];
  homedir?: string;
  etcRemotesDir?: string;
  globalDir?: string;
}): Promise<GpgKeyring> {
  const rings: GpgKeyring[] = [];
  const optional = async (load: () => Promise<GpgKeyring | null>): Promise<void> => {
    try {
      const r = await load();
      if (r !== null) rings.push(r);
    } catch (e) {
      // Like gpg reading a concatenated keyring: what is not a key is skipped.
      if (!isSigningError(e, 'KEY_NOT_FOUND') && !isSigningError(e, 'KEY_INVALID')) throw e;
    }
  };
  if (args.remote !== undefined) {
    rings.push(await collectRemoteGpgKeys({ repoPath: args.repoPath, remote: args.remote, gpgkeypath: args.gpgkeypath, etcRemotesDir: args.etcRemotesDir, globalDir: args.globalDir }));
  } else {
    const names = (await readdir(args.repoPath, { withFileTypes: true }))
      .filter((d) => d.isFile() && d.name.endsWith('.gpg') && d.name !== 'trustdb.gpg' && d.name !== 'secring.gpg')
      .map((d) => d.name)
      .sort();
    for (const n of names) await optional(() => loadGpgKeyring(join(args.repoPath, n)));
    await optional(() => loadGlobalGpgKeyring(args.globalDir));
  }
  if (args.homedir !== undefined) {
    const h = args.homedir;
    await optional(() => loadGpgHomedirKeyring(h));
  }
  return GpgKeyring.merge(rings);
}
