/**
 * Checkout phase 2: the depth-first walk over the paths of a validated tree, creating each
 * directory, handing each file to the hardlink or copy path (checkout-hardlink.ts,
 * checkout-copy.ts) or to the slow path of checkout-whiteouts.ts, and giving each directory its
 * metadata once everything below it is written.
 */
import { chmodSync, lchownSync, linkSync, lstatSync, mkdirSync, promises as fsp, utimesSync } from 'node:fs';
import * as native from '@larch/native';
import { LarchError } from './errors.js';
import { sanitize } from './fs-safety.js';
import { _DirTreeCursor } from './dirtree-cursor.js';
import type { Checksum, DirMeta, DirTree } from './types.js';
import { type Ctx, checkAbort, cursorOf, ioErr, report } from './checkout-context.js';
import { copyFile, copySmallArchiveSync } from './checkout-copy.js';
import { hardlinkOrCopy, linkFromCacheSync, mustCopy } from './checkout-hardlink.js';
import { hasOpaqueWhiteout, specialFile } from './checkout-whiteouts.js';

/** A directory being written: it gets its metadata once `pending` drops to zero. */
export interface DirState {
  path: string;
  meta: Checksum;
  /** Created by this checkout (only those get metadata). */
  made: boolean;
  /** The walk's own hold, plus unfinished subdirectories, plus files in flight. */
  pending: number;
  parent: DirState | null;
}

/**
 * Phase 2: the depth-first walk over paths. Files of a directory are written (hardlinked
 * synchronously, or copied through at most `concurrency` jobs) before its subdirectories are
 * entered; a directory is finished (owner, xattrs, mode, mtime 0) once the walk has left it and
 * every job and subdirectory under it is done, so children are finished before their parents,
 * as in ostree. On the first error no new work starts; the jobs in flight settle and the error
 * is thrown (directories are then left unfinished, mode 0700, as ostree leaves them).
 */
export async function writeTree(ctx: Ctx, root: string, tree: Checksum, meta: Checksum, created: boolean): Promise<void> {
  const limit = Math.max(1, ctx.opts.concurrency ?? 16);
  let active = 0;
  let failure: unknown = null;
  let failed = false;
  const slotWaiters: Array<() => void> = [];
  const fail = (e: unknown): void => {
    if (!failed) {
      failed = true;
      failure = e;
    }
  };
  const release = (d: DirState | null): void => {
    while (d !== null && --d.pending === 0) {
      if (failed) return;
      if (d.made) {
        try {
          finishDirSync(ctx, d.path, ctx.metas.get(d.meta)!);
        } catch (e) {
          fail(ioErr(e, 'Setting metadata of', d.path));
          return;
        }
      }
      ctx.stats.dirs++;
      d = d.parent;
    }
  };
  /** Start `job` for a file of `dir` once a slot is free; resolves when it has started. */
  const start = async (dir: DirState, job: () => Promise<void>): Promise<void> => {
    while (active >= limit) await new Promise<void>((r) => slotWaiters.push(r));
    if (failed) throw failure;
    active++;
    dir.pending++;
    job().then(
      () => undefined,
      (e: unknown) => fail(e),
    ).finally(() => {
      active--;
      slotWaiters.shift()?.();
      release(dir);
    });
  };

  let n = 0;
  const writeFiles = async (dir: DirState, files: _DirTreeCursor): Promise<void> => {
    while (files.nextFile()) {
      if (failed) throw failure;
      const name = files.name;
      const csum = files.checksum;
      if (ctx.slowFiles && (await specialFile(ctx, dir.path, `${dir.path.slice(root.length)}/${name}`, name, csum))) continue;
      if (ctx.hardlink) {
        // Checksums here come from validated dirtrees (hex of 32 bytes), so the path is built directly.
        const objPath = `${ctx.objectsDir}${csum.slice(0, 2)}/${csum.slice(2)}.file`;
        let linked = false;
        try {
          if (!mustCopy(ctx, ctx.repo.mode, objPath, csum)) {
            linkSync(objPath, `${dir.path}/${name}`);
            linked = true;
          }
        } catch {
          // The general path below retries and reports (existing name, EXDEV, missing object).
        }
        if (linked) {
          ctx.stats.hardlinked++;
          ctx.stats.files++;
          report(ctx, false);
        } else await start(dir, () => hardlinkOrCopy(ctx, dir.path, name, csum));
      } else if (ctx.linkable.length > 0) {
        // Only a parent repository's mode fits the checkout: hardlink from it what it holds.
        await start(dir, () => hardlinkOrCopy(ctx, dir.path, name, csum));
      } else if (ctx.cache && linkFromCacheSync(ctx, dir.path, name, csum)) {
        // linked
      } else if (!(ctx.repo.mode === 'archive' && !ctx.anyUnion && !ctx.opts.requireHardlinks && copySmallArchiveSync(ctx, dir.path, name, csum))) {
        await start(dir, () => copyFile(ctx, dir.path, name, csum));
      }
      if ((++n & 1023) === 0) {
        // Lets job completions, progress and an abort in.
        await new Promise<void>((r) => setImmediate(r));
        checkAbort(ctx.opts.signal);
      }
    }
  };

  const top: DirState = { path: root, meta, made: created, pending: 1, parent: null };
  // A frame keeps only the subdirectory list: the files are done with before the walk descends.
  const stack: Array<{ dir: DirState; dirs: DirTree['dirs']; i: number }> = [];
  try {
    const rootTree = cursorOf(ctx, tree);
    stack.push({ dir: top, dirs: rootTree.dirs, i: 0 });
    await writeFiles(top, rootTree);
    while (stack.length > 0) {
      if (failed) throw failure;
      const frame = stack[stack.length - 1];
      if (frame.i < frame.dirs.length) {
        const d = frame.dirs[frame.i++];
        const p = `${frame.dir.path}/${d.name}`;
        if (ctx.opts.filter?.(`${p.slice(root.length)}/`)) continue;
        if (ctx.opts.processWhiteouts && hasOpaqueWhiteout(ctx, d.treeChecksum)) await fsp.rm(p, { recursive: true, force: true });
        const made = makeDirSync(ctx, p);
        checkDevice(ctx, p);
        const child: DirState = { path: p, meta: d.metaChecksum, made, pending: 1, parent: frame.dir };
        frame.dir.pending++;
        const dt = cursorOf(ctx, d.treeChecksum);
        stack.push({ dir: child, dirs: dt.dirs, i: 0 });
        await writeFiles(child, dt);
        continue;
      }
      stack.pop();
      release(frame.dir);
    }
  } catch (e) {
    fail(e);
  }
  while (active > 0) await new Promise<void>((r) => slotWaiters.push(r));
  if (failed) throw failure;
}

export function makeDirSync(ctx: Ctx, p: string): boolean {
  try {
    mkdirSync(p, 0o700);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || !ctx.anyUnion) throw ioErr(e, 'mkdirat', p, 'EXISTS');
  }
  const st = lstatSync(p);
  if (st.isSymbolicLink()) throw new LarchError('EXISTS', `Refusing to follow symlink ${sanitize(p)} in checkout destination`, { path: p });
  if (!st.isDirectory()) throw new LarchError('EXISTS', `mkdirat: ${sanitize(p)}: File exists (not a directory)`, { path: p });
  return false;
}

export function finishDirSync(ctx: Ctx, p: string, meta: DirMeta): void {
  if (!ctx.userMode) {
    lchownSync(p, meta.uid, meta.gid);
    for (const x of meta.xattrs) native.lsetxattr(p, x.name, x.value);
  }
  const canonical = ctx.repo.mode === 'bare-user-only' || ctx.opts.bareUserOnlyDirs === true;
  chmodSync(p, meta.mode & (canonical ? 0o775 : 0o7777));
  // As ostree: a copying checkout (mostly of /etc) keeps the directories' own mtime.
  if (ctx.opts.noHardlinks !== true) utimesSync(p, 0, 0);
}

/** `requireHardlinks`: objects cannot be hardlinked onto another device; say so before writing there. */
export function checkDevice(ctx: Ctx, dir: string): void {
  if (!ctx.opts.requireHardlinks) return;
  const dev = lstatSync(dir).dev;
  if (dev !== ctx.repoDev) {
    throw new LarchError('INVALID_ARGUMENT', `Unable to do hardlink checkout across devices (src=${ctx.repoDev} destination=${dev})`, { path: dir });
  }
}

/** Whether dirtree `tree` holds the file `.wh..wh..opq` (an opaque directory, with `processWhiteouts`). */
