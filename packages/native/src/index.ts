/**
 * The few Linux system calls Node's `fs` lacks, behind one small module.
 *
 * Why koffi into libc rather than a purpose-built addon: one prebuilt, widely used FFI binary
 * gives us every call we need (the no-follow `l*xattr` family, `flock`, `syncfs`, `mknod`) with the
 * exact libc semantics, so there is a single native dependency to audit. Symlink xattrs matter
 * to OSTree (archive and bare commits record them), which rules out the follow-only APIs.
 *
 * Every function is synchronous: each call is one short syscall. Errors are thrown as
 * `NativeError` carrying the errno name (`ENOENT`, `ENODATA`, ...) in `code`, like Node's own
 * fs errors, and the path or fd at fault.
 */
import koffi from 'koffi';

/** Error thrown for a failed system call; `code` is the errno name, as in Node's fs errors. */
export class NativeError extends Error {
  readonly code: string;
  readonly errno: number;
  readonly syscall: string;
  readonly path?: string;
  constructor(syscall: string, errno: number, path?: string) {
    const name = ERRNO_NAMES.get(errno) ?? `E${errno}`;
    super(`${syscall}${path !== undefined ? ` '${path}'` : ''}: ${name} (errno ${errno})`);
    this.name = 'NativeError';
    this.code = name;
    this.errno = errno;
    this.syscall = syscall;
    if (path !== undefined) this.path = path;
  }
}

const ERRNO_NAMES = new Map<number, string>(
  Object.entries(koffi.os.errno as Record<string, number>).map(([k, v]) => [v, k]),
);
const ENODATA = (koffi.os.errno as Record<string, number>).ENODATA ?? 61;
const ERANGE = (koffi.os.errno as Record<string, number>).ERANGE ?? 34;
const EWOULDBLOCK = (koffi.os.errno as Record<string, number>).EWOULDBLOCK ?? 11;
const EINTR = (koffi.os.errno as Record<string, number>).EINTR ?? 4;

const LOCK_SH = 1;
const LOCK_EX = 2;
const LOCK_NB = 4;
const LOCK_UN = 8;

/** Largest xattr value Linux accepts (XATTR_SIZE_MAX). */
export const XATTR_SIZE_MAX = 65536;
/** Largest xattr name list Linux returns (XATTR_LIST_MAX). */
export const XATTR_LIST_MAX = 65536;

interface Libc {
  lgetxattr: (path: string, name: string, buf: Uint8Array | null, size: number) => number;
  lsetxattr: (path: string, name: string, buf: Uint8Array, size: number, flags: number) => number;
  llistxattr: (path: string, buf: Uint8Array | null, size: number) => number;
  lremovexattr: (path: string, name: string) => number;
  flock: (fd: number, op: number) => number;
  syncfs: ((fd: number) => number) & { async: (fd: number, cb: (err: unknown, res: number) => void) => void };
  mknod: (path: string, mode: number, dev: bigint) => number;
}

let libc: Libc | undefined;
function lib(): Libc {
  if (libc) return libc;
  const l = koffi.load('libc.so.6');
  libc = {
    lgetxattr: l.func('intptr_t lgetxattr(const char *path, const char *name, _Out_ uint8_t *value, size_t size)'),
    lsetxattr: l.func('int lsetxattr(const char *path, const char *name, const uint8_t *value, size_t size, int flags)'),
    llistxattr: l.func('intptr_t llistxattr(const char *path, _Out_ uint8_t *list, size_t size)'),
    lremovexattr: l.func('int lremovexattr(const char *path, const char *name)'),
    flock: l.func('int flock(int fd, int operation)'),
    syncfs: l.func('int syncfs(int fd)'),
    mknod: l.func('int mknod(const char *path, uint32_t mode, uint64_t dev)'),
  } as Libc;
  return libc;
}

function fail(syscall: string, path?: string): never {
  throw new NativeError(syscall, koffi.errno(), path);
}

/**
 * Read one extended attribute without following a final symlink.
 * Returns null when the attribute does not exist (ENODATA); throws NativeError otherwise.
 */
export function lgetxattr(path: string, name: string): Buffer | null {
  const c = lib();
  // Try a small buffer first: most values (user.ostreemeta, security labels) fit.
  let buf = Buffer.allocUnsafe(256);
  for (let attempt = 0; attempt < 4; attempt++) {
    const n = Number(c.lgetxattr(path, name, buf, buf.length));
    if (n >= 0) return Buffer.from(buf.subarray(0, n));
    const e = koffi.errno();
    if (e === ENODATA) return null;
    if (e !== ERANGE) throw new NativeError('lgetxattr', e, path);
    const size = Number(c.lgetxattr(path, name, null, 0));
    if (size < 0) {
      if (koffi.errno() === ENODATA) return null;
      fail('lgetxattr', path);
    }
    buf = Buffer.allocUnsafe(Math.max(size, 1));
  }
  throw new NativeError('lgetxattr', ERANGE, path);
}

/** Set one extended attribute without following a final symlink (flags 0: create or replace). */
export function lsetxattr(path: string, name: string, value: Uint8Array): void {
  if (lib().lsetxattr(path, name, value, value.length, 0) !== 0) fail('lsetxattr', path);
}

/** Remove one extended attribute without following a final symlink. Missing attributes are ignored. */
export function lremovexattr(path: string, name: string): void {
  if (lib().lremovexattr(path, name) !== 0) {
    const e = koffi.errno();
    if (e === ENODATA) return;
    throw new NativeError('lremovexattr', e, path);
  }
}

/**
 * List the extended attribute names of a path without following a final symlink, in the
 * order the kernel returns them (callers that need a canonical order must sort).
 */
export function llistxattr(path: string): string[] {
  const c = lib();
  let buf = Buffer.allocUnsafe(1024);
  for (let attempt = 0; attempt < 4; attempt++) {
    const n = Number(c.llistxattr(path, buf, buf.length));
    if (n >= 0) return splitNames(buf.subarray(0, n));
    const e = koffi.errno();
    if (e !== ERANGE) throw new NativeError('llistxattr', e, path);
    const size = Number(c.llistxattr(path, null, 0));
    if (size < 0) fail('llistxattr', path);
    buf = Buffer.allocUnsafe(Math.max(size, 1));
  }
  throw new NativeError('llistxattr', ERANGE, path);
}

function splitNames(list: Buffer): string[] {
  const names: string[] = [];
  let start = 0;
  for (let i = 0; i < list.length; i++) {
    if (list[i] === 0) {
      if (i > start) names.push(list.toString('utf8', start, i));
      start = i + 1;
    }
  }
  return names;
}

/**
 * flock(2) on an open file descriptor. `sh` = LOCK_SH, `ex` = LOCK_EX, `un` = LOCK_UN.
 * With `nonblocking`, returns false instead of waiting when the lock is held elsewhere.
 * Without it the call blocks the calling thread; prefer nonblocking plus a retry loop in Node.
 */
export function flock(fd: number, op: 'sh' | 'ex' | 'un', opts: { nonblocking?: boolean } = {}): boolean {
  let flags = op === 'sh' ? LOCK_SH : op === 'ex' ? LOCK_EX : op === 'un' ? LOCK_UN : -1;
  if (flags < 0) throw new TypeError(`flock: unknown operation ${String(op)}`);
  if (opts.nonblocking) flags |= LOCK_NB;
  for (;;) {
    if (lib().flock(fd, flags) === 0) return true;
    const e = koffi.errno();
    if (e === EINTR) continue;
    if (e === EWOULDBLOCK && opts.nonblocking) return false;
    throw new NativeError('flock', e);
  }
}

/** syncfs(2): flush every dirty page of the filesystem holding `fd` to stable storage. */
export function syncfs(fd: number): void {
  if (lib().syncfs(fd) !== 0) fail('syncfs');
}

/**
 * syncfs(2) on a thread of the FFI's pool, so the calling thread keeps running while the
 * filesystem flushes (a flush of a large pull takes tens of milliseconds). The file descriptor
 * must stay open until the promise settles. A failed call is repeated on the calling thread,
 * which reports its errno (the pool thread's errno is not visible here); syncfs is idempotent.
 */
export function syncfsAsync(fd: number): Promise<void> {
  return new Promise((resolve, reject) => {
    lib().syncfs.async(fd, (err: unknown, res: number) => {
      if (err) reject(err instanceof Error ? err : new Error(String(err)));
      else if (res === 0) resolve();
      else {
        try {
          syncfs(fd);
          resolve();
        } catch (e) {
          reject(e);
        }
      }
    });
  });
}

/** File type bits of a character device, for {@link mknod}. */
export const S_IFCHR = 0o020000;

/**
 * mknod(2): create a device node or FIFO at `path` (never through a final symlink: an existing
 * entry of any kind fails with EEXIST). `mode` holds the type (`S_IFCHR`, ...) and the
 * permission bits, which the process umask reduces as for any new file; `major`/`minor` name the
 * device. Creating a character device needs CAP_MKNOD, except the 0:0 device that overlayfs uses
 * as a whiteout, which unprivileged users may create on recent kernels.
 */
export function mknod(path: string, mode: number, major = 0, minor = 0): void {
  // glibc's makedev() layout of a 64-bit dev_t.
  const M = BigInt(major);
  const m = BigInt(minor);
  const dev = ((M & 0xfffff000n) << 32n) | ((M & 0xfffn) << 8n) | ((m & 0xffffff00n) << 12n) | (m & 0xffn);
  if (lib().mknod(path, mode, dev) !== 0) fail('mknod', path);
}
