/**
 * The disk image itself: a GPT (written by sgdisk into a sparse file) and the partition images
 * copied in with `dd conv=notrunc,sparse`. No loop devices, no mounts: every step works on plain
 * files. Partitions start on 1 MiB boundaries; the last MiB is left for the backup GPT.
 */
import { randomUUID } from 'node:crypto';
import { truncate, writeFile } from 'node:fs/promises';
import { MiB } from './size.js';
import { runTool } from './tools.js';

const SECTOR = 512;
/** GPT type GUIDs: EFI System, Linux filesystem data. */
export const GPT_TYPE_ESP = 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B';
export const GPT_TYPE_LINUX = '0FC63DAF-8483-4772-8E79-3D69D8477DE4';

export interface GptPartition {
  /** Image file to copy in (exactly `size` bytes). */
  file: string;
  /** Offset on the disk in bytes (a multiple of 1 MiB). */
  offset: number;
  size: number;
  typeGuid: string;
  name: string;
  /** Unique partition GUID (random by default). */
  guid?: string;
}

export interface GptDiskOptions {
  out: string;
  /** Whole disk size in bytes (a multiple of 1 MiB, with room for the backup GPT after the last partition). */
  size: number;
  partitions: GptPartition[];
  diskGuid?: string;
  tools: { sgdisk: string; dd: string };
  signal?: AbortSignal;
}

/** Write a GPT disk image to `out` (created or truncated), the partitions copied in. */
export async function writeGptDisk(opts: GptDiskOptions): Promise<void> {
  await writeFile(opts.out, '');
  await truncate(opts.out, opts.size);
  const args = ['--clear', `--disk-guid=${opts.diskGuid ?? randomUUID()}`];
  opts.partitions.forEach((p, i) => {
    const n = i + 1;
    const first = p.offset / SECTOR;
    const last = (p.offset + p.size) / SECTOR - 1;
    args.push(`--new=${n}:${first}:${last}`, `--typecode=${n}:${p.typeGuid}`, `--change-name=${n}:${p.name}`, `--partition-guid=${n}:${p.guid ?? randomUUID()}`);
  });
  args.push(opts.out);
  await runTool(opts.tools.sgdisk, args, opts.signal ? { signal: opts.signal } : {});
  for (const p of opts.partitions) {
    await runTool(opts.tools.dd, [`if=${p.file}`, `of=${opts.out}`, 'bs=1M', `seek=${p.offset / MiB}`, 'conv=notrunc,sparse', 'status=none'], opts.signal ? { signal: opts.signal } : {});
  }
}
