// Property-style tests with a seeded generator of random types and values:
// round trips, normal form, text round trips, and single-byte mutations.
import { describe, expect, it } from 'vitest';
import { GVariantError, Variant, decode, encode, isNormalForm, parseText, parseType, print, type GValue, type GVType } from './index.js';
import { Gen, rng, samples } from '../test/random.js';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

/** Decode, capturing the result or the error code; fails the test on any non-GVariantError. */
function tryDecode(t: GVType, b: Uint8Array): { ok: true; value: GValue } | { ok: false; code: string } {
  try {
    return { ok: true, value: decode(t, b) };
  } catch (err) {
    expect(err).toBeInstanceOf(GVariantError);
    expect((err as GVariantError).data.internal).toBeUndefined();
    return { ok: false, code: (err as GVariantError).code };
  }
}

describe('random round trips', () => {
  it('decode(encode(v)) equals v, is normal form, and re-encodes identically', () => {
    for (const { t, v } of samples(1, 1500)) {
      const enc = encode(t, v);
      const dec = decode(t, enc);
      expect(dec, t.str).toEqual(v);
      expect(isNormalForm(t, enc), `${t.str} ${hex(enc)}`).toBe(true);
      expect(hex(encode(t, dec))).toBe(hex(enc));
      if (t.fixedSize) expect(enc.length).toBe(t.fixedSize);
    }
  });

  it('aligns from the start of the buffer: a value inside a variant decodes like the value alone', () => {
    for (const { t, v } of samples(2, 300)) {
      const inner = encode(t, v);
      const outer = encode('v', new Variant(t.str, v));
      expect(hex(outer.subarray(0, inner.length))).toBe(hex(inner));
      expect(decode('v', outer)).toEqual(new Variant(t.str, v));
    }
  });

  it('print then parseText with the type gives the value back', () => {
    for (const { t, v } of samples(3, 800)) {
      const text = print(t, v);
      const back = parseText(text, t.str);
      expect(back.type).toBe(t.str);
      expect(back.value, `${t.str}: ${text}`).toEqual(v);
      const annotated = print(t, v, { typeAnnotate: true });
      expect(parseText(annotated, t.str).value, annotated).toEqual(v);
    }
  });

  it('a variant printed as text parses back without a type hint', () => {
    for (const { t, v } of samples(4, 500)) {
      const text = print('v', new Variant(t.str, v));
      const back = parseText(text);
      expect(back.type).toBe('v');
      expect(back.value, text).toEqual(new Variant(t.str, v));
    }
  });
});

describe('hostile input', () => {
  it('single-byte mutations never crash decode or isNormalForm and never read outside the input', () => {
    const g = new Gen(rng(5));
    let checked = 0;
    let rejected = 0;
    for (const { t, v } of samples(6, 400)) {
      const enc = encode(t, v);
      if (enc.length === 0 || enc.length > 400) continue;
      // Place the value inside a larger buffer full of junk: results must not depend on it.
      const host = new Uint8Array(enc.length + 64).fill(0xa5);
      const positions = enc.length <= 40 ? [...enc.keys()] : Array.from({ length: 40 }, () => g.int(enc.length));
      for (const p of positions) {
        for (const x of [0x00, 0xff, enc[p] ^ (1 + g.int(255)), enc[p] + 1]) {
          const m = enc.slice();
          m[p] = x & 0xff;
          host.set(m, 32);
          const view = host.subarray(32, 32 + m.length);
          const a = tryDecode(t, m);
          const b = tryDecode(t, view);
          expect(b.ok).toBe(a.ok);
          if (a.ok && b.ok) expect(b.value).toEqual(a.value);
          else if (!a.ok && !b.ok) expect(b.code).toBe(a.code);
          const normal = isNormalForm(t, m);
          if (normal) expect(a.ok).toBe(true);
          if (!a.ok) rejected++;
          checked++;
        }
      }
    }
    expect(checked).toBeGreaterThan(5000);
    expect(rejected).toBeGreaterThan(100);
  });

  it('every truncation and extension of a valid encoding is handled without a crash', () => {
    for (const { t, v } of samples(7, 300)) {
      const enc = encode(t, v);
      for (let n = 0; n < enc.length; n++) {
        tryDecode(t, enc.subarray(0, n));
        expect(typeof isNormalForm(t, enc.subarray(0, n))).toBe('boolean');
      }
      const longer = new Uint8Array(enc.length + 1);
      longer.set(enc);
      const d = tryDecode(t, longer);
      // One more byte is normal only when it is a different value (`ay` + 00, `s` inside `v`...)
      if (isNormalForm(t, longer)) expect(d.ok && d.value).not.toEqual(v);
    }
  });

  it('random garbage never crashes decode', () => {
    const g = new Gen(rng(8));
    const types = ['(a{sv}aya(say)sstayay)', '(a(say)a(sayay))', '(uuua(ayay))', 'a{sv}', 'v', 'aav', '(a(s(taya{sv}))a{sv})', 'mmas'];
    for (let i = 0; i < 3000; i++) {
      const b = new Uint8Array(g.int(80));
      for (let j = 0; j < b.length; j++) b[j] = g.r() < 0.5 ? g.int(8) : g.int(256);
      const t = parseType(g.pick(types));
      tryDecode(t, b);
      isNormalForm(t, b);
    }
  });
});
