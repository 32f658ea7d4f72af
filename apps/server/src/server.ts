/**
 * The HTTP server: routing by mount prefix, method checks, access logging, connection limits
 * and graceful shutdown, on plain node:http (keep-alive on by default).
 *
 * Memory is bounded per connection (serve-file.ts: one buffer of at most 64 KiB, or one 256 KiB
 * pooled chunk in flight for larger files), the number of connections is capped (`maxConnections`)
 * and the object cache has a byte limit, so the whole server's memory is bounded whatever the
 * number of clients.
 *
 * Connections are bounded in time as well as in number, so that clients which connect and then
 * stall (slowloris) cannot hold the server: a connection must complete its request headers within
 * `headersTimeoutMs`, a keep-alive connection may stay idle for `keepAliveTimeoutMs`, any
 * connection without progress for SOCKET_IDLE_TIMEOUT_MS is destroyed, a malformed or timed-out
 * request gets its error status and its connection destroyed LINGER_MS later (not merely ended:
 * a client that never closes its side would keep a half-closed socket), and a request body left
 * unread after the answer is discarded up to MAX_DISCARDED_BODY_BYTES / DISCARD_BODY_TIMEOUT_MS,
 * then the connection is closed. At the connection limit a new connection takes the place of an
 * idle one or of the oldest one still waiting for its headers (connection-limits.ts), so
 * ordinary clients keep being served during a flood.
 *
 * Shutdown stops accepting at once, lets in-flight requests finish (answering them with
 * `Connection: close` so keep-alive clients go away), closes idle keep-alive connections, and
 * after `timeoutMs` tears down whatever is left.
 */
import { realpath, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { LarchError } from '@larch/core-store';
import { ApiError, assertSafeTarget, sendApiError, type ApiHandler } from '@larch/publish';
import type { AccessLog } from './access-log.js';
import { CONSOLE_PREFIX, serveConsole } from './console-static.js';
import { parsePrefix, resolveTarget, sortMounts, type Mount } from './request-path.js';
import { ConnectionTable, type ConnectionStats } from './connection-limits.js';
import { ChunkPool, DEFAULT_OBJECT_CACHE_BYTES, ObjectCache, sendStatus, serveRepoFile, type ServeOutcome } from './serve-file.js';

/** One repository to serve. */
export interface RepoMountOptions {
  /** URL prefix, `/` or `/name[/name…]`. */
  prefix: string;
  /** Repository directory (symlinks in the path itself are resolved once at start). */
  path: string;
}

/** A mount as served: `path` as given (made absolute), `root` its real path, `prefixText` like `/os/`. */
export interface ServedMount extends Mount {
  readonly path: string;
  readonly prefixText: string;
}

/** Options of startServer(). */
export interface ServerOptions {
  repos: RepoMountOptions[];
  /** Address to bind; default 127.0.0.1. */
  bind?: string;
  /** Port; 0 picks a free one. */
  port: number;
  log?: AccessLog;
  /**
   * Cap on simultaneous connections (default 1024). A connection arriving at the cap replaces an
   * idle keep-alive connection or the oldest one still waiting for its headers; it is refused
   * only when every connection is serving a request.
   */
  maxConnections?: number;
  /** Bytes of small objects kept in memory (default 32 MiB; 0 disables). */
  objectCacheBytes?: number;
  /** Idle keep-alive timeout in ms (default 15 s). */
  keepAliveTimeoutMs?: number;
  /**
   * Time in ms a connection has to send complete request headers, counted from the connection
   * (or, on a keep-alive connection, from the first byte of the request); past it the answer is
   * 408 and the connection is closed. Default 20 s; at most 60 s.
   */
  headersTimeoutMs?: number;
  /**
   * Handler of every request under `/api/` (any method). Paths with dot segments are refused
   * (400) before it runs; when it resolves false the answer is a JSON 404.
   */
  api?: ApiHandler;
  /** Directory of the built web console, served at `/console/`. */
  consoleDir?: string;
}

/** One handler trying `handlers` in order until one answers (resolves true). */
export function chainApiHandlers(handlers: readonly ApiHandler[]): ApiHandler {
  return async (req, res, url) => {
    for (const h of handlers) if (await h(req, res, url)) return true;
    return false;
  };
}

async function serveApi(api: ApiHandler, req: IncomingMessage, res: ServerResponse, target: string): Promise<ServeOutcome> {
  try {
    assertSafeTarget(target);
    const url = new URL(target, 'http://localhost');
    if (!(await api(req, res, url))) throw new ApiError(404, 'not-found', `No API endpoint ${req.method ?? ''} ${url.pathname}`);
  } catch (e) {
    const err = sendApiError(res, e);
    return { bytes: Number(res.getHeader('content-length') ?? 0), reason: err.status >= 500 ? `${err.apiCode}: ${String((err.cause as Error | undefined)?.message ?? err.message)}` : err.apiCode };
  }
  return { bytes: Number(res.getHeader('content-length') ?? 0) };
}

/** A running server. */
export interface RunningServer {
  readonly server: Server;
  /** Base URL, e.g. `http://127.0.0.1:8080/`. */
  readonly url: string;
  readonly port: number;
  /** The mounts in the order given, with their real paths. */
  readonly mounts: readonly ServedMount[];
  /** Connections open now, by state, and how many were evicted or refused at the limit. */
  connections(): ConnectionStats;
  /**
   * Stop accepting, finish in-flight requests, close keep-alive connections. After
   * `timeoutMs` (default 10 s) remaining connections are destroyed. Resolves once the
   * listening socket and every connection are closed; safe to call twice.
   */
  shutdown(timeoutMs?: number): Promise<void>;
}

/** Default shutdown grace period. */
export const DEFAULT_SHUTDOWN_TIMEOUT_MS = 10_000;
/** Default cap on simultaneous connections. */
export const DEFAULT_MAX_CONNECTIONS = 1024;
/** A connection with no progress in either direction for this long is destroyed. */
export const SOCKET_IDLE_TIMEOUT_MS = 120_000;
/** Default time to complete request headers (nginx's client_header_timeout is 60 s). */
export const DEFAULT_HEADERS_TIMEOUT_MS = 20_000;
/** Default idle keep-alive timeout. */
export const DEFAULT_KEEP_ALIVE_TIMEOUT_MS = 15_000;
/** Longest time to receive a whole request without an API (static files take no body). */
const STATIC_REQUEST_TIMEOUT_MS = 60_000;
/** Longest time to receive a whole request with the API (uploads stream large bodies). */
const API_REQUEST_TIMEOUT_MS = 3_600_000;
/**
 * A request body still arriving once its answer is out is read and thrown away, so that the
 * connection can be reused, but only this much of it; then the connection is closed.
 */
export const MAX_DISCARDED_BODY_BYTES = 1024 * 1024;
/** …and only for this long after the answer. */
export const DISCARD_BODY_TIMEOUT_MS = 10_000;
/**
 * A connection closed by the server while the client may still be sending is first half-closed
 * (the answer and a FIN go out) and destroyed this long after: destroying it at once with unread
 * input makes the kernel send a reset, which can discard the answer before the client reads it.
 */
export const LINGER_MS = 2_000;

/** Marks a socket whose lingering close has begun. */
const LINGERING = Symbol('lingering');

/**
 * Close `socket` after what has been written to it: FIN now (unless it is already ending),
 * destroy after LINGER_MS or when the client closes first. Safe to call again: Node reports a
 * parse error again for every chunk that arrives after the first, and a later call must not
 * destroy the socket early (its reset could discard the answer).
 */
function lingeringClose(socket: Socket): void {
  const marked = socket as Socket & { [LINGERING]?: true };
  if (socket.destroyed || marked[LINGERING]) return;
  marked[LINGERING] = true;
  if (!socket.writableEnded) socket.end();
  const timer = setTimeout(() => socket.destroy(), LINGER_MS);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
}

/**
 * How often Node checks every connection against the header and request timeouts. Node's
 * default is 30 s, which would let a 20 s header timeout fire after up to 50 s; a check is a
 * walk over the open connections, cheap at a few thousand.
 */
function connectionsCheckInterval(headersTimeoutMs: number): number {
  return Math.min(1000, Math.max(50, Math.floor(headersTimeoutMs / 4)));
}

/** Status of a request that failed before it reached a handler, by Node's error code. */
function clientErrorStatus(code: string | undefined): [number, string] {
  if (code === 'HPE_HEADER_OVERFLOW') return [431, 'Request Header Fields Too Large'];
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT') return [408, 'Request Timeout'];
  return [400, 'Bad Request'];
}

function clientErrorResponse(status: number, text: string): string {
  const body = `${status} ${text}\n`;
  return `HTTP/1.1 ${status} ${text}\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`;
}

/**
 * Called when the response to `req` has finished while its body is still arriving. When a
 * handler gave up reading it (the request stream is destroyed, as after a 413), the connection
 * cannot be reused and is closed at once. Otherwise the rest is read and dropped, up to
 * MAX_DISCARDED_BODY_BYTES and DISCARD_BODY_TIMEOUT_MS, so that the connection can be reused;
 * past either bound the connection is closed (lingeringClose). Without the bound a client could
 * stream an endless body to any URL and keep the connection, and the server reading, for the
 * whole request timeout (Node's own draining has no limit). Must run before Node's own 'finish'
 * listener, which would otherwise drain the body unseen.
 */
function discardRequestBody(req: IncomingMessage, socket: Socket): void {
  if (req.destroyed) {
    lingeringClose(socket);
    return;
  }
  let left = MAX_DISCARDED_BODY_BYTES;
  const giveUp = (): void => {
    clearTimeout(timer);
    req.off('data', count);
    req.pause();
    lingeringClose(socket);
  };
  const count = (c: Buffer): void => {
    left -= c.length;
    if (left < 0) giveUp();
  };
  const timer = setTimeout(giveUp, DISCARD_BODY_TIMEOUT_MS);
  timer.unref();
  req.on('data', count);
  req.once('end', () => clearTimeout(timer));
  req.once('close', () => clearTimeout(timer));
  req.resume();
}

async function prepareMounts(repos: RepoMountOptions[]): Promise<ServedMount[]> {
  if (repos.length === 0) throw new RangeError('No repository to serve');
  const seen = new Set<string>();
  const mounts: ServedMount[] = [];
  for (const r of repos) {
    const prefix = parsePrefix(r.prefix);
    const key = prefix.join('/');
    if (seen.has(key)) throw new RangeError(`Duplicate prefix ${JSON.stringify(r.prefix)}`);
    seen.add(key);
    let root: string;
    try {
      root = await realpath(r.path);
      if (!(await stat(root)).isDirectory()) throw new Error('not a directory');
    } catch (e) {
      throw new LarchError('REPO_NOT_FOUND', `Couldn't find repository at ${r.path}: ${(e as Error).message}`, { path: r.path }, { cause: e });
    }
    mounts.push({ prefix, root, path: resolve(r.path), prefixText: prefix.length ? `/${prefix.join('/')}/` : '/' });
  }
  return mounts;
}

/**
 * Start serving `opts.repos`. Read-only on the repositories; takes no repository lock.
 * Rejects when a repository path does not exist, a prefix is invalid or duplicated, or the
 * address cannot be bound.
 */
export async function startServer(opts: ServerOptions): Promise<RunningServer> {
  const mounts = await prepareMounts(opts.repos);
  const routing = sortMounts([...mounts]);
  const log = opts.log;
  const ctx = { cache: new ObjectCache(opts.objectCacheBytes ?? DEFAULT_OBJECT_CACHE_BYTES), chunks: new ChunkPool() };
  const api = opts.api;
  let consoleRoot: string | undefined;
  if (opts.consoleDir !== undefined) {
    try {
      consoleRoot = await realpath(opts.consoleDir);
    } catch {
      consoleRoot = undefined;
    }
  }
  let closing = false;

  // Most requests complete synchronously (small files, errors); only large bodies return a
  // promise. Keeping the common path free of async/await saves a microtask round per request.
  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const t0 = process.hrtime.bigint();
    const target = req.url ?? '';
    const remote = req.socket.remoteAddress ?? '';
    if (closing) res.setHeader('Connection', 'close');
    const finish = (outcome: ServeOutcome): void => {
      log?.write({
        time: new Date().toISOString(),
        method: req.method ?? '',
        path: target,
        status: res.statusCode,
        bytes: outcome.bytes,
        durationMs: Math.round(Number(process.hrtime.bigint() - t0) / 1e3) / 1e3,
        remote,
        ...(outcome.reason !== undefined ? { reason: outcome.reason } : {}),
      });
    };
    const failed = (e: unknown): ServeOutcome => ({ ...sendStatus(res, 500), reason: (e as Error).message });
    let outcome: ServeOutcome | Promise<ServeOutcome>;
    try {
      if (api !== undefined && (target === '/api' || target.startsWith('/api/') || target.startsWith('/api?'))) {
        outcome = serveApi(api, req, res, target);
      } else if (consoleRoot !== undefined && (target === '/console' || target.startsWith(CONSOLE_PREFIX) || target.startsWith('/console?'))) {
        outcome = serveConsole(req, res, consoleRoot, target);
      } else if (req.method !== 'GET' && req.method !== 'HEAD') {
        outcome = { ...sendStatus(res, 405, { Allow: 'GET, HEAD' }), reason: 'method not allowed' };
      } else {
        const r = resolveTarget(target, routing);
        outcome = r.ok ? serveRepoFile(req, res, r.mount.root, r.segments, ctx) : { ...sendStatus(res, r.status), reason: r.reason };
      }
    } catch (e) {
      outcome = failed(e);
    }
    if (outcome instanceof Promise) outcome.then(finish, (e: unknown) => finish(failed(e)));
    else finish(outcome);
  };

  const headersTimeout = opts.headersTimeoutMs ?? DEFAULT_HEADERS_TIMEOUT_MS;
  // Uploads to the API may stream large bodies: their bound is the idle timeout, not a total.
  const requestTimeout = api !== undefined ? API_REQUEST_TIMEOUT_MS : STATIC_REQUEST_TIMEOUT_MS;
  if (!(headersTimeout > 0 && headersTimeout <= STATIC_REQUEST_TIMEOUT_MS)) throw new RangeError(`headersTimeoutMs must be in (0, ${STATIC_REQUEST_TIMEOUT_MS}], not ${headersTimeout}`);
  const connections = new ConnectionTable(opts.maxConnections ?? DEFAULT_MAX_CONNECTIONS);
  const server = createServer(
    { keepAlive: true, requestTimeout, headersTimeout, connectionsCheckingInterval: connectionsCheckInterval(headersTimeout) },
    (req, res) => {
      const socket = req.socket;
      connections.requestStarted(socket);
      res.once('close', () => connections.requestDone(socket));
      res.prependListener('finish', () => {
        if (!req.complete) discardRequestBody(req, socket);
      });
      handle(req, res);
    },
  );
  server.keepAliveTimeout = opts.keepAliveTimeoutMs ?? DEFAULT_KEEP_ALIVE_TIMEOUT_MS;
  // A client that stops reading (or sending) for this long loses its connection, so stalled
  // clients cannot pin connections and buffers forever.
  server.setTimeout(SOCKET_IDLE_TIMEOUT_MS);
  // Not server.maxConnections: that refuses new connections at the cap, which is exactly what a
  // flood wants. The table makes room instead (see connection-limits.ts).
  server.on('connection', (socket: Socket) => {
    connections.admit(socket);
  });
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    // Answer unless a response is under way on the connection (its bytes would be interleaved
    // with ours; that connection is destroyed), then close for good: merely ending would leave
    // the socket half-open for as long as the client keeps its side open, counted against the
    // limit. A socket already closing (an earlier error on it) keeps its lingering close.
    const [status, text] = clientErrorStatus(err.code);
    if (err.code === 'ECONNRESET' || (socket.writable && connections.stateOf(socket) === 'active')) socket.destroy();
    else {
      if (socket.writable) socket.write(clientErrorResponse(status, text));
      lingeringClose(socket);
    }
    if (err.code !== 'ECONNRESET') {
      log?.write({ time: new Date().toISOString(), method: '', path: '', status, bytes: 0, durationMs: 0, remote: socket.remoteAddress ?? '', reason: err.code ?? err.message });
    }
  });

  const bind = opts.bind ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, bind, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;

  let shutdownPromise: Promise<void> | undefined;
  const shutdown = (timeoutMs = DEFAULT_SHUTDOWN_TIMEOUT_MS): Promise<void> => {
    shutdownPromise ??= new Promise<void>((resolve) => {
      closing = true;
      const sweep = setInterval(() => server.closeIdleConnections(), 50);
      const force = setTimeout(() => server.closeAllConnections(), timeoutMs);
      server.close(() => {
        clearInterval(sweep);
        clearTimeout(force);
        resolve();
      });
      server.closeIdleConnections();
    });
    return shutdownPromise;
  };

  return { server, url: `http://${host}:${addr.port}/`, port: addr.port, mounts, connections: () => connections.stats(), shutdown };
}
