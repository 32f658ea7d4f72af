/**
 * Exact-match copy diffs, written as raw bsdiff records (the form a delta's BSPATCH op reads,
 * spec static-deltas.md section 7) whose diff bytes are all zero.
 *
 * bsdiff proper suits two versions of one file: it extends matches approximately and pays for
 * the mismatching bytes in its diff block. Two *different* files that share many medium-length
 * runs (an apt `Translation-en` and the `Packages` file holding the same packages' checksums and
 * summaries) defeat that: the approximate extensions are mostly noise. Here only exact runs of at
 * least `minMatch` bytes are copied from the old file; everything else travels as literal extra
 * bytes. Each record costs 24 control bytes and its zero run, both of which xz squeezes to a few
 * bytes, so a copy pays off from a few dozen bytes on.
 *
 * Matching: a hash table over the old file's 16-byte windows, sampled by content (a quarter of
 * the positions, chosen by the window's hash, so the same windows are sampled on both sides), at
 * most 2^24 slots (64 MiB); the new file is scanned with a rolling hash, candidate matches are
 * verified byte by byte and extended backwards into the pending literal run. Linear time.
 */

const K = 16;
const BASE = 0x01000193;
const MIX = 0x9e3779b1 | 0;

/** BASE^K, to drop the byte leaving the window. */
const BASE_K = (() => {
  let b = 1;
  for (let i = 0; i < K; i++) b = Math.imul(b, BASE);
  return b;
})();

function putCtrl(b: Buffer, off: number, v: number): void {
  const mag = Math.abs(v);
  b.writeUInt32LE(mag % 0x100000000, off);
  b.writeUInt32LE(Math.floor(mag / 0x100000000) + (v < 0 ? 0x80000000 : 0), off + 4);
}

export interface CopyDiff {
  /** The patch, in raw bsdiff records. */
  patch: Buffer[];
  /** Bytes of the new file copied from the old one. */
  matched: number;
  /** Number of copies. */
  copies: number;
}

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

/** Build the copy diff old → nw (see the file comment). `minMatch` ≥ 16. */
export function copydiff(old: Uint8Array, nw: Uint8Array, minMatch = 48): CopyDiff {
  const m = copyMatches(old, nw, minMatch);
  const out = Buffer.allocUnsafeSlow(copyPatchLength(nw, m));
  writeCopyPatch(nw, m, out, 0);
  return { patch: [out], matched: m.matched, copies: m.count };
}

/** The exact byte length of the patch {@link writeCopyPatch} writes. */
export function copyPatchLength(nw: Uint8Array, m: CopyMatches): number {
  return 24 * (m.count + 1) + nw.length;
}

/** Find the copies old → nw (pass 1 of {@link copydiff}). */
export function copyMatches(old: Uint8Array, nw: Uint8Array, minMatch = 48): CopyMatches {
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

/**
 * Write the patch for `m` into `out` at `offset` (pass 2 of {@link copydiff}): a record per copy,
 * plus a leading one for the literal bytes before the first copy, each
 * ctrl(x = copied, y = literal, z = seek to the next copy) diff[x] extra[y]. Returns the end offset.
 */
export function writeCopyPatch(nw: Uint8Array, m: CopyMatches, out: Buffer, offset: number): number {
  const { copies, count: n } = m;
  let o = offset;
  let x = 0;
  let oldStart = 0;
  let at = 0; // start of the pending literal run in nw
  for (let r = 0; r <= n; r++) {
    const litEnd = r < n ? copies[3 * r] : nw.length;
    const nextOld = r < n ? copies[3 * r + 1] : oldStart + x;
    putCtrl(out, o, x);
    putCtrl(out, o + 8, litEnd - at);
    putCtrl(out, o + 16, nextOld - (oldStart + x));
    o += 24;
    out.fill(0, o, o + x);
    o += x;
    out.set(nw.subarray(at, litEnd), o);
    o += litEnd - at;
    if (r < n) {
      x = copies[3 * r + 2];
      oldStart = nextOld;
      at = litEnd + x;
    }
  }
  return o;
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
