/**
 * The upgrader (src/upgrade.ts) against OSTree's `OstreeSysrootUpgrader` rules: what it asks its
 * pull hook for, the override commit written to the origin's ref, the transient origin state, the
 * downgrade check; and kernels of the legacy layout named `vmlinuz-CHECKSUM` (no version), which
 * the real `ostree admin deploy` accepts too.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Repo } from '@larch/core-store';
import { tmpDir, type TmpDir } from '@larch/test-fixtures';
import { deploy, initFs, osInit, pin, Sysroot, upgrade, type UpgradePullRequest } from '../src/index.js';
import { commitOs, removeSysroot } from './helpers.js';

const HAVE_OSTREE = spawnSync('ostree', ['--version']).status === 0;
const env = process.env;

let tmp: TmpDir;
const roots: string[] = [];

async function sysroot(name: string): Promise<{ root: string; repo: string }> {
  const root = path.join(tmp.path, name);
  mkdirSync(root);
  roots.push(root);
  await initFs(root);
  await osInit(root, 'testos');
  return { root, repo: path.join(root, 'ostree/repo') };
}

beforeAll(async () => {
  tmp = await tmpDir('larch-upgrader-');
  env.OSTREE_SYSROOT_DEBUG = 'mutable-deployments';
});
afterAll(async () => {
  delete env.OSTREE_SYSROOT_DEBUG;
  for (const r of roots) await removeSysroot(r);
  await tmp.cleanup();
});

describe('upgrade', () => {
  it('asks its pull hook for the origin ref (or the override commit), checked against the deployed commit', async () => {
    const { root, repo } = await sysroot('hook');
    const r = await Repo.open(repo);
    const c1 = await commitOs(tmp.path, repo, { version: '1', branch: 'testos/main', timestamp: 1_000n });
    await r.setRef('origin:testos/main', c1);
    await deploy(root, { stateroot: 'testos', refspec: 'origin:testos/main' });
    await pin(root, [0], false);
    const asked: UpgradePullRequest[] = [];
    const c2 = await commitOs(tmp.path, repo, { version: '2', branch: 'testos/other', timestamp: 2_000n });
    // The hook is the only way commits arrive: it moves the remote ref, as a pull would.
    const hook = async (req: UpgradePullRequest): Promise<void> => {
      asked.push(req);
      if (req.refs[0] === 'testos/main') await r.setRef('origin:testos/main', c2);
    };
    const res = await upgrade(root, { stateroot: 'testos', pull: hook });
    expect(asked).toEqual([{ remote: 'origin', refs: ['testos/main'], fromRevision: c1, allowDowngrade: false }]);
    expect(res).toMatchObject({ updated: true, from: c1, to: c2, refspec: 'origin:testos/main' });
    const sr = await Sysroot.open(root);
    // the pin is transient state: the new deployment is not pinned, the old one still is
    expect(sr.deployments.map((d) => [d.csum, d.origin?.get('libostree-transient', 'pinned') ?? null])).toEqual([
      [c2, null],
      [c1, 'true'],
    ]);
    // --override-commit: the older commit is refused without allowDowngrade …
    await expect(upgrade(root, { stateroot: 'testos', overrideCommit: c1, pull: hook })).rejects.toThrow(
      `Upgrade target revision '${c1}' with timestamp 'Thu Jan  1 00:16:40 1970' is chronologically older than current revision '${c2}' with timestamp 'Thu Jan  1 00:33:20 1970'; use --allow-downgrade to permit`,
    );
    expect(asked[1]).toEqual({ remote: 'origin', refs: [c1], fromRevision: c2, allowDowngrade: false });
    // … and with it, deployed, the remote ref pointing at it (as ostree_repo_set_ref_immediate)
    await upgrade(root, { stateroot: 'testos', overrideCommit: c1, allowDowngrade: true });
    expect(await r.resolveRef('origin:testos/main')).toBe(c1);
    expect((await Sysroot.open(root)).deployments[0].csum).toBe(c1);
    expect((await Sysroot.open(root)).deployments[0].origin?.get('origin', 'override-commit')).toBe(c1);
  });

  it('says "No update available." for the deployed commit and stops after the pull with pullOnly', async () => {
    const { root, repo } = await sysroot('noop');
    const r = await Repo.open(repo);
    const c1 = await commitOs(tmp.path, repo, { version: '1', branch: 'testos/main', timestamp: 1_000n });
    await deploy(root, { stateroot: 'testos', refspec: 'testos/main' });
    const lines: string[] = [];
    expect((await upgrade(root, { stateroot: 'testos', log: (l) => lines.push(l) })).updated).toBe(false);
    expect(lines).toEqual(['No update available.']);
    const c2 = await commitOs(tmp.path, repo, { version: '2', branch: 'testos/main', timestamp: 2_000n });
    const res = await upgrade(root, { stateroot: 'testos', pullOnly: true });
    expect(res).toMatchObject({ updated: true, from: c1, to: c2 });
    expect((await Sysroot.open(root)).deployments.map((d) => d.csum)).toEqual([c1]);
    expect(await r.resolveRef('testos/main')).toBe(c2);
  });
});

describe('hostile end-of-life rebase', () => {
  it('refuses an ostree.endoflife-rebase that is not a ref name: nothing fetched, deployed or written', async () => {
    const { root, repo } = await sysroot('eol-hostile');
    const r = await Repo.open(repo);
    const c1 = await commitOs(tmp.path, repo, { version: '1', branch: 'testos/main', timestamp: 1_000n });
    await r.setRef('origin:testos/main', c1);
    await deploy(root, { stateroot: 'testos', refspec: 'origin:testos/main' });
    const before = readFileSync(path.join(root, 'ostree/deploy/testos/deploy', `${c1}.0.origin`), 'utf8');
    const { commitTree } = await import('@larch/core-store');
    const { Variant } = await import('@larch/gvariant');
    const empty = path.join(tmp.path, 'empty');
    mkdirSync(empty);
    const eol = await commitTree(r, {
      tree: empty,
      branch: 'testos/eol-build',
      subject: 'eol',
      timestamp: 2_000n,
      metadata: [['ostree.endoflife-rebase', new Variant('s', '../../../etc/passwd')]],
    });
    await r.setRef('origin:testos/main', eol.commit);
    const asked: UpgradePullRequest[] = [];
    await expect(upgrade(root, { stateroot: 'testos', pull: async (req) => void asked.push(req) })).rejects.toThrow(
      `Invalid ostree.endoflife-rebase '../../../etc/passwd' in commit ${eol.commit}: not a ref name`,
    );
    expect(asked.map((a) => a.refs)).toEqual([['testos/main']]);
    expect((await Sysroot.open(root)).deployments.map((d) => d.csum)).toEqual([c1]);
    expect(readFileSync(path.join(root, 'ostree/deploy/testos/deploy', `${c1}.0.origin`), 'utf8')).toBe(before);
  });
});

describe('legacy kernel layout', () => {
  it('takes vmlinuz-CHECKSUM (no version) from usr/lib/ostree-boot, installed as vmlinuz, as ostree does', async () => {
    const kernel = 'the kernel only';
    const bootcsum = (await import('node:crypto')).createHash('sha256').update(kernel).digest('hex');
    const extra = { [`usr/lib/ostree-boot/vmlinuz-${bootcsum}`]: kernel };
    const mine = await sysroot('legacy');
    await commitOs(tmp.path, mine.repo, { kernel: null, extra, branch: 'testos/legacy' });
    await deploy(mine.root, { stateroot: 'testos', refspec: 'testos/legacy' });
    const dir = path.join(mine.root, 'boot/ostree', `testos-${bootcsum}`);
    expect(readdirSync(dir)).toEqual(['vmlinuz']);
    const entry = readdirSync(path.join(mine.root, 'boot/loader/entries')).map((e) => readFileSync(path.join(mine.root, 'boot/loader/entries', e), 'utf8'))[0];
    expect(entry).toMatch(new RegExp(`^linux /ostree/testos-${bootcsum}/vmlinuz$`, 'm'));
    expect(entry).toMatch(new RegExp(`^options init=/ostree/boot\\.1/testos/${bootcsum}/0/usr/lib/ostree/ostree-prepare-root ostree=/ostree/boot\\.1/testos/${bootcsum}/0$`, 'm'));
    if (HAVE_OSTREE) {
      const theirs = await sysroot('legacy-ostree');
      await commitOs(tmp.path, theirs.repo, { kernel: null, extra, branch: 'testos/legacy' });
      const o = spawnSync('ostree', ['admin', 'deploy', `--sysroot=${theirs.root}`, '--os=testos', 'testos/legacy'], { encoding: 'utf8' });
      expect(o.status).toBe(0);
      expect(readdirSync(path.join(theirs.root, 'boot/ostree', `testos-${bootcsum}`))).toEqual(['vmlinuz']);
      const theirEntry = readdirSync(path.join(theirs.root, 'boot/loader/entries')).map((e) => readFileSync(path.join(theirs.root, 'boot/loader/entries', e), 'utf8'))[0];
      expect(entry).toBe(theirEntry);
    }
    expect(existsSync(path.join(mine.root, 'boot/loader/entries'))).toBe(true);
  });
});
