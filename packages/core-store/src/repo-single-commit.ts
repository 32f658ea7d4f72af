/**
 * `ostree rev-parse --single`: the commit of a repository that holds exactly one, which is how
 * scripts name the commit of a freshly unpacked repository without knowing any ref.
 */
import { LarchError } from './errors.js';
import type { Repo } from './repo.js';
import type { Checksum } from './types.js';

/**
 * The checksum of the only commit object stored in `repo` itself (not its parent). Throws
 * REF_NOT_FOUND `No commit objects found` or AMBIGUOUS_REF `Multiple commit objects found`
 * (ostree's words); stops reading `objects/` at the second commit. Reads only; no lock.
 */
export async function singleCommit(repo: Repo): Promise<Checksum> {
  let found: Checksum | null = null;
  for await (const o of repo.listObjects()) {
    if (o.type !== 'commit') continue;
    if (found !== null) throw new LarchError('AMBIGUOUS_REF', 'Multiple commit objects found', { checksums: [found, o.checksum] });
    found = o.checksum;
  }
  if (found === null) throw new LarchError('REF_NOT_FOUND', 'No commit objects found', {});
  return found;
}
