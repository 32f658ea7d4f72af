/**
 * Which proxy a request goes through, decided as OSTree's curl fetcher lets libcurl decide it:
 *   1. a host listed in `no_proxy` (or `NO_PROXY`) goes direct, whatever else is set, even the
 *      remote's own `proxy` key (OSTree sets CURLOPT_PROXY but not CURLOPT_NOPROXY, so libcurl
 *      still reads the variable);
 *   2. else the remote's `proxy` key, when it is not empty;
 *   3. else the environment: `http_proxy` for http:// URLs (lower case only: libcurl ignores
 *      `HTTP_PROXY`, which a CGI request can set), `https_proxy` or `HTTPS_PROXY` for https://,
 *      then `all_proxy` or `ALL_PROXY`.
 * A proxy written without a scheme (`host:3128`) is an HTTP proxy, as libcurl takes it.
 *
 * `no_proxy` is a list separated by commas or blanks: `*` alone matches every host; a name
 * matches itself and its subdomains (`example.com` and `.example.com` both match
 * `a.example.com`); an IP address matches only itself, or a CIDR range (`10.0.0.0/8`).
 */
import { BlockList, isIP } from 'node:net';
import { LarchError } from '@larch/core-store';

/** Proxy schemes the fetcher can speak (libcurl's socks4 and socks5h are not among them). */
const PROXY_SCHEMES = new Set(['http:', 'https:', 'socks5:']);

/** The environment variables consulted, lower-case first, per URL scheme. */
const ENV_NAMES: Record<string, string[]> = {
  'http:': ['http_proxy'],
  'https:': ['https_proxy', 'HTTPS_PROXY'],
};
const ALL_PROXY_NAMES = ['all_proxy', 'ALL_PROXY'];

/**
 * The proxy URL for `target`, or null to connect directly. `configured` is the remote's `proxy`
 * key; `env` the environment to read the variables from. Throws LarchError BAD_CONFIG for a
 * proxy that is not a URL or whose scheme is not http, https or socks5 (naming its source and
 * never its password).
 */
export function proxyForUrl(target: URL, configured: string | undefined, env: Record<string, string | undefined>): string | null {
  const noProxy = env['no_proxy'] ?? env['NO_PROXY'];
  if (noProxy !== undefined && noProxyMatches(target.hostname, noProxy)) return null;
  if (configured !== undefined && configured !== '') return normalizeProxy(configured, 'the remote\'s proxy key');
  for (const name of [...(ENV_NAMES[target.protocol] ?? []), ...ALL_PROXY_NAMES]) {
    const v = env[name];
    if (v !== undefined && v !== '') return normalizeProxy(v, name);
  }
  return null;
}

/** A proxy as written by the user, as a URL string with a scheme. */
function normalizeProxy(raw: string, source: string): string {
  const text = raw.trim();
  const withScheme = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(text) ? text : `http://${text}`;
  let u: URL;
  try {
    u = new URL(withScheme);
  } catch {
    throw new LarchError('BAD_CONFIG', `Invalid proxy ${redact(text)} in ${source}`, { source });
  }
  if (!PROXY_SCHEMES.has(u.protocol) || u.hostname === '') {
    throw new LarchError('BAD_CONFIG', `Unsupported proxy ${redact(text)} in ${source}: use http://, https:// or socks5://HOST:PORT`, { source });
  }
  return u.toString();
}

/** The proxy text with any password replaced, for messages. */
function redact(text: string): string {
  return text.replace(/^([^/]*\/\/[^:@/]*):[^@/]*@/, '$1:***@').replace(/[\x00-\x1f\x7f]/g, '?');
}

/** Whether `host` (a URL's hostname; IPv6 in brackets) is listed in the `no_proxy` value. */
export function noProxyMatches(host: string, list: string): boolean {
  const h = stripDot(host.replace(/^\[(.*)\]$/, '$1').toLowerCase());
  const entries = list
    .split(/[,\s]+/)
    .map((e) => e.trim().toLowerCase())
    .filter((e) => e.length > 0);
  if (entries.length === 1 && entries[0] === '*') return true;
  const family = isIP(h);
  for (const raw of entries) {
    const entry = stripDot(raw.replace(/^\[(.*)\]$/, '$1'));
    if (family !== 0) {
      if (entry === h) return true;
      const slash = entry.indexOf('/');
      if (slash > 0 && cidrContains(entry.slice(0, slash), entry.slice(slash + 1), h, family)) return true;
      continue;
    }
    const name = entry.startsWith('.') ? entry.slice(1) : entry;
    if (name.length === 0) continue;
    if (h === name || h.endsWith(`.${name}`)) return true;
  }
  return false;
}

function stripDot(s: string): string {
  return s.endsWith('.') ? s.slice(0, -1) : s;
}

function cidrContains(net: string, bits: string, ip: string, family: number): boolean {
  const netFamily = isIP(net);
  if (netFamily !== family || !/^\d+$/.test(bits)) return false;
  const prefix = Number(bits);
  const type = family === 4 ? 'ipv4' : 'ipv6';
  if (prefix > (family === 4 ? 32 : 128)) return false;
  const list = new BlockList();
  list.addSubnet(net, prefix, type);
  return list.check(ip, type);
}
