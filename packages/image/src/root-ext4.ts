/**
 * The root partition: an ext4 filesystem made by `mkfs.ext4 -d DIR` from the sysroot directory,
 * with a UUID chosen beforehand (`-U`) so the kernel command line written into the boot entries
 * (`root=UUID=…`) names it. mkfs.ext4 copies modes, ownership, timestamps, hardlinks and
 * extended attributes from DIR, so the deployments keep sharing the repository's objects.
 *
 * `metadata_csum_seed` is left off: GRUB before 2.12 refuses filesystems with it.
 */
import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { truncate, writeFile } from 'node:fs/promises';
import { runTool } from './tools.js';

export interface RootFsOptions {
  dir: string;
  out: string;
  size: number;
  uuid: string;
  label?: string;
  tools: { 'mkfs.ext4': string };
  signal?: AbortSignal;
}

export async function buildRootFs(opts: RootFsOptions): Promise<void> {
  await writeFile(opts.out, '');
  await truncate(opts.out, opts.size);
  await runTool(opts.tools['mkfs.ext4'], [
    '-q', '-F',
    '-t', 'ext4',
    '-O', '^metadata_csum_seed',
    '-U', opts.uuid,
    '-L', opts.label ?? 'larch-root',
    '-d', opts.dir,
    opts.out,
  ], opts.signal ? { signal: opts.signal } : {});
}

/** Space the files under `dir` take (allocated blocks, each inode counted once) and their number. */
export async function treeUsage(dir: string): Promise<{ bytes: number; inodes: number }> {
  const seen = new Set<string>();
  let bytes = 0;
  let inodes = 0;
  const walk = async (d: string): Promise<void> => {
    for (const name of await readdir(d)) {
      const p = join(d, name);
      const st = await lstat(p, { bigint: false });
      const key = `${st.dev}:${st.ino}`;
      if (seen.has(key)) continue;
      seen.add(key);
      inodes++;
      bytes += st.blocks * 512;
      if (st.isDirectory()) await walk(p);
    }
  };
  await walk(dir);
  return { bytes, inodes };
}
