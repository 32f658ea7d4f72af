/**
 * The deployment refs (`ostree/B/S/I`) are written in a repository transaction, and a failed
 * transaction's staging directory is collected by boot id, as in OSTree's
 * test-admin-deploy-bootid-gc: Larch and the real `ostree admin` run the same sequence on two
 * sysroots holding the same commits, with the `OSTREE_REPO_TEST_ERROR=pre-commit` failpoint
 * and two boot ids (`OSTREE_BOOTID`). After each step both must agree on the exit status, the
 * error line, the staging directories left in `ostree/repo/tmp` (names up to their random tail,
 * no lock files) and the refs.
 */
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Repo } from '@larch/core-store';
import { interopDescribe, larch, ostree, requireOstree, tmpDir, type TmpDir } from '@larch/test-fixtures';
import { commitOs, removeSysroot } from './helpers.js';

const describeInterop = interopDescribe(describe);

type Tool = 'larch' | 'ostree';
const TOOLS: Tool[] = ['ostree', 'larch'];

const BOOT_A = '4072029c-8b10-60d1-d31b-8422eeff9b42';
const BOOT_B = '5072029c-8b10-60d1-d31b-8422eeff9b42';

describeInterop('admin deploy under OSTREE_REPO_TEST_ERROR=pre-commit: deployment refs in a transaction, staging directories collected by boot id', () => {
  let work: TmpDir;
  const roots: Record<Tool, string> = { larch: '', ostree: '' };
  const repoOf = (t: Tool): string => path.join(roots[t], 'ostree/repo');

  /** `tmp/` of the repository, with the random tail of staging names replaced by XXXXXX. */
  function tmpListing(t: Tool): string[] {
    return readdirSync(path.join(repoOf(t), 'tmp'))
      .filter((n) => n !== 'cache')
      .map((n) => n.replace(/^(staging-[0-9a-f-]{36}-)[A-Za-z0-9]{6}/, '$1XXXXXX'))
      .sort();
  }

  async function deploymentRefs(t: Tool): Promise<string> {
    const refs = await (await Repo.open(repoOf(t))).listRefs({ kind: 'heads', prefix: 'ostree' });
    return [...refs].map(([n, c]) => `${n} ${c}`).sort().join('\n');
  }

  /** Run `admin deploy` with `env` in both sysroots; returns each one's exit status and stderr. */
  async function deployBoth(env: Record<string, string>, karg: string): Promise<Record<Tool, { code: number | null; stderr: string }>> {
    const out = {} as Record<Tool, { code: number | null; stderr: string }>;
    for (const t of TOOLS) {
      const args = ['admin', 'deploy', `--sysroot=${roots[t]}`, `--karg=${karg}`, '--karg=quiet', '--os=testos', 'testos/main'];
      const r = t === 'larch' ? await larch(args, { env }) : await ostree(args, { env });
      out[t] = { code: r.code, stderr: r.stderr };
    }
    return out;
  }

  beforeAll(async () => {
    requireOstree();
    work = await tmpDir('larch-bootid-gc-');
    for (const t of TOOLS) {
      roots[t] = work.join(t);
      mkdirSync(roots[t]);
      const run = t === 'larch' ? larch : ostree;
      expect((await run(['admin', 'init-fs', roots[t]])).code).toBe(0);
      expect((await run(['admin', 'os-init', `--sysroot=${roots[t]}`, 'testos'])).code).toBe(0);
      expect((await ostree(['config', `--repo=${repoOf(t)}`, 'set', 'sysroot.bootloader', 'none'])).code).toBe(0);
    }
    await commitOs(work.path, TOOLS.map(repoOf), { version: '1' });
    const first = await deployBoth({}, 'root=LABEL=MOO');
    for (const t of TOOLS) expect(first[t].code, first[t].stderr).toBe(0);
    await commitOs(work.path, TOOLS.map(repoOf), { version: '2', kernel: 'kernel 2\n' });
    for (const t of TOOLS) rmSync(path.join(repoOf(t), 'tmp'), { recursive: true, force: true });
    for (const t of TOOLS) mkdirSync(path.join(repoOf(t), 'tmp'));
  });
  afterAll(async () => {
    for (const t of TOOLS) if (roots[t]) await removeSysroot(roots[t]);
    await work?.cleanup();
  });

  it('a failed transaction fails the deploy, writes no ref and leaves its staging directory, unlocked', async () => {
    const before = { larch: await deploymentRefs('larch'), ostree: await deploymentRefs('ostree') };
    const r = await deployBoth({ OSTREE_REPO_TEST_ERROR: 'pre-commit', OSTREE_BOOTID: BOOT_A }, 'root=LABEL=MOO');
    expect(r.ostree.code).not.toBe(0);
    expect(r.larch.code, r.larch.stderr).toBe(r.ostree.code);
    expect(r.larch.stderr).toBe(r.ostree.stderr);
    expect(r.larch.stderr).toContain('OSTREE_REPO_TEST_ERROR_PRE_COMMIT specified');
    expect(tmpListing('ostree')).toEqual([`staging-${BOOT_A}-XXXXXX`]);
    expect(tmpListing('larch')).toEqual(tmpListing('ostree'));
    expect(await deploymentRefs('larch')).toBe(before.larch);
    expect(await deploymentRefs('ostree')).toBe(before.ostree);
  });

  it("a transaction of another boot removes the old boot's directory, even when it aborts; a committed one removes its own", async () => {
    const r = await deployBoth({ OSTREE_REPO_TEST_ERROR: 'pre-commit', OSTREE_BOOTID: BOOT_B }, 'root=LABEL=FOO');
    expect(r.ostree.code).not.toBe(0);
    expect(r.larch.code).toBe(r.ostree.code);
    expect(r.larch.stderr).toBe(r.ostree.stderr);
    expect(tmpListing('ostree')).toEqual([`staging-${BOOT_B}-XXXXXX`]);
    expect(tmpListing('larch')).toEqual(tmpListing('ostree'));

    const ok = await deployBoth({ OSTREE_BOOTID: BOOT_B }, 'root=LABEL=MOO');
    for (const t of TOOLS) expect(ok[t].code, ok[t].stderr).toBe(0);
    expect(tmpListing('ostree')).toEqual([]);
    expect(tmpListing('larch')).toEqual([]);
    // The deployment refs name the same commits in both.
    expect(await deploymentRefs('larch')).toBe(await deploymentRefs('ostree'));
  });
});
