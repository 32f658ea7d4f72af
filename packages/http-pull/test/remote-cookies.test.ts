/**
 * A remote's cookie jar (`REPO/NAME.cookies.txt`) as the fetcher reads it: the jar `ostree remote
 * add-cookie` writes is parsed, cookies are matched to request URLs as curl matches them, and a
 * fetcher wrapped with the jar gets past a server that requires the cookies (OSTree's own
 * `ostree-trivial-httpd --expected-cookies`, the server of its test-remote-cookies.sh). Hostile
 * jars: cookies that would split the header are never sent, an oversized jar is refused.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, promises as fsp } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { interopDescribe, ostreeOk, requireOstree, tmpDir, type TmpDir } from '@larch/test-fixtures';
import { UndiciFetcher } from '../src/index.js';
import { CookieJarFetcher, MAX_COOKIE_JAR_SIZE, cookieHeader, loadRemoteCookies, parseCookieJar, withRemoteCookies, type JarCookie } from '../src/remote-cookies.js';

const describeInterop = interopDescribe(describe);
const TRIVIAL_HTTPD = '/usr/libexec/libostree/ostree-trivial-httpd';

let tmp: TmpDir;
beforeAll(async () => {
  tmp = await tmpDir('larch-remote-cookies-');
});
afterAll(async () => {
  await tmp?.cleanup();
});

const cookie = (over: Partial<JarCookie>): JarCookie => ({
  domain: 'example.com',
  includeSubdomains: false,
  path: '/',
  secure: false,
  expires: 0,
  name: 'n',
  value: 'v',
  httpOnly: false,
  ...over,
});

describe('cookie jar', () => {
  it('parses Netscape lines, #HttpOnly_ included, and skips comments and short lines', () => {
    const jar = parseCookieJar(
      '# Netscape HTTP Cookie File\n' +
        '127.0.0.1\tFALSE\t/\tFALSE\t2585593030\tfoo\tbar\n' +
        '.example.com\tTRUE\t/p\tTRUE\t0\tn\tv=1\r\n' +
        '#HttpOnly_h.example\tFALSE\t/\tFALSE\t0\tsid\t\n' +
        'broken\tline\n',
    );
    expect(jar).toEqual([
      cookie({ domain: '127.0.0.1', expires: 2585593030, name: 'foo', value: 'bar' }),
      cookie({ domain: 'example.com', includeSubdomains: true, path: '/p', secure: true, value: 'v=1' }),
      cookie({ domain: 'h.example', name: 'sid', value: '', httpOnly: true }),
    ]);
  });

  it('matches host, subdomains, path boundary, scheme and expiry as curl does, longest path first', () => {
    const jar = [
      cookie({ domain: 'example.com', name: 'exact', value: '1' }),
      cookie({ domain: 'example.com', includeSubdomains: true, name: 'sub', value: '2' }),
      cookie({ domain: 'example.com', path: '/repo', name: 'deep', value: '3' }),
      cookie({ domain: 'example.com', secure: true, name: 'tls', value: '4' }),
      cookie({ domain: 'example.com', expires: 1000, name: 'old', value: '5' }),
    ];
    const now = 2000;
    expect(cookieHeader(jar, 'http://example.com/repo/summary', now)).toBe('deep=3; exact=1; sub=2');
    expect(cookieHeader(jar, 'https://EXAMPLE.com/repository', now)).toBe('exact=1; sub=2; tls=4');
    expect(cookieHeader(jar, 'http://a.example.com/repo', now)).toBe('sub=2');
    expect(cookieHeader(jar, 'http://badexample.com/', now)).toBeNull();
    expect(cookieHeader(jar, 'file:///repo', now)).toBeNull();
    expect(cookieHeader(jar, 'http://example.com/', 500)).toBe('exact=1; sub=2; old=5');
  });

  it('never sends a cookie whose name or value would split the header', () => {
    const jar = parseCookieJar('h\tFALSE\t/\tFALSE\t0\tok\t1\nh\tFALSE\t/\tFALSE\t0\tsmuggle\ta; admin=1\nh\tFALSE\t/\tFALSE\t0\tcr\tx\ry\n');
    expect(cookieHeader(jar, 'http://h/')).toBe('ok=1');
  });

  it('reads no jar when NAME.cookies.txt is absent or not a regular file, and refuses an oversized one', async () => {
    const repo = tmp.join('jars');
    await fsp.mkdir(`${repo}/dir.cookies.txt`, { recursive: true });
    expect(await loadRemoteCookies(repo, 'none')).toEqual([]);
    expect(await loadRemoteCookies(repo, 'dir')).toEqual([]);
    await fsp.writeFile(`${repo}/big.cookies.txt`, Buffer.alloc(MAX_COOKIE_JAR_SIZE + 1, 0x41));
    await expect(loadRemoteCookies(repo, 'big')).rejects.toMatchObject({ code: 'LIMIT_EXCEEDED' });
  });
});

describeInterop('cookies against ostree (interop)', () => {
  let httpd: ChildProcess | null = null;
  let base = '';

  beforeAll(async () => {
    requireOstree();
    if (!existsSync(TRIVIAL_HTTPD)) throw new Error(`${TRIVIAL_HTTPD} is required (apt-get install ostree-tests)`);
    const root = tmp.join('srv');
    await fsp.mkdir(root, { recursive: true });
    await fsp.writeFile(`${root}/hello`, 'hello\n');
    const portFile = tmp.join('port');
    httpd = spawn(TRIVIAL_HTTPD, ['--expected-cookies', 'foo=bar', '--expected-cookies', 'baz=badger', '-p', portFile, root], { stdio: 'ignore' });
    // The server writes its port once it listens; wait for that (no fixed sleep).
    for (;;) {
      const port = await fsp.readFile(portFile, 'utf8').catch(() => '');
      if (/^\d+\n?$/.test(port) && port.trim() !== '') {
        base = `http://127.0.0.1:${port.trim()}`;
        break;
      }
      if (httpd.exitCode !== null) throw new Error('ostree-trivial-httpd exited');
      await new Promise((r) => setTimeout(r, 20));
    }
  });
  afterAll(() => {
    httpd?.kill();
  });

  async function status(f: { get: UndiciFetcher['get'] }): Promise<number> {
    const res = await f.get(`${base}/hello`, { maxBytes: 1024, signal: AbortSignal.timeout(60_000) });
    await res.dump();
    return res.status;
  }

  it('sends the cookies ostree remote add-cookie stored, so the server accepts the requests', async () => {
    const repo = tmp.join('repo');
    await ostreeOk(['init', `--repo=${repo}`, '--mode=archive']);
    await ostreeOk(['remote', 'add', `--repo=${repo}`, '--no-gpg-verify', 'origin', `${base}/`]);
    const plain = new UndiciFetcher();
    try {
      expect(await status(plain)).toBe(403);
      await ostreeOk(['remote', 'add-cookie', `--repo=${repo}`, 'origin', '127.0.0.1', '/', 'foo', 'bar']);
      expect(await status(await withRemoteCookies(plain, repo, 'origin'))).toBe(403);
      await ostreeOk(['remote', 'add-cookie', `--repo=${repo}`, 'origin', '127.0.0.1', '/', 'baz', 'badger']);
      const withJar = await withRemoteCookies(plain, repo, 'origin');
      expect(withJar).toBeInstanceOf(CookieJarFetcher);
      expect(await status(withJar)).toBe(200);
    } finally {
      await plain.close();
    }
  });
});
