/**
 * `larch remote refs NAME` and `larch remote summary [--raw] NAME`: a remote's refs and summary,
 * fetched over HTTP (or file://) as `ostree remote refs|summary` fetch them
 * (`ostree_repo_remote_fetch_summary`): `summary.sig`, then `summary`, either may be absent (404);
 * when the remote requires it (`gpg-verify-summary`, `sign-verify-summary`) the summary is
 * verified before anything is printed, with OSTree's errors for a missing summary or signature.
 *
 *   remote refs NAME        one `NAME:REF` line per ref of the summary's main list, in byte order
 *   remote summary NAME     the summary as `summary --view` prints it, then, when the remote
 *                           verifies summaries with GPG, `GPG: Verification enabled, found N
 *                           signature(s):` and each signature as `ostree show` describes it
 *
 * Transient failures (network errors, HTTP 408 and 5xx) are retried up to 5 times, OSTree's
 * default `n-network-retries`; every body is bounded by the pull's metadata limit. The pair goes
 * through the summary cache (`tmp/cache/summaries/NAME`, or `--cache-dir`; @larch/http-pull's
 * summary-cache.ts), as in OSTree, and requests carry the remote's cookie jar
 * (`remote add-cookie`). Unlike OSTree, metalink= remotes are refused.
 */
import { stat } from 'node:fs/promises';
import {
  ConditionalFetcher,
  DEFAULT_PULL_LIMITS,
  DefaultFetcher,
  fetchSummaryWithCache,
  getRemote,
  joinUrl,
  listRemotes,
  pruneSummaryCache,
  remoteTransport,
  remoteUrl,
  summaryCacheRoot,
  TransportError,
  verificationPolicy,
  withRemoteCookies,
  type Fetcher,
  type RemoteConfig,
} from '@larch/http-pull';
import { LarchError, readSummary, type Repo } from '@larch/core-store';
import { CommandError } from '../context.js';
import { summaryBytesText } from '../summary-dump.js';

/** OSTree's default number of retries of a transient failure (`n-network-retries`). */
const NETWORK_RETRIES = 5;

/** What `ostree_repo_remote_fetch_summary` returns: either file may be null (the server has none). */
export interface FetchedSummary {
  config: RemoteConfig;
  summary: Uint8Array | null;
  signatures: Uint8Array | null;
}

function sanitize(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\x00-\x1f\x7f]/g, '?').slice(0, 2048);
}

/** libcurl's code and text for the transport failures users meet most (what ostree prints). */
const CURL_ERRORS: Record<string, string> = {
  ECONNREFUSED: '[7] Couldn\'t connect to server',
  EHOSTUNREACH: '[7] Couldn\'t connect to server',
  ENETUNREACH: '[7] Couldn\'t connect to server',
  ENOTFOUND: '[6] Couldn\'t resolve host name',
  EAI_AGAIN: '[6] Couldn\'t resolve host name',
  ETIMEDOUT: '[28] Timeout was reached',
  UND_ERR_CONNECT_TIMEOUT: '[28] Timeout was reached',
  UND_ERR_HEADERS_TIMEOUT: '[28] Timeout was reached',
  UND_ERR_BODY_TIMEOUT: '[28] Timeout was reached',
};

/** `While fetching URL: [N] TEXT`, as ostree's curl fetcher words a transport failure. */
function transportMessage(url: string, e: Error): string {
  let code: string | undefined;
  for (let c: unknown = e; c instanceof Error && code === undefined; c = c.cause) {
    const k = (c as NodeJS.ErrnoException).code;
    if (k !== undefined && Object.hasOwn(CURL_ERRORS, k)) code = k;
  }
  return `While fetching ${sanitize(url)}: ${code !== undefined ? CURL_ERRORS[code] : sanitize(e.message)}`;
}

/** GET one repo file fully; null on 404. Retries transient failures. */
async function fetchFile(fetcher: Fetcher, base: string, rel: string, maxBytes: number): Promise<Uint8Array | null> {
  const url = joinUrl(base, rel);
  for (let attempt = 0; ; attempt++) {
    const ac = new AbortController();
    try {
      const res = await fetcher.get(url, { maxBytes, signal: ac.signal });
      if (res.status === 404) {
        await res.dump();
        return null;
      }
      if (res.status !== 200) {
        await res.dump();
        throw new LarchError('IO_ERROR', `Server returned HTTP ${res.status}`, { url, status: res.status, reason: 'http-status' });
      }
      const parts: Buffer[] = [];
      let n = 0;
      try {
        for await (const chunk of res.body) {
          n += chunk.length;
          if (n > maxBytes) {
            throw new LarchError('LIMIT_EXCEEDED', `While fetching ${sanitize(url)}: more than ${maxBytes} bytes`, { url, limit: maxBytes });
          }
          parts.push(Buffer.from(chunk));
        }
      } finally {
        await res.dump();
      }
      return new Uint8Array(Buffer.concat(parts, n));
    } catch (e) {
      ac.abort();
      const transient =
        e instanceof TransportError || (e instanceof LarchError && e.data.reason === 'http-status' && (e.data.status === 408 || (e.data.status as number) >= 500));
      if (transient && attempt < NETWORK_RETRIES) continue;
      if (e instanceof TransportError) throw new LarchError('IO_ERROR', transportMessage(url, e), { url, reason: 'network' }, { cause: e });
      throw e;
    }
  }
}

/**
 * Fetch (and, when the remote requires it, verify) a remote's summary and summary.sig. Throws
 * as `ostree remote summary` fails: `Remote "NAME" not found`, `No "url" option in remote
 * "NAME"`, a fetch failure, or a verification error. Locking: none.
 */
export async function fetchRemoteSummary(repo: Repo, name: string, opts: { cacheDir?: string } = {}): Promise<FetchedSummary> {
  if (opts.cacheDir !== undefined) await checkCacheDir(opts.cacheDir);
  // The URL first, unchecked (`No "url" option in remote "NAME"`), then the fetchable view.
  try {
    remoteUrl(repo, name);
  } catch (e) {
    const metalink = getRemote(repo, name, undefined, { fetchable: false }).options.metalink;
    if (metalink !== undefined) throw new CommandError(`Remote "${name}" is a metalink remote (metalink=${metalink}), which larch does not fetch from`);
    throw e;
  }
  const config = getRemote(repo, name);
  const policy = verificationPolicy(config);
  // The remote's proxy and TLS keys apply here as to a pull.
  const fetcher = await withRemoteCookies(new DefaultFetcher({ transport: remoteTransport(config) }), repo, name);
  let summary: Uint8Array | null;
  let signatures: Uint8Array | null;
  try {
    const max = DEFAULT_PULL_LIMITS.maxMetadataSize;
    const conditional = new ConditionalFetcher(fetcher);
    ({ summary, signatures } = await fetchSummaryWithCache({
      repo,
      remote: name,
      cacheRoot: summaryCacheRoot(repo, opts.cacheDir),
      wantSignatures: true,
      retryStaleCache: false,
      ...(policy.summary.length > 0
        ? {
            verify: async (s: Uint8Array, g: Uint8Array) => {
              const { signatureVerifier } = await import('./pull.js');
              await signatureVerifier(repo.path).verifySummary(s, g, { remote: name, config, required: policy.summary });
            },
          }
        : {}),
      fetch: async (file, ifModifiedSince) => {
        conditional.ifModifiedSince = ifModifiedSince;
        const bytes = await fetchFile(conditional, config.url, file, max);
        return { bytes, notModified: conditional.notModified, lastModified: conditional.lastModified };
      },
    }));
  } finally {
    await fetcher.close?.();
  }
  if (policy.summary.includes('gpg-verify-summary')) {
    if (summary === null) throw new CommandError('GPG verification enabled, but no summary found (check that the configured URL in remote config is correct)');
    if (signatures === null) throw new CommandError('GPG verification enabled, but no summary signatures found (use gpg-verify-summary=false in remote config to disable)');
  }
  if (policy.summary.includes('sign-verify-summary')) {
    if (summary === null) throw new CommandError('Signature verification enabled, but no summary found (check that the configured URL in remote config is correct)');
    if (signatures === null) throw new CommandError('Signature verification enabled, but no summary signatures found (use sign-verify-summary=false in remote config to disable)');
  }
  // A pair with both files was verified on its way through the cache.
  if (policy.summary.length > 0 && summary !== null && signatures === null) {
    const { signatureVerifier } = await import('./pull.js');
    await signatureVerifier(repo.path).verifySummary(summary, signatures, { remote: name, config, required: policy.summary });
  }
  return { config, summary, signatures };
}

/** `--cache-dir=DIR` must name a directory, as ostree opens it (`opendir(DIR): …`). */
export async function checkCacheDir(dir: string): Promise<void> {
  const st = await stat(dir).catch(() => null);
  if (st === null || !st.isDirectory()) throw new CommandError(`opendir(${dir}): ${st === null ? 'No such file or directory' : 'Not a directory'}`);
}

/** Remove the cached summaries of remotes the repo no longer has (what `ostree prune` does). */
export async function pruneSummaryCacheOf(repo: Repo): Promise<void> {
  await pruneSummaryCache(summaryCacheRoot(repo), listRemotes(repo).map((r) => r.name));
}

/** The text of `remote refs NAME`: `NAME:REF` per ref of the summary, sorted by bytes. */
export async function remoteRefsText(repo: Repo, name: string, opts: { cacheDir?: string } = {}): Promise<string> {
  const { summary } = await fetchRemoteSummary(repo, name, opts);
  if (summary === null) throw new CommandError('Remote refs not available; server has no summary file');
  const refs = readSummary(summary).refs.map((r) => r.name);
  refs.sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  return refs.map((r) => `${name}:${r}\n`).join('');
}

/** The text of `remote summary [--raw] NAME`. */
export async function remoteSummaryText(repo: Repo, name: string, opts: { raw?: boolean; cacheDir?: string } = {}): Promise<string> {
  const { config, summary, signatures } = await fetchRemoteSummary(repo, name, opts);
  if (summary === null) throw new CommandError('Remote server has no summary file');
  let out = summaryBytesText(summary, Boolean(opts.raw));
  // As ostree: the GPG signatures are shown when the remote verifies summaries with GPG, not with --raw.
  if (config.gpgVerifySummary && signatures !== null && !opts.raw) out += `\n${await gpgSignaturesText(repo, config, summary, signatures)}`;
  return out;
}

/** `GPG: Verification enabled, found N signature(s):` and each signature (`ostree_print_gpg_verify_result`). */
async function gpgSignaturesText(repo: Repo, config: RemoteConfig, summary: Uint8Array, signatures: Uint8Array): Promise<string> {
  const signing = await import('@larch/signing');
  const { lazyTimeLocale } = await import('./show.js');
  const sigs = signing.getSignatures(signing.decodeDetachedMetadata(signatures), signing.GPG_SIGNATURES_KEY);
  const keypath = config.options.gpgkeypath;
  const ring = await signing.repoGpgKeyring(repo, { remote: config.name, ...(keypath !== undefined ? { gpgkeypath: keypath } : {}) });
  const reports = sigs.length > 0 ? await new signing.GpgVerifier(ring).verify(summary, sigs) : [];
  const timeLocale = await lazyTimeLocale()();
  let out = `GPG: Verification enabled, found ${reports.length} signature${reports.length === 1 ? '' : 's'}:\n`;
  for (const r of reports) out += `\n${signing.describeSignature(r, { timeLocale }).map((l) => `  ${l}\n`).join('')}`;
  return out;
}
