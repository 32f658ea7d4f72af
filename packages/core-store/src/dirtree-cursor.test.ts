import { describe, expect, it } from 'vitest';
import { encode } from '@larch/gvariant';
import { _DirTreeCursor } from './dirtree-cursor.js';
import { _decodeDirTree } from './repo-traverse.js';
import type { DirTree } from './types.js';

const TREE = 'ab'.repeat(32);
const TYPE = '(a(say)a(sayay))';

/** xorshift32: deterministic test data. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

function read(bytes: Uint8Array): DirTree | { error: string } {
  try {
    const c = new _DirTreeCursor(bytes, TREE);
    const files = [];
    while (c.nextFile()) files.push({ name: c.name, checksum: c.checksum });
    return { files, dirs: c.dirs };
  } catch (e) {
    return { error: (e as { code: string }).code };
  }
}

function reference(bytes: Uint8Array): DirTree | { error: string } {
  try {
    return _decodeDirTree(bytes, TREE);
  } catch (e) {
    return { error: (e as { code: string }).code };
  }
}

const NAMES = ['a', 'bin', 'é', 'x'.repeat(300), '..', '', 'a/b', '.', 'ok.txt', 'ünïcode-ñame'];

function randomTree(r: () => number): Uint8Array {
  const bytesOf = (n: number): Uint8Array => {
    const b = new Uint8Array(n);
    for (let i = 0; i < n; i++) b[i] = r() & 0xff;
    return b;
  };
  const len = (): number => (r() % 20 === 0 ? r() % 40 : 32);
  const files = Array.from({ length: r() % 6 }, () => [NAMES[r() % NAMES.length], bytesOf(len())]);
  const dirs = Array.from({ length: r() % 4 }, () => [NAMES[r() % NAMES.length], bytesOf(len()), bytesOf(len())]);
  // Large trees get 2- and 4-byte framing offsets.
  if (r() % 5 === 0) for (let i = 0; i < 2000; i++) files.push([`f${i}`, bytesOf(32)]);
  return encode(TYPE, [files, dirs] as never);
}

describe('_DirTreeCursor', () => {
  it('reads what the reference decoder reads, and rejects what it rejects, with the same code', () => {
    const r = rng(42);
    let valid = 0;
    for (let n = 0; n < 250; n++) {
      const good = randomTree(r);
      const ref = reference(good);
      if (!('error' in ref)) valid++;
      expect(read(good)).toEqual(ref);
      // Damaged copies: one byte changed, or cut short.
      for (let k = 0; k < 20; k++) {
        const bad = good.slice(0, r() % 3 === 0 ? r() % (good.length + 1) : good.length);
        if (bad.length > 0 && k % 3 !== 0) bad[r() % bad.length] = r() & 0xff;
        expect(read(bad)).toEqual(reference(bad));
      }
    }
    expect(valid).toBeGreaterThan(30);
  });

  it('reports a hostile name with INVALID_NAME and a short checksum with INVALID_CHECKSUM', () => {
    const c32 = new Uint8Array(32);
    expect(read(encode(TYPE, [[['..', c32]], []] as never))).toEqual({ error: 'INVALID_NAME' });
    expect(read(encode(TYPE, [[], [['a/b', c32, c32]]] as never))).toEqual({ error: 'INVALID_NAME' });
    expect(read(encode(TYPE, [[['a', new Uint8Array(31)]], []] as never))).toEqual({ error: 'INVALID_CHECKSUM' });
    expect(read(new Uint8Array(0))).toEqual({ error: 'OBJECT_CORRUPTED' });
  });
});
