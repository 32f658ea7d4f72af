/**
 * dirtree `(a(say)a(sayay))` (repo-format.md 3.1): files (name, content checksum) and
 * subdirectories (name, dirtree checksum, dirmeta checksum), each list sorted by the UTF-8
 * bytes of the name, names unique across both lists. Readers reject `.`/`..`/`/`/empty names
 * and checksum fields that are not exactly 32 bytes, then check normal form by re-serializing.
 */
import type { DirTree, DirTreeDir, DirTreeFile } from '../types.js';
import { LarchError } from '../errors.js';
import { validateChecksum, validateName } from '../validate.js';
import { corrupt, equalBytes, getOffset, hex, joinVarArray, putOffset, readString, readWidth, splitVarArray, unhex, utf8, writeWidth } from './framing.js';

/** Entries a single dirtree may hold; a sanity bound against crafted objects (128 MiB / ~40 bytes is far above it). */
export const MAX_DIRTREE_ENTRIES = 4_000_000;

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

/** Compare two names by UTF-8 bytes (strcmp order), which differs from JS UTF-16 order above U+FFFF. */
export function compareNames(a: string, b: string): number {
  if (a === b) return 0;
  return compareBytes(utf8.encode(a), utf8.encode(b));
}

function element(name: Uint8Array, sums: Uint8Array[]): Uint8Array {
  // (say) has one framing offset (end of s); (sayay) has two, stored reversed.
  const nOff = sums.length;
  const body = name.length + 1 + 32 * sums.length;
  const w = writeWidth(body, nOff);
  const out = new Uint8Array(body + w * nOff);
  out.set(name, 0);
  let pos = name.length + 1;
  const ends = [pos];
  for (const s of sums) {
    out.set(s, pos);
    pos += 32;
    ends.push(pos);
  }
  // offsets for every variable member except the last, reversed at the end
  for (let k = 0; k < nOff; k++) putOffset(out, out.length - (k + 1) * w, ends[k], w);
  return out;
}

/**
 * Serialize a dirtree. Entries are sorted here (byte order); names are validated and must be
 * unique across files and dirs; checksums must be valid hex.
 */
export function serializeDirTree(tree: DirTree): Uint8Array {
  const files = tree.files.map((f) => ({ f, k: utf8.encode(f.name) })).sort((a, b) => compareBytes(a.k, b.k));
  const dirs = tree.dirs.map((d) => ({ d, k: utf8.encode(d.name) })).sort((a, b) => compareBytes(a.k, b.k));
  const seen = new Set<string>();
  for (const { f } of files) {
    validateName(f.name);
    validateChecksum(f.checksum);
    if (seen.has(f.name)) throw new LarchError('INVALID_NAME', `Duplicate name ${f.name} in dirtree`, { name: f.name });
    seen.add(f.name);
  }
  for (const { d } of dirs) {
    validateName(d.name);
    validateChecksum(d.treeChecksum);
    validateChecksum(d.metaChecksum);
    if (seen.has(d.name)) throw new LarchError('INVALID_NAME', `Duplicate name ${d.name} in dirtree`, { name: d.name });
    seen.add(d.name);
  }
  const a = joinVarArray(files.map(({ f, k }) => element(k, [unhex(f.checksum)])));
  const b = joinVarArray(dirs.map(({ d, k }) => element(k, [unhex(d.treeChecksum), unhex(d.metaChecksum)])));
  const body = a.length + b.length;
  const w = writeWidth(body, 1);
  const out = new Uint8Array(body + w);
  out.set(a, 0);
  out.set(b, a.length);
  putOffset(out, body, a.length, w);
  return out;
}

function readEntry(buf: Uint8Array, s: number, e: number, nSums: number): { name: string; sums: string[] } {
  const size = e - s;
  const w = readWidth(size);
  const nOff = nSums;
  if (size < nOff * w + 1) throw corrupt('dirtree', 'entry too short');
  const ends: number[] = [];
  for (let k = 0; k < nOff; k++) ends.push(getOffset(buf, e - (k + 1) * w, w));
  const bodyEnd = size - nOff * w;
  ends.push(bodyEnd);
  let pos = 0;
  for (const end of ends) {
    if (end < pos || end > bodyEnd) throw corrupt('dirtree', 'entry offset out of range');
    pos = end;
  }
  const name = readString(buf, s, s + ends[0], 'dirtree');
  try {
    validateName(name);
  } catch (err) {
    throw corrupt('dirtree', (err as Error).message);
  }
  const sums: string[] = [];
  for (let k = 0; k < nSums; k++) {
    const from = ends[k];
    const to = ends[k + 1];
    if (to - from !== 32) throw corrupt('dirtree', `Invalid checksum of length ${to - from} expected 32 for ${name}`);
    sums.push(hex(buf.subarray(s + from, s + to)));
  }
  return { name, sums };
}

/** Parse and fully validate a dirtree object. */
export function parseDirTree(bytes: Uint8Array): DirTree {
  const S = bytes.length;
  if (S === 0) throw corrupt('dirtree', 'empty object');
  const w = readWidth(S);
  const filesEnd = getOffset(bytes, S - w, w);
  if (filesEnd > S - w) throw corrupt('dirtree', 'offset out of range');
  const fileRanges = splitVarArray(bytes, 0, filesEnd, 'dirtree');
  const dirRanges = splitVarArray(bytes, filesEnd, S - w, 'dirtree');
  if (fileRanges.length + dirRanges.length > MAX_DIRTREE_ENTRIES) throw corrupt('dirtree', 'too many entries');
  const files: DirTreeFile[] = fileRanges.map(([s, e]) => {
    const { name, sums } = readEntry(bytes, s, e, 1);
    return { name, checksum: sums[0] };
  });
  const dirs: DirTreeDir[] = dirRanges.map(([s, e]) => {
    const { name, sums } = readEntry(bytes, s, e, 2);
    return { name, treeChecksum: sums[0], metaChecksum: sums[1] };
  });
  checkSorted(files.map((f) => f.name));
  checkSorted(dirs.map((d) => d.name));
  const all = new Set<string>(files.map((f) => f.name));
  for (const d of dirs) if (all.has(d.name)) throw corrupt('dirtree', `duplicate name ${d.name}`);
  const tree = { files, dirs };
  if (!equalBytes(serializeDirTree(tree), bytes)) throw corrupt('dirtree', 'not in normal form');
  return tree;
}

function checkSorted(names: string[]): void {
  for (let i = 1; i < names.length; i++) {
    if (compareNames(names[i - 1], names[i]) >= 0) throw corrupt('dirtree', `entries not sorted or duplicated at ${names[i]}`);
  }
}
