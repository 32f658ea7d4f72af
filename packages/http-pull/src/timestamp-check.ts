/**
 * OSTree's timestamp check (`ostree pull -T`, `--timestamp-check-from-rev`; `pull`'s
 * `timestampCheck`, `timestampCheckFromRev`, and `allowDowngrade: false` as the device paths
 * pass it): a commit pulled for a ref must not be older than the commit the local ref points to
 * now. A server that rolls a ref back to an older (even validly signed) commit is then refused
 * before any of that commit's content is fetched, so an attacker cannot replay old, vulnerable
 * releases. As in OSTree it is off by default for a plain pull: a server-side revert reaches
 * clients that mirror a ref.
 *
 * Rule, as `ostree pull -T` 2022.7 behaves (checked against it): a commit older than the current
 * one is refused; a newer one or one with the same timestamp (two builds in the same second)
 * passes. A ref that does not exist yet, or whose commit object is missing locally, has nothing
 * to compare with and passes.
 */
import { LarchError, type Checksum, type Commit, type Repo } from '@larch/core-store';

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** GLib's `%c` in UTC (C locale): `Mon Jan  1 00:00:00 2024`, as OSTree prints commit times here. */
export function formatTimestampC(ts: bigint): string | null {
  const ms = Number(ts) * 1000;
  if (!Number.isSafeInteger(ms) || ms < -8.64e15 || ms > 8.64e15) return null;
  const d = new Date(ms);
  const p2 = (n: number): string => String(n).padStart(2, '0');
  return `${DAYS[d.getUTCDay()]} ${MONTHS[d.getUTCMonth()]} ${String(d.getUTCDate()).padStart(2, ' ')} ${p2(d.getUTCHours())}:${p2(d.getUTCMinutes())}:${p2(d.getUTCSeconds())} ${d.getUTCFullYear()}`;
}

/**
 * Throw when `newCommit` (checksum `newRev`) would move `refspec` to an older commit.
 * Reads the ref and the current commit; takes no lock (the caller holds the pull's lock).
 * Throws as {@link compareTimestamps}.
 */
export async function checkNotDowngrade(repo: Repo, refspec: string, newRev: Checksum, newCommit: Pick<Commit, 'timestamp'>): Promise<void> {
  const current = await repo.resolveRef(refspec).catch(() => null);
  if (current === null || current === newRev) return;
  if (!(await repo.hasObject('commit', current))) return;
  const cur = await repo.readCommit(current);
  compareTimestamps(current, cur.timestamp, newRev, newCommit.timestamp, { refspec });
}

/**
 * OSTree's comparison: a newer timestamp, the same timestamp or the same commit passes; an
 * older one throws LarchError INVALID_ARGUMENT with `data.reason = 'downgrade'`, worded as
 * OSTree's `Upgrade target revision '…' with timestamp '…' is chronologically older than current
 * revision '…' with timestamp '…'; use --allow-downgrade to permit`.
 */
export function compareTimestamps(current: Checksum, currentTs: bigint, newRev: Checksum, newTs: bigint, extra: Record<string, unknown> = {}): void {
  if (newTs >= currentTs || current === newRev) return;
  const newStr = formatTimestampC(newTs);
  const curStr = formatTimestampC(currentTs);
  const data = { ...extra, current, target: newRev, currentTimestamp: currentTs, targetTimestamp: newTs, reason: 'downgrade' };
  if (newStr === null || curStr === null) {
    throw new LarchError('INVALID_ARGUMENT', `Upgrade target revision '${newRev}' timestamp (${newTs}) or current revision '${current}' timestamp (${currentTs}) is invalid`, data);
  }
  throw new LarchError(
    'INVALID_ARGUMENT',
    `Upgrade target revision '${newRev}' with timestamp '${newStr}' is chronologically older than current revision '${current}' with timestamp '${curStr}'; use --allow-downgrade to permit`,
    data,
  );
}
