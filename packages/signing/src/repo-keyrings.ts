/**
 * A repository's GPG keyrings through the repository itself: the remote keyrings
 * `<repo>/<remote>.trustedkeys.gpg` that `ostree remote gpg-import` writes and `ostree remote
 * delete` removes, and the key sets `ostree show`, `ostree remote gpg-list-keys` and `ostree
 * admin status` check signatures with. The functions of gpg-import.ts and gpg-keyring.ts work on
 * a directory and leave locking to their callers; these take the repository and its lock.
 *
 * This package does not depend on @larch/core-store: a {@link KeyringRepo} is what these need of
 * its `Repo` (which has both members), so any opened repository can be passed as it is.
 */
import { importGpgKeys, deleteRemoteKeyring, loadRepoGpgKeyring } from './gpg-import.js';
import { SigningError } from './errors.js';
import { collectRemoteGpgKeys, parseGpgKeyPath, type GpgKeyring } from './gpg-keyring.js';

/** What the keyring functions need of a repository: `Repo` of @larch/core-store. */
export interface KeyringRepo {
  /** The repository directory. */
  readonly path: string;
  /** Run `fn` holding the repository lock of `kind`. */
  withLock<T>(kind: 'shared' | 'exclusive', fn: () => Promise<T>): Promise<T>;
}

/** A keyring to import from: its bytes (binary, armored or keybox) and a name for messages. */
export interface KeySource {
  bytes: Uint8Array;
  name: string;
}

/**
 * Import keys into remote `remote`'s keyring of `repo`, as `ostree remote gpg-import` does (see
 * `importGpgKeys`: every key of `sources`, or only those matching `keyIds`, merged with the
 * keys already there). Returns how many keys were new and the keyring's path. Throws
 * CONFIG_INVALID for a remote name that could leave the repository (`/`, `..`), KEY_INVALID,
 * KEY_NOT_FOUND, IO_ERROR. Locking: exclusive, for the read-merge-write of the keyring.
 */
export function importRemoteGpgKeys(repo: KeyringRepo, remote: string, sources: readonly KeySource[], keyIds?: readonly string[]): Promise<{ imported: number; path: string }> {
  return repo.withLock('exclusive', () =>
    importGpgKeys({ repoPath: repo.path, remote, sources: [...sources], ...(keyIds !== undefined && keyIds.length > 0 ? { keyIds: [...keyIds] } : {}) }),
  );
}

/**
 * Remove remote `remote`'s keyring from `repo`, as `ostree remote delete` does after removing
 * the remote; returns whether there was one. Throws CONFIG_INVALID for a remote name that could
 * leave the repository, IO_ERROR. Locking: exclusive.
 */
export function deleteRemoteGpgKeyring(repo: KeyringRepo, remote: string): Promise<boolean> {
  return repo.withLock('exclusive', () => deleteRemoteKeyring(repo.path, remote));
}

/** Which keys {@link repoGpgKeyring} gathers. */
export interface RepoGpgKeyringOptions {
  /**
   * The remote whose keys are wanted (its keyring, else `/etc/ostree/remotes.d`'s, else the
   * global directory, plus `gpgkeypath`); without, every keyring of the repository directory
   * plus the global directory.
   */
  remote?: string;
  /** The remote's `gpgkeypath` value as the config holds it (`;`- or `,`-separated). */
  gpgkeypath?: string;
  /** A GnuPG home (`--gpg-homedir`) whose public keyring is added. */
  homedir?: string;
  /**
   * `never`: not the global directory even when the remote has no keyring (`remote
   * gpg-list-keys NAME`); needs `remote`, and takes no `homedir`.
   */
  global?: 'fallback' | 'never';
  /** Override the global directory (default `$OSTREE_GPG_HOME`, else /usr/share/ostree/trusted.gpg.d). */
  globalDir?: string;
}

/**
 * The GPG keys of `repo` that signatures are checked with, as OSTree gathers them (see the
 * options). The result may be empty. Throws CONFIG_INVALID for a bad remote name or
 * `gpgkeypath`, IO_ERROR for a `gpgkeypath` entry that cannot be opened, KEY_INVALID for a
 * remote keyring that is not one. Reads only; no lock (keyrings are replaced atomically).
 */
export async function repoGpgKeyring(repo: KeyringRepo, opts: RepoGpgKeyringOptions = {}): Promise<GpgKeyring> {
  const gpgkeypath = opts.gpgkeypath !== undefined ? parseGpgKeyPath(opts.gpgkeypath) : undefined;
  const globalDir = opts.globalDir !== undefined ? { globalDir: opts.globalDir } : {};
  if (opts.global === 'never') {
    if (opts.remote === undefined || opts.homedir !== undefined) {
      throw new SigningError('CONFIG_INVALID', "global: 'never' takes a remote and no homedir", {});
    }
    return collectRemoteGpgKeys({ repoPath: repo.path, remote: opts.remote, ...(gpgkeypath !== undefined ? { gpgkeypath } : {}), global: 'never', ...globalDir });
  }
  return loadRepoGpgKeyring({
    repoPath: repo.path,
    ...(opts.remote !== undefined ? { remote: opts.remote } : {}),
    ...(gpgkeypath !== undefined ? { gpgkeypath } : {}),
    ...(opts.homedir !== undefined ? { homedir: opts.homedir } : {}),
    ...globalDir,
  });
}
