/**
 * Exact-match copy diffs, written as delta write ops (spec static-deltas.md section 7): `w` from
 * the old file (set as read source) for each copy, `w` from the payload for the literal runs
 * between copies, which sit in the payload one after another.
 *
 * bsdiff suits two versions of one file: it extends matches approximately and pays for the
 * mismatching bytes in its diff block. Two *different* files that share many medium-length runs
 * (an apt `Translation-en` and the `Packages` file holding the same packages' checksums and
 * summaries) defeat that: the approximate extensions are mostly noise. Here only exact runs of at
 * least `minMatch` bytes are copied from the old file; everything else travels as literal bytes.
 * Written as ops rather than as raw bsdiff records, the literal text stays contiguous in the
 * payload (so xz models it as text, not as text broken by binary records every few dozen bytes),
 * the op stream compresses on its own terms, and the reader copies with positioned reads instead
 * of holding the old file in memory. Each copy costs two or three ops (about 5 bytes after xz),
 * so it pays off from a few dozen bytes on.
 *
 * Matching: a hash table over the old file's 16-byte windows, sampled by content (a quarter of
 * the positions, chosen by the window's hash, so the same windows are sampled on both sides), at
 * most 2^24 slots (64 MiB); the new file is scanned with a rolling hash, candidate matches are
 * verified byte by byte and extended backwards into the pending literal run. Linear time.
 */
import { OP_SET_READ_SOURCE, OP_UNSET_READ_SOURCE, OP_WRITE, type ByteSink } from './ops.js';

const K = 16;

/**
 * Shortest run copied by default. Measured on apt lists (Translation-en out of Packages): 32 to
 * 40 bytes come out best; 48 misses many checksum lines that shorter windows catch, 24 pays more
 * in ops than it saves.
 */
export const COPY_MIN_MATCH = 36;
const BASE = 0x01000193;
const MIX = 0x9e3779b1 | 0;

/** BASE^K, to drop the byte leaving the window. */
const BASE_K = (() => {
  let b = 1;
  for (let i = 0; i < K; i++) b = Math.imul(b, BASE);
  return b;
})();

/** Slot bits for an old file of `n` bytes: about two slots per sampled window, 2^12..2^24. */
function slotBits(n: number): number {
  let bits = 12;
  while (bits < 24 && 1 << bits < n / 2) bits++;
  return bits;
}

/** The copies found by {@link copyMatches}: (new position, old position, length) triples. */
export interface CopyMatches {
  copies: Int32Array;
  count: number;
  matched: number;
}

/** Find the copies old → nw (pass 1): exact runs of at least `minMatch` (≥ 16) bytes. */
export function copyMatches(old: Uint8Array, nw: Uint8Array, minMatch = COPY_MIN_MATCH): CopyMatches {
  const min = Math.max(K, minMatch);
  const bits = slotBits(old.length);
  const shift = 32 - bits;
  let table: Int32Array | null = new Int32Array(1 << bits).fill(-1);
  let h = 0;
  for (let i = 0; i < old.length; i++) {
    h = (Math.imul(h, BASE) + old[i]) | 0;
    if (i >= K) h = (h - Math.imul(BASE_K, old[i - K])) | 0;
    if (i < K - 1) continue;
    const m = Math.imul(h, MIX);
    if ((m & 3) !== 0) continue;
    const s = m >>> shift;
    if (table[s] < 0) table[s] = i - K + 1;
  }

  // Pass 1: the copies, as (new position, old position, length) triples.
  let copies = new Int32Array(3 * 1024);
  let n = 0;
  let matched = 0;
  let litStart = 0;
  let pos = 0;
  h = 0;
  let primed = 0; // bytes of the window at `pos` already hashed
  while (pos + K <= nw.length) {
    while (primed < K) {
      h = (Math.imul(h, BASE) + nw[pos + primed]) | 0;
      primed++;
    }
    const m = Math.imul(h, MIX);
    const cand = (m & 3) === 0 ? table[m >>> shift] : -1;
    if (cand >= 0) {
      let len = 0;
      while (pos + len < nw.length && cand + len < old.length && nw[pos + len] === old[cand + len]) len++;
      if (len >= K) {
        let back = 0;
        while (back < pos - litStart && back < cand && nw[pos - back - 1] === old[cand - back - 1]) back++;
        if (len + back >= min) {
          if (3 * n + 3 > copies.length) {
            const grown = new Int32Array(copies.length * 2);
            grown.set(copies);
            copies = grown;
          }
          copies[3 * n] = pos - back;
          copies[3 * n + 1] = cand - back;
          copies[3 * n + 2] = len + back;
          n++;
          matched += len + back;
          pos += len;
          litStart = pos;
          h = 0;
          primed = 0;
          continue;
        }
      }
    }
    // Roll the window one byte on.
    if (pos + K < nw.length) h = (Math.imul(h, BASE) + nw[pos + K] - Math.imul(BASE_K, nw[pos])) | 0;
    pos++;
  }
  table = null;
  return { copies, count: n, matched };
}

/** The literal runs of the new file between the copies of `m`, in order (views, not copies). */
export function copyLiterals(nw: Uint8Array, m: CopyMatches): Uint8Array[] {
  const out: Uint8Array[] = [];
  let at = 0;
  for (let r = 0; r <= m.count; r++) {
    const end = r < m.count ? m.copies[3 * r] : nw.length;
    if (end > at) out.push(nw.subarray(at, end));
    if (r < m.count) at = end + m.copies[3 * r + 2];
  }
  return out;
}

/**
 * The write ops that rebuild `nw` from the old file and its literal runs (pass 2): the old file's
 * checksum is at payload offset `srcOff` and the literal runs ({@link copyLiterals}) follow one
 * another from `litOff`. The caller opens the object before and closes it after; the read source
 * is left unset.
 */
export function writeCopyOps(nw: Uint8Array, m: CopyMatches, ops: ByteSink, srcOff: number, litOff: number): void {
  const { copies, count: n } = m;
  let at = 0; // start of the pending literal run in nw
  let lit = litOff;
  let source = false;
  for (let r = 0; r <= n; r++) {
    const end = r < n ? copies[3 * r] : nw.length;
    if (end > at) {
      if (source) ops.byte(OP_UNSET_READ_SOURCE);
      source = false;
      ops.byte(OP_WRITE).varint(end - at).varint(lit);
      lit += end - at;
    }
    if (r === n) break;
    if (!source) ops.byte(OP_SET_READ_SOURCE).varint(srcOff);
    source = true;
    ops.byte(OP_WRITE).varint(copies[3 * r + 2]).varint(copies[3 * r + 1]);
    at = end + copies[3 * r + 2];
  }
  if (source) ops.byte(OP_UNSET_READ_SOURCE);
}

/**
 * Sampled fingerprints of a file, fed in chunks, for finding which old file shares most content
 * with a new one: the hashes of about one in 1,024 of its 16-byte windows, chosen by content (so a
 * shared run yields the same anchors in both files), without duplicates.
 */
export class ContentAnchors {
  private readonly seen = new Set<number>();
  private readonly tail = new Uint8Array(K);
  private h = 0;
  private count = 0;

  update(data: Uint8Array): this {
    let h = this.h;
    let count = this.count;
    const tail = this.tail;
    for (let i = 0; i < data.length; i++) {
      const b = data[i];
      const slot = count % K;
      h = (Math.imul(h, BASE) + b) | 0;
      if (count >= K) h = (h - Math.imul(BASE_K, tail[slot])) | 0;
      tail[slot] = b;
      count++;
      if (count < K) continue;
      const m = Math.imul(h, MIX);
      if ((m & 0x3ff) === 0x200) this.seen.add(m >>> 0);
    }
    this.h = h;
    this.count = count;
    return this;
  }

  /** The anchors seen so far. */
  digest(): Uint32Array {
    return Uint32Array.from(this.seen);
  }
}
