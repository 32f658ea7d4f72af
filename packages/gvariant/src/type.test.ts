import { describe, expect, it } from 'vitest';
import { GVariantError, MAX_DEPTH, parseType } from './index.js';

describe('parseType', () => {
  it('computes alignment and fixed size as spec section 2 and 3.5 describe', () => {
    const cases: Array<[string, number, number]> = [
      ['y', 1, 1],
      ['b', 1, 1],
      ['n', 2, 2],
      ['q', 2, 2],
      ['i', 4, 4],
      ['u', 4, 4],
      ['h', 4, 4],
      ['x', 8, 8],
      ['t', 8, 8],
      ['d', 8, 8],
      ['s', 1, 0],
      ['o', 1, 0],
      ['g', 1, 0],
      ['v', 8, 0],
      ['ay', 1, 0],
      ['at', 8, 0],
      ['mu', 4, 0],
      ['()', 1, 1],
      ['(())', 1, 1],
      ['(uy)', 4, 8],
      ['(yu)', 4, 8],
      ['(yyy)', 1, 3],
      ['(ty)', 8, 16],
      ['(ts)', 8, 0],
      ['{yy}', 1, 2],
      ['{sv}', 8, 0],
      ['a{sv}', 8, 0],
      ['(uuua(ayay))', 4, 0],
      ['(a{sv}aya(say)sstayay)', 8, 0],
    ];
    for (const [s, align, size] of cases) {
      const t = parseType(s);
      expect([t.str, t.align, t.fixedSize], s).toEqual([s, align, size]);
    }
  });

  it('counts one framing offset per variable member except the last', () => {
    expect(parseType('(a{sv}aya(say)sstayay)').nOffsets).toBe(6);
    expect(parseType('(sss)').nOffsets).toBe(2);
    expect(parseType('(ts)').nOffsets).toBe(0);
    expect(parseType('(st)').nOffsets).toBe(1);
    expect(parseType('{sv}').nOffsets).toBe(1);
  });

  it('returns the same frozen object for the same string', () => {
    const a = parseType('(a(say)a(sayay))');
    expect(parseType('(a(say)a(sayay))')).toBe(a);
    expect(Object.isFrozen(a)).toBe(true);
    expect(a.members[0].element?.members.map((m) => m.str)).toEqual(['s', 'ay']);
  });

  it('rejects invalid and indefinite type strings with BAD_TYPE', () => {
    for (const bad of ['', 'a', 'z', 'r', '*', '?', 'a*', '(s', 's)', 'ss', '{vs}', '{s}', '{sss}', '{ass}', 'm', '(uu))', 'a{sv']) {
      let caught: unknown;
      try {
        parseType(bad);
      } catch (err) {
        caught = err;
      }
      expect(caught, bad).toBeInstanceOf(GVariantError);
      expect((caught as GVariantError).code).toBe('BAD_TYPE');
      expect((caught as GVariantError).data).toHaveProperty('position');
    }
  });

  it('allows nesting up to the GLib limit and no deeper, without overflowing the stack', () => {
    expect(parseType('a'.repeat(MAX_DEPTH) + 'y').depth).toBe(MAX_DEPTH);
    expect(() => parseType('a'.repeat(MAX_DEPTH + 1) + 'y')).toThrow(expect.objectContaining({ code: 'BAD_TYPE' }));
    expect(() => parseType('('.repeat(100000))).toThrow(expect.objectContaining({ code: 'BAD_TYPE' }));
  });
});
