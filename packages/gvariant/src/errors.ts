/**
 * The error type of the GVariant codec.
 *
 * This package has no dependencies, so it cannot extend the workspace's `LarchError`
 * (which lives in core-store, a dependant of this package). `GVariantError` has the
 * same shape — a closed `code` union, a structured `data` object, the standard
 * `cause`, and `toJSON()` — so callers can wrap it (`new LarchError(..., { cause })`)
 * or branch on `code` without parsing messages.
 */

/** Every code a `GVariantError` can carry. Codes are public API. */
export type GVariantErrorCode =
  /** A type string is not a single valid, definite GVariant type. */
  | 'BAD_TYPE'
  /** The data ends before a value that the framing says is there. */
  | 'TRUNCATED'
  /** Framing offsets, sizes or a variant's type suffix are inconsistent. */
  | 'BAD_FRAMING'
  /** The data decodes but is not the unique normal-form serialization. */
  | 'NOT_NORMAL_FORM'
  /** A value does not fit its type (encode), or a string is not valid (decode). */
  | 'BAD_VALUE';

/** Longest piece of untrusted text copied into an error message. */
const MAX_QUOTED = 80;

/** Quote untrusted text for an error message: control characters escaped, length capped. */
export function quoteForMessage(text: string): string {
  const cut = text.length > MAX_QUOTED ? text.slice(0, MAX_QUOTED) + '…' : text;
  // eslint-disable-next-line no-control-regex
  return JSON.stringify(cut.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`));
}

/**
 * Thrown by every function of this package for bad types, bad data and bad values.
 * `data` carries the specifics: `{ type, offset, reason }` for data errors,
 * `{ path, type, reason }` for encode errors, `{ type, position, reason }` for type
 * strings, `{ position, reason }` for text. Programmer mistakes (passing a non-Uint8Array)
 * are `TypeError`s instead.
 */
export class GVariantError extends Error {
  readonly code: GVariantErrorCode;
  readonly data: Record<string, unknown>;

  constructor(code: GVariantErrorCode, message: string, data: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'GVariantError';
    this.code = code;
    this.data = data;
  }

  toJSON(): { name: string; code: GVariantErrorCode; message: string; data: Record<string, unknown> } {
    return { name: this.name, code: this.code, message: this.message, data: this.data };
  }
}
