import { describe, expect, it, beforeAll, afterAll } from 'vitest';
import { execFileSync } from 'node:child_process';
import { lstatSync, mkdtempSync, openSync, closeSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { flock, lgetxattr, llistxattr, lremovexattr, lsetxattr, mknod, NativeError, S_IFCHR, syncfs } from './index.js';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'larch-native-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('xattrs', () => {
  it('sets, reads, lists and removes a user xattr on a regular file', () => {
    const f = join(dir, 'f');
    writeFileSync(f, 'x');
    expect(lgetxattr(f, 'user.missing')).toBeNull();
    lsetxattr(f, 'user.b', Buffer.from('2'));
    lsetxattr(f, 'user.a', new Uint8Array([0, 1, 2, 255]));
    expect(lgetxattr(f, 'user.a')).toEqual(Buffer.from([0, 1, 2, 255]));
    expect(llistxattr(f).filter((n) => n.startsWith('user.')).sort()).toEqual(['user.a', 'user.b']);
    // cross-check with getfattr
    const out = execFileSync('getfattr', ['-n', 'user.b', '--only-values', f]).toString();
    expect(out).toBe('2');
    lremovexattr(f, 'user.b');
    expect(lgetxattr(f, 'user.b')).toBeNull();
    lremovexattr(f, 'user.b'); // missing is ignored
  });

  it('reads values larger than the first buffer and values written by setfattr', () => {
    const f = join(dir, 'big');
    writeFileSync(f, '');
    const big = Buffer.alloc(3000, 0x41);
    lsetxattr(f, 'user.big', big);
    expect(lgetxattr(f, 'user.big')).toEqual(big);
    execFileSync('setfattr', ['-n', 'user.ext', '-v', '0x00ff10', f]);
    expect(lgetxattr(f, 'user.ext')).toEqual(Buffer.from([0, 255, 16]));
    expect(lgetxattr(f, 'user.empty')).toBeNull();
    lsetxattr(f, 'user.empty', new Uint8Array(0));
    expect(lgetxattr(f, 'user.empty')).toEqual(Buffer.alloc(0));
  });

  it('does not follow symlinks', () => {
    const target = join(dir, 't');
    writeFileSync(target, '');
    const link = join(dir, 'l');
    symlinkSync('t', link);
    execFileSync('setfattr', ['-n', 'user.ontarget', '-v', 'v', target]);
    expect(lgetxattr(link, 'user.ontarget')).toBeNull();
    expect(llistxattr(link)).not.toContain('user.ontarget');
    // trusted.* xattrs are allowed on symlinks for root (user.* are not, by kernel rule)
    if (process.getuid?.() === 0) {
      lsetxattr(link, 'trusted.larch', Buffer.from('on-link'));
      expect(lgetxattr(link, 'trusted.larch')).toEqual(Buffer.from('on-link'));
      expect(lgetxattr(target, 'trusted.larch')).toBeNull();
      const out = execFileSync('getfattr', ['-h', '-n', 'trusted.larch', '--only-values', link]).toString();
      expect(out).toBe('on-link');
    }
  });

  it('throws NativeError with the errno name for a missing path', () => {
    const p = join(dir, 'nope');
    expect(() => lgetxattr(p, 'user.a')).toThrowError(NativeError);
    try {
      llistxattr(p);
      expect.unreachable();
    } catch (e) {
      expect((e as NativeError).code).toBe('ENOENT');
      expect((e as NativeError).path).toBe(p);
    }
  });
});

describe('flock', () => {
  it('excludes a second open file description, shares shared locks, and unlocks', () => {
    const f = join(dir, 'lock');
    writeFileSync(f, '');
    const a = openSync(f, 'r');
    const b = openSync(f, 'r');
    try {
      expect(flock(a, 'sh', { nonblocking: true })).toBe(true);
      expect(flock(b, 'sh', { nonblocking: true })).toBe(true);
      expect(flock(b, 'ex', { nonblocking: true })).toBe(false);
      expect(flock(a, 'un')).toBe(true);
      expect(flock(b, 'ex', { nonblocking: true })).toBe(true);
      expect(flock(a, 'sh', { nonblocking: true })).toBe(false);
      flock(b, 'un');
      expect(flock(a, 'ex', { nonblocking: true })).toBe(true);
    } finally {
      closeSync(a);
      closeSync(b);
    }
  });

  it('sees a lock held by another process (flock(1))', () => {
    const f = join(dir, 'lock2');
    writeFileSync(f, '');
    const fd = openSync(f, 'r');
    try {
      expect(flock(fd, 'ex', { nonblocking: true })).toBe(true);
      // `flock -n` exits 1 when it cannot take the lock
      let status = 0;
      try {
        execFileSync('flock', ['-n', '-s', f, 'true']);
      } catch (e) {
        status = (e as { status: number }).status;
      }
      expect(status).toBe(1);
    } finally {
      closeSync(fd);
    }
    execFileSync('flock', ['-n', '-s', f, 'true']);
  });

  it('rejects a bad fd', () => {
    expect(() => flock(987654, 'sh', { nonblocking: true })).toThrowError(/EBADF/);
  });
});

describe('syncfs', () => {
  it('syncs the filesystem of an fd and rejects a bad fd', () => {
    const fd = openSync(dir, 'r');
    try {
      expect(() => syncfs(fd)).not.toThrow();
    } finally {
      closeSync(fd);
    }
    expect(() => syncfs(987654)).toThrowError(/EBADF/);
  });
});

describe('mknod', () => {
  it('creates the character device 0:0 (an overlayfs whiteout) and refuses an existing name', () => {
    const p = join(dir, 'wh');
    mknod(p, S_IFCHR | 0o600);
    const st = lstatSync(p);
    expect(st.isCharacterDevice()).toBe(true);
    expect(st.rdev).toBe(0);
    // stat(1) agrees on the type and the device numbers
    expect(execFileSync('stat', ['-c', '%F %t:%T', p]).toString().trim()).toBe('character special file 0:0');
    const link = join(dir, 'wh-link');
    symlinkSync(join(dir, 'elsewhere'), link);
    expect(() => mknod(link, S_IFCHR | 0o600)).toThrowError(/EEXIST/);
    expect(() => mknod(p, S_IFCHR | 0o600)).toThrowError(/mknod '.*wh': EEXIST/);
  });

  it('encodes major and minor numbers as makedev does', () => {
    const p = join(dir, 'null-copy');
    mknod(p, S_IFCHR | 0o600, 1, 3);
    expect(execFileSync('stat', ['-c', '%t:%T', p]).toString().trim()).toBe('1:3');
  });
});
