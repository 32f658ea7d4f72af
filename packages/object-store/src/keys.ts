/**
 * Key rules and the key layout of a published archive repo (spec/repo-format.md: the same
 * relative paths as on disk, so any static HTTP server or bucket URL is an OSTree remote).
 */
import { DELTAS_DIR, DELTA_INDEXES_DIR, LarchError, OBJECTS_DIR, deltaRelDir, modifiedBase64, objectRelPath, type Summary } from '@larch/core-store';

/** Reject keys that could escape a directory store or that S3 would treat oddly. */
export function checkKey(key: string): void {
  if (key === '' || key.startsWith('/') || key.split('/').some((p) => p === '' || p === '.' || p === '..') || key.includes('\0')) {
    throw new LarchError('INVALID_ARGUMENT', `Invalid object key ${JSON.stringify(key)}`, { key });
  }
}

/** objects/XX/REST.TYPE for an object (the repository layout's {@link objectRelPath}). */
export function objectKey(checksum: string, type: 'commit' | 'commitmeta' | 'dirtree' | 'dirmeta' | 'filez' | 'tombstone-commit'): string {
  return objectRelPath(checksum, type);
}

/** OSTree's "modified base64" of a checksum (the repository layout's {@link modifiedBase64}). */
export function mb64(checksum: string): string {
  return modifiedBase64(checksum);
}

/** deltas/XX/REST/ (with the trailing slash) for a delta name "TO" or "FROM-TO" (hex). */
export function deltaDirKey(name: string): string {
  const dash = name.indexOf('-');
  return `${dash < 0 ? deltaRelDir(null, name) : deltaRelDir(name.slice(0, dash), name.slice(dash + 1))}/`;
}

/** What kind of file a key is, which decides its order, Cache-Control and Content-Type. */
export type KeyClass = 'object' | 'commit' | 'commitmeta' | 'delta-part' | 'delta-superblock' | 'delta-index' | 'ref' | 'config' | 'summary' | 'summary-sig' | 'other';

export function classify(key: string): KeyClass {
  if (key.startsWith(`${OBJECTS_DIR}/`)) {
    if (key.endsWith('.commit') || key.endsWith('.tombstone-commit')) return 'commit';
    if (key.endsWith('.commitmeta')) return 'commitmeta';
    return 'object';
  }
  if (key.startsWith(`${DELTAS_DIR}/`)) return key.endsWith('/superblock') ? 'delta-superblock' : 'delta-part';
  if (key.startsWith(`${DELTA_INDEXES_DIR}/`)) return 'delta-index';
  if (key.startsWith('refs/')) return 'ref';
  if (key === 'config') return 'config';
  if (key === 'summary') return 'summary';
  if (key === 'summary.sig') return 'summary-sig';
  return 'other';
}

/** Objects and deltas never change under their name: immutable. Everything else is short-lived. */
export const IMMUTABLE = 'public, max-age=31536000, immutable';
export const SHORT_LIVED = 'public, max-age=60';

export function cacheControlFor(cls: KeyClass): string {
  // Detached metadata (.commitmeta) changes when a commit is signed again: short-lived.
  return cls === 'object' || cls === 'commit' || cls === 'delta-part' || cls === 'delta-superblock' ? IMMUTABLE : SHORT_LIVED;
}

export function contentTypeFor(cls: KeyClass): string {
  return cls === 'ref' || cls === 'config' ? 'text/plain; charset=utf-8' : 'application/octet-stream';
}

/** True for keys whose bytes never change once written (compared by presence and size only). */
export function isImmutable(cls: KeyClass): boolean {
  return cacheControlFor(cls) === IMMUTABLE;
}

/** The static deltas a summary lists (`ostree.static-deltas`): names "TO" or "FROM-TO" in hex. */
export function summaryDeltaNames(summary: Summary): string[] {
  const v = summary.metadata.find(([k]) => k === 'ostree.static-deltas')?.[1];
  if (!v || v.type !== 'a{sv}') return [];
  return (v.value as Array<[string, unknown]>).map(([name]) => name).filter((n) => /^([0-9a-f]{64}-)?[0-9a-f]{64}$/.test(n));
}
