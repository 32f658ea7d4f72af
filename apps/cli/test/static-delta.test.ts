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
  ({ dir, cleanup } = await scratch('larch-cli-delta-'));
  ({ repo, c1, c2 } = await twoCommitRepo(dir));
});
afterAll(async () => {
  await cleanup();
});

describe('larch static-delta', () => {
  it('generate (from parent by default, --empty, --inline-parts), list, show, summary -u, delete', () => {
    const out = ok(larch(['static-delta', 'generate', `--repo=${repo}`, '--to=test']));
    expect(out).toBe(`Generating static delta:\n  From: ${c1}\n  To:   ${c2}\n`);
    ok(larch(['static-delta', 'generate', `--repo=${repo}`, '--empty', `--to=${c1}`, '--inline-parts']));
    expect(ok(larch(['static-delta', 'list', `--repo=${repo}`])).trim().split('\n').sort()).toEqual([c1, `${c1}-${c2}`].sort());
    const show = ok(larch(['static-delta', 'show', `--repo=${repo}`, `${c1}-${c2}`]));
    expect(show).toContain(`Delta: ${c1}-${c2}\nSigned: no\nFrom: ${c1}\nTo: ${c2}\nEndianness: little\n`);
    expect(show).toMatch(/PartPayloadOps0: openspliceclose=\d+ open=\d+ write=\d+ setread=\d+ unsetread=\d+ close=\d+ bspatch=\d+/);
    const json = JSON.parse(ok(larch(['static-delta', 'show', `--repo=${repo}`, c1, '--json']))) as { parts: Array<{ inline: boolean }> };
    expect(json.parts[0].inline).toBe(true);
    // -n leaves an existing delta alone.
    expect(ok(larch(['static-delta', 'generate', `--repo=${repo}`, '-n', `--from=${c1}`, `--to=${c2}`]))).toMatch(/already exists/);
    ok(larch(['summary', '-u', `--repo=${repo}`]));
    const summary = ok(larch(['summary', '--view', `--repo=${repo}`]));
    expect(summary).toContain(`${c1}-${c2}`);
    ok(larch(['static-delta', 'delete', `--repo=${repo}`, c1]));
    expect(ok(larch(['static-delta', 'list', `--repo=${repo}`])).trim()).toBe(`${c1}-${c2}`);
  });

  it('apply-offline into a bare-user repo (directory or superblock path)', async () => {
    ok(larch(['static-delta', 'generate', `--repo=${repo}`, '--empty', `--to=${c1}`, '--compression=none']));
    const dst = join(dir, 'dst');
    ok(larch(['init', `--repo=${dst}`, '--mode=bare-user']));
    const list = JSON.parse(ok(larch(['static-delta', 'list', `--repo=${repo}`, '--json']))) as Array<{ name: string }>;
    expect(list.map((d) => d.name).sort()).toEqual([c1, `${c1}-${c2}`].sort());
    const { deltaRelDir } = await import('@larch/delta');
    ok(larch(['static-delta', 'apply-offline', `--repo=${dst}`, join(repo, deltaRelDir(null, c1))]));
    const r = JSON.parse(ok(larch(['static-delta', 'apply-offline', `--repo=${dst}`, join(repo, deltaRelDir(c1, c2), 'superblock'), '--json']))) as { commitWritten: boolean };
    expect(r.commitWritten).toBe(true);
    expect(ok(larch(['fsck', `--repo=${dst}`]))).toMatch(/no errors/i);
    const co = join(dir, 'co');
    ok(larch(['checkout', `--repo=${dst}`, '-U', c2, co]));
    expect(await fsp.readFile(join(co, 'hello.txt'), 'utf8')).toBe('changed\n');
    expect(await fsp.readlink(join(co, 'link'))).toBe('hello.txt');
  });

  it('one-line errors', async () => {
    expect(expectOneErrorLine(larch(['static-delta', 'generate', `--repo=${repo}`, '--empty', `--from=${c1}`, `--to=${c2}`]))).toBe('Cannot specify both --empty and --from=REV');
    expect(expectOneErrorLine(larch(['static-delta', 'show', `--repo=${repo}`, 'nope']))).toBe('Invalid rev nope');
    expect(expectOneErrorLine(larch(['static-delta', 'delete', `--repo=${repo}`, `${c2}`]))).toBe(`Can't find delta ${c2}`);
    expect(expectOneErrorLine(larch(['static-delta', 'generate', `--repo=${repo}`, `--to=${c1}`]))).toMatch(/has no parent; use --empty/);
    const dst = join(dir, 'dst-nofrom');
    ok(larch(['init', `--repo=${dst}`, '--mode=bare-user']));
    const { deltaRelDir } = await import('@larch/delta');
    expect(expectOneErrorLine(larch(['static-delta', 'apply-offline', `--repo=${dst}`, join(repo, deltaRelDir(c1, c2))]))).toBe(`Commit ${c1}, which is the delta source, is not in repository`);
    const sb = join(repo, deltaRelDir(c1, c2), 'superblock');
    const bytes = await fsp.readFile(sb);
    const bad = join(dir, 'bad');
    await fsp.mkdir(bad);
    await fsp.writeFile(join(bad, 'superblock'), bytes.subarray(0, 40));
    expect(expectOneErrorLine(larch(['static-delta', 'apply-offline', `--repo=${dst}`, bad]))).toMatch(/static delta superblock/i);
  });
});

describe.runIf(RUN_INTEROP)('larch static-delta with the real ostree', () => {
  beforeAll(() => requireOstree());

  it('ostree applies and lists deltas made by the larch CLI; larch applies ostree deltas', async () => {
    const { deltaRelDir } = await import('@larch/delta');
    ok(larch(['static-delta', 'generate', `--repo=${repo}`, `--from=${c1}`, `--to=${c2}`, '--disable-bsdiff', '--max-chunk-size=1']));
    expect(ok(ostree(['static-delta', 'list', `--repo=${repo}`]))).toContain(`${c1}-${c2}`);
    const dst = join(dir, 'ostree-dst');
    ok(ostree(['init', `--repo=${dst}`, '--mode=bare-user']));
    ok(ostree(['pull-local', `--repo=${dst}`, repo, c1]));
    ok(ostree(['static-delta', 'apply-offline', `--repo=${dst}`, join(repo, deltaRelDir(c1, c2))]));
    expect(ok(ostree(['fsck', `--repo=${dst}`]))).toMatch(/no errors found/);

    const osrc = join(dir, 'osrc');
    await fsp.cp(repo, osrc, { recursive: true });
    ok(ostree(['static-delta', 'generate', `--repo=${osrc}`, `--from=${c1}`, `--to=${c2}`]));
    const ldst = join(dir, 'larch-dst');
    ok(larch(['init', `--repo=${ldst}`, '--mode=bare-user']));
    ok(larch(['pull-local', `--repo=${ldst}`, osrc, c1]));
    ok(larch(['static-delta', 'apply-offline', `--repo=${ldst}`, join(osrc, deltaRelDir(c1, c2))]));
    expect(ok(ostree(['fsck', `--repo=${ldst}`]))).toMatch(/no errors found/);
  });

  it('--filename writes the delta outside the repository, as ostree does; each tool applies the other\'s', async () => {
    const out = join(dir, 'usb');
    await fsp.mkdir(join(out, 'larch'), { recursive: true });
    await fsp.mkdir(join(out, 'ostree'));
    larch(['static-delta', 'delete', `--repo=${repo}`, `${c1}-${c2}`]); // an earlier test's, if any
    ok(larch(['static-delta', 'generate', `--repo=${repo}`, `--from=${c1}`, `--to=${c2}`, '--max-chunk-size=1', `--filename=${join(out, 'larch', 'update.delta')}`]));
    ok(ostree(['static-delta', 'generate', `--repo=${repo}`, `--from=${c1}`, `--to=${c2}`, `--filename=${join(out, 'ostree', 'update.delta')}`]));
    expect((await fsp.readdir(join(out, 'larch'))).sort()).toEqual(expect.arrayContaining(['0', 'update.delta']));
    expect(ok(larch(['static-delta', 'list', `--repo=${repo}`]))).not.toContain(`${c1}-${c2}`);
    for (const [who, other] of [['larch', 'ostree'], ['ostree', 'larch']] as const) {
      const dst = join(dir, `usb-${who}-applies`);
      const tool = who === 'larch' ? larch : ostree;
      ok(tool(['init', `--repo=${dst}`, '--mode=bare-user']));
      ok(tool(['pull-local', `--repo=${dst}`, repo, c1]));
      ok(tool(['static-delta', 'apply-offline', `--repo=${dst}`, join(out, other, 'update.delta')]));
      expect(ok(ostree(['fsck', `--repo=${dst}`]))).toMatch(/no errors found/);
    }
    // Big-endian metadata (--set-endianness=B, or --swap-endianness on this little-endian host).
    for (const flag of ['--set-endianness=B', '--swap-endianness']) {
      const be = join(out, `be${flag.length}`);
      await fsp.mkdir(be);
      ok(larch(['static-delta', 'generate', `--repo=${repo}`, `--from=${c1}`, `--to=${c2}`, flag, `--filename=${join(be, 'superblock')}`]));
      const dst = join(dir, `be-ostree-applies${flag.length}`);
      ok(ostree(['init', `--repo=${dst}`, '--mode=bare-user']));
      ok(ostree(['pull-local', `--repo=${dst}`, repo, c1]));
      ok(ostree(['static-delta', 'apply-offline', `--repo=${dst}`, join(be, 'superblock')]));
      expect(ok(ostree(['fsck', `--repo=${dst}`]))).toMatch(/no errors found/);
      const ldst = join(dir, `be-larch-applies${flag.length}`);
      ok(larch(['init', `--repo=${ldst}`, '--mode=bare-user']));
      ok(larch(['pull-local', `--repo=${ldst}`, repo, c1]));
      ok(larch(['static-delta', 'apply-offline', `--repo=${ldst}`, join(be, 'superblock')]));
      expect(ok(ostree(['fsck', `--repo=${ldst}`]))).toMatch(/no errors found/);
    }
    ok(larch(['static-delta', 'generate', `--repo=${repo}`, `--from=${c1}`, `--to=${c2}`, '--set-endianness=B']));
    expect(ok(ostree(['static-delta', 'show', `--repo=${repo}`, `${c1}-${c2}`]))).toContain('\nEndianness: big\n');
    expect(ok(larch(['static-delta', 'show', `--repo=${repo}`, `${c1}-${c2}`]))).toContain('\nEndianness: big\n');
    expect(expectOneErrorLine(larch(['static-delta', 'generate', `--repo=${repo}`, `--to=${c2}`, '--set-endianness=x']))).toBe("Invalid endianness 'x'");
    const missing = larch(['static-delta', 'generate', `--repo=${repo}`, `--to=${c2}`, `--filename=${join(out, 'nowhere', 'x')}`]);
    expect(expectOneErrorLine(missing)).toBe(`opendir(${join(out, 'nowhere')}): No such file or directory`);
  });
});
