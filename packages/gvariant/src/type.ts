/**
 * GVariant type strings, parsed once into a tree that carries everything the codec
 * needs: alignment, fixed size (0 = variable), and for tuples the number of framing
 * offsets. See spec/gvariant.md sections 2 and 3.5.
 *
 * Only definite types are accepted (no `r`, `*`, `?`), because only definite types
 * can be serialized. Nesting is limited to MAX_DEPTH levels, as GLib does, so no
 * parser or codec recursion can be driven arbitrarily deep by a type string.
 *
 * Parsed trees are cached in a bounded map: OSTree uses a handful of types over and
 * over (every `{sv}` entry of a commit's metadata parses its variant's type).
 */

import { GVariantError, quoteForMessage } from './errors.js';

/** GLib's G_VARIANT_MAX_RECURSION_DEPTH: the deepest container nesting allowed. */
export const MAX_DEPTH = 128;

/** Longest type string accepted; GLib's limit for a D-Bus signature is 255, types may be longer. */
export const MAX_TYPE_LENGTH = 65535;

/** A parsed, definite GVariant type. Immutable; safe to share. */
export interface GVType {
  /** The type string, e.g. `a{sv}`. */
  readonly str: string;
  /** First character of the type string: `y b n q i u h x t d s o g v a m ( {`. */
  readonly code: string;
  /** Alignment in bytes: 1, 2, 4 or 8. */
  readonly align: number;
  /** Serialized size when fixed; 0 when the size is variable. */
  readonly fixedSize: number;
  /** Element type of `a` and `m`. */
  readonly element: GVType | null;
  /** Members of a tuple `(...)` or dict entry `{KV}` (always 2); empty otherwise. */
  readonly members: readonly GVType[];
  /** Tuples and dict entries: the number of framing offsets (variable members except the last). */
  readonly nOffsets: number;
  /** Container nesting below this type (0 for basic types and `v`). */
  readonly depth: number;
}

const BASIC: Record<string, [align: number, size: number]> = {
  y: [1, 1],
  b: [1, 1],
  n: [2, 2],
  q: [2, 2],
  i: [4, 4],
  u: [4, 4],
  h: [4, 4],
  x: [8, 8],
  t: [8, 8],
  d: [8, 8],
  s: [1, 0],
  o: [1, 0],
  g: [1, 0],
};

function leaf(code: string): GVType {
  const info = BASIC[code];
  if (code === 'v') {
    return Object.freeze({ str: 'v', code: 'v', align: 8, fixedSize: 0, element: null, members: Object.freeze([]), nOffsets: 0, depth: 0 });
  }
  return Object.freeze({ str: code, code, align: info[0], fixedSize: info[1], element: null, members: Object.freeze([]), nOffsets: 0, depth: 0 });
}

const LEAVES: Record<string, GVType> = {};
for (const c of 'ybnqiuhxtdsogv') LEAVES[c] = leaf(c);

/** True for the basic type codes allowed as dict-entry keys. */
export function isBasicCode(c: string): boolean {
  return c.length === 1 && c in BASIC;
}

function alignUp(n: number, a: number): number {
  const r = n % a;
  return r === 0 ? n : n + a - r;
}

function makeContainer(str: string, code: string, element: GVType | null, members: GVType[]): GVType {
  if (code === 'a' || code === 'm') {
    const el = element as GVType;
    return Object.freeze({ str, code, align: el.align, fixedSize: 0, element: el, members: Object.freeze([]), nOffsets: 0, depth: el.depth + 1 });
  }
  // tuple or dict entry
  let align = 1;
  let depth = 0;
  let pos = 0;
  let fixed = true;
  let nOffsets = 0;
  for (let i = 0; i < members.length; i++) {
    const m = members[i];
    if (m.align > align) align = m.align;
    if (m.depth + 1 > depth) depth = m.depth + 1;
    if (m.fixedSize === 0) {
      fixed = false;
      if (i !== members.length - 1) nOffsets++;
    } else if (fixed) {
      pos = alignUp(pos, m.align) + m.fixedSize;
    }
  }
  // The unit tuple `()` is one byte; a non-empty all-fixed tuple is padded to its alignment.
  const fixedSize = members.length === 0 ? 1 : fixed ? alignUp(pos, align) : 0;
  if (members.length === 0) depth = 1;
  return Object.freeze({ str, code, align, fixedSize, element: null, members: Object.freeze(members), nOffsets, depth });
}

function badType(type: string, reason: string, at: number): never {
  throw new GVariantError('BAD_TYPE', `Invalid GVariant type string ${quoteForMessage(type)}: ${reason} at position ${at}`, {
    type: type.length > 200 ? type.slice(0, 200) : type,
    position: at,
    reason,
  });
}

/**
 * Parse one complete type starting at `pos`. Returns the type and the position after it.
 * `level` counts enclosing containers; exceeding MAX_DEPTH is an error.
 */
function scan(s: string, pos: number, level: number): [GVType, number] {
  if (pos >= s.length) badType(s, 'unexpected end', pos);
  const c = s[pos];
  const l = LEAVES[c];
  if (l !== undefined) return [l, pos + 1];
  if (level >= MAX_DEPTH) badType(s, `nesting deeper than ${MAX_DEPTH}`, pos);
  switch (c) {
    case 'a':
    case 'm': {
      const [el, end] = scan(s, pos + 1, level + 1);
      return [makeContainer(s.slice(pos, end), c, el, []), end];
    }
    case '(': {
      const members: GVType[] = [];
      let p = pos + 1;
      while (p < s.length && s[p] !== ')') {
        const [m, end] = scan(s, p, level + 1);
        members.push(m);
        p = end;
      }
      if (p >= s.length) badType(s, "missing ')'", p);
      return [makeContainer(s.slice(pos, p + 1), '(', null, members), p + 1];
    }
    case '{': {
      const k = s[pos + 1];
      if (k === undefined || !isBasicCode(k)) badType(s, 'dict entry key must be a basic type', pos + 1);
      const [v, end] = scan(s, pos + 2, level + 1);
      if (s[end] !== '}') badType(s, "dict entry needs exactly two types and a '}'", end);
      return [makeContainer(s.slice(pos, end + 1), '{', null, [LEAVES[k], v]), end + 1];
    }
    default:
      return badType(s, `unexpected character ${quoteForMessage(c)}`, pos);
  }
}

const CACHE_LIMIT = 512;
const cache = new Map<string, GVType>();

/**
 * Parse a GVariant type string into a `GVType` tree.
 *
 * Accepts exactly one complete definite type (`a{sv}`, `(uuua(ayay))`, `()`...).
 * Throws `GVariantError` with code `BAD_TYPE` (data: `{ type, position, reason }`) for
 * anything else, including indefinite types, trailing characters, dict entries with a
 * non-basic key, and nesting deeper than 128 containers.
 * Pure; results are cached (bounded) and frozen. Locking: none.
 */
export function parseType(type: string): GVType {
  const hit = cache.get(type);
  if (hit !== undefined) return hit;
  if (typeof type !== 'string') throw new TypeError('parseType: type must be a string');
  if (type.length > MAX_TYPE_LENGTH) badType(type, `longer than ${MAX_TYPE_LENGTH} characters`, MAX_TYPE_LENGTH);
  const [t, end] = scan(type, 0, 0);
  if (end !== type.length) badType(type, 'trailing characters after a complete type', end);
  if (type.length <= 256) {
    if (cache.size >= CACHE_LIMIT) cache.clear();
    cache.set(type, t);
  }
  return t;
}

/** Accepts a type string or an already-parsed type. */
export function toType(type: string | GVType): GVType {
  return typeof type === 'string' ? parseType(type) : type;
}

/** True when `s` is one valid definite type string. Never throws. */
export function isValidType(s: string): boolean {
  try {
    parseType(s);
    return true;
  } catch {
    return false;
  }
}

/**
 * D-Bus object path rule (GVariant `o`): `/`, or `/`-separated non-empty elements of
 * `[A-Za-z0-9_]`, with no trailing `/`.
 */
export function isObjectPath(s: string): boolean {
  const n = s.length;
  if (n === 0 || s.charCodeAt(0) !== 0x2f) return false;
  if (n === 1) return true;
  let prevSlash = true;
  for (let i = 1; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x2f) {
      if (prevSlash) return false;
      prevSlash = true;
    } else if ((c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c === 0x5f) {
      prevSlash = false;
    } else {
      return false;
    }
  }
  return !prevSlash;
}

/**
 * D-Bus signature rule (GVariant `g`): zero or more complete types built only from
 * `ybnqiuxthdvasog(){}` (no maybe types), as GLib checks it.
 */
export function isSignature(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    if (!'ybnqiuxthdvasog(){}'.includes(s[i])) return false;
  }
  let p = 0;
  try {
    while (p < s.length) p = scan(s, p, 0)[1];
  } catch {
    return false;
  }
  return true;
}

/**
 * Parse one complete type that starts at `pos` inside a longer text (used by the text
 * format parser for `@T` annotations). Returns the type and the position after it.
 */
export function scanType(text: string, pos: number): [GVType, number] {
  const [t, end] = scan(text, pos, 0);
  return [parseType(t.str), end];
}
