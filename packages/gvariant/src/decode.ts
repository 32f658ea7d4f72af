/**
 * GVariant deserializer (spec/gvariant.md sections 3.1-3.8).
 *
 * Design:
 * - One pass, driven by the parsed type; every child is located by the framing rules
 *   and handed an exact [start, end) range of the outermost buffer. All reads are
 *   bounds-checked against that range before they happen, so malformed data ends in
 *   a `GVariantError`, never in a read outside the buffer.
 * - Positions are absolute (relative to the start of the outermost buffer). Each
 *   child starts at a position aligned relative to its container, and each container
 *   starts aligned to an alignment at least as large as its children's, so aligning
 *   the absolute position gives the same result as GLib's container-relative rule.
 * - Decoding is strict about structure (offsets that point backwards or outside the
 *   container, fixed-size values of the wrong size, unterminated strings, invalid
 *   UTF-8, bad variant type strings) and lenient about what only normal form forbids
 *   (non-zero padding, unused trailing bytes, booleans other than 0/1). `isNormalForm`
 *   catches the latter by re-encoding.
 * - `ay` is returned as a zero-copy view; strings are decoded with one shared fatal
 *   TextDecoder, with a fast path for short ASCII strings (file names dominate dirtrees).
 */

import { GVariantError } from './errors.js';
import { MAX_DEPTH, isObjectPath, isSignature, parseType, toType, type GVType } from './type.js';
import { Variant, type GValue } from './value.js';

// ignoreBOM: a leading U+FEFF is part of the string, not a byte-order mark.
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Strings shorter than this are tried as ASCII by hand before calling TextDecoder. */
const ASCII_FAST_PATH = 64;

/** Width in bytes of each framing offset in a container of `size` bytes (spec 3.3, reader side). */
export function offsetWidth(size: number): number {
  if (size === 0) return 0;
  if (size <= 0xff) return 1;
  if (size <= 0xffff) return 2;
  if (size <= 0xffffffff) return 4;
  return 8;
}

/**
 * V8 stores an array that holds only numbers unboxed, and canonicalizes the one NaN
 * bit pattern it reserves for holes (0xfff7fffffff7ffff) on the way in, which would
 * change the bytes on re-encoding and make normal data look non-normal. Storing a
 * non-number first keeps the array in its generic (boxed) representation, which
 * preserves every bit. Measured cost: none visible on a 10,000-entry dirtree.
 */
function keepDoubleBits(out: GValue[]): void {
  if (out.length > 0) out[0] = null;
}

function alignUp(n: number, a: number): number {
  const r = n % a;
  return r === 0 ? n : n + a - r;
}

class Reader {
  readonly bytes: Uint8Array;
  readonly view: DataView;

  constructor(bytes: Uint8Array) {
    this.bytes = bytes;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  fail(code: 'TRUNCATED' | 'BAD_FRAMING' | 'BAD_VALUE', t: GVType, at: number, reason: string, cause?: unknown): never {
    throw new GVariantError(
      code,
      `Invalid GVariant data for type '${t.str.length > 60 ? t.str.slice(0, 60) + '…' : t.str}' at offset ${at}: ${reason}`,
      { type: t.str, offset: at, reason },
      cause === undefined ? undefined : { cause },
    );
  }

  /** Read a little-endian framing offset of width `w` at absolute position `p` (already bounds-checked). */
  offset(p: number, w: number): number {
    switch (w) {
      case 1:
        return this.bytes[p];
      case 2:
        return this.view.getUint16(p, true);
      case 4:
        return this.view.getUint32(p, true);
      default: {
        const v = this.view.getBigUint64(p, true);
        return v > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(v);
      }
    }
  }

  value(t: GVType, s: number, e: number, depth: number): GValue {
    if (t.fixedSize !== 0 && e - s !== t.fixedSize) {
      this.fail(e - s < t.fixedSize ? 'TRUNCATED' : 'BAD_FRAMING', t, s, `fixed-size value needs ${t.fixedSize} bytes, has ${e - s}`);
    }
    const v = this.view;
    switch (t.code) {
      case 'y':
        return this.bytes[s];
      case 'b':
        return this.bytes[s] !== 0;
      case 'n':
        return v.getInt16(s, true);
      case 'q':
        return v.getUint16(s, true);
      case 'i':
      case 'h':
        return v.getInt32(s, true);
      case 'u':
        return v.getUint32(s, true);
      case 'x':
        return v.getBigInt64(s, true);
      case 't':
        return v.getBigUint64(s, true);
      case 'd':
        return v.getFloat64(s, true);
      case 's':
      case 'o':
      case 'g':
        return this.string(t, s, e);
      case 'v':
        return this.variant(t, s, e, depth);
      case 'a':
        return this.array(t, s, e, depth);
      case 'm':
        return this.maybe(t, s, e, depth);
      default:
        return this.tuple(t, s, e, depth);
    }
  }

  string(t: GVType, s: number, e: number): string {
    const b = this.bytes;
    if (e <= s || b[e - 1] !== 0) this.fail('BAD_FRAMING', t, s, 'string is not NUL-terminated');
    // b[e-1] is 0, so indexOf stops inside [s, e).
    if (b.indexOf(0, s) !== e - 1) this.fail('BAD_VALUE', t, s, 'string contains an embedded NUL');
    const n = e - 1 - s;
    let str: string | undefined;
    if (n < ASCII_FAST_PATH) {
      str = '';
      for (let i = s; i < e - 1; i++) {
        const c = b[i];
        if (c >= 0x80) {
          str = undefined;
          break;
        }
        str += String.fromCharCode(c);
      }
    }
    if (str === undefined) {
      try {
        str = utf8.decode(b.subarray(s, e - 1));
      } catch (err) {
        this.fail('BAD_VALUE', t, s, 'string is not valid UTF-8', err);
      }
    }
    if (t.code === 'o' && !isObjectPath(str)) this.fail('BAD_VALUE', t, s, 'not a valid object path');
    if (t.code === 'g' && !isSignature(str)) this.fail('BAD_VALUE', t, s, 'not a valid signature');
    return str;
  }

  variant(t: GVType, s: number, e: number, depth: number): Variant {
    if (depth >= MAX_DEPTH) this.fail('BAD_FRAMING', t, s, `nesting deeper than ${MAX_DEPTH}`);
    const b = this.bytes;
    let z = e - 1;
    while (z >= s && b[z] !== 0) z--;
    if (z < s) this.fail('BAD_FRAMING', t, s, 'variant has no type separator');
    if (z === e - 1) this.fail('BAD_FRAMING', t, s, 'variant has an empty type string');
    let ts = '';
    for (let i = z + 1; i < e; i++) {
      const c = b[i];
      if (c >= 0x80) this.fail('BAD_FRAMING', t, i, 'variant type string is not ASCII');
      ts += String.fromCharCode(c);
    }
    let ct: GVType;
    try {
      ct = parseType(ts);
    } catch (err) {
      this.fail('BAD_FRAMING', t, z + 1, 'variant type string is not a valid type', err);
    }
    if (depth + 1 + ct.depth > MAX_DEPTH) this.fail('BAD_FRAMING', t, s, `nesting deeper than ${MAX_DEPTH}`);
    return new Variant(ct.str, this.value(ct, s, z, depth + 1));
  }

  array(t: GVType, s: number, e: number, depth: number): GValue {
    const el = t.element as GVType;
    // A plain Uint8Array view even when the input is a Buffer, so values compare equal
    // whatever the caller read the bytes with.
    if (el.code === 'y') return new Uint8Array(this.bytes.buffer, this.bytes.byteOffset + s, e - s);
    if (depth >= MAX_DEPTH) this.fail('BAD_FRAMING', t, s, `nesting deeper than ${MAX_DEPTH}`);
    const size = e - s;
    if (size === 0) return [];
    const fs = el.fixedSize;
    if (fs !== 0) {
      if (size % fs !== 0) this.fail('BAD_FRAMING', t, s, `array size ${size} is not a multiple of the element size ${fs}`);
      const n = size / fs;
      const out: GValue[] = new Array(n);
      if (el.code === 'd') keepDoubleBits(out);
      for (let i = 0, p = s; i < n; i++, p += fs) out[i] = this.value(el, p, p + fs, depth + 1);
      return out;
    }
    const w = offsetWidth(size);
    if (size < w) this.fail('TRUNCATED', t, s, 'array too small for its offset table');
    const last = this.offset(e - w, w);
    if (last > size - w) this.fail('BAD_FRAMING', t, e - w, `last framing offset ${last} points outside the array`);
    const tableBytes = size - last;
    if (tableBytes % w !== 0) this.fail('BAD_FRAMING', t, s + last, 'offset table size is not a multiple of the offset width');
    const n = tableBytes / w;
    const tableStart = s + last;
    const out: GValue[] = new Array(n);
    const a = el.align;
    let pos = s;
    for (let i = 0; i < n; i++) {
      const start = alignUp(pos, a);
      const end = s + this.offset(tableStart + i * w, w);
      if (end < start || end > tableStart) this.fail('BAD_FRAMING', t, tableStart + i * w, `framing offset of element ${i} is out of order or out of range`);
      out[i] = this.value(el, start, end, depth + 1);
      pos = end;
    }
    return out;
  }

  maybe(t: GVType, s: number, e: number, depth: number): GValue {
    if (e === s) return null;
    if (depth >= MAX_DEPTH) this.fail('BAD_FRAMING', t, s, `nesting deeper than ${MAX_DEPTH}`);
    const el = t.element as GVType;
    let v: GValue;
    if (el.fixedSize !== 0) {
      if (e - s !== el.fixedSize) this.fail('BAD_FRAMING', t, s, `maybe of a fixed-size type must be 0 or ${el.fixedSize} bytes, has ${e - s}`);
      v = this.value(el, s, e, depth + 1);
    } else {
      // The last byte is a padding zero that tells "just" from "nothing".
      v = this.value(el, s, e - 1, depth + 1);
    }
    return el.code === 'm' ? [v] : v;
  }

  tuple(t: GVType, s: number, e: number, depth: number): GValue[] {
    if (depth >= MAX_DEPTH) this.fail('BAD_FRAMING', t, s, `nesting deeper than ${MAX_DEPTH}`);
    const members = t.members;
    const n = members.length;
    const out: GValue[] = new Array(n);
    if (n === 0) return out; // `()`: its one byte was size-checked in value()
    keepDoubleBits(out);
    const size = e - s;
    const w = t.nOffsets === 0 ? 0 : offsetWidth(size);
    const bodyEnd = e - t.nOffsets * w;
    if (bodyEnd < s || (t.nOffsets !== 0 && size === 0)) this.fail('TRUNCATED', t, s, 'tuple too small for its offset table');
    let pos = s;
    let k = 0;
    for (let i = 0; i < n; i++) {
      const m = members[i];
      const start = alignUp(pos, m.align);
      let end: number;
      if (m.fixedSize !== 0) {
        end = start + m.fixedSize;
        if (end > bodyEnd) this.fail('TRUNCATED', t, start, `member ${i} runs past the end of the tuple`);
      } else if (i === n - 1) {
        end = bodyEnd;
        if (start > end) this.fail('BAD_FRAMING', t, start, `member ${i} starts past the end of the tuple`);
      } else {
        k++;
        end = s + this.offset(e - k * w, w);
        if (end < start || end > bodyEnd) this.fail('BAD_FRAMING', t, e - k * w, `framing offset of member ${i} is out of order or out of range`);
      }
      out[i] = this.value(m, start, end, depth + 1);
      pos = end;
    }
    return out;
  }
}

/**
 * Deserialize `bytes` as one value of `type` (spec/gvariant.md section 3).
 *
 * Numbers are read little-endian. `ay` values are plain Uint8Array views into the
 * memory of `bytes` (no copy): copy them if that memory will be reused. The whole input is the value: its length frames it.
 *
 * Crash guarantee: never reads outside `bytes`, and throws only `GVariantError`
 * (`TRUNCATED`, `BAD_FRAMING`, `BAD_VALUE`; `BAD_TYPE` for a bad `type` argument).
 * Accepts some non-normal data (see `isNormalForm` / `decodeNormal` for the strict
 * check OSTree applies to metadata objects). Nesting is limited to 128 levels.
 * Pure; no locking. Time and memory are linear in the input size.
 */
export function decode<T = GValue>(type: string | GVType, bytes: Uint8Array): T {
  const t = toType(type);
  if (!(bytes instanceof Uint8Array)) throw new TypeError('decode: bytes must be a Uint8Array');
  const r = new Reader(bytes);
  try {
    return r.value(t, 0, bytes.length, 0) as T;
  } catch (err) {
    if (err instanceof GVariantError) throw err;
    // Defence in depth: any other failure is reported as bad data, flagged as internal.
    throw new GVariantError('BAD_FRAMING', `Invalid GVariant data for type '${t.str}': internal decoder failure`, { type: t.str, internal: true }, { cause: err });
  }
}
