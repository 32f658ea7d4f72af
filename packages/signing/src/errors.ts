/**
 * One error class for the signing package, shaped like the workspace's `LarchError`
 * (`code` from a closed union, structured `data`, standard `cause`, `toJSON()`), so callers
 * branch on `code` and read specifics from `data`. This package does not depend on
 * `@larch/core-store`, which is why the class is defined here rather than imported.
 *
 * Messages follow OSTree's wording where a user might grep for them ("GPG verification
 * enabled, but no signatures found …", "ed25519: Signature couldn't be verified with: key …").
 */

export type SigningErrorCode =
  | 'SIGNATURE_INVALID'
  | 'SIGNATURE_MISSING'
  | 'KEY_INVALID'
  | 'KEY_NOT_FOUND'
  | 'KEY_REVOKED'
  | 'KEY_EXPIRED'
  | 'GPG_FAILED'
  | 'METADATA_INVALID'
  | 'CONFIG_INVALID'
  | 'IO_ERROR'
  | 'ABORTED';

export class SigningError extends Error {
  readonly code: SigningErrorCode;
  readonly data: Record<string, unknown>;

  constructor(code: SigningErrorCode, message: string, data: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    super(message, options?.cause !== undefined ? { cause: options.cause } : undefined);
    this.name = 'SigningError';
    this.code = code;
    this.data = data;
  }

  toJSON(): { name: string; code: SigningErrorCode; message: string; data: Record<string, unknown> } {
    return { name: this.name, code: this.code, message: this.message, data: this.data };
  }
}

/** True when `e` is a SigningError, optionally with the given code. */
export function isSigningError(e: unknown, code?: SigningErrorCode): e is SigningError {
  return e instanceof SigningError && (code === undefined || e.code === code);
}

/**
 * Make untrusted text safe to put in a message: control characters escaped, length capped.
 * Used for gpg's stderr, key file lines and anything else that came from outside.
 */
export function sanitize(text: string, max = 200): string {
  // eslint-disable-next-line no-control-regex
  const escaped = text.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
  return escaped.length > max ? `${escaped.slice(0, max)}…` : escaped;
}
