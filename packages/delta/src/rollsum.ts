/**
 * Rolling-checksum chunking of file contents and matching of chunks between an old and a new
 * version (spec static-deltas.md section 9.1): a bup-style rolling sum over a 64-byte window
 * decides chunk boundaries from the content itself, so an insertion shifts only nearby chunks.
 * Chunks are keyed by CRC-32 and length and confirmed byte for byte.
 */
import { crc32 } from 'node:zlib';

const WINDOW = 64;
const CHAR_OFFSET = 31;
const BLOB_BITS = 13;
const BLOB_MASK = (1 << BLOB_BITS) - 1;
const MAX_CHUNK = 32 * 1024;

export interface Chunk {
  offset: number;
  length: number;
}

/** Split `data` into content-defined chunks of at most 32 KiB. */
export function chunks(data: Uint8Array): Chunk[] {
  const out: Chunk[] = [];
  let start = 0;
  while (start < data.length) {
    let s1 = WINDOW * CHAR_OFFSET;
    let s2 = WINDOW * (WINDOW - 1) * CHAR_OFFSET;
    let end = -1;
    const limit = Math.min(data.length, start + MAX_CHUNK);
    for (let i = start; i < limit; i++) {
      const add = data[i];
      const drop = i - WINDOW >= start ? data[i - WINDOW] : 0;
      s1 = (s1 + add - drop) >>> 0;
      s2 = (s2 + s1 - WINDOW * (drop + CHAR_OFFSET)) >>> 0;
      if ((s2 & BLOB_MASK) === BLOB_MASK) {
        end = i + 1;
        break;
      }
    }
    if (end < 0) end = limit;
    out.push({ offset: start, length: end - start });
    start = end;
  }
  return out;
}

export interface Match {
  /** Offset in the new data. */
  to: number;
  /** Offset in the old data. */
  from: number;
  length: number;
}

/**
 * Chunks of `nw` found verbatim in `old`, in ascending new offset, and the share of new chunks
 * matched (0..1).
 */
export function rollsumMatches(old: Uint8Array, nw: Uint8Array): { matches: Match[]; ratio: number } {
  const index = new Map<string, Chunk[]>();
  for (const c of chunks(old)) {
    const key = `${crc32(old.subarray(c.offset, c.offset + c.length))}:${c.length}`;
    const l = index.get(key);
    if (l) l.push(c);
    else index.set(key, [c]);
  }
  const newChunks = chunks(nw);
  const matches: Match[] = [];
  for (const c of newChunks) {
    const piece = nw.subarray(c.offset, c.offset + c.length);
    const cands = index.get(`${crc32(piece)}:${c.length}`);
    if (!cands) continue;
    for (const o of cands) {
      if (Buffer.compare(Buffer.from(old.buffer, old.byteOffset + o.offset, o.length), Buffer.from(piece.buffer, piece.byteOffset, piece.length)) === 0) {
        matches.push({ to: c.offset, from: o.offset, length: c.length });
        break;
      }
    }
  }
  return { matches, ratio: newChunks.length === 0 ? 0 : matches.length / newChunks.length };
}
