// Non-normal and malformed data (spec section 4): decode must either give a value or
// throw a GVariantError, and isNormalForm must say false.
import { describe, expect, it } from 'vitest';
import { GVariantError, Variant, decode, decodeNormal, encode, isNormalForm } from './index.js';

const bytes = (h: string): Uint8Array => new Uint8Array(Buffer.from(h.replace(/[\s|]/g, ''), 'hex'));

function decodeError(type: string, b: Uint8Array): GVariantError {
  try {
    decode(type, b);
  } catch (err) {
    expect(err).toBeInstanceOf(GVariantError);
    return err as GVariantError;
  }
  throw new Error('decode accepted malformed data');
}

describe('normal form', () => {
  it('rejects non-zero padding', () => {
    expect(isNormalForm('(yu)', bytes('02 00 01 00 01 00 00 00'))).toBe(false);
    expect(isNormalForm('(uy)', bytes('01 00 00 00 02 00 00 01'))).toBe(false); // tail padding
    expect(isNormalForm('a{sv}', bytes('61 00 | 00 00 00 01 00 00 | 01 00 00 00 00 75 | 02 | 0f'))).toBe(false);
    expect(isNormalForm('a{sv}', bytes('61 00 | 00 00 00 00 00 00 | 01 00 00 00 00 75 | 02 | 0f'))).toBe(true);
  });

  it('rejects a wrong framing-offset width', () => {
    // as ["a"] with a 2-byte offset where 1 byte is required
    expect(isNormalForm('as', bytes('61 00 | 02'))).toBe(true);
    expect(isNormalForm('as', bytes('61 00 | 02 00'))).toBe(false);
    // (sy) with a 2-byte offset
    expect(isNormalForm('(sy)', bytes('61 62 00 01 | 03 00'))).toBe(false);
  });

  it('rejects trailing bytes, while decode still reads the value', () => {
    const b = bytes('61 62 00 01 ff | 03'); // (sy) with an extra byte after y
    expect(decode('(sy)', b)).toEqual(['ab', 1]);
    expect(isNormalForm('(sy)', b)).toBe(false);
    expect(() => decodeNormal('(sy)', b)).toThrow(expect.objectContaining({ code: 'NOT_NORMAL_FORM' }));
    expect(isNormalForm('u', bytes('01 00 00 00 00'))).toBe(false);
    expect(isNormalForm('au', bytes('01 00 00 00 00'))).toBe(false);
    expect(isNormalForm('ms', bytes('61 62 00 01'))).toBe(false); // "just" marker must be 00
    expect(isNormalForm('mu', bytes('07 00 00'))).toBe(false);
  });

  it('rejects booleans other than 0 and 1', () => {
    expect(decode('b', bytes('02'))).toBe(true);
    expect(isNormalForm('b', bytes('02'))).toBe(false);
    expect(isNormalForm('ab', bytes('00 01 ff'))).toBe(false);
    expect(isNormalForm('ab', bytes('00 01 01'))).toBe(true);
  });

  it('rejects strings with an inner NUL, without a NUL, or with invalid UTF-8', () => {
    expect(decodeError('s', bytes('61 00 62 00')).code).toBe('BAD_VALUE');
    expect(decodeError('s', bytes('61 62')).code).toBe('BAD_FRAMING');
    expect(decodeError('s', bytes('')).code).toBe('BAD_FRAMING');
    expect(decodeError('s', bytes('c3 28 00')).code).toBe('BAD_VALUE');
    expect(decodeError('s', bytes('ed a0 80 00')).code).toBe('BAD_VALUE'); // encoded surrogate
    expect(decodeError('s', bytes('c0 80 00')).code).toBe('BAD_VALUE'); // overlong NUL
    expect(decodeError('o', bytes('61 00')).code).toBe('BAD_VALUE');
    expect(decodeError('g', bytes('7a 00')).code).toBe('BAD_VALUE');
    for (const h of ['61 00 62 00', '61 62', 'c3 28 00']) expect(isNormalForm('s', bytes(h))).toBe(false);
  });

  it('keeps a leading U+FEFF as part of the string', () => {
    const enc = encode('s', '\ufeffx');
    expect(decode('s', enc)).toBe('\ufeffx');
    expect(isNormalForm('s', enc)).toBe(true);
  });

  it('rejects variants with a bad type string', () => {
    expect(isNormalForm('v', bytes('01 00 00 00 00 75'))).toBe(true);
    for (const h of ['01 00 00 00 00 7a', '01 00 00 00 00 75 75', '01 00 00 00 00', '', '00 61 7b', '01 00 00 00 00 ff']) {
      expect(isNormalForm('v', bytes(h)), h).toBe(false);
      expect(decodeError('v', bytes(h)).code).toBe('BAD_FRAMING');
    }
    // the child must itself be the right size and normal
    expect(decodeError('v', bytes('01 00 00 00 75')).code).toBe('TRUNCATED');
    expect(isNormalForm('v', bytes('01 00 00 00 00 00 75'))).toBe(false);
    expect(isNormalForm('v', bytes('02 00 62'))).toBe(false);
  });

  it('rejects offsets that point backwards or outside the container', () => {
    expect(decodeError('(sss)', bytes('61 00 62 63 00 64 00 | 02 09')).code).toBe('BAD_FRAMING');
    expect(decodeError('as', bytes('61 00 62 63 00 | 05 02')).code).toBe('BAD_FRAMING');
    expect(decodeError('as', bytes('61 00 62 63 00 | 02 06')).code).toBe('BAD_FRAMING');
    expect(decodeError('aay', bytes('61 | 02 01')).code).toBe('BAD_FRAMING');
  });

  it('reports truncation', () => {
    expect(decodeError('u', bytes('01 00 00')).code).toBe('TRUNCATED');
    expect(decodeError('(us)', bytes('01 00')).code).toBe('TRUNCATED');
    expect(decodeError('(ss)', bytes('')).code).toBe('TRUNCATED');
  });

  it('rejects nesting deeper than 128 levels without overflowing the stack', () => {
    // 200 nested variants, built by hand: each level is <child> 00 'v'
    let b = bytes('01 00 00 00 00 75');
    for (let i = 0; i < 200; i++) {
      const n = new Uint8Array(b.length + 2);
      n.set(b);
      n[b.length + 1] = 0x76;
      b = n;
    }
    const err = decodeError('v', b);
    expect(err.code).toBe('BAD_FRAMING');
    expect(err.data.reason).toMatch(/nesting/);
    expect(isNormalForm('v', b)).toBe(false);
  });

  it('accepts what encode writes for nested variants within the limit', () => {
    let v: Variant = new Variant('u', 1);
    for (let i = 0; i < 100; i++) v = new Variant('v', v);
    expect(isNormalForm('v', encode('v', v))).toBe(true);
  });

  it('keeps NaN payloads of doubles, so their encodings stay normal', () => {
    const nans = bytes('01 00 00 00 00 f0 7f 7f | 23 01 00 00 00 f8 ff ff | ff ff f7 ff ff ff f7 ff');
    expect(isNormalForm('ad', nans)).toBe(true);
    expect(isNormalForm('(ddd)', nans)).toBe(true);
  });

  it('throws BAD_TYPE, not false, for an invalid type argument', () => {
    expect(() => isNormalForm('a', bytes(''))).toThrow(expect.objectContaining({ code: 'BAD_TYPE' }));
  });
});
