/**
 * The repository's `tmp/`: per-transaction staging directories and the cleanup of what crashed
 * writers leave behind, with OSTree's rules (ostree-repo.c `_ostree_repo_allocate_tmpdir`,
 * `_ostree_repo_try_lock_tmpdir`; ostree-repo-commit.c `cleanup_tmpdir`, `cleanup_txn_dir`).
 *
 * - A transaction stages its files in `tmp/staging-<BOOTID>-XXXXXX`, locked by an exclusive,
 *   non-blocking flock on the file `tmp/staging-<BOOTID>-XXXXXX-lock` beside it (outside the
 *   directory, so it can stay locked until the directory is gone). The boot id is
 *   `$OSTREE_BOOTID` or `/proc/sys/kernel/random/boot_id`: staged files of an earlier boot may
 *   never have reached the disk, so only directories of this boot are ever reused.
 * - Allocation first looks for a directory of this boot that nobody holds (its writer died) and
 *   takes it over, as ostree does; otherwise it creates a new one. A directory taken over is
 *   emptied first: our staged files carry no name that says they are complete (ostree's are
 *   named by checksum and resumed), so they are discarded, not published.
 * - The lock disappears with its process, so a SIGKILLed writer's directory is unlocked at once.
 *   Cleanup tries each `staging-*` directory's lock: held means a live writer, and the directory
 *   is left alone whatever its age or boot; otherwise a directory of another boot is removed
 *   (and, with `allBoots`, one of this boot too: prune holds the repository's exclusive lock,
 *   so no writer of ours can be between allocation and locking). Every other entry of `tmp/`
 *   except `cache` is removed once older than `core.tmp-expiry-secs` (default one day), judged by
 *   the later of its mtime and ctime (staged bare objects carry mtime 0 on purpose), and entries
 *   from the future are kept. A `-lock` file whose directory still exists is left to that
 *   directory's rule.
 *
 * The lock is flock(2), like the repository lock (repo-lock.ts). ostree takes these locks as OFD
 * locks (fcntl), which Linux keeps apart from flock, so after taking our flock we also look in
 * /proc/locks for an OFD or POSIX lock on the same file: one there belongs to another process
 * (ours are flocks), typically a running ostree, and the directory is treated as held. This
 * check-then-act leaves a window of a few system calls in which an ostree process starting a
 * transaction could take a directory we are taking over; ostree, for its part, does not see our
 * flocks at all. A native OFD lock would close both gaps.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { randomBytes } from 'node:crypto';
import { closeSync, constants as fsc, fstatSync, lstatSync, openSync, promises as fsp, readFileSync, rmSync, unlinkSync, utimesSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import { flock } from '@larch/native';
import { LarchError, hasErrno, ioError } from './errors.js';
import type { Repo } from './repo.js';
import { setRef as writeRef } from './repo-refs.js';
import type { Checksum } from './types.js';

/** OSTree's OSTREE_REPO_TMPDIR_STAGING. */
export const STAGING_PREFIX = 'staging-';
const LOCK_SUFFIX = '-lock';

let tmpCounter = 0;

/** The boot id staging directories are named after: `$OSTREE_BOOTID`, else the kernel's. */
export function bootId(): string {
  const env = process.env.OSTREE_BOOTID;
  if (env !== undefined && env !== '') return env;
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch (e) {
    throw ioError(e, 'Reading', '/proc/sys/kernel/random/boot_id');
  }
}

/** A held lock on `tmp/<name>-lock`. */
interface TmpLock {
  fd: number;
  lockPath: string;
}

/**
 * Try to take the lock of staging directory `name` in `tmpDir`. Null when another process holds
 * it, or when the directory is gone (someone removed it between our look and our lock).
 */
function tryLockStagingDir(tmpDir: string, name: string): TmpLock | null {
  const lockPath = join(tmpDir, name + LOCK_SUFFIX);
  let fd: number;
  try {
    fd = openSync(lockPath, fsc.O_RDWR | fsc.O_CREAT | fsc.O_NOFOLLOW, 0o600);
  } catch (e) {
    throw ioError(e, 'Opening lock file', lockPath);
  }
  let locked = false;
  try {
    locked = flock(fd, 'ex', { nonblocking: true });
  } catch (e) {
    closeSync(fd);
    throw ioError(e, 'Locking', lockPath);
  }
  if (!locked) {
    closeSync(fd);
    return null;
  }
  const st = lstatSync(join(tmpDir, name), { throwIfNoEntry: false });
  if (st === undefined || !st.isDirectory()) {
    unlockAndDelete({ fd, lockPath });
    return null;
  }
  if (lockedByOtherKind(fstatSync(fd))) {
    closeSync(fd);
    return null;
  }
  return { fd, lockPath };
}

/**
 * True when /proc/locks shows an OFD or POSIX lock (not a flock, which is what we take) held on
 * the file `st` describes: an ostree process's staging lock. False when /proc/locks is unreadable.
 */
function lockedByOtherKind(st: Stats): boolean {
  let text: string;
  try {
    text = readFileSync('/proc/locks', 'utf8');
  } catch {
    return false;
  }
  // glibc's dev_t encoding; /proc/locks prints MAJOR:MINOR in hex, then the inode in decimal.
  const major = Number((BigInt(st.dev) >> 8n) & 0xfffn) | Number((BigInt(st.dev) >> 32n) & ~0xfffn);
  const minor = Number(BigInt(st.dev) & 0xffn) | Number((BigInt(st.dev) >> 12n) & ~0xffn);
  const want = `${major.toString(16).padStart(2, '0')}:${minor.toString(16).padStart(2, '0')}:${st.ino}`;
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    // "N: TYPE ADVISORY MODE PID MAJ:MIN:INODE START END"; a blocked waiter has "->" after "N:".
    if (f.length < 6 || f[1] === '->' || f[1] === 'FLOCK') continue;
    if (f[5] === want) return true;
  }
  return false;
}

/** Delete the lock file while holding it (as libglnx does for an exclusive lock), then release it. */
function unlockAndDelete(lock: TmpLock): void {
  try {
    unlinkSync(lock.lockPath);
  } catch {
    // already gone
  }
  closeSync(lock.fd);
}

/** A locked staging directory of one transaction (see the file comment). */
export class StagingDir {
  private lock: TmpLock | null;

  constructor(
    /** Absolute path of the directory. */
    readonly path: string,
    lock: TmpLock,
    /** True when it was taken over from a writer of this boot that died. */
    readonly reused: boolean,
  ) {
    this.lock = lock;
  }

  /** A fresh, unused path inside the directory. */
  newTmpPath(prefix = 'obj'): string {
    return join(this.path, `larch-${prefix}-${process.pid}-${(tmpCounter++).toString(36)}-${randomBytes(4).toString('hex')}`);
  }

  /** Remove the directory with whatever is left in it, then drop its lock. Idempotent. */
  async remove(): Promise<void> {
    if (this.lock === null) return;
    try {
      await fsp.rm(this.path, { recursive: true, force: true });
    } catch (e) {
      throw ioError(e, 'Removing', this.path);
    } finally {
      // Deleting the lock file first would let another process lock a new lock file while the
      // directory is still being removed; with rm done, nobody can take the directory over.
      unlockAndDelete(this.lock);
      this.lock = null;
    }
  }

  /**
   * Drop the lock and leave the directory with what is in it, as ostree's abort does: a later
   * transaction of this boot takes it over (and empties it), a cleanup of another boot or prune
   * removes it. Idempotent; a no-op after {@link remove}.
   */
  release(): void {
    if (this.lock === null) return;
    unlockAndDelete(this.lock);
    this.lock = null;
  }
}

/**
 * Allocate and lock a staging directory for a transaction: one of this boot whose writer died
 * (emptied first) or a new one. Callers stage into it ({@link StagingDir.newTmpPath}) and call
 * {@link StagingDir.remove} when done, published or not. Locking: its own staging lock only;
 * the caller holds the repository's shared lock for the transaction.
 */
export async function allocateStagingDir(repo: Repo): Promise<StagingDir> {
  const tmpDir = repo.tmpPath;
  const prefix = `${STAGING_PREFIX}${bootId()}-`;
  let names: string[];
  try {
    names = await fsp.readdir(tmpDir);
  } catch (e) {
    throw ioError(e, 'Listing', tmpDir);
  }
  for (const name of names) {
    if (!name.startsWith(prefix) || name.endsWith(LOCK_SUFFIX)) continue;
    const lock = tryLockStagingDir(tmpDir, name);
    if (lock === null) continue;
    const path = join(tmpDir, name);
    try {
      for (const entry of await fsp.readdir(path)) await fsp.rm(join(path, entry), { recursive: true, force: true });
      // Touched, as ostree does, so that its age says it is in use again.
      const now = new Date();
      utimesSync(path, now, now);
    } catch (e) {
      unlockAndDelete(lock);
      throw ioError(e, 'Emptying', path);
    }
    return new StagingDir(path, lock, true);
  }
  for (let attempt = 0; ; attempt++) {
    let path: string;
    try {
      path = await fsp.mkdtemp(join(tmpDir, prefix));
    } catch (e) {
      throw ioError(e, 'Creating a staging directory in', tmpDir);
    }
    // Another process may take the new directory over before we lock it: then try again.
    const lock = tryLockStagingDir(tmpDir, path.slice(tmpDir.length + 1));
    if (lock !== null) return new StagingDir(path, lock, false);
    if (attempt >= 100) throw new LarchError('IO_ERROR', `Could not lock a new staging directory in ${tmpDir}`, { path: tmpDir });
  }
}

/** The staging directory of the transaction running in this async context, per repository path. */
const active = new AsyncLocalStorage<ReadonlyMap<string, StagingDir>>();

/** The staging directory {@link withStagingDir} set up for `repoPath` in this async context. */
export function _activeStagingDir(repoPath: string): StagingDir | undefined {
  return active.getStore()?.get(repoPath);
}

/**
 * Run `fn` as one transaction's staging: allocate a staging directory, make every
 * `repo.newTmpPath()` (and so `writeTmpFile`) called within `fn`'s async context create its file
 * there, then clean `tmp/` ({@link cleanupTmp}). When `fn` succeeds the directory is removed;
 * when it throws (the transaction aborts) the directory is kept with its staged files and only
 * its lock is dropped, as ostree's abort does: a later transaction of this boot takes it over and
 * empties it, a transaction of another boot (or prune) removes it. Staged files carry temporary
 * names, so nothing in a kept directory is ever visible as an object.
 * Locking: the caller holds the repository's shared lock around it.
 * Crash: a killed process leaves an unlocked directory, treated the same way.
 */
export async function withStagingDir<T>(repo: Repo, fn: (stage: StagingDir) => Promise<T>): Promise<T> {
  const stage = await allocateStagingDir(repo);
  const map = new Map(active.getStore() ?? []);
  map.set(repo.path, stage);
  let result: T;
  try {
    result = await active.run(map, () => fn(stage));
  } catch (e) {
    stage.release();
    await cleanupTmp(repo).catch(() => 0);
    throw e;
  }
  await stage.remove();
  await cleanupTmp(repo);
  return result;
}

/**
 * `OSTREE_REPO_TEST_ERROR` names `pre-commit` (a list separated by commas, colons, semicolons or
 * spaces, as ostree reads it): every transaction fails right before it publishes anything.
 */
export function testErrorPreCommit(): boolean {
  return (process.env.OSTREE_REPO_TEST_ERROR ?? '').split(/[,:; ]/).includes('pre-commit');
}

/** The message of the failpoint's error, ostree's words. */
export const TEST_ERROR_PRE_COMMIT_MESSAGE = 'OSTREE_REPO_TEST_ERROR_PRE_COMMIT specified';

/** One transaction of {@link withTransaction}. */
export interface Transaction {
  /** The transaction's staging directory. */
  readonly stage: StagingDir;
  /** Point `refspec` at `checksum` (null deletes it) when the transaction commits; nothing before. */
  setRef(refspec: string, checksum: Checksum | null): void;
}

/**
 * A repository transaction, as ostree's prepare/commit/abort_transaction: takes the shared
 * repository lock, stages in a locked staging directory ({@link withStagingDir}), runs `fn`, and
 * then commits: the refs `fn` set are written (each atomically, by rename), the staging directory
 * is removed and `tmp/` cleaned, and with `core.auto-update-summary` the summary is regenerated
 * once. When `fn` throws, or when the `OSTREE_REPO_TEST_ERROR=pre-commit` failpoint is set, the
 * transaction aborts before writing any ref: the staging directory stays, unlocked.
 */
export async function withTransaction<T>(repo: Repo, fn: (txn: Transaction) => Promise<T>): Promise<T> {
  let changedRefs = false;
  const result = await repo.withLock('shared', () =>
    withStagingDir(repo, async (stage) => {
      const pending = new Map<string, Checksum | null>();
      const out = await fn({ stage, setRef: (refspec, checksum) => void pending.set(refspec, checksum) });
      if (testErrorPreCommit()) throw new LarchError('IO_ERROR', TEST_ERROR_PRE_COMMIT_MESSAGE, { failpoint: 'pre-commit' });
      for (const [refspec, checksum] of pending) await writeRef(repo, refspec, checksum);
      changedRefs = pending.size > 0;
      return out;
    }),
  );
  if (changedRefs) await repo.maybeRegenerateSummary();
  return result;
}

export interface CleanupTmpOptions {
  /** The time to judge ages against (ms since the epoch; default now). */
  now?: number;
  /** Also remove unlocked staging directories of this boot (prune, under the exclusive lock). */
  allBoots?: boolean;
}

/**
 * Remove what crashed writers left in `tmp/` (see the file comment for the rules): unlocked
 * staging directories of other boots (of any boot with `allBoots`), and every other entry but
 * `cache` older than `core.tmp-expiry-secs`. Never touches a staging directory whose lock is
 * held. Returns the number of entries removed. Errors on single entries (one vanished meanwhile,
 * one we may not remove) are skipped; only an unreadable `tmp/` throws.
 */
export async function cleanupTmp(repo: Repo, opts: CleanupTmpOptions = {}): Promise<number> {
  const tmpDir = repo.tmpPath;
  let names: string[];
  try {
    names = await fsp.readdir(tmpDir);
  } catch (e) {
    if (hasErrno(e, 'ENOENT')) return 0;
    throw ioError(e, 'Listing', tmpDir);
  }
  const ownPrefix = `${STAGING_PREFIX}${bootId()}-`;
  const nowSecs = Math.floor((opts.now ?? Date.now()) / 1000);
  const expiry = repo.tmpExpirySecs;
  const present = new Set(names);
  let removed = 0;
  for (const name of names) {
    if (name === 'cache') continue;
    const path = join(tmpDir, name);
    const st = lstatSync(path, { throwIfNoEntry: false });
    if (st === undefined) continue;
    try {
      if (name.startsWith(STAGING_PREFIX) && st.isDirectory()) {
        const lock = tryLockStagingDir(tmpDir, name);
        if (lock === null) continue;
        if (name.startsWith(ownPrefix) && opts.allBoots !== true) {
          // A directory of this boot stays for a later transaction to take over; its lock file
          // goes, as after any exclusive lock we release (and as ostree's cleanup leaves it).
          unlockAndDelete(lock);
          continue;
        }
        try {
          rmSync(path, { recursive: true, force: true });
          removed++;
        } finally {
          unlockAndDelete(lock);
        }
        continue;
      }
      if (name.endsWith(LOCK_SUFFIX) && name.startsWith(STAGING_PREFIX) && present.has(name.slice(0, -LOCK_SUFFIX.length))) continue;
      const age = Math.max(st.mtimeMs, st.ctimeMs) / 1000;
      if (age > nowSecs) continue;
      if (nowSecs - age > expiry) {
        rmSync(path, { recursive: true, force: true });
        removed++;
      }
    } catch {
      // vanished meanwhile, or not ours to remove: the next cleanup tries again
    }
  }
  return removed;
}
