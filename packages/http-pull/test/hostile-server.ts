/**
 * A hostile HTTP server for pull tests: node:http on 127.0.0.1 serving a repository directory
 * as a static server would (Content-Length, 404 for what is missing), except for the paths a
 * rule picks, which get a chunked body (no Content-Length) larger than the client's limit:
 * endless, or a finite `limit + extra` bytes. It records when each hostile body passed the
 * limit and when its connection closed, and counts open sockets, so tests can check that the
 * client gave up on time and left no connection behind. Shared by the http-pull, CLI and
 * updater tests.
 */
import { promises as fsp } from 'node:fs';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';

/** Which requests get a hostile body, and how. */
export interface HostileRule {
  match: (path: string) => boolean;
  /** `endless`: until the client goes away; `finite`: `limit + extra` bytes, then the end. */
  kind: 'endless' | 'finite';
  /** The client's limit: `limitAt` records when this many bytes were sent. */
  limit: number;
  /** Bytes past the limit of a finite body (default 4 MiB). */
  extra?: number;
}

/** One hostile body as it was sent. */
export interface HostileResponse {
  path: string;
  sent: number;
  /** performance.now() when `limit` bytes had been handed to the socket (null: not yet). */
  limitAt: number | null;
  /** performance.now() when the response's connection closed (null: still open). */
  closedAt: number | null;
}

const CHUNK = Buffer.alloc(64 * 1024, 0x61);

/** See the top of this file. `rule` and `missing` may be changed at any time. */
export class HostileServer {
  rule: HostileRule | null = null;
  /** Request paths answered 404 whatever the directory holds. */
  readonly missing = new Set<string>();
  /** Request paths (decoded URL paths) in arrival order. */
  readonly requests: string[] = [];
  readonly responses: HostileResponse[] = [];
  openSockets = 0;
  /** The most sockets open at once since the last {@link resetCounters}. */
  maxOpenSockets = 0;
  /** Sockets accepted since the last {@link resetCounters}. */
  acceptedSockets = 0;
  url = '';
  private readonly sockets = new Set<Socket>();

  private constructor(
    readonly dir: string,
    private readonly server: http.Server,
  ) {}

  static async start(dir: string): Promise<HostileServer> {
    const server = http.createServer();
    const self = new HostileServer(dir, server);
    server.on('request', (req, res) => self.handle(req, res));
    server.on('connection', (s: Socket) => {
      self.sockets.add(s);
      self.openSockets++;
      self.acceptedSockets++;
      self.maxOpenSockets = Math.max(self.maxOpenSockets, self.openSockets);
      s.on('close', () => {
        self.sockets.delete(s);
        self.openSockets--;
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    self.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
    return self;
  }

  resetCounters(): void {
    this.maxOpenSockets = this.openSockets;
    this.acceptedSockets = 0;
    this.requests.length = 0;
    this.responses.length = 0;
  }

  /** The hostile bodies sent so far that reached the limit. */
  get overLimit(): HostileResponse[] {
    return this.responses.filter((r) => r.limitAt !== null);
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    this.requests.push(path);
    const rule = this.rule;
    if (rule !== null && rule.match(path)) {
      this.hostile(path, rule, res);
      return;
    }
    if (this.missing.has(path) || path.includes('..')) {
      res.writeHead(404, { 'content-length': 0 });
      res.end();
      return;
    }
    fsp.readFile(join(this.dir, path)).then(
      (data) => {
        res.writeHead(200, { 'content-length': data.length });
        res.end(data);
      },
      () => {
        res.writeHead(404, { 'content-length': 0 });
        res.end();
      },
    );
  }

  private hostile(path: string, rule: HostileRule, res: http.ServerResponse): void {
    const r: HostileResponse = { path, sent: 0, limitAt: null, closedAt: null };
    this.responses.push(r);
    const total = rule.kind === 'endless' ? Infinity : rule.limit + (rule.extra ?? 4 * 1024 * 1024);
    // No Content-Length: node:http sends the body with chunked transfer encoding.
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    res.socket?.once('close', () => {
      r.closedAt = performance.now();
    });
    let stopped = false;
    res.once('close', () => {
      stopped = true;
    });
    const pump = (): void => {
      while (!stopped && r.sent < total) {
        const n = Math.min(CHUNK.length, total - r.sent);
        const ok = res.write(n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n));
        r.sent += n;
        if (r.limitAt === null && r.sent >= rule.limit) r.limitAt = performance.now();
        if (!ok) {
          res.once('drain', pump);
          return;
        }
      }
      if (!stopped) res.end();
    };
    pump();
  }

  /** Resolve once `cond()` holds, polling; reject naming `what` after `timeoutMs`. */
  async waitFor(cond: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
    const until = performance.now() + timeoutMs;
    while (!cond()) {
      if (performance.now() > until) throw new Error(`Timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

/**
 * Settle with `p`, or fail once `deadlineFrom()` (a performance.now() value, once known) is
 * more than `ms` in the past: a hostile body must be given up on within `ms` of reaching the
 * limit, however long the machine took to get there.
 */
export async function settleWithin<T>(p: Promise<T>, deadlineFrom: () => number | null, ms: number, what: string): Promise<{ value?: T; error?: unknown; settledAt: number }> {
  let settled: { value?: T; error?: unknown; settledAt: number } | null = null;
  p.then(
    (value) => {
      settled = { value, settledAt: performance.now() };
    },
    (error: unknown) => {
      settled = { error, settledAt: performance.now() };
    },
  );
  for (;;) {
    if (settled !== null) return settled;
    const from = deadlineFrom();
    if (from !== null && performance.now() - from > ms) throw new Error(`${what} did not settle within ${ms} ms of the server sending the limit`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
