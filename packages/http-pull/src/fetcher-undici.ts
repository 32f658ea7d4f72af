/**
 * HTTP(S) fetcher on undici's `request()` with one shared Agent: 8 keep-alive connections per
 * origin and no pipelining (measured fastest for many small GETs on loopback, TOOLCHAIN.md).
 * Redirects are followed (at most 5). Timeouts here are only a backstop; the puller runs its own
 * per-request and stall timers around every call.
 */
import { Agent, interceptors, request, type Dispatcher } from 'undici';
import { TransportError, type FetchOptions, type FetchResponse, type Fetcher } from './fetcher.js';

/** Options of {@link UndiciFetcher}. */
export interface UndiciFetcherOptions {
  /** Connections per origin (default 8). */
  connections?: number;
  /** Backstop for headers and for silence between body chunks, ms (default 60 000). */
  socketTimeoutMs?: number;
  /** User-Agent header (default `larch-http-pull`). */
  userAgent?: string;
}

/** A {@link Fetcher} for http:// and https:// URLs. Call `close()` when done. */
export class UndiciFetcher implements Fetcher {
  private readonly agent: Agent;
  private readonly dispatcher: Dispatcher;
  private readonly userAgent: string;

  constructor(opts: UndiciFetcherOptions = {}) {
    const t = opts.socketTimeoutMs ?? 60_000;
    this.agent = new Agent({
      connections: opts.connections ?? 8,
      pipelining: 1,
      keepAliveTimeout: 30_000,
      headersTimeout: t,
      bodyTimeout: t,
    });
    this.dispatcher = this.agent.compose(interceptors.redirect({ maxRedirections: 5 }));
    this.userAgent = opts.userAgent ?? 'larch-http-pull';
  }

  async get(url: string, opts: FetchOptions): Promise<FetchResponse> {
    const headers: Record<string, string> = { 'user-agent': this.userAgent, ...(opts.headers ?? {}) };
    if (opts.range) headers.range = `bytes=${opts.range.start}-${opts.range.end ?? ''}`;
    let res: Dispatcher.ResponseData;
    try {
      // A large high-water mark keeps undici's HTTP/1 parser from pausing under a briefly slow
      // consumer: undici 7 asserts (and the process dies) when a server closes the connection
      // while the parser is paused (nodejs/undici#5360, fixed only in releases that need Node 22).
      res = await request(url, { method: 'GET', headers, signal: opts.signal, dispatcher: this.dispatcher, highWaterMark: BODY_HIGH_WATER_MARK });
    } catch (e) {
      if (opts.signal.aborted) throw opts.signal.reason ?? e;
      throw new TransportError((e as Error).message ?? String(e), { cause: e });
    }
    const h: Record<string, string | undefined> = {};
    for (const [k, v] of Object.entries(res.headers)) h[k.toLowerCase()] = Array.isArray(v) ? v.join(', ') : v;
    const body = res.body;
    return {
      status: res.statusCode,
      headers: h,
      body: wrapBody(body, opts.signal),
      dump: async () => {
        try {
          await body.dump({ limit: 64 * 1024 });
        } catch {
          // the connection is discarded instead
        }
      },
    };
  }

  async close(): Promise<void> {
    await this.agent.close();
  }
}

/** Bytes of response body buffered before undici applies backpressure (see get()). */
const BODY_HIGH_WATER_MARK = 8 * 1024 * 1024;

async function* wrapBody(body: AsyncIterable<Uint8Array>, signal: AbortSignal): AsyncIterable<Uint8Array> {
  try {
    for await (const chunk of body) yield chunk;
  } catch (e) {
    if (signal.aborted) throw signal.reason ?? e;
    throw new TransportError((e as Error).message ?? String(e), { cause: e });
  }
}
