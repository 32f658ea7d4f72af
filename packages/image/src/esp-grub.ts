/**
 * The EFI system partition: a FAT image made with `mkfs.vfat -C` on a file and filled with
 * mtools, holding one standalone GRUB EFI binary at the removable-media path
 * (/EFI/BOOT/BOOTX64.EFI), so firmware boots it without any NVRAM boot entry. The binary is built
 * with `grub-mkstandalone`: GRUB's modules and our grub.cfg are packed into its memdisk, which it
 * reads at start-up (its prefix is the memdisk's /boot/grub).
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runTool } from './tools.js';

/** GRUB's x86_64 EFI platform files (Debian package grub-efi-amd64-bin). */
export const GRUB_EFI_DIR = '/usr/lib/grub/x86_64-efi';

export interface EspOptions {
  /** Work directory (files are created inside it). */
  dir: string;
  /** Size of the partition in bytes (a multiple of 1 MiB). */
  size: number;
  grubCfg: string;
  /** FAT volume id, 8 hex digits. */
  volumeId: string;
  tools: { 'mkfs.vfat': string; mmd: string; mcopy: string; 'grub-mkstandalone': string };
  signal?: AbortSignal;
}

/** Build the GRUB EFI binary and the FAT image; returns the image's path. */
export async function buildEsp(opts: EspOptions): Promise<string> {
  const sig = opts.signal ? { signal: opts.signal } : {};
  const cfg = join(opts.dir, 'grub.cfg');
  await writeFile(cfg, opts.grubCfg);
  const efi = join(opts.dir, 'BOOTX64.EFI');
  await runTool(opts.tools['grub-mkstandalone'], [
    '--format=x86_64-efi',
    `--directory=${GRUB_EFI_DIR}`,
    `--output=${efi}`,
    '--modules=part_gpt ext2 fat search search_fs_uuid linux gzio normal configfile',
    '--locales=',
    '--fonts=',
    '--themes=',
    `boot/grub/grub.cfg=${cfg}`,
  ], sig);
  const img = join(opts.dir, 'esp.img');
  await runTool(opts.tools['mkfs.vfat'], ['-C', '-n', 'EFI', '-i', opts.volumeId, img, String(opts.size / 1024)], sig);
  // mtools checks the FAT's geometry against a floppy's unless told not to.
  const env = { MTOOLS_SKIP_CHECK: '1' };
  await runTool(opts.tools.mmd, ['-i', img, '::/EFI', '::/EFI/BOOT'], { ...sig, env });
  await runTool(opts.tools.mcopy, ['-i', img, efi, '::/EFI/BOOT/BOOTX64.EFI'], { ...sig, env });
  return img;
}
