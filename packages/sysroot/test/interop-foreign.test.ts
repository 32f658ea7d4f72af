/**
 * A sysroot built by the real `ostree admin` is read, deployed into, rolled back and cleaned up by
 * Larch, and the real `ostree` still reads it afterwards (same deployments, order, checksums).
 */
import { readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { interopDescribe, larchOk, ostree, ostreeOk, requireOstree, tmpDir, type TmpDir } from '@larch/test-fixtures';
import { cleanup, deploy, rollback, Sysroot, sysrootStatus, undeploy } from '../src/index.js';
import { commitOs, removeSysroot } from './helpers.js';

const describeInterop = interopDescribe(describe);

async function ostreeList(root: string): Promise<string[]> {
  const r = await ostreeOk(['admin', 'status', `--sysroot=${root}`]);
  return r.stdout
    .split('\n')
    .filter((l) => /^[* ] \S+ [0-9a-f]{64}\.\d+/.test(l))
    .map((l) => l.slice(2).split(' ').slice(0, 2).join(' '));
}

describeInterop('a sysroot made by ostree admin, then managed by larch', () => {
  let work: TmpDir;
  let root: string;
  let repo: string;
  beforeAll(async () => {
    requireOstree();
    work = await tmpDir('larch-sysroot-foreign-');
    root = work.join('sysroot');
    repo = path.join(root, 'ostree/repo');
    await import('node:fs/promises').then((f) => f.mkdir(root));
    await ostreeOk(['admin', 'init-fs', root]);
    await ostreeOk(['admin', 'os-init', `--sysroot=${root}`, 'testos']);
    await commitOs(work.path, repo, { version: '1.0' });
    await ostreeOk(['admin', 'deploy', `--sysroot=${root}`, '--os=testos', '--karg=root=LABEL=X', 'testos/main']);
    await commitOs(work.path, repo, { version: '1.1' });
    await ostreeOk(['admin', 'deploy', `--sysroot=${root}`, '--os=testos', 'testos/main']);
  });
  afterAll(async () => {
    if (root) await removeSysroot(root);
    await work?.cleanup();
  });

  it('reads the same list as ostree admin status', async () => {
    const s = await sysrootStatus(root);
    expect(s.deployments.map((d) => `${d.stateroot} ${d.name}`)).toEqual(await ostreeList(root));
    expect(s.deployments.map((d) => d.version)).toEqual(['1.1', '1.0']);
    expect(s.deployments[1].kargs).toBe('root=LABEL=X');
    const text = await larchOk(['admin', 'status', `--sysroot=${root}`]);
    expect(text.stdout).toBe((await ostreeOk(['admin', 'status', `--sysroot=${root}`])).stdout);
  });

  it('deploys into it; ostree reads the result', async () => {
    const csum = await commitOs(work.path, repo, { version: '1.2' });
    const r = await deploy(root, { stateroot: 'testos', refspec: 'testos/main' });
    expect(r.deployment.csum).toBe(csum);
    const s = await sysrootStatus(root);
    expect(s.deployments.map((d) => `${d.stateroot} ${d.name}`)).toEqual(await ostreeList(root));
    expect(s.deployments[0].kargs).toBe('root=LABEL=X');
    // ostree deploys on top of what larch wrote
    await ostreeOk(['admin', 'deploy', `--sysroot=${root}`, '--os=testos', '--retain', 'testos/main']);
    const s2 = await sysrootStatus(root);
    expect(s2.deployments.length).toBe(3);
    expect(s2.deployments.map((d) => `${d.stateroot} ${d.name}`)).toEqual(await ostreeList(root));
  });

  it('rolls back, undeploys and cleans up; ostree still reads it and its cleanup finds nothing to do', async () => {
    const before = (await Sysroot.open(root)).deployments.map((d) => d.csum);
    await rollback(root);
    const after = await ostreeList(root);
    expect(after[0]).toContain(before[1]);
    await undeploy(root, 2);
    await cleanup(root);
    const s = await sysrootStatus(root);
    expect(s.deployments.map((d) => `${d.stateroot} ${d.name}`)).toEqual(await ostreeList(root));
    // only the listed deployments remain on disk
    const onDisk = readdirSync(path.join(root, 'ostree/deploy/testos/deploy')).filter((n) => !n.endsWith('.origin')).sort();
    expect(onDisk).toEqual(s.deployments.map((d) => d.name).sort());
    const c = await ostree(['admin', 'cleanup', `--sysroot=${root}`]);
    expect(c.code).toBe(0);
    expect(c.stdout).toBe('');
    const fsck = await ostree(['fsck', `--repo=${repo}`]);
    expect(fsck.code, fsck.stderr).toBe(0);
  });

  it('prints deployments without an origin file, or with an unknown origin, as ostree does', async () => {
    const sr = await Sysroot.open(root);
    rmSync(sr.originPath(sr.deployments[0]));
    writeFileSync(sr.originPath(sr.deployments[1]), '[origin]\ncontainer-image-reference=x\n');
    const text = await larchOk(['admin', 'status', `--sysroot=${root}`]);
    expect(text.stdout).toContain('origin: none');
    expect(text.stdout).toContain('origin: <unknown origin type>');
    expect(text.stdout).toBe((await ostreeOk(['admin', 'status', `--sysroot=${root}`])).stdout);
  });
});
