/**
 * Trial boot and fallback on a real machine (QEMU, TCG, OVMF): the test OS's v2 is deployed, then
 * a bad version on top of it as the new default, put on trial (`startTrialBoot`: one boot), and
 * the image is booted with reboots allowed. GRUB's script (grub.cfg from @larch/sysroot's
 * grub-bls.ts) counts the trial boot down in grubenv; the bad tree never marks its boot good, so
 * the next boot is v2's, by itself:
 *
 *  - v3 boots, its required health check fails, larch-boot-check reboots it; GRUB then boots v2;
 *  - v3-panic's kernel panics before init (nothing of that tree runs), panic=5 reboots; GRUB then
 *    boots v2.
 *
 * On v2, larch-boot-check sees GRUB's fallback and records the bad commit; a second power-on boots
 * v2 again (the bad tree is not retried). Which tree is up is read from the OS's report on the
 * serial console (/proc/cmdline's ostree= and the version file).
 */
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { tmpDir, type TmpDir } from '@larch/test-fixtures';
import { Repo } from '@larch/core-store';
import { pullLocal } from '@larch/http-pull';
import { deploy, initFs, osInit, setImmutable, startTrialBoot, Sysroot, GRUBENV_PATH } from '@larch/sysroot';
import { buildImage } from '../src/index.js';
import { bootableOs, bootTimes, FAST_KARGS, MINUTE, report, type BootReport } from './boot-os.js';
import { bootImage, hasQemu, type Vm } from './qemu.js';

const runs = Boolean(process.env.CI) || hasQemu();
const describeBoot = runs ? describe : describe.skip;
const EMERGENCY = /Entering emergency mode|You are in emergency mode/;

interface TrialImage {
  image: string;
  /** Each deployment's commit, ostree= argument and menu entry title. */
  good: { commit: string; ostreeArg: string; title: string };
  bad: { commit: string; ostreeArg: string; title: string };
  rootUuid: string;
}

/** v2, then `badVersion` on top as the default on a one-boot trial, in an image. */
async function trialImage(d: TmpDir, badVersion: string): Promise<TrialImage> {
  // The bad version first: building it builds v2, its parent.
  const bad = bootableOs(badVersion);
  const good = bootableOs('v2');
  const sysroot = d.join('sysroot');
  const rootUuid = randomUUID();
  mkdirSync(sysroot);
  try {
    await initFs(sysroot);
    await osInit(sysroot, 'testos');
    const repo = await Repo.open(join(sysroot, 'ostree/repo'));
    await pullLocal({ repo, src: good.repo, refs: [good.commit] });
    await deploy(sysroot, { stateroot: 'testos', refspec: good.commit, kargs: { append: [`root=UUID=${rootUuid}`, 'rw', 'console=ttyS0', ...FAST_KARGS] } });
    // The update arrives (pulled after the first deploy, whose prune keeps only deployed commits);
    // its kernel arguments are inherited from v2's deployment.
    await pullLocal({ repo, src: bad.repo, refs: [bad.commit] });
    await deploy(sysroot, { stateroot: 'testos', refspec: bad.commit });
    startTrialBoot(sysroot, 1);
    const sr = await Sysroot.open(sysroot);
    expect(sr.deployments.map((x) => x.csum)).toEqual([bad.commit, good.commit]);
    const ostreeArg = (i: number): string => /(?:^| )(ostree=\S+)/.exec(sr.deployments[i].bootconfig.get('options') ?? '')![1];
    const title = (i: number): string => sr.deployments[i].bootconfig.get('title')!;
    expect(readFileSync(join(sysroot, GRUBENV_PATH), 'latin1')).toMatch(/^# GRUB Environment Block\n# WARNING: [^\n]*\nboot_counter=1\nboot_success=0\n#+$/);
    const built = await buildImage({ sysroot, out: d.join('disk.img'), grubTimeout: 0, workDir: d.path });
    expect(built.rootUuid).toBe(rootUuid);
    return { image: built.out, good: { commit: good.commit, ostreeArg: ostreeArg(1), title: title(1) }, bad: { commit: bad.commit, ostreeArg: ostreeArg(0), title: title(0) }, rootUuid };
  } finally {
    // Deployment roots carry the immutable attribute; the temporary directory is removed later.
    const deployRoot = join(sysroot, 'ostree/deploy/testos/deploy');
    for (const name of existsSync(deployRoot) ? readdirSync(deployRoot) : []) setImmutable(join(deployRoot, name), false);
  }
}

/** Boot (reboots allowed) until the OS has reported and powered off; `twice` fails at once if the bad tree comes back. */
async function bootUntilReport(image: string, dir: string, vms: Vm[], twice: RegExp): Promise<BootReport & { vm: Vm }> {
  mkdirSync(dir, { recursive: true });
  const vm = bootImage({ image, dir, reboot: true });
  vms.push(vm);
  const failOn = new RegExp(`${EMERGENCY.source}|${twice.source}`);
  // Generous backstops: TCG on a shared 2-core machine is slow; the waits end on the markers.
  const multiUserMs = await vm.waitFor(/LARCH-TEST-STARTED /, 40 * MINUTE, failOn);
  const reportMs = await vm.waitFor(/LARCH-TEST-END/, 45 * MINUTE, failOn);
  const exit = await vm.exited;
  const offMs = Date.now() - vm.startedAt;
  const text = vm.console();
  return { facts: report(text), multiUserMs, reportMs, offMs, exit, console: text, vm };
}

/** The report shows v2 up after GRUB fell back from `bad`, which is recorded as a failed trial. */
function expectFellBackToV2(b: BootReport, t: TrialImage): void {
  const cmdline = (b.facts.get('cmdline') ?? '').split(/\s+/);
  expect(cmdline).toContain(t.good.ostreeArg);
  expect(cmdline).not.toContain(t.bad.ostreeArg);
  expect(cmdline).toContain(`root=UUID=${t.rootUuid}`);
  expect(b.facts.get('version')).toBe('v2');
  expect(b.facts.get('system-state')).toBe('running');
  expect(b.facts.get('health-required')).toBe('10-ostree-booted=0');
  expect(b.facts.get('boot-check')).toBe(`LARCH-BOOT fallback bad=${t.bad.commit} booted=${t.good.commit} health=ok`);
  expect(b.facts.get('failed-trials')).toBe(t.bad.commit);
  expect(b.exit).toBe(0);
}

/** The menu entries GRUB booted, in order (GRUB prints "Booting `TITLE'" on the console). */
function grubBoots(text: string): string[] {
  return [...text.matchAll(/Booting `([^'\r\n]*)'/g)].map((m) => m[1]);
}

function count(text: string, re: RegExp): number {
  return text.match(new RegExp(re.source, 'g'))?.length ?? 0;
}

describeBoot('trial boot: a new tree that cannot boot falls back to the previous one', () => {
  const vms: Vm[] = [];
  const dirs: TmpDir[] = [];
  afterAll(async () => {
    for (const vm of vms) {
      vm.kill();
      await vm.exited;
    }
    for (const d of dirs) await d.cleanup();
  });

  it('v3 on trial: one boot, its required check fails, it reboots, v2 comes up by itself and stays', async () => {
    if (!hasQemu()) throw new Error('qemu-system-x86_64 and OVMF are needed (apt-get install qemu-system-x86 ovmf)');
    const d = await tmpDir('larch-fallback-');
    dirs.push(d);
    const t = await trialImage(d, 'v3');
    const failed = /LARCH-BOOT trial-failed /;
    const b = await bootUntilReport(t.image, d.join('boot1'), vms, new RegExp(`${failed.source}[\\s\\S]*${failed.source}`));
    const failedAt = /LARCH-BOOT trial-failed [^\r\n]*/.exec(b.console);
    console.log(`v3 trial then v2: ${failedAt?.[0]}\n${bootTimes('v3 → v2 (both boots)', b)}`);
    // One trial boot of v3: its check failed and it rebooted itself, once; then GRUB chose v2.
    expect(grubBoots(b.console)).toEqual([t.bad.title, t.good.title]);
    expect(count(b.console, failed)).toBe(1);
    expect(failedAt![0]).toBe(`LARCH-BOOT trial-failed booted=${t.bad.commit} failed=50-v3-broken=1 boots-left=0: rebooting`);
    expect(b.console.indexOf(failedAt![0])).toBeLessThan(b.console.indexOf('LARCH-TEST-STARTED'));
    expectFellBackToV2(b, t);

    // Powered on again: still v2, no trial of v3.
    const again = await bootUntilReport(t.image, d.join('boot2'), vms, failed);
    console.log(bootTimes('v2 again', again));
    expect(grubBoots(again.console)).toEqual([t.good.title]);
    expect(count(again.console, failed)).toBe(0);
    expectFellBackToV2(again, t);
  }, 90 * MINUTE);

  it('v3-panic on trial: the kernel panics, the machine reboots, v2 comes up by itself and stays', async () => {
    if (!hasQemu()) throw new Error('qemu-system-x86_64 and OVMF are needed (apt-get install qemu-system-x86 ovmf)');
    const d = await tmpDir('larch-fallback-');
    dirs.push(d);
    const t = await trialImage(d, 'v3-panic');
    const panic = /Kernel panic - not syncing/;
    const b = await bootUntilReport(t.image, d.join('boot1'), vms, new RegExp(`${panic.source}[\\s\\S]*${panic.source}`));
    console.log(`v3-panic trial then v2: ${/Kernel panic - not syncing[^\r\n]*/.exec(b.console)?.[0]}\n${bootTimes('v3-panic → v2 (both boots)', b)}`);
    expect(grubBoots(b.console)).toEqual([t.bad.title, t.good.title]);
    expect(count(b.console, panic)).toBe(1);
    expect(b.console).toMatch(/Kernel panic - not syncing: VFS: Unable to mount root fs/);
    expect(b.console.indexOf('Kernel panic')).toBeLessThan(b.console.indexOf('LARCH-TEST-STARTED'));
    // Nothing of the bad tree ran: no trial verdict before the fallback.
    expect(b.console).not.toMatch(/LARCH-BOOT trial-/);
    expectFellBackToV2(b, t);

    const again = await bootUntilReport(t.image, d.join('boot2'), vms, panic);
    console.log(bootTimes('v2 again', again));
    expect(grubBoots(again.console)).toEqual([t.good.title]);
    expect(count(again.console, panic)).toBe(0);
    expectFellBackToV2(again, t);
  }, 90 * MINUTE);
});
