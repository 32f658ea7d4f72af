/**
 * log: walk a commit's parent chain, as `ostree log` does. When a parent is not present locally
 * (a pull with limited depth, or a pruned history), one final entry with `commit: null` marks the
 * boundary; the CLI prints "<< History beyond this commit not fetched >>" for it.
 */
import { LarchError } from './errors.js';
import type { Repo } from './repo.js';
import type { Checksum, Commit } from './types.js';

export interface LogEntry {
  checksum: Checksum;
  /** null: this parent is not in the repository (history beyond not fetched). */
  commit: Commit | null;
}

/**
 * Yield `commit` and then each parent, newest first.
 * Locking: none. Errors: OBJECT_MISSING when `commit` itself is missing; OBJECT_CORRUPTED for an
 * unreadable commit anywhere in the chain. Stops at a repeated checksum (a cycle can only come
 * from a hostile repository, since a commit's checksum covers its parent).
 */
export async function* log(repo: Repo, commit: Checksum): AsyncIterable<LogEntry> {
  const seen = new Set<Checksum>();
  let cur: Checksum | null = commit;
  let first = true;
  while (cur !== null && !seen.has(cur)) {
    seen.add(cur);
    let c: Commit;
    try {
      c = await repo.readCommit(cur);
    } catch (e) {
      if (!first && e instanceof LarchError && e.code === 'OBJECT_MISSING') {
        yield { checksum: cur, commit: null };
        return;
      }
      throw e;
    }
    first = false;
    yield { checksum: cur, commit: c };
    cur = c.parent;
  }
}
