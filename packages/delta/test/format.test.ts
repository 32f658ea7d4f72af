import { createHash } from 'node:crypto';
import zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { encode } from '@larch/gvariant';
import { COMMIT_TYPE, serializeCommit, type LarchError } from '@larch/core-store';
import {
  ByteSink,
  OpReader,
  bsdiff,
  bspatch,
  decodePartBody,
  decodeSuperblock,
  deltaRelDir,
  encodePartBody,
  encodePartBodyChunks,
  encodeSuperblock,
  mb64,
  mb64Decode,
  parseDeltaDirName,
  rollsumMatches,
  suffixArray,
  xzCompress,
  xzDecompressBounded,
} from '../src/index.js';
import { mutate, seeded } from './helpers.js';

const A = 'aaae6b31956490f0d64b910392508cb90cdd1d3872ea0b83c13c6e2ea9e55ca0';
const B = '762ab2d50a4577ced771771f87a1281793ed86c872ca8a3130cbe806c6a53ca6';

describe('names', () => {
  it('encodes modified base64 as in the spec examples', () => {
    expect(mb64(A)).toBe('qq5rMZVkkPDWS5EDklCMuQzdHThy6guDwTxuLqnlXKA');
    expect(mb64(B)).toBe('diqy1QpFd87XcXcfh6EoF5PthshyyooxMMvoBsalPKY');
    expect(mb64Decode('qq5rMZVkkPDWS5EDklCMuQzdHThy6guDwTxuLqnlXKA')).toBe(A);
    expect(mb64Decode('../etc/passwd')).toBeNull();
    expect(deltaRelDir(null, A)).toBe('deltas/qq/5rMZVkkPDWS5EDklCMuQzdHThy6guDwTxuLqnlXKA');
    expect(deltaRelDir(A, B)).toBe('deltas/qq/5rMZVkkPDWS5EDklCMuQzdHThy6guDwTxuLqnlXKA-diqy1QpFd87XcXcfh6EoF5PthshyyooxMMvoBsalPKY');
    expect(parseDeltaDirName('qq', '5rMZVkkPDWS5EDklCMuQzdHThy6guDwTxuLqnlXKA-diqy1QpFd87XcXcfh6EoF5PthshyyooxMMvoBsalPKY')).toEqual({ from: A, to: B });
    expect(parseDeltaDirName('qq', 'junk')).toBeNull();
  });
});

describe('varints', () => {
  it('encodes LEB128 as in the spec and refuses truncated input', () => {
    const s = new ByteSink();
    for (const v of [0, 127, 128, 152, 300]) s.varint(v);
    expect(Buffer.from(s.view()).toString('hex')).toBe('007f80019801ac02');
    const r = new OpReader(s.view(), 'test');
    expect([r.varint(), r.varint(), r.varint(), r.varint(), r.varint()]).toEqual([0, 127, 128, 152, 300]);
    expect(() => new OpReader(Uint8Array.of(0x80, 0x80), 'test').varint()).toThrow(/Truncated varint/);
    expect(() => new OpReader(new Uint8Array(11).fill(0xff), 'test').varint()).toThrow(/Invalid varint/);
  });
});

describe('bsdiff', () => {
  it('builds a suffix array', () => {
    const s = Buffer.from('banana');
    expect([...suffixArray(s)]).toEqual([5, 3, 1, 0, 4, 2]);
    const r = seeded(5000, 3);
    const sa = suffixArray(r);
    for (let i = 1; i < sa.length; i++) expect(Buffer.compare(r.subarray(sa[i - 1]), r.subarray(sa[i]))).toBeLessThan(0);
    // Repetitive inputs (recursion in SA-IS) against a naive sort.
    for (const text of ['aaaaaaaaaaaaaaaa', 'abababababababab', 'mississippi', 'abracadabra'.repeat(40), '\u0000\u0000\u0001\u0000']) {
      const b = Buffer.from(text, 'latin1');
      const naive = [...b.keys()].sort((x, y) => Buffer.compare(b.subarray(x), b.subarray(y)));
      expect([...suffixArray(b)]).toEqual(naive);
    }
    const small = Buffer.from(seeded(3000, 9).map((x) => x & 3));
    const naive = [...small.keys()].sort((x, y) => Buffer.compare(small.subarray(x), small.subarray(y)));
    expect([...suffixArray(small)]).toEqual(naive);
  });

  it('applies the spec example patch (hello world -> hello there)', () => {
    const patch = Buffer.concat([
      Buffer.from('0600000000000000060000000000000005000000000000000000000000', 'hex').subarray(0, 24),
      Buffer.alloc(6),
      Buffer.from('there\n'),
    ]);
    const out: Uint8Array[] = [];
    bspatch(Buffer.from('hello world\n'), patch, 12, (b) => out.push(b));
    expect(Buffer.concat(out).toString()).toBe('hello there\n');
  });

  it('round-trips modified binaries and beats the plain size', () => {
    const old = seeded(60_000, 7);
    const nw = mutate(old, 3, 700);
    const patch = Buffer.concat(bsdiff(old, nw));
    const out: Uint8Array[] = [];
    bspatch(old, patch, nw.length, (b) => out.push(b), 4096);
    expect(Buffer.concat(out).equals(nw)).toBe(true);
    // Mostly zero diff bytes: compresses far below the new file.
    return xzCompress(patch, 6).then((z) => expect(z.length).toBeLessThan(nw.length / 10));
  });

  it('handles empty inputs', () => {
    const p = Buffer.concat(bsdiff(Buffer.alloc(0), Buffer.from('abc')));
    const out: Uint8Array[] = [];
    bspatch(Buffer.alloc(0), p, 3, (b) => out.push(b));
    expect(Buffer.concat(out).toString()).toBe('abc');
    expect(bsdiff(Buffer.from('abc'), Buffer.alloc(0))).toEqual([]);
  });

  it('refuses patches that write past the declared size or are truncated', () => {
    const old = Buffer.from('hello world\n');
    const ctrl = (x: number, y: number, z: number): Buffer => {
      const b = Buffer.alloc(24);
      b.writeUInt32LE(x, 0);
      b.writeUInt32LE(y, 8);
      b.writeUInt32LE(Math.abs(z), 16);
      if (z < 0) b[23] = 0x80;
      return b;
    };
    const sink = (): void => undefined;
    expect(() => bspatch(old, Buffer.concat([ctrl(100, 0, 0), Buffer.alloc(100)]), 12, sink)).toThrow(/past the declared size/);
    expect(() => bspatch(old, Buffer.concat([ctrl(6, 6, 0), Buffer.alloc(6)]), 12, sink)).toThrow(/truncated extra block/);
    expect(() => bspatch(old, ctrl(6, 0, 0).subarray(0, 10), 12, sink)).toThrow(/truncated control block/);
    const neg = ctrl(1, 0, 0);
    neg[7] = 0x80;
    expect(() => bspatch(old, Buffer.concat([neg, Buffer.alloc(1)]), 12, sink)).toThrow(/negative/);
  });
});

describe('rollsum', () => {
  it('matches unchanged chunks around an insertion', () => {
    const old = seeded(300_000, 5);
    const nw = Buffer.concat([old.subarray(0, 100_000), seeded(5000, 6), old.subarray(100_000)]);
    const { matches, ratio } = rollsumMatches(old, nw);
    expect(ratio).toBeGreaterThan(0.5);
    for (const m of matches) expect(Buffer.compare(old.subarray(m.from, m.from + m.length), nw.subarray(m.to, m.to + m.length))).toBe(0);
    expect(rollsumMatches(seeded(50_000, 1), seeded(50_000, 2)).ratio).toBe(0);
  });
});

describe('xz', () => {
  it('round-trips and refuses output past the limit (decompression bomb)', async () => {
    const data = Buffer.alloc(5_000_000, 0x41);
    const z = await xzCompress(data, 6);
    expect(z.length).toBeLessThan(10_000);
    expect((await xzDecompressBounded(z, 5_000_000, 'part 0')).equals(data)).toBe(true);
    await expect(xzDecompressBounded(z, 1_000_000, 'part 0')).rejects.toThrow(/decompresses past its limit of 1000000 bytes/);
    await expect(xzDecompressBounded(z.subarray(0, z.length - 10), 5_000_000, 'part 0')).rejects.toThrow(/Invalid xz stream/);
    const bad = Buffer.from(z);
    bad[bad.length >> 1] ^= 0xff;
    await expect(xzDecompressBounded(bad, 5_000_000, 'part 0')).rejects.toThrow(/Invalid xz stream/);
  });
});

describe('bounded xz decoding', () => {
  /** `z` with its block header asking for a 1.5 GiB LZMA2 dictionary (CRC32 of the header fixed up). */
  function hugeDictionary(z: Buffer): Buffer {
    const out = Buffer.from(z);
    const size = (out[12] + 1) * 4; // the block header follows the 12-byte stream header
    const header = out.subarray(12, 12 + size);
    const at = header.indexOf(Buffer.from([0x21, 0x01])); // LZMA2 filter id, 1 property byte
    header[at + 2] = 37; // dictionary 1.5 GiB
    header.writeUInt32LE(zlib.crc32(header.subarray(0, size - 4)), size - 4);
    return out;
  }

  const backEnds = [
    ['system liblzma', async () => {
      const { systemLzma } = await import('../src/xz-system.js');
      return systemLzma() === null ? null : xzDecompressBounded;
    }],
    ['lzma-native', async () => (await import('../src/xz.js')).nativeDecompress],
  ] as const;
  for (const [name, load] of backEnds) {
    it(`${name} names each failure from a single pass: past the limit, truncated, corrupt, not xz, decoder memory`, async () => {
      const decode = await load();
      if (decode === null) return; // no system liblzma here
      const data = Buffer.alloc(5_000_000, 0x41);
      const z = await xzCompress(data, 6, false, false, 1 << 20);
      const failure = (b: Uint8Array, max: number): Promise<LarchError> => decode(b, max, 'part 7').then(
        () => expect.fail('decoded'),
        (e: LarchError) => e,
      );
      expect((await decode(z, 5_000_000, 'part 7')).equals(data)).toBe(true);
      const limit = await failure(z, 4_999_999);
      expect([limit.code, limit.message, limit.data]).toEqual(['LIMIT_EXCEEDED', 'Static delta part 7 decompresses past its limit of 4999999 bytes', { limit: 4_999_999 }]);
      expect((await failure(z.subarray(0, z.length - 10), 5_000_000)).message).toBe('Invalid xz stream in static delta part 7: compressed data is truncated');
      const bad = Buffer.from(z);
      bad.fill(0x5a, 40, 50);
      expect((await failure(bad, 5_000_000)).message).toBe('Invalid xz stream in static delta part 7: compressed data is corrupt');
      expect((await failure(Buffer.from('not an xz stream at all'), 5_000_000)).message).toBe('Invalid xz stream in static delta part 7: not an .xz stream');
      const mem = await failure(hugeDictionary(z), 5_000_000);
      expect([mem.code, mem.message]).toEqual(['LIMIT_EXCEEDED', 'Static delta part 7 needs more than 104857600 bytes of xz decoder memory']);
    });
  }
});

describe('xz back ends', () => {
  it('system liblzma and lzma-native read each other\'s streams (plain, x86 filter, sized dictionary)', async () => {
    const { systemLzma, systemXzEncode, systemXzDecode } = await import('../src/xz-system.js');
    const { nativeCompress, nativeDecompress } = await import('../src/xz.js');
    const sys = systemLzma();
    if (sys === null) return; // no system liblzma: only the native back end exists
    const data = Buffer.concat([seeded(300_000, 4), Buffer.alloc(100_000, 0xe8)]);
    for (const [x86, dict] of [[false, undefined], [true, 1 << 20]] as const) {
      const a = await systemXzEncode(sys, data, 8, false, dict, x86);
      expect(a).not.toBeNull();
      expect((await nativeDecompress(a!, data.length, 'part 0')).equals(data)).toBe(true);
      const b = await nativeCompress([data.subarray(0, 1000), data.subarray(1000)], 8, false, x86, dict);
      const r = await systemXzDecode(sys, b, data.length, 100 << 20);
      expect(r.ok && r.data.equals(data)).toBe(true);
      expect((await systemXzDecode(sys, b, 1000, 100 << 20)).ok).toBe(false);
    }
  });
});

describe('superblock and part body', () => {
  const commit = serializeCommit({ metadata: [], parent: null, subject: 's', body: '', timestamp: 1n, rootTree: A, rootMeta: B });
  const to = createHash('sha256').update(commit).digest('hex');

  it('round-trips, keeping the commit byte for byte', () => {
    const sb = encodeSuperblock({
      metadata: [],
      timestamp: 1234n,
      from: null,
      to,
      commit,
      parts: [{ version: 0, checksum: A, size: 10, usize: 20, objects: [{ type: 'dirtree', checksum: B }] }],
      fallbacks: [{ type: 'file', checksum: A, compressedSize: 5, size: 6 }],
    });
    const d = decodeSuperblock(sb);
    expect(d.to).toBe(to);
    expect(d.from).toBeNull();
    expect(d.timestamp).toBe(1234n);
    expect(Buffer.from(d.commit).equals(Buffer.from(commit))).toBe(true);
    expect(d.parts[0]).toEqual({ version: 0, checksum: A, size: 10, usize: 20, objects: [{ type: 'dirtree', checksum: B }] });
    expect(d.fallbacks).toEqual([{ type: 'file', checksum: A, compressedSize: 5, size: 6 }]);
    // Timestamp is big-endian whatever the byte order key says.
    expect(Buffer.from(sb).includes(Buffer.from('00000000000004d2', 'hex'))).toBe(true);
  });

  it('refuses a superblock whose commit does not hash to TO, bad checksum lengths and object lists', () => {
    const type = `(a{sv}tayay${COMMIT_TYPE}aya(uayttay)a(yaytt))`;
    const commitV = [[], new Uint8Array(0), [], 's', '', 0x0100000000000000n, Buffer.from(A, 'hex'), Buffer.from(B, 'hex')];
    const mk = (toB: Uint8Array, objs: Uint8Array, fromB = new Uint8Array(0)): Uint8Array =>
      encode(type, [[], 0n, fromB, toB, commitV, new Uint8Array(0), [[0, Buffer.from(A, 'hex'), 1n, 1n, objs]], []] as never);
    expect(() => decodeSuperblock(mk(Buffer.from(A, 'hex'), new Uint8Array(0)))).toThrow(/Corrupted commit object in static delta superblock/);
    expect(() => decodeSuperblock(mk(Buffer.from(to, 'hex').subarray(0, 31), new Uint8Array(0)))).toThrow(/Invalid checksum of length 31 expected 32/);
    expect(() => decodeSuperblock(mk(Buffer.from(to, 'hex'), new Uint8Array(0), new Uint8Array(5)))).toThrow(/Invalid checksum of length 5/);
    expect(() => decodeSuperblock(mk(Buffer.from(to, 'hex'), new Uint8Array(32)))).toThrow(/not a multiple of 33/);
    const badType = new Uint8Array(33);
    badType[0] = 9;
    expect(() => decodeSuperblock(mk(Buffer.from(to, 'hex'), badType))).toThrow(/Invalid object type 9/);
    expect(() => decodeSuperblock(Buffer.from('garbage'))).toThrow(/static delta superblock/);
  });

  it('streams the same body bytes as the one-piece encoder, at every framing width', () => {
    for (const size of [10, 200, 300, 70_000]) {
      const payload = [seeded(size, 1), Buffer.from('tail')];
      const modes: Array<[number, number, number]> = [[0, 0, 0o100644], [1000, 1000, 0o120777]];
      const xattrs = [[], [{ name: 'user.a', value: Buffer.from('v') }]];
      const ops = Buffer.from([0x53, 1, 0]);
      const one = encodePartBody({ modes, xattrs, payload: Buffer.concat(payload), ops });
      expect(Buffer.concat(encodePartBodyChunks(modes, xattrs, payload, ops)).equals(Buffer.from(one))).toBe(true);
    }
  });

  it('round-trips a part body with big-endian modes', () => {
    const body = encodePartBody({ modes: [[0, 0, 0o100644]], xattrs: [[]], payload: Buffer.from('abc'), ops: Buffer.from([0x53, 3, 0]) });
    expect(Buffer.from(body.subarray(0, 12)).toString('hex')).toBe('0000000000000000000081a4');
    const d = decodePartBody(body, 'part 0');
    expect(d.modes).toEqual([[0, 0, 0o100644]]);
    expect(d.xattrs).toEqual([[]]);
    expect(Buffer.from(d.payload).toString()).toBe('abc');
  });
});
