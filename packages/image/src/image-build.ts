/**
 * `buildImage`: a bootable GPT disk image of one deployment, built from plain files.
 *
 *  1. A sysroot in a work directory, exactly as `ostree admin` would make it on the target's
 *     root filesystem: `initFs`, `osInit`, the ref pulled from the source repository
 *     (`pullLocal`), `deploy` with the kernel arguments (`root=UUID=…` of the filesystem about to
 *     be made, `rw`, `console=ttyS0`, then the caller's).
 *  2. An optional `customize` hook sees the sysroot and the new deployment (tests put files in the
 *     deployment's merged /etc there).
 *  3. The root partition: `mkfs.ext4 -d` of the sysroot.
 *  4. With the grub2 bootloader: an EFI system partition with a standalone GRUB whose menu is
 *     generated from the BLS entries the deploy wrote (see grub-config.ts).
 *  5. The disk: GPT by sgdisk, partitions copied in with dd. Written beside OUT and renamed over
 *     it when complete, so a failed build leaves no half image under OUT's name.
 *
 * Root: the sysroot's files are owned as they are in the commit only when this runs as root
 * (otherwise the deploy cannot chown and mkfs.ext4 records the caller's ids); nothing else needs
 * privileges. Locking: none beyond the sysroot's own lock on the private work directory; the
 * source repository is only read.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rename, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { LarchError, Repo } from '@larch/core-store';
import { pullLocal } from '@larch/http-pull';
import { deploy, initFs, osInit, setImmutable, Sysroot, type Deployment } from '@larch/sysroot';
import { GPT_TYPE_ESP, GPT_TYPE_LINUX, writeGptDisk, type GptPartition } from './disk-gpt.js';
import { buildEsp } from './esp-grub.js';
import { checkGrubText, grubConfig, menuEntryFromBls } from './grub-config.js';
import { buildRootFs, treeUsage } from './root-ext4.js';
import { alignUp, MiB, printable } from './size.js';
import { requireTools, type Tool } from './tools.js';

export type ImageBootloader = 'grub2' | 'none';

export interface CustomizeContext {
  /** The sysroot directory (the root filesystem's future contents). */
  sysroot: string;
  /** The new deployment's directory (its `etc/` is the merged /etc the machine boots with). */
  deploymentDir: string;
  deployment: Deployment;
}

export interface ImageBuildOptions {
  /** Source repository holding `ref`. */
  repo: string;
  /** Stateroot (`--os`). */
  os: string;
  /** Ref (or commit checksum) to deploy. */
  ref: string;
  /** The disk image to write. */
  out: string;
  /** Extra kernel arguments, appended after root=, rw and console=ttyS0. */
  kargs?: string[];
  /** Whole disk size in bytes; default: the sysroot's size × 1.5 + 256 MiB, plus the ESP. */
  size?: number;
  /** Default grub2. */
  bootloader?: ImageBootloader;
  /** UUID of the root filesystem (default random). */
  rootUuid?: string;
  /** Size of the EFI system partition (default 64 MiB). */
  espSize?: number;
  /** Where to make the work directory (default the OS's temporary directory). */
  workDir?: string;
  customize?: (ctx: CustomizeContext) => Promise<void>;
  log?: (line: string) => void;
  signal?: AbortSignal;
}

export interface ImageBuildResult {
  out: string;
  size: number;
  rootUuid: string;
  deployment: Pick<Deployment, 'stateroot' | 'csum' | 'deployserial' | 'bootcsum' | 'bootserial'>;
  /** The default boot entry's kernel command line. */
  cmdline: string;
  /** Milliseconds per step. */
  timings: Record<string, number>;
}

const DEFAULT_ESP_SIZE = 64 * MiB;
const BASE_KARGS = ['rw', 'console=ttyS0'];

/** Build the disk image; see the file comment for the steps. */
export async function buildImage(opts: ImageBuildOptions): Promise<ImageBuildResult> {
  const log = opts.log ?? (() => undefined);
  const bootloader = opts.bootloader ?? 'grub2';
  if (bootloader !== 'grub2' && bootloader !== 'none') {
    throw new LarchError('INVALID_ARGUMENT', `Unknown bootloader '${printable(String(bootloader))}' (expected grub2 or none)`, { bootloader, reason: 'bad-bootloader' });
  }
  for (const k of opts.kargs ?? []) {
    checkGrubText('kernel argument', k);
    if (k.trim() === '') throw new LarchError('INVALID_ARGUMENT', 'Invalid kernel argument: empty', { reason: 'bad-boot-text' });
  }
  const rootUuid = (opts.rootUuid ?? randomUUID()).toLowerCase();
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(rootUuid)) {
    throw new LarchError('INVALID_ARGUMENT', `Invalid root UUID '${printable(rootUuid)}'`, { reason: 'bad-uuid' });
  }
  const espSize = bootloader === 'grub2' ? alignUp(opts.espSize ?? DEFAULT_ESP_SIZE, MiB) : 0;
  const tools = requireTools(['mkfs.ext4', 'sgdisk', 'dd', ...(bootloader === 'grub2' ? (['mkfs.vfat', 'mmd', 'mcopy', 'grub-mkstandalone'] as Tool[]) : [])]);
  const out = resolve(opts.out);
  // The output's directory must exist (checked now, before the slow part).
  const outDir = await stat(dirname(out)).catch(() => null);
  if (!outDir?.isDirectory()) {
    throw new LarchError('INVALID_ARGUMENT', `Cannot write ${out}: ${dirname(out)} is not a directory`, { path: out, reason: 'bad-output' });
  }

  const timings: Record<string, number> = {};
  const step = async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
    const t0 = performance.now();
    log(`${name}…`);
    const r = await fn();
    timings[name] = Math.round(performance.now() - t0);
    return r;
  };

  const work = await mkdtemp(join(opts.workDir ?? tmpdir(), 'larch-image-'));
  const tmpOut = join(dirname(out), `.${basename(out)}.tmp-${process.pid}`);
  try {
    const sysroot = join(work, 'sysroot');
    await mkdir(sysroot);
    const deployment = await step('deploy', async () => {
      await initFs(sysroot);
      await osInit(sysroot, opts.os);
      const repo = await Repo.open(join(sysroot, 'ostree/repo'));
      await pullLocal({ repo, src: resolve(opts.repo), refs: [opts.ref], ...(opts.signal ? { signal: opts.signal } : {}) });
      const r = await deploy(sysroot, {
        stateroot: opts.os,
        refspec: opts.ref,
        kargs: { append: [`root=UUID=${rootUuid}`, ...BASE_KARGS, ...(opts.kargs ?? [])] },
      });
      return r.deployment;
    });
    const sr = await Sysroot.open(sysroot);
    if (opts.customize) {
      await step('customize', () => opts.customize!({ sysroot, deploymentDir: sr.deploymentDir(deployment), deployment }));
    }
    const sr2 = await Sysroot.open(sysroot);
    const entries = sr2.deployments.map((d) => menuEntryFromBls(d.bootconfig));
    const cmdline = entries[0].args.join(' ');

    const usage = await treeUsage(sysroot);
    const minRoot = alignUp(Math.ceil(usage.bytes * 1.1) + usage.inodes * 256 + 64 * MiB, MiB);
    const rootOffset = MiB + espSize;
    let size: number;
    if (opts.size !== undefined) {
      size = alignUp(opts.size, MiB);
      if (size - rootOffset - MiB < minRoot) {
        throw new LarchError('INVALID_ARGUMENT', `Image size ${opts.size} is too small: the sysroot needs at least ${rootOffset + minRoot + MiB} bytes`, { size: opts.size, needed: rootOffset + minRoot + MiB, reason: 'too-small' });
      }
    } else {
      size = rootOffset + alignUp(Math.ceil(usage.bytes * 1.5) + 256 * MiB, MiB) + MiB;
    }
    const rootSize = size - rootOffset - MiB;

    const rootImg = join(work, 'root.img');
    await step('mkfs.ext4', () => buildRootFs({ dir: sysroot, out: rootImg, size: rootSize, uuid: rootUuid, tools: { 'mkfs.ext4': tools['mkfs.ext4'] }, ...(opts.signal ? { signal: opts.signal } : {}) }));
    // The sysroot copy is no longer needed; free the space before the disk is assembled.
    await removeSysroot(sysroot, sr2);

    const partitions: GptPartition[] = [];
    if (bootloader === 'grub2') {
      const espImg = await step('esp', () =>
        buildEsp({
          dir: work,
          size: espSize,
          grubCfg: grubConfig({ rootUuid, entries }),
          volumeId: randomBytes(4).toString('hex'),
          tools: { 'mkfs.vfat': tools['mkfs.vfat'], mmd: tools.mmd, mcopy: tools.mcopy, 'grub-mkstandalone': tools['grub-mkstandalone'] },
          ...(opts.signal ? { signal: opts.signal } : {}),
        }),
      );
      partitions.push({ file: espImg, offset: MiB, size: espSize, typeGuid: GPT_TYPE_ESP, name: 'EFI System' });
    }
    partitions.push({ file: rootImg, offset: rootOffset, size: rootSize, typeGuid: GPT_TYPE_LINUX, name: 'root' });
    await step('disk', async () => {
      await writeGptDisk({ out: tmpOut, size, partitions, tools: { sgdisk: tools.sgdisk, dd: tools.dd }, ...(opts.signal ? { signal: opts.signal } : {}) });
      await rename(tmpOut, out);
    });
    const { stateroot, csum, deployserial, bootcsum, bootserial } = sr2.deployments[0];
    return { out, size, rootUuid, deployment: { stateroot, csum, deployserial, bootcsum, bootserial }, cmdline, timings };
  } finally {
    await rm(tmpOut, { force: true });
    await removeSysroot(join(work, 'sysroot'), null).catch(() => undefined);
    await rm(work, { recursive: true, force: true });
  }
}

/** Remove a sysroot tree; deployment roots carry the immutable bit when made as root. */
async function removeSysroot(sysroot: string, sr: Sysroot | null): Promise<void> {
  const dirs: string[] = [];
  if (sr) for (const d of sr.deployments) dirs.push(sr.deploymentDir(d));
  else {
    const deployRoot = join(sysroot, 'ostree', 'deploy');
    for (const os of await readdir(deployRoot).catch(() => [] as string[])) {
      for (const name of await readdir(join(deployRoot, os, 'deploy')).catch(() => [] as string[])) dirs.push(join(deployRoot, os, 'deploy', name));
    }
  }
  for (const d of dirs) setImmutable(d, false);
  await rm(sysroot, { recursive: true, force: true });
}
