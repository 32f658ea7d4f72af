/**
 * Helpers of the boot tests: the bootable test OS (test-fixtures/bootable-os/build.sh, cached by
 * its inputs), the kernel arguments of a fast boot, and booting an image until the OS's report
 * (or a kernel panic) appears on the serial console.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bootImage, type Vm } from './qemu.js';

export const ROOT = resolve(fileURLToPath(new URL('.', import.meta.url)), '../../..');
const BUILD_SH = join(ROOT, 'test-fixtures/bootable-os/build.sh');
export const MINUTE = 60_000;

/**
 * Kernel arguments of the test images: little console output (the serial console stays usable:
 * errors, the panic message and the getty still reach it), no speculation mitigations (costly
 * under emulation), and a reboot 5 s after a panic (with QEMU's -no-reboot, QEMU then exits).
 * `no_timer_check`: the kernel's early check that the IO-APIC timer ticks fails when the emulated
 * CPU is starved on a loaded host, and panics ("IO-APIC + timer doesn't work!").
 */
export const FAST_KARGS = ['quiet', 'loglevel=3', 'mitigations=off', 'panic=5', 'no_timer_check'];

export interface BootableOs {
  /** The cache directory (repo/ is the repository holding every version built). */
  dir: string;
  repo: string;
  /** The version's commit checksum. */
  commit: string;
  seconds: number;
}

/**
 * Build (or find in the cache) a version of the bootable OS; `extra`: a directory overlaid on the
 * tree (build.sh's LARCH_TEST_OS_EXTRA).
 */
export function bootableOs(version: string, extra?: string): BootableOs {
  const t0 = Date.now();
  const env = { ...process.env };
  if (extra !== undefined) env.LARCH_TEST_OS_EXTRA = extra;
  else delete env.LARCH_TEST_OS_EXTRA;
  const r = spawnSync('bash', [BUILD_SH, version], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 16 << 20, env });
  if (r.status !== 0) throw new Error(`build.sh ${version} failed (${r.status ?? r.signal}): ${r.stderr.trim().split('\n').slice(-10).join('\n')}`);
  const lines = r.stdout.trim().split('\n');
  const dir = lines[lines.length - 1];
  const commit = readFileSync(join(dir, 'commits', version), 'utf8').split(' ')[0];
  return { dir, repo: join(dir, 'repo'), commit, seconds: (Date.now() - t0) / 1000 };
}

/** `key: value` lines between the report markers (a repeated key keeps its last value). */
export function report(consoleText: string): Map<string, string> {
  const m = /LARCH-TEST-BEGIN\r?\n([\s\S]*?)LARCH-TEST-END/.exec(consoleText);
  if (!m) throw new Error('no report on the console');
  const facts = new Map<string, string>();
  for (const line of m[1].split(/\r?\n/)) {
    const i = line.indexOf(': ');
    if (i > 0) facts.set(line.slice(0, i), line.slice(i + 2).trim());
  }
  return facts;
}

/** The report's `blame:` and `chain:` lines (systemd-analyze), for the test log. */
export function analysis(consoleText: string): string {
  return consoleText.split(/\r?\n/).filter((l) => /^(blame|chain): /.test(l)).join('\n');
}

/** What the console shows when a boot cannot reach multi-user. */
export const BOOT_FAILED = /Entering emergency mode|Kernel panic - not syncing|You are in emergency mode/;

export interface BootReport {
  facts: Map<string, string>;
  /** Milliseconds from QEMU's start to the end of start-up (the OS's LARCH-TEST-STARTED line). */
  multiUserMs: number;
  /** Milliseconds from QEMU's start to the report's end. */
  reportMs: number;
  /** Milliseconds from QEMU's start to its exit (after the report and the power-off). */
  offMs: number;
  exit: number | null;
  console: string;
}

/** Boot the image until the OS has reported and powered off. */
export async function bootToReport(image: string, dir: string, vms: Vm[]): Promise<BootReport> {
  const vm = bootImage({ image, dir });
  vms.push(vm);
  // Generous backstops: TCG on a shared 2-core machine is slow; the waits end on the markers.
  const multiUserMs = await vm.waitFor(/LARCH-TEST-STARTED /, 40 * MINUTE, BOOT_FAILED);
  const reportMs = await vm.waitFor(/LARCH-TEST-END/, 45 * MINUTE);
  const exit = await Promise.race([vm.exited, vm.waitFor(/reboot: Power down/, 50 * MINUTE).then(() => vm.exited)]);
  const offMs = Date.now() - vm.startedAt;
  const text = vm.console();
  return { facts: report(text), multiUserMs, reportMs, offMs, exit, console: text };
}

/** One line for the test log: where the boot's time went. */
export function bootTimes(label: string, b: BootReport): string {
  return (
    `${label}: power-on to multi-user ${(b.multiUserMs / 1000).toFixed(1)} s, to the report's end ${(b.reportMs / 1000).toFixed(1)} s, to power-off ${(b.offMs / 1000).toFixed(1)} s; ` +
    `systemd: ${b.facts.get('startup')}\n${analysis(b.console)}`
  );
}
