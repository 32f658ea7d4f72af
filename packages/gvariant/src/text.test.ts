import { describe, expect, it } from 'vitest';
import { GVariantError, Variant, bswap16, bswap32, bswap64, byteswap, encode, decode, lookup, parseText, print, type GValue } from './index.js';

const latin = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'latin1'));

describe('print (g_variant_print with type_annotate=FALSE)', () => {
  it('prints OSTree commit metadata the way `ostree show` does', () => {
    const meta: GValue = [
      ['version', new Variant('s', '1.0')],
      ['ostree.ref-binding', new Variant('as', ['test'])],
      ['n', new Variant('t', 5n)],
      ['b', new Variant('ay', Uint8Array.of(1))],
      ['e', new Variant('as', [])],
    ];
    expect(print('a{sv}', meta)).toBe("{'version': <'1.0'>, 'ostree.ref-binding': <['test']>, 'n': <uint64 5>, 'b': <[byte 0x01]>, 'e': <@as []>}");
  });

  it('annotates only where the type would otherwise be ambiguous', () => {
    expect(print('t', 5n)).toBe('5');
    expect(print('t', 5n, { typeAnnotate: true })).toBe('uint64 5');
    expect(print('i', -3, { typeAnnotate: true })).toBe('-3');
    expect(print('ay', Uint8Array.of(1, 2))).toBe('[0x01, 0x02]');
    expect(print('ay', Uint8Array.of(1, 2), { typeAnnotate: true })).toBe('[byte 0x01, 0x02]');
    expect(print('au', [1, 2], { typeAnnotate: true })).toBe('[uint32 1, 2]');
    expect(print('as', [])).toBe('[]');
    expect(print('a{sv}', [])).toBe('{}');
    expect(print('a{sv}', [], { typeAnnotate: true })).toBe('@a{sv} {}');
    expect(print('o', '/a')).toBe("'/a'");
    expect(print('v', new Variant('o', '/a'))).toBe("<objectpath '/a'>");
    expect(print('v', new Variant('g', 'as'))).toBe("<signature 'as'>");
    expect(print('v', new Variant('h', 3))).toBe('<handle 3>');
    expect(print('v', new Variant('n', -1))).toBe('<int16 -1>');
    expect(print('v', new Variant('q', 1))).toBe('<uint16 1>');
    expect(print('v', new Variant('x', -1n))).toBe('<int64 -1>');
    expect(print('v', new Variant('y', 255))).toBe('<byte 0xff>');
    expect(print('v', new Variant('b', false))).toBe('<false>');
  });

  it('prints tuples, dict entries and maybes', () => {
    expect(print('()', [])).toBe('()');
    expect(print('(u)', [1])).toBe('(1,)');
    expect(print('(us)', [1, 'a'])).toBe("(1, 'a')");
    expect(print('{sv}', ['a', new Variant('u', 1)])).toBe("{'a', <uint32 1>}");
    expect(print('mu', null)).toBe('nothing');
    expect(print('mu', 5)).toBe('5');
    expect(print('mmu', [null])).toBe('just nothing');
    expect(print('mmmu', [[null]])).toBe('just just nothing');
    expect(print('mmu', [5])).toBe('5');
    expect(print('mmu', null, { typeAnnotate: true })).toBe('@mmu nothing');
  });

  it('quotes strings like GLib', () => {
    expect(print('s', 'plain')).toBe("'plain'");
    expect(print('s', "it's")).toBe('"it\'s"');
    expect(print('s', 'say "hi" it\'s')).toBe('"say \\"hi\\" it\'s"');
    expect(print('s', 'back\\slash')).toBe("'back\\\\slash'");
    expect(print('s', 'a\nb\tc\x07\x08\f\r\v')).toBe("'a\\nb\\tc\\a\\b\\f\\r\\v'");
    expect(print('s', '\x01\x7f\u200b\ufeff')).toBe("'\\u0001\\u007f\\u200b\\ufeff'");
    expect(print('s', 'é中😀\ue000')).toBe("'é中😀\ue000'");
    expect(print('s', '\u{e0001}')).toBe("'\\U000e0001'");
  });

  it('prints bytestrings (a single NUL at the end) as b\'...\'', () => {
    expect(print('ay', latin('user.a\0'))).toBe("b'user.a'");
    expect(print('ay', latin('\0'))).toBe("b''");
    expect(print('ay', latin("it's\0"))).toBe('b"it\'s"');
    expect(print('ay', latin('a"b\\\n\x01\x80\0'))).toBe("b'a\\\"b\\\\\\n\\001\\200'");
    expect(print('ay', latin('a\0b\0'))).toBe('[0x61, 0x00, 0x62, 0x00]');
    expect(print('ay', new Uint8Array(0))).toBe('[]');
  });

  it('prints doubles as %.17g, exactly rounded with ties to even', () => {
    const cases: Array<[number, string]> = [
      [1, '1.0'],
      [0.1, '0.10000000000000001'],
      [0.3, '0.29999999999999999'],
      [-0, '-0.0'],
      [0, '0.0'],
      [1.5, '1.5'],
      [1e16, '10000000000000000.0'],
      [1e17, '1e+17'],
      [1e21, '1e+21'],
      [0.0001, '0.0001'],
      [1e-5, '1.0000000000000001e-05'],
      [2.5e-5, '2.5000000000000001e-05'],
      [5e-324, '4.9406564584124654e-324'],
      [123456789012345680000, '1.2345678901234568e+20'],
      [1125899906842624.25, '1125899906842624.2'],
      [1125899906842624.75, '1125899906842624.8'],
      [Number.NaN, 'nan'],
      [Infinity, 'inf'],
      [-Infinity, '-inf'],
    ];
    for (const [d, s] of cases) expect(print('d', d), String(d)).toBe(s);
  });
});

describe('parseText', () => {
  it('infers types like GLib for unannotated text', () => {
    expect(parseText("'1.0'")).toEqual(new Variant('s', '1.0'));
    expect(parseText('"it\'s"')).toEqual(new Variant('s', "it's"));
    expect(parseText('5')).toEqual(new Variant('i', 5));
    expect(parseText('010')).toEqual(new Variant('i', 8));
    expect(parseText('-0x10')).toEqual(new Variant('i', -16));
    expect(parseText('2.5')).toEqual(new Variant('d', 2.5));
    expect(parseText('true')).toEqual(new Variant('b', true));
    expect(parseText('[1, 2]')).toEqual(new Variant('ai', [1, 2]));
    expect(parseText('[1, 2.5]')).toEqual(new Variant('ad', [1, 2.5]));
    expect(parseText('[uint64 1, 2]')).toEqual(new Variant('at', [1n, 2n]));
    expect(parseText('<1>')).toEqual(new Variant('v', new Variant('i', 1)));
    expect(parseText("{'a': <1>}")).toEqual(new Variant('a{sv}', [['a', new Variant('i', 1)]]));
    expect(parseText("{'a', 1}")).toEqual(new Variant('{si}', ['a', 1]));
    expect(parseText("(1, 'x', true)")).toEqual(new Variant('(isb)', [1, 'x', true]));
    expect(parseText('(byte 1,)')).toEqual(new Variant('(y)', [1]));
    expect(parseText('()')).toEqual(new Variant('()', []));
    expect(parseText('just 5')).toEqual(new Variant('mi', 5));
  });

  it('accepts type keywords and annotations', () => {
    expect(parseText('uint64 5')).toEqual(new Variant('t', 5n));
    expect(parseText('byte 0x2a')).toEqual(new Variant('y', 42));
    expect(parseText('int16 -3')).toEqual(new Variant('n', -3));
    expect(parseText('double 5')).toEqual(new Variant('d', 5));
    expect(parseText("objectpath '/a/b'")).toEqual(new Variant('o', '/a/b'));
    expect(parseText('@as []')).toEqual(new Variant('as', []));
    expect(parseText('@mmi just nothing')).toEqual(new Variant('mmi', [null]));
    expect(parseText('@mmi nothing')).toEqual(new Variant('mmi', null));
    expect(parseText('[@mi 3, nothing]')).toEqual(new Variant('ami', [3, null]));
  });

  it('uses the type hint', () => {
    expect(parseText('5', 't')).toEqual(new Variant('t', 5n));
    expect(parseText('[]', 'as')).toEqual(new Variant('as', []));
    expect(parseText("b'ab'", 'ay')).toEqual(new Variant('ay', latin('ab\0')));
    expect(parseText('[1, 2]', 'ay')).toEqual(new Variant('ay', Uint8Array.of(1, 2)));
    expect(parseText("'x'", 'ms')).toEqual(new Variant('ms', 'x'));
    expect(parseText("'/x'", 'o')).toEqual(new Variant('o', '/x'));
  });

  it('decodes escapes in strings and bytestrings', () => {
    expect(parseText("'a\\tb\\n\\u00e9\\U0001F600\\'\\\\'").value).toBe("a\tb\né😀'\\");
    expect(parseText("b'\\001\\200x\\n'").value).toEqual(latin('\x01\x80x\n\0'));
  });

  it('rejects malformed text and values that do not fit, with GVariantError', () => {
    const cases: Array<[string, string | undefined, string]> = [
      ['[]', undefined, 'BAD_VALUE'],
      ['nothing', undefined, 'BAD_VALUE'],
      ['uint8 5', undefined, 'BAD_VALUE'],
      ["'abc", undefined, 'BAD_VALUE'],
      ['300', 'y', 'BAD_VALUE'],
      ['-1', 'u', 'BAD_VALUE'],
      ['1.5', 'i', 'BAD_VALUE'],
      ['1', 's', 'BAD_VALUE'],
      ['(1)', undefined, 'BAD_VALUE'],
      ['1 2', undefined, 'BAD_VALUE'],
      ['[1, "a"]', undefined, 'BAD_VALUE'],
      ["'a/'", 'o', 'BAD_VALUE'],
      ["'\\u0000'", undefined, 'BAD_VALUE'],
      ['1e400', undefined, 'BAD_VALUE'],
      ['4.9406564584124654e-324', undefined, 'BAD_VALUE'],
      ['@zz 1', undefined, 'BAD_TYPE'],
      ['1', 'z', 'BAD_TYPE'],
      ['<1', undefined, 'BAD_VALUE'],
      ['', undefined, 'BAD_VALUE'],
    ];
    for (const [text, hint, code] of cases) {
      let caught: unknown;
      try {
        parseText(text, hint);
      } catch (err) {
        caught = err;
      }
      expect(caught, text).toBeInstanceOf(GVariantError);
      expect((caught as GVariantError).code, text).toBe(code);
    }
  });

  it('parses what print writes', () => {
    const v = new Variant('a{sv}', [
      ['a', new Variant('t', 5n)],
      ['b', new Variant('ay', latin('user.a\0'))],
      ['c', new Variant('(ias)', [1, []])],
      ['d', new Variant('d', 0.1)],
    ]);
    expect(parseText(print('v', v)).value).toEqual(v);
  });
});

describe('byte-order helpers and lookup', () => {
  it('swaps 16, 32 and 64-bit values', () => {
    expect(bswap16(0x0102)).toBe(0x0201);
    expect(bswap32(0x01020304)).toBe(0x04030201);
    expect(bswap32(0x000041ed)).toBe(0xed410000);
    expect(bswap32(bswap32(0x8000_0001))).toBe(0x8000_0001);
    expect(bswap64(1577836800n)).toBe(0x00e10b5e00000000n);
    expect(bswap64(bswap64(0x0123456789abcdefn))).toBe(0x0123456789abcdefn);
  });

  it('byteswap swaps every multi-byte number, including inside variants', () => {
    const v: GValue = [0x0102, new Variant('(tq)', [1n, 1]), 7];
    expect(byteswap('(uvy)', v)).toEqual([0x02010000, new Variant('(tq)', [1n << 56n, 256]), 7]);
    const d = decode('d', encode('d', 1.5));
    expect(encode('d', byteswap('d', d) as number)).toEqual(Uint8Array.from(encode('d', 1.5)).reverse());
  });

  it('lookup returns the first entry with the key', () => {
    const dict: Array<[string, Variant]> = [
      ['a', new Variant('u', 1)],
      ['b', new Variant('u', 2)],
      ['a', new Variant('u', 3)],
    ];
    expect(lookup(dict, 'a')).toEqual(new Variant('u', 1));
    expect(lookup(dict, 'b')?.value).toBe(2);
    expect(lookup(dict, 'c')).toBeUndefined();
  });
});
