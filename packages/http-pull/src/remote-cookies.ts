/**
 * A remote's cookie jar, `REPO/NAME.cookies.txt`, as OSTree's fetcher uses it: when that path is
 * a regular file (links followed), every request to the remote carries the jar's cookies that
 * match the URL (OSTree hands the path to libcurl as CURLOPT_COOKIEFILE; `_ostree_repo_remote_new_fetcher`).
 * `ostree remote add-cookie` writes the jar (remote-cookies-edit.ts); this module only reads it.
 *
 * The format is Netscape's, one cookie a line, seven TAB-separated fields:
 *   DOMAIN  INCLUDE-SUBDOMAINS(TRUE|FALSE)  PATH  SECURE(TRUE|FALSE)  EXPIRES(unix s, 0 = session)  NAME  VALUE
 * Lines starting with `#` are comments, except that a `#HttpOnly_` prefix marks an HTTP-only
 * cookie (as curl writes it). A line that does not have these fields is skipped, as curl skips it.
 *
 * Matching follows curl: the host equals DOMAIN (case-insensitively), or ends with `.DOMAIN` when
 * subdomains are included (a leading `.` on DOMAIN means the same); the request path starts
 * with PATH at a `/` boundary; SECURE cookies go only over https; a cookie whose EXPIRES has
 * passed is not sent. Cookies with a longer PATH come first, as curl orders them.
 *
 * Hostile jars: a cookie whose name or value holds a control character or `;` is never sent
 * (it would split the header or smuggle another cookie into it); the jar is read up to
 * {@link MAX_COOKIE_JAR_SIZE}.
 */
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { LarchError, type Repo } from '@larch/core-store';
import type { FetchOptions, FetchResponse, Fetcher } from './fetcher.js';

/** One cookie of a jar. */
export interface JarCookie {
  /** Host name (lower case, without a leading `.`). */
  domain: string;
  /** The cookie is also sent to subdomains of `domain`. */
  includeSubdomains: boolean;
  path: string;
  /** Only sent over https. */
  secure: boolean;
  /** Unix seconds; 0 for a session cookie (never expires here). */
  expires: number;
  name: string;
  value: string;
  httpOnly: boolean;
}

/** The largest jar read (a jar is a few lines; this only bounds a runaway file). */
export const MAX_COOKIE_JAR_SIZE = 1024 * 1024;

/** `NAME.cookies.txt`, the jar file of remote NAME in the repo directory. */
export function cookieJarName(remote: string): string {
  return `${remote}.cookies.txt`;
}

const HTTPONLY_PREFIX = '#HttpOnly_';

/** Parse a Netscape cookie jar; lines without the seven fields are skipped. */
export function parseCookieJar(text: string): JarCookie[] {
  const out: JarCookie[] = [];
  for (let line of text.split('\n')) {
    line = line.replace(/\r$/, '');
    let httpOnly = false;
    if (line.startsWith(HTTPONLY_PREFIX)) {
      httpOnly = true;
      line = line.slice(HTTPONLY_PREFIX.length);
    } else if (line.startsWith('#') || line.trim() === '') continue;
    // curl reads a jar line as TAB-separated fields; a missing value is an empty one.
    const f = line.split('\t');
    if (f.length === 6) f.push('');
    if (f.length !== 7) continue;
    const [rawDomain, sub, path, secure, expires, name, value] = f as [string, string, string, string, string, string, string];
    if (rawDomain === '' || !/^\d+$/.test(expires) || name === '') continue;
    const dotted = rawDomain.startsWith('.');
    out.push({
      domain: (dotted ? rawDomain.slice(1) : rawDomain).toLowerCase(),
      includeSubdomains: dotted || sub.toUpperCase() === 'TRUE',
      path: path.startsWith('/') ? path : '/',
      secure: secure.toUpperCase() === 'TRUE',
      expires: Number(expires),
      name,
      value,
      httpOnly,
    });
  }
  return out;
}

/**
 * The cookies of remote `remote` of `repo` (a `Repo`, or its directory): none when
 * `NAME.cookies.txt` is not a regular file. Throws IO_ERROR when the jar exists but cannot be
 * read, LIMIT_EXCEEDED when it is larger than {@link MAX_COOKIE_JAR_SIZE}. Locking: none.
 */
export async function loadRemoteCookies(repo: Repo | string, remote: string): Promise<JarCookie[]> {
  const path = join(typeof repo === 'string' ? repo : repo.path, cookieJarName(remote));
  let fh: fsp.FileHandle;
  try {
    fh = await fsp.open(path, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return [];
    throw new LarchError('IO_ERROR', `Opening cookie jar ${path}: ${(e as Error).message}`, { path }, { cause: e });
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) return [];
    if (st.size > MAX_COOKIE_JAR_SIZE) {
      throw new LarchError('LIMIT_EXCEEDED', `Cookie jar ${path} is larger than ${MAX_COOKIE_JAR_SIZE} bytes`, { path, limit: MAX_COOKIE_JAR_SIZE, observed: st.size });
    }
    const buf = Buffer.alloc(MAX_COOKIE_JAR_SIZE + 1);
    let n = 0;
    for (;;) {
      const { bytesRead } = await fh.read(buf, n, buf.length - n, n);
      if (bytesRead === 0) break;
      n += bytesRead;
      if (n > MAX_COOKIE_JAR_SIZE) throw new LarchError('LIMIT_EXCEEDED', `Cookie jar ${path} is larger than ${MAX_COOKIE_JAR_SIZE} bytes`, { path, limit: MAX_COOKIE_JAR_SIZE });
    }
    return parseCookieJar(buf.subarray(0, n).toString('utf8'));
  } catch (e) {
    if (e instanceof LarchError) throw e;
    throw new LarchError('IO_ERROR', `Reading cookie jar ${path}: ${(e as Error).message}`, { path }, { cause: e });
  } finally {
    await fh.close();
  }
}

// eslint-disable-next-line no-control-regex
const UNSENDABLE = /[\x00-\x1f\x7f;]/;

function domainMatches(c: JarCookie, host: string): boolean {
  if (host === c.domain) return true;
  return c.includeSubdomains && host.endsWith(`.${c.domain}`);
}

function pathMatches(cookiePath: string, reqPath: string): boolean {
  if (!reqPath.startsWith(cookiePath)) return false;
  return reqPath.length === cookiePath.length || cookiePath.endsWith('/') || reqPath[cookiePath.length] === '/';
}

/**
 * The `Cookie` header for a request to `url` (`NAME=VALUE; NAME2=VALUE2`), or null when no
 * cookie matches. `nowSeconds` decides which cookies have expired.
 */
export function cookieHeader(cookies: readonly JarCookie[], url: string, nowSeconds: number = Date.now() / 1000): string | null {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return null;
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return null;
  const host = u.hostname.replace(/^\[|\]$/g, '').toLowerCase();
  const path = u.pathname === '' ? '/' : decodeURIComponentSafe(u.pathname);
  const matching = cookies
    .filter((c) => domainMatches(c, host) && pathMatches(c.path, path))
    .filter((c) => !c.secure || u.protocol === 'https:')
    .filter((c) => c.expires === 0 || c.expires > nowSeconds)
    .filter((c) => !UNSENDABLE.test(c.name) && !UNSENDABLE.test(c.value) && !c.name.includes('='))
    // Longest path first; equal paths keep the jar's order (sort is stable).
    .sort((a, b) => b.path.length - a.path.length);
  if (matching.length === 0) return null;
  return matching.map((c) => `${c.name}=${c.value}`).join('; ');
}

function decodeURIComponentSafe(p: string): string {
  try {
    return decodeURIComponent(p);
  } catch {
    return p;
  }
}

/**
 * A {@link Fetcher} that adds the matching cookies of `cookies` to every request `inner` makes
 * (a `cookie` header given by the caller wins). Closing it closes `inner`.
 */
export class CookieJarFetcher implements Fetcher {
  constructor(
    private readonly inner: Fetcher,
    private readonly cookies: readonly JarCookie[],
    private readonly now: () => number = () => Date.now() / 1000,
  ) {}

  get(url: string, opts: FetchOptions): Promise<FetchResponse> {
    const header = cookieHeader(this.cookies, url, this.now());
    if (header === null || opts.headers?.cookie !== undefined) return this.inner.get(url, opts);
    return this.inner.get(url, { ...opts, headers: { ...(opts.headers ?? {}), cookie: header } });
  }

  async close(): Promise<void> {
    await this.inner.close?.();
  }
}

/**
 * `fetcher` with the cookie jar of remote `remote` of `repo` (a `Repo`, or its directory)
 * applied, or `fetcher` itself when the remote has no jar (see {@link loadRemoteCookies} for errors).
 */
export async function withRemoteCookies(fetcher: Fetcher, repo: Repo | string, remote: string): Promise<Fetcher> {
  const cookies = await loadRemoteCookies(repo, remote);
  return cookies.length === 0 ? fetcher : new CookieJarFetcher(fetcher, cookies);
}
