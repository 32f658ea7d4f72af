/**
 * Bootloader backends, as OSTree has them, chosen by the repo config `[sysroot] bootloader`
 * (`auto`, `none`, `grub2`, `syslinux`, `uboot`). Boot Loader Spec entries are always written;
 * a backend additionally writes its own file into the new `boot/loader.B` directory before the
 * `boot/loader` symlink swap, so it flips atomically with the entries:
 *
 * - syslinux: `loader.B/syslinux.cfg`, keeping every non-OSTree `LABEL` of the current
 *   `boot/syslinux/syslinux.cfg` (a label whose KERNEL starts `/ostree/` or `/boot/ostree/` is
 *   OSTree's and regenerated), dropping `DEFAULT` lines and writing `DEFAULT <first title>` when
 *   there was none or it named an OSTree entry.
 * - uboot: `loader.B/uEnv.txt` with `kernel_image`, `ramdisk_image`, `fdt_file`/`fdtdir`,
 *   `bootargs` (suffix 2, 3… for later entries), the default deployment's
 *   `usr/lib/ostree-boot/uEnv.txt` right after the default entry.
 * - grub2: runs the generator as OSTree does: `$OSTREE_GRUB2_EXEC` or `/usr/sbin/grub-mkconfig`,
 *   with `-o SYSROOT/boot/loader.B/grub.cfg` and `_OSTREE_GRUB2_BOOTVERSION=B` in the environment.
 *
 * - larch-grub (Larch's own, not OSTree's): a GRUB menu generated from the entries, with the trial
 *   boot in grubenv kept in step (bootloader-larch-grub.ts).
 *
 * `auto` probes, in order: syslinux (`boot/syslinux/syslinux.cfg` is a symlink), larch-grub
 * (`boot/loader/grub.cfg` starts with larch's generator line), grub2
 * (`boot/grub2/grub.cfg` or `boot/grub/grub.cfg` exists, following symlinks), uboot
 * (`boot/loader/uEnv.txt` exists); none → BLS only. EFI variables are not probed: on an EFI-only
 * system set `sysroot.bootloader` explicitly.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { BootConfig } from './bootconfig.js';
import { hasLarchGrubMenu, larchGrub } from './bootloader-larch-grub.js';
import { sysrootError } from './errors.js';
import { fsyncPath, lstatOrNull, writeFileAtomic } from './fsutil.js';

export type BootloaderType = 'auto' | 'none' | 'grub2' | 'syslinux' | 'uboot' | 'larch-grub';

export interface BootloaderContext {
  sysroot: string;
  /** The bootversion being written (the new `loader.B`). */
  bootversion: 0 | 1;
  /** Entries in list order (index 0 first). */
  entries: BootConfig[];
  /** Deployment root of the first (default) entry, if any. */
  defaultDeploymentDir: string | null;
}

export interface Bootloader {
  readonly name: 'syslinux' | 'uboot' | 'grub2' | 'larch-grub';
  writeConfig(ctx: BootloaderContext): void;
}

/** OSTree's `_ostree_sysroot_join_lines`: `\n` after each line; empty lines after the first empty one (and a leading one) dropped. */
export function joinLines(lines: string[]): string {
  let out = '';
  let prevEmpty = false;
  lines.forEach((l, i) => {
    if (l === '') {
      if (prevEmpty || i === 0) return;
      prevEmpty = true;
    }
    out += `${l}\n`;
  });
  return out;
}

function need(c: BootConfig, key: string): string {
  const v = c.get(key);
  if (v === undefined) throw sysrootError('BAD_CONFIG', 'bootloader', `No "${key}" key in bootloader config`);
  return v;
}

export const syslinux: Bootloader = {
  name: 'syslinux',
  writeConfig(ctx) {
    const cfg = path.join(ctx.sysroot, 'boot/syslinux/syslinux.cfg');
    let text: string;
    try {
      text = readFileSync(cfg, 'utf8');
    } catch (e) {
      throw sysrootError('IO_ERROR', 'bootloader', `Bootloader write config: openat(boot/syslinux/syslinux.cfg): ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'No such file or directory' : (e as Error).message}`, {}, e);
    }
    const lines = text.split('\n');
    const out: string[] = [];
    let tmp: string[] = [];
    let kernelArg: string | null = null;
    let parsingLabel = false;
    let sawDefault = false;
    let regenerateDefault = false;
    for (let i = 0; i <= lines.length; i++) {
      const line = i < lines.length ? lines[i] : null;
      if (parsingLabel && (line === null || !line.startsWith('\t'))) {
        parsingLabel = false;
        if (kernelArg === null) throw sysrootError('BAD_CONFIG', 'bootloader', 'Bootloader write config: No KERNEL argument found after LABEL');
        if (!kernelArg.startsWith('/ostree/') && !kernelArg.startsWith('/boot/ostree/')) out.push(...tmp);
        tmp = [];
      }
      if (line === null) break;
      if (!parsingLabel && line.startsWith('LABEL ')) {
        parsingLabel = true;
        tmp = [];
      } else if (parsingLabel && line.startsWith('\tKERNEL ')) {
        kernelArg = line.slice('\tKERNEL '.length);
      } else if (!parsingLabel && line.startsWith('DEFAULT ')) {
        sawDefault = true;
        if (line.includes('(ostree')) regenerateDefault = true;
        continue;
      }
      if (parsingLabel) tmp.push(line);
      else out.push(line);
    }
    if (!sawDefault) regenerateDefault = true;
    ctx.entries.forEach((c, i) => {
      const title = c.get('title') ?? '(Untitled)';
      if (regenerateDefault && i === 0) out.push(`DEFAULT ${title}`);
      out.push(`LABEL ${title}`);
      out.push(`\tKERNEL /boot${need(c, 'linux')}`);
      const initrd = c.get('initrd');
      if (initrd !== undefined) out.push(`\tINITRD /boot${initrd}`);
      const dt = c.get('devicetree');
      if (dt !== undefined) out.push(`\tDEVICETREE /boot${dt}`);
      const opts = c.get('options');
      if (opts !== undefined) out.push(`\tAPPEND ${opts}`);
    });
    writeFileAtomic(path.join(ctx.sysroot, 'boot', `loader.${ctx.bootversion}`, 'syslinux.cfg'), joinLines(out));
  },
};

export const uboot: Bootloader = {
  name: 'uboot',
  writeConfig(ctx) {
    const out: string[] = [];
    ctx.entries.forEach((c, i) => {
      const sfx = i === 0 ? '' : String(i + 1);
      out.push(`kernel_image${sfx}=/boot${need(c, 'linux')}`);
      const initrd = c.get('initrd');
      if (initrd !== undefined) out.push(`ramdisk_image${sfx}=/boot${initrd}`);
      const dt = c.get('devicetree');
      if (dt !== undefined) out.push(`fdt_file${sfx}=/boot${dt}`);
      const fdtdir = c.get('fdtdir');
      if (fdtdir !== undefined) out.push(`fdtdir${sfx}=/boot${fdtdir}`);
      const opts = c.get('options');
      if (opts !== undefined) out.push(`bootargs${sfx}=${opts}`);
      // The default deployment's own uEnv.txt follows its entry.
      if (i === 0 && ctx.defaultDeploymentDir) {
        try {
          out.push(readFileSync(path.join(ctx.defaultDeploymentDir, 'usr/lib/ostree-boot/uEnv.txt'), 'utf8'));
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
        }
      }
    });
    writeFileAtomic(path.join(ctx.sysroot, 'boot', `loader.${ctx.bootversion}`, 'uEnv.txt'), joinLines(out));
  },
};

/** The grub-mkconfig path of Debian's ostree build. */
export const GRUB2_MKCONFIG = '/usr/sbin/grub-mkconfig';

export const grub2: Bootloader = {
  name: 'grub2',
  writeConfig(ctx) {
    const exec = process.env.OSTREE_GRUB2_EXEC ?? GRUB2_MKCONFIG;
    const out = path.join(ctx.sysroot, 'boot', `loader.${ctx.bootversion}`, 'grub.cfg');
    const r = spawnSync(exec, ['-o', out], {
      env: { ...process.env, _OSTREE_GRUB2_BOOTVERSION: String(ctx.bootversion) },
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    if (r.error) throw sysrootError('IO_ERROR', 'bootloader', `Bootloader write config: running ${exec}: ${r.error.message}`, { exec }, r.error);
    if (r.status !== 0) throw sysrootError('IO_ERROR', 'bootloader', `Bootloader write config: ${exec} exited with status ${r.status ?? r.signal}`, { exec });
    fsyncPath(out);
  },
};

/** What the GRUB 2 helper script passes to `admin instutil grub2-generate` in its environment. */
export interface Grub2GenerateEnv {
  /** `GRUB2_BOOT_DEVICE_ID`: the suffix of each entry's id (`ostree-I-ID`). */
  bootDeviceId: string;
  /** `GRUB2_PREPARE_ROOT_CACHE`: GRUB commands that find the root, put in every entry. */
  prepareRootCache: string;
  /** `_OSTREE_GRUB2_IS_EFI` set (no difference on Debian's build: both use `linux`). */
  efi?: boolean;
}

/** GLib's g_shell_quote: single quotes, a `'` as `'\''`. */
function shellQuote(s: string): string {
  return `'${s.replace(/'/g, "'\\''")}'`;
}

/**
 * The GRUB 2 menu entries OSTree's grub2 helper (`ostree admin instutil grub2-generate`) writes
 * for BLS entries in boot order, one `menuentry` each. Throws BAD_CONFIG for an entry without
 * `linux`. Pure.
 */
export function grub2MenuEntries(entries: BootConfig[], env: Grub2GenerateEnv): string {
  let out = '';
  entries.forEach((c, i) => {
    const title = c.get('title') ?? '(Untitled)';
    out += `menuentry ${shellQuote(title)} --class gnu-linux --class gnu --class os --unrestricted ${shellQuote(`ostree-${i}-${env.bootDeviceId}`)} {\n`;
    out += 'load_video\nset gfxpayload=keep\ninsmod gzio\n';
    out += `${env.prepareRootCache}\n`;
    const options = c.get('options');
    out += `linux ${need(c, 'linux')}${options !== undefined ? ` ${options}` : ''}\n`;
    const initrd = c.get('initrd');
    if (initrd !== undefined) out += `initrd ${initrd}\n`;
    const dt = c.get('devicetree');
    if (dt !== undefined) out += `devicetree ${dt}\n`;
    out += '}\n';
  });
  return out;
}

/** The backend for `type` (after `auto` probing), or null for BLS only. */
export function selectBootloader(sysroot: string, type: string): Bootloader | null {
  switch (type) {
    case 'none':
      return null;
    case 'syslinux':
      return syslinux;
    case 'uboot':
      return uboot;
    case 'grub2':
      return grub2;
    case 'larch-grub':
      return larchGrub;
    case 'auto': {
      if (lstatOrNull(path.join(sysroot, 'boot/syslinux/syslinux.cfg'))?.isSymbolicLink()) return syslinux;
      // Larch's own: a menu the larch-grub backend wrote (the real OSTree does not probe this)
      if (hasLarchGrubMenu(sysroot)) return larchGrub;
      // these two follow symlinks, as OSTree's probes do (a dangling grub.cfg link is not grub2)
      if (existsSync(path.join(sysroot, 'boot/grub2/grub.cfg')) || existsSync(path.join(sysroot, 'boot/grub/grub.cfg'))) return grub2;
      if (existsSync(path.join(sysroot, 'boot/loader/uEnv.txt'))) return uboot;
      return null;
    }
    default:
      throw sysrootError('BAD_CONFIG', 'bootloader', `Invalid bootloader type '${type}' in repository config sysroot.bootloader`, { type });
  }
}
