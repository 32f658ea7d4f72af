/**
 * The end product: a Larch deployment boots a real machine. The bootable test OS (Debian
 * bookworm with systemd and ostree's initramfs module, test-fixtures/bootable-os/build.sh,
 * cached by its inputs) is deployed into a disk image by buildImage and booted under QEMU (TCG)
 * with OVMF. A unit in the OS prints facts on the serial console once systemd has finished
 * starting up, then powers off.
 *
 * Runs whenever QEMU and OVMF are installed; skipped only outside CI when they are not (in CI it
 * fails instead). The first OS build takes minutes (debootstrap from the Debian mirror), later
 * runs reuse the cache.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { tmpDir, larchOk, type TmpDir } from '@larch/test-fixtures';
import { buildImage } from '../src/index.js';
import { bootImage, hasQemu, type Vm } from './qemu.js';

const ROOT = resolve(fileURLToPath(new URL('.', import.meta.url)), '../../..');
const BUILD_SH = join(ROOT, 'test-fixtures/bootable-os/build.sh');
const REF = 'larch/testos/x86_64';
const MINUTE = 60_000;

const runs = Boolean(process.env.CI) || hasQemu();
const describeBoot = runs ? describe : describe.skip;

/** Build (or find in the cache) the bootable OS; returns its cache directory. */
function bootableOs(version: string): { dir: string; seconds: number } {
  const t0 = Date.now();
  const r = spawnSync('bash', [BUILD_SH, version], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 16 << 20 });
  if (r.status !== 0) throw new Error(`build.sh ${version} failed (${r.status ?? r.signal}): ${r.stderr.trim().split('\n').slice(-10).join('\n')}`);
  const lines = r.stdout.trim().split('\n');
  return { dir: lines[lines.length - 1], seconds: (Date.now() - t0) / 1000 };
}

/** `key: value` lines between the report markers. */
function report(consoleText: string): Map<string, string> {
  const m = /LARCH-TEST-BEGIN\r?\n([\s\S]*?)LARCH-TEST-END/.exec(consoleText);
  if (!m) throw new Error('no report on the console');
  const facts = new Map<string, string>();
  for (const line of m[1].split(/\r?\n/)) {
    const i = line.indexOf(': ');
    if (i > 0) facts.set(line.slice(0, i), line.slice(i + 2).trim());
  }
  return facts;
}

describeBoot('a Larch deployment boots under QEMU', () => {
  let vm: Vm | undefined;
  let d: TmpDir | undefined;
  afterAll(async () => {
    vm?.kill();
    if (vm) await vm.exited;
    await d?.cleanup();
  });

  it('comes up on the deployed tree: ostree= of the default entry, /usr read-only, the merged /etc', async () => {
    if (!hasQemu()) throw new Error('qemu-system-x86_64 and OVMF are needed (apt-get install qemu-system-x86 ovmf)');
    const os = bootableOs('v1');
    d = await tmpDir('larch-boot-');
    const dir = d;
    const marker = randomBytes(8).toString('hex');
    let expectedOstreeArg = '';
    let defaultEntry = '';
    const t0 = Date.now();
    const built = await buildImage({
      repo: join(os.dir, 'repo'),
      os: 'testos',
      ref: REF,
      out: dir.join('disk.img'),
      kargs: ['systemd.show_status=1'],
      workDir: dir.path,
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

    vm = bootImage({ image: built.out, dir: dir.path });
    // Generous backstops: TCG on a shared 2-core machine is slow; the waits end on the markers.
    const multiUser = await vm.waitFor(/system-state: /, 40 * MINUTE);
    await vm.waitFor(/LARCH-TEST-END/, 5 * MINUTE);
    const exit = await Promise.race([vm.exited, vm.waitFor(/reboot: Power down/, 10 * MINUTE).then(() => vm!.exited)]);
    const text = vm.console();
    const facts = report(text);
    console.log(
      `bootable OS: ${os.seconds.toFixed(1)} s (${os.dir}); image build: ${imageSeconds.toFixed(1)} s ` +
        `(${JSON.stringify(built.timings)}), ${built.size} bytes; power-on to multi-user: ${(multiUser / 1000).toFixed(1)} s; ` +
        `systemd: ${facts.get('startup')}`,
    );

    const cmdline = (facts.get('cmdline') ?? '').split(/\s+/);
    expect(cmdline).toContain(expectedOstreeArg);
    expect(cmdline).toContain(`root=UUID=${built.rootUuid}`);
    expect(facts.get('version')).toBe('v1');
    expect(facts.get('usr-writable')).toBe('no');
    expect((facts.get('usr-options') ?? '').split(',')).toContain('ro');
    expect(facts.get('etc-marker')).toBe(marker);
    expect(facts.get('ostree-booted')).toBe('yes');
    expect(facts.get('etc-writable')).toBe('yes');
    expect(facts.get('failed-units')).toBe('');
    expect(facts.get('system-state')).toBe('running');
    expect(exit).toBe(0);
  }, 60 * MINUTE);
});
