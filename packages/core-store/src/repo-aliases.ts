/**
 * Ref aliases (repo-format.md 5): a head under `refs/heads/` may be a relative symlink to another
 * head, which `setRefAlias` makes and `ostree refs --alias` lists. Listing them reads the links
 * themselves, so this is the one place that looks at how a head is stored rather than at what it
 * resolves to.
 *
 * Hostile links: a link whose target leaves `refs/` is refused (INVALID_REF), as resolving it is
 * (`resolveRef`, `listRefs`); nothing outside the repository is read or named.
 */
import { promises as fsp } from 'node:fs';
import { join, posix, resolve, sep } from 'node:path';
import { LarchError, hasErrno, ioError } from './errors.js';
import { REFS_DIR, REFS_HEADS_DIR, REFS_REMOTES_DIR } from './layout.js';
import type { Repo } from './repo.js';

/**
 * The aliases among the local heads, alias name → the ref name it points at (relative to
 * `refs/heads`, as the link says it: `sub/a -> ../main` is `main`), sorted by alias name.
 * Throws INVALID_REF for a link whose target leaves `refs/`, IO_ERROR when a link cannot be read.
 * Reads only; no lock.
 */
export async function listRefAliases(repo: Repo): Promise<Map<string, string>> {
  const heads = resolve(repo.path, REFS_HEADS_DIR);
  const refsRoot = resolve(repo.path, REFS_DIR);
  const out = new Map<string, string>();
  // listRefs walks refs/heads with the same rules for which names are refs, and refuses a link
  // that leaves refs/ before we look at it here.
  for (const name of [...(await repo.listRefs({ kind: 'heads' })).keys()].sort()) {
    const p = join(heads, ...name.split('/'));
    let target: string;
    try {
      target = await fsp.readlink(p);
    } catch (e) {
      if (hasErrno(e, 'EINVAL') || hasErrno(e, 'ENOENT')) continue; // a regular ref, or gone meanwhile
      throw ioError(e, 'Reading ref alias', p);
    }
    const abs = resolve(posix.dirname(p), target);
    if (!abs.startsWith(refsRoot + sep)) throw new LarchError('INVALID_REF', `Ref alias ${name} points outside refs/`, { refspec: name });
    out.set(name, posix.normalize(posix.join(posix.dirname(name), target)));
  }
  return out;
}

/**
 * Check that `refs/heads` and `refs/remotes` exist, as ostree does before listing every ref (a
 * repository without them is damaged, and listing would silently show too few refs). Throws
 * IO_ERROR `Listing refs: opendir(refs/heads): No such file or directory`. Reads only; no lock.
 */
export async function assertRefDirs(repo: Repo): Promise<void> {
  for (const d of [REFS_HEADS_DIR, REFS_REMOTES_DIR]) {
    try {
      await fsp.access(join(repo.path, d));
    } catch (e) {
      throw new LarchError('IO_ERROR', `Listing refs: opendir(${d}): No such file or directory`, { path: join(repo.path, d) }, { cause: e });
    }
  }
}
