/**
 * GVariant text format printer, matching GLib's `g_variant_print(value, FALSE)`, which
 * is what `ostree show` and `ostree summary --view` use for metadata values.
 *
 * The rules mirrored here (observable output of GLib 2.74):
 * - Top-level values are not type-annotated, but everything inside a `<variant>` is,
 *   and within one array or dictionary only the first element carries the annotation
 *   (`<[byte 0x01, 0x02]>`, `<uint64 5>`, `<@as []>`); int32, strings, booleans and
 *   doubles are never annotated because they are the text format's defaults.
 * - Strings use single quotes unless they contain one; non-printable characters are
 *   escaped as \n, \t, ... or \uXXXX / \UXXXXXXXX.
 * - An `ay` whose only NUL is its last byte prints as a bytestring b'...', with C-style
 *   escapes for the content (octal for other control and non-ASCII bytes).
 * - Doubles print as C's `%.17g` (exactly rounded, ties to even), plus `.0` when the
 *   result would otherwise read back as an integer.
 * - Nested maybes drop "just" except where it is needed to keep "just nothing".
 */

import { GVariantError } from './errors.js';
import { MAX_DEPTH, parseType, toType, type GVType } from './type.js';
import { Variant, type GValue } from './value.js';

const ANNOTATION: Record<string, string> = {
  y: 'byte ',
  n: 'int16 ',
  q: 'uint16 ',
  u: 'uint32 ',
  h: 'handle ',
  x: 'int64 ',
  t: 'uint64 ',
  o: 'objectpath ',
  g: 'signature ',
};

function mismatch(t: GVType, v: unknown): never {
  throw new GVariantError('BAD_VALUE', `print: value does not match GVariant type '${t.str}'`, { type: t.str, got: typeof v });
}

/** C `%.17g` for a double, computed exactly with BigInt (round half to even, like glibc). */
export function formatDouble17g(x: number): string {
  const dv = new DataView(new ArrayBuffer(8));
  dv.setFloat64(0, x);
  const neg = (dv.getUint8(0) & 0x80) !== 0;
  const sign = neg ? '-' : '';
  if (Number.isNaN(x)) return sign + 'nan';
  if (!Number.isFinite(x)) return sign + 'inf';
  if (x === 0) return sign + '0';
  const bits = dv.getBigUint64(0) & 0x7fffffffffffffffn;
  const expBits = Number(bits >> 52n);
  let mant = bits & 0xfffffffffffffn;
  let e2: number;
  if (expBits === 0) e2 = -1074;
  else {
    mant |= 1n << 52n;
    e2 = expBits - 1075;
  }
  // |x| = D * 10^dexp exactly
  let digits: string;
  let dexp: number;
  if (e2 >= 0) {
    digits = (mant << BigInt(e2)).toString();
    dexp = 0;
  } else {
    digits = (mant * 5n ** BigInt(-e2)).toString();
    dexp = e2;
  }
  const P = 17;
  let X = digits.length - 1 + dexp; // decimal exponent of the leading digit
  let sig: string;
  if (digits.length > P) {
    let head = BigInt(digits.slice(0, P));
    const first = digits.charCodeAt(P) - 48;
    const tailNonZero = /[1-9]/.test(digits.slice(P + 1));
    if (first > 5 || (first === 5 && (tailNonZero || (head & 1n) === 1n))) head += 1n;
    sig = head.toString();
    if (sig.length > P) {
      sig = sig.slice(0, P);
      X += 1;
    }
  } else {
    sig = digits;
  }
  sig = sig.replace(/0+$/, '');
  if (sig === '') sig = '0';
  if (X < -4 || X >= P) {
    const m = sig.length > 1 ? `${sig[0]}.${sig.slice(1)}` : sig;
    return `${sign}${m}e${X < 0 ? '-' : '+'}${String(Math.abs(X)).padStart(2, '0')}`;
  }
  if (X >= 0) {
    const int = sig.slice(0, X + 1).padEnd(X + 1, '0');
    const frac = sig.slice(X + 1);
    return sign + int + (frac ? `.${frac}` : '');
  }
  return `${sign}0.${'0'.repeat(-X - 1)}${sig}`;
}

// GLib's g_unichar_isprint: everything except controls, format characters,
// unassigned code points and surrogates.
const NON_PRINTABLE = /[\p{Cc}\p{Cf}\p{Cn}\p{Cs}]/u;

const SHORT_ESCAPES: Record<number, string> = { 7: 'a', 8: 'b', 12: 'f', 10: 'n', 13: 'r', 9: 't', 11: 'v' };

function quoteString(s: string): string {
  const quote = s.includes("'") ? '"' : "'";
  let out = quote;
  for (const ch of s) {
    const c = ch.codePointAt(0) as number;
    if (ch === quote || ch === '\\') out += '\\';
    if (!NON_PRINTABLE.test(ch)) {
      out += ch;
    } else if (c < 0x10000) {
      const short = SHORT_ESCAPES[c];
      out += short !== undefined ? `\\${short}` : `\\u${c.toString(16).padStart(4, '0')}`;
    } else {
      out += `\\U${c.toString(16).padStart(8, '0')}`;
    }
  }
  return out + quote;
}

const BYTE_ESCAPES: Record<number, string> = { 8: 'b', 12: 'f', 10: 'n', 13: 'r', 9: 't', 11: 'v', 0x5c: '\\', 0x22: '"' };

/** GLib's g_strescape over the bytes before the final NUL. */
function quoteByteString(b: Uint8Array): string {
  let body = '';
  let hasSingle = false;
  for (let i = 0; i < b.length - 1; i++) {
    const c = b[i];
    if (c === 0x27) hasSingle = true;
    const e = BYTE_ESCAPES[c];
    if (e !== undefined) body += `\\${e}`;
    else if (c < 0x20 || c >= 0x7f) body += `\\${c.toString(8).padStart(3, '0')}`;
    else body += String.fromCharCode(c);
  }
  return hasSingle ? `b"${body}"` : `b'${body}'`;
}

function isByteString(b: Uint8Array): boolean {
  return b.length > 0 && b.indexOf(0) === b.length - 1;
}

function out(t: GVType, v: GValue, annotate: boolean, depth: number): string {
  if (depth > MAX_DEPTH + 1) throw new GVariantError('BAD_VALUE', `print: nesting deeper than ${MAX_DEPTH}`, { type: t.str });
  switch (t.code) {
    case 'b':
      if (typeof v !== 'boolean') mismatch(t, v);
      return v ? 'true' : 'false';
    case 'y':
      if (typeof v !== 'number') mismatch(t, v);
      return (annotate ? 'byte ' : '') + '0x' + (v & 0xff).toString(16).padStart(2, '0');
    case 'n':
    case 'q':
    case 'i':
    case 'u':
    case 'h':
      if (typeof v !== 'number') mismatch(t, v);
      return (annotate ? (ANNOTATION[t.code] ?? '') : '') + String(v);
    case 'x':
    case 't':
      if (typeof v !== 'bigint') mismatch(t, v);
      return (annotate ? ANNOTATION[t.code] : '') + v.toString();
    case 'd': {
      if (typeof v !== 'number') mismatch(t, v);
      const s = formatDouble17g(v);
      return /[.enN]/.test(s) ? s : s + '.0';
    }
    case 's':
      if (typeof v !== 'string') mismatch(t, v);
      return quoteString(v);
    case 'o':
    case 'g':
      if (typeof v !== 'string') mismatch(t, v);
      return (annotate ? ANNOTATION[t.code] : '') + `'${v}'`;
    case 'v': {
      if (!(v instanceof Variant)) mismatch(t, v);
      return `<${out(parseType(v.type), v.value, true, depth + 1)}>`;
    }
    case 'm':
      return maybe(t, v, annotate, depth);
    case 'a':
      return array(t, v, annotate, depth);
    case '{': {
      if (!Array.isArray(v) || v.length !== 2) mismatch(t, v);
      return `{${out(t.members[0], v[0], annotate, depth + 1)}, ${out(t.members[1], v[1], annotate, depth + 1)}}`;
    }
    default: {
      const n = t.members.length;
      if (!Array.isArray(v) || v.length !== n) mismatch(t, v);
      const parts = t.members.map((m, i) => out(m, v[i], annotate, depth + 1));
      return n === 1 ? `(${parts[0]},)` : `(${parts.join(', ')})`;
    }
  }
}

function maybe(t: GVType, v: GValue, annotate: boolean, depth: number): string {
  const prefix = annotate ? `@${t.str} ` : '';
  if (v === null) return prefix + 'nothing';
  // Walk down the chain of maybes; stop at the first "nothing".
  let et: GVType = t;
  let cur: GValue = v;
  let level = 0;
  while (et.code === 'm') {
    if (cur === null) return prefix + 'just '.repeat(level) + 'nothing';
    const el = et.element as GVType;
    if (el.code === 'm') {
      if (!Array.isArray(cur) || cur.length !== 1) mismatch(et, cur);
      cur = cur[0];
    }
    et = el;
    level++;
  }
  return prefix + out(et, cur, false, depth + level);
}

function array(t: GVType, v: GValue, annotate: boolean, depth: number): string {
  const el = t.element as GVType;
  if (el.code === 'y') {
    if (!(v instanceof Uint8Array)) mismatch(t, v);
    if (isByteString(v)) return quoteByteString(v);
    if (v.length === 0) return annotate ? `@${t.str} []` : '[]';
    let s = '[' + (annotate ? 'byte ' : '');
    for (let i = 0; i < v.length; i++) s += (i ? ', 0x' : '0x') + v[i].toString(16).padStart(2, '0');
    return s + ']';
  }
  if (!Array.isArray(v)) mismatch(t, v);
  if (el.code === '{') {
    if (v.length === 0) return annotate ? `@${t.str} {}` : '{}';
    const parts: string[] = [];
    let ann = annotate;
    for (const e of v) {
      if (!Array.isArray(e) || e.length !== 2) mismatch(el, e);
      parts.push(`${out(el.members[0], e[0], ann, depth + 2)}: ${out(el.members[1], e[1], ann, depth + 2)}`);
      ann = false;
    }
    return `{${parts.join(', ')}}`;
  }
  if (v.length === 0) return annotate ? `@${t.str} []` : '[]';
  const parts: string[] = [];
  let ann = annotate;
  for (const e of v) {
    parts.push(out(el, e, ann, depth + 1));
    ann = false;
  }
  return `[${parts.join(', ')}]`;
}

/**
 * Render a value in the GVariant text format the way GLib's
 * `g_variant_print(value, type_annotate=FALSE)` does (e.g. `{'version': <'1.0'>}`,
 * `<uint64 5>`, `<[byte 0x01]>`, `b'user.a'`). The output parses back with `parseText`.
 * With `{ typeAnnotate: true }` it matches `g_variant_print(value, TRUE)`, the form of
 * `ostree show --raw` (`@ay []`, `uint64 5` at the top level too).
 * Throws `GVariantError` `BAD_VALUE` when `value` does not have the shape of `type`.
 * Pure; no locking.
 */
export function print(type: string | GVType, value: GValue, options?: { typeAnnotate?: boolean }): string {
  return out(toType(type), value, options?.typeAnnotate === true, 0);
}
