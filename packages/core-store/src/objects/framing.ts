/**
 * Byte-level GVariant framing for the fixed object shapes OSTree stores per file and per
 * directory: the file header `(uuuusa(ayay))`, the archive header `(tuuuusa(ayay))`, dirmeta
 * and `user.ostreemeta` `(uuua(ayay))`, and dirtree `(a(say)a(sayay))`.
 *
 * Why not the generic codec: these run once per file of every commit, checkout and fsck, so they
 * are written directly into one buffer with no intermediate value tree. The layout rules are the
 * ones in spec/gvariant.md 3.3-3.5; every shape here has alignment 1 apart from the leading
 * integers, which sit at offset 0. Readers check every offset against the container bounds and
 * the callers then re-serialize and compare bytes, which is the normal-form test (normal form is
 * unique).
 */
import { LarchError } from '../errors.js';

/** Framing offset width a reader derives from a container's total size (gvariant.md 3.3). */
export function readWidth(total: number): number {
  if (total === 0) return 0;
  if (total <= 0xff) return 1;
  if (total <= 0xffff) return 2;
  if (total <= 0xffffffff) return 4;
  return 8;
}

/** Smallest width such that body + n*W still fits in W bytes (gvariant.md 3.3, writer side). */
export function writeWidth(body: number, n: number): number {
  if (n === 0) return 0;
  if (body + n <= 0xff) return 1;
  if (body + 2 * n <= 0xffff) return 2;
  if (body + 4 * n <= 0xffffffff) return 4;
  return 8;
}

export function putOffset(buf: Uint8Array, pos: number, value: number, w: number): void {
  let v = value;
  for (let i = 0; i < w; i++) {
    buf[pos + i] = v & 0xff;
    v = Math.floor(v / 256);
  }
}

export function getOffset(buf: Uint8Array, pos: number, w: number): number {
  let v = 0;
  for (let i = w - 1; i >= 0; i--) v = v * 256 + buf[pos + i];
  return v;
}

export function corrupt(what: string, detail: string): LarchError {
  return new LarchError('OBJECT_CORRUPTED', `Corrupted ${what}: ${detail}`, { what, detail });
}

/**
 * Split an array of variable-size, 1-aligned elements occupying [start, end) into element
 * ranges. Throws OBJECT_CORRUPTED on any framing that points outside or runs backwards.
 */
export function splitVarArray(buf: Uint8Array, start: number, end: number, what: string): Array<[number, number]> {
  const size = end - start;
  if (size === 0) return [];
  const w = readWidth(size);
  if (size < w) throw corrupt(what, 'array too short for its offset');
  const lastEnd = getOffset(buf, end - w, w);
  if (lastEnd > size - w) throw corrupt(what, 'array offset out of range');
  const tableBytes = size - lastEnd;
  if (tableBytes % w !== 0) throw corrupt(what, 'array offset table misaligned');
  const n = tableBytes / w;
  if (n === 0) throw corrupt(what, 'array offset table empty');
  const out: Array<[number, number]> = [];
  let pos = 0;
  for (let i = 0; i < n; i++) {
    const e = getOffset(buf, start + lastEnd + i * w, w);
    if (e < pos || e > lastEnd) throw corrupt(what, 'array element offset out of order');
    out.push([start + pos, start + e]);
    pos = e;
  }
  return out;
}

/** Serialize an array of 1-aligned variable-size elements. */
export function joinVarArray(elements: Uint8Array[]): Uint8Array {
  let body = 0;
  for (const e of elements) body += e.length;
  const w = writeWidth(body, elements.length);
  const out = new Uint8Array(body + w * elements.length);
  let pos = 0;
  elements.forEach((e, i) => {
    out.set(e, pos);
    pos += e.length;
    putOffset(out, body + i * w, pos, w);
  });
  return out;
}

export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export const utf8 = new TextEncoder();
const strictDecoder = new TextDecoder('utf-8', { fatal: true });

/** Decode a NUL-terminated GVariant string occupying exactly [start, end). */
export function readString(buf: Uint8Array, start: number, end: number, what: string): string {
  if (end <= start || buf[end - 1] !== 0) throw corrupt(what, 'string not NUL-terminated');
  const body = buf.subarray(start, end - 1);
  if (body.includes(0)) throw corrupt(what, 'string contains NUL');
  try {
    return strictDecoder.decode(body);
  } catch {
    throw corrupt(what, 'string is not valid UTF-8');
  }
}

export function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

export function unhex(s: string): Uint8Array {
  return new Uint8Array(Buffer.from(s, 'hex'));
}
