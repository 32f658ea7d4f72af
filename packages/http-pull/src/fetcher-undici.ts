/**
 * HTTP(S) fetcher on undici's `request()` with one shared Agent: 8 keep-alive connections per
 * origin and no pipelining (measured fastest for many small GETs on loopback, TOOLCHAIN.md).
 * Redirects are followed (at most 5). Timeouts here are only a backstop; the puller runs its own
 * per-request and stall timers around every call.
 *
 * Every response body ends in one of two ways, whatever the caller does with it: read to its
 * end (the connection goes back to the pool), or destroyed (undici aborts the request and
 * closes that connection, so a half-read response never blocks the pool). `dump()` picks
 * between them: a body the caller never started is drained only while it is small and quick
 * (a 404 page keeps its connection), anything else is destroyed at once. Draining a body that
 * is being iterated cannot work (undici's `dump` resumes the stream, which does nothing while
 * an async iterator holds it, and the parser then pauses at the high-water mark for good), and
 * a body larger than the limit must never be read further, so neither is attempted.
 * `close()` always settles: it waits a short while for requests in flight, then destroys them.
 *
 * Proxies and TLS follow the remote's keys and the environment as OSTree's curl fetcher does
 * (fetcher-proxy.ts, fetcher-tls.ts): requests that go direct share the one Agent; each proxy in
 * use gets its own ProxyAgent with the same pool settings. An http:// URL goes to an HTTP proxy
 * as an absolute-URI request (as libcurl sends it, so the proxy sees and logs each GET); an
 * https:// URL is tunnelled with CONNECT. The TLS settings apply to the server's connection,
 * never to the proxy's own (OSTree sets no proxy CA either). A redirect is followed through the
 * dispatcher the first URL chose.
 */
import { Agent, buildConnector, interceptors, Pool, ProxyAgent, request, type Dispatcher } from 'undici';
import { TransportError, type FetchOptions, type FetchResponse, type Fetcher } from './fetcher.js';
import { proxyForUrl } from './fetcher-proxy.js';
import { certificateError, loadTls, nameChecked, type LoadedTls, type RemoteTransport } from './fetcher-tls.js';

/** Options of {@link UndiciFetcher}. */
export interface UndiciFetcherOptions {
  /** Connections per origin (default 8). */
  connections?: number;
  /** Backstop for headers and for silence between body chunks, ms (default 60 000). */
  socketTimeoutMs?: number;
  /** User-Agent header (default `larch-http-pull`). */
  userAgent?: string;
  /** The remote's proxy and TLS keys ({@link remoteTransport}); default none. */
  transport?: RemoteTransport;
  /** Where `http_proxy`, `https_proxy`, `all_proxy` and `no_proxy` are read (default `process.env`). */
  env?: Record<string, string | undefined>;
}

/** Bytes of response body buffered before undici applies backpressure (see get()). */
const BODY_HIGH_WATER_MARK = 8 * 1024 * 1024;
/** An unread body is drained (keeping its connection) only up to this size... */
const DRAIN_MAX_BYTES = 64 * 1024;
/** ...and only for this long; past either it is destroyed with its connection. */
const DRAIN_MAX_MS = 2_000;
/** How long `close()` lets requests in flight finish before it destroys them. */
const CLOSE_GRACE_MS = 2_000;

/** Where a response body is in its life. */
type BodyState = 'unread' | 'reading' | 'ended' | 'released';

/** A {@link Fetcher} for http:// and https:// URLs. Call `close()` when done. */
export class UndiciFetcher implements Fetcher {
  private readonly agent: Agent;
  private readonly dispatcher: Dispatcher;
  private readonly userAgent: string;
  private readonly poolOptions: Agent.Options;
  private readonly tls: LoadedTls;
  private readonly transport: RemoteTransport;
  private readonly env: Record<string, string | undefined>;
  /** One ProxyAgent per proxy URL in use, and its redirect-following dispatcher. */
  private readonly proxies = new Map<string, { agent: ProxyAgent; dispatcher: Dispatcher }>();

  /** Throws LarchError BAD_CONFIG when a TLS file of `opts.transport` cannot be read or parsed. */
  constructor(opts: UndiciFetcherOptions = {}) {
    const t = opts.socketTimeoutMs ?? 60_000;
    this.transport = opts.transport ?? {};
    this.env = opts.env ?? process.env;
    this.tls = loadTls(this.transport);
    this.poolOptions = {
      connections: opts.connections ?? 8,
      pipelining: 1,
      keepAliveTimeout: 30_000,
      headersTimeout: t,
      bodyTimeout: t,
    };
    this.agent = new Agent({ ...this.poolOptions, connect: nameChecked(buildConnector({ ...this.tls.options }), this.tls.permissive) });
    this.dispatcher = this.agent.compose(interceptors.redirect({ maxRedirections: 5 }));
    this.userAgent = opts.userAgent ?? 'larch-http-pull';
  }

  /** The dispatcher for `url`: direct, or through the proxy the remote or the environment names. */
  private dispatcherFor(url: string): { dispatcher: Dispatcher; proxy: string | null } {
    let target: URL;
    try {
      target = new URL(url);
    } catch {
      return { dispatcher: this.dispatcher, proxy: null }; // undici reports the bad URL
    }
    const proxy = proxyForUrl(target, this.transport.proxy, this.env);
    if (proxy === null) return { dispatcher: this.dispatcher, proxy: null };
    let entry = this.proxies.get(proxy);
    if (entry === undefined) {
      const permissive = this.tls.permissive;
      const agent = new ProxyAgent({
        ...this.poolOptions,
        uri: proxy,
        requestTls: { ...this.tls.options },
        proxyTunnel: false,
        // The pool of each server behind the proxy: its connector (the CONNECT tunnel plus TLS)
        // gets the same name check as direct connections.
        factory: (origin, o) => {
          const po = o as Pool.Options;
          return new Pool(origin, { ...po, ...(typeof po.connect === 'function' ? { connect: nameChecked(po.connect, permissive) } : {}) });
        },
      });
      entry = { agent, dispatcher: agent.compose(interceptors.redirect({ maxRedirections: 5 })) };
      this.proxies.set(proxy, entry);
    }
    return { dispatcher: entry.dispatcher, proxy };
  }

  async get(url: string, opts: FetchOptions): Promise<FetchResponse> {
    const headers: Record<string, string> = { 'user-agent': this.userAgent, ...(opts.headers ?? {}) };
    if (opts.range) headers.range = `bytes=${opts.range.start}-${opts.range.end ?? ''}`;
    const { dispatcher, proxy } = this.dispatcherFor(url);
    let res: Dispatcher.ResponseData;
    try {
      // A large high-water mark keeps undici's HTTP/1 parser from pausing under a briefly slow
      // consumer: undici 7 asserts (and the process dies) when a server closes the connection
      // while the parser is paused (nodejs/undici#5360, fixed only in releases that need Node 22).
      res = await request(url, { method: 'GET', headers, signal: opts.signal, dispatcher, highWaterMark: BODY_HIGH_WATER_MARK });
    } catch (e) {
      if (opts.signal.aborted) throw opts.signal.reason ?? e;
      const msg = (e as Error).message ?? String(e);
      throw certificateError(e) ?? new TransportError(proxy === null ? msg : `${msg} (through proxy ${redactUrl(proxy)})`, { cause: e });
    }
    const h: Record<string, string | undefined> = {};
    for (const [k, v] of Object.entries(res.headers)) h[k.toLowerCase()] = Array.isArray(v) ? v.join(', ') : v;
    const body = res.body;
    const state = { value: 'unread' as BodyState };
    return {
      status: res.statusCode,
      headers: h,
      body: wrapBody(body, opts.signal, state),
      dump: () => release(body, state),
    };
  }

  /** Close the pool; requests still in flight after a short grace period are destroyed. */
  async close(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const graceOver = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), CLOSE_GRACE_MS);
    });
    const agents: Dispatcher[] = [this.agent, ...[...this.proxies.values()].map((p) => p.agent)];
    const closed = Promise.all(agents.map((a) => a.close())).then(
      () => 'closed' as const,
      () => 'closed' as const,
    );
    try {
      if ((await Promise.race([closed, graceOver])) === 'closed') return;
    } finally {
      clearTimeout(timer);
    }
    await Promise.all(agents.map((a) => a.destroy(new TransportError('fetcher closed')).catch(() => undefined)));
  }
}

/** A proxy URL without its password, for messages. */
function redactUrl(u: string): string {
  const url = new URL(u);
  if (url.password !== '') url.password = '***';
  return url.toString();
}

type UndiciBody = Dispatcher.ResponseData['body'];

/**
 * The body as the caller iterates it: transport errors become TransportError (or the abort
 * reason), and an iteration that stops early for any reason destroys the body.
 */
async function* wrapBody(body: UndiciBody, signal: AbortSignal, state: { value: BodyState }): AsyncIterable<Uint8Array> {
  if (state.value === 'released') throw new TransportError('Response body was already released');
  state.value = 'reading';
  try {
    for await (const chunk of body as AsyncIterable<Uint8Array>) yield chunk;
    state.value = 'ended';
  } catch (e) {
    if (signal.aborted) throw signal.reason ?? e;
    throw new TransportError((e as Error).message ?? String(e), { cause: e });
  } finally {
    if (state.value !== 'ended') {
      state.value = 'released';
      body.destroy();
    }
  }
}

/** `dump()`: see the top of this file. Idempotent; settles within DRAIN_MAX_MS. */
async function release(body: UndiciBody, state: { value: BodyState }): Promise<void> {
  const was = state.value;
  if (was === 'ended' || was === 'released') return;
  state.value = 'released';
  if (was === 'reading') {
    body.destroy();
    return;
  }
  const timer = setTimeout(() => body.destroy(), DRAIN_MAX_MS);
  try {
    // undici destroys the body itself once more than the limit has arrived.
    await body.dump({ limit: DRAIN_MAX_BYTES });
  } catch {
    // the connection is discarded instead
  } finally {
    clearTimeout(timer);
  }
}
