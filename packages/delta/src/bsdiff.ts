/**
 * bsdiff/bspatch in the raw form static deltas carry (spec static-deltas.md section 7): a
 * sequence of records `ctrl_x ctrl_y ctrl_z (8 bytes each, sign-magnitude little-endian) diff[x]
 * extra[y]`, with no header, no new-size field and no compression (the part's xz does that).
 *
 * Diff: a suffix array of the old file (SA-IS, linear time, about 9 bytes per input byte), then the usual greedy scan: find the longest old match for each
 * new position, extend approximate matches forwards and backwards, and emit byte-wise differences
 * for the approximate part and literal bytes for the rest.
 *
 * Patch: validates every control value (no negative lengths, nothing past the declared output
 * size, lengths below 2^31) and streams output in bounded chunks to a sink.
 */
import { LarchError } from '@larch/core-store';

/** Bucket boundaries of the characters of `T`: starts (end=false) or exclusive ends (end=true). */
function buckets(T: Int32Array, n: number, K: number, end: boolean): Int32Array {
  const b = new Int32Array(K);
  for (let i = 0; i < n; i++) b[T[i]]++;
  let sum = 0;
  for (let k = 0; k < K; k++) {
    sum += b[k];
    b[k] = end ? sum : sum - b[k];
  }
  return b;
}

function induce(T: Int32Array, SA: Int32Array, t: Uint8Array, n: number, K: number): void {
  let b = buckets(T, n, K, false);
  for (let i = 0; i < n; i++) {
    const j = SA[i] - 1;
    if (j >= 0 && t[j] === 0) SA[b[T[j]]++] = j;
  }
  b = buckets(T, n, K, true);
  for (let i = n - 1; i >= 0; i--) {
    const j = SA[i] - 1;
    if (j >= 0 && t[j] === 1) SA[--b[T[j]]] = j;
  }
}

/**
 * SA-IS (induced sorting): suffix array of `T[0..n)`, whose last character is a unique sentinel
 * smaller than every other, over the alphabet [0, K). Linear time.
 */
function sais(T: Int32Array, n: number, K: number): Int32Array {
  const SA = new Int32Array(n);
  if (n === 1) return SA;
  const t = new Uint8Array(n); // 1 = S-type
  t[n - 1] = 1;
  for (let i = n - 2; i >= 0; i--) t[i] = T[i] < T[i + 1] || (T[i] === T[i + 1] && t[i + 1] === 1) ? 1 : 0;
  const isLMS = (i: number): boolean => i > 0 && t[i] === 1 && t[i - 1] === 0;

  // 1. Sort the LMS substrings by induction from their bucket ends.
  SA.fill(-1);
  let b = buckets(T, n, K, true);
  for (let i = 1; i < n; i++) if (isLMS(i)) SA[--b[T[i]]] = i;
  induce(T, SA, t, n, K);

  // 2. Compact the sorted LMS positions and name the substrings.
  let n1 = 0;
  for (let i = 0; i < n; i++) if (isLMS(SA[i])) SA[n1++] = SA[i];
  SA.fill(-1, n1);
  let name = 0;
  let prev = -1;
  for (let i = 0; i < n1; i++) {
    const pos = SA[i];
    let diff = false;
    for (let d = 0; ; d++) {
      if (prev === -1 || T[pos + d] !== T[prev + d] || t[pos + d] !== t[prev + d]) {
        diff = true;
        break;
      }
      if (d > 0 && (isLMS(pos + d) || isLMS(prev + d))) break;
    }
    if (diff) {
      name++;
      prev = pos;
    }
    SA[n1 + (pos >> 1)] = name - 1;
  }
  const s1 = new Int32Array(n1);
  for (let i = n1, j = 0; i < n; i++) if (SA[i] >= 0) s1[j++] = SA[i];

  // 3. Sort the LMS suffixes: directly when the names are unique, else recursively.
  let sa1: Int32Array;
  if (name < n1) sa1 = sais(s1, n1, name);
  else {
    sa1 = new Int32Array(n1);
    for (let i = 0; i < n1; i++) sa1[s1[i]] = i;
  }
  const lms = s1; // reuse: LMS positions in text order
  for (let i = 1, j = 0; i < n; i++) if (isLMS(i)) lms[j++] = i;
  for (let i = 0; i < n1; i++) sa1[i] = lms[sa1[i]];

  // 4. Induce the full order from the sorted LMS suffixes.
  SA.fill(-1);
  b = buckets(T, n, K, true);
  for (let i = n1 - 1; i >= 0; i--) {
    const j = sa1[i];
    SA[--b[T[j]]] = j;
  }
  induce(T, SA, t, n, K);
  return SA;
}

/** Suffix array of `s` (indices of its suffixes in lexicographic order), by SA-IS. */
export function suffixArray(s: Uint8Array): Int32Array {
  const n = s.length;
  if (n === 0) return new Int32Array(0);
  const T = new Int32Array(n + 1);
  for (let i = 0; i < n; i++) T[i] = s[i] + 1;
  T[n] = 0;
  return sais(T, n + 1, 257).subarray(1);
}

function matchLen(a: Uint8Array, ai: number, b: Uint8Array, bi: number): number {
  let i = 0;
  const max = Math.min(a.length - ai, b.length - bi);
  while (i < max && a[ai + i] === b[bi + i]) i++;
  return i;
}

/** Longest match of new[scan..] in old, via binary search on the suffix array. */
function search(sa: Int32Array, old: Uint8Array, nw: Uint8Array, scan: number): { pos: number; len: number } {
  let st = 0;
  let en = sa.length - 1;
  if (sa.length === 0) return { pos: 0, len: 0 };
  while (en - st >= 2) {
    const x = st + ((en - st) >> 1);
    // compare old[sa[x]..] with nw[scan..]
    const o = sa[x];
    const l = matchLen(old, o, nw, scan);
    const less = o + l === old.length ? true : scan + l === nw.length ? false : old[o + l] < nw[scan + l];
    if (less) st = x;
    else en = x;
  }
  const x = matchLen(old, sa[st], nw, scan);
  const y = matchLen(old, sa[en], nw, scan);
  return x > y ? { pos: sa[st], len: x } : { pos: sa[en], len: y };
}

function putCtrl(buf: Buffer, off: number, v: number): void {
  const neg = v < 0;
  let m = Math.abs(v);
  buf.writeUInt32LE(m % 0x100000000, off);
  m = Math.floor(m / 0x100000000);
  buf.writeUInt32LE((m | (neg ? 0x80000000 : 0)) >>> 0, off + 4);
}

/** A bsdiff patch turning `old` into `nw`, as a list of buffers (concatenate to store). */
export function bsdiff(old: Uint8Array, nw: Uint8Array): Buffer[] {
  const sa = suffixArray(old);
  const out: Buffer[] = [];
  const oldsize = old.length;
  const newsize = nw.length;
  let scan = 0;
  let len = 0;
  let pos = 0;
  let lastscan = 0;
  let lastpos = 0;
  let lastoffset = 0;
  while (scan < newsize) {
    let oldscore = 0;
    let scsc = (scan += len);
    for (; scan < newsize; scan++) {
      const m = search(sa, old, nw, scan);
      pos = m.pos;
      len = m.len;
      for (; scsc < scan + len; scsc++) if (scsc + lastoffset < oldsize && old[scsc + lastoffset] === nw[scsc]) oldscore++;
      if ((len === oldscore && len !== 0) || len > oldscore + 8) break;
      if (scan + lastoffset < oldsize && old[scan + lastoffset] === nw[scan]) oldscore--;
    }
    if (len !== oldscore || scan === newsize) {
      let s = 0;
      let sf = 0;
      let lenf = 0;
      for (let i = 0; lastscan + i < scan && lastpos + i < oldsize; ) {
        if (old[lastpos + i] === nw[lastscan + i]) s++;
        i++;
        if (s * 2 - i > sf * 2 - lenf) {
          sf = s;
          lenf = i;
        }
      }
      let lenb = 0;
      if (scan < newsize) {
        s = 0;
        let sb = 0;
        for (let i = 1; scan >= lastscan + i && pos >= i; i++) {
          if (old[pos - i] === nw[scan - i]) s++;
          if (s * 2 - i > sb * 2 - lenb) {
            sb = s;
            lenb = i;
          }
        }
      }
      if (lastscan + lenf > scan - lenb) {
        const overlap = lastscan + lenf - (scan - lenb);
        s = 0;
        let ss = 0;
        let lens = 0;
        for (let i = 0; i < overlap; i++) {
          if (nw[lastscan + lenf - overlap + i] === old[lastpos + lenf - overlap + i]) s++;
          if (nw[scan - lenb + i] === old[pos - lenb + i]) s--;
          if (s > ss) {
            ss = s;
            lens = i + 1;
          }
        }
        lenf += lens - overlap;
        lenb -= lens;
      }
      const extraLen = scan - lenb - (lastscan + lenf);
      const rec = Buffer.allocUnsafe(24 + lenf + extraLen);
      putCtrl(rec, 0, lenf);
      putCtrl(rec, 8, extraLen);
      putCtrl(rec, 16, pos - lenb - (lastpos + lenf));
      for (let i = 0; i < lenf; i++) rec[24 + i] = (nw[lastscan + i] - old[lastpos + i]) & 0xff;
      rec.set(nw.subarray(lastscan + lenf, scan - lenb), 24 + lenf);
      out.push(rec);
      lastscan = scan - lenb;
      lastpos = pos - lenb;
      lastoffset = pos - scan;
    }
  }
  return out;
}

function badPatch(detail: string): LarchError {
  return new LarchError('OBJECT_CORRUPTED', `Invalid bsdiff patch in static delta: ${detail}`, {});
}

function getCtrl(p: Uint8Array, off: number): number {
  const lo = p[off] | (p[off + 1] << 8) | (p[off + 2] << 16);
  const b3 = p[off + 3];
  const hi = p[off + 4] | (p[off + 5] << 8) | (p[off + 6] << 16) | ((p[off + 7] & 0x7f) << 24);
  if (hi >= 0x200000) throw badPatch('control value out of range');
  const mag = hi * 0x100000000 + b3 * 0x1000000 + lo;
  return p[off + 7] & 0x80 ? -mag : mag;
}

/**
 * Apply `patch` to `old`, producing exactly `newSize` bytes, passed to `sink` in chunks of at
 * most `chunk` bytes (each chunk is a fresh buffer the sink may keep). Throws OBJECT_CORRUPTED on
 * a malformed patch or one that would write outside the declared size.
 */
export function bspatch(old: Uint8Array, patch: Uint8Array, newSize: number, sink: (b: Uint8Array) => void, chunk = 1 << 20): void {
  let p = 0;
  let oldpos = 0;
  let emitted = 0;
  let fill = 0;
  let buf = Buffer.allocUnsafe(Math.min(chunk, Math.max(newSize, 1)));
  const flush = (): void => {
    if (fill === 0) return;
    sink(buf.subarray(0, fill));
    emitted += fill;
    fill = 0;
    buf = Buffer.allocUnsafe(Math.min(chunk, Math.max(newSize - emitted, 1)));
  };
  while (emitted + fill < newSize) {
    if (p + 24 > patch.length) throw badPatch('truncated control block');
    const x = getCtrl(patch, p);
    const y = getCtrl(patch, p + 8);
    const z = getCtrl(patch, p + 16);
    p += 24;
    if (x < 0 || y < 0 || x > 0x7fffffff || y > 0x7fffffff) throw badPatch('negative or oversized length');
    if (emitted + fill + x > newSize) throw badPatch('diff block writes past the declared size');
    if (p + x > patch.length) throw badPatch('truncated diff block');
    for (let i = 0; i < x; i++) {
      const o = oldpos + i;
      buf[fill++] = (patch[p + i] + (o >= 0 && o < old.length ? old[o] : 0)) & 0xff;
      if (fill === buf.length) flush();
    }
    p += x;
    oldpos += x;
    if (emitted + fill + y > newSize) throw badPatch('extra block writes past the declared size');
    if (p + y > patch.length) throw badPatch('truncated extra block');
    let rem = y;
    while (rem > 0) {
      const n = Math.min(rem, buf.length - fill);
      buf.set(patch.subarray(p, p + n), fill);
      fill += n;
      p += n;
      rem -= n;
      if (fill === buf.length) flush();
    }
    oldpos += z;
  }
  flush();
  // Trailing bytes after the last needed record are ignored, as ostree's reader does.
}
