/**
 * Materialising a file by hardlink: from the repository itself or a parent of the `core.parent`
 * chain whose mode fits the checkout mode, or (`uncompressedCache`) from the inflated copy in
 * the repository's `uncompressed-objects-cache/`; the objects ostree never hardlinks, and the
 * fall back to a copy (checkout-copy.ts) when a link is refused.
 */
import { closeSync, fchmodSync, fsyncSync, linkSync, lstatSync, mkdirSync, openSync, promises as fsp, renameSync, unlinkSync } from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import * as native from '@larch/native';
import { LarchError } from './errors.js';
import { writeAllSync } from './objects/content-io.js';
import { CREATE_EXCL_NOFOLLOW, sanitize } from './fs-safety.js';
import { USER_META_XATTR, contentChecksumOf, parseUserMeta } from './objects/index.js';
import type { Repo } from './repo.js';
import { S_IFLNK, S_IFMT, S_IFREG, type Checksum } from './types.js';
import { type Ctx, S_ISGID, S_ISUID, ioErr, report, tmpName } from './checkout-context.js';
import { copyFile, readSmallArchive } from './checkout-copy.js';
import { sameFile } from './checkout-union.js';

/**
 * Objects ostree never hardlinks: empty regular files (all empty files share one object, and
 * thousands of links to it would hit the filesystem's link limit) and the symlinks of the
 * user-mode repos (bare-user stores them as regular files).
 *
 * For bare-user the decision needs no stat: `user.ostreemeta` gives the mode, and an empty file
 * is recognised by its checksum, which for a given metadata is fixed (sha256 of the header
 * alone); that checksum is computed once per distinct metadata.
 */
export function mustCopy(ctx: Ctx, mode: Repo['mode'], objPath: string, csum: Checksum): boolean {
  if (mode === 'bare-user') {
    const m = native.lgetxattr(objPath, USER_META_XATTR);
    if (m === null || m.length < 12) return true; // the copy path reports the corruption
    if ((m.readUInt32BE(8) & S_IFMT) === S_IFLNK) return true;
    if (ctx.userMode && (m.readUInt32BE(8) & 0o400) === 0) return true; // copied readable, see userFileMode
    // Most files share their metadata with the previous one: compare bytes before building a key.
    if (ctx.lastMeta !== null && m.equals(ctx.lastMeta)) return csum === ctx.lastEmpty;
    const key = m.toString('latin1');
    let empty = ctx.emptyByMeta.get(key);
    if (empty === undefined) {
      try {
        empty = contentChecksumOf({ ...parseUserMeta(m), symlinkTarget: '' });
      } catch {
        return true;
      }
      ctx.emptyByMeta.set(key, empty);
    }
    ctx.lastMeta = m;
    ctx.lastEmpty = empty;
    return csum === empty;
  }
  const st = lstatSync(objPath);
  if (st.isSymbolicLink()) return mode !== 'bare';
  return st.size === 0 || (ctx.userMode && (st.mode & 0o400) === 0);
}

/**
 * The repository to hardlink `csum` from: the first of `ctx.linkable` that holds it (one lstat
 * each), or null when none does and the file is copied. Without a parent chain, the repository
 * itself, unchecked (a missing object is reported when the link fails).
 */
export function linkSource(ctx: Ctx, csum: Checksum): Repo | null {
  if (ctx.repo.parent === null) return ctx.linkable[0] ?? null;
  for (const r of ctx.linkable) if (r.hasLocalObjectSync('file', csum)) return r;
  return null;
}

/** Copy `csum` to `dir/name`, through the uncompressed cache when it applies. */
export async function copyOrCache(ctx: Ctx, dir: string, name: string, csum: Checksum): Promise<void> {
  if (ctx.cache && linkFromCacheSync(ctx, dir, name, csum)) return;
  await copyFile(ctx, dir, name, csum);
}

export async function hardlinkOrCopy(ctx: Ctx, dir: string, name: string, csum: Checksum): Promise<void> {
  const from = linkSource(ctx, csum);
  if (from === null) return copyOrCache(ctx, dir, name, csum);
  const objPath = from.objectPath('file', csum);
  const target = path.join(dir, name);
  try {
    if (mustCopy(ctx, from.mode, objPath, csum)) return await copyFile(ctx, dir, name, csum);
    linkSync(objPath, target);
    ctx.stats.hardlinked++;
    ctx.stats.files++;
    report(ctx, false);
    return;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if ((code === 'EXDEV' || code === 'EMLINK' || code === 'EPERM') && !ctx.opts.requireHardlinks) return copyFile(ctx, dir, name, csum);
    if (code === 'ENOENT' && !(await ctx.repo.hasObject('file', csum))) {
      throw new LarchError('OBJECT_MISSING', `Object missing: ${csum}.file`, { type: 'file', checksum: csum }, { cause: e });
    }
    if (code !== 'EEXIST') throw ioErr(e, `Hardlinking ${csum}.file to`, target);
  }
  // The name exists.
  const o = ctx.opts;
  if (o.union) {
    // Already this object (a union over an earlier hardlink checkout): nothing to do. rename(2)
    // between two links of one inode does nothing, so the temporary link below would stay.
    const a = lstatSync(objPath);
    const b = lstatSync(target);
    if (a.dev === b.dev && a.ino === b.ino) {
      ctx.stats.hardlinked++;
      ctx.stats.files++;
      return;
    }
    const tmp = tmpName(dir, name);
    linkSync(objPath, tmp);
    try {
      // With whiteouts (layered images), a file may replace a directory of a lower layer.
      if (o.processWhiteouts) await fsp.rm(target, { recursive: true, force: true });
      renameSync(tmp, target);
    } catch (e) {
      await fsp.unlink(tmp).catch(() => undefined);
      throw ioErr(e, 'renameat', target);
    }
    ctx.stats.hardlinked++;
    ctx.stats.files++;
    return;
  }
  if (o.unionAdd) return;
  if (o.unionIdentical) {
    const a = lstatSync(objPath);
    const b = lstatSync(target);
    if ((a.dev === b.dev && a.ino === b.ino) || (await sameFile(a, objPath, b, target))) {
      ctx.stats.files++;
      return;
    }
  }
  throw new LarchError('EXISTS', `Hardlinking ${csum.slice(0, 2)}/${csum.slice(2)}.file to ${sanitize(name)}: File exists`, {
    path: target,
    checksum: csum,
  });
}

/**
 * `uncompressedCache`: hardlink `dir/name` to the inflated copy of `csum` in
 * `uncompressed-objects-cache/`, writing that copy first when missing. False when the file is
 * not for the cache (symlinks, empty or unreadable files, objects too large to inflate whole)
 * or the name exists; the caller then takes the copy path, which reports or handles those.
 */
export function linkFromCacheSync(ctx: Ctx, dir: string, name: string, csum: Checksum): boolean {
  const cacheDir = path.join(ctx.repo.path, 'uncompressed-objects-cache', csum.slice(0, 2));
  const cached = path.join(cacheDir, `${csum.slice(2)}.file`);
  const target = path.join(dir, name);
  const link = (): boolean => {
    try {
      linkSync(cached, target);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EEXIST' || code === 'EXDEV' || code === 'EMLINK' || code === 'EPERM') return false;
      throw ioErr(e, `Hardlinking cached ${csum}.file to`, target);
    }
    ctx.stats.hardlinked++;
    ctx.stats.files++;
    report(ctx, false);
    return true;
  };
  try {
    if (lstatSync(cached).isFile()) return link();
    return false;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw ioErr(e, 'Reading', cached);
  }
  const obj = readSmallArchive(ctx, csum);
  if (obj === null || (obj.meta.mode & S_IFMT) !== S_IFREG || obj.size === 0 || (obj.meta.mode & 0o400) === 0) return false;
  const tmp = path.join(ctx.repo.path, 'tmp', `checkout-cache-${randomBytes(6).toString('hex')}`);
  try {
    const fd = openSync(tmp, CREATE_EXCL_NOFOLLOW, 0o600);
    try {
      writeAllSync(fd, obj.payload!);
      if (ctx.repo.fsyncEnabled) fsyncSync(fd);
      // As ostree: no setuid/setgid files in the cache.
      fchmodSync(fd, obj.meta.mode & 0o7777 & ~(S_ISUID | S_ISGID));
    } finally {
      closeSync(fd);
    }
    mkdirSync(cacheDir, { recursive: true, mode: 0o755 });
    try {
      linkSync(tmp, cached);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e; // another checkout cached it first
    }
  } catch (e) {
    throw ioErr(e, `Unpacking loose object ${csum} into`, cached);
  } finally {
    try {
      unlinkSync(tmp);
    } catch {
      // never created
    }
  }
  return link();
}

/** An opened content object; `payload` is set when the whole (small) content is in memory. */
