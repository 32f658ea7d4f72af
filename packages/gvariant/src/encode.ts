/**
 * GVariant serializer. Always writes normal form (spec/gvariant.md sections 3 and 4):
 * zero padding, the framing-offset width from section 3.3, no gaps, no trailing bytes.
 *
 * Design:
 * - One pass into one growable buffer. Positions are absolute; because every container
 *   starts aligned to its own alignment, aligning the absolute position is the same as
 *   aligning within the container. Padding is never written: the buffer is zero-filled
 *   when allocated and the cursor only moves forward.
 * - A container writes its children, then knows its body size, then picks the offset
 *   width and appends its framing offsets (tuples: reversed).
 * - Values are validated while writing. A mismatch throws `BAD_VALUE` with a path such
 *   as `.2[5].0` (`.k` tuple or dict-entry member, `[i]` array element, `<>` the value
 *   inside a variant, `?` the value inside a maybe). The path is assembled only on the
 *   error path, so valid input pays nothing for it.
 */

import { GVariantError } from './errors.js';
import { MAX_DEPTH, isObjectPath, isSignature, parseType, toType, type GVType } from './type.js';
import { Variant, type GValue } from './value.js';

const utf8 = new TextEncoder();

/** A value error on its way up; containers prepend their path segment. */
class ValueFault {
  constructor(
    public path: string,
    readonly type: string,
    readonly reason: string,
    readonly cause?: unknown,
  ) {}
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return `array(${v.length})`;
  if (v instanceof Uint8Array) return 'Uint8Array';
  if (v instanceof Variant) return 'Variant';
  return typeof v;
}

const hasIsWellFormed = typeof (String.prototype as { isWellFormed?: unknown }).isWellFormed === 'function';
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
function wellFormed(s: string): boolean {
  return hasIsWellFormed ? (s as unknown as { isWellFormed(): boolean }).isWellFormed() : !LONE_SURROGATE.test(s);
}

/** Choose the framing-offset width for a body of `body` bytes carrying `n` offsets (spec 3.3, writer side). */
export function chooseOffsetWidth(body: number, n: number): number {
  if (n === 0) return 0;
  if (body + n <= 0xff) return 1;
  if (body + 2 * n <= 0xffff) return 2;
  if (body + 4 * n <= 0xffffffff) return 4;
  return 8;
}

class Writer {
  buf: Uint8Array = new Uint8Array(256);
  view: DataView = new DataView(this.buf.buffer);
  pos = 0;

  ensure(n: number): void {
    const need = this.pos + n;
    if (need <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < need) cap *= 2;
    const nb = new Uint8Array(cap);
    nb.set(this.buf.subarray(0, this.pos));
    this.buf = nb;
    this.view = new DataView(nb.buffer);
  }

  align(a: number): void {
    const r = this.pos % a;
    if (r !== 0) {
      this.ensure(a - r);
      this.pos += a - r;
    }
  }

  value(t: GVType, v: GValue, depth: number): void {
    switch (t.code) {
      case 'y':
        if (typeof v !== 'number' || (v & 0xff) !== v) throw this.bad(t, v, 'an integer 0..255');
        this.ensure(1);
        this.buf[this.pos++] = v;
        return;
      case 'b':
        if (typeof v !== 'boolean') throw this.bad(t, v, 'a boolean');
        this.ensure(1);
        this.buf[this.pos++] = v ? 1 : 0;
        return;
      case 'n':
        if (typeof v !== 'number' || (v << 16) >> 16 !== v) throw this.bad(t, v, 'an integer -32768..32767');
        this.fixed(2).setInt16(this.pos - 2, v, true);
        return;
      case 'q':
        if (typeof v !== 'number' || (v & 0xffff) !== v) throw this.bad(t, v, 'an integer 0..65535');
        this.fixed(2).setUint16(this.pos - 2, v, true);
        return;
      case 'i':
      case 'h':
        if (typeof v !== 'number' || (v | 0) !== v) throw this.bad(t, v, 'a 32-bit signed integer');
        this.fixed(4).setInt32(this.pos - 4, v, true);
        return;
      case 'u':
        if (typeof v !== 'number' || v >>> 0 !== v) throw this.bad(t, v, 'a 32-bit unsigned integer');
        this.fixed(4).setUint32(this.pos - 4, v, true);
        return;
      case 'x':
        if (typeof v !== 'bigint' || BigInt.asIntN(64, v) !== v) throw this.bad(t, v, 'a bigint in the int64 range');
        this.fixed(8).setBigInt64(this.pos - 8, v, true);
        return;
      case 't':
        if (typeof v !== 'bigint' || BigInt.asUintN(64, v) !== v) throw this.bad(t, v, 'a bigint in the uint64 range');
        this.fixed(8).setBigUint64(this.pos - 8, v, true);
        return;
      case 'd':
        if (typeof v !== 'number') throw this.bad(t, v, 'a number');
        this.fixed(8).setFloat64(this.pos - 8, v, true);
        return;
      case 's':
      case 'o':
      case 'g':
        if (typeof v !== 'string') throw this.bad(t, v, 'a string');
        if (t.code === 'o' && !isObjectPath(v)) throw new ValueFault('', t.str, 'not a valid D-Bus object path');
        if (t.code === 'g' && !isSignature(v)) throw new ValueFault('', t.str, 'not a valid D-Bus signature');
        this.string(t, v);
        return;
      case 'v':
        this.variant(t, v, depth);
        return;
      case 'a':
        this.array(t, v, depth);
        return;
      case 'm':
        this.maybe(t, v, depth);
        return;
      default:
        this.tuple(t, v, depth);
    }
  }

  /** Reserve `n` aligned bytes (`n` is the alignment of fixed basic types) and return the view. */
  fixed(n: number): DataView {
    this.align(n);
    this.ensure(n);
    this.pos += n;
    return this.view;
  }

  bad(t: GVType, v: unknown, expected: string): ValueFault {
    return new ValueFault('', t.str, `expected ${expected}, got ${describe(v)}${typeof v === 'number' || typeof v === 'bigint' ? ` ${String(v)}` : ''}`);
  }

  string(t: GVType, str: string): void {
    const n = str.length;
    this.ensure(n * 3 + 1);
    const b = this.buf;
    let p = this.pos;
    let i = 0;
    for (; i < n; i++) {
      const c = str.charCodeAt(i);
      if (c >= 0x80 || c === 0) break;
      b[p++] = c;
    }
    if (i < n) {
      if (str.indexOf('\0', i) !== -1) throw new ValueFault('', t.str, 'string contains a NUL character');
      if (!wellFormed(str)) throw new ValueFault('', t.str, 'string contains a lone UTF-16 surrogate');
      p += utf8.encodeInto(str.slice(i), b.subarray(p)).written;
    }
    b[p++] = 0;
    this.pos = p;
  }

  variant(t: GVType, v: GValue, depth: number): void {
    if (!(v instanceof Variant)) throw this.bad(t, v, 'a Variant');
    if (depth >= MAX_DEPTH) throw new ValueFault('', t.str, `nesting deeper than ${MAX_DEPTH}`);
    let ct: GVType;
    try {
      ct = parseType(v.type);
    } catch (err) {
      throw new ValueFault('', t.str, 'Variant has an invalid type string', err);
    }
    if (depth + 1 + ct.depth > MAX_DEPTH) throw new ValueFault('', t.str, `nesting deeper than ${MAX_DEPTH}`);
    this.align(8);
    try {
      this.value(ct, v.value, depth + 1);
    } catch (err) {
      throw prefix(err, '<>');
    }
    const ts = ct.str;
    this.ensure(ts.length + 1);
    const b = this.buf;
    let p = this.pos + 1; // the separator byte is already zero
    for (let i = 0; i < ts.length; i++) b[p++] = ts.charCodeAt(i);
    this.pos = p;
  }

  array(t: GVType, v: GValue, depth: number): void {
    const el = t.element as GVType;
    if (el.code === 'y') {
      if (!(v instanceof Uint8Array)) throw this.bad(t, v, 'a Uint8Array');
      this.ensure(v.length);
      this.buf.set(v, this.pos);
      this.pos += v.length;
      return;
    }
    if (!Array.isArray(v)) throw this.bad(t, v, 'an array');
    if (depth >= MAX_DEPTH) throw new ValueFault('', t.str, `nesting deeper than ${MAX_DEPTH}`);
    const n = v.length;
    if (n === 0) return;
    this.align(t.align);
    const start = this.pos;
    let i = 0;
    try {
      if (el.fixedSize !== 0) {
        for (; i < n; i++) this.value(el, v[i], depth + 1);
        return;
      }
      const ends: number[] = new Array(n);
      for (; i < n; i++) {
        this.align(el.align);
        this.value(el, v[i], depth + 1);
        ends[i] = this.pos - start;
      }
      this.offsets(start, ends, false);
    } catch (err) {
      throw prefix(err, `[${i}]`);
    }
  }

  maybe(t: GVType, v: GValue, depth: number): void {
    if (v === null) return;
    if (depth >= MAX_DEPTH) throw new ValueFault('', t.str, `nesting deeper than ${MAX_DEPTH}`);
    const el = t.element as GVType;
    let inner: GValue = v;
    if (el.code === 'm') {
      if (!Array.isArray(v) || v.length !== 1) throw this.bad(t, v, 'null or a one-element array (maybe of a maybe)');
      inner = v[0];
    }
    try {
      this.value(el, inner, depth + 1);
    } catch (err) {
      throw prefix(err, '?');
    }
    if (el.fixedSize === 0) {
      this.ensure(1);
      this.pos++; // the zero byte that marks "just"
    }
  }

  tuple(t: GVType, v: GValue, depth: number): void {
    const members = t.members;
    const n = members.length;
    if (!Array.isArray(v) || v.length !== n) throw this.bad(t, v, `an array of ${n} member${n === 1 ? '' : 's'}`);
    if (depth >= MAX_DEPTH) throw new ValueFault('', t.str, `nesting deeper than ${MAX_DEPTH}`);
    this.align(t.align);
    const start = this.pos;
    if (n === 0) {
      this.ensure(1);
      this.pos++; // `()` is one zero byte
      return;
    }
    const ends: number[] = t.nOffsets === 0 ? [] : new Array(t.nOffsets);
    let k = 0;
    let i = 0;
    try {
      for (; i < n; i++) {
        const m = members[i];
        this.align(m.align);
        this.value(m, v[i], depth + 1);
        if (m.fixedSize === 0 && i !== n - 1) ends[k++] = this.pos - start;
      }
    } catch (err) {
      throw prefix(err, `.${i}`);
    }
    if (t.fixedSize !== 0) {
      const end = start + t.fixedSize;
      this.ensure(end - this.pos);
      this.pos = end;
    } else if (k !== 0) {
      this.offsets(start, ends, true);
    }
  }

  /** Append framing offsets for the container that began at `start`. */
  offsets(start: number, ends: number[], reverse: boolean): void {
    const n = ends.length;
    const w = chooseOffsetWidth(this.pos - start, n);
    this.ensure(n * w);
    const b = this.buf;
    const view = this.view;
    let p = this.pos;
    for (let j = 0; j < n; j++) {
      const x = ends[reverse ? n - 1 - j : j];
      switch (w) {
        case 1:
          b[p] = x;
          break;
        case 2:
          view.setUint16(p, x, true);
          break;
        case 4:
          view.setUint32(p, x, true);
          break;
        default:
          view.setBigUint64(p, BigInt(x), true);
      }
      p += w;
    }
    this.pos = p;
  }
}

function prefix(err: unknown, seg: string): unknown {
  if (err instanceof ValueFault) err.path = seg + err.path;
  return err;
}

/**
 * Serialize `value` as `type` in normal form (spec/gvariant.md sections 3-4), with
 * numbers little-endian. See `GValue` for the JavaScript shape each type expects.
 *
 * Throws `GVariantError` `BAD_VALUE` when the value does not fit the type; `data` holds
 * `{ path, type, reason }` where `path` locates the bad part (`.2[5].0`, empty for the
 * root) and `type` is the type expected there. Integers must be in range (x/t as bigint),
 * strings must not contain NUL or lone surrogates, `o`/`g` must be valid object paths /
 * signatures, Variants must carry a valid type. `BAD_TYPE` for a bad `type` argument.
 * Pure; no locking; returns a new buffer exactly the size of the serialization.
 */
export function encode(type: string | GVType, value: GValue): Uint8Array {
  const t = toType(type);
  const w = new Writer();
  try {
    w.value(t, value, 0);
  } catch (err) {
    if (err instanceof ValueFault) {
      const where = err.path === '' ? 'at the root' : `at ${err.path}`;
      throw new GVariantError(
        'BAD_VALUE',
        `Value does not match GVariant type '${t.str}' ${where} (type '${err.type}'): ${err.reason}`,
        { path: err.path, type: err.type, reason: err.reason },
        err.cause === undefined ? undefined : { cause: err.cause },
      );
    }
    throw err;
  }
  return w.buf.slice(0, w.pos);
}
