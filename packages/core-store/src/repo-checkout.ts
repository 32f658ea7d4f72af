/**
 * Checkout: materialise a commit (or a subpath of it) as a directory tree, with the semantics of
 * `ostree checkout` 2022.7 (checked against the real CLI in test/checkout.test.ts):
 *
 * - Hardlinks: a bare repo checked out as root (not `-U`), a bare-user repo checked out in user
 *   mode (`-U`), and a bare-user-only repo in either mode hardlink each object into place, because
 *   the object's on-disk mode and ownership are already what the checkout needs. Symlinks of the user-mode
 *   repos are recreated instead (bare-user stores them as regular files). A failed link (EXDEV,
 *   EMLINK, EPERM) falls back to a copy. Every other combination copies: archive objects are
 *   inflated (objects up to 1 MiB in one go, larger ones as a stream), bare objects are copied
 *   with `copyFile` (reflink when possible).
 * - Metadata: directories get the dirmeta mode and mtime 0 once their content is in place (only
 *   directories this checkout created; existing ones in a union are left alone). Copied files get
 *   the object's mode; their mtime is the time of the copy, as with ostree. Outside user mode the
 *   owner and the xattrs are applied (we run as root); in user mode neither is, and the setuid and
 *   setgid bits of files are dropped.
 * - Unions: `union` replaces existing files (write beside, then rename over), `unionAdd` keeps
 *   them, `unionIdentical` accepts an existing file only when it is the same object (same inode,
 *   or same type/mode/owner/size and the same content or symlink target). Without a union mode
 *   the destination must not exist.
 *
 * - Options of `ostree checkout`: `requireHardlinks` (-H) fails instead of copying a file that
 *   could be hardlinked only in the other checkout mode, or across devices, with ostree's words;
 *   empty files and the symlinks of the user-mode repos are copied anyway, as ostree copies them.
 *   `bareUserOnlyDirs` (-M, implied by a bare-user-only repo, which also implies user mode)
 *   keeps directory modes within 0775. `filter` skips paths (`/a/file`, `/a/dir/`, relative to
 *   the checkout root) as ostree's skip list does. `processWhiteouts` applies Docker/OCI
 *   whiteouts: a file `.wh.NAME` removes NAME from the destination and is not written, a file
 *   `.wh..wh..opq` empties its directory first, and in a union a file or symlink replaces a
 *   directory. `processPassthroughWhiteouts` (always on when deploying) turns a regular file
 *   `.ostree-wh.NAME` into the character device 0:0 named NAME, the whiteout overlayfs reads,
 *   with the file's mode, owner and xattrs. `noHardlinks` leaves the directories' mtime alone.
 *   `uncompressedCache` hardlinks user-mode checkouts of archive repositories from inflated
 *   copies kept in the repository's `uncompressed-objects-cache/`, as a plain `ostree checkout -U`.
 *
 * Security (hostile repositories): every dirtree reachable from the checkout root is read and
 * every name validated *before anything is written* (phase 1), so a tree with "..", "a/b", "" or
 * "." fails with INVALID_NAME naming the name and the dirtree checksum and leaves no trace. In
 * phase 2 every file is created with link/symlink (which never follow the final component) or
 * with O_CREAT|O_EXCL|O_NOFOLLOW, and every directory we enter that already existed is `lstat`ed:
 * a symlink where a directory belongs is refused (EXISTS), so a union over a tree whose
 * directory was swapped for a symlink to elsewhere cannot write outside the destination. This is
 * check-then-use (see fs-safety.ts for the threat model).
 *
 * Memory (hostile or just large trees): nothing is held per path. Phase 1 visits each distinct
 * dirtree once (a tree reached through many parents, as in a DAG of 40 levels that each point
 * twice at the next, is read once) and keeps only a number per distinct dirtree. Phase 2 walks
 * the paths depth-first like ostree's checkout_tree_at_recurse, with no memo, holding the
 * subdirectory list of each level of the current path and a bounded number of copies in flight;
 * a directory gets its metadata as soon as its last entry is written. So a tree whose paths outnumber its
 * objects by any factor is written in constant memory, file after file, as ostree writes it.
 * Phase 1 also computes the longest path the checkout would create: a tree too deep for the
 * kernel's PATH_MAX (every call here takes a full path) is refused before anything is written,
 * and a dirtree that contains itself (possible only in a corrupted repository, whose objects are
 * not named by their hash) is reported as corrupted instead of being walked forever. ostree has
 * no such check; it recurses until its stack overflows (about 8,500 levels).
 *
 * Performance and memory: the hardlink path makes its link(2) and lgetxattr(2) calls
 * synchronously, in the walk; each is a few microseconds, less than a thread-pool round trip,
 * and no worker thread is started (one costs about 12 MB). The copy path runs at most
 * `concurrency` copies at once, and copies small archive objects synchronously (read into one
 * reused buffer, inflated to at most their declared size). Dirtrees are read into one reused
 * buffer and walked in place
 * (dirtree-cursor.ts), so a file costs a few short-lived strings. Phase 1 reads the same bytes
 * again in phase 2 rather than keeping decoded dirtrees: keeping them made the checkout of
 * 200,000 files larger by about 20 MB and no faster.
 */
import { chmodSync, closeSync, constants as C, fchmodSync, fsyncSync, fstatSync, lchownSync, linkSync, lstatSync, mkdirSync, openSync, promises as fsp, readSync, renameSync, symlinkSync, unlinkSync, utimesSync, type Stats } from 'node:fs';
import { Readable } from 'node:stream';
import { inflateRawSync } from 'node:zlib';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import * as native from '@larch/native';
import { LarchError } from './errors.js';
import { writeAllSync } from './objects/content-io.js';
import { CREATE_EXCL_NOFOLLOW, sanitize, splitSafePath } from './fs-safety.js';
import { USER_META_XATTR, archiveHeaderLength, contentChecksumOf, parseArchiveHeaderVariant, parseUserMeta } from './objects/index.js';
import { _decodeDirMeta, _readMetadataSync, _ReadBuffer, readTree } from './repo-traverse.js';
import { _DirTreeCursor } from './dirtree-cursor.js';
import type { Repo } from './repo.js';
import { S_IFLNK, S_IFMT, S_IFREG, type Checksum, type DirMeta, type DirTree, type FileMeta } from './types.js';

export interface CheckoutOptions {
  commit: Checksum;
  /**
   * Destination directory; must not exist unless a union mode is set. For a file subpath, the
   * directory that receives the file under its own name (created, mode 0700, unless it exists or
   * is "."), as ostree does it.
   */
  dest: string;
  /** Check out only this path inside the commit ("/usr/bin", or a single file). */
  subpath?: string;
  /** `-U`: do not apply owners or xattrs, drop setuid/setgid. */
  userMode?: boolean;
  /** `--union`: overwrite existing files. */
  union?: boolean;
  /** `--union-add`: keep existing files. */
  unionAdd?: boolean;
  /** `--union-identical`: existing files must be identical to the checked-out object. */
  unionIdentical?: boolean;
  /** Always copy, never hardlink (`-C`). Directories then keep the time of the checkout as mtime. */
  noHardlinks?: boolean;
  /**
   * `-H`: fail instead of copying a file that cannot be hardlinked (wrong checkout mode for the
   * repository, another device, link refused). Empty files and user-mode symlinks are still copied.
   */
  requireHardlinks?: boolean;
  /** `-M`: directories get at most mode 0775 (no setuid/setgid/sticky, not world-writable). Implied for bare-user-only repos. */
  bareUserOnlyDirs?: boolean;
  /** `--whiteouts`: apply Docker/OCI whiteouts (`.wh.NAME`, `.wh..wh..opq`); see the file comment. */
  processWhiteouts?: boolean;
  /** `--process-passthrough-whiteouts`: a regular file `.ostree-wh.NAME` becomes the character device 0:0 named NAME. */
  processPassthroughWhiteouts?: boolean;
  /**
   * Skip a path when this returns true (`--skip-list`). Called with the path relative to the
   * checkout root: "/" for the root, "/dir/" for a directory (its content is skipped too),
   * "/dir/file" for a file or symlink.
   */
  filter?: (path: string) => boolean;
  /**
   * Archive repositories in user mode: inflate each regular file once into the repository's
   * `uncompressed-objects-cache/` and hardlink it from there, as a plain `ostree checkout -U`
   * does (the repository's `core.enable-uncompressed-cache=false` turns it off). This writes to
   * the repository: the cached file is fsynced (unless the repository disables fsync) before it
   * is linked into the cache, so a crash never leaves a short file there.
   */
  uncompressedCache?: boolean;
  signal?: AbortSignal;
  onProgress?: (p: CheckoutStats) => void;
  /** Copies in flight at once (default 16). */
  concurrency?: number;
}

export interface CheckoutStats {
  files: number;
  dirs: number;
  hardlinked: number;
  copied: number;
}

const S_ISUID = 0o4000;
const S_ISGID = 0o2000;

/** Linux's PATH_MAX: the longest path a system call accepts, terminating NUL included. */
export const PATH_MAX = 4096;

interface Ctx {
  repo: Repo;
  opts: CheckoutOptions;
  userMode: boolean;
  anyUnion: boolean;
  /** Files are hardlinked from the repository itself (its mode fits the checkout mode). */
  hardlink: boolean;
  /**
   * The repositories of the `core.parent` chain (the repository itself first) whose mode fits
   * the checkout mode; empty with `noHardlinks`. A file is hardlinked from the first of them
   * that holds it, as ostree walks the chain, and copied when none does.
   */
  linkable: Repo[];
  /** Every dirmeta of the tree, validated in phase 1 (one per distinct object). */
  metas: Map<Checksum, DirMeta>;
  stats: CheckoutStats;
  sinceProgress: number;
  /** `<repo>/objects/`, for building bare object paths on the hot path. */
  objectsDir: string;
  /** bare-user: content checksum of an empty file, by raw `user.ostreemeta` bytes. */
  emptyByMeta: Map<string, Checksum>;
  /** Every dirtree and dirmeta is read into this one buffer (see `_ReadBuffer`). */
  readBuf: _ReadBuffer;
  /** Small archive objects are read into this one buffer (see readSmallArchive). */
  objBuf: Buffer;
  /** The last `user.ostreemeta` looked up in emptyByMeta, and its answer. */
  lastMeta: Buffer | null;
  lastEmpty: Checksum;
  /** Files may need more than the plain write (filter, whiteouts, -H without hardlinks): see specialFile. */
  slowFiles: boolean;
  /** Device of the repository, for `requireHardlinks`. */
  repoDev: number;
  /** `uncompressedCache` applies (archive repository, user mode, enabled in its config). */
  cache: boolean;
}

const WHITEOUT_PREFIX = '.wh.';
const OPAQUE_WHITEOUT_NAME = '.wh..wh..opq';
const OVERLAY_WHITEOUT_PREFIX = '.ostree-wh.';

/**
 * Check out `opts.commit` (optionally `opts.subpath`) to `opts.dest`. See the file comment for
 * the exact semantics.
 *
 * Locking: none; the objects read are immutable. Safe to run concurrently with other readers.
 * Crash guarantee: none for the destination (a crashed checkout leaves a partial tree, as with
 * ostree); the repository is never modified, except for `uncompressedCache`, which adds complete files to its cache.
 * Errors: INVALID_NAME (hostile dirtree; nothing written), OBJECT_MISSING, OBJECT_CORRUPTED (also
 * a dirtree that contains itself; nothing written), LIMIT_EXCEEDED (a path longer than PATH_MAX;
 * nothing written), EXISTS (destination or a file exists without a union mode, or a symlink where
 * a directory belongs), ABORTED, IO_ERROR.
 * Limits: memory does not grow with the number of paths (see the file comment); one number is
 * kept per distinct dirtree and one dirmeta per distinct dirmeta object.
 */
export async function checkout(repo: Repo, opts: CheckoutOptions): Promise<CheckoutStats> {
  // A bare-user-only repository records no owners or xattrs: its checkouts are always user mode.
  const userMode = opts.userMode === true || repo.mode === 'bare-user-only';
  if (opts.requireHardlinks && opts.noHardlinks) throw new LarchError('INVALID_ARGUMENT', 'Cannot specify both --require-hardlinks and --force-copy', {});
  const fits = (r: Repo): boolean => (r.mode === 'bare' && !userMode) || (userMode && (r.mode === 'bare-user' || r.mode === 'bare-user-only'));
  const linkable: Repo[] = [];
  if (opts.noHardlinks !== true) for (let r: Repo | null = repo; r !== null; r = r.parent) if (fits(r)) linkable.push(r);
  const hardlink = linkable[0] === repo;
  const ctx: Ctx = {
    repo,
    opts,
    userMode,
    anyUnion: opts.union === true || opts.unionAdd === true || opts.unionIdentical === true,
    hardlink,
    linkable,
    metas: new Map(),
    stats: { files: 0, dirs: 0, hardlinked: 0, copied: 0 },
    sinceProgress: 0,
    objectsDir: path.join(repo.path, 'objects') + path.sep,
    emptyByMeta: new Map(),
    lastMeta: null,
    lastEmpty: '',
    readBuf: new _ReadBuffer(),
    objBuf: Buffer.allocUnsafeSlow(65536),
    slowFiles:
      opts.filter !== undefined || opts.processWhiteouts === true || opts.processPassthroughWhiteouts === true || (opts.requireHardlinks === true && !hardlink),
    repoDev: opts.requireHardlinks ? lstatSync(repo.path).dev : 0,
    cache:
      opts.uncompressedCache === true &&
      repo.mode === 'archive' &&
      userMode &&
      opts.noHardlinks !== true &&
      (repo.config.get('core', 'enable-uncompressed-cache') ?? 'true').trim() !== 'false',
  };
  checkAbort(opts.signal);
  const commit = await repo.readCommit(opts.commit);

  // Resolve the subpath through validated dirtrees.
  const parts = splitSafePath(opts.subpath ?? '/', { subpath: opts.subpath });
  let tree = commit.rootTree;
  let meta = commit.rootMeta;
  for (let i = 0; i < parts.length; i++) {
    const dt = await readTree(repo, tree);
    const name = parts[i];
    const d = dt.dirs.find((x) => x.name === name);
    if (d) {
      tree = d.treeChecksum;
      meta = d.metaChecksum;
      continue;
    }
    const f = dt.files.find((x) => x.name === name);
    if (f && i === parts.length - 1) {
      await checkoutSingleFile(ctx, name, f.checksum);
      report(ctx, true);
      return ctx.stats;
    }
    throw new LarchError('INVALID_ARGUMENT', `No such file or directory: ${sanitize(opts.subpath ?? '')}`, { subpath: opts.subpath });
  }

  // Phase 1: validate every distinct dirtree and dirmeta before writing anything.
  const dest = opts.dest;
  const longest = await validateTree(ctx, tree, meta);
  // The kernel sees `dest` as given (relative paths stay relative), plus "/" and the longest path.
  const destBytes = Buffer.byteLength(dest) + (longest > 0 ? 1 : 0);
  if (destBytes + longest + 1 > PATH_MAX) {
    throw new LarchError(
      'LIMIT_EXCEEDED',
      `Checkout of dirtree ${tree} into ${sanitize(dest)} would create paths of ${destBytes + longest} bytes, beyond PATH_MAX (${PATH_MAX})`,
      { dirtree: tree, checksum: tree, limit: PATH_MAX, observed: destBytes + longest + 1 },
    );
  }
  checkAbort(opts.signal);

  // Phase 2: write.
  if (opts.filter?.('/')) {
    report(ctx, true);
    return ctx.stats;
  }
  if (opts.processWhiteouts && hasOpaqueWhiteout(ctx, tree)) await fsp.rm(dest, { recursive: true, force: true });
  let created = true;
  try {
    await fsp.mkdir(dest, 0o700);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || !ctx.anyUnion) throw ioErr(e, 'mkdirat', dest, 'EXISTS');
    const st = await fsp.stat(dest);
    if (!st.isDirectory()) throw new LarchError('EXISTS', `Checkout destination ${sanitize(dest)} is not a directory`, { path: dest });
    created = false;
  }
  checkDevice(ctx, dest);
  await writeTree(ctx, dest, tree, meta, created);
  report(ctx, true);
  return ctx.stats;
}

/** A dirtree for phase 2, read in place (its names and checksums are validated again as read). */
function cursorOf(ctx: Ctx, checksum: Checksum): _DirTreeCursor {
  return new _DirTreeCursor(_readMetadataSync(ctx.repo, 'dirtree', checksum, ctx.readBuf), checksum);
}

/**
 * Phase 1. Read and validate every distinct dirtree reachable from `root` (names, checksum
 * lengths) and every dirmeta, depth-first, once each; returns the length in bytes of the longest
 * relative path below `root` ("a/b/c" is 5). Memory: the subdirectory lists of the current path,
 * one number per distinct dirtree and the decoded dirmetas.
 */
async function validateTree(ctx: Ctx, root: Checksum, rootMeta: Checksum): Promise<number> {
  /** Longest relative path below each dirtree already finished. */
  const below = new Map<Checksum, number>();
  /** Dirtrees on the current path: meeting one again means the tree contains itself. */
  const onPath = new Set<Checksum>();
  const loadMeta = (m: Checksum): void => {
    if (!ctx.metas.has(m)) ctx.metas.set(m, _decodeDirMeta(_readMetadataSync(ctx.repo, 'dirmeta', m, ctx.readBuf), m));
  };
  // A frame keeps the subdirectory list only; the files are checked as they are read.
  const open = (t: Checksum): { t: Checksum; dirs: DirTree['dirs']; i: number; max: number } => {
    const bytes = _readMetadataSync(ctx.repo, 'dirtree', t, ctx.readBuf);
    const c = new _DirTreeCursor(bytes, t);
    let max = 0;
    while (c.nextFile(false)) max = Math.max(max, c.nameBytes);
    const dirs = c.dirs;
    for (const d of dirs) loadMeta(d.metaChecksum);
    onPath.add(t);
    return { t, dirs, i: 0, max };
  };
  loadMeta(rootMeta);
  const stack = [open(root)];
  let opened = 1;
  while (stack.length > 0) {
    const top = stack[stack.length - 1];
    if (top.i < top.dirs.length) {
      const d = top.dirs[top.i];
      const known = below.get(d.treeChecksum);
      if (known !== undefined) {
        top.max = Math.max(top.max, Buffer.byteLength(d.name) + (known > 0 ? 1 + known : 0));
        top.i++;
        continue;
      }
      if (onPath.has(d.treeChecksum)) {
        throw new LarchError('OBJECT_CORRUPTED', `Corrupted dirtree object ${top.t}: its directory ${sanitize(d.name)} leads back to dirtree ${d.treeChecksum}, which contains it`, {
          type: 'dirtree',
          checksum: top.t,
          dirtree: top.t,
          name: d.name,
        });
      }
      stack.push(open(d.treeChecksum));
      if ((++opened & 255) === 0) {
        // The walk is synchronous I/O: let signals and progress through now and then.
        await new Promise<void>((r) => setImmediate(r));
        checkAbort(ctx.opts.signal);
      }
      continue;
    }
    stack.pop();
    onPath.delete(top.t);
    below.set(top.t, top.max);
  }
  return below.get(root)!;
}

/** A directory being written: it gets its metadata once `pending` drops to zero. */
interface DirState {
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
async function writeTree(ctx: Ctx, root: string, tree: Checksum, meta: Checksum, created: boolean): Promise<void> {
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

function makeDirSync(ctx: Ctx, p: string): boolean {
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

function finishDirSync(ctx: Ctx, p: string, meta: DirMeta): void {
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
function checkDevice(ctx: Ctx, dir: string): void {
  if (!ctx.opts.requireHardlinks) return;
  const dev = lstatSync(dir).dev;
  if (dev !== ctx.repoDev) {
    throw new LarchError('INVALID_ARGUMENT', `Unable to do hardlink checkout across devices (src=${ctx.repoDev} destination=${dev})`, { path: dir });
  }
}

/** Whether dirtree `tree` holds the file `.wh..wh..opq` (an opaque directory, with `processWhiteouts`). */
function hasOpaqueWhiteout(ctx: Ctx, tree: Checksum): boolean {
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
async function specialFile(ctx: Ctx, dir: string, rel: string, name: string, csum: Checksum): Promise<boolean> {
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

function cannotHardlink(ctx: Ctx): LarchError {
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
function overlayWhiteout(ctx: Ctx, p: string, meta: FileMeta): void {
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

function checkAbort(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new LarchError('ABORTED', 'Checkout cancelled', {}, { cause: signal.reason });
}

function report(ctx: Ctx, force: boolean): void {
  if (!ctx.opts.onProgress) return;
  if (!force && ++ctx.sinceProgress < 256) return;
  ctx.sinceProgress = 0;
  ctx.opts.onProgress({ ...ctx.stats });
}

function ioErr(e: unknown, op: string, p: string, existsCode: 'EXISTS' | 'IO_ERROR' = 'IO_ERROR'): LarchError {
  if (e instanceof LarchError) return e;
  const err = e as NodeJS.ErrnoException;
  const code = err.code === 'EEXIST' ? existsCode : 'IO_ERROR';
  const text = err.code === 'EEXIST' ? 'File exists' : err.message;
  return new LarchError(code, `${op}: ${sanitize(p)}: ${text}`, { path: p, errno: err.code }, { cause: e });
}

function tmpName(dir: string, name: string): string {
  return path.join(dir, `.${name.slice(0, 64)}.larch-${randomBytes(6).toString('hex')}`);
}

/**
 * Objects ostree never hardlinks: empty regular files (all empty files share one object, and
 * thousands of links to it would hit the filesystem's link limit) and the symlinks of the
 * user-mode repos (bare-user stores them as regular files).
 *
 * For bare-user the decision needs no stat: `user.ostreemeta` gives the mode, and an empty file
 * is recognised by its checksum, which for a given metadata is fixed (sha256 of the header
 * alone); that checksum is computed once per distinct metadata.
 */
function mustCopy(ctx: Ctx, mode: Repo['mode'], objPath: string, csum: Checksum): boolean {
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
function linkSource(ctx: Ctx, csum: Checksum): Repo | null {
  if (ctx.repo.parent === null) return ctx.linkable[0] ?? null;
  for (const r of ctx.linkable) if (r.hasLocalObjectSync('file', csum)) return r;
  return null;
}

/** Copy `csum` to `dir/name`, through the uncompressed cache when it applies. */
async function copyOrCache(ctx: Ctx, dir: string, name: string, csum: Checksum): Promise<void> {
  if (ctx.cache && linkFromCacheSync(ctx, dir, name, csum)) return;
  await copyFile(ctx, dir, name, csum);
}

async function hardlinkOrCopy(ctx: Ctx, dir: string, name: string, csum: Checksum): Promise<void> {
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

async function sameFile(a: Stats, pa: string, b: Stats, pb: string): Promise<boolean> {
  if (a.mode !== b.mode || a.uid !== b.uid || a.gid !== b.gid || a.size !== b.size) return false;
  if (a.isSymbolicLink()) return (await fsp.readlink(pa)) === (await fsp.readlink(pb));
  if (!a.isFile()) return false;
  return sameContent(pa, pb);
}

async function sameContent(pa: string, pb: string): Promise<boolean> {
  const [fa, fb] = await Promise.all([fsp.open(pa, C.O_RDONLY | C.O_NOFOLLOW), fsp.open(pb, C.O_RDONLY | C.O_NOFOLLOW)]);
  try {
    const ba = Buffer.allocUnsafe(65536);
    const bb = Buffer.allocUnsafe(65536);
    for (;;) {
      const [ra, rb] = await Promise.all([fa.read(ba, 0, ba.length, null), fb.read(bb, 0, bb.length, null)]);
      if (ra.bytesRead !== rb.bytesRead) return false;
      if (ra.bytesRead === 0) return true;
      if (!ba.subarray(0, ra.bytesRead).equals(bb.subarray(0, rb.bytesRead))) return false;
    }
  } finally {
    await Promise.all([fa.close(), fb.close()]);
  }
}

async function checkoutSingleFile(ctx: Ctx, name: string, csum: Checksum): Promise<void> {
  const dir = ctx.opts.dest;
  if (dir !== '.') {
    try {
      mkdirSync(dir, 0o700);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw ioErr(e, 'mkdirat', dir);
    }
  }
  if (ctx.linkable.length > 0) await hardlinkOrCopy(ctx, dir, name, csum);
  else await copyFile(ctx, dir, name, csum);
}

/** Create one file by copy (regular files) or symlink(2), honouring the union mode. */
async function copyFile(ctx: Ctx, dir: string, name: string, csum: Checksum): Promise<void> {
  checkAbort(ctx.opts.signal);
  const obj = (ctx.repo.mode === 'archive' ? readSmallArchive(ctx, csum) : null) ?? (await ctx.repo.openFile(csum));
  const meta = obj.meta;
  const target = path.join(dir, name);
  const type = meta.mode & S_IFMT;
  if (type !== S_IFREG && type !== S_IFLNK) {
    throw new LarchError('OBJECT_CORRUPTED', `Corrupted file object ${csum}: invalid mode 0${meta.mode.toString(8)}`, {
      type: 'file',
      checksum: csum,
    });
  }
  // Write to the final name exclusively; on EEXIST decide per union mode.
  let writeTo = target;
  let replacing = false;
  if (await createEntry(ctx, obj, writeTo)) {
    // created
  } else {
    const o = ctx.opts;
    if (o.unionAdd) return;
    if (o.unionIdentical) {
      if (await identicalToObject(ctx, obj, target)) {
        ctx.stats.files++;
        return;
      }
      throw new LarchError('EXISTS', `Copying ${csum}.file to ${sanitize(name)}: File exists`, { path: target, checksum: csum });
    }
    if (!o.union) throw new LarchError('EXISTS', `Copying ${csum}.file to ${sanitize(name)}: File exists`, { path: target, checksum: csum });
    writeTo = tmpName(dir, name);
    replacing = true;
    if (!(await createEntry(ctx, obj, writeTo))) throw new LarchError('EXISTS', `${sanitize(writeTo)}: File exists`, { path: writeTo });
  }
  try {
    await applyMeta(ctx, writeTo, meta);
    if (replacing && ctx.opts.processWhiteouts) await fsp.rm(target, { recursive: true, force: true });
    if (replacing) await fsp.rename(writeTo, target);
  } catch (e) {
    if (replacing) await fsp.unlink(writeTo).catch(() => undefined);
    throw ioErr(e, 'Setting metadata of', target);
  }
  ctx.stats.copied++;
  ctx.stats.files++;
  report(ctx, false);
}

/**
 * The copy path's common case done synchronously: a small archive object (regular file or
 * symlink) checked out without a union mode. False when the object is too large to read whole
 * (the caller streams it with {@link copyFile}). Same checks and errors as copyFile; being
 * synchronous, it leaves nothing alive across event-loop turns, which keeps a long copy
 * checkout's memory flat.
 */
function copySmallArchiveSync(ctx: Ctx, dir: string, name: string, csum: Checksum): boolean {
  checkAbort(ctx.opts.signal);
  const obj = readSmallArchive(ctx, csum);
  if (obj === null) return false;
  const meta = obj.meta;
  const type = meta.mode & S_IFMT;
  if (type !== S_IFREG && type !== S_IFLNK) {
    throw new LarchError('OBJECT_CORRUPTED', `Corrupted file object ${csum}: invalid mode 0${meta.mode.toString(8)}`, { type: 'file', checksum: csum });
  }
  const target = path.join(dir, name);
  try {
    if (type === S_IFLNK) symlinkSync(meta.symlinkTarget, target);
    else {
      const fd = openSync(target, CREATE_EXCL_NOFOLLOW, 0o600);
      try {
        writeAllSync(fd, obj.payload!);
      } finally {
        closeSync(fd);
      }
    }
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new LarchError('EXISTS', `Copying ${csum}.file to ${sanitize(name)}: File exists`, { path: target, checksum: csum });
    }
    throw ioErr(e, 'Creating', target);
  }
  try {
    applyMetaSync(ctx, target, meta);
  } catch (e) {
    throw ioErr(e, 'Setting metadata of', target);
  }
  ctx.stats.copied++;
  ctx.stats.files++;
  report(ctx, false);
  return true;
}

/**
 * `uncompressedCache`: hardlink `dir/name` to the inflated copy of `csum` in
 * `uncompressed-objects-cache/`, writing that copy first when missing. False when the file is
 * not for the cache (symlinks, empty or unreadable files, objects too large to inflate whole)
 * or the name exists; the caller then takes the copy path, which reports or handles those.
 */
function linkFromCacheSync(ctx: Ctx, dir: string, name: string, csum: Checksum): boolean {
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
type OpenedFile = Awaited<ReturnType<Repo['openFile']>> & { payload?: Buffer };

/** Archive objects up to this size, on disk and inflated, are read and inflated in one go instead of streamed. */
const SMALL_ARCHIVE_OBJECT = 1024 * 1024;

/**
 * Read a small archive object whole and inflate it: one open/fstat/read/close and one inflate,
 * instead of a header read plus a stream pipeline per file. Null when the object is larger than
 * SMALL_ARCHIVE_OBJECT (the caller streams it). The checksum is not verified here, as with
 * ostree's checkout; fsck verifies.
 */
function readSmallArchive(ctx: Ctx, csum: Checksum): OpenedFile | null {
  // In the repository itself or an archive parent; one of another mode is read by openFile.
  const objectPath = ctx.repo.objectReadPath('file', csum);
  let fd: number;
  try {
    fd = openSync(objectPath, C.O_RDONLY | C.O_NOFOLLOW);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT' && ctx.repo.parent !== null) return null;
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new LarchError('OBJECT_MISSING', `Object missing: ${csum}.file`, { type: 'file', checksum: csum });
    throw ioErr(e, 'Opening', objectPath);
  }
  let buf: Buffer;
  try {
    const size = fstatSync(fd).size;
    if (size > SMALL_ARCHIVE_OBJECT) return null;
    // Read into one reused buffer: only the header (copied out by its parser) and the
    // inflated payload (a buffer of its own) outlive this call.
    if (ctx.objBuf.length < size) ctx.objBuf = Buffer.allocUnsafeSlow(Math.max(size, 2 * ctx.objBuf.length));
    buf = ctx.objBuf;
    let off = 0;
    while (off < size) {
      const n = readSync(fd, buf, off, size - off, off);
      if (n === 0) break;
      off += n;
    }
    buf = buf.subarray(0, off);
  } finally {
    closeSync(fd);
  }
  const bad = (detail: string, cause?: unknown): LarchError =>
    new LarchError('OBJECT_CORRUPTED', `Corrupted file object ${csum}: ${detail}`, { type: 'file', checksum: csum }, cause !== undefined ? { cause } : undefined);
  let h;
  let hlen: number;
  try {
    hlen = archiveHeaderLength(buf.subarray(0, 8), buf.length);
    h = parseArchiveHeaderVariant(buf.subarray(8, 8 + hlen));
  } catch (e) {
    throw bad((e as Error).message, e);
  }
  let payload: Buffer = Buffer.alloc(0);
  if ((h.meta.mode & S_IFMT) === S_IFREG) {
    // A well-compressed large file is small on disk: stream it rather than inflate it whole.
    if (h.size > SMALL_ARCHIVE_OBJECT) return null;
    try {
      // One output chunk of the declared size, and never more than it: a payload that inflates
      // past its header's size fails here instead of filling memory.
      payload = inflateRawSync(buf.subarray(8 + hlen), { chunkSize: h.size + 64, maxOutputLength: Math.max(1, h.size) });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') throw bad(`payload inflates past the ${h.size} bytes its header declares`, e);
      throw bad(`decompression failed: ${(e as Error).message}`, e);
    }
    if (payload.length !== h.size) throw bad(`payload is ${payload.length} bytes, header says ${h.size}`);
  }
  const p = payload;
  return { meta: h.meta, size: h.size, objectPath, payload: p, open: () => Readable.from([p]) };
}

/** Create `p` exclusively (never through a symlink) with the object's content. False on EEXIST. */
async function createEntry(ctx: Ctx, obj: OpenedFile, p: string): Promise<boolean> {
  const meta = obj.meta;
  try {
    if ((meta.mode & S_IFMT) === S_IFLNK) {
      await fsp.symlink(meta.symlinkTarget, p);
      return true;
    }
    if (obj.payload !== undefined) {
      const fd = openSync(p, CREATE_EXCL_NOFOLLOW, 0o600);
      try {
        writeAllSync(fd, obj.payload);
      } finally {
        closeSync(fd);
      }
      return true;
    }
    if (!obj.objectPath.endsWith('.filez')) {
      // Bare objects (here, or in a parent of a bare mode) hold the raw content: let the kernel copy (reflink when it can). COPYFILE_EXCL
      // opens with O_CREAT|O_EXCL, which fails on any existing entry including a dangling symlink.
      await fsp.copyFile(obj.objectPath, p, C.COPYFILE_EXCL | C.COPYFILE_FICLONE);
      return true;
    }
    const fh = await fsp.open(p, CREATE_EXCL_NOFOLLOW, 0o600);
    try {
      for await (const chunk of obj.open() as AsyncIterable<Buffer>) {
        let off = 0;
        while (off < chunk.length) off += (await fh.write(chunk, off, chunk.length - off)).bytesWritten;
      }
    } finally {
      await fh.close();
    }
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw ioErr(e, 'Creating', p);
  }
}

/** Owner, xattrs and mode of a file this checkout just created (metadata syscalls, done inline). */
async function applyMeta(ctx: Ctx, p: string, meta: FileMeta): Promise<void> {
  applyMetaSync(ctx, p, meta);
}

function applyMetaSync(ctx: Ctx, p: string, meta: FileMeta): void {
  const isLink = (meta.mode & S_IFMT) === S_IFLNK;
  if (!ctx.userMode) {
    lchownSync(p, meta.uid, meta.gid);
    for (const x of meta.xattrs) native.lsetxattr(p, x.name, x.value);
  }
  if (!isLink) chmodSync(p, ctx.userMode ? userFileMode(meta.mode) : meta.mode & 0o7777);
}

/**
 * The mode of a regular file checked out in user mode: no setuid/setgid, and readable by its
 * owner (as ostree: a user checkout of a file recorded as unreadable, mode 0000, gets 0400; such
 * files are copied, never hardlinked, so the object keeps its mode).
 */
function userFileMode(mode: number): number {
  const m = mode & 0o7777 & ~(S_ISUID | S_ISGID);
  return m | 0o400;
}

async function identicalToObject(ctx: Ctx, obj: OpenedFile, target: string): Promise<boolean> {
  const st = await fsp.lstat(target);
  const meta = obj.meta;
  if ((meta.mode & S_IFMT) === S_IFLNK) return st.isSymbolicLink() && (await fsp.readlink(target)) === meta.symlinkTarget;
  if (!st.isFile() || st.size !== obj.size) return false;
  const wantMode = ctx.userMode ? userFileMode(meta.mode) : meta.mode & 0o7777;
  if ((st.mode & 0o7777) !== wantMode) return false;
  if (!ctx.userMode && (st.uid !== meta.uid || st.gid !== meta.gid)) return false;
  // Compare content as a stream against the object's content.
  const fh = await fsp.open(target, C.O_RDONLY | C.O_NOFOLLOW);
  try {
    const buf = Buffer.allocUnsafe(65536);
    for await (const chunk of obj.open() as AsyncIterable<Buffer>) {
      let off = 0;
      while (off < chunk.length) {
        const want = Math.min(buf.length, chunk.length - off);
        const { bytesRead } = await fh.read(buf, 0, want, null);
        if (bytesRead === 0 || !buf.subarray(0, bytesRead).equals(chunk.subarray(off, off + bytesRead))) return false;
        off += bytesRead;
      }
    }
    const { bytesRead } = await fh.read(buf, 0, 1, null);
    return bytesRead === 0;
  } finally {
    await fh.close();
  }
}

