/**
 * The agent and the boot loader's trial boot (docs/BOOT.md): commits GRUB gave up on, recorded by
 * the booted system in the failed-trials file, are bad commits (never taken, reported, the booted
 * deployment made the default again); an update deployed on a sysroot with the larch-grub menu is
 * put on trial by the deploy and marked good by the agent's confirmation.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deploy, installLarchGrubMenu, readGrubenv, Sysroot } from '@larch/sysroot';
import { tmpDir, type TmpDir } from '@larch/test-fixtures';
import { readState } from '../src/index.js';
import { Device, Publisher, REF, runAgent, STATEROOT, transitions, type AgentRun } from './harness.js';

/** Only a guard against a hang, never an assertion about speed. */
const LIMIT_MS = 300_000;

describe('trial boots', () => {
  let work: TmpDir;
  let pub: Publisher;
  let url = '';
  const devices: Record<string, Device> = {};

  beforeAll(async () => {
    work = await tmpDir('larch-agent-trial-');
    pub = new Publisher(work.join('pub'));
    await pub.init();
    await pub.publish({ version: '1' });
    url = await pub.start();
    for (const id of ['refuse', 'fellback', 'grub']) {
      devices[id] = new Device(work.join(id), id);
      await devices[id].provision(url);
    }
  }, LIMIT_MS);

  afterAll(async () => {
    await pub?.stop();
    for (const d of Object.values(devices)) await d.remove();
    await work?.cleanup();
  });

  const once = (d: Device): Promise<AgentRun> => runAgent(['run', '--once', `--config=${d.configPath}`]);
  const failedTrials = (d: Device): string => path.join(d.dir, 'failed-trials');

  it('a commit in the failed-trials file is not taken, and is reported; lines that are not a commit are ignored', async () => {
    const d = devices.refuse;
    const v1 = d.bootedCommit();
    const v2 = await pub.publish({ version: '2' });
    writeFileSync(failedTrials(d), `../../etc/shadow\n${v2}\n${'f'.repeat(65)}\n\n`);
    d.writeConfig(url, { failedTrialsFile: failedTrials(d) });
    const a = await once(d);
    expect(a.code).toBe(0);
    expect(transitions(a)).toEqual(['idle>check', 'check>idle']);
    expect(a.lines.find((l) => l.to === 'idle')).toMatchObject({ result: 'skip-bad', commit: v2 });
    expect(a.lines.find((l) => l.event === 'failed-trials-ignored')).toMatchObject({ lines: 2 });
    expect(a.lines.find((l) => l.event === 'marked-bad')).toMatchObject({ commit: v2, source: 'failed-trial' });
    const report = a.lines.find((l) => l.event === 'check-in' && l.reason === 'marked-bad') as { payload: { badCommits: string[] } } | undefined;
    expect(report?.payload.badCommits).toEqual([v2]);
    expect(readState(d.stateDir).badCommits).toEqual([v2]);
    expect((await Sysroot.open(d.sysroot)).deployments.map((x) => x.csum)).toEqual([v1]);
    // The next cycle: still refused, reported once only.
    const b = await once(d);
    expect(b.lines.find((l) => l.to === 'idle')).toMatchObject({ result: 'skip-bad', commit: v2 });
    expect(b.lines.filter((l) => l.event === 'check-in').map((l) => l.reason)).toEqual(['cycle']);
  }, LIMIT_MS);

  it('GRUB fell back from the default deployment: the booted one is made the default again', async () => {
    const d = devices.fellback;
    const v1 = d.bootedCommit();
    const v3 = await pub.publish({ version: '3' });
    // v3 deployed as the default by someone else; the machine came back up on v1 (the booted link).
    const repo = await (await Sysroot.open(d.sysroot)).repo();
    await import('@larch/http-pull').then(({ pull }) => pull({ repo, remote: 'origin', refs: [REF] }));
    await deploy(d.sysroot, { stateroot: STATEROOT, refspec: v3 }, { bootedRoot: d.bootedLink });
    expect((await Sysroot.open(d.sysroot)).deployments.map((x) => x.csum)).toEqual([v3, v1]);
    writeFileSync(failedTrials(d), `${v3}\n`);
    d.writeConfig(url, { failedTrialsFile: failedTrials(d) });
    const a = await once(d);
    expect(a.lines.find((l) => l.event === 'rolled-back-default')).toMatchObject({ commit: v3, source: 'failed-trial' });
    expect(a.lines.find((l) => l.to === 'idle')).toMatchObject({ result: 'skip-bad', commit: v3 });
    expect((await Sysroot.open(d.sysroot)).deployments.map((x) => x.csum)).toEqual([v1, v3]);
  }, LIMIT_MS);

  it('an update on a sysroot with the larch-grub menu: on trial after the deploy, marked good by the confirmation', async () => {
    const d = devices.grub;
    const sr = await Sysroot.open(d.sysroot);
    installLarchGrubMenu(d.sysroot, sr.deployments.map((x) => x.bootconfig));
    const v4 = await pub.publish({ version: '4' });
    d.writeConfig(url, { failedTrialsFile: failedTrials(d) });
    const a = await once(d);
    expect(transitions(a)).toEqual(['idle>check', 'check>pull', 'pull>preflight', 'preflight>stage', 'stage>reboot']);
    expect(Object.fromEntries(readGrubenv(d.sysroot))).toEqual({ boot_counter: '1', boot_success: '0' });
    expect(readFileSync(path.join(d.sysroot, 'boot/loader/grub.cfg'), 'utf8')).toContain('load_env');
    // The reboot script booted the default (v4).
    expect(d.bootedCommit()).toBe(v4);
    const b = await once(d);
    expect(transitions(b)).toEqual(['reboot>confirm', 'confirm>idle']);
    expect(b.lines.find((l) => l.event === 'trial-marked-good')).toMatchObject({ commit: v4 });
    expect(b.lines.find((l) => l.to === 'idle')).toMatchObject({ result: 'confirmed', commit: v4 });
    expect(Object.fromEntries(readGrubenv(d.sysroot))).toEqual({ boot_success: '1' });
  }, LIMIT_MS);
});
