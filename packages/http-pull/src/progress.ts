/**
 * Honest progress for a pull. Object-by-object pulling discovers its work while walking the
 * tree, so the total is unknown until the walk ends: until then `estimating` is true and
 * `objectsTotal`/`bytesTotal`/`etaSeconds` are null. Once every dirtree is known the object
 * total is exact; the byte total stays an estimate (object sizes are only learned by fetching
 * them) and is computed from the mean size of the objects fetched so far, which
 * `bytesTotalIsEstimate` says. Rates are averaged over a sliding window of a few seconds.
 */

/** One progress report. */
export interface PullProgress {
  phase: 'summary' | 'commits' | 'deltas' | 'objects' | 'publishing' | 'done';
  /** True while the tree walk is still discovering objects (totals unknown). */
  estimating: boolean;
  /** Objects fetched and stored (metadata + content). */
  objectsDone: number;
  /** Objects to fetch in total; null while estimating. */
  objectsTotal: number | null;
  metadataFetched: number;
  contentFetched: number;
  /** Objects found already present locally (not fetched). */
  objectsSkipped: number;
  /** Bytes received (all attempts, as transferred on the wire). */
  bytesDone: number;
  /**
   * Bytes received for objects and static deltas only (the summary, its signature, the remote's
   * config and ref files left out): what ostree's closing line calls "transferred".
   */
  bytesTransferred: number;
  /** Uncompressed size of the regular files among the content objects written (ostree's "content written"). */
  contentBytesWritten: number;
  /** Detached-metadata requests made, found or not (ostree counts them as metadata fetched). */
  detachedMetaRequests: number;
  /** Estimated bytes in total; null while estimating. */
  bytesTotal: number | null;
  bytesTotalIsEstimate: boolean;
  /** Bytes per second over the last few seconds. */
  bytesPerSecond: number;
  /** Seconds left at the current rate; null when unknown. */
  etaSeconds: number | null;
  requests: number;
  retries: number;
  elapsedMs: number;
  /** Static delta parts applied and to apply, over every delta of the pull (0/0 without deltas). */
  deltaPartsDone: number;
  deltaPartsTotal: number;
}

const WINDOW_MS = 5_000;

/** Accumulates counters and emits throttled {@link PullProgress} snapshots. */
export class ProgressTracker {
  phase: PullProgress['phase'] = 'summary';
  metadataFetched = 0;
  contentFetched = 0;
  objectsSkipped = 0;
  /** Objects queued for fetching and not yet done. */
  outstanding = 0;
  /** Dirtrees and commits not yet processed: while > 0 the total is unknown. */
  openScans = 0;
  bytesDone = 0;
  /** Bytes received before the object walk began (summary, config, refs): not "transferred" in ostree's sense. */
  bytesBeforeObjects = 0;
  contentBytesWritten = 0;
  detachedMetaRequests = 0;
  /** Bytes of completed object downloads (for the mean object size). */
  bytesOfDoneObjects = 0;
  requests = 0;
  retries = 0;
  deltaPartsDone = 0;
  deltaPartsTotal = 0;
  /** While a delta is applied: the bytes its parts add, known from its superblock. */
  deltaBytesLeft: number | null = null;
  private readonly start: number;
  private lastEmit = 0;
  private samples: Array<[number, number]> = [];

  constructor(
    private readonly onProgress: ((p: PullProgress) => void) | undefined,
    private readonly now: () => number = () => performance.now(),
    private readonly intervalMs = 100,
  ) {
    this.start = now();
    this.samples.push([this.start, 0]);
  }

  get objectsDone(): number {
    return this.metadataFetched + this.contentFetched;
  }

  addBytes(n: number): void {
    this.bytesDone += n;
    this.tick();
  }

  objectDone(kind: 'metadata' | 'content', bytes: number): void {
    if (kind === 'metadata') this.metadataFetched++;
    else this.contentFetched++;
    this.bytesOfDoneObjects += bytes;
    this.tick();
  }

  /**
   * A detached-metadata request ended, found or not: ostree counts every such request among the
   * metadata fetched in its closing line (not an object of the progress totals here).
   */
  commitMetaRequested(): void {
    this.detachedMetaRequests++;
  }

  /** Mark the start of the object walk: what was received so far is not counted as transferred. */
  objectsBegin(): void {
    this.bytesBeforeObjects = this.bytesDone;
  }

  snapshot(): PullProgress {
    const t = this.now();
    const estimating = this.openScans > 0 || this.phase === 'summary' || this.phase === 'commits';
    const objectsTotal = estimating || this.phase === 'deltas' ? null : this.objectsDone + this.outstanding;
    let bytesTotal: number | null = null;
    if (this.phase === 'deltas' && this.deltaBytesLeft !== null) {
      bytesTotal = this.bytesDone + this.deltaBytesLeft;
    } else if (!estimating) {
      const mean = this.objectsDone > 0 ? this.bytesOfDoneObjects / this.objectsDone : 0;
      bytesTotal = Math.round(this.bytesDone + mean * this.outstanding);
    }
    while (this.samples.length > 2 && t - this.samples[1][0] > WINDOW_MS) this.samples.shift();
    const [t0, b0] = this.samples[0];
    const dt = (t - t0) / 1000;
    const rate = dt > 0 ? (this.bytesDone - b0) / dt : 0;
    let eta: number | null = null;
    if (bytesTotal !== null) {
      const left = Math.max(0, bytesTotal - this.bytesDone);
      eta = left === 0 ? 0 : rate > 0 ? left / rate : null;
    }
    return {
      phase: this.phase,
      estimating,
      objectsDone: this.objectsDone,
      objectsTotal,
      metadataFetched: this.metadataFetched,
      contentFetched: this.contentFetched,
      objectsSkipped: this.objectsSkipped,
      bytesDone: this.bytesDone,
      bytesTransferred: this.bytesDone - this.bytesBeforeObjects,
      contentBytesWritten: this.contentBytesWritten,
      detachedMetaRequests: this.detachedMetaRequests,
      bytesTotal,
      bytesTotalIsEstimate: true,
      bytesPerSecond: Math.round(rate),
      etaSeconds: eta === null ? null : Math.ceil(eta),
      requests: this.requests,
      retries: this.retries,
      elapsedMs: Math.round(t - this.start),
      deltaPartsDone: this.deltaPartsDone,
      deltaPartsTotal: this.deltaPartsTotal,
    };
  }

  /** Emit when the throttle interval has passed. */
  tick(): void {
    if (!this.onProgress) return;
    const t = this.now();
    if (t - this.lastEmit < this.intervalMs) return;
    this.lastEmit = t;
    const last = this.samples[this.samples.length - 1];
    if (t - last[0] >= 250) this.samples.push([t, this.bytesDone]);
    this.onProgress(this.snapshot());
  }

  /** Emit unconditionally (phase changes, the end). */
  emit(): void {
    if (!this.onProgress) return;
    this.lastEmit = this.now();
    this.onProgress(this.snapshot());
  }
}
