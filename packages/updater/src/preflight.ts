/**
 * Pre-flight space check: before a deployment is staged, compute what it will take on the
 * sysroot's filesystem and on `/boot`, compare with statfs(2), and refuse with the exact
 * shortfall in bytes.
 *
 * What a deployment costs, from the pulled commit's objects (sizes of content objects are known
 * without checking anything out):
 *   - sysroot: regular files are hardlinks of repository objects (no data), except `/etc`, which
 *     is copied from `usr/etc`; so `etc bytes + 4096 per directory` (one block per directory
 *     inode's data, the usual ext4/xfs allocation) plus 4096 for the origin file;
 *   - /boot: the kernel, initramfs and devicetree are copied to `boot/ostree/STATEROOT-BOOTCSUM/`
 *     unless that directory already exists (same boot checksum as a current deployment).
 * The bootcsum is computed exactly as the sysroot package does (SHA-256 over vmlinuz ‖ initramfs
 * ‖ devicetree of the first `usr/lib/modules/KVER`), streaming the objects. Trees with only the
 * legacy `/boot` kernel layout count their `vmlinuz-*`/`initramfs-*` files as new.
 */
import { createHash } from 'node:crypto';
import { existsSync, statfsSync } from 'node:fs';
import path from 'node:path';
import { LarchError, readTree, type DirTree, type Repo } from '@larch/core-store';

export interface SpaceNeeds {
  /** Bytes the deployment needs on the sysroot's filesystem. */
  disk: number;
  /** Bytes the kernel files need on /boot (0 when their boot checksum is installed already). */
  boot: number;
  bootcsum: string | null;
}

export interface SpaceReport extends SpaceNeeds {
  diskFree: number;
  bootFree: number;
  reserve: number;
}

const DIR_BLOCK = 4096;

async function subtree(repo: Repo, tree: DirTree, name: string): Promise<DirTree | null> {
  const d = tree.dirs.find((x) => x.name === name);
  return d ? readTree(repo, d.treeChecksum) : null;
}

async function sizeOf(repo: Repo, checksum: string): Promise<{ size: number; regular: boolean }> {
  const f = await repo.openFile(checksum);
  return { size: f.size, regular: (f.meta.mode & 0o170000) === 0o100000 };
}

/**
 * Compute what deploying `commit` needs (see the file comment). Reads objects of the local
 * repository only; takes no lock.
 */
export async function computeSpaceNeeds(repo: Repo, commit: string, sysroot: string, stateroot: string): Promise<SpaceNeeds> {
  const c = await repo.readCommit(commit);
  const root = await readTree(repo, c.rootTree);
  let dirs = 0;
  let etcBytes = 0;
  const walk = async (t: DirTree, inEtc: boolean): Promise<void> => {
    dirs += 1;
    if (inEtc) {
      for (const f of t.files) {
        const s = await sizeOf(repo, f.checksum);
        if (s.regular) etcBytes += s.size;
      }
    }
    for (const d of t.dirs) await walk(await readTree(repo, d.treeChecksum), inEtc);
  };
  // Count directories everywhere; file sizes only under usr/etc (and a top-level etc).
  const countTree = async (t: DirTree, rel: string): Promise<void> => {
    dirs += 1;
    for (const d of t.dirs) {
      const p = rel ? `${rel}/${d.name}` : d.name;
      const sub = await readTree(repo, d.treeChecksum);
      if (p === 'usr/etc' || p === 'etc') await walk(sub, true);
      else await countTree(sub, p);
    }
  };
  await countTree(root, '');
  const disk = etcBytes + dirs * DIR_BLOCK + DIR_BLOCK;

  // Kernel files.
  let kernelFiles: string[] = [];
  const usr = await subtree(repo, root, 'usr');
  const lib = usr ? await subtree(repo, usr, 'lib') : null;
  const modules = lib ? await subtree(repo, lib, 'modules') : null;
  if (modules) {
    for (const kv of modules.dirs) {
      const t = await readTree(repo, kv.treeChecksum);
      const pick = (n: string): string | undefined => t.files.find((f) => f.name === n)?.checksum;
      const vmlinuz = pick('vmlinuz');
      if (!vmlinuz) continue;
      kernelFiles = [vmlinuz, pick('initramfs.img') ?? pick('initramfs'), pick('devicetree')].filter((x): x is string => x !== undefined);
      break;
    }
  }
  let bootcsum: string | null = null;
  let boot = 0;
  if (kernelFiles.length > 0) {
    const h = createHash('sha256');
    for (const k of kernelFiles) {
      const f = await repo.openFile(k);
      for await (const chunk of f.open()) h.update(chunk as Buffer);
      boot += f.size;
    }
    bootcsum = h.digest('hex');
    if (existsSync(path.join(sysroot, 'boot/ostree', `${stateroot}-${bootcsum}`))) boot = 0;
  } else {
    const bootDir = await subtree(repo, root, 'boot');
    for (const f of bootDir?.files ?? []) {
      if (/^(vmlinuz|initramfs)-/.test(f.name)) boot += (await sizeOf(repo, f.checksum)).size;
    }
  }
  return { disk, boot, bootcsum };
}

/** Free bytes for unprivileged use on the filesystem holding `p` (statfs f_bavail × f_bsize). */
export function freeBytes(p: string): number {
  const s = statfsSync(p);
  return Number(s.bavail) * Number(s.bsize);
}

/**
 * Throw `LIMIT_EXCEEDED` (`data.reason: 'no-space'`, `data.shortfall` in bytes) when the update
 * does not fit. /boot is reported first: it is the one that fills up silently.
 */
export function assertSpace(r: SpaceReport): void {
  const bootShort = r.boot + (r.boot > 0 ? r.reserve : 0) - r.bootFree;
  if (r.boot > 0 && bootShort > 0) {
    throw new LarchError(
      'LIMIT_EXCEEDED',
      `Not enough space on /boot for the update: need ${r.boot} bytes${r.reserve ? ` (+${r.reserve} reserved)` : ''}, ${r.bootFree} bytes free; short by ${bootShort} bytes`,
      { reason: 'no-space', filesystem: 'boot', needed: r.boot, free: r.bootFree, reserve: r.reserve, shortfall: bootShort },
    );
  }
  const diskShort = r.disk + r.reserve - r.diskFree;
  if (diskShort > 0) {
    throw new LarchError(
      'LIMIT_EXCEEDED',
      `Not enough space on the sysroot for the update: need ${r.disk} bytes${r.reserve ? ` (+${r.reserve} reserved)` : ''}, ${r.diskFree} bytes free; short by ${diskShort} bytes`,
      { reason: 'no-space', filesystem: 'sysroot', needed: r.disk, free: r.diskFree, reserve: r.reserve, shortfall: diskShort },
    );
  }
}
