import { describe, expect, it } from 'vitest';
import { GVariantError, Variant, decode, encode, type GValue } from './index.js';

function badValue(type: string, value: GValue): GVariantError {
  try {
    encode(type, value);
  } catch (err) {
    expect(err).toBeInstanceOf(GVariantError);
    expect((err as GVariantError).code).toBe('BAD_VALUE');
    return err as GVariantError;
  }
  throw new Error(`encode(${type}) accepted a bad value`);
}

describe('encode validation', () => {
  it('reports the path of the bad part of the value', () => {
    const value: GValue = [0, 'x', [[1, 'a'], [2, 'b'], [3, 'c'], [4, 'd'], [5, 'e'], ['6', 'f']]];
    const err = badValue('(us a(us))'.replace(' ', ''), value);
    expect(err.data).toMatchObject({ path: '.2[5].0', type: 'u' });
    expect(badValue('a{sv}', [['k', new Variant('as', ['a', 7 as unknown as string])]]).data.path).toBe('[0].1<>[1]');
    expect(badValue('mmu', [-1]).data.path).toBe('??');
    expect(badValue('u', -1).data.path).toBe('');
  });

  it('checks integer ranges and kinds', () => {
    for (const [t, v] of [
      ['y', 256],
      ['y', -1],
      ['y', 1.5],
      ['n', 32768],
      ['q', -1],
      ['i', 2 ** 31],
      ['u', 2 ** 32],
      ['u', Number.NaN],
      ['h', 2 ** 31],
      ['t', 5],
      ['t', -1n],
      ['t', 2n ** 64n],
      ['x', 2n ** 63n],
      ['x', -(2n ** 63n) - 1n],
      ['i', 5n],
      ['d', 1n],
      ['b', 1],
    ] as Array<[string, GValue]>) {
      badValue(t, v);
    }
    expect(decode('t', encode('t', 2n ** 64n - 1n))).toBe(2n ** 64n - 1n);
    expect(decode('x', encode('x', -(2n ** 63n)))).toBe(-(2n ** 63n));
    expect(decode('n', encode('n', -32768))).toBe(-32768);
    expect(decode('h', encode('h', -1))).toBe(-1);
  });

  it('rejects strings with NUL or lone surrogates, and invalid object paths and signatures', () => {
    badValue('s', 'a\0b');
    badValue('s', 'é\0');
    badValue('s', 'x\ud800y');
    badValue('s', '\udc00');
    for (const o of ['', 'a', '/a/', '//', '/a//b', '/a-b']) badValue('o', o);
    for (const g of ['z', 'a', '{sv}x(', 'mi']) badValue('g', g);
    expect(decode('s', encode('s', '😀é'))).toBe('😀é');
    expect(decode('o', encode('o', '/a/b_1'))).toBe('/a/b_1');
    expect(decode('g', encode('g', 'a{sv}(ii)'))).toBe('a{sv}(ii)');
  });

  it('checks container shapes', () => {
    badValue('(uu)', [1]);
    badValue('(uu)', [1, 2, 3]);
    badValue('{sv}', ['a']);
    badValue('ay', [1, 2]);
    badValue('as', 'abc');
    badValue('v', 5);
    badValue('v', new Variant('not a type', 1));
    badValue('v', new Variant('u', 'x'));
    badValue('mmu', 5); // a maybe of a maybe takes null or [inner]
    badValue('()', [1]);
  });

  it('limits nesting of variants to 128 levels', () => {
    let v: GValue = 1;
    for (let i = 0; i < 200; i++) v = new Variant(i === 0 ? 'u' : 'v', v);
    expect(badValue('v', v).data.reason).toMatch(/nesting/);
  });

  it('distinguishes nothing from just nothing in a maybe of a maybe', () => {
    expect(Buffer.from(encode('mmu', null)).toString('hex')).toBe('');
    expect(Buffer.from(encode('mmu', [null])).toString('hex')).toBe('00');
    expect(Buffer.from(encode('mmu', [7])).toString('hex')).toBe('0700000000');
    expect(decode('mmu', Uint8Array.of(0))).toEqual([null]);
    expect(decode('mmu', Uint8Array.of())).toBeNull();
  });

  it('returns a buffer of exactly the serialized size and decodes ay as a view', () => {
    const enc = encode('(say)', ['x', Uint8Array.of(1, 2, 3)]);
    expect(enc.byteLength).toBe(enc.buffer.byteLength);
    const [, ay] = decode<[string, Uint8Array]>('(say)', enc);
    expect(ay.buffer).toBe(enc.buffer);
    expect(ay.byteOffset).toBe(2);
  });

  it('decodes ay from a Buffer as a plain Uint8Array view', () => {
    const buf = Buffer.from(encode('(say)', ['x', Uint8Array.of(1, 2, 3)]));
    const [, ay] = decode<[string, Uint8Array]>('(say)', buf);
    expect(Object.getPrototypeOf(ay)).toBe(Uint8Array.prototype);
    expect(ay.buffer).toBe(buf.buffer);
    expect(ay).toEqual(Uint8Array.of(1, 2, 3));
  });

  it('keeps unknown metadata inside variants byte for byte', () => {
    const meta: GValue = [
      ['custom.x', new Variant('a(sxmv)', [['a', -5n, null], ['b', 6n, new Variant('ay', Uint8Array.of(9))]])],
      ['custom.y', new Variant('(dbg)', [0.5, true, 'as'])],
    ];
    const enc = encode('a{sv}', meta);
    expect(Buffer.from(encode('a{sv}', decode('a{sv}', enc))).equals(Buffer.from(enc))).toBe(true);
  });
});
