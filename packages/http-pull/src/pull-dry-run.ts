/**
 * `ostree pull --dry-run --require-static-deltas`: say what a delta pull would download, and
 * download nothing else. For each target the delta is chosen as a real pull chooses it (from the
 * commit the local ref points to, else from scratch when there is no local ref), its superblock is
 * fetched and checked against the summary's digest, and its parts and fallback objects are
 * counted: a part whose objects are all present locally, and a fallback object present locally,
 * count as already fetched, as in ostree. Nothing is written to the repository, no ref moves.
 */
import { createHash } from 'node:crypto';
import { LarchError, deltaName, deltaRelPath, type Repo } from '@larch/core-store';
import { decodeSuperblock } from '@larch/delta';
import { joinUrl } from './fetcher.js';
import { findDelta, MAX_DELTA_SUPERBLOCK } from './pull-delta.js';
import type { CommitTarget } from './pull-engine.js';
import { collect } from './pull-source.js';
import { transfer, type TransferContext } from './pull-transfer.js';

/** What a delta pull would fetch, summed over every target (ostree's dry-run progress keys). */
export interface DeltaDryRun {
  /** Parts and fallback objects already present locally. */
  partsFetched: number;
  /** Parts and fallback objects in all. */
  partsTotal: number;
  /** Stored bytes of what is already present. */
  fetchedSize: number;
  /** Stored bytes of every part and fallback. */
  totalSize: number;
  /** Uncompressed bytes of every part and fallback. */
  totalUncompressedSize: number;
}

/** Options of {@link deltaDryRun}. */
export interface DeltaDryRunOptions {
  repo: Repo;
  remote: string;
  /** Where deltas are (the remote's contenturl). */
  url: string;
  ctx: TransferContext;
  /** `ostree.static-deltas` of the summary: delta name → superblock SHA-256. */
  index: Map<string, string>;
  targets: CommitTarget[];
  refspecOf: (ref: string) => string;
}

/**
 * Count the parts of the deltas a `--require-static-deltas` pull would apply. Throws
 * OBJECT_MISSING, in ostree's wording, when a target has no delta; OBJECT_CORRUPTED when a
 * superblock does not match its digest.
 */
export async function deltaDryRun(o: DeltaDryRunOptions): Promise<DeltaDryRun> {
  const out: DeltaDryRun = { partsFetched: 0, partsTotal: 0, fetchedSize: 0, totalSize: 0, totalUncompressedSize: 0 };
  const fetcher = o.ctx.fetcher;
  for (const t of o.targets) {
    const current = t.ref !== null ? await o.repo.resolveRef(o.refspecOf(t.ref)).catch(() => null) : null;
    if (current === t.checksum) continue; // nothing to do for this one
    const cand = await findDelta({ repo: o.repo, fetcher, baseUrl: o.url, to: t.checksum, allowScratch: current === null, signal: o.ctx.signal, index: o.index });
    if (cand === null) {
      throw new LarchError('OBJECT_MISSING', `Static deltas required, but none found for ${t.ref ?? ''} to ${t.checksum}`, { remote: o.remote, to: t.checksum });
    }
    const rel = deltaRelPath(cand.from, t.checksum, 'superblock');
    const url = joinUrl(o.url, rel);
    const bytes = await transfer(o.ctx, { url, object: rel, maxBytes: MAX_DELTA_SUPERBLOCK, optional: false, high: true }, collect);
    const actual = createHash('sha256').update(bytes!).digest('hex');
    if (actual !== cand.superblockSha256) {
      throw new LarchError('OBJECT_CORRUPTED', `Invalid checksum for static delta ${deltaName(cand.from, t.checksum)}`, { url, expected: cand.superblockSha256, actual });
    }
    const sb = decodeSuperblock(bytes!);
    for (const p of sb.parts) {
      out.partsTotal++;
      out.totalSize += p.size;
      out.totalUncompressedSize += p.usize;
      if (p.objects.every((obj) => o.repo.hasObjectSync(obj.type, obj.checksum))) {
        out.partsFetched++;
        out.fetchedSize += p.size;
      }
    }
    for (const f of sb.fallbacks) {
      out.partsTotal++;
      out.totalSize += f.compressedSize;
      out.totalUncompressedSize += f.size;
      // ostree adds a present fallback's size to what is fetched, not to the count.
      if (o.repo.hasObjectSync(f.type, f.checksum)) out.fetchedSize += f.compressedSize;
    }
  }
  return out;
}
