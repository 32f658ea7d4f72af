/**
 * pruneStore: delete what no ref and no summary of a published repo can reach, from the store
 * itself (no local repo needed).
 *
 * Reachable: every commit named by a ref (refs/heads, refs/mirrors) or by the summary (its refs,
 * its collection map), their parents as far as they are stored, each commit's detached metadata,
 * its root dirtree and dirmeta and everything below; and every static delta the summary lists
 * (all files in its directory). Only keys under objects/ and deltas/ are ever deleted; refs,
 * config, summary, summary.sig and delta-indexes are left alone.
 *
 * The grace period protects work in flight: a publish uploads objects before the refs and summary
 * that name them, and a pull reads objects named by the summary it fetched a moment ago. A key is
 * deleted only when it is unreachable now and its LastModified is older than `graceSeconds`, so
 * a grace period longer than the longest publish (and pull) keeps both safe.
 */
import { LarchError, parseCommit, parseDirTree, readSummary, MAX_METADATA_SIZE } from '@larch/core-store';
import type { PublishedStore, StoredObject } from './store.js';
import { deltaDirKey, objectKey, summaryDeltaNames } from './keys.js';

export interface PruneStoreOptions {
  /** Keys modified less than this many seconds ago are kept even when unreachable. */
  graceSeconds: number;
  /** List what would be deleted, delete nothing. */
  dryRun?: boolean;
  /** Reads in flight while walking trees (default 16). */
  concurrency?: number;
  /** The current time (default: now); LastModified is compared against it. */
  now?: Date;
  onProgress?: (p: { phase: 'list' | 'walk' | 'delete'; done: number; total: number | null }) => void;
}

export interface PruneStoreResult {
  /** Keys deleted (or, in a dry run, that would be), with their sizes. */
  deleted: Array<{ key: string; size: number }>;
  bytesFreed: number;
  /** Unreachable keys kept because they are younger than the grace period. */
  keptYoung: number;
  reachable: number;
  commits: number;
  dryRun: boolean;
}

/** Run `fn` over a growing queue with at most `limit` in flight. */
async function drain<T>(queue: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let active = 0;
  let failed: unknown;
  await new Promise<void>((resolve, reject) => {
    const pump = (): void => {
      if (failed !== undefined) return;
      if (queue.length === 0 && active === 0) return resolve();
      while (active < limit && queue.length > 0) {
        const item = queue.shift()!;
        active++;
        fn(item).then(
          () => {
            active--;
            pump();
          },
          (e) => {
            failed = e;
            reject(e);
          },
        );
      }
    };
    pump();
  });
}

/**
 * Prune a published repo in `store` (see the file comment). Takes no lock (stores have none):
 * the grace period is what keeps concurrent publishes and pulls safe. A crash part-way leaves
 * some unreachable keys undeleted; nothing reachable is ever deleted. Reads every dirtree of every
 * kept commit (one GET each), so its cost grows with the history kept in the store.
 */
export async function pruneStore(store: PublishedStore, opts: PruneStoreOptions): Promise<PruneStoreResult> {
  if (!Number.isFinite(opts.graceSeconds) || opts.graceSeconds < 0) {
    throw new LarchError('INVALID_ARGUMENT', `Invalid grace period ${opts.graceSeconds}: expected seconds >= 0`);
  }
  const concurrency = Math.max(1, opts.concurrency ?? 16);
  const now = (opts.now ?? new Date()).getTime();
  opts.onProgress?.({ phase: 'list', done: 0, total: null });
  // The listing comes first: anything uploaded after it is not a candidate at all.
  const all = new Map<string, StoredObject>();
  for await (const o of store.list('')) all.set(o.key, o);

  const reachable = new Set<string>(['config', 'summary', 'summary.sig']);
  const commits: string[] = [];
  const roots = new Set<string>();
  for (const [key, o] of all) {
    if (!key.startsWith('refs/heads/') && !key.startsWith('refs/mirrors/')) continue;
    const bytes = await store.getBytes(key, 4096);
    if (!bytes) continue; // deleted since the listing
    const text = Buffer.from(bytes).toString('utf8').trim();
    if (/^[0-9a-f]{64}$/.test(text)) roots.add(text);
    else if (o.size > 0) throw new LarchError('OBJECT_CORRUPTED', `Invalid ref ${key} in ${store.location}: ${JSON.stringify(text.slice(0, 80))}`, { key });
  }
  const summaryBytes = await store.getBytes('summary', MAX_METADATA_SIZE);
  if (summaryBytes) {
    const summary = readSummary(summaryBytes);
    for (const ref of [...summary.refs, ...[...summary.collectionMap.values()].flat()]) roots.add(ref.checksum);
    for (const name of summaryDeltaNames(summary)) {
      const dir = deltaDirKey(name);
      for (const key of all.keys()) if (key.startsWith(dir)) reachable.add(key);
    }
  }

  // Walk commits (and parents while stored), then trees.
  type Item = { kind: 'commit' | 'dirtree'; checksum: string } ;
  const queue: Item[] = [...roots].map((c) => ({ kind: 'commit', checksum: c }));
  let walked = 0;
  await drain(queue, concurrency, async (item) => {
    const key = objectKey(item.checksum, item.kind);
    if (reachable.has(key)) return;
    reachable.add(key);
    walked++;
    if (walked % 100 === 0) opts.onProgress?.({ phase: 'walk', done: walked, total: null });
    if (!all.has(key)) {
      // A root or parent that is not stored ends the walk there (a missing parent is normal: shallow history).
      return;
    }
    const bytes = await store.getBytes(key, MAX_METADATA_SIZE);
    if (!bytes) throw new LarchError('OBJECT_MISSING', `Object ${key} disappeared from ${store.location} while pruning`, { key });
    if (item.kind === 'commit') {
      commits.push(item.checksum);
      const c = parseCommit(bytes);
      reachable.add(objectKey(item.checksum, 'commitmeta'));
      reachable.add(objectKey(c.rootMeta, 'dirmeta'));
      queue.push({ kind: 'dirtree', checksum: c.rootTree });
      if (c.parent) queue.push({ kind: 'commit', checksum: c.parent });
    } else {
      const t = parseDirTree(bytes);
      for (const f of t.files) reachable.add(objectKey(f.checksum, 'filez'));
      for (const d of t.dirs) {
        reachable.add(objectKey(d.metaChecksum, 'dirmeta'));
        queue.push({ kind: 'dirtree', checksum: d.treeChecksum });
      }
    }
  });

  const cutoff = now - opts.graceSeconds * 1000;
  const deleted: Array<{ key: string; size: number }> = [];
  let keptYoung = 0;
  for (const [key, o] of all) {
    if (!key.startsWith('objects/') && !key.startsWith('deltas/')) continue;
    if (reachable.has(key)) continue;
    if (o.lastModified.getTime() > cutoff) {
      keptYoung++;
      continue;
    }
    deleted.push({ key, size: o.size });
  }
  if (!opts.dryRun && deleted.length > 0) {
    opts.onProgress?.({ phase: 'delete', done: 0, total: deleted.length });
    for (let i = 0; i < deleted.length; i += 1000) {
      await store.deleteMany(deleted.slice(i, i + 1000).map((d) => d.key));
      opts.onProgress?.({ phase: 'delete', done: Math.min(deleted.length, i + 1000), total: deleted.length });
    }
  }
  return {
    deleted,
    bytesFreed: deleted.reduce((s, d) => s + d.size, 0),
    keptYoung,
    reachable: [...reachable].filter((k) => all.has(k)).length,
    commits: commits.length,
    dryRun: Boolean(opts.dryRun),
  };
}
