/**
 * `static-delta generate` fills parts as ostree does: one part at a time (metadata, then patched
 * files, plain files, symlinks), a new part only when `max-chunk-size` would be exceeded, so that
 * a delta has ostree's number of parts (ostree's test-pull2-bareuseronly greps `Delta update: 0/1
 * parts`). Both tools generate the same delta from copies of one repository; the real ostree's
 * `static-delta show` reads both, and the parts are compared by object count and uncompressed
 * size (their compressed sizes differ: Larch tunes xz), along with the fallback entries.
 *
 * The trees are chosen so that the parts do not depend on the order objects are taken in (ostree's
 * is its hash table's): a small mixed tree (an ELF file among text files and symlinks), one file
 * larger than a part beside symlinks and a file large enough for a fallback, and many files of one
 * size (some of them ELF) spread over several parts.
 */
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { larch, ok, ostree, RUN_INTEROP, requireOstree, scratch } from './helpers.js';

let dir: string;
let cleanup: () => Promise<void>;

/** Deterministic incompressible bytes (xorshift32). */
function noise(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

interface Shape {
  parts: string[];
  fallbacks: number;
}

/** Parts (`nobjects usize`, sorted) and fallback count of a delta, as ostree's `show` prints them. */
function shape(repo: string, name: string): Shape {
  const out = ok(ostree(['static-delta', 'show', `--repo=${repo}`, name]));
  const parts = [...out.matchAll(/^PartMeta\d+: nobjects=(\d+) size=\d+ usize=(\d+)$/gm)].map((m) => `${m[1]} ${m[2]}`);
  expect(out).toContain(`Number of parts: ${parts.length}\n`);
  return { parts: parts.sort(), fallbacks: Number(/^Number of fallback entries: (\d+)$/m.exec(out)![1]) };
}

/** Commit `files` (symlinks given as `-> target`) and generate the delta from scratch with both tools. */
async function both(name: string, files: Record<string, Buffer | string>, args: string[]): Promise<{ ostree: Shape; larch: Shape }> {
  const root = join(dir, name);
  const tree = join(root, 'tree');
  for (const [path, data] of Object.entries(files)) {
    await fsp.mkdir(join(tree, path, '..'), { recursive: true });
    if (typeof data === 'string') await fsp.symlink(data.replace(/^-> /, ''), join(tree, path));
    else await fsp.writeFile(join(tree, path), data, { mode: 0o644 });
  }
  const a = join(root, 'a');
  const b = join(root, 'b');
  ok(ostree(['init', `--repo=${a}`, '--mode=archive']));
  const commit = ok(ostree(['commit', `--repo=${a}`, '-b', 'main', `--tree=dir=${tree}`, '--owner-uid=0', '--owner-gid=0', '--no-xattrs'])).trim();
  await fsp.cp(a, b, { recursive: true });
  ok(ostree(['static-delta', 'generate', `--repo=${a}`, '--empty', '--to=main', ...args]));
  ok(larch(['static-delta', 'generate', `--repo=${b}`, '--empty', '--to=main', ...args]));
  return { ostree: shape(a, commit), larch: shape(b, commit) };
}

beforeAll(async () => {
  ({ dir, cleanup } = await scratch('larch-cli-delta-parts-'));
  if (RUN_INTEROP) requireOstree();
});
afterAll(async () => {
  await cleanup();
});

describe.runIf(RUN_INTEROP)('static-delta generate: parts as ostree fills them', () => {
  it('a small tree with an ELF file among text files and symlinks: one part', async () => {
    const r = await both('small', {
      'usr/bin/true': await fsp.readFile('/usr/bin/true'),
      'usr/share/doc/README': Buffer.from('hello\n'.repeat(200)),
      'usr/share/empty': Buffer.alloc(0),
      'etc/os-release': Buffer.from('NAME=Larch\n'),
      'usr/lib/os-release': '-> ../../etc/os-release',
      'bin': '-> usr/bin',
    }, []);
    expect(r.ostree.parts).toHaveLength(1);
    expect(r.larch).toEqual(r.ostree);
  });

  it('a file larger than a part sits alone between the metadata and the symlinks; a larger one is a fallback', async () => {
    const r = await both('big', {
      'usr/lib/big.bin': noise(1_500_000, 1),
      'usr/lib/huge.bin': noise(4_100_000, 2),
      'usr/lib/libbig.so': '-> big.bin',
      'lib': '-> usr/lib',
    }, ['--max-chunk-size=1']);
    expect(r.ostree.parts).toHaveLength(3);
    expect(r.ostree.fallbacks).toBe(1);
    expect(r.larch).toEqual(r.ostree);
  });

  it('many files of one size, some of them ELF, fill parts of max-chunk-size', async () => {
    const files: Record<string, Buffer> = {};
    // One in five starts with the ELF magic: those share parts with the others, as in ostree.
    for (let i = 0; i < 260; i++) {
      const data = noise(10_000, i + 10);
      if (i % 5 === 0) data.writeUInt32BE(0x7f454c46, 0);
      files[`usr/share/data/f${String(i).padStart(3, '0')}.dat`] = data;
    }
    const r = await both('many', files, ['--max-chunk-size=1']);
    expect(r.ostree.parts).toHaveLength(3);
    expect(r.larch).toEqual(r.ostree);
  });
});
