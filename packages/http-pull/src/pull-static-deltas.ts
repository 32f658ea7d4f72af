/**
 * The static-delta stage of an HTTP pull: which deltas the summary offers, and fetching and
 * applying them before the object walk fills in whatever they did not give.
 */
import { LarchError, type Repo, type Summary } from '@larch/core-store';
import type { Fetcher } from './fetcher.js';
import type { PullLimits } from './limits.js';
import type { ProgressTracker } from './progress.js';
import type { CommitTarget, EngineResult } from './pull-engine.js';
import { findDelta, pullDelta, type DeltaPullResult } from './pull-delta.js';

/**
 * The deltas the summary lists (`ostree.static-deltas`: name → superblock SHA-256). Without a
 * summary, or when it lists none, no delta is used. Unlike ostree 2022.7, which for a bare-mode
 * destination asks for `delta-indexes/…` whenever the summary says `indexed-deltas` (checked: one
 * request per pull, usually a 404), Larch does not fetch delta indexes: ostree's own `summary -u`
 * lists every delta in the summary as well, so the index adds a request and no information.
 * (For archive destinations ostree uses no deltas at all; Larch does.)
 */
export function summaryDeltaIndex(summary: Summary | null): Map<string, string> {
  const out = new Map<string, string>();
  const v = summary?.metadata.find(([k]) => k === 'ostree.static-deltas')?.[1];
  if (v === undefined || v.type !== 'a{sv}') return out;
  for (const [name, inner] of v.value as Array<[string, { type: string; value: unknown }]>) {
    if (inner.type === 'ay' && inner.value instanceof Uint8Array && inner.value.length === 32) out.set(name, Buffer.from(inner.value).toString('hex'));
  }
  return out;
}

export interface DeltaRun {
  repo: Repo;
  remote: string;
  url: string;
  fetcher: Fetcher;
  limits: PullLimits;
  summary: Summary | null;
  targets: CommitTarget[];
  refspecOf: (ref: string) => string;
  progress: ProgressTracker;
  signal: AbortSignal;
  /** `requireStaticDeltas`: no delta, or a failed one, is an error instead of an object pull. */
  require: boolean;
  /** Fetch, verify (signatures, downgrade) and store the commits alone, left partial. */
  metadataRun: (targets: CommitTarget[]) => Promise<EngineResult>;
}

/**
 * Pull what static deltas can give (spec static-deltas.md 8.3). For each target that is not
 * complete locally, look for a delta from the commit its local ref points to, else from
 * scratch (only when there is no local ref, as OSTree). The commits are first fetched and
 * verified alone (signatures and the downgrade check run before any content arrives) and stored
 * partial; then the deltas are applied part by part. A delta that fails for any reason other
 * than cancellation is abandoned: the object walk that follows fetches whatever is still
 * missing, fallback objects included, and clears the partial markers only when the tree is
 * complete.
 */
export async function pullDeltas(o: DeltaRun): Promise<DeltaPullResult[]> {
  const index = summaryDeltaIndex(o.summary);
  if (o.summary === null && o.require) throw new LarchError('OBJECT_MISSING', 'Fetch configured to require static deltas, but no summary deltas or delta index found', { remote: o.remote });
  if (index.size === 0 && !o.require) return [];
  // Delta requests count like object requests.
  const fetcher: Fetcher = {
    get: (url, opts) => {
      o.progress.requests++;
      return o.fetcher.get(url, opts);
    },
  };
  const plans: Array<{ target: CommitTarget; from: string | null; superblockSha256: string }> = [];
  for (const t of o.targets) {
    if (o.repo.hasObjectSync('commit', t.checksum) && !(await o.repo.isCommitPartial(t.checksum))) continue;
    const current = t.ref !== null ? await o.repo.resolveRef(o.refspecOf(t.ref)).catch(() => null) : null;
    let cand;
    try {
      cand = await findDelta({ repo: o.repo, fetcher, baseUrl: o.url, to: t.checksum, allowScratch: current === null, signal: o.signal, index });
    } catch (e) {
      if (o.signal.aborted) throw e;
      cand = null; // no usable index: objects
    }
    if (cand === null && o.require) throw new LarchError('OBJECT_MISSING', `Static deltas required, but none found for ${t.ref ?? ''} to ${t.checksum}`, { remote: o.remote, to: t.checksum });
    if (cand !== null) plans.push({ target: t, from: cand.from, superblockSha256: cand.superblockSha256 });
  }
  if (plans.length === 0) return [];
  await o.metadataRun(plans.map((p) => p.target));
  o.progress.phase = 'deltas';
  o.progress.emit();
  const results: DeltaPullResult[] = [];
  for (const p of plans) {
    let partsTotal = 0;
    let partsDone = 0;
    let wireSeen = 0;
    try {
      const r = await pullDelta({
        repo: o.repo,
        fetcher,
        baseUrl: o.url,
        from: p.from,
        to: p.target.checksum,
        superblockSha256: p.superblockSha256,
        retries: o.limits.retries,
        limits: o.limits,
        // Fallback objects are fetched by the object walk that follows, like any missing object.
        fetchFallback: async () => undefined,
        signal: o.signal,
        onProgress: (d) => {
          if (partsTotal === 0 && d.partsTotal > 0) {
            partsTotal = d.partsTotal;
            o.progress.deltaPartsTotal += d.partsTotal;
          }
          o.progress.deltaPartsDone += d.partsDone - partsDone;
          partsDone = d.partsDone;
          o.progress.deltaBytesLeft = Math.max(0, d.bytesTotal - d.bytesDone);
          o.progress.addBytes(d.wireBytes - wireSeen);
          wireSeen = d.wireBytes;
        },
      });
      results.push(r);
    } catch (e) {
      if (o.signal.aborted || o.require) throw e;
      // Whatever the delta could not give comes object by object.
    } finally {
      o.progress.deltaBytesLeft = null;
    }
  }
  return results;
}
