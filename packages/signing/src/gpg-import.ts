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
import { open, readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type * as openpgp from 'openpgp';
import { SigningError, isSigningError, sanitize } from './errors.js';
import { GpgKeyring, loadGpgHomedirKeyring, loadGpgKeyring, loadRemoteGpgKeyring, parseGpgKeyring } from './gpg-keyring.js';

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
 * key ids or fingerprints). Keys already present are kept (their new copy replaces the old one,
 * so updated revocations and expiries come through). Returns how many keys were new.
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
    if (!byFp.has(k.getFingerprint())) imported++;
    byFp.set(k.getFingerprint(), k);
  }
  const bytes = Buffer.concat([...byFp.values()].map((k) => Buffer.from(k.write())));
  await writeAtomic(args.repoPath, dest, bytes);
  return { imported, path: dest };
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
 * trusted keys (see `loadRemoteGpgKeyring`); without, every `*.trustedkeys.gpg` in the repository
 * plus the global directory. `homedir` (`--gpg-homedir`) adds that GnuPG home's public keyring.
 * Never fails for missing keys: the result may be empty (signatures then show as
 * "public key not found"). Reads only.
 */
export async function loadRepoGpgKeyring(args: { repoPath: string; remote?: string; homedir?: string; etcRemotesDir?: string; globalDir?: string }): Promise<GpgKeyring> {
  const rings: GpgKeyring[] = [];
  const optional = async (load: () => Promise<GpgKeyring>): Promise<void> => {
    try {
      rings.push(await load());
    } catch (e) {
      if (!isSigningError(e, 'KEY_NOT_FOUND')) throw e;
    }
  };
  if (args.remote !== undefined) {
    const remote = args.remote;
    await optional(() => loadRemoteGpgKeyring({ repoPath: args.repoPath, remote, etcRemotesDir: args.etcRemotesDir, globalDir: args.globalDir }));
  } else {
    const names = (await readdir(args.repoPath)).filter((n) => n.endsWith('.trustedkeys.gpg')).sort();
    for (const n of names) await optional(() => loadGpgKeyring(join(args.repoPath, n)));
    const g = args.globalDir ?? '/usr/share/ostree/trusted.gpg.d';
    if (await stat(g).then((s) => s.isDirectory(), () => false)) await optional(() => loadGpgKeyring(g));
  }
  if (args.homedir !== undefined) {
    const h = args.homedir;
    await optional(() => loadGpgHomedirKeyring(h));
  }
  return GpgKeyring.merge(rings);
}
