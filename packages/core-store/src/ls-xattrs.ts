/**
 * The extended attributes of an entry listed by {@link lsStream}, as `ostree ls -X` shows them:
 * a directory's come from its dirmeta, a file's or symlink's from its content object's header
 * (for bare-user, the `user.ostreemeta` record). Locking: none. Errors: OBJECT_MISSING /
 * OBJECT_CORRUPTED from the object read.
 */
import type { LsEntry } from './repo-ls.js';
import { readMeta } from './repo-traverse.js';
import type { Repo } from './repo.js';
import type { Xattr } from './types.js';

export async function lsEntryXattrs(repo: Repo, entry: LsEntry): Promise<Xattr[]> {
  if (entry.type === 'd') return (await readMeta(repo, entry.metaChecksum ?? '')).xattrs;
  return (await repo.openFile(entry.checksum)).meta.xattrs;
}
