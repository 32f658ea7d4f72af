/**
 * A booted system: the running root is a deployment (same inode). Status marks it with `*` and
 * names the pending and rollback deployments as `ostree admin status` 2022.7 does; deploy takes
 * the booted stateroot and merges from the booted deployment, which is kept; undeploy refuses it.
 * The running root is given as `bootedRoot` (OSTree detects `/` with `/run/ostree-booted`).
 */
import { existsSync, mkdirSync, writeFileSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tmpDir, type TmpDir } from '@larch/test-fixtures';
import { decodeStaged, deploy, encodeStaged, finalizeStaged, formatStatus, initFs, osInit, Sysroot, sysrootStatus, undeploy } from '../src/index.js';
import { commitOs, mutating, removeSysroot } from './helpers.js';

describe('a booted sysroot', () => {
  let work: TmpDir;
  let root = '';
  beforeAll(async () => {
    process.env.OSTREE_SYSROOT_DEBUG = 'mutable-deployments';
    work = await tmpDir('larch-sysroot-booted-');
    root = work.join('sysroot');
    mkdirSync(root);
    await initFs(root);
    await osInit(root, 'testos');
    const repo = path.join(root, 'ostree/repo');
    await commitOs(work.path, repo, { version: '1', etc: { 'a.conf': 'a\n' } });
    await deploy(root, { stateroot: 'testos', refspec: 'testos/main', kargs: { replace: ['root=X'] } });
    await commitOs(work.path, repo, { version: '2', etc: { 'a.conf': 'a\n' } });
    await deploy(root, { stateroot: 'testos', refspec: 'testos/main' });
  });
  afterAll(async () => {
    delete process.env.OSTREE_SYSROOT_DEBUG;
    if (root) await removeSysroot(root);
    await work?.cleanup();
  });

  it('status marks the booted deployment and the pending one', async () => {
    const sr = await Sysroot.open(root);
    const booted = sr.deploymentDir(sr.deployments[1]);
    const s = await sysrootStatus(root, { bootedRoot: booted });
    expect(s.deployments.map((d) => [d.booted, d.pending, d.rollback])).toEqual([
      [false, true, false],
      [true, false, false],
    ]);
    const text = formatStatus(s).split('\n').filter((l) => !l.startsWith('    '));
    expect(text).toEqual([`  testos ${s.deployments[0].name} (pending)`, `* testos ${s.deployments[1].name}`, '']);
  });

  it('deploy without a stateroot uses the booted one, merges from it and keeps it', async () => {
    const sr = await Sysroot.open(root);
    const bootedDir = sr.deploymentDir(sr.deployments[1]);
    const bootedName = `${sr.deployments[1].csum}.${sr.deployments[1].deployserial}`;
    await mutating(bootedDir, () => writeFileSync(path.join(bootedDir, 'etc/a.conf'), 'from the booted system\n'));
    await commitOs(work.path, path.join(root, 'ostree/repo'), { version: '3', etc: { 'a.conf': 'a\n' } });
    const r = await deploy(root, { refspec: 'testos/main' }, { bootedRoot: bootedDir });
    expect(readFileSync(path.join(new Sysroot(root).deploymentDir(r.deployment), 'etc/a.conf'), 'utf8')).toBe('from the booted system\n');
    const s = await sysrootStatus(root, { bootedRoot: bootedDir });
    // new default, then the booted one (merge and crossover); the old pending one is gone
    expect(s.deployments.map((d) => d.name)).toEqual([r.deployment.csum + '.0', bootedName]);
    expect(s.deployments.map((d) => [d.booted, d.pending])).toEqual([
      [false, true],
      [true, false],
    ]);
  });

  it('undeploy refuses the booted deployment', async () => {
    const sr = await Sysroot.open(root);
    const bootedDir = sr.deploymentDir(sr.deployments[1]);
    await expect(undeploy(root, 1, undefined, { bootedRoot: bootedDir })).rejects.toMatchObject({ data: { reason: 'booted' }, message: 'Cannot undeploy currently booted deployment 1' });
    expect((await Sysroot.open(root)).deployments).toHaveLength(2);
    await undeploy(root, 0, undefined, { bootedRoot: bootedDir });
    const s = await sysrootStatus(root, { bootedRoot: bootedDir });
    expect(s.deployments.map((d) => d.booted)).toEqual([true]);
  });
});

describe('staged deployments on a booted system', () => {
  let work: TmpDir;
  let root = '';
  let run = '';
  beforeAll(async () => {
    process.env.OSTREE_SYSROOT_DEBUG = 'mutable-deployments';
    work = await tmpDir('larch-sysroot-staged-');
    root = work.join('sysroot');
    run = work.join('run');
    mkdirSync(root);
    mkdirSync(run);
    await initFs(root);
    await osInit(root, 'testos');
    await commitOs(work.path, path.join(root, 'ostree/repo'), { version: '1', etc: { 'a.conf': 'a\n' } });
    await deploy(root, { stateroot: 'testos', refspec: 'testos/main', kargs: { replace: ['root=X'] } });
  });
  afterAll(async () => {
    delete process.env.OSTREE_SYSROOT_DEBUG;
    if (root) await removeSysroot(root);
    await work?.cleanup();
  });

  it('--stage records the deployment in RUN/ostree/staged-deployment without touching the boot configuration', async () => {
    const sr = await Sysroot.open(root);
    const booted = sr.deploymentDir(sr.deployments[0]);
    const opts = { bootedRoot: booted, runDir: run };
    await expect(deploy(root, { refspec: 'testos/main', stage: true })).rejects.toMatchObject({ message: 'Cannot stage deployment: Not currently booted into an OSTree system' });
    const loader = readFileSync(path.join(root, 'boot/loader/entries/ostree-1-testos.conf'), 'utf8');
    const c2 = await commitOs(work.path, path.join(root, 'ostree/repo'), { version: '2', etc: { 'a.conf': 'a\n' } });
    const r = await deploy(root, { refspec: 'testos/main', stage: true, kargs: { append: ['quiet'] } }, opts);
    expect(r.write).toBeNull();
    expect(readFileSync(path.join(root, 'boot/loader/entries/ostree-1-testos.conf'), 'utf8')).toBe(loader);
    const rec = decodeStaged(readFileSync(path.join(run, 'ostree/staged-deployment')));
    expect(rec).toEqual({ target: { name: `${c2}.0`, osname: 'testos', bootcsum: r.deployment.bootcsum }, merge: { name: path.basename(booted), osname: 'testos', bootcsum: sr.deployments[0].bootcsum }, kargs: ['root=X', expect.stringMatching(/^ostree=/), 'quiet'] });
    expect(Buffer.from(encodeStaged(rec))).toEqual(readFileSync(path.join(run, 'ostree/staged-deployment')));
    const s = await sysrootStatus(root, opts);
    expect(formatStatus(s).split('\n').filter((l) => !l.startsWith('    '))).toEqual([`  testos ${c2}.0 (staged)`, `* testos ${path.basename(booted)}`, '']);
    // a --sysroot that is not booted does not see it
    expect((await sysrootStatus(root)).deployments).toHaveLength(1);
  });

  it('finalize-staged merges /etc changes made after staging and writes the new list', async () => {
    const sr = await Sysroot.open(root);
    const booted = sr.deploymentDir(sr.deployments[0]);
    const opts = { bootedRoot: booted, runDir: run };
    await mutating(booted, () => writeFileSync(path.join(booted, 'etc/a.conf'), 'changed after staging\n'));
    const r = await finalizeStaged(root, opts);
    expect(r?.write?.message).toMatch(/bootconfig swap: yes/);
    expect(existsSync(path.join(run, 'ostree/staged-deployment'))).toBe(false);
    const after = await Sysroot.open(root, opts);
    expect(after.deployments.map((d) => [Boolean(d.staged), after.isBooted(d)])).toEqual([
      [false, false],
      [false, true],
    ]);
    expect(readFileSync(path.join(after.deploymentDir(after.deployments[0]), 'etc/a.conf'), 'utf8')).toBe('changed after staging\n');
    expect(after.deployments[0].bootconfig.get('options')).toMatch(/^root=X ostree=\/ostree\/boot\.\d\/testos\/[0-9a-f]{64}\/0 quiet$/);
    expect(await finalizeStaged(root, opts)).toBeNull();
  });
});
