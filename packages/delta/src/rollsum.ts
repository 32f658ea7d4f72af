/**
 * Rolling-checksum chunking of file contents and matching of chunks between an old and a new
 * version (spec static-deltas.md section 9.1), cut exactly where ostree cuts them
 * (`rollsum_chunks_crc32` over bup's `bupsplit_find_ofs`):
 *
 * - each chunk starts a fresh rolling sum (64-byte window, padded with zeros) at its first byte
 *   and ends after the first byte where the low 13 bits of `s2` are all ones, searching the whole
 *   rest of the file;
 * - a boundary further than 32 KiB away cuts the chunk at 32 KiB, and the next search starts
 *   afresh there;
 * - once a search finds no boundary in the rest of the file, the rest is cut in 32 KiB pieces.
 *
 * Searching the rest of the file from every chunk start would be quadratic over long stretches
 * without a boundary. It is not needed: the sum depends only on the last 64 bytes once the window
 * is full, so past its first 63 bytes a fresh search sees the same boundaries as one scan from the
 * start of the file. That scan runs once, forward, and each chunk only recomputes its 63 bytes of
 * warm-up.
 *
 * Matching comes in two flavours over the same chunks:
 * - {@link rollsumMatches}: the chunks of the new file found verbatim in the old one (keyed by
 *   CRC-32 and length, confirmed byte for byte) — the copies Larch writes;
 * - {@link ostreeRollsumStats}: ostree's own figures, which decide whether ostree (and Larch, to
 *   take the same decisions) writes a modified file as rollsum copies. ostree keys each chunk by
 *   the CRC-32 of the file's first `length` bytes rather than of the chunk itself
 *   (`crc32 (crc, buf, offset)` in ostree-rollsum.c), so a chunk counts as matched only when it
 *   is found verbatim *and* both files begin with the same `length` bytes. A file with a new
 *   header in front of unchanged content therefore matches nothing by ostree's measure.
 */
import { crc32 } from 'node:zlib';

const WINDOW = 64;
const CHAR_OFFSET = 31;
const BLOB_MASK = (1 << 13) - 1;
const MAX_CHUNK = 32 * 1024;
/** `bupsplit_find_ofs` is given at most G_MAXINT32 bytes. */
const MAX_SEARCH = 0x7fffffff;
const S1_INIT = WINDOW * CHAR_OFFSET;
// Only the low 13 bits of s2 are ever tested, and every update is a sum: keep it modulo 2^13.
const S2_INIT = (WINDOW * (WINDOW - 1) * CHAR_OFFSET) & BLOB_MASK;
const S2_DROP = WINDOW * CHAR_OFFSET;

export interface Chunk {
  offset: number;
  length: number;
}

/**
 * The boundaries of one forward scan from the start of `data`, at positions where the window is
 * full (p ≥ 63): there every search, whatever its start, sees the same sum.
 */
class FullWindowBoundaries {
  private pos = 0;
  private s1 = S1_INIT;
  private s2 = S2_INIT;
  /** The last boundary found (-1: none yet). */
  private last = -1;

  constructor(private readonly data: Uint8Array) {}

  /** The first boundary position ≥ `q`, or -1. Calls must not decrease `q`. */
  atOrAfter(q: number): number {
    if (this.last >= q) return this.last;
    const d = this.data;
    const n = d.length;
    let { pos, s1, s2 } = this;
    let found = -1;
    while (pos < n) {
      const drop = pos >= WINDOW ? d[pos - WINDOW] : 0;
      s1 += d[pos] - drop;
      s2 = (s2 + s1 - WINDOW * drop - S2_DROP) & BLOB_MASK;
      const p = pos++;
      if (s2 === BLOB_MASK && p >= WINDOW - 1 && p >= q) {
        found = p;
        break;
      }
    }
    this.pos = pos;
    this.s1 = s1;
    this.s2 = s2;
    this.last = found;
    return found;
  }
}

/**
 * Offset just past the first boundary of a fresh search from `start` (ostree's
 * `bupsplit_find_ofs (buf + start, remaining)`), or 0 when there is none.
 */
function findOffset(data: Uint8Array, start: number, full: FullWindowBoundaries): number {
  const end = start + Math.min(MAX_SEARCH, data.length - start);
  // Warm-up: the window still holds some of its initial zeros.
  const warm = Math.min(start + WINDOW - 1, end);
  let s1 = S1_INIT;
  let s2 = S2_INIT;
  for (let p = start; p < warm; p++) {
    s1 += data[p];
    s2 = (s2 + s1 - S2_DROP) & BLOB_MASK;
    if (s2 === BLOB_MASK) return p - start + 1;
  }
  const p = full.atOrAfter(start + WINDOW - 1);
  return p >= 0 && p < end ? p - start + 1 : 0;
}

/** Split `data` into ostree's rollsum chunks (at most 32 KiB each; see the file comment). */
export function chunks(data: Uint8Array): Chunk[] {
  const out: Chunk[] = [];
  const full = new FullWindowBoundaries(data);
  let start = 0;
  let ended = false;
  while (start < data.length) {
    const remaining = data.length - start;
    let length: number;
    if (!ended) {
      length = findOffset(data, start, full);
      if (length === 0) {
        ended = true;
        length = Math.min(MAX_CHUNK, remaining);
      } else if (length > MAX_CHUNK) length = MAX_CHUNK;
    } else length = Math.min(MAX_CHUNK, remaining);
    out.push({ offset: start, length });
    start += length;
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

const same = (a: Uint8Array, ao: number, b: Uint8Array, bo: number, length: number): boolean =>
  Buffer.compare(Buffer.from(a.buffer, a.byteOffset + ao, length), Buffer.from(b.buffer, b.byteOffset + bo, length)) === 0;

/**
 * Chunks of `nw` found verbatim in `old`, in ascending new offset, and the share of new chunks
 * matched (0..1).
 */
export function rollsumMatches(old: Uint8Array, nw: Uint8Array, oldChunks = chunks(old), newChunks = chunks(nw)): { matches: Match[]; ratio: number } {
  const index = new Map<string, Chunk[]>();
  for (const c of oldChunks) {
    const key = `${crc32(old.subarray(c.offset, c.offset + c.length))}:${c.length}`;
    const l = index.get(key);
    if (l) l.push(c);
    else index.set(key, [c]);
  }
  const matches: Match[] = [];
  for (const c of newChunks) {
    const cands = index.get(`${crc32(nw.subarray(c.offset, c.offset + c.length))}:${c.length}`);
    if (!cands) continue;
    for (const o of cands) {
      if (same(old, o.offset, nw, c.offset, c.length)) {
        matches.push({ to: c.offset, from: o.offset, length: c.length });
        break;
      }
    }
  }
  return { matches, ratio: newChunks.length === 0 ? 0 : matches.length / newChunks.length };
}

/** ostree's figures for a pair (`OstreeRollsumMatches`), as its verbose output prints them. */
export interface OstreeRollsumStats {
  /** Keys (CRC values) found in both files. */
  crcmatches: number;
  /** Chunks of the new file matched. */
  bufmatches: number;
  /** Chunks of the new file. */
  total: number;
  /** Bytes of the new file matched. */
  matchSize: number;
}

/** CRC-32 of the first `length` bytes of `data`, for each length of `list` (computed incrementally). */
function prefixCrcs(data: Uint8Array, list: readonly Chunk[]): Map<number, number> {
  const lengths = [...new Set(list.map((c) => c.length))].sort((a, b) => a - b);
  const out = new Map<number, number>();
  let crc = 0;
  let at = 0;
  for (const l of lengths) {
    crc = crc32(data.subarray(at, l), crc);
    at = l;
    out.set(l, crc);
  }
  return out;
}

/**
 * ostree's `_ostree_compute_rollsum_matches` figures for `old` → `nw` (see the file comment for
 * its keying by the files' first bytes). ostree writes the pair as rollsum copies when
 * `bufmatches * 100 / total` (integer division) is at least 50: see {@link ostreeTakesRollsum}.
 */
export function ostreeRollsumStats(old: Uint8Array, nw: Uint8Array, oldChunks = chunks(old), newChunks = chunks(nw)): OstreeRollsumStats {
  const oldCrc = prefixCrcs(old, oldChunks);
  const newCrc = prefixCrcs(nw, newChunks);
  const byKey = (crcs: Map<number, number>, list: readonly Chunk[]): Map<number, Chunk[]> => {
    const m = new Map<number, Chunk[]>();
    for (const c of list) {
      const k = crcs.get(c.length)!;
      const l = m.get(k);
      if (l) l.push(c);
      else m.set(k, [c]);
    }
    return m;
  };
  const from = byKey(oldCrc, oldChunks);
  const to = byKey(newCrc, newChunks);
  const stats: OstreeRollsumStats = { crcmatches: 0, bufmatches: 0, total: newChunks.length, matchSize: 0 };
  for (const [k, toList] of to) {
    const fromList = from.get(k);
    if (fromList === undefined) continue;
    stats.crcmatches++;
    for (const t of toList) {
      for (const f of fromList) {
        if (f.length !== t.length || !same(old, f.offset, nw, t.offset, t.length)) continue;
        stats.bufmatches++;
        stats.matchSize += t.length;
        break;
      }
    }
  }
  return stats;
}

/** ostree's rule: rollsum copies when at least half of the new file's chunks match (integer percent). */
export function ostreeTakesRollsum(s: OstreeRollsumStats): boolean {
  return s.total > 0 && Math.floor((s.bufmatches * 100) / s.total) >= 50;
}
