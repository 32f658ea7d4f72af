/**
 * What fsck does about what it found (see repo-fsck.ts): the commits that reach each damaged
 * object and ostree's full wording for it, the back-references of `verifyBackRefs`, deleting
 * corrupted objects and marking commits partial (`delete`), and tombstones (`addTombstones`).
 */
import { Variant } from '@larch/gvariant';
import { commitRefBindings, parseCommit } from './objects/index.js';
import { _deleteCommitObject } from './repo-prune.js';
import { _forEachBounded, objectKey, traverseCommit } from './repo-traverse.js';
import type { Repo } from './repo.js';
import type { Checksum, Commit } from './types.js';
import type { State } from './fsck-walk.js';
import type { FsckError, FsckReport } from './repo-fsck.js';

/**
 * `verifyBackRefs`: every ref in the commit's `ostree.ref-binding` must exist and resolve to it.
 * `addTombstones`: note the commit when its parent is missing.
 */
export async function checkCommitLinks(st: State, checksum: Checksum, refs: Map<string, Checksum>, tombstones: Checksum[]): Promise<void> {
  let c: Commit;
  try {
    c = parseCommit(await st.repo.readMetadata('commit', checksum));
  } catch {
    return; // the walk reports it
  }
  if (st.opts.verifyBackRefs) {
    const collection = commitCollectionBinding(c);
    for (const name of commitRefBindings(c)) {
      const target = collection === null ? (refs.get(name) ?? null) : (refs.get(`(${collection}, ${name})`) ?? null);
      const what = collection === null ? `Ref \u2018${name}\u2019` : `Collection\u2013ref (${collection}, ${name})`;
      if (target === null) {
        st.report.errors.push({ type: 'commit', checksum, code: 'INVALID_REF', ref: name, message: `${what} in bindings for commit ${checksum} does not exist` });
      } else if (target !== checksum) {
        st.report.errors.push({ type: 'commit', checksum, code: 'INVALID_REF', ref: name, message: `${what} in bindings for commit ${checksum} does not resolve to that commit` });
      }
    }
  }
  if (st.opts.addTombstones && c.parent !== null && !(await st.repo.hasObject('commit', c.parent))) tombstones.push(checksum);
}

/** Value of `ostree.collection-binding` in a commit, or null. */
function commitCollectionBinding(c: Commit): string | null {
  const v = c.metadata.find(([k]) => k === 'ostree.collection-binding')?.[1];
  return v instanceof Variant && v.type === 's' && typeof v.value === 'string' ? v.value : null;
}

/**
 * Give each object error the commits that reach it and ostree's full wording:
 * `Object missing in commits A, B: C.file`, `In commits A: fsck C.dirtree: …`,
 * `In commits A: fsck content object C: Corrupted file object; …`. Costs a walk of each root,
 * only when something is wrong.
 */
export async function attributeErrors(st: State, roots: Checksum[], errors: FsckError[]): Promise<void> {
  const byKey = new Map<string, Set<Checksum>>();
  for (const e of errors) {
    const k = objectKey(e.type === 'commitmeta' ? 'commit' : e.type, e.checksum);
    byKey.set(k, new Set(st.reachedBy.get(objectKey(e.type, e.checksum)) ?? []));
  }
  await _forEachBounded(roots, 4, async (c) => {
    let reach: Map<string, unknown>;
    try {
      reach = await traverseCommit(st.repo, c, { depth: 0, ignoreMissingTrees: true });
    } catch {
      reach = new Map([[objectKey('commit', c), null]]);
    }
    for (const [k, set] of byKey) if (reach.has(k)) set.add(c);
  });
  for (const e of errors) {
    const commits = [...(byKey.get(objectKey(e.type === 'commitmeta' ? 'commit' : e.type, e.checksum)) ?? [])].sort();
    e.commits = commits;
    const inCommits = commits.length > 0 ? `In commits ${commits.join(', ')}: ` : '';
    if (e.code === 'OBJECT_MISSING') {
      e.message = commits.length > 0 ? `Object missing in commits ${commits.join(', ')}: ${e.checksum}.${e.type}` : `Object missing: ${e.checksum}.${e.type}`;
    } else if (e.type === 'file') {
      e.message = `${inCommits}fsck content object ${e.checksum}: ${e.message}`;
    } else {
      e.message = `${inCommits}fsck ${e.checksum}.${e.type}: ${e.message}`;
    }
  }
}

export async function deleteAndMarkPartial(st: State): Promise<void> {
  const { repo, report, opts } = st;
  const lost = new Set<Checksum>();
  for (const e of report.errors) {
    if (e.ref !== undefined || e.code === 'INVALID_REF') continue;
    // As ostree: a missing object, or with `delete` a corrupted one (then deleted), makes every
    // commit that reaches it partial.
    if (e.code !== 'OBJECT_MISSING' && !opts.delete) continue;
    if (e.code !== 'OBJECT_MISSING' && e.type !== 'commit' && e.type !== 'commitmeta' && (await repo.hasObject(e.type, e.checksum))) {
      await repo.deleteObject(e.type, e.checksum);
      report.deleted++;
    }
    if (e.type === 'commit') continue;
    for (const c of e.commits ?? []) lost.add(c);
  }
  for (const c of [...lost].sort()) {
    if ((await repo.commitPartialState(c)) !== null) continue;
    await repo.markCommitPartial(c, { reason: 'fsck' });
    report.markedPartial.push(c);
  }
}

/**
 * `addTombstones`: turn on `core.tombstone-commits` (saving the config) and replace each commit
 * of `commits` by a tombstone, in checksum order, as `ostree fsck --add-tombstones` does.
 */
export async function addTombstones(repo: Repo, report: FsckReport, commits: Checksum[]): Promise<void> {
  if (!repo.config.getBoolean('core', 'tombstone-commits', false)) {
    repo.config.set('core', 'tombstone-commits', true);
    await repo.saveConfig();
  }
  for (const c of commits.sort()) {
    await _deleteCommitObject(repo, c, true);
    report.tombstoned.push(c);
  }
}
