/**
 * @larch/http-pull: pull OSTree commits from any OSTree HTTP remote (or a local repository)
 * into a Larch repository, verifying every object. See README.md and spec/pull-and-signing.md.
 */
export { pull, parseSubpath, DefaultFetcher, type PullOptions, type PullResult, type PulledRef } from './pull.js';
export { pullLocal, type PullLocalOptions } from './pull-local.js';
export { findDelta, pullDelta, MAX_DELTA_SUPERBLOCK, type DeltaCandidate, type DeltaPullOptions, type DeltaPullProgress, type DeltaPullResult } from './pull-delta.js';
export { checkNotDowngrade } from './timestamp-check.js';
export {
  addRemote,
  deleteRemote,
  listRemotes,
  remoteUrl,
  getRemote,
  remoteUrlSchema,
  type AddRemoteOptions,
  type RemoteConfig,
} from './remote-config.js';
export { joinUrl, TransportError, type Fetcher, type FetchOptions, type FetchResponse } from './fetcher.js';
export { UndiciFetcher, type UndiciFetcherOptions } from './fetcher-undici.js';
export { remoteTransport, type RemoteTransport } from './fetcher-tls.js';
export { FileFetcher } from './fetcher-file.js';
export { DEFAULT_PULL_LIMITS, resolveLimits, type PullLimits } from './limits.js';
export type { PullProgress } from './progress.js';
export { verificationPolicy, type PullVerifier, type VerifyContext, type VerificationPolicy } from './verifier.js';
export { isRetryable, type PullFailureReason } from './errors.js';
export { withRemoteCookies, loadRemoteCookies, cookieHeader, CookieJarFetcher, type JarCookie } from './remote-cookies.js';
export { addRemoteCookie, deleteRemoteCookie, listRemoteCookies, type EditableCookie, type NewCookie } from './remote-cookies-edit.js';
export {
  fetchSummaryWithCache,
  pruneSummaryCache,
  summaryCacheRoot,
  ConditionalFetcher,
  SUMMARY_CACHE_DIR,
  type CachedFetchResult,
  type SummaryFileFetch,
  type SummaryPair,
  type SummaryCacheFetchOptions,
} from './summary-cache.js';
