/**
 * Checkout options that change what happens to a file or directory: the skip list (`filter`),
 * Docker/OCI whiteouts (`processWhiteouts`), overlayfs passthrough whiteouts
 * (`processPassthroughWhiteouts`) and `requireHardlinks` when the checkout cannot hardlink.
 * None of this runs unless one of those options is set (`Ctx.slowFiles`).
 */
import { chmodSync, lchownSync, lstatSync, promises as fsp, unlinkSync } from 'node:fs';
import path from 'node:path';
import * as native from '@larch/native';
import { LarchError } from './errors.js';
import { sanitize } from './fs-safety.js';
import { S_IFLNK, S_IFMT, type Checksum, type FileMeta } from './types.js';
import { type Ctx, cursorOf, ioErr } from './checkout-context.js';

export const WHITEOUT_PREFIX = '.wh.';
export const OPAQUE_WHITEOUT_NAME = '.wh..wh..opq';
export const OVERLAY_WHITEOUT_PREFIX = '.ostree-wh.';

export function hasOpaqueWhiteout(ctx: Ctx, tree: Checksum): boolean {
  const c = cursorOf(ctx, tree);
  while (c.nextFile(false)) if (c.name === OPAQUE_WHITEOUT_NAME) return true;
  return false;
}

/**
 * The slow path of a file, taken only when an option may change what happens to it (see
 * `slowFiles`): returns true when the file was dealt with here (skipped by the filter, or a
 * whiteout applied), false when it is to be written as usual. Throws for `requireHardlinks`
 * when the file would have to be copied, with ostree's words.
 */
export async function specialFile(ctx: Ctx, dir: string, rel: string, name: string, csum: Checksum): Promise<boolean> {
  const o = ctx.opts;
  if (o.filter?.(rel)) return true;
  const docker = o.processWhiteouts === true && name.startsWith(WHITEOUT_PREFIX);
  const overlay = o.processPassthroughWhiteouts === true && name.startsWith(OVERLAY_WHITEOUT_PREFIX);
  const mustLink = o.requireHardlinks === true && !ctx.hardlink;
  if (!docker && !overlay && !mustLink) return false;
  const obj = await ctx.repo.openFile(csum);
  const type = obj.meta.mode & S_IFMT;
  if (type === S_IFLNK) {
    // Whiteouts are regular files; a symlink is written as such. -H copies user-mode symlinks.
    if (mustLink && ctx.repo.mode !== 'bare-user' && ctx.repo.mode !== 'bare-user-only') throw cannotHardlink(ctx);
    return false;
  }
  if (docker) {
    const target = name.slice(WHITEOUT_PREFIX.length);
    if (target === '') throw new LarchError('INVALID_NAME', `Invalid empty whiteout '${target}'`, { name });
    if (target === '.' || target === '..') throw new LarchError('INVALID_NAME', `Invalid whiteout ${sanitize(name)}: it names ${target}`, { name });
    await fsp.rm(path.join(dir, target), { recursive: true, force: true });
    return true;
  }
  if (overlay) {
    const target = name.slice(OVERLAY_WHITEOUT_PREFIX.length);
    if (target === '') throw new LarchError('INVALID_NAME', `Invalid empty overlayfs whiteout '${target}'`, { name });
    if (target === '.' || target === '..') throw new LarchError('INVALID_NAME', `Invalid overlayfs whiteout ${sanitize(name)}: it names ${target}`, { name });
    overlayWhiteout(ctx, path.join(dir, target), obj.meta);
    ctx.stats.files++;
    return true;
  }
  // -H in a mode that cannot hardlink: ostree copies empty files and, in user mode, unreadable ones.
  if (obj.size === 0 || (ctx.userMode && (obj.meta.mode & 0o400) === 0)) return false;
  throw cannotHardlink(ctx);
}

export function cannotHardlink(ctx: Ctx): LarchError {
  const userRepo = ctx.repo.mode === 'bare-user' || ctx.repo.mode === 'bare-user-only';
  return new LarchError(
    'INVALID_ARGUMENT',
    userRepo ? 'User repository mode requires user checkout mode to hardlink' : 'Bare repository mode cannot hardlink in user checkout mode',
    { mode: ctx.repo.mode },
  );
}

/**
 * Create the overlayfs whiteout `p`: a character device 0:0 with the permission bits of the
 * `.ostree-wh.` file, and outside user mode its owner and xattrs. An existing entry is replaced
 * (`union`), kept (`unionAdd`), accepted when it is such a device with the same owner and mode
 * (`unionIdentical`), or an error.
 */
export function overlayWhiteout(ctx: Ctx, p: string, meta: FileMeta): void {
  const mode = meta.mode & 0o7777;
  const make = (): void => native.mknod(p, native.S_IFCHR | mode);
  try {
    make();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw ioErr(e, 'Creating whiteout char device', p);
    const o = ctx.opts;
    if (o.unionAdd) return;
    if (o.union) {
      try {
        unlinkSync(p);
        make();
      } catch (e2) {
        throw ioErr(e2, 'Creating whiteout char device', p);
      }
    } else if (o.unionIdentical) {
      const st = lstatSync(p);
      const same = st.isCharacterDevice() && st.rdev === 0 && (ctx.userMode || (st.uid === meta.uid && st.gid === meta.gid && (st.mode & 0o7777) === mode));
      if (!same) throw new LarchError('EXISTS', `Creating whiteout char device ${sanitize(p)}: File exists`, { path: p });
      return;
    } else {
      throw new LarchError('EXISTS', `Creating whiteout char device ${sanitize(p)}: File exists`, { path: p });
    }
  }
  if (!ctx.userMode) {
    try {
      for (const x of meta.xattrs) native.lsetxattr(p, x.name, x.value);
      lchownSync(p, meta.uid, meta.gid);
      chmodSync(p, mode);
    } catch (e) {
      throw ioErr(e, 'Setting metadata of whiteout char device', p);
    }
  }
}
