/**
 * Boots a disk image under QEMU (TCG; /dev/kvm is not assumed) with OVMF, the serial console
 * written to a file, and waits for text to appear there or for QEMU to exit. Waits are for
 * conditions (polling the console file), with only a generous backstop deadline.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { findTool } from '../src/tools.js';

export const OVMF_CODE = '/usr/share/OVMF/OVMF_CODE.fd';
export const OVMF_VARS = '/usr/share/OVMF/OVMF_VARS.fd';

/** Whether QEMU and OVMF are installed. */
export function hasQemu(): boolean {
  return findTool('qemu-system-x86_64') !== null && existsSync(OVMF_CODE) && existsSync(OVMF_VARS);
}

export interface Vm {
  child: ChildProcess;
  consolePath: string;
  startedAt: number;
  /** Resolves with the exit status once QEMU has exited. */
  exited: Promise<number | null>;
  console(): string;
  /**
   * Resolve with the elapsed ms when `re` matches the console (from character `from` on, default
   * the start); reject if QEMU exits first, if `failOn` matches first, or after `backstopMs`.
   */
  waitFor(re: RegExp, backstopMs: number, failOn?: RegExp, from?: number): Promise<number>;
  kill(): void;
}

export interface BootOptions {
  image: string;
  /** Where the firmware variables and the console log go. */
  dir: string;
  memoryMiB?: number;
  /** Virtual CPUs (default 2, with one host thread each: multi-threaded TCG). */
  smp?: number;
  /** QEMU CPU model (default max: the emulated CPU offers everything TCG can do). */
  cpu?: string;
  /**
   * A reboot resets the machine, which boots again (default false: with -no-reboot QEMU exits
   * instead, so a panic with panic=N ends the run). A power-off always ends it.
   */
  reboot?: boolean;
  /**
   * QEMU `-netdev` options of one virtio NIC (e.g. `user,id=n0,restrict=on,guestfwd=…`; the id
   * must be `n0`); default none: no network at all.
   */
  netdev?: string;
  /**
   * Named blobs the guest reads from QEMU's firmware configuration device
   * (`/sys/firmware/qemu_fw_cfg/by_name/NAME/raw` once the qemu_fw_cfg module is loaded); names
   * start with `opt/`. For per-run secrets that must not be part of the image.
   */
  fwCfg?: Record<string, string>;
  /** QEMU's -name (the process title): tells this test's QEMU processes from others. */
  name?: string;
}

export function bootImage(opts: BootOptions): Vm {
  const smp = opts.smp ?? 2;
  const vars = join(opts.dir, 'OVMF_VARS.fd');
  copyFileSync(OVMF_VARS, vars);
  const consolePath = join(opts.dir, 'console.log');
  const child = spawn(findTool('qemu-system-x86_64')!, [
    '-accel', smp > 1 ? 'tcg,thread=multi' : 'tcg',
    '-machine', 'q35',
    '-cpu', opts.cpu ?? 'max',
    '-m', String(opts.memoryMiB ?? 1024),
    '-smp', String(smp),
    // No default devices: the firmware would first try the empty CD-ROM drive q35 comes with.
    '-nodefaults',
    '-display', 'none',
    '-monitor', 'none',
    '-serial', `file:${consolePath}`,
    ...(opts.netdev ? ['-netdev', opts.netdev, '-device', 'virtio-net-pci,netdev=n0'] : ['-nic', 'none']),
    ...(opts.reboot ? [] : ['-no-reboot']),
    ...Object.entries(opts.fwCfg ?? {}).flatMap(([name, value]) => ['-fw_cfg', `name=${name},string=${value}`]),
    ...(opts.name ? ['-name', `${opts.name},process=${opts.name}`] : []),
    '-drive', `if=pflash,format=raw,unit=0,readonly=on,file=${OVMF_CODE}`,
    '-drive', `if=pflash,format=raw,unit=1,file=${vars}`,
    '-drive', `if=virtio,format=raw,file=${opts.image}`,
  ], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
  let done = false;
  const exited = new Promise<number | null>((res) => child.on('exit', (code) => {
    done = true;
    res(code);
  }));
  const startedAt = Date.now();
  const readConsole = (): string => (existsSync(consolePath) ? readFileSync(consolePath, 'latin1') : '');
  return {
    child,
    consolePath,
    startedAt,
    exited,
    console: readConsole,
    waitFor(re, backstopMs, failOn, from = 0) {
      return new Promise((res, rej) => {
        const tick = (): void => {
          const text = readConsole().slice(from);
          if (re.test(text)) return res(Date.now() - startedAt);
          if (failOn?.test(text)) return rej(new Error(`${failOn} appeared on the console before ${re}\n${text.slice(-3000)}`));
          if (done) return rej(new Error(`QEMU exited before ${re} appeared on the console (${stderr.trim()})\n${readConsole().slice(-3000)}`));
          if (Date.now() - startedAt > backstopMs) return rej(new Error(`${re} did not appear on the console within ${backstopMs} ms\n${readConsole().slice(-3000)}`));
          setTimeout(tick, 500);
        };
        tick();
      });
    },
    kill() {
      if (!done) child.kill('SIGKILL');
    },
  };
}
