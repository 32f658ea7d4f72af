/**
 * A fetcher wrapper for the pull: counts body bytes (for metrics and the zero-progress watchdog)
 * and throttles them to a bandwidth limit.
 *
 * Why throttle the body stream rather than the socket: the puller only sees a `Fetcher`, and
 * holding back the consumer of the body makes TCP flow control slow the sender down, so the limit
 * holds on the wire without touching the transport. The bucket is shared by all requests in
 * flight, so the limit is per agent, not per connection.
 */
import { LarchError } from '@larch/core-store';
import type { Fetcher, FetchOptions, FetchResponse } from '@larch/http-pull';

/** A token bucket: `take(n)` resolves once n bytes may pass at `bytesPerSecond` (burst of one second). */
export class TokenBucket {
  private tokens: number;
  private last = Date.now();
  private queue: Promise<void> = Promise.resolve();

  constructor(private readonly bytesPerSecond: number) {
    this.tokens = bytesPerSecond;
  }

  take(n: number, signal?: AbortSignal): Promise<void> {
    const run = async (): Promise<void> => {
      // A chunk larger than the burst is paid for in burst-sized parts, so it waits its full time.
      let left = n;
      while (left > 0) {
        const part = Math.min(left, this.bytesPerSecond);
        for (;;) {
          const now = Date.now();
          this.tokens = Math.min(this.bytesPerSecond, this.tokens + ((now - this.last) / 1000) * this.bytesPerSecond);
          this.last = now;
          if (this.tokens >= part) break;
          signal?.throwIfAborted();
          const wait = ((part - this.tokens) / this.bytesPerSecond) * 1000;
          await new Promise((r) => setTimeout(r, Math.max(1, Math.ceil(wait))));
        }
        this.tokens -= part;
        left -= part;
      }
    };
    const p = this.queue.then(run);
    this.queue = p.catch(() => undefined);
    return p;
  }
}

export interface MeteredFetcherOptions {
  /** Bytes per second, 0 = unlimited. */
  bandwidthLimit: number;
  /** Called with the size of every body chunk (slice) passed on to the consumer, after throttling. */
  onBytes: (n: number) => void;
}

/** Wrap `inner` so every body chunk is counted and, with a limit, throttled. */
export function meteredFetcher(inner: Fetcher, opts: MeteredFetcherOptions): Fetcher {
  const bucket = opts.bandwidthLimit > 0 ? new TokenBucket(opts.bandwidthLimit) : null;
  const slice = Math.max(1024, Math.floor(opts.bandwidthLimit / 4));
  return {
    async get(url: string, fo: FetchOptions): Promise<FetchResponse> {
      const res = await inner.get(url, fo);
      const body = res.body;
      return {
        status: res.status,
        headers: res.headers,
        dump: () => res.dump(),
        body: {
          async *[Symbol.asyncIterator]() {
            for await (const chunk of body) {
              if (!bucket) {
                opts.onBytes(chunk.byteLength);
                yield chunk;
                continue;
              }
              // Slices of at most a quarter second's worth, so progress (and the zero-progress
              // watchdog) sees bytes at a steady pace even at a low limit.
              for (let off = 0; off < chunk.byteLength; off += slice) {
                const part = chunk.subarray(off, Math.min(chunk.byteLength, off + slice));
                await bucket.take(part.byteLength, fo.signal);
                opts.onBytes(part.byteLength);
                yield part;
              }
            }
          },
        },
      };
    },
    close: inner.close ? () => inner.close!() : undefined,
  };
}

/**
 * Read a whole (small) response body, refusing more than `max` bytes. Nothing past `max` is
 * read: on that failure, and on any other, the body is released (`dump()` destroys a half-read
 * body together with its connection), so no response is left holding a pooled connection.
 */
export async function readBody(res: FetchResponse, max: number, what: string, url: string): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let n = 0;
  try {
    for await (const c of res.body) {
      n += c.byteLength;
      if (n > max) {
        // OSTree's fetchers say "URI … exceeded maximum size of N bytes".
        throw new LarchError('LIMIT_EXCEEDED', `Fetching ${what}: exceeded maximum size of ${max} bytes for ${url}`, { object: what, url, limit: max, observed: n, reason: 'too-large' });
      }
      parts.push(c);
    }
  } finally {
    await res.dump();
  }
  return Buffer.concat(parts);
}
