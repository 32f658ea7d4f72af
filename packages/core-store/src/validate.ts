/**
 * Validators for the names OSTree trusts nothing about: file names inside dirtrees, checksums,
 * ref names, remote names and collection ids. Each throws a LarchError naming the bad input.
 * They mirror OSTree's own checks (ot_util_filename_validate, ostree_validate_checksum_string,
 * ostree_validate_rev, ostree_validate_remote_name, ostree_validate_collection_id) and add the
 * empty-name rule the spec asks readers to enforce (repo-format.md 3.1).
 */
import { LarchError } from './errors.js';
import type { Checksum } from './types.js';

const CHECKSUM_RE = /^[0-9a-f]{64}$/;
const utf8Strict = new TextDecoder('utf-8', { fatal: true });
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** True when `s` is 64 lowercase hex characters. */
export function isChecksum(s: unknown): s is Checksum {
  return typeof s === 'string' && s.length === 64 && CHECKSUM_RE.test(s);
}

/** Throws INVALID_CHECKSUM unless `s` is a 64-char lowercase hex sha256. */
export function validateChecksum(s: string): asserts s is Checksum {
  if (!isChecksum(s)) {
    throw new LarchError('INVALID_CHECKSUM', `Invalid checksum of length ${typeof s === 'string' ? s.length : 0} expected 64: ${String(s).slice(0, 80)}`, { checksum: s });
  }
}

/**
 * A file or directory name inside a dirtree: not empty, not `.` or `..`, no `/`, no NUL, valid
 * UTF-8 (a string that came from bytes is checked by the parsers; here lone surrogates are rejected).
 */
export function validateName(name: string): void {
  if (name.length === 0) throw new LarchError('INVALID_NAME', 'Invalid empty filename', { name });
  if (name === '.' || name === '..') throw new LarchError('INVALID_NAME', `Invalid special element '.' or '..' in filename ${name}`, { name });
  if (name.includes('/')) throw new LarchError('INVALID_NAME', `Invalid / in filename ${name}`, { name });
  if (name.includes('\0')) throw new LarchError('INVALID_NAME', `Invalid NUL in filename ${JSON.stringify(name)}`, { name });
  if (LONE_SURROGATE.test(name)) throw new LarchError('INVALID_NAME', `Invalid UTF-8 in filename ${JSON.stringify(name)}`, { name });
}

/** Decode bytes as strict UTF-8, throwing INVALID_NAME on invalid sequences. */
export function decodeUtf8Name(bytes: Uint8Array, what = 'filename'): string {
  try {
    return utf8Strict.decode(bytes);
  } catch {
    throw new LarchError('INVALID_NAME', `Invalid UTF-8 in ${what}`, { bytes: Buffer.from(bytes).toString('hex') });
  }
}

// One ref component: starts with a word character, then word characters, '-', '.'.
// \w in OSTree's GRegex is Unicode-aware; \p{L}\p{N}_ with the u flag matches that.
const REF_COMPONENT = String.raw`[\p{L}\p{N}_][\p{L}\p{N}_.\-]*`;
const REF_RE = new RegExp(`^${REF_COMPONENT}(?:/${REF_COMPONENT})*$`, 'u');
const REMOTE_RE = new RegExp(`^${REF_COMPONENT}$`, 'u');

/** A ref name (`a/b/c`): components `[\w\d][-._\w\d]*` separated by `/`. Throws INVALID_REF. */
export function validateRefName(ref: string): void {
  if (typeof ref !== 'string' || !REF_RE.test(ref)) {
    throw new LarchError('INVALID_REF', `Invalid ref name ${ref}`, { ref });
  }
}

/** A remote name: a single ref component. Throws INVALID_REF. */
export function validateRemoteName(remote: string): void {
  if (typeof remote !== 'string' || !REMOTE_RE.test(remote)) {
    throw new LarchError('INVALID_REF', `Invalid remote name ${remote}`, { remote });
  }
}

const COLLECTION_ELEMENT = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** A collection id: reverse-DNS, at least two elements of `[A-Za-z_][A-Za-z0-9_]*`, at most 255 chars. */
export function validateCollectionId(id: string): void {
  const parts = typeof id === 'string' ? id.split('.') : [];
  if (id.length > 255 || parts.length < 2 || !parts.every((p) => COLLECTION_ELEMENT.test(p))) {
    throw new LarchError('INVALID_REF', `Invalid collection ID ${id}`, { collectionId: id });
  }
}
