import { encode } from '@larch/gvariant';
import { describe, expect, it } from 'vitest';
import { LarchError } from './errors.js';
import { _decodeDirTree, _forEachBounded, _Semaphore, objectKey } from './repo-traverse.js';
import { serializeDirTree } from './objects/index.js';

const C1 = '11'.repeat(32);
const C2 = '22'.repeat(32);
const raw = (files: Array<[string, Uint8Array]>, dirs: Array<[string, Uint8Array, Uint8Array]>): Uint8Array =>
  encode('(a(say)a(sayay))', [files, dirs] as never);
const b = (hex: string): Uint8Array => new Uint8Array(Buffer.from(hex, 'hex'));

describe('_decodeDirTree', () => {
  it('decodes a valid dirtree', () => {
    const bytes = serializeDirTree({ files: [{ name: 'a', checksum: C1 }], dirs: [{ name: 'd', treeChecksum: C1, metaChecksum: C2 }] });
    expect(_decodeDirTree(bytes, 'x')).toEqual({ files: [{ name: 'a', checksum: C1 }], dirs: [{ name: 'd', treeChecksum: C1, metaChecksum: C2 }] });
  });
  for (const bad of ['', '.', '..', 'a/b']) {
    it(`reports ${JSON.stringify(bad)} as INVALID_NAME with the dirtree checksum, even when unsorted`, () => {
      for (const bytes of [raw([['zzz', b(C1)], [bad, b(C1)]], []), raw([], [[bad, b(C1), b(C2)]])]) {
        let err: unknown;
        try {
          _decodeDirTree(bytes, 'feed');
        } catch (e) {
          err = e;
        }
        expect(err).toBeInstanceOf(LarchError);
        expect((err as LarchError).code).toBe('INVALID_NAME');
        expect((err as LarchError).data).toMatchObject({ name: bad, dirtree: 'feed' });
      }
    });
  }
  it('strict mode rejects unsorted, duplicated and non-normal dirtrees that the loose read accepts', () => {
    const unsorted = raw([['b', b(C1)], ['a', b(C1)]], []);
    expect(_decodeDirTree(unsorted, 'feed').files.map((f) => f.name)).toEqual(['b', 'a']);
    expect(() => _decodeDirTree(unsorted, 'feed', { strict: true })).toThrow(expect.objectContaining({ code: 'OBJECT_CORRUPTED' }));
    const dup = raw([['a', b(C1)]], [['a', b(C1), b(C2)]]);
    expect(() => _decodeDirTree(dup, 'feed', { strict: true })).toThrow(expect.objectContaining({ code: 'OBJECT_CORRUPTED' }));
    const padded = new Uint8Array([...serializeDirTree({ files: [], dirs: [] }), 0]);
    expect(() => _decodeDirTree(padded, 'feed', { strict: true })).toThrow(LarchError);
    const sorted = serializeDirTree({ files: [{ name: 'a', checksum: C1 }, { name: 'b', checksum: C1 }], dirs: [] });
    expect(_decodeDirTree(sorted, 'feed', { strict: true }).files).toHaveLength(2);
  });

  it('rejects short checksums and garbage, naming the dirtree', () => {
    expect(() => _decodeDirTree(raw([['a', new Uint8Array(31)]], []), 'feed')).toThrow(LarchError);
    try {
      _decodeDirTree(new Uint8Array([1, 2, 3, 4, 5]), 'feed');
    } catch (e) {
      expect((e as LarchError).data.checksum).toBe('feed');
    }
  });
});

describe('bounded concurrency helpers', () => {
  it('_forEachBounded never exceeds the limit and visits everything', async () => {
    let active = 0;
    let peak = 0;
    const seen: number[] = [];
    await _forEachBounded(Array.from({ length: 50 }, (_, i) => i), 4, async (i) => {
      active++;
      peak = Math.max(peak, active);
      await new Promise((r) => setTimeout(r, 1));
      seen.push(i);
      active--;
    });
    expect(peak).toBe(4);
    expect(seen.sort((a, b) => a - b)).toEqual(Array.from({ length: 50 }, (_, i) => i));
  });
  it('_forEachBounded rejects with the first error', async () => {
    await expect(_forEachBounded([1, 2, 3], 2, async (i) => {
      if (i === 2) throw new Error('boom');
    })).rejects.toThrow('boom');
  });
  it('_Semaphore bounds concurrent runs', async () => {
    const s = new _Semaphore(2);
    let active = 0;
    let peak = 0;
    await Promise.all(Array.from({ length: 10 }, () => s.run(async () => {
      active++;
      peak = Math.max(peak, active);
      await new Promise((r) => setTimeout(r, 1));
      active--;
    })));
    expect(peak).toBe(2);
  });
  it('objectKey uses the on-disk suffix', () => {
    expect(objectKey('dirtree', C1)).toBe(`${C1}.dirtree`);
  });
});
