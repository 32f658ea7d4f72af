/**
 * `pull-local --require-static-deltas`: as ostree, the commits come through the source's static
 * deltas (found in its summary or its delta index), not object by object; ostree's errors when
 * there is none, when the source offers no deltas at all, and when a superblock does not match
 * the digest its summary or index gives. Each case runs with both tools on copies of one source.
 *
 * To show that Larch used a delta, a content object only the delta carries is deleted from the
 * source's objects: a plain `pull-local` then fails, the delta pull does not.
 */
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOneErrorLine, larch, ok, ostree, RUN_INTEROP, requireOstree, scratch, twoCommitRepo, type RunResult } from './helpers.js';

let dir: string;
let cleanup: () => Promise<void>;
let src: string;
let c1: string;
let c2: string;

beforeAll(async () => {
  ({ dir, cleanup } = await scratch('larch-cli-delta-pull-local-'));
  ({ repo: src, c1, c2 } = await twoCommitRepo(dir));
});
afterAll(async () => {
  await cleanup();
});

type Tool = (args: string[]) => RunResult;
const TOOLS: Array<[string, Tool]> = [
  ['ostree', ostree],
  ['larch', larch],
];

/** The loose object path of the file at `path` in `commit` of archive repo `r`. */
function objectOf(r: string, commit: string, path: string): string {
  const line = ok(ostree(['ls', `--repo=${r}`, '-C', commit, path])).trim();
  const sum = line.split(/\s+/)[4];
  return join(r, 'objects', sum.slice(0, 2), `${sum.slice(2)}.filez`);
}

/** A copy of the source named `name`, prepared by `prepare`. */
async function source(name: string, prepare: (r: string) => Promise<void> | void): Promise<string> {
  const r = join(dir, name);
  await fsp.cp(src, r, { recursive: true });
  await prepare(r);
  return r;
}

/** A fresh bare-user repository made by `tool`, holding `commits` (pulled object by object). */
function client(name: string, tool: Tool, from: string, commits: string[]): string {
  const r = join(dir, name);
  ok(tool(['init', `--repo=${r}`, '--mode=bare-user']));
  for (const c of commits) ok(tool(['pull-local', `--repo=${r}`, from, c]));
  return r;
}

describe.runIf(RUN_INTEROP)('larch pull-local --require-static-deltas, against ostree', () => {
  beforeAll(() => requireOstree());

  it('takes a from-scratch delta, then the delta from the commit it has, found in the summary or the delta index', async () => {
    const whole = await source('src-whole', () => undefined);
    const withDeltas = (r: string): void => {
      ok(larch(['static-delta', 'generate', `--repo=${r}`, '--empty', `--to=${c1}`]));
      ok(larch(['static-delta', 'generate', `--repo=${r}`, `--from=${c1}`, `--to=${c2}`]));
      ok(larch(['summary', '-u', `--repo=${r}`]));
    };
    const indexedOnly = (r: string): void => {
      ok(larch(['static-delta', 'generate', `--repo=${r}`, '--empty', `--to=${c1}`]));
      ok(ostree(['config', `--repo=${r}`, 'set', 'core.no-deltas-in-summary', 'true']));
      ok(larch(['summary', '-u', `--repo=${r}`]));
    };
    // ostree and Larch, from a complete source: each ends with the same commits.
    const s = await source('src', withDeltas);
    const indexed = await source('src-indexed', indexedOnly);
    for (const [who, tool] of TOOLS) {
      const r = client(`client-${who}`, tool, whole, []);
      ok(tool(['pull-local', '--require-static-deltas', `--repo=${r}`, s, c1]));
      ok(tool(['pull-local', '--require-static-deltas', `--repo=${r}`, s, 'test']));
      expect(ok(tool(['rev-parse', `--repo=${r}`, 'test'])).trim()).toBe(c2);
      expect(ok(ostree(['fsck', `--repo=${r}`]))).toMatch(/no errors found/);
      // Already complete: nothing to do.
      ok(tool(['pull-local', '--require-static-deltas', `--repo=${r}`, s, c2]));
      const ri = client(`client-indexed-${who}`, tool, whole, []);
      ok(tool(['pull-local', '--require-static-deltas', `--repo=${ri}`, indexed, c1]));
      expect(ok(ostree(['fsck', `--repo=${ri}`]))).toMatch(/no errors found/);
    }
    // Larch takes nothing but the deltas: from sources where c1's hello.txt and c2's new.txt exist
    // only inside them, a plain pull-local fails and the delta pull does not. (ostree may fetch
    // objects while it looks for deltas, so this is not asked of it.)
    const sparse = await source('src-sparse', withDeltas);
    const sparseIndexed = await source('src-sparse-indexed', indexedOnly);
    for (const r of [sparse, sparseIndexed]) await fsp.rm(objectOf(r, c1, '/hello.txt'));
    await fsp.rm(objectOf(sparse, c2, '/new.txt'));
    const plain = client('plain', larch, whole, []);
    expect(larch(['pull-local', `--repo=${plain}`, sparse, c1]).code).not.toBe(0);
    const r = client('client-sparse', larch, whole, []);
    ok(larch(['pull-local', '--require-static-deltas', `--repo=${r}`, sparse, c1]));
    ok(larch(['pull-local', '--require-static-deltas', `--repo=${r}`, sparse, 'test']));
    expect(ok(larch(['rev-parse', `--repo=${r}`, 'test'])).trim()).toBe(c2);
    expect(ok(ostree(['fsck', `--repo=${r}`]))).toMatch(/no errors found/);
    const ri = client('client-sparse-indexed', larch, whole, []);
    ok(larch(['pull-local', '--require-static-deltas', `--repo=${ri}`, sparseIndexed, c1]));
    expect(ok(ostree(['fsck', `--repo=${ri}`]))).toMatch(/no errors found/);
  });

  it("fails in ostree's words: no delta for a target, no deltas offered, a superblock that does not match", async () => {
    const errors = async (name: string, prepare: (r: string) => Promise<void> | void, commits: string[], target: string): Promise<string> => {
      const s = await source(name, prepare);
      const got = TOOLS.map(([who, tool]) => {
        const r = client(`${name}-${who}`, tool, s, commits);
        const e = expectOneErrorLine(tool(['pull-local', '--require-static-deltas', `--repo=${r}`, s, target]));
        // Nothing was written: the target is not there.
        expect(tool(['show', `--repo=${r}`, target]).code).not.toBe(0);
        return e;
      });
      expect(got[1]).toBe(got[0]);
      return got[1];
    };
    // Deltas exist, none ends at c2.
    expect(
      await errors('none', (r) => {
        ok(larch(['static-delta', 'generate', `--repo=${r}`, '--empty', `--to=${c1}`]));
        ok(larch(['summary', '-u', `--repo=${r}`]));
      }, [], c2),
    ).toBe(`Static deltas required, but none found for  to ${c2}`);
    // No summary and no delta index.
    expect(
      await errors('nothing', async (r) => {
        ok(ostree(['config', `--repo=${r}`, 'set', 'core.indexed-deltas', 'false']));
        await fsp.rm(join(r, 'summary'), { force: true });
      }, [], c1),
    ).toBe('Fetch configured to require static deltas, but no summary deltas or delta index found');
    // A superblock changed after the summary was made (a hostile mirror, say).
    expect(
      await errors('tampered', async (r) => {
        ok(larch(['static-delta', 'generate', `--repo=${r}`, `--from=${c1}`, `--to=${c2}`]));
        ok(larch(['summary', '-u', `--repo=${r}`]));
        ok(larch(['static-delta', 'generate', `--repo=${r}`, `--from=${c1}`, `--to=${c2}`, '--inline']));
        // Only the summary names deltas now, with the old superblock's digest.
        ok(ostree(['config', `--repo=${r}`, 'set', 'core.indexed-deltas', 'false']));
        await fsp.rm(join(r, 'delta-indexes'), { recursive: true });
      }, [c1], c2),
    ).toBe(`Invalid checksum for static delta ${c1}-${c2}`);
  });
});
