/**
 * `static-delta show`, `delete` and `generate -n` print what ostree prints, byte for byte: sizes
 * as GLib formats them, the fallback objects, the byte order of legacy superblocks (those without
 * `ostree.endianness`, guessed from their part sizes as ostree guesses, absurd sizes included),
 * and ostree's words for bad or missing delta names.
 */
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOneErrorLine, larch, ok, ostree, RUN_INTEROP, requireOstree, scratch, twoCommitRepo } from './helpers.js';

let dir: string;
let cleanup: () => Promise<void>;
let repo: string;
let c1: string;
let c2: string;

beforeAll(async () => {
  ({ dir, cleanup } = await scratch('larch-cli-delta-show-'));
  ({ repo, c1, c2 } = await twoCommitRepo(dir));
});
afterAll(async () => {
  await cleanup();
});

/** Both tools' `static-delta show ARGS` on `r`: the same exit status and output. */
function sameShow(r: string, name: string): string {
  const o = ostree(['static-delta', 'show', `--repo=${r}`, name]);
  const l = larch(['static-delta', 'show', `--repo=${r}`, name]);
  expect({ code: l.code, stdout: l.stdout, stderr: l.stderr }).toEqual({ code: o.code, stdout: o.stdout, stderr: o.stderr });
  return l.stdout;
}

/**
 * Write `original` (a superblock with `ostree.endianness`) over a delta's superblock as a legacy
 * one: no `ostree.endianness`, numbers in `order`, part sizes changed by `edit`.
 */
async function legacy(r: string, original: Buffer, order: 'l' | 'B', edit: (p: { size: number; usize: number }) => void): Promise<void> {
  const { decodeSuperblock, encodeSuperblock, deltaRelDir } = await import('@larch/delta');
  const sb = decodeSuperblock(original);
  const path = join(r, deltaRelDir(sb.from, sb.to), 'superblock');
  for (const p of sb.parts) edit(p);
  const metadata = sb.metadata.filter(([k]) => k !== 'ostree.endianness');
  await fsp.writeFile(path, encodeSuperblock({ ...sb, metadata }, order));
}

describe.runIf(RUN_INTEROP)('larch static-delta show, against ostree', () => {
  beforeAll(() => requireOstree());

  it('prints the same description: sizes as GLib formats them, fallback objects listed', async () => {
    const r = join(dir, 'fallbacks');
    ok(ostree(['init', `--repo=${r}`, '--mode=archive']));
    const t = join(dir, 'tree-big');
    await fsp.mkdir(t);
    // A fallback (over 1 MB) and enough small content for a part of a few kB.
    const big = Buffer.alloc(1_100_000);
    for (let i = 0; i < big.length; i++) big[i] = (i * 2654435761) >>> 24;
    await fsp.writeFile(join(t, 'big.dat'), big);
    await fsp.writeFile(join(t, 'text'), 'some text\n'.repeat(2000));
    const c = ok(ostree(['commit', `--repo=${r}`, '-b', 'main', '-s', 'one', '--owner-uid=0', '--owner-gid=0', '--no-xattrs', `--tree=dir=${t}`])).trim();
    ok(ostree(['static-delta', 'generate', `--repo=${r}`, '--min-fallback-size=1', '--empty', `--to=${c}`]));
    const out = sameShow(r, c);
    expect(out).toMatch(/\nNumber of fallback entries: 1\n {2}[0-9a-f]{64}\nTotal Fallback Size: \d+ \(\d+\.\d\u00a0kB\)\n/);
    expect(out).toMatch(/\nTotal Fallback Uncompressed Size: 1100\d{3} \(1\.1\u00a0MB\)\n/);
    // Larch's own delta of the same commit, shown by both.
    ok(larch(['static-delta', 'generate', `--repo=${r}`, '--min-fallback-size=1', '--empty', `--to=${c}`]));
    sameShow(r, c);
    // The superblock given as a path.
    const { deltaRelDir } = await import('@larch/delta');
    expect(sameShow(r, join(r, deltaRelDir(null, c), 'superblock'))).toContain(`\nTo: ${c}\n`);
  });

  it('guesses the byte order of legacy superblocks as ostree does, and prints what it then reads', async () => {
    const r = join(dir, 'legacy');
    await fsp.cp(repo, r, { recursive: true });
    ok(larch(['static-delta', 'generate', `--repo=${r}`, `--from=${c1}`, `--to=${c2}`]));
    const name = `${c1}-${c2}`;
    const { deltaRelDir } = await import('@larch/delta');
    const original = await fsp.readFile(join(r, deltaRelDir(c1, c2), 'superblock'));
    // Big-endian numbers: the sizes read in host order are absurd, so they are swapped.
    await legacy(r, original, 'B', () => undefined);
    expect(sameShow(r, name)).toContain('\nEndianness: big (heuristic)\n');
    // Little-endian, but a tiny part stored larger than 1.2 times its contents: ostree takes it
    // for big-endian too, and shows exabytes.
    await legacy(r, original, 'l', (p) => {
      p.size = Math.max(p.size, Math.ceil(p.usize * 1.3) + 1);
    });
    expect(sameShow(r, name)).toMatch(/\nEndianness: big \(heuristic\)\n[^]*\(\d+\.\d\u00a0EB\)/);
    // Little-endian and plausible: no evidence either way, "invalid" (and read in host order).
    await legacy(r, original, 'l', (p) => {
      p.size = Math.floor(p.usize / 2);
    });
    expect(sameShow(r, name)).toContain('\nEndianness: invalid\n');
  });

  it('words bad names, missing deltas and existing ones as ostree does', () => {
    const errLine = (args: string[]): [string, string] => [expectOneErrorLine(larch(args)), expectOneErrorLine(ostree(args))];
    const same = (args: string[]): void => {
      const [l, o] = errLine(args);
      expect(l).toBe(o);
    };
    same(['static-delta', 'show', `--repo=${repo}`, 'GARBAGE']);
    same(['static-delta', 'show', `--repo=${repo}`, `${c1}x`]);
    same(['static-delta', 'show', `--repo=${repo}`, `${c1}-GARBAGE`]);
    same(['static-delta', 'show', `--repo=${repo}`, c1.toUpperCase()]);
    same(['static-delta', 'show', `--repo=${repo}`, 'a\nb']);
    same(['static-delta', 'show', `--repo=${repo}`, c2]);
    same(['static-delta', 'show', `--repo=${repo}`]);
    same(['static-delta', 'delete', `--repo=${repo}`, c2]);
    same(['static-delta', 'delete', `--repo=${repo}`, 'GARBAGE']);
    same(['static-delta', 'delete', `--repo=${repo}`]);
    expect(errLine(['static-delta', 'show', `--repo=${repo}`, 'GARBAGE'])[0]).toBe('Invalid rev GARBAGE');
    ok(larch(['static-delta', 'generate', `--repo=${repo}`, `--from=${c1}`, `--to=${c2}`]));
    const args = ['static-delta', 'generate', `--repo=${repo}`, '-n', `--from=${c1}`, `--to=${c2}`];
    expect(ok(larch(args))).toBe(ok(ostree(args)));
    expect(ok(larch(args))).toBe(`Delta ${c1}-${c2} already exists.\n`);
  });
});
