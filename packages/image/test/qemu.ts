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
  /** Resolve with the elapsed ms when `re` matches the console, reject if QEMU exits first or after `backstopMs`. */
  waitFor(re: RegExp, backstopMs: number): Promise<number>;
  kill(): void;
}

export function bootImage(opts: { image: string; dir: string; memoryMiB?: number }): Vm {
  const vars = join(opts.dir, 'OVMF_VARS.fd');
  copyFileSync(OVMF_VARS, vars);
  const consolePath = join(opts.dir, 'console.log');
  const child = spawn(findTool('qemu-system-x86_64')!, [
    '-accel', 'tcg',
    '-machine', 'q35',
    '-m', String(opts.memoryMiB ?? 1024),
    '-smp', '1',
    '-display', 'none',
    '-monitor', 'none',
    '-serial', `file:${consolePath}`,
    '-nic', 'none',
    '-no-reboot',
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
    waitFor(re, backstopMs) {
      return new Promise((res, rej) => {
        const tick = (): void => {
          if (re.test(readConsole())) return res(Date.now() - startedAt);
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
