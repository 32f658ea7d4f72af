/**
 * `larch remote gpg-list-keys [NAME]`: the GPG keys a remote trusts, as `ostree remote
 * gpg-list-keys` prints them. With NAME, that remote's own keyring (`REPO/NAME.trustedkeys.gpg`,
 * else `/etc/ostree/remotes.d/NAME.trustedkeys.gpg`) and its `gpgkeypath` entries, never the
 * global keyrings; without, the global keyring directory only ($OSTREE_GPG_HOME, else
 * /usr/share/ostree/trusted.gpg.d). Nothing is printed when there are no keys.
 */
import { getRemote } from '@larch/http-pull';
import type { Repo } from '@larch/core-store';
import { lazyTimeLocale } from './show.js';

/** The text of `remote gpg-list-keys [NAME]`. Reads key files; no locks. */
export async function gpgListKeysText(repo: Repo, name: string | undefined): Promise<string> {
  const signing = await import('@larch/signing');
  let ring;
  if (name !== undefined) {
    // Only the keys matter here: a remote whose URL cannot be fetched still has a keyring.
    const remote = getRemote(repo, name, undefined, { fetchable: false }); // Remote "NAME" not found
    const keypath = remote.options.gpgkeypath;
    ring = await signing.repoGpgKeyring(repo, { remote: name, ...(keypath !== undefined ? { gpgkeypath: keypath } : {}), global: 'never' });
  } else {
    ring = (await signing.loadGlobalGpgKeyring()) ?? new signing.GpgKeyring([]);
  }
  if (ring.keys.length === 0) return '';
  const keys = await signing.describeGpgKeys(ring);
  return signing.gpgKeyListText(keys, { timeLocale: await lazyTimeLocale()() });
}
