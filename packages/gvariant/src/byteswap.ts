/**
 * Whole-value byte swapping, as GLib's `g_variant_byteswap` does it: every number
 * wider than one byte (n q i u h x t d), at any depth including inside variants, has
 * its byte order reversed. `ostree show --raw` and `ostree summary --view --raw`
 * print values this way, which is why OSTree's big-endian timestamps read correctly
 * there and its little-endian sizes do not (spec/gvariant.md section 6).
 */

import { GVariantError } from './errors.js';
import { MAX_DEPTH, parseType, toType, type GVType } from './type.js';
import { Variant, bswap16, bswap32, bswap64, type GValue } from './value.js';

const scratch = new DataView(new ArrayBuffer(8));

function swapDouble(d: number): number {
  scratch.setFloat64(0, d, true);
  return scratch.getFloat64(0, false);
}

function swap(t: GVType, v: GValue, depth: number): GValue {
  if (depth > MAX_DEPTH + 1) throw new GVariantError('BAD_VALUE', `byteswap: nesting deeper than ${MAX_DEPTH}`, { type: t.str });
  const bad = (): never => {
    throw new GVariantError('BAD_VALUE', `byteswap: value does not match GVariant type '${t.str}'`, { type: t.str });
  };
  switch (t.code) {
    case 'n':
      if (typeof v !== 'number') return bad();
      return (bswap16(v) << 16) >> 16;
    case 'q':
      if (typeof v !== 'number') return bad();
      return bswap16(v);
    case 'i':
    case 'h':
      if (typeof v !== 'number') return bad();
      return bswap32(v) | 0;
    case 'u':
      if (typeof v !== 'number') return bad();
      return bswap32(v);
    case 'x':
      if (typeof v !== 'bigint') return bad();
      return BigInt.asIntN(64, bswap64(v));
    case 't':
      if (typeof v !== 'bigint') return bad();
      return bswap64(v);
    case 'd':
      if (typeof v !== 'number') return bad();
      return swapDouble(v);
    case 'v':
      if (!(v instanceof Variant)) return bad();
      return new Variant(v.type, swap(parseType(v.type), v.value, depth + 1));
    case 'm': {
      if (v === null) return null;
      const el = t.element as GVType;
      if (el.code === 'm') {
        if (!Array.isArray(v) || v.length !== 1) return bad();
        return [swap(el, v[0], depth + 1)];
      }
      return swap(el, v, depth + 1);
    }
    case 'a': {
      const el = t.element as GVType;
      if (el.code === 'y') return v;
      if (!Array.isArray(v)) return bad();
      return v.map((e) => swap(el, e, depth + 1));
    }
    case '(':
    case '{':
      if (!Array.isArray(v) || v.length !== t.members.length) return bad();
      return v.map((e, i) => swap(t.members[i], e, depth + 1));
    default:
      return v; // y b s o g
  }
}

/**
 * Return a copy of `value` with every multi-byte number byte-swapped (GLib's
 * `g_variant_byteswap`). Byte arrays are shared, not copied. Throws `GVariantError`
 * `BAD_VALUE` when the value does not have the shape of `type`. Pure; no locking.
 */
export function byteswap(type: string | GVType, value: GValue): GValue {
  return swap(toType(type), value, 0);
}
