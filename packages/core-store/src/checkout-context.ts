/**
 * Checkout's shared state (`Ctx`, one per call of `checkout`) and the small helpers every part
 * of it uses: progress, cancellation, error wording, temporary names, the user-mode file mode.
 * See repo-checkout.ts for the semantics and the file comments of the parts:
 * checkout-walk.ts (the tree walk), checkout-hardlink.ts and checkout-copy.ts (materialising
 * files), checkout-whiteouts.ts and checkout-union.ts (options that change what a file does).
 */
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { LarchError } from './errors.js';
import { sanitize } from './fs-safety.js';
import { _readMetadataSync, _ReadBuffer } from './repo-traverse.js';
import { _DirTreeCursor } from './dirtree-cursor.js';
import type { Repo } from './repo.js';
import type { Checksum, DirMeta } from './types.js';
import type { CheckoutOptions, CheckoutStats } from './repo-checkout.js';

export const S_ISUID = 0o4000;
export const S_ISGID = 0o2000;

export interface Ctx {
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

/** A dirtree for phase 2, read in place (its names and checksums are validated again as read). */
export function cursorOf(ctx: Ctx, checksum: Checksum): _DirTreeCursor {
  return new _DirTreeCursor(_readMetadataSync(ctx.repo, 'dirtree', checksum, ctx.readBuf), checksum);
}

export function checkAbort(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new LarchError('ABORTED', 'Checkout cancelled', {}, { cause: signal.reason });
}

export function report(ctx: Ctx, force: boolean): void {
  if (!ctx.opts.onProgress) return;
  if (!force && ++ctx.sinceProgress < 256) return;
  ctx.sinceProgress = 0;
  ctx.opts.onProgress({ ...ctx.stats });
}

export function ioErr(e: unknown, op: string, p: string, existsCode: 'EXISTS' | 'IO_ERROR' = 'IO_ERROR'): LarchError {
  if (e instanceof LarchError) return e;
  const err = e as NodeJS.ErrnoException;
  const code = err.code === 'EEXIST' ? existsCode : 'IO_ERROR';
  const text = err.code === 'EEXIST' ? 'File exists' : err.message;
  return new LarchError(code, `${op}: ${sanitize(p)}: ${text}`, { path: p, errno: err.code }, { cause: e });
}

export function tmpName(dir: string, name: string): string {
  return path.join(dir, `.${name.slice(0, 64)}.larch-${randomBytes(6).toString('hex')}`);
}

/**
 * The mode of a regular file checked out in user mode: no setuid/setgid, and readable by its
 * owner (as ostree: a user checkout of a file recorded as unreadable, mode 0000, gets 0400; such
 * files are copied, never hardlinked, so the object keeps its mode).
 */
export function userFileMode(mode: number): number {
  const m = mode & 0o7777 & ~(S_ISUID | S_ISGID);
  return m | 0o400;
}
