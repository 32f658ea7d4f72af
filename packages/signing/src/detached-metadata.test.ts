import { Variant, encode } from '@larch/gvariant';
import { describe, expect, it } from 'vitest';
import {
  ED25519_SIGNATURES_KEY,
  GPG_SIGNATURES_KEY,
  appendSignature,
  decodeDetachedMetadata,
  encodeDetachedMetadata,
  getSignatures,
  removeSignatures,
  type DetachedMetadata,
} from './index.js';

const bytes = (...n: number[]): Uint8Array => Uint8Array.from(n);

describe('detached metadata', () => {
  it('appends to an existing signature array and keeps other keys in place', () => {
    const dict: DetachedMetadata = [
      ['xa.custom', new Variant('s', 'keep me')],
      [GPG_SIGNATURES_KEY, new Variant('aay', [bytes(1, 2)])],
      ['zz', new Variant('u', 7)],
    ];
    const out = appendSignature(dict, GPG_SIGNATURES_KEY, bytes(3));
    expect(out.map(([k]) => k)).toEqual(['xa.custom', GPG_SIGNATURES_KEY, 'zz']);
    expect(getSignatures(out, GPG_SIGNATURES_KEY)).toEqual([bytes(1, 2), bytes(3)]);
    expect(getSignatures(dict, GPG_SIGNATURES_KEY)).toEqual([bytes(1, 2)]); // input untouched
    expect(out[0][1].value).toBe('keep me');
  });

  it('creates the key when absent and folds duplicate entries into the first', () => {
    const dup: DetachedMetadata = [
      [ED25519_SIGNATURES_KEY, new Variant('aay', [bytes(1)])],
      ['other', new Variant('b', true)],
      [ED25519_SIGNATURES_KEY, new Variant('aay', [bytes(2)])],
    ];
    const out = appendSignature(dup, ED25519_SIGNATURES_KEY, bytes(3));
    expect(out.map(([k]) => k)).toEqual([ED25519_SIGNATURES_KEY, 'other']);
    expect(getSignatures(out, ED25519_SIGNATURES_KEY)).toEqual([bytes(1), bytes(2), bytes(3)]);
    expect(getSignatures(appendSignature([], GPG_SIGNATURES_KEY, bytes(9)), GPG_SIGNATURES_KEY)).toEqual([bytes(9)]);
  });

  it('round-trips through a{sv} bytes and matches the encoder for the same value', () => {
    const dict = appendSignature(appendSignature([], GPG_SIGNATURES_KEY, bytes(0x88, 0x75)), ED25519_SIGNATURES_KEY, new Uint8Array(64).fill(5));
    const enc = encodeDetachedMetadata(dict);
    expect(Buffer.from(enc).equals(Buffer.from(encode('a{sv}', dict)))).toBe(true);
    const back = decodeDetachedMetadata(enc);
    expect(getSignatures(back, GPG_SIGNATURES_KEY)).toEqual([bytes(0x88, 0x75)]);
    expect(getSignatures(back, ED25519_SIGNATURES_KEY)).toEqual([new Uint8Array(64).fill(5)]);
  });

  it('rejects a signature key of the wrong type with METADATA_INVALID', () => {
    const dict: DetachedMetadata = [[GPG_SIGNATURES_KEY, new Variant('ay', bytes(1))]];
    expect(() => getSignatures(dict, GPG_SIGNATURES_KEY)).toThrow(expect.objectContaining({ code: 'METADATA_INVALID' }));
    expect(() => appendSignature(dict, GPG_SIGNATURES_KEY, bytes(1))).toThrow(expect.objectContaining({ code: 'METADATA_INVALID' }));
  });

  it('rejects bytes that are not an a{sv}', () => {
    expect(() => decodeDetachedMetadata(bytes(1, 2, 3, 0xff))).toThrow(expect.objectContaining({ code: 'METADATA_INVALID' }));
  });

  it('removes matching signatures and drops the key when none remain', () => {
    const dict = appendSignature(appendSignature([['a', new Variant('s', 'x')]], GPG_SIGNATURES_KEY, bytes(1)), GPG_SIGNATURES_KEY, bytes(2));
    const one = removeSignatures(dict, GPG_SIGNATURES_KEY, (s) => s[0] === 1);
    expect(one.removed).toBe(1);
    expect(getSignatures(one.dict, GPG_SIGNATURES_KEY)).toEqual([bytes(2)]);
    const none = removeSignatures(one.dict, GPG_SIGNATURES_KEY, () => true);
    expect(none.dict.map(([k]) => k)).toEqual(['a']);
  });
});
