/**
 * The JavaScript side of GVariant values.
 *
 * Mapping (decode produces exactly these; encode accepts exactly these):
 * - `y n q i u h d` → number; `x t` → bigint; `b` → boolean; `s o g` → string
 * - `ay` → Uint8Array (decode returns a zero-copy view into the input)
 * - `aT` (T ≠ y) → GValue[]; `(…)` → GValue[] (one per member); `{KV}` → [k, v]
 * - `v` → Variant
 * - `mT` → the value or null. When T is itself a maybe type, a present ("just") value
 *   is wrapped in a one-element array, so that `just nothing` ([null]) and `nothing`
 *   (null) stay distinct: `mmy` decodes to null, [null] or [5].
 */

export type GValue = number | bigint | boolean | string | Uint8Array | Variant | null | GValue[];

/** A value together with its type: the GVariant `v` type, and the result of `parseText`. */
export class Variant {
  constructor(
    readonly type: string,
    readonly value: GValue,
  ) {}
}

/**
 * Look up `key` in an `a{sv}` dictionary as decoded (an array of [key, Variant]).
 * GVariant does not require keys to be unique; like GLib's lookup, the first match wins.
 * Pure; O(n).
 */
export function lookup(dict: ReadonlyArray<readonly [string, Variant]>, key: string): Variant | undefined {
  for (let i = 0; i < dict.length; i++) {
    const e = dict[i];
    if (e[0] === key) return e[1];
  }
  return undefined;
}

/**
 * Reverse the byte order of a 16-bit unsigned integer. OSTree stores some integers
 * big-endian inside little-endian GVariants (spec/gvariant.md section 6).
 */
export function bswap16(n: number): number {
  return ((n & 0xff) << 8) | ((n >>> 8) & 0xff);
}

/** Reverse the byte order of a 32-bit unsigned integer; the result is unsigned. */
export function bswap32(n: number): number {
  return (((n & 0xff) << 24) | ((n & 0xff00) << 8) | ((n >>> 8) & 0xff00) | ((n >>> 24) & 0xff)) >>> 0;
}

/** Reverse the byte order of a 64-bit unsigned integer (taken modulo 2^64); the result is unsigned. */
export function bswap64(n: bigint): bigint {
  const v = BigInt.asUintN(64, n);
  const hi = Number(v >> 32n);
  const lo = Number(v & 0xffffffffn);
  return (BigInt(bswap32(lo)) << 32n) | BigInt(bswap32(hi));
}

