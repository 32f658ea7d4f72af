/**
 * `static-delta generate` prints ostree's statistics block on stderr (ostree's test-delta greps
 * `bsdiff=0 objects` under --disable-bsdiff and --max-bsdiff-size=0): the same lines, in the same
 * layout, and — where the delta is built from the same decisions — the same figures. Both tools
 * generate from copies of one repository and their stderr is compared line by line.
 *
 * The trees exercise ostree's rollsum rules: files grown at the end (rollsum by ostree's measure),
 * a file with a header put in front (no rollsum by ostree's measure, which keys chunks by the
 * file's first bytes), long runs of zeros (chunks cut at 32 KiB, and a file that ends without a
 * boundary), a library renamed `.so.1` → `.so.2` (same stem) and `tool` → `tool.sh` (not a pair
 * for ostree: one name has no dot).
 */
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { larch, ok, ostree, RUN_INTEROP, requireOstree, scratch, type RunResult } from './helpers.js';

let dir: string;
let cleanup: () => Promise<void>;
let c1: string;
let c2: string;

/** Deterministic bytes (xorshift32). */
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

const text = (lines: number): Buffer => Buffer.from(Array.from({ length: lines }, (_, i) => `line ${i}: ${(i * 7919) % 10007} the quick brown fox\n`).join(''));

async function tree(root: string, files: Record<string, Buffer>): Promise<string> {
  for (const [name, data] of Object.entries(files)) {
    await fsp.mkdir(join(root, name, '..'), { recursive: true });
    await fsp.writeFile(join(root, name), data, { mode: 0o644 });
  }
  return root;
}

const COMMIT = ['--owner-uid=0', '--owner-gid=0', '--no-xattrs', '-b', 'main'];

beforeAll(async () => {
  ({ dir, cleanup } = await scratch('larch-cli-delta-stats-'));
  if (!RUN_INTEROP) return;
  const a = Buffer.concat([noise(300_000, 1), Buffer.alloc(100_000), noise(200_000, 2)]);
  const b = Buffer.concat([noise(200_000, 3), Buffer.alloc(70_000)]);
  const c = text(4000);
  const d = noise(100_000, 4);
  const lib = noise(150_000, 5);
  const tool = noise(60_000, 6);
  const zeros = Buffer.alloc(40);
  await tree(join(dir, 't1'), { 'usr/a.bin': a, 'usr/b.bin': b, 'usr/c.txt': c, 'usr/d.bin': d, 'usr/lib/libe.so.1': lib, 'usr/bin/tool': tool, 'etc/same.conf': Buffer.from('x=1\n') });
  await tree(join(dir, 't2'), {
    'usr/a.bin': Buffer.concat([a, zeros]),
    'usr/b.bin': Buffer.concat([b, zeros]),
    'usr/c.txt': Buffer.concat([c, zeros]),
    'usr/d.bin': Buffer.concat([Buffer.from('aheader\n'), d]),
    'usr/lib/libe.so.2': Buffer.concat([lib, zeros]),
    'usr/bin/tool.sh': Buffer.concat([tool, zeros]),
    'etc/same.conf': Buffer.from('x=1\n'),
    // New, and over 1 MB as an object stream: a fallback under --min-fallback-size=1.
    'usr/share/big.dat': noise(1_100_000, 7),
  });
  const repo = join(dir, 'repo');
  ok(ostree(['init', `--repo=${repo}`, '--mode=archive']));
  c1 = ok(ostree(['commit', `--repo=${repo}`, ...COMMIT, '-s', 'v1', '--timestamp=2020-01-01T00:00:00Z', `--tree=dir=${join(dir, 't1')}`])).trim();
  c2 = ok(ostree(['commit', `--repo=${repo}`, ...COMMIT, '-s', 'v2', '--timestamp=2020-01-02T00:00:00Z', `--tree=dir=${join(dir, 't2')}`])).trim();
  for (const who of ['ostree', 'larch']) await fsp.cp(repo, join(dir, `repo-${who}`), { recursive: true });
});
afterAll(async () => {
  await cleanup();
});

/** Run `static-delta generate ARGS` with each tool on its copy of the repository; their stderr lines. */
function both(args: string[]): { o: string[]; l: string[]; ro: RunResult; rl: RunResult } {
  const ro = ostree(['static-delta', 'generate', `--repo=${join(dir, 'repo-ostree')}`, ...args]);
  const rl = larch(['static-delta', 'generate', `--repo=${join(dir, 'repo-larch')}`, ...args]);
  ok(ro);
  ok(rl);
  expect(rl.stdout).toBe(ro.stdout);
  const lines = (s: string): string[] => s.split('\n').filter((l) => l !== '');
  return { o: lines(ro.stderr), l: lines(rl.stderr), ro, rl };
}

/** A line with its figures replaced, for comparing layouts. */
const shape = (l: string): string => l.replace(/[0-9a-f]{64}/g, 'C').replace(/\d+/g, 'N');

/** Lines whose figures depend on how parts are laid out and compressed. */
const layoutDependent = (l: string): boolean => /^part \d+ n:/.test(l) || /^uncompressed=/.test(l) || /^processing bsdiff:/.test(l);

describe.runIf(RUN_INTEROP)('larch static-delta generate statistics, against ostree', () => {
  beforeAll(() => requireOstree());

  it('--disable-bsdiff and --max-bsdiff-size=0: the same decisions, lines and figures (bsdiff=0 objects)', () => {
    for (const opt of ['--disable-bsdiff', '--max-bsdiff-size=0']) {
      const { o, l } = both([opt, `--from=${c1}`, `--to=${c2}`]);
      expect(l).toContain('bsdiff=0 objects');
      // Every line that does not depend on the part layout is identical (rollsum lines in any order).
      expect(l.filter((x) => !layoutDependent(x)).sort()).toEqual(o.filter((x) => !layoutDependent(x)).sort());
      expect(l.map(shape).filter((x) => x.startsWith('part ')).every((x) => x === 'part N n:N compressed:N uncompressed:N')).toBe(true);
      // ostree's uncompressed total and loose size come from the same objects.
      const totals = (ls: string[]): string => ls.find((x) => x.startsWith('uncompressed='))!.replace(/ compressed=\d+/, '');
      expect(totals(l)).toBe(totals(o));
      // Three files grown at the end are rollsum copies; the one with a new header is not.
      expect(l).toContain('rollsum for 4/5 modified');
    }
  });

  it('with bsdiff: the same block, bsdiff=[1-9] with --max-bsdiff-size=10000', () => {
    for (const args of [['--max-bsdiff-size=10000'], []]) {
      const { o, l } = both([...args, `--from=${c1}`, `--to=${c2}`]);
      expect(l.find((x) => /^bsdiff=[1-9]/.test(x))).toBeDefined();
      // Larch diffs every pair bsdiff may take (ostree first takes rollsum copies where it can):
      // the figures differ, the layout of the block does not.
      const kinds = (ls: string[]): string[] => [...new Set(ls.map(shape).filter((x) => !x.startsWith('rollsum for C') && !x.startsWith('processing bsdiff')))];
      expect(kinds(l)).toEqual(kinds(o));
      expect(l.slice(0, 2)).toEqual(o.slice(0, 2)); // modified: / new reachable:
      expect(l.filter((x) => x.startsWith('processing bsdiff:')).map(shape).every((x) => x === 'processing bsdiff: [N/N]')).toBe(true);
    }
  });

  it('a from-scratch delta: the same block', () => {
    const { o, l } = both(['--empty', `--to=${c1}`]);
    expect(l.filter((x) => !layoutDependent(x))).toEqual(o.filter((x) => !layoutDependent(x)));
    expect(l.slice(0, 3)).toEqual(['modified: 0', 'new reachable: metadata=7 content regular=7 symlink=0', 'rollsum for 0/0 modified']);
    expect(l.map(shape)).toContain('part N n:N compressed:N uncompressed:N');
  });

  it('fallback objects are named as ostree names them (--min-fallback-size)', () => {
    const { o, l } = both(['--min-fallback-size=1', '--disable-bsdiff', `--from=${c1}`, `--to=${c2}`]);
    const fallbacks = (ls: string[]): string[] => ls.filter((x) => x.startsWith('fallback for '));
    expect(fallbacks(o)).toHaveLength(1);
    expect(fallbacks(l)).toEqual(fallbacks(o));
    expect(fallbacks(l)[0]).toMatch(/^fallback for [0-9a-f]{64} \(1\.1\u00a0MB\)$/);
    // Fallbacks stay out of the totals, in both.
    expect(l.filter((x) => !layoutDependent(x)).sort()).toEqual(o.filter((x) => !layoutDependent(x)).sort());
  });
});
