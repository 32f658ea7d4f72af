/**
 * How a ref's newest commit is doing across the fleet, and when that calls for an automatic
 * pause. Pure functions over device records, so the rule can be read (and tested) apart from the
 * HTTP and storage code.
 *
 * For commit C of ref R, among the devices that report following R:
 *   - attempted: C is their target, their booted commit, or among their bad commits;
 *   - failed:    C is among their bad commits (the agent rolled it back), or their last error
 *                happened while confirming C (its health checks failed; the rollback may still be
 *                under way);
 *   - onCommit:  C is their booted commit.
 * The ref is paused when failed ≥ minFailed and failed / attempted ≥ threshold. Devices that
 * never attempted C do not dilute the share: a rollout at 10% must be judged on that 10%.
 */
import type { DeviceRecord } from './store.js';

/** When to pause a ref by itself. */
export interface AutoPausePolicy {
  /** Share of failed devices among those that attempted the commit, 0..1 (default 0.5). */
  threshold: number;
  /** Fewest failed devices before a pause (default 2), so one broken device cannot pause a ref. */
  minFailed: number;
}

export const DEFAULT_AUTO_PAUSE: AutoPausePolicy = { threshold: 0.5, minFailed: 2 };

/** Counts for one ref and commit. */
export interface CommitHealth {
  /** Devices reporting the ref. */
  devices: number;
  /** Devices booted on the commit. */
  onCommit: number;
  /** Devices that tried the commit. */
  attempted: number;
  /** Devices on which the commit failed. */
  failed: number;
  /** failed / attempted (0 when none attempted). */
  failedShare: number;
}

/** Whether `d` tried `commit`. Pure. */
export function attempted(d: DeviceRecord, commit: string): boolean {
  return d.target?.commit === commit || d.booted?.commit === commit || d.badCommits.includes(commit);
}

/** Whether `commit` failed on `d`. Pure. */
export function failedOn(d: DeviceRecord, commit: string): boolean {
  return d.badCommits.includes(commit) || (d.lastError !== null && d.lastError.phase === 'confirm' && d.target?.commit === commit);
}

/** Count the devices of `ref` (from `devices`, any ref) against `commit` (null: no commit). Pure. */
export function commitHealth(devices: Iterable<DeviceRecord>, ref: string, commit: string | null): CommitHealth {
  let n = 0;
  let on = 0;
  let tried = 0;
  let failed = 0;
  for (const d of devices) {
    if (d.ref !== ref) continue;
    n++;
    if (commit === null) continue;
    if (d.booted?.commit === commit) on++;
    if (attempted(d, commit)) {
      tried++;
      if (failedOn(d, commit)) failed++;
    }
  }
  return { devices: n, onCommit: on, attempted: tried, failed, failedShare: tried === 0 ? 0 : failed / tried };
}

/** Whether the counts call for a pause under `policy`. Pure. */
export function shouldPause(h: CommitHealth, policy: AutoPausePolicy): boolean {
  return h.failed >= policy.minFailed && h.attempted > 0 && h.failedShare >= policy.threshold;
}

/** The reason recorded with an automatic pause (one line). Pure. */
export function pauseReason(commit: string, h: CommitHealth, policy: AutoPausePolicy): string {
  const pct = (x: number): string => `${Math.round(x * 1000) / 10}%`;
  return `Automatic pause: commit ${commit.slice(0, 12)} failed on ${h.failed} of ${h.attempted} devices that attempted it (${pct(h.failedShare)}; threshold ${pct(policy.threshold)}, at least ${policy.minFailed})`;
}
