/**
 * Serve one repository file: open it safely, then answer with HTTP/1.1 semantics that caches
 * and resuming clients rely on (validators, conditional requests, single byte ranges).
 *
 * Opening. The request path has already passed the allow-list (request-path.ts). The file is
 * resolved with realpath(3), which follows every symlink; the result must lie inside the
 * repository's own real path *and* still name an allowed repository file (a ref alias may point
 * at another ref, never at `tmp/` or `config` of something else). Only then is it opened, with
 * O_NOFOLLOW (the resolved path has no symlinks left, so a symlink swapped in afterwards fails
 * with ELOOP) and O_NONBLOCK (a FIFO in the repository cannot stall a worker). Node has no
 * openat2(RESOLVE_BENEATH), so this is check-then-open: it defends against hostile repository
 * content, not against a local user racing renames inside the repository's directories.
 * Nothing outside the repository is ever opened: realpath only lstat()s and readlink()s.
 *
 * Body. Files up to SMALL_FILE_MAX are read into one buffer and sent with a single write (most
 * objects are small); larger files are sent STREAM_CHUNK at a time, waiting for the socket to
 * drain, so memory per request is bounded by one chunk whatever the file size or client speed.
 * Chunks come from a ChunkPool and go back once the socket has taken them: allocating a fresh
 * chunk per write made the garbage collector the main cost of serving large objects (measured
 * 3× the CPU per large object). Small immutable objects are kept in a byte-bounded ObjectCache,
 * revalidated by lstat().
 *
 * Synchronous syscalls. realpath, open, fstat, close and the reads are synchronous, as in nginx's
 * worker: on a local filesystem with the repository in the page cache each costs microseconds,
 * far less than a libuv thread-pool round trip (measured: 1.2–1.5× the requests/s of the
 * promise API here). On a slow or network filesystem a read blocks the event loop for its
 * duration; serve such repositories from local disk.
 *
 * Validators. The strong ETag is inode + size + mtime (ns), like most static servers; object
 * names are not used because an archive `.filez` of the same checksum may be recompressed to
 * different bytes.
 */
import { closeSync, constants as C, fstatSync, lstatSync, openSync, readSync, realpathSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { classifyRepoPath, type RepoFileKind } from './request-path.js';

/** Files up to this size are sent from one buffer; larger ones are streamed. */
export const SMALL_FILE_MAX = 64 * 1024;
/** Read-stream chunk size for larger files. */
export const STREAM_CHUNK = 256 * 1024;

/** `Cache-Control` for content-addressed files (objects, static delta parts). */
export const CACHE_IMMUTABLE = 'public, max-age=31536000, immutable';
/** `Cache-Control` for files that change in place (refs, summary, config, commitmeta, indexes). */
export const CACHE_REVALIDATE = 'no-cache';

/** Header values for one kind of repository file. */
export function fileHeadersFor(kind: RepoFileKind): { contentType: string; cacheControl: string } {
  switch (kind) {
    case 'object':
    case 'delta':
      return { contentType: 'application/octet-stream', cacheControl: CACHE_IMMUTABLE };
    case 'config':
    case 'ref':
      return { contentType: 'text/plain; charset=utf-8', cacheControl: CACHE_REVALIDATE };
    default:
      // commitmeta is named after its commit but not content-addressed: signatures may be added.
      return { contentType: 'application/octet-stream', cacheControl: CACHE_REVALIDATE };
  }
}

/** What happened, for the access log. */
export interface ServeOutcome {
  /** Body bytes written (0 for HEAD, 304 and errors). */
  bytes: number;
  /** Why a request was refused, when it was. */
  reason?: string;
}

/** Send a short plain-text error. Never an HTML page: OSTree clients would try to parse it. */
export function sendStatus(res: ServerResponse, status: number, headers: Record<string, string> = {}): ServeOutcome {
  const body = `${status} ${STATUS_TEXT[status] ?? 'Error'}\n`;
  if (res.headersSent) {
    res.destroy();
    return { bytes: 0 };
  }
  res.writeHead(status, {
    'Content-Type': 'text/plain; charset=utf-8',
    'Content-Length': Buffer.byteLength(body),
    'Cache-Control': 'no-store',
    ...headers,
  });
  const head = res.req.method === 'HEAD';
  res.end(head ? undefined : body);
  return { bytes: head ? 0 : Buffer.byteLength(body) };
}

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  416: 'Range Not Satisfiable',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

/** Resolve `segments` under `root` to a real path still inside it, or say why not. */
function resolveInside(root: string, segments: readonly string[]): { path: string; kind: RepoFileKind } | { status: number; reason: string } {
  const joined = `${root}/${segments.join('/')}`;
  let real: string;
  try {
    real = realpathSync.native(joined);
  } catch (e) {
    return errnoStatus(e);
  }
  if (!real.startsWith(`${root}/`)) return { status: 404, reason: 'resolves outside the repository' };
  const kind = classifyRepoPath(real.slice(root.length + 1).split('/'));
  if (kind === null) return { status: 404, reason: 'resolves to a file the repository does not publish' };
  return { path: real, kind };
}

function errnoStatus(e: unknown): { status: number; reason: string } {
  const code = (e as NodeJS.ErrnoException).code;
  switch (code) {
    case 'ENOENT':
    case 'ENOTDIR':
    case 'ELOOP':
    case 'ENAMETOOLONG':
    case 'ENXIO':
      return { status: 404, reason: code.toLowerCase() };
    case 'EACCES':
    case 'EPERM':
      return { status: 403, reason: code.toLowerCase() };
    default:
      return { status: 500, reason: `${code ?? 'error'}: ${(e as Error).message}` };
  }
}

function etagOf(st: FileIdentity): string {
  return `"${st.ino.toString(16)}-${st.size.toString(16)}-${st.mtimeNs.toString(16)}"`;
}

/** If-None-Match uses the weak comparison (RFC 9110 §13.1.2). */
function etagListMatches(header: string, etag: string): boolean {
  const bare = etag;
  for (let item of header.split(',')) {
    item = item.trim();
    if (item === '*') return true;
    if (item.startsWith('W/')) item = item.slice(2);
    if (item === bare) return true;
  }
  return false;
}

type RangeSpec = { start: number; end: number } | 'unsatisfiable' | null;

/**
 * Parse a `Range` header for a file of `size` bytes. Only one `bytes=` range is honoured;
 * anything else (several ranges, other units, syntax errors) is ignored, which RFC 9110 allows,
 * and the whole file is sent.
 */
export function parseRange(header: string | undefined, size: number): RangeSpec {
  if (header === undefined) return null;
  const m = /^bytes=\s*(\d*)\s*-\s*(\d*)\s*$/.exec(header);
  if (!m) return null;
  const [, a, b] = m;
  if (a === '' && b === '') return null;
  let start: number;
  let end: number;
  if (a === '') {
    const suffix = Number(b);
    if (suffix === 0) return 'unsatisfiable';
    start = Math.max(0, size - suffix);
    end = size - 1;
  } else {
    start = Number(a);
    end = b === '' ? size - 1 : Math.min(Number(b), size - 1);
    if (b !== '' && Number(b) < start) return null; // invalid range-spec: ignore the header
  }
  if (!Number.isSafeInteger(start) || start >= size || end < start) return 'unsatisfiable';
  return { start, end };
}

interface FileIdentity {
  ino: bigint;
  size: bigint;
  mtimeNs: bigint;
}

/**
 * A byte-bounded LRU of small immutable objects (`objects/…` except `.commitmeta`), keyed by
 * their path. An entry is served only after an lstat() of the same path shows the same inode,
 * size and mtime: the entry was made from a path that resolved to itself (no symlinks), so a
 * match means the very file that was checked then, and a replaced or pruned file is noticed at
 * once. One lstat replaces realpath + open + fstat + read + close on a hit.
 * Not safe to share between processes; one per server.
 */
export class ObjectCache {
  private readonly entries = new Map<string, { id: FileIdentity; bytes: Buffer }>();
  private used = 0;

  /** @param maxBytes total bytes of file content kept (0 disables the cache). */
  constructor(readonly maxBytes: number) {}

  /** The cached bytes of `path` if the file there is still the one cached. */
  lookup(path: string): { id: FileIdentity; bytes: Buffer } | undefined {
    const e = this.entries.get(path);
    if (e === undefined) return undefined;
    const st = lstatSync(path, { bigint: true, throwIfNoEntry: false });
    if (st === undefined || !st.isFile() || st.ino !== e.id.ino || st.size !== e.id.size || st.mtimeNs !== e.id.mtimeNs) {
      this.entries.delete(path);
      this.used -= e.bytes.length;
      return undefined;
    }
    // Move to the most recently used end.
    this.entries.delete(path);
    this.entries.set(path, e);
    return e;
  }

  /** Remember `bytes` as the content of `path` (identity `id`), evicting the least recently used. */
  store(path: string, id: FileIdentity, bytes: Buffer): void {
    if (bytes.length > this.maxBytes / 8) return;
    const old = this.entries.get(path);
    if (old) {
      this.entries.delete(path);
      this.used -= old.bytes.length;
    }
    this.entries.set(path, { id, bytes });
    this.used += bytes.length;
    for (const [k, v] of this.entries) {
      if (this.used <= this.maxBytes) break;
      this.entries.delete(k);
      this.used -= v.bytes.length;
    }
  }

  /** Bytes currently held. */
  get size(): number {
    return this.used;
  }
}

/** Default size of the object cache. */
export const DEFAULT_OBJECT_CACHE_BYTES = 32 * 1024 * 1024;

/** Headers and body range of a response, or the outcome when the response is already sent. */
type Plan = { status: number; start: number; length: number; headers: Record<string, string | number> } | ServeOutcome;

/** Conditional requests, ranges and headers: everything decided from metadata alone. */
function plan(req: IncomingMessage, res: ServerResponse, id: FileIdentity, kind: RepoFileKind): Plan {
  const size = Number(id.size);
  const etag = etagOf(id);
  const mtimeSec = Number(id.mtimeNs / 1_000_000_000n);
  const { contentType, cacheControl } = fileHeadersFor(kind);
  const lastModified = new Date(mtimeSec * 1000).toUTCString();

  const inm = req.headers['if-none-match'];
  const ims = req.headers['if-modified-since'];
  let notModified = false;
  if (inm !== undefined) notModified = etagListMatches(inm, etag);
  else if (ims !== undefined) {
    const t = Date.parse(ims);
    if (!Number.isNaN(t) && mtimeSec <= Math.floor(t / 1000)) notModified = true;
  }
  if (notModified) {
    res.writeHead(304, { 'Cache-Control': cacheControl, ETag: etag, 'Last-Modified': lastModified });
    res.end();
    return { bytes: 0 };
  }

  const headers: Record<string, string | number> = {
    'Content-Type': contentType,
    'Cache-Control': cacheControl,
    ETag: etag,
    'Last-Modified': lastModified,
    'Accept-Ranges': 'bytes',
  };
  let start = 0;
  let end = size - 1;
  let status = 200;
  if (req.method === 'GET' && req.headers.range !== undefined && ifRangeHolds(headerString(req.headers['if-range']), etag, mtimeSec)) {
    const r = parseRange(req.headers.range, size);
    if (r === 'unsatisfiable') {
      return sendStatus(res, 416, { 'Content-Range': `bytes */${size}`, ETag: etag, 'Accept-Ranges': 'bytes' });
    }
    if (r !== null) {
      start = r.start;
      end = r.end;
      status = 206;
      headers['Content-Range'] = `bytes ${start}-${end}/${size}`;
    }
  }
  const length = size === 0 ? 0 : end - start + 1;
  headers['Content-Length'] = length;
  if (req.method === 'HEAD' || length === 0) {
    res.writeHead(status, headers);
    res.end();
    return { bytes: 0 };
  }
  return { status, start, length, headers };
}

/**
 * Answer a GET or HEAD for the repository file `segments` under the real path `root`.
 * Read-only; takes no repository lock (published files are replaced by rename, so a reader sees
 * the old or the new file, never a mix). Safe to run concurrently without limit. Metadata
 * syscalls and reads of small files are synchronous (see the file comment); the result is a
 * promise only when a large body is still being sent.
 */
/** Per-server state used while serving. */
export interface ServeContext {
  /** Small immutable objects kept in memory. */
  cache?: ObjectCache;
  /** Buffers for large bodies. */
  chunks?: ChunkPool;
}

export function serveRepoFile(
  req: IncomingMessage,
  res: ServerResponse,
  root: string,
  segments: readonly string[],
  ctx: ServeContext = {},
): ServeOutcome | Promise<ServeOutcome> {
  const cache = ctx.cache;
  const joined = `${root}/${segments.join('/')}`;
  const cacheable = cache !== undefined && cache.maxBytes > 0 && classifyRepoPath(segments) === 'object';
  if (cacheable) {
    const hit = cache.lookup(joined);
    if (hit) {
      const p = plan(req, res, hit.id, 'object');
      if ('bytes' in p) return p;
      res.writeHead(p.status, p.headers);
      res.end(p.length === hit.bytes.length ? hit.bytes : hit.bytes.subarray(p.start, p.start + p.length));
      return { bytes: p.length };
    }
  }

  const resolved = resolveInside(root, segments);
  if ('status' in resolved) return { ...sendStatus(res, resolved.status), reason: resolved.reason };

  let fd: number;
  try {
    fd = openSync(resolved.path, C.O_RDONLY | C.O_NOFOLLOW | C.O_NONBLOCK);
  } catch (e) {
    const s = errnoStatus(e);
    return { ...sendStatus(res, s.status), reason: s.reason };
  }
  let handedOff = false;
  try {
    const st = fstatSync(fd, { bigint: true });
    if (!st.isFile()) return { ...sendStatus(res, 404), reason: 'not a regular file' };
    const id: FileIdentity = { ino: st.ino, size: st.size, mtimeNs: st.mtimeNs };
    const p = plan(req, res, id, resolved.kind);
    if ('bytes' in p) return p;
    const size = Number(st.size);

    if (p.length <= SMALL_FILE_MAX) {
      // Read the whole file when it is small and cacheable, so later ranges hit the cache too.
      const whole = cacheable && resolved.path === joined && size <= SMALL_FILE_MAX;
      const from = whole ? 0 : p.start;
      const want = whole ? size : p.length;
      const buf = Buffer.allocUnsafe(want);
      let off = 0;
      while (off < want) {
        const n = readSync(fd, buf, off, want - off, from + off);
        if (n === 0) break;
        off += n;
      }
      if (off < want) {
        // The file shrank after fstat: the promised Content-Length cannot be honoured.
        return { ...sendStatus(res, 500), reason: 'file shrank while being read' };
      }
      if (whole) cache!.store(joined, id, buf);
      res.writeHead(p.status, p.headers);
      res.end(whole && p.length !== size ? buf.subarray(p.start, p.start + p.length) : buf);
      return { bytes: p.length };
    }

    res.writeHead(p.status, p.headers);
    handedOff = true;
    return pump(fd, res, p.start, p.length, ctx.chunks ?? new ChunkPool(0));
  } catch (e) {
    const s = errnoStatus(e);
    return { ...sendStatus(res, s.status), reason: s.reason };
  } finally {
    if (!handedOff) closeSync(fd);
  }
}

/**
 * Reusable STREAM_CHUNK buffers for large bodies. A chunk goes back to the pool when the socket
 * has taken it (the write callback), so steady streaming allocates nothing and the garbage
 * collector does not chase hundreds of megabytes of short-lived external memory. At most
 * `maxKept` chunks are kept; the pool never limits how many are in use.
 */
export class ChunkPool {
  private readonly free: Buffer[] = [];

  constructor(readonly maxKept = 64) {}

  take(): Buffer {
    return this.free.pop() ?? Buffer.allocUnsafe(STREAM_CHUNK);
  }

  give(b: Buffer): void {
    if (this.free.length < this.maxKept) this.free.push(b);
  }
}

/**
 * Send `length` bytes of `fd` from `start`, one STREAM_CHUNK at a time, waiting for 'drain'
 * whenever the socket's buffer is full. Reads are synchronous: from the page cache they cost
 * less than a thread-pool round trip, and a slow client only ever holds one chunk. Closes `fd`.
 */
async function pump(fd: number, res: ServerResponse, start: number, length: number, pool: ChunkPool): Promise<ServeOutcome> {
  let sent = 0;
  try {
    while (sent < length) {
      if (res.destroyed) return { bytes: sent, reason: 'response aborted' };
      const want = Math.min(STREAM_CHUNK, length - sent);
      const buf = pool.take();
      let got = 0;
      while (got < want) {
        const n = readSync(fd, buf, got, want - got, start + sent + got);
        if (n === 0) break;
        got += n;
      }
      if (got < want) {
        // The file shrank after fstat: the promised Content-Length cannot be honoured.
        pool.give(buf);
        res.destroy();
        return { bytes: sent + got, reason: 'file shrank while being sent' };
      }
      sent += got;
      const chunk = got === buf.length ? buf : buf.subarray(0, got);
      if (sent === length) {
        await new Promise<void>((resolve) =>
          res.end(chunk, () => {
            pool.give(buf);
            resolve();
          }),
        );
      } else if (!res.write(chunk, (err) => err || pool.give(buf))) {
        await new Promise<void>((resolve) => {
          const done = (): void => {
            res.off('drain', done);
            res.off('close', done);
            resolve();
          };
          res.on('drain', done);
          res.on('close', done);
        });
      }
    }
    return { bytes: sent };
  } catch (e) {
    res.destroy();
    return { bytes: sent, reason: (e as Error).message };
  } finally {
    closeSync(fd);
  }
}

/** `If-Range`: the range applies only while the client's validator is current (strong match). */
function ifRangeHolds(header: string | undefined, etag: string, mtimeSec: number): boolean {
  if (header === undefined) return true;
  const h = header.trim();
  if (h.startsWith('"')) return h === etag;
  if (h.startsWith('W/')) return false;
  const t = Date.parse(h);
  return !Number.isNaN(t) && Math.floor(t / 1000) === mtimeSec;
}

function headerString(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v.join(', ') : v;
}
