import { describe, expect, it } from 'vitest';
import { bspatch } from '../src/bsdiff.js';
import { ContentAnchors, copydiff } from '../src/copydiff.js';
import { aptLists, seeded } from './helpers.js';

function apply(old: Uint8Array, patch: Buffer, size: number): Buffer {
  const out: Uint8Array[] = [];
  bspatch(old, patch, size, (b) => out.push(b), 4096);
  return Buffer.concat(out);
}

describe('copydiff', () => {
  it('copies runs out of a different file and patches back exactly', () => {
    const old = seeded(300_000, 7);
    // New: literal bytes interleaved with runs of the old file, out of order, some repeated.
    const pieces: Buffer[] = [];
    const runs: Array<[number, number]> = [[250_000, 900], [10, 64], [120_000, 5000], [10, 64], [299_000, 1000], [0, 47]];
    for (const [i, [at, len]] of runs.entries()) {
      pieces.push(seeded(300 + i * 17, 100 + i), old.subarray(at, at + len));
    }
    pieces.push(seeded(123, 99));
    const nw = Buffer.concat(pieces);
    const d = copydiff(old, nw);
    const patch = Buffer.concat(d.patch);
    expect(apply(old, patch, nw.length).equals(nw)).toBe(true);
    // Every run of 48 bytes or more is found (the 47-byte one is not worth a record).
    expect(d.matched).toBeGreaterThanOrEqual(900 + 64 + 5000 + 64 + 1000);
    expect(d.copies).toBeGreaterThanOrEqual(5);
    expect(patch.length).toBe(24 * (d.copies + 1) + nw.length);
  });

  it('handles empty and unrelated inputs', () => {
    const old = seeded(10_000, 1);
    for (const nw of [Buffer.alloc(0), seeded(5, 2), seeded(20_000, 3)]) {
      const d = copydiff(old, nw);
      expect(d.copies).toBe(0);
      expect(apply(old, Buffer.concat(d.patch), nw.length).equals(nw)).toBe(true);
    }
    const d = copydiff(new Uint8Array(0), seeded(1000, 4));
    expect(apply(new Uint8Array(0), Buffer.concat(d.patch), 1000).equals(seeded(1000, 4))).toBe(true);
  });

  it('finds the shared lines of an apt Packages / Translation-en pair', () => {
    const { packages, translation } = aptLists(500);
    const old = Buffer.from(packages);
    const nw = Buffer.from(translation);
    const d = copydiff(old, nw);
    expect(d.copies).toBeGreaterThanOrEqual(450);
    expect(apply(old, Buffer.concat(d.patch), nw.length).equals(nw)).toBe(true);
  });

  it('content anchors do not depend on how the input is chunked', () => {
    const data = Buffer.from(aptLists(300).translation);
    const whole = new ContentAnchors().update(data).digest();
    const chunked = new ContentAnchors();
    for (let i = 0; i < data.length; i += 777) chunked.update(data.subarray(i, i + 777));
    expect([...chunked.digest()].sort()).toEqual([...whole].sort());
    expect(whole.length).toBeGreaterThan(10);
  });
});
