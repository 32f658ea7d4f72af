/**
 * The HTTP server: routing by mount prefix, method checks, access logging, connection limits
 * and graceful shutdown, on plain node:http (keep-alive on by default).
 *
 * Memory is bounded per connection (serve-file.ts: one buffer of at most 64 KiB, or one 256 KiB
 * pooled chunk in flight for larger files), the number of connections is capped (`maxConnections`)
 * and the object cache has a byte limit, so the whole server's memory is bounded whatever the
 * number of clients.
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
  /** Cap on simultaneous connections (default 1024); more are refused by the kernel backlog/closed. */
  maxConnections?: number;
  /** Bytes of small objects kept in memory (default 32 MiB; 0 disables). */
  objectCacheBytes?: number;
  /** Idle keep-alive timeout in ms (default 15 s). */
  keepAliveTimeoutMs?: number;
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
  /**
   * Stop accepting, finish in-flight requests, close keep-alive connections. After
   * `timeoutMs` (default 10 s) remaining connections are destroyed. Resolves once the
   * listening socket and every connection are closed; safe to call twice.
   */
  shutdown(timeoutMs?: number): Promise<void>;
}

/** Default cap on simultaneous connections. */
export const DEFAULT_MAX_CONNECTIONS = 1024;
/** A connection with no progress in either direction for this long is destroyed. */
export const SOCKET_IDLE_TIMEOUT_MS = 120_000;
/** Default shutdown grace period. */
export const DEFAULT_SHUTDOWN_TIMEOUT_MS = 10_000;

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
      // Discard any request body so the connection can be reused.
      if (!req.complete) req.resume();
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

  // Uploads to the API may stream large bodies: their bound is the idle timeout, not a total.
  const server = createServer({ keepAlive: true, requestTimeout: api !== undefined ? 3_600_000 : 60_000, headersTimeout: 20_000 }, (req, res) => {
    handle(req, res);
  });
  server.keepAliveTimeout = opts.keepAliveTimeoutMs ?? 15_000;
  // A client that stops reading (or sending) for this long loses its connection, so stalled
  // clients cannot pin connections and buffers forever.
  server.setTimeout(SOCKET_IDLE_TIMEOUT_MS);
  server.maxConnections = opts.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    if (socket.writable && !socket.destroyed) {
      socket.end('HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 16\r\nConnection: close\r\n\r\n400 Bad Request\n');
    } else socket.destroy();
    if (err.code !== 'ECONNRESET') {
      log?.write({ time: new Date().toISOString(), method: '', path: '', status: 400, bytes: 0, durationMs: 0, remote: socket.remoteAddress ?? '', reason: err.code ?? err.message });
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

  return { server, url: `http://${host}:${addr.port}/`, port: addr.port, mounts, shutdown };
}
