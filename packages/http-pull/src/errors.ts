/**
 * Error helpers for pulling. Every failure is a `LarchError` from core-store (the one error
 * class of the workspace); the pull-specific facts go into `data`:
 * `{ object, url, status?, reason }` where `reason` is one of {@link PullFailureReason}.
 * Messages are one line, start with `Fetching OBJECT` and name the URL, in the wording of
 * OSTree's fetchers ("Server returned HTTP 500") so users can grep for them.
 */
import { LarchError, type LarchErrorCode } from '@larch/core-store';

/** Why a fetch failed; carried in `error.data.reason`. */
export type PullFailureReason =
  | 'http-status'
  | 'network'
  | 'timeout'
  | 'stalled'
  | 'too-large'
  | 'corrupted'
  | 'not-found'
  | 'aborted'
  | 'verification';

/** Build a fetch failure naming the object and the URL. */
export function fetchError(
  code: LarchErrorCode,
  reason: PullFailureReason,
  object: string,
  url: string,
  detail: string,
  extra: Record<string, unknown> = {},
  cause?: unknown,
): LarchError {
  const msg = `Fetching ${object}: ${oneLine(detail)} for ${sanitizeUrl(url)}`;
  return new LarchError(code, msg, { object, url, reason, ...extra }, cause !== undefined ? { cause } : undefined);
}

/** True for errors a retry may cure: network failures, timeouts, stalls, HTTP 5xx and 408. */
export function isRetryable(e: unknown): boolean {
  if (!(e instanceof LarchError)) return false;
  const r = e.data.reason;
  if (r === 'network' || r === 'timeout' || r === 'stalled') return true;
  if (r === 'http-status') {
    const s = e.data.status as number;
    return s === 408 || (s >= 500 && s <= 599);
  }
  return false;
}

/** Collapse to one printable line (untrusted text never spans lines in our messages). */
export function oneLine(s: string, max = 400): string {
  // eslint-disable-next-line no-control-regex
  const t = s.replace(/[\r\n]+/g, ' ').replace(/[\x00-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
  return t.length > max ? `${t.slice(0, max)}…` : t;
}

function sanitizeUrl(u: string): string {
  return oneLine(u, 2048);
}
