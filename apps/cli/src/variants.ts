/**
 * The few GVariant conversions the CLI needs for display and for metadata given on the command
 * line: text in (`--add-metadata=K=<GVARIANT-TEXT>`), text out (`show --print-metadata-key`,
 * `summary --view`), and a plain-JSON rendering for `--json`. The codec itself is
 * @larch/gvariant; this file only adapts it to the CLI's output rules.
 */
import { byteswap, decode, parseText, parseType, print, Variant, type GValue, type GVType } from '@larch/gvariant';
import { UsageError } from './context.js';

export { Variant };

/** A `s` value, as `--add-metadata-string` stores it. */
export function stringVariant(s: string): Variant {
  return new Variant('s', s);
}

/** A `b` value (`ostree.bootable`). */
export function booleanVariant(b: boolean): Variant {
  return new Variant('b', b);
}

/** `KEY=TEXT` with TEXT in GVariant text format; errors read `Parsing KEY=TEXT: DETAIL` as in ostree. */
export function metadataFromText(kv: string, key: string, text: string): [string, Variant] {
  try {
    return [key, parseText(text)];
  } catch (e) {
    throw new UsageError(`Parsing ${kv}: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/**
 * GVariant text of a value. With `typeAnnotate` (GLib's g_variant_print(v, TRUE), used by
 * ostree for `--raw` and `--print-metadata-key`) the top level carries its type annotation
 * (`uint32 5`, `@as []`); without, only values nested in variants do (`'x'`, `<uint32 5>`).
 */
export function variantText(v: Variant, typeAnnotate = true): string {
  if (!typeAnnotate) return print(v.type, v.value);
  // Inside a variant GLib annotates exactly as print(v, TRUE) does at top level.
  const boxed = print('v', v);
  return boxed.slice(1, -1);
}

/** The string inside a `s` variant, or null for any other type. */
export function variantString(v: Variant | undefined): string | null {
  return v !== undefined && v.type === 's' && typeof v.value === 'string' ? v.value : null;
}

/**
 * A JSON rendering of a GVariant value for `--json` (documented in the README):
 * strings, booleans and numbers as themselves; 64-bit integers as numbers when exact, else
 * decimal strings; byte arrays (`ay`) as lowercase hex; arrays and tuples as arrays;
 * `a{s*}` dictionaries as objects (first key wins, as lookups do); nested variants as
 * `{ "type": T, "value": V }`; maybe-nothing as null.
 */
export function variantToJson(v: Variant): unknown {
  return valueToJson(parseType(v.type), v.value);
}

function valueToJson(t: GVType, value: GValue): unknown {
  if (value === null) return null;
  if (value instanceof Variant) return { type: value.type, value: valueToJson(parseType(value.type), value.value) };
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('hex');
  if (typeof value === 'bigint') {
    return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value.toString();
  }
  if (!Array.isArray(value)) return value;
  if (t.code === 'a' && t.element !== null && t.element.code === '{' && t.element.members[0].code === 's') {
    const out: Record<string, unknown> = {};
    const vt = t.element.members[1];
    for (const entry of value) {
      const [k, v] = entry as [string, GValue];
      if (!Object.hasOwn(out, k)) out[k] = valueToJson(vt, v);
    }
    return out;
  }
  if (t.code === 'a') return value.map((x) => valueToJson(t.element as GVType, x));
  if (t.code === 'm') return valueToJson(t.element as GVType, value[0]); // "just" of a nested maybe
  return value.map((x, i) => valueToJson(t.members[i], x));
}

/**
 * A value with every number byte-swapped (GLib's g_variant_byteswap). ostree applies it to whole
 * objects before `--raw` display (OSTree stores some integers big-endian), so `--raw` output
 * matches ostree's, oddities included.
 */
export function byteswapVariant(v: Variant): Variant {
  return new Variant(v.type, byteswap(v.type, v.value));
}

/** `--raw` text of a stored object: decoded, byteswapped for display, printed with annotations. */
export function rawObjectText(type: string, bytes: Uint8Array): string {
  return variantText(byteswapVariant(new Variant(type, decode(type, bytes))));
}
