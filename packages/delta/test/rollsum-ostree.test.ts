/**
 * Rollsum chunking and ostree's rollsum figures, against the real ostree: for pairs of files that
 * ostree writes as rollsum copies, its verbose `static-delta generate --disable-bsdiff` names each
 * pair with `crcs=… bufs=… total=… matchsize=…`; `ostreeRollsumStats` must give the same four
 * numbers. The files cover the corners of ostree's chunker: chunks cut at 32 KiB inside long
 * stretches without a boundary, a file that ends without one (the rest is then cut in 32 KiB
 * pieces), and periodic data where a fresh search finds a boundary in its first 63 bytes that a
 * search with a full window does not (seed 189: found by comparing with a chunker that restarted
 * its search at every 32 KiB cut).
 */
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { interopDescribe, ostreeOk, tmpDir, type TmpDir } from '@larch/test-fixtures';
import { ostreeRollsumStats, ostreeTakesRollsum, rollsumChunks, rollsumMatches } from '../src/index.js';
import { seeded } from './helpers.js';

let tmp: TmpDir;

/** xorshift32 bytes, no structure. */
function noise(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

const periodic = (block: Buffer, times: number): Buffer => Buffer.concat(Array.from({ length: times }, () => block));

/** Old files by name; each new file is the old one with 40 zero bytes appended (a rollsum pair for ostree). */
const FILES: Record<string, Buffer> = {
  'noise.bin': noise(400_000, 1),
  'structured.bin': seeded(300_000, 2),
  'zero-run.bin': Buffer.concat([noise(150_000, 3), Buffer.alloc(200_000), noise(100_000, 4)]),
  'zero-tail.bin': Buffer.concat([noise(120_000, 5), Buffer.alloc(90_000)]),
  'periodic.bin': Buffer.concat([noise(20_000, 99), periodic(noise(64, 189), 2048)]),
  'periodic2.bin': Buffer.concat([noise(50_000, 7), periodic(noise(64, 425), 3000), noise(30_000, 8)]),
  'text.txt': Buffer.from(Array.from({ length: 6000 }, (_, i) => `${i} ${'abc'.repeat(i % 17)}\n`).join('')),
};

describe('rollsum chunking', () => {
  it("cuts long stretches at 32 KiB and covers the file; a header in front defeats ostree's measure only", () => {
    for (const data of Object.values(FILES)) {
      const cs = rollsumChunks(data);
      let at = 0;
      for (const c of cs) {
        expect(c.offset).toBe(at);
        expect(c.length).toBeGreaterThan(0);
        expect(c.length).toBeLessThanOrEqual(32 * 1024);
        at += c.length;
      }
      expect(at).toBe(data.length);
    }
    const old = FILES['noise.bin'];
    const nw = Buffer.concat([Buffer.from('aheader\n'), old]);
    // Every chunk but the first is found verbatim...
    expect(rollsumMatches(old, nw).ratio).toBeGreaterThan(0.9);
    // ...but ostree keys chunks by the files' first bytes, which now differ: no rollsum for it.
    const s = ostreeRollsumStats(old, nw);
    expect(s.bufmatches).toBe(0);
    expect(ostreeTakesRollsum(s)).toBe(false);
    expect(ostreeTakesRollsum(ostreeRollsumStats(old, Buffer.concat([old, Buffer.alloc(40)])))).toBe(true);
  });
});

interopDescribe(describe)('rollsum figures against the real ostree', () => {
  beforeAll(async () => {
    tmp = await tmpDir('larch-delta-rollsum-');
  });
  afterAll(async () => {
    await tmp?.cleanup();
  });

  it('gives the crcs, bufs, total and matchsize ostree prints for each rollsum pair', async () => {
    const repo = join(tmp.path, 'repo');
    await ostreeOk(['--repo=' + repo, 'init', '--mode=archive']);
    const commit = async (name: string, grow: boolean): Promise<string> => {
      const t = join(tmp.path, name);
      await fsp.mkdir(t);
      for (const [f, data] of Object.entries(FILES)) await fsp.writeFile(join(t, f), grow ? Buffer.concat([data, Buffer.alloc(40)]) : data);
      const r = await ostreeOk(['--repo=' + repo, 'commit', '-b', 'main', '-s', name, '--owner-uid=0', '--owner-gid=0', '--no-xattrs', `--tree=dir=${t}`]);
      return r.stdout.trim();
    };
    const c1 = await commit('v1', false);
    const c2 = await commit('v2', true);
    const r = await ostreeOk(['--repo=' + repo, 'static-delta', 'generate', '--disable-bsdiff', `--from=${c1}`, `--to=${c2}`]);
    const printed = new Map<string, string>();
    for (const m of r.stderr.matchAll(/^rollsum for ([0-9a-f]{64}) -> ([0-9a-f]{64}); (crcs=\d+ bufs=\d+ total=\d+ matchsize=\d+)$/gm)) printed.set(`${m[1]} ${m[2]}`, m[3]);
    expect(printed.size).toBe(Object.keys(FILES).length);
    const sumOf = async (c: string, f: string): Promise<string> => (await ostreeOk(['--repo=' + repo, 'ls', '-C', c, `/${f}`])).stdout.trim().split(/\s+/)[4];
    for (const [f, data] of Object.entries(FILES)) {
      const key = `${await sumOf(c1, f)} ${await sumOf(c2, f)}`;
      const s = ostreeRollsumStats(data, Buffer.concat([data, Buffer.alloc(40)]));
      expect(`${f}: crcs=${s.crcmatches} bufs=${s.bufmatches} total=${s.total} matchsize=${s.matchSize}`).toBe(`${f}: ${printed.get(key)}`);
    }
  });
});
