/**
 * Delta names and on-disk locations (spec static-deltas.md section 1).
 *
 * A delta is named by lower-case hex: `TO` for a from-scratch delta, `FROM-TO` otherwise. On disk
 * it lives under `deltas/` in a directory derived from the "modified base64" of the checksums,
 * with the two-character fan-out taken from FROM when there is one. Every name and path here is
 * built from validated 64-hex checksums, so none can escape the repository.
 */
import { LarchError, validateChecksum, type Checksum } from '@larch/core-store';

/** Modified base64 of a checksum: base64 of the 32 raw bytes, no `=`, `/` replaced by `_`. */
export function mb64(checksum: Checksum): string {
  validateChecksum(checksum);
  return Buffer.from(checksum, 'hex').toString('base64').replace(/=+$/, '').replace(/\//g, '_');
}

/** Inverse of {@link mb64}; null when `s` is not the modified base64 of 32 bytes. */
export function mb64Decode(s: string): Checksum | null {
  if (!/^[A-Za-z0-9+_]{43}$/.test(s)) return null;
  const buf = Buffer.from(`${s.replace(/_/g, '/')}=`, 'base64');
  return buf.length === 32 ? buf.toString('hex') : null;
}

/** The delta's directory relative to the repository root, e.g. `deltas/qq/5rMZ…`. */
export function deltaRelDir(from: Checksum | null, to: Checksum): string {
  const t = mb64(to);
  if (from === null) return `deltas/${t.slice(0, 2)}/${t.slice(2)}`;
  const f = mb64(from);
  return `deltas/${f.slice(0, 2)}/${f.slice(2)}-${t}`;
}

/** `TO` or `FROM-TO` (hex). */
export function deltaName(from: Checksum | null, to: Checksum): string {
  return from === null ? to : `${from}-${to}`;
}

/** Parse a delta name (`TO` or `FROM-TO`); throws INVALID_ARGUMENT naming the bad name. */
export function parseDeltaName(name: string): { from: Checksum | null; to: Checksum } {
  const m = /^(?:([0-9a-f]{64})-)?([0-9a-f]{64})$/.exec(name);
  if (!m) throw new LarchError('INVALID_ARGUMENT', `Invalid static delta name '${name}'`, { name });
  return { from: m[1] ?? null, to: m[2] };
}

/** Decode the `XX` + `REST` directory pair under `deltas/` into (from, to); null when not a delta directory name. */
export function parseDeltaDirName(prefix: string, rest: string): { from: Checksum | null; to: Checksum } | null {
  const full = prefix + rest;
  const dash = full.indexOf('-');
  if (dash < 0) {
    const to = mb64Decode(full);
    return to === null ? null : { from: null, to };
  }
  const from = mb64Decode(full.slice(0, dash));
  const to = mb64Decode(full.slice(dash + 1));
  return from === null || to === null ? null : { from, to };
}

/** Relative path of the delta index file of commit `to` (`delta-indexes/XX/REST.index`). */
export function deltaIndexRelPath(to: Checksum): string {
  const t = mb64(to);
  return `delta-indexes/${t.slice(0, 2)}/${t.slice(2)}.index`;
}
