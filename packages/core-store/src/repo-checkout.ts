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
import { lstatSync, mkdirSync, promises as fsp } from 'node:fs';
import path from 'node:path';
import { LarchError } from './errors.js';
import { sanitize, splitSafePath } from './fs-safety.js';
import { _decodeDirMeta, _readMetadataSync, _ReadBuffer, readTree } from './repo-traverse.js';
import { _DirTreeCursor } from './dirtree-cursor.js';
import type { Repo } from './repo.js';
import type { Checksum, DirTree } from './types.js';
import { type Ctx, checkAbort, ioErr, report } from './checkout-context.js';
import { copyFile } from './checkout-copy.js';
import { hardlinkOrCopy } from './checkout-hardlink.js';
import { checkDevice, writeTree } from './checkout-walk.js';
import { hasOpaqueWhiteout } from './checkout-whiteouts.js';
import { OBJECTS_DIR } from './layout.js';

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


/** Linux's PATH_MAX: the longest path a system call accepts, terminating NUL included. */
export const PATH_MAX = 4096;

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
    objectsDir: path.join(repo.path, OBJECTS_DIR) + path.sep,
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
