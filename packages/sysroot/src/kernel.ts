/**
 * Kernel discovery inside a deployment tree and installation into `/boot/ostree` (spec §5).
 *
 * Order: `usr/lib/modules/KVER/vmlinuz` (first KVER in readdir order with a regular `vmlinuz`),
 * with optional `initramfs.img` (or `initramfs`), `devicetree` (or a `dtb/` directory) and
 * `.vmlinuz.hmac`; bootcsum = SHA-256 of vmlinuz ‖ initramfs ‖ devicetree (or every file under
 * dtb/, names sorted bytewise, recursively). Else the legacy layout in `usr/lib/ostree-boot` or
 * `boot`: `vmlinuz-*-CSUM` and friends, bootcsum = the CSUM suffix. When the modules layout has
 * no initramfs but the legacy one does, the legacy one wins.
 *
 * Installation: files go into `boot/ostree/STATEROOT-BOOTCSUM/` only when missing, hardlinked
 * from the deployment (so they share the repo object's inode) or, across filesystems, copied to a
 * temporary name, fsynced and renamed.
 */
import { createHash } from 'node:crypto';
import { promises as fsp, linkSync, lstatSync, mkdirSync, readdirSync, renameSync, rmSync, chmodSync, copyFileSync, constants as C, fsyncSync, openSync, closeSync } from 'node:fs';
import path from 'node:path';
import { sysrootError } from './errors.js';
import { lstatOrNull, sysrootDebug } from './fsutil.js';

export interface KernelLayout {
  bootcsum: string;
  /** Absolute source path → installed name in the boot dir. */
  kernel: { src: string; name: string };
  initramfs?: { src: string; name: string };
  devicetree?: { src: string; name: string };
  hmac?: { src: string; name: string };
  /** A `dtb/` directory (installed as `dtb`). */
  dtbDir?: string;
}

function isReg(p: string): boolean {
  const st = lstatOrNull(p);
  return st !== null && st.isFile();
}

/** SHA-256 over the files in order, read 1 MiB at a time into one buffer (kernels and initramfs images are tens of MB). */
async function hashFiles(files: string[]): Promise<string> {
  const h = createHash('sha256');
  const buf = Buffer.allocUnsafe(1 << 20);
  for (const f of files) {
    const fh = await fsp.open(f, C.O_RDONLY | C.O_NOFOLLOW);
    try {
      for (;;) {
        const { bytesRead } = await fh.read(buf, 0, buf.length, null);
        if (bytesRead === 0) break;
        h.update(buf.subarray(0, bytesRead));
      }
    } finally {
      await fh.close();
    }
  }
  return h.digest('hex');
}

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  const names = readdirSync(dir).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  for (const n of names) {
    const p = path.join(dir, n);
    const st = lstatSync(p);
    if (st.isDirectory()) out.push(...filesUnder(p));
    else if (st.isFile()) out.push(p);
  }
  return out;
}

/** Options of {@link findKernel}. */
export interface FindKernelOptions {
  /**
   * Ignore `devicetree` and `dtb/` (OSTree's `OSTREE_SYSROOT_DEBUG=no-dtb` testing aid): they are
   * neither installed nor part of the bootcsum. Default: on when that debug flag is set.
   */
  noDtb?: boolean;
}

async function modulesLayout(root: string, noDtb: boolean): Promise<KernelLayout | null> {
  const modules = path.join(root, 'usr/lib/modules');
  let kvers: string[];
  try {
    kvers = readdirSync(modules);
  } catch {
    return null;
  }
  for (const kver of kvers) {
    const d = path.join(modules, kver);
    if (!isReg(path.join(d, 'vmlinuz'))) continue;
    const l: KernelLayout = { bootcsum: '', kernel: { src: path.join(d, 'vmlinuz'), name: `vmlinuz-${kver}` } };
    const hashed = [l.kernel.src];
    for (const n of ['initramfs.img', 'initramfs']) {
      if (isReg(path.join(d, n))) {
        l.initramfs = { src: path.join(d, n), name: `initramfs-${kver}.img` };
        hashed.push(l.initramfs.src);
        break;
      }
    }
    if (noDtb) {
      // neither installed nor hashed
    } else if (isReg(path.join(d, 'devicetree'))) {
      l.devicetree = { src: path.join(d, 'devicetree'), name: `devicetree-${kver}` };
      hashed.push(l.devicetree.src);
    } else {
      const dtb = lstatOrNull(path.join(d, 'dtb'));
      if (dtb?.isDirectory()) {
        l.dtbDir = path.join(d, 'dtb');
        hashed.push(...filesUnder(l.dtbDir));
      }
    }
    if (isReg(path.join(d, '.vmlinuz.hmac'))) l.hmac = { src: path.join(d, '.vmlinuz.hmac'), name: `.vmlinuz-${kver}.hmac` };
    l.bootcsum = await hashFiles(hashed);
    return l;
  }
  return null;
}

/**
 * The legacy layout: the first of `usr/lib/ostree-boot` and `boot` that exists (only that one),
 * files `vmlinuz-…-CSUM`, `initramfs-…-CSUM`, `devicetree-…-CSUM` (the text after the last `-` a
 * checksum the tree builder computed; it may follow the prefix directly: `vmlinuz-CSUM`), the first
 * of each kind in directory order. Installed under the name without `-CSUM`.
 */
function legacyLayout(root: string): KernelLayout | null {
  let d: string | null = null;
  let names: string[] = [];
  for (const sub of ['usr/lib/ostree-boot', 'boot']) {
    try {
      names = readdirSync(path.join(root, sub));
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') continue;
      throw e;
    }
    d = path.join(root, sub);
    break;
  }
  if (d === null) return null;
  const found: Partial<Record<'vmlinuz' | 'initramfs' | 'devicetree', { src: string; name: string; csum: string }>> = {};
  for (const n of names) {
    const m = /^(vmlinuz|initramfs|devicetree)-/.exec(n);
    if (!m) continue;
    const kind = m[1] as 'vmlinuz' | 'initramfs' | 'devicetree';
    const dash = n.lastIndexOf('-');
    const csum = n.slice(dash + 1);
    if (found[kind] || !/^[0-9a-f]{64}$/.test(csum) || !isReg(path.join(d, n))) continue;
    found[kind] = { src: path.join(d, n), name: n.slice(0, dash), csum };
  }
  const { vmlinuz: kernel, initramfs, devicetree } = found;
  if (!kernel) return null;
  if (initramfs && initramfs.csum !== kernel.csum) throw sysrootError('BAD_CONFIG', 'no-kernel', 'Mismatched kernel checksum vs initrd', { path: d });
  if (devicetree && devicetree.csum !== kernel.csum) throw sysrootError('BAD_CONFIG', 'no-kernel', 'Mismatched kernel checksum vs device tree in tree', { path: d });
  const l: KernelLayout = { bootcsum: kernel.csum, kernel: { src: kernel.src, name: kernel.name } };
  if (initramfs) l.initramfs = { src: initramfs.src, name: initramfs.name };
  if (devicetree) l.devicetree = { src: devicetree.src, name: devicetree.name };
  return l;
}

/** Find the kernel (and friends) in a deployment root. Throws `Failed to find kernel …` as OSTree. */
export async function findKernel(root: string, opts: FindKernelOptions = {}): Promise<KernelLayout> {
  const mod = await modulesLayout(root, opts.noDtb ?? sysrootDebug('no-dtb'));
  if (mod && mod.initramfs) return mod;
  const legacy = legacyLayout(root);
  if (mod && !(legacy && legacy.initramfs)) return mod;
  if (legacy) return legacy;
  throw sysrootError('OBJECT_MISSING', 'no-kernel', 'Failed to find kernel in /usr/lib/modules, /usr/lib/ostree-boot or /boot', { root });
}

function installFile(src: string, dest: string, fsync: boolean): void {
  if (lstatOrNull(dest)) return;
  try {
    linkSync(src, dest);
    return;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'EXDEV' && code !== 'EMLINK' && code !== 'EPERM') throw e;
  }
  const tmp = `${dest}.tmp`;
  rmSync(tmp, { force: true });
  copyFileSync(src, tmp, C.COPYFILE_FICLONE);
  chmodSync(tmp, lstatSync(src).mode & 0o7777);
  if (fsync) {
    const fd = openSync(tmp, 'r');
    fsyncSync(fd);
    closeSync(fd);
  }
  renameSync(tmp, dest);
}

function installDir(src: string, dest: string, fsync: boolean): void {
  if (lstatOrNull(dest)) return;
  const tmp = `${dest}.tmp`;
  rmSync(tmp, { recursive: true, force: true });
  const copy = (s: string, d: string): void => {
    mkdirSync(d, { mode: lstatSync(s).mode & 0o7777 });
    for (const n of readdirSync(s)) {
      const sp = path.join(s, n);
      const st = lstatSync(sp);
      if (st.isDirectory()) copy(sp, path.join(d, n));
      else if (st.isFile()) installFile(sp, path.join(d, n), fsync);
    }
  };
  copy(src, tmp);
  renameSync(tmp, dest);
}

/**
 * Install the kernel files into `bootDir` (`boot/ostree/STATEROOT-BOOTCSUM`), each only if
 * missing. Crash-safe: files appear under their final names only complete.
 */
export function installKernel(layout: KernelLayout, bootDir: string, fsync = true): void {
  mkdirSync(bootDir, { recursive: true, mode: 0o775 });
  installFile(layout.kernel.src, path.join(bootDir, layout.kernel.name), fsync);
  if (layout.initramfs) installFile(layout.initramfs.src, path.join(bootDir, layout.initramfs.name), fsync);
  if (layout.devicetree) installFile(layout.devicetree.src, path.join(bootDir, layout.devicetree.name), fsync);
  if (layout.hmac) installFile(layout.hmac.src, path.join(bootDir, layout.hmac.name), fsync);
  if (layout.dtbDir) installDir(layout.dtbDir, path.join(bootDir, 'dtb'), fsync);
}
