/**
 * One error class for the whole package. Callers branch on `code` (a closed string union) and
 * read the specifics from `data`; messages follow OSTree's wording where a user might grep for
 * them ("Object missing: …", "Refspec '…' not found", "Not a regular file or symlink: …").
 */

export type LarchErrorCode =
  | 'REPO_NOT_FOUND'
  | 'BAD_CONFIG'
  | 'BAD_MODE'
  | 'OBJECT_MISSING'
  | 'OBJECT_CORRUPTED'
  | 'INVALID_NAME'
  | 'INVALID_CHECKSUM'
  | 'INVALID_REF'
  | 'REF_NOT_FOUND'
  | 'AMBIGUOUS_REF'
  | 'LOCK_TIMEOUT'
  | 'LIMIT_EXCEEDED'
  | 'UNSUPPORTED_FILE'
  | 'IO_ERROR'
  | 'EXISTS'
  | 'INVALID_ARGUMENT'
  | 'ABORTED';

export class LarchError extends Error {
  readonly code: LarchErrorCode;
  readonly data: Record<string, unknown>;

  constructor(code: LarchErrorCode, message: string, data: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    super(message, options?.cause !== undefined ? { cause: options.cause } : undefined);
    this.name = 'LarchError';
    this.code = code;
    this.data = data;
  }

  toJSON(): { name: string; code: LarchErrorCode; message: string; data: Record<string, unknown> } {
    return { name: this.name, code: this.code, message: this.message, data: this.data };
  }
}

export function isLarchError(e: unknown, code?: LarchErrorCode): e is LarchError {
  return e instanceof LarchError && (code === undefined || e.code === code);
}

/** Wrap a Node fs error (or anything thrown by I/O) as IO_ERROR naming the path; LarchErrors pass through. */
export function ioError(e: unknown, what: string, path?: string): LarchError {
  if (e instanceof LarchError) return e;
  const err = e as NodeJS.ErrnoException;
  const detail = err && typeof err.message === 'string' ? err.message : String(e);
  return new LarchError('IO_ERROR', `${what}${path !== undefined ? ` ${path}` : ''}: ${detail}`, {
    path,
    errno: err?.code,
  }, { cause: e });
}

/** True when `e` is a Node error with the given errno name (ENOENT, EEXIST, ...). */
/** A content object whose bytes hash to `actual` instead of its name (OSTree's wording). */
export function fileChecksumMismatch(checksum: string, actual: string): LarchError {
  return new LarchError('OBJECT_CORRUPTED', `Corrupted file object; checksum expected='${checksum}' actual='${actual}'`, { type: 'file', checksum, actual });
}

export function hasErrno(e: unknown, code: string): boolean {
  return typeof e === 'object' && e !== null && (e as NodeJS.ErrnoException).code === code;
}
