/**
 * The repository lock, with OSTree's semantics (ostree-repo.c "repo locking"): a `.lock` file in
 * the repo directory locked with flock(2). Writers (commit, pull transactions) take it shared,
 * so any number of them run together; destructive operations (prune, object deletion) take it
 * exclusive. Waiting is bounded by `core.lock-timeout-secs` (OSTree's default 30 s; -1 waits
 * forever), polling with non-blocking flock so the event loop is never blocked.
 *
 * Each acquisition opens its own file description, so two operations in one process exclude
 * each other exactly like two processes. Nesting inside one async call chain is recognised
 * (AsyncLocalStorage): a nested request of the same or weaker kind is free, and an exclusive
 * request nested in a shared hold upgrades that hold for its duration, as OSTree's per-thread
 * lock stack does. flock conversion is not atomic (another holder may slip in during an upgrade),
 * which matches OSTree. Locks vanish with the process, so a crash never leaves a stale lock.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { promises as fsp, constants as fsc } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { flock } from '@larch/native';
import { LarchError, ioError } from './errors.js';

export type LockKind = 'shared' | 'exclusive';

/** OSTree's default for `core.lock-timeout-secs`. */
export const DEFAULT_LOCK_TIMEOUT_SECS = 30;

export interface LockHandle {
  release(): Promise<void>;
}

interface Held {
  repoPath: string;
  fd: fsp.FileHandle;
  kind: LockKind;
}

const context = new AsyncLocalStorage<Held[]>();

/**
 * Take the repo lock. `timeoutMs` < 0 waits forever. Throws LOCK_TIMEOUT when the wait expires
 * and ABORTED when `signal` fires.
 */
export async function acquireRepoLock(
  repoPath: string,
  kind: LockKind,
  opts: { timeoutMs: number; signal?: AbortSignal },
): Promise<LockHandle> {
  const stack = context.getStore();
  const mine = stack?.find((h) => h.repoPath === repoPath);
  if (mine) {
    if (mine.kind === 'exclusive' || kind === 'shared') return { release: async () => undefined };
    // Upgrade the held shared lock for the duration of the nested exclusive section.
    await waitFor(mine.fd.fd, 'ex', kind, repoPath, opts);
    mine.kind = 'exclusive';
    let released = false;
    return {
      release: async () => {
        if (released) return;
        released = true;
        mine.kind = 'shared';
        flock(mine.fd.fd, 'sh');
      },
    };
  }
  const fh = await openLocked(repoPath, kind, opts);
  let released = false;
  return {
    release: async () => {
      if (released) return;
      released = true;
      try {
        flock(fh.fd, 'un');
      } finally {
        await fh.close();
      }
    },
  };
}

/** Open (creating) the repo's `.lock` file and take the flock, waiting up to the timeout. */
async function openLocked(repoPath: string, kind: LockKind, opts: { timeoutMs: number; signal?: AbortSignal }): Promise<fsp.FileHandle> {
  const lockPath = join(repoPath, '.lock');
  let fh: fsp.FileHandle;
  try {
    fh = await fsp.open(lockPath, fsc.O_RDWR | fsc.O_CREAT, 0o600);
  } catch (e) {
    throw ioError(e, 'Opening lock file', lockPath);
  }
  try {
    await waitFor(fh.fd, kind === 'shared' ? 'sh' : 'ex', kind, repoPath, opts);
  } catch (e) {
    await fh.close();
    throw e;
  }
  return fh;
}

async function waitFor(fd: number, op: 'sh' | 'ex', kind: LockKind, repoPath: string, opts: { timeoutMs: number; signal?: AbortSignal }): Promise<void> {
  const deadline = opts.timeoutMs < 0 ? Infinity : Date.now() + opts.timeoutMs;
  let delay = 2;
  for (;;) {
    if (flock(fd, op, { nonblocking: true })) return;
    if (opts.signal?.aborted) throw new LarchError('ABORTED', `Locking repo ${kind} aborted`, { repo: repoPath });
    const now = Date.now();
    if (now >= deadline) {
      throw new LarchError('LOCK_TIMEOUT', `Locking repo ${kind} failed: timed out after ${Math.round(opts.timeoutMs / 1000)}s`, { repo: repoPath, kind, timeoutMs: opts.timeoutMs });
    }
    await sleep(Math.min(delay, deadline - now));
    delay = Math.min(delay * 2, 100);
  }
}

/** Run `fn` holding the lock; nested calls in `fn`'s async chain see the hold. Releases on any outcome. */
export async function withRepoLock<T>(repoPath: string, kind: LockKind, opts: { timeoutMs: number; signal?: AbortSignal }, fn: () => Promise<T>): Promise<T> {
  const stack = context.getStore();
  const mine = stack?.find((h) => h.repoPath === repoPath);
  if (mine) {
    const h = await acquireRepoLock(repoPath, kind, opts);
    try {
      return await fn();
    } finally {
      await h.release();
    }
  }
  const fh = await openLocked(repoPath, kind, opts);
  try {
    const held: Held = { repoPath, fd: fh, kind };
    return await context.run([...(stack ?? []), held], fn);
  } finally {
    try {
      flock(fh.fd, 'un');
    } catch {
      // closing the descriptor releases the lock anyway
    }
    await fh.close();
  }
}
