/**
 * Delta names (spec static-deltas.md section 1): parsing `TO` / `FROM-TO` in ostree's words.
 *
 * Where a delta lives on disk (`deltas/` and `delta-indexes/`, OSTree's modified base64) is the
 * repository layout's business: core-store's layout module builds those paths, and the names
 * below are re-exported from it for this package's users.
 */
import { LarchError, checksumFromModifiedBase64, modifiedBase64, type Checksum } from '@larch/core-store';

export { deltaName, deltaRelDir, deltaIndexRelPath, parseDeltaDirName } from '@larch/core-store';

/** Modified base64 of a checksum (core-store's {@link modifiedBase64}). */
export const mb64: (checksum: Checksum) => string = modifiedBase64;

/** Inverse of {@link mb64} (core-store's {@link checksumFromModifiedBase64}). */
export const mb64Decode: (s: string) => Checksum | null = checksumFromModifiedBase64;

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
