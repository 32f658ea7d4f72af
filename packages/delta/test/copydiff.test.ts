import { describe, expect, it } from 'vitest';
import { COPY_MIN_MATCH, ContentAnchors, copyLiterals, copyMatches, writeCopyOps, type CopyMatches } from '../src/copydiff.js';
import { ByteSink, OP_SET_READ_SOURCE, OP_UNSET_READ_SOURCE, OP_WRITE, OpReader } from '../src/ops.js';
import { aptLists, seeded } from './helpers.js';

/** Run the ops of a copy diff (payload: a 32-byte source name, then the literal runs) the way a reader does. */
function rebuild(old: Uint8Array, nw: Uint8Array, m: CopyMatches): { out: Buffer; ops: number } {
  const payload = Buffer.concat([Buffer.alloc(32), ...copyLiterals(nw, m)]);
  const sink = new ByteSink();
  writeCopyOps(nw, m, sink, 0, 32);
  const r = new OpReader(sink.view(), 'test');
  const out: Uint8Array[] = [];
  let source = false;
  let ops = 0;
  while (!r.done) {
    const op = r.byte();
    ops++;
    if (op === OP_SET_READ_SOURCE) {
      expect(r.varint()).toBe(0);
      source = true;
    } else if (op === OP_UNSET_READ_SOURCE) source = false;
    else if (op === OP_WRITE) {
      const size = r.varint();
      const offset = r.varint();
      const from = source ? old : payload;
      expect(offset + size).toBeLessThanOrEqual(from.length);
      out.push(from.subarray(offset, offset + size));
    } else throw new Error(`unexpected op ${op}`);
  }
  expect(source).toBe(false);
  return { out: Buffer.concat(out), ops };
}

describe('copydiff', () => {
  it('copies runs out of a different file and rebuilds it exactly', () => {
    const old = seeded(300_000, 7);
    // New: literal bytes interleaved with runs of the old file, out of order, some repeated.
    const pieces: Buffer[] = [];
    const runs: Array<[number, number]> = [[250_000, 900], [10, 64], [120_000, 5000], [10, 64], [299_000, 1000], [0, 35]];
    for (const [i, [at, len]] of runs.entries()) {
      pieces.push(seeded(300 + i * 17, 100 + i), old.subarray(at, at + len));
    }
    pieces.push(seeded(123, 99));
    const nw = Buffer.concat(pieces);
    const m = copyMatches(old, nw);
    expect(rebuild(old, nw, m).out.equals(nw)).toBe(true);
    // Every run of COPY_MIN_MATCH (36) bytes or more is found (the 35-byte one is not worth a copy).
    expect(m.matched).toBeGreaterThanOrEqual(900 + 64 + 5000 + 64 + 1000);
    expect(m.count).toBeGreaterThanOrEqual(5);
    expect(COPY_MIN_MATCH).toBe(36);
    expect(copyLiterals(nw, m).reduce((n, l) => n + l.length, 0)).toBe(nw.length - m.matched);
  });

  it('handles empty and unrelated inputs', () => {
    const old = seeded(10_000, 1);
    for (const nw of [Buffer.alloc(0), seeded(5, 2), seeded(20_000, 3)]) {
      const m = copyMatches(old, nw);
      expect(m.count).toBe(0);
      const r = rebuild(old, nw, m);
      expect(r.out.equals(nw)).toBe(true);
      expect(r.ops).toBe(nw.length > 0 ? 1 : 0);
    }
    const m = copyMatches(new Uint8Array(0), seeded(1000, 4));
    expect(rebuild(new Uint8Array(0), seeded(1000, 4), m).out.equals(seeded(1000, 4))).toBe(true);
  });

  it('finds the shared lines of an apt Packages / Translation-en pair', () => {
    const { packages, translation } = aptLists(500);
    const old = Buffer.from(packages);
    const nw = Buffer.from(translation);
    const m = copyMatches(old, nw);
    expect(m.count).toBeGreaterThanOrEqual(450);
    expect(rebuild(old, nw, m).out.equals(nw)).toBe(true);
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
