/**
 * One object download with OSTree's retry rules and our time limits (spec pull-and-signing.md
 * 1): network errors, timeouts, stalls, HTTP 5xx and 408 are retried with exponential backoff
 * and jitter, at most `retries` times and within `objectTimeBudgetMs`; a 404 is final. Every
 * attempt runs under two timers, a total request timeout and a stall timeout reset by each
 * received chunk, so a dead or dribbling server can never hang a pull. The byte limit is
 * enforced on the bytes received, whatever Content-Length claims, and a body is never read
 * past it: on that failure and on every other one the body is released through the fetcher
 * (`dump()`, which destroys a half-read body with its connection), so no response is left
 * in flight holding a pooled connection.
 *
 * The `consume` callback verifies and stages the object from the body stream; it is re-run
 * from scratch on each attempt and must clean up after itself when it throws. For objects (whose
 * name is their checksum, or the commit's detached metadata) a body that breaks off after some
 * bytes continues with `Range: bytes=N-` when the server answers 206 with the matching
 * Content-Range (these resumes count against the same retry limit); otherwise the object is
 * fetched again from the start. Other files (summary, refs) are always fetched whole: a resume
 * could splice two versions of a file that changes. A body that ends before its Content-Length
 * fails, once retries are spent, in the wording of ostree's curl fetcher: `Transferred a partial
 * file`.
 */
import { setMaxListeners } from 'node:events';
import { LarchError } from '@larch/core-store';
import { fetchError, isRetryable } from './errors.js';
import { TransportError, type FetchResponse, type Fetcher } from './fetcher.js';
import type { PullLimits } from './limits.js';
import type { ProgressTracker } from './progress.js';

/** Run at most `n` jobs at once; `high` jobs (metadata) go before queued `low` jobs (content). */
export class PrioritySemaphore {
  private active = 0;
  private readonly high: Array<() => void> = [];
  private readonly low: Array<() => void> = [];
  constructor(private readonly n: number) {}

  async run<T>(high: boolean, fn: () => Promise<T>): Promise<T> {
    if (this.active >= this.n) await new Promise<void>((res) => (high ? this.high : this.low).push(res));
    else this.active++;
    try {
      return await fn();
    } finally {
      const next = this.high.shift() ?? this.low.shift();
      if (next) next();
      else this.active--;
    }
  }
}

/** Tracks spawned tasks; the first failure aborts the rest and is the one reported. */
export class TaskGroup {
  private pending = 0;
  private failure: { error: unknown } | null = null;
  private waiters: Array<() => void> = [];
  readonly controller = new AbortController();
  private detach: () => void = () => undefined;

  constructor(outer: AbortSignal | undefined) {
    // One listener per request in flight (bounded by the concurrency limit).
    setMaxListeners(0, this.controller.signal);
    if (outer) {
      if (outer.aborted) this.fail(abortedError(outer));
      else {
        const onAbort = (): void => this.fail(abortedError(outer));
        outer.addEventListener('abort', onAbort, { once: true });
        this.detach = () => outer.removeEventListener('abort', onAbort);
      }
    }
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  get failed(): boolean {
    return this.failure !== null;
  }

  fail(e: unknown): void {
    if (this.failure) return;
    this.failure = { error: e };
    this.controller.abort(e);
  }

  spawn(fn: () => Promise<void>): void {
    if (this.failure) return;
    this.pending++;
    fn()
      .catch((e) => this.fail(e))
      .finally(() => {
        this.pending--;
        if (this.pending === 0) for (const w of this.waiters.splice(0)) w();
      });
  }

  /** Wait for every task (including ones spawned meanwhile); throw the first failure. */
  async wait(): Promise<void> {
    while (this.pending > 0) await new Promise<void>((res) => this.waiters.push(res));
    this.detach();
    if (this.failure) throw this.failure.error;
  }
}

/** The ABORTED error for a cancelled signal (a LarchError reason is passed through). */
export function abortedError(signal: AbortSignal): LarchError {
  const r: unknown = signal.reason;
  if (r instanceof LarchError) return r;
  return new LarchError('ABORTED', `Operation was cancelled${r instanceof Error && r.message ? `: ${r.message}` : ''}`, { reason: 'aborted' }, { cause: r });
}

/** Settle with `p`, or reject as soon as `signal` aborts (whatever `p` does). */
function raceAbort<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) {
    p.catch(() => undefined);
    return Promise.reject(signal.reason);
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}

/** What the transfer layer needs from the pull. */
export interface TransferContext {
  fetcher: Fetcher;
  limits: PullLimits;
  progress: ProgressTracker;
  semaphore: PrioritySemaphore;
  signal: AbortSignal;
  /** Extra request headers for every request (`--http-header`). */
  headers?: Record<string, string>;
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
}

/** One object to download. */
export interface TransferRequest {
  url: string;
  /** Names the object in errors: `CHECKSUM.filez`, `summary`, `refs/heads/main`. */
  object: string;
  maxBytes: number;
  /** 404 resolves to null instead of failing. */
  optional: boolean;
  /** Metadata requests jump the queue. */
  high: boolean;
  /** A body that breaks off may continue with a Range request (default: true for objects, see {@link isObjectName}). */
  resumable?: boolean;
}

/** `CHECKSUM.commit`, `.dirtree`, `.dirmeta`, `.filez`, `.commitmeta`: a repository object. */
export function isObjectName(object: string): boolean {
  return /^[0-9a-f]{64}\.(commit|dirtree|dirmeta|filez|file|commitmeta)$/.test(object);
}

function sleepAbortable(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((res, rej) => {
    if (signal.aborted) {
      rej(abortedError(signal));
      return;
    }
    const t = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      res();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(t);
      rej(abortedError(signal));
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * GET `req.url` and hand its body to `consume`, retrying as described at the top of this file.
 * Resolves to null for an optional object the server does not have (404/410).
 */
export async function transfer<T>(
  ctx: TransferContext,
  req: TransferRequest,
  consume: (body: AsyncIterable<Uint8Array>, contentLength: number | null) => Promise<T>,
): Promise<T | null> {
  const started = Date.now();
  const sleep = ctx.sleep ?? sleepAbortable;
  // One retry budget per object, shared by whole-object retries and Range resumes.
  const budget = { used: 0, started };
  for (;;) {
    try {
      return await ctx.semaphore.run(req.high, () => attemptOnce(ctx, req, consume, budget));
    } catch (e) {
      if (ctx.signal.aborted) throw abortedError(ctx.signal);
      const elapsed = Date.now() - started;
      if (!isRetryable(e) || budget.used >= ctx.limits.retries) throw e;
      const delay = backoff(ctx, budget.used++);
      if (elapsed + delay > ctx.limits.objectTimeBudgetMs) throw e;
      ctx.progress.retries++;
      await sleep(delay, ctx.signal);
    }
  }
}

/** One HTTP exchange with its own abort controller, request timer and stall timer. */
interface Exchange {
  res: FetchResponse;
  ac: AbortController;
  /** Which timer fired, if any. */
  timedOut(): 'timeout' | 'stalled' | null;
  /** Re-arm the stall timer (call on every received chunk). */
  progress(): void;
  close(): void;
}

async function openExchange(ctx: TransferContext, req: TransferRequest, range?: { start: number }): Promise<Exchange> {
  if (ctx.signal.aborted) throw abortedError(ctx.signal);
  const ac = new AbortController();
  let fired: 'timeout' | 'stalled' | null = null;
  const onOuter = (): void => ac.abort(ctx.signal.reason);
  ctx.signal.addEventListener('abort', onOuter, { once: true });
  const total = setTimeout(() => {
    fired = 'timeout';
    ac.abort(new Error('request timeout'));
  }, ctx.limits.requestTimeoutMs);
  let stall: NodeJS.Timeout | undefined;
  const arm = (): void => {
    if (stall) clearTimeout(stall);
    stall = setTimeout(() => {
      fired = 'stalled';
      ac.abort(new Error('stalled'));
    }, ctx.limits.stallTimeoutMs);
  };
  const close = (): void => {
    clearTimeout(total);
    if (stall) clearTimeout(stall);
    ctx.signal.removeEventListener('abort', onOuter);
  };
  arm();
  ctx.progress.requests++;
  try {
    const res = await raceAbort(ctx.fetcher.get(req.url, { maxBytes: req.maxBytes, signal: ac.signal, ...(range ? { range } : {}), ...(ctx.headers ? { headers: ctx.headers } : {}) }), ac.signal);
    arm();
    return { res, ac, timedOut: () => fired, progress: arm, close };
  } catch (e) {
    close();
    const err = e instanceof LarchError || e instanceof TransportError ? e : new TransportError(e instanceof Error ? e.message : String(e), { cause: e });
    throw classify(ctx, req, fired, err);
  }
}

/** Turn anything thrown during an exchange into a LarchError naming the object and URL. */
function classify(ctx: TransferContext, req: TransferRequest, fired: 'timeout' | 'stalled' | null, e: unknown): unknown {
  if (ctx.signal.aborted) return abortedError(ctx.signal);
  if (fired === 'timeout') {
    return fetchError('IO_ERROR', 'timeout', req.object, req.url, `Timeout was reached (no complete response within ${ctx.limits.requestTimeoutMs} ms)`);
  }
  if (fired === 'stalled') {
    return fetchError('IO_ERROR', 'stalled', req.object, req.url, `Timeout was reached (no data received for ${ctx.limits.stallTimeoutMs} ms)`);
  }
  if (e instanceof LarchError) {
    if (typeof e.data.url === 'string') return e;
    const reason = e.code === 'LIMIT_EXCEEDED' ? 'too-large' : 'corrupted';
    return fetchError(e.code, reason, req.object, req.url, e.message, { ...e.data }, e);
  }
  if (e instanceof TransportError) return fetchError('IO_ERROR', 'network', req.object, req.url, e.message, {}, e);
  const msg = e instanceof Error ? e.message : String(e);
  // Anything else thrown while reading the body (zlib, stream errors) is bad data from the server.
  return fetchError('OBJECT_CORRUPTED', 'corrupted', req.object, req.url, msg, {}, e);
}

/**
 * The size-limit failure, in the wording of OSTree's fetchers ("URI … exceeded maximum size of
 * N bytes"), whether the Content-Length announced it or the body ran past it.
 */
function tooLarge(req: TransferRequest, observed: number): LarchError {
  return fetchError('LIMIT_EXCEEDED', 'too-large', req.object, req.url, `exceeded maximum size of ${req.maxBytes} bytes`, { limit: req.maxBytes, observed });
}

/** `Content-Range: bytes START-END/TOTAL` matching a resume at `start` of a `total`-byte body. */
function rangeMatches(header: string | undefined, start: number, total: number): boolean {
  const m = header === undefined ? null : /^bytes (\d+)-(\d+)\/(\d+)$/.exec(header.trim());
  return m !== null && Number(m[1]) === start && Number(m[2]) === total - 1 && Number(m[3]) === total;
}

function backoff(ctx: TransferContext, attempt: number): number {
  return Math.min(ctx.limits.retryMaxDelayMs, ctx.limits.retryBaseDelayMs * 2 ** attempt) * (0.5 + Math.random() / 2);
}

async function attemptOnce<T>(
  ctx: TransferContext,
  req: TransferRequest,
  consume: (body: AsyncIterable<Uint8Array>, contentLength: number | null) => Promise<T>,
  budget: { used: number; started: number },
): Promise<T | null> {
  let ex = await openExchange(ctx, req);
  try {
    const res = ex.res;
    if (res.status === 404 || res.status === 410) {
      await res.dump();
      if (req.optional) return null;
      throw fetchError('OBJECT_MISSING', 'not-found', req.object, req.url, `Server returned HTTP ${res.status}`, { status: res.status });
    }
    if (res.status !== 200 && res.status !== 206) {
      await res.dump();
      throw fetchError('IO_ERROR', 'http-status', req.object, req.url, `Server returned HTTP ${res.status}`, { status: res.status });
    }
    const cl = res.headers['content-length'];
    const contentLength = cl !== undefined && /^\d+$/.test(cl) ? Number(cl) : null;
    if (contentLength !== null && contentLength > req.maxBytes) {
      await res.dump();
      throw tooLarge(req, contentLength);
    }
    // A body of known length that breaks off can continue with a Range request; the consumer
    // sees one uninterrupted stream, and the object's checksum still covers every byte.
    const resumable = (req.resumable ?? isObjectName(req.object)) && contentLength !== null && res.status === 200;
    const progress = ctx.progress;
    let received = 0;
    const body = (async function* limited(): AsyncIterable<Uint8Array> {
      let it = ex.res.body[Symbol.asyncIterator]();
      let finished = false;
      try {
        for (;;) {
          let r: IteratorResult<Uint8Array>;
          try {
            // Raced against the abort signal: a transport that ignores it cannot hang the pull.
            r = await raceAbort(it.next(), ex.ac.signal);
            if (r.done && contentLength !== null && received !== contentLength) {
              throw new TransportError(`Connection closed after ${received} of ${contentLength} bytes`);
            }
          } catch (e) {
            void it.return?.()?.catch(() => undefined);
            const err =
              contentLength !== null && received < contentLength && e instanceof TransportError && ex.timedOut() === null && !ctx.signal.aborted
                ? fetchError('IO_ERROR', 'network', req.object, req.url, `Transferred a partial file (connection closed after ${received} of ${contentLength} bytes)`, {}, e)
                : classify(ctx, req, ex.timedOut(), e);
            const canResume = resumable && received > 0 && budget.used < ctx.limits.retries && isRetryable(err) && Date.now() - budget.started < ctx.limits.objectTimeBudgetMs;
            if (!canResume) throw err;
            const delay = backoff(ctx, budget.used++);
            progress.retries++;
            ex.close();
            await sleepAbortable(delay, ctx.signal);
            ex = await openExchange(ctx, req, { start: received });
            if (ex.res.status !== 206 || !rangeMatches(ex.res.headers['content-range'], received, contentLength!)) {
              await ex.res.dump();
              throw err; // the server cannot resume: the whole object is retried from scratch
            }
            it = ex.res.body[Symbol.asyncIterator]();
            continue;
          }
          if (r.done) {
            finished = true;
            break;
          }
          const chunk = r.value;
          ex.progress();
          received += chunk.length;
          progress.addBytes(chunk.length);
          // Nothing past the limit is read: the body is destroyed below, with its connection.
          if (received > req.maxBytes) throw tooLarge(req, received);
          yield chunk;
        }
      } finally {
        // Stopped early (limit, error, or a consumer that returned): let go of the transport's
        // iterator, which destroys its body. Not awaited: a read may still be pending on it.
        if (!finished) void it.return?.()?.catch(() => undefined);
      }
    })();
    try {
      const result = await consume(body, contentLength);
      // A consumer may finish without reading the whole body (the object appeared meanwhile):
      // the body is released either way, so the connection is reused or discarded, never stuck.
      await ex.res.dump();
      return result;
    } catch (e) {
      // Awaited: the fetcher's dump is bounded, and a pull must not end with a body in flight.
      await ex.res.dump();
      throw classify(ctx, req, ex.timedOut(), e);
    }
  } finally {
    ex.close();
  }
}
