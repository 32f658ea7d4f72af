/**
 * Small filesystem helpers for the sysroot: atomic replace of files and symlinks (write a
 * temporary name, make it durable, rename over), syncfs of a whole filesystem, recursive removal
 * that first clears the immutable attribute OSTree puts on deployment roots, and copies that keep
 * mode, ownership (as root) and xattrs, using reflinks/copy_file_range where the kernel offers them.
 *
 * The immutable flag is read and written with the FS_IOC_GETFLAGS / FS_IOC_SETFLAGS ioctls via
 * koffi (the same FFI @larch/native uses): Node has no API for it. Failures with EPERM, ENOTTY,
 * EOPNOTSUPP or EINVAL are ignored, as OSTree does, so unprivileged sysroots and tmpfs work.
 */
import { closeSync, constants as C, copyFileSync, fsyncSync, lchownSync, lstatSync, mkdirSync, openSync, readdirSync, readlinkSync, renameSync, rmSync, symlinkSync, unlinkSync, chmodSync, type Stats } from 'node:fs';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import koffi from 'koffi';
import * as native from '@larch/native';
import { writeAllSync } from '@larch/core-store';

export const IS_ROOT = typeof process.getuid === 'function' && process.getuid() === 0;

/**
 * Whether `$OSTREE_SYSROOT_DEBUG` (comma-separated) names `flag`, as OSTree's sysroot debug flags:
 * `mutable-deployments`, `no-dtb`, `test-fifreeze`.
 */
export function sysrootDebug(flag: string): boolean {
  return (process.env.OSTREE_SYSROOT_DEBUG ?? '').split(',').includes(flag);
}

/** fsync a file or directory by path. */
export function fsyncPath(p: string): void {
  const fd = openSync(p, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** syncfs(2) the filesystem holding `p`. */
export function syncFs(p: string): void {
  const fd = openSync(p, 'r');
  try {
    native.syncfs(fd);
  } finally {
    closeSync(fd);
  }
}

/** Write `data` to `dest` atomically: `dest.tmp-XXXX`, fsync, rename, fsync of the directory. */
export function writeFileAtomic(dest: string, data: string | Uint8Array, mode = 0o644, opts: { fsync?: boolean } = {}): void {
  const dir = path.dirname(dest);
  const tmp = path.join(dir, `.${path.basename(dest)}.tmp-${process.pid}`);
  rmSync(tmp, { force: true });
  const fd = openSync(tmp, C.O_WRONLY | C.O_CREAT | C.O_EXCL, mode);
  try {
    const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    writeAllSync(fd, buf);
    if (opts.fsync !== false) fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  chmodSync(tmp, mode);
  renameSync(tmp, dest);
  if (opts.fsync !== false) fsyncPath(dir);
}

/** Replace (or create) the symlink `linkPath` → `target` atomically via `linkPath.tmp`. */
export function symlinkAtomic(target: string, linkPath: string, tmpName = `${path.basename(linkPath)}.tmp`): void {
  const tmp = path.join(path.dirname(linkPath), tmpName);
  rmSync(tmp, { force: true });
  symlinkSync(target, tmp);
  renameSync(tmp, linkPath);
}

export function lstatOrNull(p: string): Stats | null {
  try {
    return lstatSync(p);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT' || (e as NodeJS.ErrnoException).code === 'ENOTDIR') return null;
    throw e;
  }
}

export function readlinkOrNull(p: string): string | null {
  try {
    return readlinkSync(p);
  } catch (e) {
    const c = (e as NodeJS.ErrnoException).code;
    if (c === 'ENOENT' || c === 'EINVAL' || c === 'ENOTDIR') return null;
    throw e;
  }
}

// --- immutable attribute -----------------------------------------------------------------------

const FS_IOC_GETFLAGS = 0x80086601;
const FS_IOC_SETFLAGS = 0x40086602;
const FS_IMMUTABLE_FL = 0x10;
const IGNORED_ERRNOS = new Set(['EPERM', 'ENOTTY', 'EOPNOTSUPP', 'EINVAL', 'ENOSYS', 'EACCES']);

interface Ioctl {
  ioctl: (fd: number, req: number, arg: Int32Array) => number;
}
let libc: Ioctl | null | undefined;
function ioctlLib(): Ioctl | null {
  if (libc !== undefined) return libc;
  try {
    const l = koffi.load('libc.so.6');
    libc = { ioctl: l.func('int ioctl(int fd, unsigned long req, _Inout_ int32_t *arg)') as Ioctl['ioctl'] };
  } catch {
    libc = null;
  }
  return libc;
}

/**
 * Set or clear FS_IMMUTABLE_FL on a directory. Best effort: returns false when the filesystem or
 * our privileges do not allow it (as OSTree, which ignores EPERM/ENOTTY/EOPNOTSUPP).
 */
export function setImmutable(dir: string, on: boolean): boolean {
  const l = ioctlLib();
  if (!l) return false;
  let fd: number;
  try {
    fd = openSync(dir, C.O_RDONLY | C.O_DIRECTORY | C.O_NOFOLLOW);
  } catch {
    return false;
  }
  try {
    const flags = new Int32Array(1);
    if (l.ioctl(fd, FS_IOC_GETFLAGS, flags) !== 0) return false;
    const has = (flags[0] & FS_IMMUTABLE_FL) !== 0;
    if (has === on) return true;
    flags[0] = on ? flags[0] | FS_IMMUTABLE_FL : flags[0] & ~FS_IMMUTABLE_FL;
    if (l.ioctl(fd, FS_IOC_SETFLAGS, flags) !== 0) {
      const errno = koffi.errno();
      const name = Object.entries(koffi.os.errno as Record<string, number>).find(([, v]) => v === errno)?.[0] ?? '';
      if (IGNORED_ERRNOS.has(name)) return false;
      throw Object.assign(new Error(`ioctl(FS_IOC_SETFLAGS) ${dir}: errno ${errno}`), { code: name });
    }
    return true;
  } finally {
    closeSync(fd);
  }
}

// --- mounts ------------------------------------------------------------------------------------

interface MountLib {
  mount: (source: string, target: string, fstype: string, flags: number, data: string) => number;
  strerror: (errnum: number) => string;
}
let mountLib: MountLib | null | undefined;
function mountFns(): MountLib | null {
  if (mountLib !== undefined) return mountLib;
  try {
    const l = koffi.load('libc.so.6');
    mountLib = {
      mount: l.func('int mount(const char *source, const char *target, const char *fstype, unsigned long flags, const char *data)') as MountLib['mount'],
      strerror: l.func('const char *strerror(int errnum)') as MountLib['strerror'],
    };
  } catch {
    mountLib = null;
  }
  return mountLib;
}

const MS_RDONLY = 1;

/**
 * mount(2) an overlayfs on `target` (`options`: `lowerdir=…,upperdir=…,workdir=…`). Throws an
 * Error whose message is the system's reason (`Operation not permitted`, `No such device`, …)
 * and whose `code` is the errno name.
 */
export function mountOverlay(target: string, options: string, readOnly: boolean): void {
  const l = mountFns();
  if (!l) throw Object.assign(new Error('mount(2) is not available'), { code: 'ENOSYS' });
  if (l.mount('overlay', target, 'overlay', readOnly ? MS_RDONLY : 0, options) === 0) return;
  const errno = koffi.errno();
  const name = Object.entries(koffi.os.errno as Record<string, number>).find(([, v]) => v === errno)?.[0] ?? `errno ${errno}`;
  throw Object.assign(new Error(l.strerror(errno)), { code: name });
}

/** `rm -rf` that first clears the immutable attribute of `p` itself (OSTree sets it only on deployment roots). */
export function rmTree(p: string): void {
  const st = lstatOrNull(p);
  if (!st) return;
  if (st.isDirectory()) setImmutable(p, false);
  rmSync(p, { recursive: true, force: true });
}

// --- copies with metadata ----------------------------------------------------------------------

/** Copy xattrs of `src` to `dst` (no-follow). Attributes the filesystem refuses are skipped. */
export function copyXattrs(src: string, dst: string): void {
  let names: string[];
  try {
    names = native.llistxattr(src);
  } catch {
    return;
  }
  for (const n of names) {
    const v = native.lgetxattr(src, n);
    if (v === null) continue;
    try {
      native.lsetxattr(dst, n, v);
    } catch {
      /* e.g. security.* without privilege, or unsupported namespace on this filesystem */
    }
  }
}

/**
 * Copy one non-directory entry (regular file or symlink) with its mode, owner (as root) and
 * xattrs. Regular files use copyFile with COPYFILE_FICLONE: a reflink where the filesystem
 * supports it, else copy_file_range in the kernel. `dst` must not exist.
 */
export function copyEntry(src: string, dst: string, st: Stats = lstatSync(src)): void {
  if (st.isSymbolicLink()) {
    symlinkSync(readlinkSync(src), dst);
  } else if (st.isFile()) {
    copyFileSync(src, dst, C.COPYFILE_EXCL | C.COPYFILE_FICLONE);
    chmodSync(dst, st.mode & 0o7777);
  } else {
    return; // sockets, fifos, devices: skipped, as OSTree's /etc merge does
  }
  finishCopiedEntry(src, dst, st);
}

/** Owner (as root) and xattrs of a freshly copied file or symlink; a regular file's mode is already set. */
function finishCopiedEntry(src: string, dst: string, st: Stats): void {
  if (IS_ROOT) lchownSync(dst, st.uid, st.gid);
  copyXattrs(src, dst);
  if (IS_ROOT && st.isFile() && (st.mode & 0o6000) !== 0) chmodSync(dst, st.mode & 0o7777); // chown clears setuid/setgid
}

/** Owner (as root), xattrs and mode of a copied directory, once its children are in place. */
function finishCopiedDir(src: string, dst: string, st: Stats): void {
  if (IS_ROOT) lchownSync(dst, st.uid, st.gid);
  copyXattrs(src, dst);
  chmodSync(dst, st.mode & 0o7777);
}

/** Recursively copy `src` to `dst` (must not exist), keeping modes, owners (as root) and xattrs. */
export function copyTree(src: string, dst: string): void {
  const st = lstatSync(src);
  if (!st.isDirectory()) {
    copyEntry(src, dst, st);
    return;
  }
  mkdirSync(dst, { mode: 0o700 });
  for (const name of readdirSync(src)) copyTree(path.join(src, name), path.join(dst, name));
  finishCopiedDir(src, dst, st);
}

/**
 * {@link copyTree} with the regular files copied on the thread pool, `concurrency` at a time
 * (directories are made first, on the calling thread, and get their modes, owners and xattrs
 * last, children first). For the copy of a whole `/etc`: hundreds of small files, each a
 * copy_file_range and a few metadata calls, overlap instead of running one after another.
 * On an error the copies in flight finish, no new one starts, and the first error is thrown.
 */
export async function copyTreeAsync(src: string, dst: string, concurrency = 8): Promise<void> {
  const files: Array<[string, string, Stats]> = [];
  const dirs: Array<[string, string, Stats]> = [];
  const plan = (s: string, d: string): void => {
    const st = lstatSync(s);
    if (!st.isDirectory()) {
      files.push([s, d, st]);
      return;
    }
    mkdirSync(d, { mode: 0o700 });
    dirs.push([s, d, st]);
    for (const name of readdirSync(s)) plan(path.join(s, name), path.join(d, name));
  };
  plan(src, dst);
  let next = 0;
  let failed = false;
  const lane = async (): Promise<void> => {
    while (!failed && next < files.length) {
      const [s, d, st] = files[next++];
      try {
        if (!st.isFile()) {
          copyEntry(s, d, st);
          continue;
        }
        await fsp.copyFile(s, d, C.COPYFILE_EXCL | C.COPYFILE_FICLONE);
        chmodSync(d, st.mode & 0o7777);
        finishCopiedEntry(s, d, st);
      } catch (e) {
        failed = true;
        throw e;
      }
    }
  };
  const results = await Promise.allSettled(Array.from({ length: Math.max(1, Math.min(concurrency, files.length)) }, lane));
  const bad = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (bad) throw bad.reason;
  for (let i = dirs.length - 1; i >= 0; i--) finishCopiedDir(...dirs[i]);
}

/** Remove one entry of any type (directories recursively). */
export function removeEntry(p: string): void {
  const st = lstatOrNull(p);
  if (!st) return;
  if (st.isDirectory()) rmSync(p, { recursive: true, force: true });
  else unlinkSync(p);
}
