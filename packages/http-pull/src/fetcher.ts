/**
 * The transport seam of the puller (STYLE.md 5, like isomorphic-git's `http` argument): pull
 * logic only ever calls {@link Fetcher.get}, so tests run it against real servers, against
 * fault-injecting servers, and against pure fakes. Implementations: `UndiciFetcher` (HTTP and
 * HTTPS, one keep-alive pool) and `FileFetcher` (file:// URLs).
 *
 * Contract: `get` resolves once the status and headers are known; the caller then reads the
 * body to its end or calls `dump()`, on every path, errors included. A fetcher reports
 * transport failures by rejecting with a TransportError (the puller classifies and retries
 * them), and failures no retry can cure with a LarchError whose `data.reason` says why (`tls`
 * for a refused server certificate, BAD_CONFIG for unreadable TLS files); it must honour
 * `signal` promptly, both before the headers and while the body streams. `maxBytes` is advisory
 * for the fetcher (it may fail early on a larger Content-Length); the puller enforces it again
 * on the bytes it actually receives.
 */

/** Options of one GET. */
export interface FetchOptions {
  /** Byte range to request (`Range: bytes=start-end`, end inclusive); servers may ignore it. */
  range?: { start: number; end?: number };
  /** The most bytes the caller will accept. */
  maxBytes: number;
  signal: AbortSignal;
  /** Extra request headers (If-None-Match, ...). */
  headers?: Record<string, string>;
}

/** A response: status, lower-cased headers, and the body as a byte stream. */
export interface FetchResponse {
  status: number;
  headers: Record<string, string | undefined>;
  body: AsyncIterable<Uint8Array>;
  /**
   * Release the body, read or not (idempotent): it must settle promptly and never read an
   * unbounded amount. A body that was partly read, or is large, is destroyed with its
   * connection (it must not go back to a pool); a small unread one may be drained instead.
   * Iterating `body` after `dump()` fails.
   */
  dump(): Promise<void>;
}

/** Something that can GET a URL. */
export interface Fetcher {
  get(url: string, opts: FetchOptions): Promise<FetchResponse>;
  /** Close pooled connections. */
  close?(): Promise<void>;
}

/** A transport-level failure (connection refused, reset, premature close, ...). */
export class TransportError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TransportError';
  }
}

/** Join a base URL (with or without trailing `/`) and a relative repo path. */
export function joinUrl(base: string, rel: string): string {
  const b = base.endsWith('/') ? base : `${base}/`;
  return new URL(rel, b).toString();
}
