/**
 * Extended attributes `a(ayay)` (repo-format.md 2.1): each name is a bytestring that carries
 * its trailing NUL, values are raw bytes, and the list is sorted by name bytes (strcmp) with no
 * duplicates or empty names. We always sort on write and reject unsorted input on read.
 */
import type { Xattr } from '../types.js';
import { corrupt, joinVarArray, putOffset, getOffset, readWidth, splitVarArray, utf8, writeWidth } from './framing.js';

/** Largest number of xattrs one object may carry (a sanity bound far above real use). */
export const MAX_XATTRS = 4096;

const nameDecoder = new TextDecoder('utf-8', { fatal: true });

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

/** Sort xattrs by name bytes; throws on duplicates/empty names. Returns a new array. */
export function sortXattrs(xattrs: readonly Xattr[]): Xattr[] {
  const keyed = xattrs.map((x) => ({ x, k: utf8.encode(x.name) }));
  keyed.sort((a, b) => compareBytes(a.k, b.k));
  for (let i = 0; i < keyed.length; i++) {
    if (keyed[i].k.length === 0 || keyed[i].k.includes(0)) throw corrupt('xattrs', `invalid xattr name ${JSON.stringify(keyed[i].x.name)}`);
    if (i > 0 && compareBytes(keyed[i - 1].k, keyed[i].k) === 0) throw corrupt('xattrs', `duplicate xattr ${keyed[i].x.name}`);
  }
  return keyed.map((e) => e.x);
}

/** Serialize (sorting first) to `a(ayay)` bytes. */
export function serializeXattrs(xattrs: readonly Xattr[]): Uint8Array {
  if (xattrs.length === 0) return new Uint8Array(0);
  const sorted = sortXattrs(xattrs);
  const elems = sorted.map(({ name, value }) => {
    const n = utf8.encode(name);
    const body = n.length + 1 + value.length;
    const w = writeWidth(body, 1);
    const e = new Uint8Array(body + w);
    e.set(n, 0);
    e[n.length] = 0;
    e.set(value, n.length + 1);
    putOffset(e, body, n.length + 1, w);
    return e;
  });
  return joinVarArray(elems);
}

/** Parse `a(ayay)` occupying [start, end) of `buf`. Values are copies. Enforces sorted, unique, NUL-terminated names. */
export function parseXattrs(buf: Uint8Array, start: number, end: number, what = 'xattrs'): Xattr[] {
  const ranges = splitVarArray(buf, start, end, what);
  if (ranges.length > MAX_XATTRS) throw corrupt(what, `more than ${MAX_XATTRS} xattrs`);
  const out: Xattr[] = [];
  let prev: Uint8Array | null = null;
  for (const [s, e] of ranges) {
    const size = e - s;
    const w = readWidth(size);
    if (size < w) throw corrupt(what, 'xattr entry too short');
    const nameEnd = getOffset(buf, e - w, w);
    if (nameEnd > size - w) throw corrupt(what, 'xattr name offset out of range');
    const nameBytes = buf.subarray(s, s + nameEnd);
    if (nameBytes.length < 2 || nameBytes[nameBytes.length - 1] !== 0 || nameBytes.subarray(0, -1).includes(0)) {
      throw corrupt(what, 'xattr name is not a non-empty NUL-terminated bytestring');
    }
    const key = nameBytes.subarray(0, -1);
    if (prev && compareBytes(prev, key) >= 0) throw corrupt(what, 'xattrs not sorted or duplicated');
    prev = key;
    let name: string;
    try {
      name = nameDecoder.decode(key);
    } catch {
      throw corrupt(what, 'xattr name is not valid UTF-8');
    }
    out.push({ name, value: buf.slice(s + nameEnd, e - w) });
  }
  return out;
}
