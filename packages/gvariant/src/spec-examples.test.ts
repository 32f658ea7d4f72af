// Known-answer vectors: every byte example of spec/gvariant.md sections 3 and 5.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { Variant, bswap32, bswap64, decode, decodeNormal, encode, isNormalForm, type GValue } from './index.js';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const bytes = (h: string): Uint8Array => new Uint8Array(Buffer.from(h.replace(/[\s|]/g, ''), 'hex'));
const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const latin = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'latin1'));

/** Encode must give exactly `h`, and `h` must decode (strictly) back to `value`. */
function vector(type: string, value: GValue, h: string): void {
  const enc = encode(type, value);
  expect(hex(enc)).toBe(hex(bytes(h)));
  expect(isNormalForm(type, bytes(h))).toBe(true);
  expect(decodeNormal(type, bytes(h))).toEqual(value);
}

describe('spec 3.1 fixed-size basic types', () => {
  it('encodes y, b, q, u, t little-endian', () => {
    vector('y', 0x2a, '2a');
    vector('b', true, '01');
    vector('q', 0x0102, '02 01');
    vector('u', 0x01020304, '04 03 02 01');
    vector('t', 1577836800n, '00 e1 0b 5e 00 00 00 00');
  });
});

describe('spec 3.2 strings', () => {
  it('writes UTF-8 then one NUL', () => {
    vector('s', 'hello', '68 65 6c 6c 6f 00');
    vector('s', '', '00');
  });
});

describe('spec 3.3 framing offset width', () => {
  it('switches to 2-byte offsets when a 1-byte total would overflow (254-char string)', () => {
    const enc = encode('as', ['x'.repeat(254)]);
    expect(enc.length).toBe(257);
    expect(hex(enc.subarray(-4))).toBe('7800ff00');
    expect(decodeNormal('as', enc)).toEqual(['x'.repeat(254)]);
  });
  it('keeps 1-byte offsets at exactly 255 bytes (253-char string)', () => {
    const enc = encode('as', ['x'.repeat(253)]);
    expect(enc.length).toBe(255);
    expect(hex(enc.subarray(-3))).toBe('7800fe');
    expect(decodeNormal('as', enc)).toEqual(['x'.repeat(253)]);
  });
});

describe('spec 3.3 offset width at the 2-byte / 4-byte boundary', () => {
  it('uses 2-byte offsets up to a total of 0xffff and 4-byte offsets beyond', () => {
    const w2 = encode('as', ['x'.repeat(65531)]);
    expect(w2.length).toBe(65534);
    expect(hex(w2.subarray(-2))).toBe('fcff');
    const w4 = encode('as', ['x'.repeat(65533)]);
    expect(w4.length).toBe(65538);
    expect(hex(w4.subarray(-4))).toBe('feff0000');
    expect(decodeNormal('as', w4)).toEqual(['x'.repeat(65533)]);
    const big = encode('(ss)', ['y'.repeat(70000), 'z']);
    expect(hex(big.subarray(-4))).toBe(hex(Uint8Array.of(0x71, 0x11, 0x01, 0x00)));
    expect(decodeNormal('(ss)', big)).toEqual(['y'.repeat(70000), 'z']);
  });
});

describe('spec 3.4 arrays', () => {
  it('writes fixed-size elements back to back', () => {
    vector('ay', Uint8Array.of(1, 2, 3), '01 02 03');
    vector('au', [1, 2], '01 00 00 00 02 00 00 00');
    vector('au', [], '');
  });
  it('writes variable-size elements followed by their end offsets', () => {
    vector('as', ['a', 'bc'], '61 00 62 63 00 | 02 05');
    vector('aay', [latin('abc')], '61 62 63 | 03');
    vector('aay', [new Uint8Array(0), latin('xy')], '78 79 | 00 02');
    vector('as', [], '');
  });
});

describe('spec 3.5 tuples and dict entries', () => {
  it('pads fixed-size tuples to their alignment', () => {
    vector('(uy)', [1, 2], '01 00 00 00 02 00 00 00');
    vector('(yu)', [2, 1], '02 00 00 00 01 00 00 00');
    vector('()', [], '00');
  });
  it('stores one offset per variable member except the last, reversed', () => {
    vector('(ys)', [1, 'ab'], '01 61 62 00');
    vector('(sy)', ['ab', 1], '61 62 00 01 | 03');
    vector('(ss)', ['a', 'b'], '61 00 62 00 | 02');
    vector('(sss)', ['a', 'bc', 'd'], '61 00 62 63 00 64 00 | 05 02');
    vector('(st)', ['ab', 5n], '61 62 00 00 00 00 00 00 | 05 00 00 00 00 00 00 00 | 03');
    vector('(ts)', [5n, 'ab'], '05 00 00 00 00 00 00 00 61 62 00');
    vector('{ss}', ['k', 'v'], '6b 00 76 00 | 02');
  });
  it('uses 2-byte offsets for a 304-byte (say)', () => {
    const enc = encode('(say)', ['x'.repeat(300), Uint8Array.of(1)]);
    expect(enc.length).toBe(304);
    expect(hex(enc)).toBe('78'.repeat(300) + '00' + '01' + '2d01');
    expect(decodeNormal('(say)', enc)).toEqual(['x'.repeat(300), Uint8Array.of(1)]);
  });
});

describe('spec 3.6 variants', () => {
  it('writes the child, a NUL, then the type string', () => {
    vector('v', new Variant('u', 1), '01 00 00 00 00 75');
    vector('v', new Variant('s', 'x'), '78 00 00 73');
  });
});

describe('spec 3.7 maybe', () => {
  it('encodes nothing, a fixed just and a variable just', () => {
    vector('mu', null, '');
    vector('mu', 7, '07 00 00 00');
    vector('ms', 'ab', '61 62 00 00');
  });
});

describe('spec 3.8 dictionaries', () => {
  it('encodes a{sv} with padding before the variant', () => {
    vector('a{sv}', [['a', new Variant('u', 1)]], '61 00 | 00 00 00 00 00 00 | 01 00 00 00 00 75 | 02 | 0f');
  });
  it('encodes the version entry of a real commit', () => {
    vector('a{sv}', [['version', new Variant('s', '1.0')]], '76 65 72 73 69 6f 6e 00 31 2e 30 00 00 73 08 0f');
  });
});

describe('spec 5 objects written by the real ostree', () => {
  const emptyFile = bytes('cc700d46f407c6c5ab2d5dde474366a928b7398277e61162e7f8ec06f469f07e');
  const rootTree = bytes('71bb55e6c5c63ed91c8cdb1e7637389c9490c5b6badb64485e36dac1a42fa17c');
  const rootMeta = bytes('446a0ef11b7cc167f3b603e585c7eeeeb675faa412d5ec73f62988eb0b6c5488');

  it('5.1 dirmeta: big-endian mode, empty xattrs take no bytes', () => {
    const value: GValue = [0, 0, bswap32(0o40755), []];
    vector('(uuua(ayay))', value, '00 00 00 00 | 00 00 00 00 | 00 00 41 ed');
    expect(sha256(encode('(uuua(ayay))', value))).toBe('446a0ef11b7cc167f3b603e585c7eeeeb675faa412d5ec73f62988eb0b6c5488');
  });

  it('5.2 dirtree of sub/ with one file', () => {
    const value: GValue = [[['empty', emptyFile]], []];
    const enc = encode('(a(say)a(sayay))', value);
    expect(hex(enc)).toBe('656d70747900' + hex(emptyFile) + '06' + '27' + '28');
    expect(enc.length).toBe(41);
    expect(sha256(enc)).toBe('81ea3e94a64fcb26ef505be1e7fa22c9fc2289eb87053f0e2eae1daf7a1e3257');
    expect(decodeNormal('(a(say)a(sayay))', enc)).toEqual(value);
  });

  it('5.3 file header of a regular 0644 file', () => {
    vector('(uuuusa(ayay))', [0, 0, bswap32(0o100644), 0, '', []], '00000000 00000000 000081a4 00000000 00 11');
  });

  it('5.4 symlink header', () => {
    vector('(uuuusa(ayay))', [0, 0, bswap32(0o120777), 0, 'hello.txt', []], '00000000 00000000 0000a1ff 00000000 68656c6c6f2e74787400 1a');
  });

  it('5.5 xattrs with a bytestring name', () => {
    vector('a(ayay)', [[latin('user.a\0'), latin('1')]], '75 73 65 72 2e 61 00 31 | 07 | 09');
  });

  it('5.6 commit: 142 bytes whose sha256 is the commit id', () => {
    const value: GValue = [
      [
        ['version', new Variant('s', '1.0')],
        ['ostree.ref-binding', new Variant('as', ['test'])],
      ],
      new Uint8Array(0),
      [],
      'subj',
      'body',
      bswap64(1577836800n),
      rootTree,
      rootMeta,
    ];
    const enc = encode('(a{sv}aya(say)sstayay)', value);
    expect(enc.length).toBe(142);
    expect(sha256(enc)).toBe('523dfdfd32c67bb444a4ea88a9ed9c0757147265835f891b5eee72895668366d');
    // spot-check the layout annotated in the spec
    expect(hex(enc.subarray(0, 0x10))).toBe('76657273696f6e00312e300000730800');
    expect(hex(enc.subarray(0x28, 0x32))).toBe('74657374000500617313');
    expect(hex(enc.subarray(0x32, 0x34))).toBe('0f32');
    expect(hex(enc.subarray(0x40, 0x48))).toBe('000000005e0be100');
    expect(hex(enc.subarray(0x88))).toBe('683e39343434');
    const back = decodeNormal<GValue[]>('(a{sv}aya(say)sstayay)', enc);
    expect(back).toEqual(value);
    expect(bswap64(back[5] as bigint)).toBe(1577836800n);
  });
});

describe('spec 4 normal form examples confirmed with GLib', () => {
  it('rejects a bad last offset and accepts the right one', () => {
    expect(isNormalForm('as', bytes('61 00 62 63 00 02 ff'))).toBe(false);
    expect(isNormalForm('as', bytes('61 00 62 63 00 02 05'))).toBe(true);
  });
  it('rejects non-zero padding but still decodes it', () => {
    const b = bytes('02 ff 00 00 01 00 00 00');
    expect(isNormalForm('(yu)', b)).toBe(false);
    expect(decode('(yu)', b)).toEqual([2, 1]);
    expect(() => decodeNormal('(yu)', b)).toThrow(expect.objectContaining({ code: 'NOT_NORMAL_FORM' }));
  });
});
