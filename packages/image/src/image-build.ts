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
 *  4. With the grub2 bootloader: an EFI system partition with a standalone GRUB that loads the
 *     menu on the root filesystem (`/boot/loader/grub.cfg`, which a fresh sysroot gets here and
 *     @larch/sysroot's larch-grub backend rewrites on every later deploy), else the menu
 *     generated now from the BLS entries (see grub-config.ts).
 *  5. The disk: GPT by sgdisk, partitions copied in with dd. Written beside OUT and renamed over
 *     it when complete, so a failed build leaves no half image under OUT's name.
 *
 * From an existing sysroot (`sysroot: DIR`, e.g. one the real `ostree admin deploy` made): step 1
 * is skipped and DIR itself is the root filesystem's content (read, never changed or removed,
 * except by the caller's `customize`). Its deployments' kernel command lines must already name the
 * filesystem (`root=UUID=…`): the UUID is taken from the default entry, and a `rootUuid` that
 * differs from it is refused, as are `kargs` (they are the deployments' own).
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
import { deploy, initFs, installLarchGrubMenu, osInit, setImmutable, Sysroot, type Deployment } from '@larch/sysroot';
import { GPT_TYPE_ESP, GPT_TYPE_LINUX, writeGptDisk, type GptPartition } from './disk-gpt.js';
import { buildEsp } from './esp-grub.js';
import { checkGrubText, espGrubConfig, menuEntryFromBls } from './grub-config.js';
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
  /** Source repository holding `ref` (not with `sysroot`). */
  repo?: string;
  /** Stateroot (`--os`; not with `sysroot`). */
  os?: string;
  /** Ref (or commit checksum) to deploy (not with `sysroot`). */
  ref?: string;
  /**
   * An existing sysroot directory to put on the root partition as it is, instead of deploying
   * `ref` from `repo` into a fresh one. Its default entry's kernel command line gives the root UUID.
   */
  sysroot?: string;
  /** The disk image to write. */
  out: string;
  /** Extra kernel arguments, appended after root=, rw and console=ttyS0 (not with `sysroot`). */
  kargs?: string[];
  /** Whole disk size in bytes; default: the sysroot's size × 1.5 + 256 MiB, plus the ESP. */
  size?: number;
  /** Default grub2. */
  bootloader?: ImageBootloader;
  /** UUID of the root filesystem (default random; with `sysroot`, the one its default entry names). */
  rootUuid?: string;
  /** Seconds GRUB shows its menu before booting the default entry (default 1; 0 boots at once). */
  grubTimeout?: number;
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
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * The `sysroot` source: opened (it must hold at least one deployment), the root UUID read from the
 * default entry's `root=UUID=`; refuses options that only make sense for a fresh deploy.
 */
async function existingSysroot(opts: ImageBuildOptions): Promise<{ dir: string; sysroot: Sysroot; rootUuid: string }> {
  const dir = resolve(opts.sysroot!);
  for (const [name, v] of [['repo', opts.repo], ['os', opts.os], ['ref', opts.ref]] as const) {
    if (v !== undefined) throw new LarchError('INVALID_ARGUMENT', `An image from a sysroot takes no ${name} (the sysroot's deployments are used as they are)`, { reason: 'bad-source', option: name });
  }
  if ((opts.kargs ?? []).length > 0) {
    throw new LarchError('INVALID_ARGUMENT', 'An image from a sysroot takes no kernel arguments (deploy with them instead)', { reason: 'bad-source', option: 'kargs' });
  }
  const st = await stat(dir).catch(() => null);
  if (!st?.isDirectory()) throw new LarchError('INVALID_ARGUMENT', `Sysroot ${printable(dir)} is not a directory`, { path: dir, reason: 'bad-sysroot' });
  if (!(await stat(join(dir, 'ostree/repo/config')).catch(() => null))?.isFile()) {
    throw new LarchError('INVALID_ARGUMENT', `${printable(dir)} is not a sysroot: it has no ostree/repo`, { path: dir, reason: 'bad-sysroot' });
  }
  const sysroot = await Sysroot.open(dir);
  if (sysroot.deployments.length === 0) throw new LarchError('INVALID_ARGUMENT', `Sysroot ${printable(dir)} has no deployments`, { path: dir, reason: 'bad-sysroot' });
  const args = menuEntryFromBls(sysroot.deployments[0].bootconfig).args;
  const roots = args.filter((a) => a.startsWith('root='));
  const uuid = roots.length === 1 ? /^root=UUID=(.*)$/i.exec(roots[0])?.[1] : undefined;
  if (uuid === undefined || !UUID_RE.test(uuid)) {
    throw new LarchError('INVALID_ARGUMENT', `The default deployment of ${printable(dir)} does not boot from root=UUID=… (its kernel arguments: ${printable(args.join(' '))}); deploy it with --karg=root=UUID=…`, { path: dir, reason: 'no-root-uuid' });
  }
  if (opts.rootUuid !== undefined && opts.rootUuid.toLowerCase() !== uuid.toLowerCase()) {
    throw new LarchError('INVALID_ARGUMENT', `Root UUID ${printable(opts.rootUuid)} differs from the ${uuid} the default deployment boots from`, { path: dir, reason: 'bad-uuid' });
  }
  return { dir, sysroot, rootUuid: uuid };
}

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
  const given = opts.sysroot !== undefined ? await existingSysroot(opts) : null;
  if (!given && (opts.repo === undefined || opts.os === undefined || opts.ref === undefined)) {
    throw new LarchError('INVALID_ARGUMENT', 'An image needs a sysroot, or a repository, a stateroot and a ref to deploy', { reason: 'bad-source' });
  }
  const rootUuid = (given?.rootUuid ?? opts.rootUuid ?? randomUUID()).toLowerCase();
  if (!UUID_RE.test(rootUuid)) {
    throw new LarchError('INVALID_ARGUMENT', `Invalid root UUID '${printable(rootUuid)}'`, { reason: 'bad-uuid' });
  }
  if (opts.grubTimeout !== undefined && !(Number.isInteger(opts.grubTimeout) && opts.grubTimeout >= 0)) {
    throw new LarchError('INVALID_ARGUMENT', `Invalid GRUB timeout '${printable(String(opts.grubTimeout))}' (expected a whole number of seconds)`, { reason: 'bad-timeout' });
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
    const sysroot = given ? given.dir : join(work, 'sysroot');
    const deployment = given
      ? given.sysroot.deployments[0]
      : await step('deploy', async () => {
          await mkdir(sysroot);
          await initFs(sysroot);
          await osInit(sysroot, opts.os!);
          const repo = await Repo.open(join(sysroot, 'ostree/repo'));
          await pullLocal({ repo, src: resolve(opts.repo!), refs: [opts.ref!], ...(opts.signal ? { signal: opts.signal } : {}) });
          const r = await deploy(sysroot, {
            stateroot: opts.os!,
            refspec: opts.ref!,
            kargs: { append: [`root=UUID=${rootUuid}`, ...BASE_KARGS, ...(opts.kargs ?? [])] },
          });
          return r.deployment;
        });
    const sr = given ? given.sysroot : await Sysroot.open(sysroot);
    if (opts.customize) {
      await step('customize', () => opts.customize!({ sysroot, deploymentDir: sr.deploymentDir(deployment), deployment }));
    }
    const sr2 = await Sysroot.open(sysroot);
    const entries = sr2.deployments.map((d) => menuEntryFromBls(d.bootconfig));
    // A sysroot made here gets the menu on its root filesystem too, so later deploys on the
    // machine (the larch-grub backend, found by this file) keep it up to date.
    if (!given && bootloader === 'grub2') {
      installLarchGrubMenu(sysroot, sr2.deployments.map((d) => d.bootconfig), opts.grubTimeout !== undefined ? { timeout: opts.grubTimeout } : {});
    }
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
    if (!given) await removeSysroot(sysroot, sr2);

    const partitions: GptPartition[] = [];
    if (bootloader === 'grub2') {
      const espImg = await step('esp', () =>
        buildEsp({
          dir: work,
          size: espSize,
          grubCfg: espGrubConfig({ rootUuid, entries, ...(opts.grubTimeout !== undefined ? { timeout: opts.grubTimeout } : {}) }),
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
    if (!given) await removeSysroot(join(work, 'sysroot'), null).catch(() => undefined);
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
