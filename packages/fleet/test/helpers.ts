/**
 * Test helpers: a node:http server around API handlers (the way larch-server composes them),
 * check-in payloads, and a small JSON client.
 */
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { assertSafeTarget, sendApiError, type ApiHandler } from '@larch/publish';
import type { CheckInPayload } from '@larch/updater';

export interface TestServer {
  url: string;
  close(): Promise<void>;
}

/** Serve `handlers` (tried in order) and `fallback` for other paths. */
export async function serve(handlers: ApiHandler[], fallback?: (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse) => void): Promise<TestServer> {
  const server: Server = createServer((req, res) => {
    void (async () => {
      res.on('finish', () => {
        if (!req.complete) req.resume();
      });
      const url = new URL(req.url ?? '/', 'http://localhost');
      if (url.pathname.startsWith('/api/')) {
        try {
          assertSafeTarget(req.url ?? '/');
        } catch (e) {
          sendApiError(res, e);
          return;
        }
        for (const h of handlers) if (await h(req, res, url)) return;
        res.writeHead(404, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: { code: 'not-found', message: `No such API path ${url.pathname}` } }));
        return;
      }
      if (fallback) return fallback(req, res);
      res.writeHead(404);
      res.end();
    })().catch((e: unknown) => {
      res.destroy(e as Error);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

export const C1 = 'a'.repeat(64);
export const C2 = 'b'.repeat(64);
export const C3 = 'c'.repeat(64);

/** A valid check-in body for `deviceId`, with overrides. */
export function payload(deviceId: string, over: Partial<CheckInPayload> = {}): CheckInPayload {
  return {
    deviceId,
    time: '2026-11-26T00:00:00.000Z',
    phase: 'idle',
    degraded: false,
    ref: 'os/stable',
    booted: { commit: C1, deployment: `${C1}.0`, version: '1' },
    target: null,
    badCommits: [],
    lastError: null,
    counters: { checks: 1, bytesFetched: 0, failures: 0, updates: 0, rollbacks: 0 },
    ...over,
  };
}

export interface JsonAnswer {
  status: number;
  body: any;
}

/** One request; `body` is sent as JSON unless it is a string. */
export async function call(method: string, url: string, opts: { token?: string; body?: unknown } = {}): Promise<JsonAnswer> {
  const headers: Record<string, string> = {};
  if (opts.token !== undefined) headers.authorization = `Bearer ${opts.token}`;
  let body: string | undefined;
  if (opts.body !== undefined) {
    headers['content-type'] = 'application/json';
    body = typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body);
  }
  const res = await fetch(url, { method, headers, ...(body !== undefined ? { body } : {}) });
  const text = await res.text();
  return { status: res.status, body: text ? (JSON.parse(text) as unknown) : null };
}

/** GET with the path sent exactly as written (no dot-segment resolution); resolves with the status. */
export function rawStatus(url: string, token?: string): Promise<number> {
  const u = new URL(url);
  const path = url.slice(url.indexOf('/', u.protocol.length + 2));
  return new Promise((resolve, reject) => {
    const req = request({ host: u.hostname, port: u.port, path, method: 'GET', headers: token ? { authorization: `Bearer ${token}` } : {} }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end();
  });
}
