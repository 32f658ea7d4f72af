/**
 * Small HTTP pieces shared by every `/api/v1/` handler: the handler type, request path parsing
 * with traversal refused, and bounded JSON bodies validated with zod.
 *
 * Why the path checks live here and not only in the URL parser: WHATWG URL resolution turns
 * `/a/%2e%2e/b` into `/b` before a handler sees it, so the raw request target is checked too
 * ({@link assertSafeTarget}); the server calls it before building the URL it hands to handlers.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { z } from 'zod';
import { ApiError } from './api-error.js';

/**
 * An API handler: answers and resolves true when the path is its own, resolves false without
 * touching `res` otherwise. `url` is built by the server from a target already checked by
 * {@link assertSafeTarget}.
 */
export type ApiHandler = (req: IncomingMessage, res: ServerResponse, url: URL) => Promise<boolean>;

/** Repository names as served (`repos[].name`). */
export const REPO_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** Largest JSON body accepted unless a handler says otherwise (1 MiB). */
export const DEFAULT_JSON_LIMIT = 1024 * 1024;

/** Whether `name` is a valid repository name. */
export function isRepoName(name: string): boolean {
  return REPO_NAME_RE.test(name) && name !== '.' && name !== '..';
}

/**
 * Refuse request targets with dot segments (`.`, `..`, in any percent-encoding), backslashes,
 * NUL or empty segments in the path: 400 `invalid-path`. Pure.
 */
export function assertSafeTarget(target: string): void {
  const q = target.indexOf('?');
  const path = q < 0 ? target : target.slice(0, q);
  if (!path.startsWith('/')) throw new ApiError(400, 'invalid-path', 'Invalid request path: must start with /');
  const parts = path.slice(1).split('/');
  for (let i = 0; i < parts.length; i++) {
    const raw = parts[i];
    if (raw === '' && i < parts.length - 1) throw new ApiError(400, 'invalid-path', 'Invalid request path: empty segment');
    let seg: string;
    try {
      seg = decodeURIComponent(raw);
    } catch {
      throw new ApiError(400, 'invalid-path', 'Invalid request path: bad percent-encoding');
    }
    if (seg === '.' || seg === '..') throw new ApiError(400, 'invalid-path', `Invalid request path: "${seg}" segment`);
    // eslint-disable-next-line no-control-regex
    if (/[\\\x00-\x1f\x7f]/.test(seg) || seg.includes('/')) throw new ApiError(400, 'invalid-path', 'Invalid request path: forbidden character in a segment');
  }
}

/**
 * Split `/api/v1/repos/{repo}/{rest…}` into the repository name and the decoded remaining
 * segments. Returns null when the path is not under `/api/v1/repos/`; throws ApiError 400 for an
 * invalid repository name or a segment that is empty, `.`, `..`, or holds `/`, `\` or a control
 * character once decoded. A trailing slash is ignored; `/api/v1/repos/` itself (the listing of
 * repositories) names no repository and is null too. Pure.
 */
export function parseRepoPath(url: URL): { repo: string; rest: string[] } | null {
  const prefix = '/api/v1/repos/';
  if (!url.pathname.startsWith(prefix) || url.pathname === prefix) return null;
  let raw = url.pathname.slice(prefix.length).split('/');
  if (raw.length > 1 && raw[raw.length - 1] === '') raw = raw.slice(0, -1);
  const segs: string[] = [];
  for (const r of raw) {
    let s: string;
    try {
      s = decodeURIComponent(r);
    } catch {
      throw new ApiError(400, 'invalid-path', 'Invalid request path: bad percent-encoding');
    }
    // eslint-disable-next-line no-control-regex
    if (s === '' || s === '.' || s === '..' || /[/\\\x00-\x1f\x7f]/.test(s)) {
      throw new ApiError(400, 'invalid-path', `Invalid path segment ${JSON.stringify(s.slice(0, 80))}`);
    }
    segs.push(s);
  }
  const [repo, ...rest] = segs;
  if (repo === undefined || !isRepoName(repo)) throw new ApiError(400, 'invalid-repo', `Invalid repository name ${JSON.stringify((repo ?? '').slice(0, 80))}`);
  return { repo, rest };
}

/**
 * Read the whole request body, at most `maxBytes` (413 `too-large` past it, checked against
 * Content-Length first and against the bytes as they arrive). Buffers: for small bodies only.
 */
export async function readBody(req: IncomingMessage, maxBytes: number): Promise<Buffer> {
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > maxBytes) {
    req.resume();
    throw new ApiError(413, 'too-large', `Request body of ${declared} bytes exceeds the limit of ${maxBytes}`);
  }
  const parts: Buffer[] = [];
  let n = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    n += c.length;
    if (n > maxBytes) {
      req.resume();
      throw new ApiError(413, 'too-large', `Request body exceeds the limit of ${maxBytes} bytes`);
    }
    parts.push(c);
  }
  return Buffer.concat(parts, n);
}

/**
 * Read a JSON body of at most `maxBytes` (default 1 MiB) and validate it with `schema`.
 * Errors: a body that is not JSON is 400 `invalid-json`; a body that does not match is 400
 * `invalid-body` naming the first field at fault; too large is 413. An empty body is parsed as `{}`.
 */
export async function readJsonBody<S extends z.ZodType>(req: IncomingMessage, schema: S, maxBytes: number = DEFAULT_JSON_LIMIT): Promise<z.output<S>> {
  const buf = await readBody(req, maxBytes);
  let json: unknown;
  if (buf.length === 0) json = {};
  else {
    try {
      json = JSON.parse(buf.toString('utf8'));
    } catch (e) {
      throw new ApiError(400, 'invalid-json', `Request body is not valid JSON: ${(e as Error).message.slice(0, 200)}`);
    }
  }
  const r = schema.safeParse(json);
  if (!r.success) {
    const i = r.error.issues[0];
    const where = i && i.path.length ? ` at ${i.path.join('.')}` : '';
    throw new ApiError(400, 'invalid-body', `Invalid request body${where}: ${i?.message ?? 'validation failed'}`);
  }
  return r.data;
}

/** Throw 405 unless the request method is one of `allowed`. */
export function requireMethod(req: IncomingMessage, res: ServerResponse, ...allowed: string[]): void {
  if (!allowed.includes(req.method ?? '')) {
    res.setHeader('Allow', allowed.join(', '));
    throw new ApiError(405, 'method-not-allowed', `Method ${req.method ?? ''} not allowed here (allowed: ${allowed.join(', ')})`);
  }
}

/**
 * Parse a request's query string with `schema`: a repeated parameter, an unknown one (with a
 * strict schema) or a value the schema refuses is 400 `invalid-query` naming the parameter.
 */
export function parseQuery<S extends z.ZodType>(url: URL, schema: S): z.output<S> {
  // No prototype: a parameter named "__proto__" is an ordinary (and refused) key.
  const obj: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const [k, v] of url.searchParams) {
    if (Object.hasOwn(obj, k)) throw new ApiError(400, 'invalid-query', `Query parameter ${JSON.stringify(k.slice(0, 64))} given twice`);
    obj[k] = v;
  }
  const r = schema.safeParse(obj);
  if (!r.success) {
    const i = r.error.issues[0];
    const where = i && i.path.length ? ` ${i.path.join('.')}` : '';
    throw new ApiError(400, 'invalid-query', `Invalid query parameter${where}: ${i?.message ?? 'validation failed'}`);
  }
  return r.data;
}
