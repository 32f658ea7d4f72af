/**
 * A parser for the GVariant text format, for values given on the command line
 * (`--add-metadata=KEY=VALUE`, `--set=KEY=VALUE`) and written by `print`.
 *
 * Supported: strings '…' and "…" with GLib's escapes, bytestrings b'…', integers
 * (decimal, 0x hex, leading-0 octal, optional sign), doubles (`1.5`, `1e3`, `inf`,
 * `nan`), `true`/`false`, type keywords (`byte 0x2a`, `uint64 5`, `int16 -1`,
 * `objectpath '/a'`, …), `@T value` annotations, arrays `[…]`, tuples `(…)`,
 * dictionaries `{k: v, …}`, dict entries `{k, v}`, variants `<…>`, `nothing` and
 * `just …`.
 *
 * Types are resolved in two steps, a simplified form of GLib's: an expected type
 * (the hint, an annotation or the enclosing container) is pushed down; without one,
 * the type is inferred — bare integers are int32, numbers with `.`/`e` are double,
 * and the elements of an array or dictionary take the first element type that is
 * fixed by an annotation, keyword or non-numeric literal. Values whose type cannot be
 * inferred (`[]`, `nothing` without a type) are rejected, as GLib rejects them.
 */

import { GVariantError, quoteForMessage } from './errors.js';
import { MAX_DEPTH, isObjectPath, isSignature, parseType, scanType, type GVType } from './type.js';
import { Variant, type GValue } from './value.js';

type Node =
  | { k: 'num'; text: string; at: number }
  | { k: 'str'; value: string; at: number }
  | { k: 'bytes'; value: Uint8Array; at: number }
  | { k: 'bool'; value: boolean; at: number }
  | { k: 'typed'; type: GVType; inner: Node; at: number } // keyword or @annotation
  | { k: 'array'; items: Node[]; at: number }
  | { k: 'tuple'; items: Node[]; at: number }
  | { k: 'dict'; keys: Node[]; values: Node[]; at: number }
  | { k: 'entry'; key: Node; value: Node; at: number }
  | { k: 'variant'; inner: Node; at: number }
  | { k: 'nothing'; at: number }
  | { k: 'just'; inner: Node; at: number };

const KEYWORD_TYPES: Record<string, string> = {
  boolean: 'b',
  byte: 'y',
  int16: 'n',
  uint16: 'q',
  int32: 'i',
  uint32: 'u',
  handle: 'h',
  int64: 'x',
  uint64: 't',
  double: 'd',
  string: 's',
  objectpath: 'o',
  signature: 'g',
};

const INT_RANGE: Record<string, [bigint, bigint]> = {
  y: [0n, 0xffn],
  n: [-0x8000n, 0x7fffn],
  q: [0n, 0xffffn],
  i: [-0x80000000n, 0x7fffffffn],
  h: [-0x80000000n, 0x7fffffffn],
  u: [0n, 0xffffffffn],
  x: [-(1n << 63n), (1n << 63n) - 1n],
  t: [0n, (1n << 64n) - 1n],
};

function syntax(text: string, at: number, reason: string): never {
  throw new GVariantError('BAD_VALUE', `Cannot parse GVariant text ${quoteForMessage(text)} at position ${at}: ${reason}`, {
    position: at,
    reason,
  });
}

function isWordChar(c: string): boolean {
  return /[A-Za-z0-9_.+-]/.test(c);
}

class Parser {
  pos = 0;
  constructor(readonly text: string) {}

  ws(): void {
    while (this.pos < this.text.length && /\s/.test(this.text[this.pos])) this.pos++;
  }

  peek(): string {
    this.ws();
    return this.text[this.pos] ?? '';
  }

  expect(c: string): void {
    if (this.peek() !== c) syntax(this.text, this.pos, `expected '${c}'`);
    this.pos++;
  }

  word(): string {
    const start = this.pos;
    while (this.pos < this.text.length && isWordChar(this.text[this.pos])) this.pos++;
    return this.text.slice(start, this.pos);
  }

  value(depth: number): Node {
    if (depth > MAX_DEPTH) syntax(this.text, this.pos, `nesting deeper than ${MAX_DEPTH}`);
    const c = this.peek();
    const at = this.pos;
    switch (c) {
      case '':
        return syntax(this.text, at, 'unexpected end of input');
      case '@': {
        this.pos++;
        let t: GVType;
        let end: number;
        try {
          [t, end] = scanType(this.text, this.pos);
        } catch (err) {
          throw new GVariantError('BAD_TYPE', `Cannot parse GVariant text: invalid type annotation at position ${this.pos}`, { position: this.pos }, { cause: err });
        }
        this.pos = end;
        return { k: 'typed', type: t, inner: this.value(depth + 1), at };
      }
      case "'":
      case '"':
        return { k: 'str', value: this.string(), at };
      case '[': {
        this.pos++;
        const items: Node[] = [];
        if (this.peek() === ']') {
          this.pos++;
          return { k: 'array', items, at };
        }
        for (;;) {
          items.push(this.value(depth + 1));
          const n = this.peek();
          this.pos++;
          if (n === ']') return { k: 'array', items, at };
          if (n !== ',') syntax(this.text, this.pos - 1, "expected ',' or ']'");
        }
      }
      case '(': {
        this.pos++;
        const items: Node[] = [];
        if (this.peek() === ')') {
          this.pos++;
          return { k: 'tuple', items, at };
        }
        for (;;) {
          items.push(this.value(depth + 1));
          const n = this.peek();
          this.pos++;
          if (n === ')') {
            // like GLib: a one-member tuple is written `(x,)`
            if (items.length === 1) syntax(this.text, this.pos - 1, "a one-member tuple needs a ',' after its member");
            return { k: 'tuple', items, at };
          }
          if (n !== ',') syntax(this.text, this.pos - 1, "expected ',' or ')'");
          if (this.peek() === ')') {
            this.pos++;
            return { k: 'tuple', items, at };
          }
        }
      }
      case '{': {
        this.pos++;
        if (this.peek() === '}') {
          this.pos++;
          return { k: 'dict', keys: [], values: [], at };
        }
        const key = this.value(depth + 1);
        const sep = this.peek();
        this.pos++;
        if (sep === ',') {
          const value = this.value(depth + 1);
          this.expect('}');
          return { k: 'entry', key, value, at };
        }
        if (sep !== ':') syntax(this.text, this.pos - 1, "expected ':' or ','");
        const keys = [key];
        const values = [this.value(depth + 1)];
        for (;;) {
          const n = this.peek();
          this.pos++;
          if (n === '}') return { k: 'dict', keys, values, at };
          if (n !== ',') syntax(this.text, this.pos - 1, "expected ',' or '}'");
          keys.push(this.value(depth + 1));
          this.expect(':');
          values.push(this.value(depth + 1));
        }
      }
      case '<': {
        this.pos++;
        const inner = this.value(depth + 1);
        this.expect('>');
        return { k: 'variant', inner, at };
      }
      default:
        break;
    }
    if (c === 'b' && (this.text[this.pos + 1] === "'" || this.text[this.pos + 1] === '"')) {
      this.pos++;
      return { k: 'bytes', value: this.byteString(), at };
    }
    const w = this.word();
    if (w === '') syntax(this.text, at, `unexpected character ${quoteForMessage(c)}`);
    if (w === 'true' || w === 'false') return { k: 'bool', value: w === 'true', at };
    if (w === 'nothing') return { k: 'nothing', at };
    if (w === 'just') return { k: 'just', inner: this.value(depth + 1), at };
    const kt = KEYWORD_TYPES[w];
    if (kt !== undefined) return { k: 'typed', type: parseType(kt), inner: this.value(depth + 1), at };
    if (/^[+-]?(\d|\.\d|inf$|nan$)/.test(w)) return { k: 'num', text: w, at };
    return syntax(this.text, at, `unknown keyword ${quoteForMessage(w)}`);
  }


  string(): string {
    const q = this.text[this.pos++];
    let out = '';
    for (;;) {
      if (this.pos >= this.text.length) syntax(this.text, this.pos, 'unterminated string');
      const c = this.text[this.pos++];
      if (c === q) return out;
      if (c !== '\\') {
        out += c;
        continue;
      }
      const e = this.text[this.pos++] ?? '';
      switch (e) {
        case 'a': out += '\x07'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'v': out += '\v'; break;
        case 'u':
        case 'U': {
          const len = e === 'u' ? 4 : 8;
          const hex = this.text.slice(this.pos, this.pos + len);
          if (!/^[0-9a-fA-F]+$/.test(hex) || hex.length !== len) syntax(this.text, this.pos, `invalid \\${e} escape`);
          const cp = parseInt(hex, 16);
          if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) || cp === 0) syntax(this.text, this.pos, 'invalid code point in escape');
          out += String.fromCodePoint(cp);
          this.pos += len;
          break;
        }
        case '':
          return syntax(this.text, this.pos, 'unterminated string');
        default:
          out += e;
      }
    }
  }

  byteString(): Uint8Array {
    const q = this.text[this.pos++];
    const bytes: number[] = [];
    const enc = new TextEncoder();
    for (;;) {
      if (this.pos >= this.text.length) syntax(this.text, this.pos, 'unterminated bytestring');
      const c = this.text[this.pos++];
      if (c === q) break;
      if (c !== '\\') {
        for (const b of enc.encode(c)) bytes.push(b);
        continue;
      }
      const e = this.text[this.pos++] ?? '';
      const simple: Record<string, number> = { a: 7, b: 8, f: 12, n: 10, r: 13, t: 9, v: 11 };
      if (e in simple) bytes.push(simple[e]);
      else if (/[0-7]/.test(e)) {
        let v = parseInt(e, 8);
        for (let i = 0; i < 2 && /[0-7]/.test(this.text[this.pos] ?? ''); i++) v = v * 8 + parseInt(this.text[this.pos++], 8);
        bytes.push(v & 0xff);
      } else if (e === '') syntax(this.text, this.pos, 'unterminated bytestring');
      else for (const b of enc.encode(e)) bytes.push(b);
    }
    bytes.push(0); // a bytestring carries its terminating NUL
    return Uint8Array.from(bytes);
  }
}

const isFloatText = (s: string): boolean => !/^[+-]?0[xX]/.test(s) && /[.eE]|inf|nan/.test(s);

/** A type fixed by the node itself (not by numeric defaults), or null. */
function strongType(n: Node): GVType | null {
  switch (n.k) {
    case 'typed':
      return n.type;
    case 'str':
      return parseType('s');
    case 'bool':
      return parseType('b');
    case 'bytes':
      return parseType('ay');
    case 'variant':
      return parseType('v');
    case 'array': {
      const el = firstStrong(n.items);
      return el ? parseType(`a${el.str}`) : null;
    }
    case 'dict': {
      const k = firstStrong(n.keys);
      const v = firstStrong(n.values);
      return k && v ? parseType(`a{${k.str}${v.str}}`) : null;
    }
    case 'entry': {
      const k = strongType(n.key);
      const v = strongType(n.value);
      return k && v ? parseType(`{${k.str}${v.str}}`) : null;
    }
    case 'tuple': {
      const ms = n.items.map(strongType);
      return ms.every((m) => m !== null) ? parseType(`(${ms.map((m) => (m as GVType).str).join('')})`) : null;
    }
    case 'just': {
      const t = strongType(n.inner);
      return t ? parseType(`m${t.str}`) : null;
    }
    default:
      return null;
  }
}

function firstStrong(nodes: Node[]): GVType | null {
  for (const n of nodes) {
    const t = strongType(n);
    if (t) return t;
  }
  return null;
}

/** The common type of sibling nodes: the first strong type, else numeric defaults. */
function unify(text: string, nodes: Node[], at: number): GVType {
  const strong = firstStrong(nodes);
  if (strong) return strong;
  if (nodes.length > 0 && nodes.every((n) => n.k === 'num')) {
    return parseType(nodes.some((n) => n.k === 'num' && isFloatText(n.text)) ? 'd' : 'i');
  }
  for (const n of nodes) {
    try {
      return defaultType(text, n);
    } catch {
      // try the next sibling
    }
  }
  return syntax(text, at, 'unable to infer the type');
}

function defaultType(text: string, n: Node): GVType {
  const strong = strongType(n);
  if (strong) return strong;
  switch (n.k) {
    case 'num':
      return parseType(isFloatText(n.text) ? 'd' : 'i');
    case 'array':
      return parseType(`a${unify(text, n.items, n.at).str}`);
    case 'dict':
      return parseType(`a{${unify(text, n.keys, n.at).str}${unify(text, n.values, n.at).str}}`);
    case 'entry':
      return parseType(`{${defaultType(text, n.key).str}${defaultType(text, n.value).str}}`);
    case 'tuple':
      return parseType(`(${n.items.map((m) => defaultType(text, m).str).join('')})`);
    case 'just':
      return parseType(`m${defaultType(text, n.inner).str}`);
    default:
      return syntax(text, n.at, 'unable to infer the type');
  }
}

function parseInteger(text: string, n: { text: string; at: number }, t: GVType): number | bigint {
  const m = /^([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)$/.exec(n.text);
  if (!m) syntax(text, n.at, `${quoteForMessage(n.text)} is not an integer`);
  const digits = m[2];
  let v = /^0[xX]/.test(digits) ? BigInt(digits) : digits.length > 1 && digits[0] === '0' ? BigInt(`0o${digits.slice(1)}`) : BigInt(digits);
  if (m[1] === '-') v = -v;
  const [lo, hi] = INT_RANGE[t.code];
  if (v < lo || v > hi) syntax(text, n.at, `${n.text} is out of range for type '${t.str}'`);
  return t.code === 'x' || t.code === 't' ? v : Number(v);
}

function parseDouble(text: string, n: { text: string; at: number }): number {
  const s = n.text.replace(/^\+/, '');
  if (/^-?inf$/.test(s)) return s[0] === '-' ? -Infinity : Infinity;
  if (/^-?nan$/.test(s)) return NaN;
  if (/^-?(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)$/.test(s) && !/[.eE]/.test(s)) {
    return Number(parseInteger(text, { text: s, at: n.at }, parseType('x')));
  }
  if (!/^-?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(s)) syntax(text, n.at, `${quoteForMessage(n.text)} is not a number`);
  const x = Number(s);
  // GLib rejects what strtod reports as out of range: overflow, and non-zero results
  // below DBL_MIN (subnormals); an underflow all the way to zero is accepted.
  if (!Number.isFinite(x) || (x !== 0 && Math.abs(x) < 2.2250738585072014e-308)) {
    syntax(text, n.at, `number too big for any type: ${quoteForMessage(n.text)}`);
  }
  return x;
}

function build(text: string, n: Node, t: GVType, depth: number): GValue {
  if (depth > MAX_DEPTH) syntax(text, n.at, `nesting deeper than ${MAX_DEPTH}`);
  const wrong = (): never => syntax(text, n.at, `value does not fit type '${t.str}'`);
  if (n.k === 'typed') {
    if (n.type.str !== t.str) syntax(text, n.at, `type '${n.type.str}' given where '${t.str}' is expected`);
    return build(text, n.inner, t, depth + 1);
  }
  switch (t.code) {
    case 'y':
    case 'n':
    case 'q':
    case 'i':
    case 'u':
    case 'h':
    case 'x':
    case 't':
      if (n.k !== 'num') return wrong();
      return parseInteger(text, n, t);
    case 'd':
      if (n.k !== 'num') return wrong();
      return parseDouble(text, n);
    case 'b':
      if (n.k !== 'bool') return wrong();
      return n.value;
    case 's':
    case 'o':
    case 'g':
      if (n.k !== 'str') return wrong();
      if (n.value.includes('\0')) syntax(text, n.at, 'string contains a NUL character');
      if (t.code === 'o' && !isObjectPath(n.value)) syntax(text, n.at, 'not a valid object path');
      if (t.code === 'g' && !isSignature(n.value)) syntax(text, n.at, 'not a valid signature');
      return n.value;
    case 'v': {
      if (n.k !== 'variant') return wrong();
      const ct = n.inner.k === 'typed' ? n.inner.type : defaultType(text, n.inner);
      return new Variant(ct.str, build(text, n.inner, ct, depth + 1));
    }
    case 'm': {
      if (n.k === 'nothing') return null;
      const el = t.element as GVType;
      const inner = build(text, n.k === 'just' ? n.inner : n, el, depth + 1);
      return el.code === 'm' ? [inner] : inner;
    }
    case 'a': {
      const el = t.element as GVType;
      if (el.code === 'y') {
        if (n.k === 'bytes') return n.value;
        if (n.k !== 'array') return wrong();
        return Uint8Array.from(n.items.map((i) => build(text, i, el, depth + 1) as number));
      }
      if (n.k === 'array') return n.items.map((i) => build(text, i, el, depth + 1));
      if (n.k === 'dict' && el.code === '{') {
        return n.keys.map((k, i) => [build(text, k, el.members[0], depth + 2), build(text, n.values[i], el.members[1], depth + 2)]);
      }
      return wrong();
    }
    case '{':
      if (n.k !== 'entry') return wrong();
      return [build(text, n.key, t.members[0], depth + 1), build(text, n.value, t.members[1], depth + 1)];
    default:
      if (n.k !== 'tuple' || n.items.length !== t.members.length) return wrong();
      return n.items.map((i, k) => build(text, i, t.members[k], depth + 1));
  }
}

/**
 * Parse GVariant text (the format `print` and GLib's `g_variant_print` write) into a
 * `Variant`. With `typeHint`, the text must be a value of that type (`'5'` with hint
 * `t` is `uint64 5`); without it the type is inferred as GLib does for unannotated
 * text: integers are int32, `1.5` is a double, `'x'` a string, `[…]` takes its
 * element type from its first typed element.
 * Throws `GVariantError` `BAD_VALUE` (data `{ position, reason }`) for malformed text
 * or a value that does not fit, `BAD_TYPE` for a bad type hint or annotation.
 * Pure; no locking.
 */
export function parseText(text: string, typeHint?: string): Variant {
  const p = new Parser(text);
  const node = p.value(0);
  if (p.peek() !== '') syntax(text, p.pos, 'trailing characters after the value');
  const t = typeHint !== undefined ? parseType(typeHint) : defaultType(text, node);
  return new Variant(t.str, build(text, node, t, 0));
}
