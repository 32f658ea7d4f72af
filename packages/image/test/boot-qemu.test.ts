/**
 * The end product: a Larch deployment boots a real machine. The bootable test OS (Debian
 * bookworm with systemd and ostree's initramfs module, test-fixtures/bootable-os/build.sh,
 * cached by its inputs) is deployed into a disk image and booted under QEMU (TCG) with OVMF. A
 * unit in the OS prints facts on the serial console once systemd has finished starting up, then
 * powers off. Each test prints its boot time and systemd-analyze's view of it.
 *
 *  - v1 deployed by buildImage (Larch's deploy);
 *  - v2 deployed by the real `ostree admin deploy` into a sysroot, the image made from that
 *    sysroot (buildImage's `sysroot`);
 *  - v3 boots, and its required health check fails;
 *  - v3-panic: the kernel panics before init and (panic=5, QEMU's -no-reboot) the machine stops.
 *
 * Runs whenever QEMU and OVMF are installed; skipped only outside CI when they are not (in CI it
 * fails instead). The first OS build takes minutes (debootstrap from the Debian mirror), later
 * runs reuse the cache. The boots run one after another (one file): on 2 cores, parallel TCG
 * machines only slow each other down.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { tmpDir, larchOk, type TmpDir } from '@larch/test-fixtures';
import { setImmutable } from '@larch/sysroot';
import { buildImage, findTool } from '../src/index.js';
import { bootableOs, bootTimes, bootToReport, FAST_KARGS, MINUTE } from './boot-os.js';
import { bootImage, hasQemu, type Vm } from './qemu.js';

const runs = Boolean(process.env.CI) || hasQemu();
const describeBoot = runs ? describe : describe.skip;

function needQemu(): void {
  if (!hasQemu()) throw new Error('qemu-system-x86_64 and OVMF are needed (apt-get install qemu-system-x86 ovmf)');
}

/** The facts every test OS boot must show, whichever tool deployed it. */
function expectDeployedTree(facts: Map<string, string>, o: { ostreeArg: string; rootUuid: string; version: string; marker: string }): void {
  const cmdline = (facts.get('cmdline') ?? '').split(/\s+/);
  expect(cmdline).toContain(o.ostreeArg);
  expect(cmdline).toContain(`root=UUID=${o.rootUuid}`);
  expect(facts.get('version')).toBe(o.version);
  expect(facts.get('usr-writable')).toBe('no');
  expect((facts.get('usr-options') ?? '').split(',')).toContain('ro');
  expect(facts.get('etc-marker')).toBe(o.marker);
  expect(facts.get('ostree-booted')).toBe('yes');
  expect(facts.get('etc-writable')).toBe('yes');
  expect(facts.get('failed-units')).toBe('');
  expect(facts.get('system-state')).toBe('running');
}

describeBoot('a Larch deployment boots under QEMU', () => {
  const vms: Vm[] = [];
  const dirs: TmpDir[] = [];
  afterAll(async () => {
    for (const vm of vms) {
      vm.kill();
      await vm.exited;
    }
    for (const d of dirs) await d.cleanup();
  });

  it('v1 comes up on the deployed tree: ostree= of the default entry, /usr read-only, the merged /etc', async () => {
    needQemu();
    const os = bootableOs('v1');
    const d = await tmpDir('larch-boot-');
    dirs.push(d);
    const marker = randomBytes(8).toString('hex');
    let expectedOstreeArg = '';
    let defaultEntry = '';
    const t0 = Date.now();
    const built = await buildImage({
      repo: os.repo,
      os: 'testos',
      ref: os.commit,
      out: d.join('disk.img'),
      kargs: FAST_KARGS,
      grubTimeout: 0,
      workDir: d.path,
      customize: async ({ sysroot, deploymentDir }) => {
        // A file only in the deployment's merged /etc (not in the commit's /usr/etc).
        writeFileSync(join(deploymentDir, 'etc/larch-test-marker'), `${marker}\n`);
        // The default deployment as `larch admin status` reports it, and its BLS entry.
        const status = JSON.parse((await larchOk(['admin', 'status', `--sysroot=${sysroot}`, '--json'])).stdout) as {
          bootversion: number;
          deployments: { index: number; stateroot: string; bootcsum: string; bootserial: number }[];
        };
        const def = status.deployments.find((x) => x.index === 0)!;
        expectedOstreeArg = `ostree=/ostree/boot.${status.bootversion}/${def.stateroot}/${def.bootcsum}/${def.bootserial}`;
        const dir = join(sysroot, 'boot/loader/entries');
        const entries = readdirSync(dir).map((n) => readFileSync(join(dir, n), 'utf8'));
        defaultEntry = entries.filter((e) => e.split(/\s+/).includes(expectedOstreeArg)).join('\n---\n');
      },
    });
    const imageSeconds = (Date.now() - t0) / 1000;
    expect(defaultEntry).toMatch(/^title /); // exactly one entry (no separator) has that ostree=
    expect(defaultEntry).not.toContain('---');

    const b = await bootToReport(built.out, d.path, vms);
    console.log(
      `bootable OS: ${os.seconds.toFixed(1)} s (${os.dir}); image build: ${imageSeconds.toFixed(1)} s ` +
        `(${JSON.stringify(built.timings)}), ${built.size} bytes\n${bootTimes('v1', b)}`,
    );
    expectDeployedTree(b.facts, { ostreeArg: expectedOstreeArg, rootUuid: built.rootUuid, version: 'v1', marker });
    expect(b.facts.get('message')).toBe('larch test OS: the first release');
    expect(b.facts.get('etc-conf')).toBe('greeting=hello');
    expect(b.facts.get('health-required')).toBe('10-ostree-booted=0');
    expect(b.exit).toBe(0);
  }, 60 * MINUTE);

  it('v2 deployed by the real ostree into a sysroot: the image of that sysroot boots with the same checks', async () => {
    needQemu();
    if (!findTool('ostree')) throw new Error('ostree is needed (apt-get install ostree)');
    const os = bootableOs('v2');
    const d = await tmpDir('larch-boot-');
    dirs.push(d);
    const sysroot = d.join('sysroot');
    const rootUuid = randomUUID();
    const ostree = (args: string[]): string => {
      const r = spawnSync(findTool('ostree')!, args, { encoding: 'utf8', maxBuffer: 16 << 20 });
      if (r.status !== 0) throw new Error(`ostree ${args.join(' ')}: ${r.stderr}`);
      return r.stdout;
    };
    const t0 = Date.now();
    mkdirSync(sysroot);
    ostree(['admin', 'init-fs', sysroot]);
    ostree(['admin', 'os-init', `--sysroot=${sysroot}`, 'testos']);
    ostree(['pull-local', `--repo=${sysroot}/ostree/repo`, os.repo, os.commit]);
    ostree([
      'admin', 'deploy', `--sysroot=${sysroot}`, '--os=testos',
      `--karg=root=UUID=${rootUuid}`, '--karg=rw', '--karg=console=ttyS0', ...FAST_KARGS.map((k) => `--karg=${k}`),
      os.commit,
    ]);
    const deployDir = join(sysroot, 'ostree/deploy/testos/deploy', `${os.commit}.0`);
    const marker = randomBytes(8).toString('hex');
    writeFileSync(join(deployDir, 'etc/larch-test-marker'), `${marker}\n`);
    const entries = readdirSync(join(sysroot, 'boot/loader/entries'));
    expect(entries).toEqual(['ostree-1-testos.conf']);
    const entry = readFileSync(join(sysroot, 'boot/loader/entries', entries[0]), 'utf8');
    const ostreeArg = /(?:^| )(ostree=\S+)/m.exec(entry)![1];
    const deploySeconds = (Date.now() - t0) / 1000;

    const t1 = Date.now();
    const built = await buildImage({ sysroot, out: d.join('disk.img'), grubTimeout: 0, workDir: d.path });
    const imageSeconds = (Date.now() - t1) / 1000;
    expect(built.rootUuid).toBe(rootUuid);
    expect(built.cmdline.split(' ')).toContain(ostreeArg);
    // The sysroot is left as ostree made it.
    expect(readdirSync(join(sysroot, 'boot/loader/entries'))).toEqual(entries);
    setImmutable(deployDir, false);

    const b = await bootToReport(built.out, d.path, vms);
    console.log(`ostree deploy: ${deploySeconds.toFixed(1)} s; image build: ${imageSeconds.toFixed(1)} s (${JSON.stringify(built.timings)})\n${bootTimes('v2 (ostree-deployed)', b)}`);
    expectDeployedTree(b.facts, { ostreeArg, rootUuid, version: 'v2', marker });
    expect(b.facts.get('message')).toBe('larch test OS: the second release');
    expect((b.facts.get('share-files') ?? '').split(' ')).toEqual(['added-in-v2', 'message']);
    expect(b.facts.get('etc-conf')).toBe('greeting=hello-v2');
    expect(b.exit).toBe(0);
  }, 60 * MINUTE);

  it('v3 boots, but its required health check fails', async () => {
    needQemu();
    const os = bootableOs('v3');
    const d = await tmpDir('larch-boot-');
    dirs.push(d);
    const built = await buildImage({ repo: os.repo, os: 'testos', ref: os.commit, out: d.join('disk.img'), kargs: FAST_KARGS, grubTimeout: 0, workDir: d.path });
    const b = await bootToReport(built.out, d.path, vms);
    console.log(bootTimes('v3', b));
    expect(b.facts.get('version')).toBe('v3');
    expect(b.facts.get('system-state')).toBe('running');
    expect(b.facts.get('health-required')).toBe('10-ostree-booted=0 50-v3-broken=1');
    expect(b.exit).toBe(0);
  }, 60 * MINUTE);

  it('v3-panic: the kernel panics before init and the machine reboots (QEMU stops)', async () => {
    needQemu();
    const os = bootableOs('v3-panic');
    const d = await tmpDir('larch-boot-');
    dirs.push(d);
    const built = await buildImage({ repo: os.repo, os: 'testos', ref: os.commit, out: d.join('disk.img'), kargs: FAST_KARGS, grubTimeout: 0, workDir: d.path });
    const vm = bootImage({ image: built.out, dir: d.path });
    vms.push(vm);
    const panicMs = await vm.waitFor(/Kernel panic - not syncing/, 30 * MINUTE);
    // panic=5 reboots; with -no-reboot QEMU exits instead of starting again.
    const exit = await vm.exited;
    const text = vm.console();
    console.log(`v3-panic: power-on to panic ${(panicMs / 1000).toFixed(1)} s; ${/Kernel panic - not syncing[^\r\n]*/.exec(text)![0]}`);
    expect(text).toMatch(/Kernel panic - not syncing: VFS: Unable to mount root fs/);
    expect(text).not.toContain('LARCH-TEST-STARTED');
    expect(exit).toBe(0);
  }, 60 * MINUTE);
});
