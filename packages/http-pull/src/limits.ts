/**
 * Limits and timing of a pull, as named constants with OSTree's value where it has one, all
 * overridable through `PullOptions.limits`. No limit trusts a size the server announces: sizes
 * are enforced on the bytes actually received.
 */

/**
 * Largest metadata object, summary or detached metadata a pull accepts by default: ostree
 * 2022.7's OSTREE_MAX_METADATA_SIZE (10 MiB; later ostree releases raised it to 128 MiB). In
 * ostree only the library's `max-metadata-size` pull option changes it (no remote option, no
 * environment variable); here `PullOptions.limits.maxMetadataSize`.
 */
export const PULL_MAX_METADATA_SIZE = 10 * 1024 * 1024;

/** Every limit and timer of a pull (see the defaults in {@link DEFAULT_PULL_LIMITS}). */
export interface PullLimits {
  /**
   * Largest metadata object accepted (ostree 2022.7: 10 MiB); 0 removes the limit, as ostree's
   * `max-metadata-size` of 0 does. A commit is further capped by the summary's commit_size.
   */
  maxMetadataSize: number;
  /** Largest content object accepted, both as downloaded and as declared uncompressed (default 64 GiB; streamed, never buffered). */
  maxContentSize: number;
  /** Retries after the first attempt for network errors, timeouts, HTTP 5xx and 408 (OSTree: 5). */
  retries: number;
  /** First backoff delay, doubled per retry with jitter (default 250 ms). */
  retryBaseDelayMs: number;
  /** Cap of one backoff delay (default 4 s). */
  retryMaxDelayMs: number;
  /** Total time one object may spend across all its attempts before failing (default 5 min). */
  objectTimeBudgetMs: number;
  /** Total time one request may take, headers and body (default 10 min). */
  requestTimeoutMs: number;
  /** Time without any byte (waiting for headers or between body chunks) before a request is abandoned (default 30 s). */
  stallTimeoutMs: number;
  /** Requests in flight at once (default 16; the undici pool holds 8 connections). */
  concurrency: number;
  /** Verified objects staged before they are published together (two syncfs per batch; default 4096). */
  batchSize: number;
}

/** The defaults of every limit (ostree 2022.7: 5 retries, 10 MiB metadata). */
export const DEFAULT_PULL_LIMITS: Readonly<PullLimits> = Object.freeze({
  maxMetadataSize: PULL_MAX_METADATA_SIZE,
  maxContentSize: 64 * 1024 * 1024 * 1024,
  retries: 5,
  retryBaseDelayMs: 250,
  retryMaxDelayMs: 4_000,
  objectTimeBudgetMs: 5 * 60_000,
  requestTimeoutMs: 10 * 60_000,
  stallTimeoutMs: 30_000,
  concurrency: 16,
  batchSize: 4096,
});

/** Merge user overrides over the defaults, rejecting nonsense values (RangeError). */
export function resolveLimits(over: Partial<PullLimits> | undefined): PullLimits {
  const l: PullLimits = { ...DEFAULT_PULL_LIMITS, ...(over ?? {}) };
  for (const [k, v] of Object.entries(l)) {
    if (typeof v !== 'number' || Number.isNaN(v) || v < 0) throw new RangeError(`Invalid pull limit ${k}: ${String(v)}`);
  }
  if (l.concurrency < 1 || l.batchSize < 1) throw new RangeError('concurrency and batchSize must be at least 1');
  if (l.maxMetadataSize === 0) l.maxMetadataSize = Number.MAX_SAFE_INTEGER;
  return l;
}
