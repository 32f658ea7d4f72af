/**
 * `remote add|delete --sysroot=PATH` side by side with the real ostree: a deployed root (one with
 * a `sysroot` directory) keeps its added remotes in `PATH/etc/ostree/remotes.d/NAME.conf`, a
 * physical root in the repo's config; the files are equal byte for byte and in mode.
 */
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ok, ostree, requireOstree, RUN_INTEROP, scratch } from './helpers.js';
import { expectSame, type Places } from './remote-compare.js';

const describeInterop = RUN_INTEROP ? describe : describe.skip;

let dir: string;
let cleanup: () => Promise<void>;
let n = 0;
beforeAll(async () => {
  requireOstree();
  ({ dir, cleanup } = await scratch('larch-remote-sysroot-'));
});
afterAll(async () => cleanup());

/** Two fresh sysroots (ostree admin init-fs), S for each tool; `deployed` adds a `sysroot` directory. */
async function sysroots(deployed: boolean): Promise<Places> {
  const i = n++;
  const places = { S: { ostree: join(dir, `o${i}`), larch: join(dir, `l${i}`) } };
  for (const p of [places.S.ostree, places.S.larch]) {
    await mkdir(p);
    ok(ostree(['admin', 'init-fs', p]));
    if (deployed) await mkdir(join(p, 'sysroot'));
  }
  return places;
}

async function expectSameFile(p: Places, rel: string): Promise<string> {
  const theirs = join(p.S!.ostree, rel);
  const ours = join(p.S!.larch, rel);
  expect({ rel, exists: existsSync(ours) }).toEqual({ rel, exists: existsSync(theirs) });
  if (!existsSync(theirs)) return '';
  const text = await readFile(theirs, 'utf8');
  expect(await readFile(ours, 'utf8')).toBe(text);
  expect(((await stat(ours)).mode & 0o777).toString(8)).toBe(((await stat(theirs)).mode & 0o777).toString(8));
  return text;
}

describeInterop('remote add --sysroot (against ostree)', () => {
  it('puts a deployed root\'s remotes in etc/ostree/remotes.d, and deletes them there', async () => {
    const p = await sysroots(true);
    expectSame(['remote', 'add', '--sysroot={S}', 'os', 'http://os.example/repo', 'main'], p);
    expect(await expectSameFile(p, 'etc/ostree/remotes.d/os.conf')).toBe('[remote "os"]\nurl=http://os.example/repo\nbranches=main;\n');
    expect(expectSame(['remote', 'add', '--sysroot={S}', 'os', 'http://other/'], p).error).toBe(
      'error: Remote configuration for "os" already exists: {S}/etc/ostree/remotes.d/os.conf',
    );
    expectSame(['remote', 'add', '--sysroot={S}', '--force', 'os', 'http://os2.example/'], p);
    await expectSameFile(p, 'etc/ostree/remotes.d/os.conf');
    // The repo on its own (not through the sysroot) does not see remotes.d.
    expectSame(['remote', 'list', '--repo={S}/ostree/repo'], p);
    expectSame(['remote', 'delete', '--sysroot={S}', 'os'], p);
    expect(await readdir(join(p.S!.larch, 'etc/ostree/remotes.d'))).toEqual([]);
    await expectSameFile(p, 'ostree/repo/config');
  });

  it('keeps a physical root\'s remotes in the repo config', async () => {
    const p = await sysroots(false);
    expectSame(['remote', 'add', '--sysroot={S}', 'os', 'http://os.example/repo'], p);
    expect(existsSync(join(p.S!.larch, 'etc/ostree'))).toBe(false);
    expect(await expectSameFile(p, 'ostree/repo/config')).toContain('[remote "os"]\nurl=http://os.example/repo\n');
    expectSame(['remote', 'show-url', '--repo={S}/ostree/repo', 'os'], p);
  });

  it('follows core.add-remotes-config-dir, and reports a remote defined twice while loading the sysroot', async () => {
    const p = await sysroots(true);
    expectSame(['remote', 'add', '--sysroot={S}', 'twice', 'http://a/'], p);
    expectSame(['remote', 'add', '--repo={S}/ostree/repo', 'twice', 'http://b/'], p);
    expect(expectSame(['remote', 'add', '--sysroot={S}', 'x', 'http://x/'], p).error).toBe('error: loading sysroot: Multiple specifications found for remote "twice"');
    expectSame(['remote', 'delete', '--repo={S}/ostree/repo', 'twice'], p);
    expectSame(['config', '--repo={S}/ostree/repo', 'set', 'core.add-remotes-config-dir', 'false'], p);
    expectSame(['remote', 'add', '--sysroot={S}', 'inconfig', 'http://c/'], p);
    await expectSameFile(p, 'ostree/repo/config');
    await expectSameFile(p, 'etc/ostree/remotes.d/twice.conf');
  });

  it('names a path that is no sysroot as ostree does', async () => {
    const p = await sysroots(true);
    expect(expectSame(['remote', 'add', `--sysroot=${join(dir, 'nonexistent')}`, 'x', 'http://x/'], p).error).toBe(
      `error: loading sysroot: opendir(${join(dir, 'nonexistent')}): No such file or directory`,
    );
    expect(expectSame(['remote', 'delete', '--sysroot={S}/boot', 'x'], p).error).toBe('error: loading sysroot: opendir(ostree/repo): No such file or directory');
    expect(expectSame(['remote', 'list', '--sysroot={S}'], p).code).toBe(1);
  });
});
