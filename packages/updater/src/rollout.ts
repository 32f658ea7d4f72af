/**
 * Phased rollout. The publishing side writes, in the summary's additional metadata, the key
 * `larch.rollout` with a map from ref name to percentage; a device takes a commit of that ref iff
 *
 *     bucket(deviceId, commit) < percent
 *     bucket = (first 4 bytes of sha256(utf8(deviceId + ':' + commit)) as big-endian uint32) mod 100
 *
 * where `commit` is the 64-character lowercase hex checksum. Hashing the commit in means each new
 * commit draws a fresh sample of devices, and raising the percentage for the same commit only adds
 * devices (a device under 20 stays under 50).
 *
 * Layout of `larch.rollout` (both accepted, the first is what `ostree summary -u
 * --add-metadata` style tooling writes most easily):
 *   - `a{sv}`: ref → variant holding an integer (`y`, `q`, `u`, `t`, `n`, `i`, `x`) or a double;
 *   - `a{su}`: ref → uint32.
 * A ref absent from the map, or a summary without the key, means 100%. Values are clamped to 0..100.
 */
import { createHash } from 'node:crypto';
import type { Variant } from '@larch/gvariant';

export const ROLLOUT_KEY = 'larch.rollout';

/** The device's bucket for a commit, 0..99 (see the file comment). Pure. */
export function rolloutBucket(deviceId: string, commit: string): number {
  const d = createHash('sha256').update(`${deviceId}:${commit}`, 'utf8').digest();
  return d.readUInt32BE(0) % 100;
}

/** Whether a device takes `commit` at `percent`. Pure. */
export function inRollout(deviceId: string, commit: string, percent: number): boolean {
  return rolloutBucket(deviceId, commit) < percent;
}

function numberOf(v: unknown): number | null {
  if (typeof v === 'number' && Number.isFinite(v)) return v;
  if (typeof v === 'bigint') return Number(v);
  return null;
}

/**
 * The rollout percentage for `ref` from the summary's additional metadata (100 when not
 * published). Pure.
 */
export function rolloutPercent(metadata: Array<[string, Variant]>, ref: string): number {
  const entry = metadata.find(([k]) => k === ROLLOUT_KEY)?.[1];
  if (!entry) return 100;
  if (entry.type !== 'a{sv}' && entry.type !== 'a{su}') return 100;
  for (const [k, v] of entry.value as Array<[string, unknown]>) {
    if (k !== ref) continue;
    const n = entry.type === 'a{su}' ? numberOf(v) : numberOf((v as Variant).value);
    if (n === null) return 100;
    return Math.max(0, Math.min(100, n));
  }
  return 100;
}
