/**
 * A remote that requires ed25519 signatures on commits and on the summary (`sign-verify`,
 * `sign-verify-summary`): the agent verifies the summary before using it and the pull verifies
 * each commit before any of its tree is fetched; an unsigned commit or a summary signed by an
 * unknown key is refused, nothing is deployed, and the device keeps running what it runs.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateEd25519Key } from '@larch/signing';
import { Sysroot } from '@larch/sysroot';
import { tmpDir, type TmpDir } from '@larch/test-fixtures';
import { readState } from '../src/index.js';
import { Device, Publisher, runAgent, runCli, transitions } from './harness.js';

describe('signed remotes', () => {
  let work: TmpDir;
  let pub: Publisher;
  let device: Device;
  const key = generateEd25519Key();
  const other = generateEd25519Key();

  const sign = async (commit: string): Promise<void> => {
    const r = await runCli(['sign', `--repo=${pub.repoPath}`, commit, key.base64]);
    expect(r.code, r.stderr).toBe(0);
  };
  const signSummary = async (k = key.base64): Promise<void> => {
    const r = await runCli(['summary', `--repo=${pub.repoPath}`, '-u', `--sign=${k}`]);
    expect(r.code, r.stderr).toBe(0);
  };

  beforeAll(async () => {
    work = await tmpDir('larch-agent-signed-');
    pub = new Publisher(work.join('pub'));
    await pub.init();
    await sign(await pub.publish({ version: '1' }));
    await signSummary();
    const url = await pub.start();
    device = new Device(work.join('dev'), 'signed-dev');
    await device.provision(url, {}, [
      ['sign-verify', 'true'],
      ['sign-verify-summary', 'true'],
      ['verification-ed25519-key', key.publicKey.base64],
    ]);
  }, 60_000);

  afterAll(async () => {
    await pub?.stop();
    await device?.remove();
    await work?.cleanup();
  });

  const once = () => runAgent(['run', '--once', `--config=${device.configPath}`]);

  it('takes a signed update', async () => {
    const v2 = await pub.publish({ version: '2' });
    await sign(v2);
    await signSummary();
    expect(transitions(await once())).toEqual(['idle>check', 'check>pull', 'pull>preflight', 'preflight>stage', 'stage>reboot']);
    expect(transitions(await once())).toEqual(['reboot>confirm', 'confirm>idle']);
    expect(device.bootedCommit()).toBe(v2);
  }, 60_000);

  it('refuses an unsigned commit in the pull, before staging', async () => {
    const before = device.bootedCommit();
    const v3 = await pub.publish({ version: '3' });
    await signSummary();
    const r = await once();
    expect(transitions(r)).toEqual(['idle>check', 'check>pull', 'pull>idle']);
    expect(r.lines.find((l) => l.event === 'error')).toMatchObject({ failedPhase: 'pull' });
    expect(String(r.lines.find((l) => l.event === 'error')?.message)).toMatch(/signature/i);
    expect(readState(device.stateDir).lastError).toMatchObject({ phase: 'pull' });
    const sr = await Sysroot.open(device.sysroot);
    expect(sr.deployments.map((d) => d.csum)).not.toContain(v3);
    expect(device.bootedCommit()).toBe(before);
  }, 60_000);

  it('refuses a summary signed by an unknown key, before pulling anything', async () => {
    const v4 = await pub.publish({ version: '4' });
    await sign(v4);
    await signSummary(other.base64);
    const r = await once();
    expect(transitions(r)).toEqual(['idle>check', 'check>idle']);
    expect(r.lines.find((l) => l.event === 'error')).toMatchObject({ failedPhase: 'check' });
    expect(r.lines.some((l) => l.event === 'pulled')).toBe(false);
    // Signed properly again: taken.
    await signSummary();
    expect(transitions(await once())).toEqual(['idle>check', 'check>pull', 'pull>preflight', 'preflight>stage', 'stage>reboot']);
    expect(device.bootedCommit()).toBe(v4);
  }, 60_000);
});
