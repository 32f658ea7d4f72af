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

/**
 * Check one checksum of a delta name in ostree's words (`ostree_validate_checksum_string`):
 * `Invalid rev X` when it is not 64 bytes long (X cut to 64 bytes, newlines as spaces, as ostree
 * quotes it), else `Invalid character 'N' in rev 'X'` for the first byte N that is not lower-case
 * hex.
 */
function checkRev(rev: string, name: string): Checksum {
  const bytes = Buffer.from(rev, 'utf8');
  if (bytes.length !== 64) {
    const quoted = bytes.subarray(0, 64).toString('utf8').replace(/\n/g, ' ');
    throw new LarchError('INVALID_ARGUMENT', `Invalid rev ${quoted}`, { name });
  }
  for (const c of bytes) {
    if (!((c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66))) throw new LarchError('INVALID_ARGUMENT', `Invalid character '${c}' in rev '${rev}'`, { name });
  }
  return rev;
}

/**
 * Parse a delta name (`TO` or `FROM-TO`, split at the first `-` as ostree's
 * `_ostree_parse_delta_name` does); throws INVALID_ARGUMENT in ostree's words (see checkRev).
 */
export function parseDeltaName(name: string): { from: Checksum | null; to: Checksum } {
  const dash = name.indexOf('-');
  if (dash < 0) return { from: null, to: checkRev(name, name) };
  const from = checkRev(name.slice(0, dash), name);
  return { from, to: checkRev(name.slice(dash + 1), name) };
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
