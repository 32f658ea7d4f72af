/**
 * Partial commits (ostree's `state/C.commitpartial`): a commit whose objects are not all present,
 * because a pull stopped part way or fsck found some missing or corrupted (then the marker holds
 * `f`). Markers are created and removed durably. `Repo`'s methods of the same names call these.
 */
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { hasErrno, ioError } from './errors.js';
import type { Checksum } from './types.js';
import { validateChecksum } from './validate.js';
import type { Repo } from './repo.js';

export function partialPath(repo: Repo, c: Checksum): string {
  validateChecksum(c);
  return join(repo.path, 'state', `${c}.commitpartial`);
}

export async function isCommitPartial(repo: Repo, c: Checksum): Promise<boolean> {
  try {
    await fsp.lstat(partialPath(repo, c));
    return true;
  } catch (e) {
    if (hasErrno(e, 'ENOENT')) return false;
    throw ioError(e, 'Checking', partialPath(repo, c));
  }
}

/**
 * null for a complete commit; 'fsck' when fsck marked it partial (the marker holds `f`, as
 * ostree's FSCK_PARTIAL state), 'partial' otherwise.
 */
export async function commitPartialState(repo: Repo, c: Checksum): Promise<'partial' | 'fsck' | null> {
  let content: Buffer;
  try {
    content = await fsp.readFile(partialPath(repo, c));
  } catch (e) {
    if (hasErrno(e, 'ENOENT')) return null;
    if (hasErrno(e, 'EISDIR')) return 'partial';
    throw ioError(e, 'Reading', partialPath(repo, c));
  }
  return content.length > 0 && content[0] === 0x66 ? 'fsck' : 'partial';
}

/** Create `state/C.commitpartial` (durable); `reason: 'fsck'` records that fsck found it damaged. An existing marker is kept. */
export async function markCommitPartial(repo: Repo, c: Checksum, opts: { reason?: 'fsck' } = {}): Promise<void> {
  const p = partialPath(repo, c);
  await fsp.mkdir(join(repo.path, 'state'), { recursive: true });
  try {
    await fsp.writeFile(p, opts.reason === 'fsck' ? 'f' : '', { mode: 0o644, flag: 'wx' });
  } catch (e) {
    if (!hasErrno(e, 'EEXIST')) throw ioError(e, 'Creating', p);
  }
  if (repo.fsyncEnabled) await repo.fsyncDir(join(repo.path, 'state'));
}

/** Remove `state/C.commitpartial` (durable); no-op when absent. */
export async function clearCommitPartial(repo: Repo, c: Checksum): Promise<void> {
  try {
    await fsp.unlink(partialPath(repo, c));
  } catch (e) {
    if (hasErrno(e, 'ENOENT')) return;
    throw ioError(e, 'Removing', partialPath(repo, c));
  }
  if (repo.fsyncEnabled) await repo.fsyncDir(join(repo.path, 'state'));
}
