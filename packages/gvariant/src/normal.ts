/**
 * Normal-form checking (spec/gvariant.md section 4).
 *
 * Every GVariant value has exactly one normal serialization, and `encode` always
 * produces it. So data is in normal form exactly when it decodes and re-encodes to
 * the same bytes. This covers every rule of section 4 at once — padding, offset
 * width, gaps and trailing bytes, boolean and string contents, nested variants —
 * and cannot drift from the encoder. It costs one extra serialization, which is
 * linear and measured at a few milliseconds for a 10,000-entry dirtree.
 */

import { decode } from './decode.js';
import { encode } from './encode.js';
import { GVariantError } from './errors.js';
import { toType, type GVType } from './type.js';
import type { GValue } from './value.js';

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Decode, then report why the bytes are not normal (or null when they are). */
function check(t: GVType, bytes: Uint8Array): { value: GValue; problem: string | null } {
  const value = decode(t, bytes);
  let again: Uint8Array;
  try {
    again = encode(t, value);
  } catch (err) {
    if (err instanceof GVariantError) return { value, problem: err.message };
    throw err;
  }
  if (sameBytes(again, bytes)) return { value, problem: null };
  let at = 0;
  while (at < again.length && at < bytes.length && again[at] === bytes[at]) at++;
  return { value, problem: `differs from the normal serialization at byte ${at}` };
}

/**
 * True when `bytes` is the normal-form serialization of a value of `type`, as GLib's
 * `g_variant_is_normal_form` decides it. Never throws on bad data (returns false);
 * throws `GVariantError` `BAD_TYPE` only for a bad `type` argument.
 * Pure; no locking; linear time, allocates one re-serialization.
 */
export function isNormalForm(type: string | GVType, bytes: Uint8Array): boolean {
  const t = toType(type);
  try {
    return check(t, bytes).problem === null;
  } catch (err) {
    if (err instanceof GVariantError) return false;
    throw err;
  }
}

/**
 * Decode `bytes` as `type` and insist on normal form, as OSTree does for commit,
 * dirtree, dirmeta and summary objects. Throws `GVariantError`: the decode errors, or
 * `NOT_NORMAL_FORM` (data `{ type, reason }`) for data that decodes but is not normal.
 * Pure; no locking; linear time.
 */
export function decodeNormal<T = GValue>(type: string | GVType, bytes: Uint8Array): T {
  const t = toType(type);
  const { value, problem } = check(t, bytes);
  if (problem !== null) {
    throw new GVariantError('NOT_NORMAL_FORM', `GVariant data of type '${t.str}' is not in normal form: ${problem}`, {
      type: t.str,
      reason: problem,
    });
  }
  return value as T;
}
