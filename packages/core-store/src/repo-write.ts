/**
 * The write path of a repository's objects (see repo.ts for the durability rules): a content or
 * metadata object is staged as a temporary file in `tmp/` (or the transaction's staging
 * directory), made durable, then published into `objects/XX/` with link(2), which never
 * replaces an object that exists; batches share one syncfs. `Repo`'s methods of the same names
 * call these.
 */
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, constants as fsc, fsyncSync, mkdirSync, linkSync, openSync, promises as fsp, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { syncfsAsync } from '@larch/native';
import type { Variant } from '@larch/gvariant';
import { LarchError, fileChecksumMismatch, hasErrno, ioError } from './errors.js';
import type { Checksum, FileMeta, ObjectType, RepoMode } from './types.js';
import { S_IFLNK, S_IFMT } from './types.js';
import { validateChecksum } from './validate.js';
import { parseCommit } from './objects/commit.js';
import { serializeCommitMeta } from './objects/commitmeta.js';
import { parseDirMeta } from './objects/dirmeta.js';
import { parseDirTree } from './objects/dirtree.js';
import { contentHasher } from './objects/file-header.js';
import { finishBareFileSync, stageBytesSync, stageContent, writeAllSync, type ContentSource } from './objects/content-io.js';
import { _activeStagingDir } from './repo-staging.js';
import type { Repo } from './repo.js';
import { OBJECTS_DIR } from './layout.js';

let tmpCounter = 0;

/** A set of staged objects published together: one syncfs, then links, then one fsync per directory. */
export class WriteBatch {
  private staged: Array<{ tmp: string; type: ObjectType; checksum: Checksum }> = [];
  private done = false;
  constructor(private readonly repo: Repo) {}

  /** Record a staged temporary file to publish as `type`/`checksum` at {@link commit}. */
  add(tmp: string, type: ObjectType, checksum: Checksum): void {
    if (this.done) throw new LarchError('INVALID_ARGUMENT', 'write batch already finished');
    this.staged.push({ tmp, type, checksum });
  }

  get size(): number {
    return this.staged.length;
  }

  /** Make every staged file durable, publish them all, fsync their directories. */
  async commit(): Promise<void> {
    this.done = true;
    if (this.staged.length === 0) return;
    if (this.repo.fsyncEnabled) await this.repo.syncTmpFs();
    const dirs = new Set<string>();
    // Synchronous link/unlink: a threadpool round-trip per object costs more than the call.
    let i = 0;
    try {
      for (; i < this.staged.length; i++) {
        const s = this.staged[i];
        dirs.add(this.repo.publishStagedSync(s.tmp, s.type, s.checksum));
      }
    } catch (e) {
      // Objects already linked stay (they are complete); the rest are discarded.
      const rest = this.staged.slice(i + 1);
      this.staged = [];
      await Promise.all(rest.map((s) => fsp.rm(s.tmp, { force: true }).catch(() => undefined)));
      throw e;
    }
    this.staged = [];
    if (this.repo.fsyncEnabled) for (const d of dirs) fsyncDirSync(d);
  }

  /** Remove every staged temporary file. */
  async abort(): Promise<void> {
    this.done = true;
    const all = this.staged;
    this.staged = [];
    await Promise.all(all.map((s) => fsp.rm(s.tmp, { force: true }).catch(() => undefined)));
  }
}

/** A bare-mode content object being staged a piece at a time ({@link Repo.beginFileSync}). */
export class StagedFileWriter {
  private readonly hash: ReturnType<typeof contentHasher>;
  /** Content bytes written so far. */
  written = 0;

  constructor(
    private readonly mode: RepoMode,
    private readonly meta: FileMeta,
    private fd: number,
    readonly tmp: string,
  ) {
    this.hash = contentHasher(meta);
  }

  write(b: Uint8Array): void {
    this.hash.update(b);
    this.written += writeAllSync(this.fd, b);
  }

  /** Verify, set the stored metadata, close, and add to `batch`. Throws OBJECT_CORRUPTED (and removes the file) on a mismatch. */
  finish(checksum: Checksum, batch: WriteBatch): void {
    const actual = this.hash.digest('hex');
    try {
      if (actual !== checksum) throw fileChecksumMismatch(checksum, actual);
      finishBareFileSync(this.mode, this.meta, this.fd, this.tmp);
    } catch (e) {
      this.abort();
      throw e;
    }
    closeSync(this.fd);
    this.fd = -1;
    batch.add(this.tmp, 'file', checksum);
  }

  /** Close and remove the staged file (no-op after {@link finish} succeeded). */
  abort(): void {
    if (this.fd < 0) return;
    closeSync(this.fd);
    this.fd = -1;
    try {
      unlinkSync(this.tmp);
    } catch {
      // already gone
    }
  }
}

/**
 * Replace `summary.sig` with `bytes` (the serialized `a{sv}` of signatures over the current
 * `summary`), atomically and durably: a reader sees the old file or the new one, never a part.
 */
export async function writeSummarySignature(repo: Repo, bytes: Uint8Array): Promise<void> {
  const tmp = await repo.writeTmpFile(bytes);
  const dest = join(repo.path, 'summary.sig');
  try {
    await fsp.rename(tmp, dest);
  } catch (e) {
    await fsp.rm(tmp, { force: true });
    throw ioError(e, 'Writing summary signature', dest);
  }
  if (repo.fsyncEnabled) await repo.fsyncDir(repo.path);
}

/** Replace (or with null, delete) the detached metadata of a commit; atomic and durable. */
export async function writeCommitMeta(repo: Repo, made: Set<string>, commit: Checksum, dict: Array<[string, Variant]> | null): Promise<void> {
  const dest = repo.objectPath('commitmeta', commit);
  if (dict === null) {
    await fsp.rm(dest, { force: true });
    return;
  }
  const tmp = await repo.writeTmpFile(serializeCommitMeta(dict));
  const dir = await ensureObjectDir(repo, made, commit);
  try {
    await fsp.rename(tmp, dest);
  } catch (e) {
    await fsp.rm(tmp, { force: true });
    throw ioError(e, 'Writing detached metadata', dest);
  }
  if (repo.fsyncEnabled) await repo.fsyncDir(dir);
}

/**
 * Store a metadata object (no-op when present) and return its checksum. Durable on return.
 * The bytes are parsed first, so a malformed object is never stored.
 */
export async function writeMetadata(repo: Repo, type: 'dirtree' | 'dirmeta' | 'commit', bytes: Uint8Array, batch?: WriteBatch): Promise<Checksum> {
  try {
    if (type === 'dirtree') parseDirTree(bytes);
    else if (type === 'dirmeta') parseDirMeta(bytes);
    else parseCommit(bytes);
  } catch (e) {
    throw new LarchError('OBJECT_CORRUPTED', `Refusing to write invalid ${type} object: ${(e as Error).message}`, { type }, { cause: e });
  }
  const checksum = createHash('sha256').update(bytes).digest('hex');
  if (await repo.hasLocalObject(type, checksum)) return checksum;
  const tmp = await repo.writeTmpFile(bytes, 0o644);
  if (batch) {
    batch.add(tmp, type, checksum);
    return checksum;
  }
  await publishOne(repo, tmp, type, checksum, false);
  return checksum;
}

/**
 * Store a content object and return its checksum. The checksum is computed from the bytes as
 * they are written; with `expectedChecksum` a mismatch throws OBJECT_CORRUPTED before anything
 * is published, and an object already present is not rewritten. Durable on return (or at
 * `batch.commit()` when a batch is given). The `path` source is opened once and read through
 * its descriptor; symlink metas ignore the content.
 */
export async function writeFile(repo: Repo, meta: FileMeta, content: ContentSource, opts: { expectedChecksum?: Checksum; batch?: WriteBatch } = {}): Promise<Checksum> {
  if (opts.expectedChecksum !== undefined) {
    validateChecksum(opts.expectedChecksum);
    if (await repo.hasLocalObject('file', opts.expectedChecksum)) return opts.expectedChecksum;
  }
  const isLink = (meta.mode & S_IFMT) === S_IFLNK;
  let size = 0;
  let payload: Uint8Array | NodeJS.ReadableStream | null = null;
  let fh: fsp.FileHandle | undefined;
  try {
    if (!isLink) {
      if ('bytes' in content) {
        payload = content.bytes;
        size = content.bytes.length;
      } else if ('stream' in content) {
        payload = content.stream;
        size = content.size;
      } else {
        fh = await fsp.open(content.path, fsc.O_RDONLY | fsc.O_NOFOLLOW);
        const st = await fh.stat();
        if (!st.isFile()) throw new LarchError('UNSUPPORTED_FILE', `Not a regular file or symlink: ${content.path}`, { path: content.path });
        size = st.size;
        payload = fh.createReadStream({ autoClose: false, start: 0 });
      }
    }
    const tmp = repo.newTmpPath();
    const staged = await stageContent({ mode: repo.mode, meta, size, payload, tmpPath: tmp, zlibLevel: repo.zlibLevel, what: 'content' });
    if (opts.expectedChecksum !== undefined && staged.checksum !== opts.expectedChecksum) {
      await fsp.rm(tmp, { force: true });
      throw fileChecksumMismatch(opts.expectedChecksum, staged.checksum);
    }
    if (opts.batch) opts.batch.add(tmp, 'file', staged.checksum);
    else await publishOne(repo, tmp, 'file', staged.checksum, isLink && repo.mode !== 'archive' && repo.mode !== 'bare-user');
    return staged.checksum;
  } finally {
    await fh?.close();
  }
}

/**
 * Stage a content object, in a bare mode, whose payload is in memory and whose checksum the
 * caller has already computed from these exact bytes (a pull verifies each object as it
 * arrives). Synchronous on purpose: for a small file one open/write/fchmod/futimes/close costs
 * less main-thread time than the promise round trips of {@link writeFile}. `batch` publishes
 * it; until then it lives in `tmp/` only. Returns the bytes written. Locking: none of its own
 * (the caller's batch runs under the caller's lock). Archive repos keep the received `.filez`
 * instead: INVALID_ARGUMENT.
 */
export function stageVerifiedFileSync(repo: Repo, meta: FileMeta, payload: Uint8Array, checksum: Checksum, batch: WriteBatch): number {
  if (repo.mode === 'archive') throw new LarchError('INVALID_ARGUMENT', 'stageVerifiedFileSync is for bare modes; archive repos store the .filez as received');
  validateChecksum(checksum);
  const tmp = repo.newTmpPath();
  const isLink = (meta.mode & S_IFMT) === S_IFLNK;
  const written = stageBytesSync(repo.mode, meta, isLink ? null : payload, tmp, null);
  batch.add(tmp, 'file', checksum);
  return written;
}

/**
 * Stage a regular file of a bare mode whose content arrives in pieces too large to hold in
 * memory together (a static delta's large object), hashing it as it is written, so it is
 * written once and never read back. `write` appends; `finish` checks that the object hashes to
 * `checksum`, gives the file its stored metadata and adds it to `batch` (until then it lives in
 * `tmp/` only); `abort` removes it. Synchronous, like {@link stageVerifiedFileSync}.
 */
export function beginFileSync(repo: Repo, meta: FileMeta): StagedFileWriter {
  if (repo.mode === 'archive') throw new LarchError('INVALID_ARGUMENT', 'beginFileSync is for bare modes; archive repos compress their content');
  if ((meta.mode & S_IFMT) !== 0o100000) throw new LarchError('INVALID_ARGUMENT', 'beginFileSync stages regular files only');
  const tmp = repo.newTmpPath();
  const fd = openSync(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o600);
  return new StagedFileWriter(repo.mode, meta, fd, tmp);
}

/**
 * A fresh, unused path for staging: in the staging directory of the transaction running in
 * this async context ({@link Repo.withStagingDir}), else in `tmp/`.
 */
export function newTmpPath(repo: Repo, prefix = 'obj'): string {
  const stage = _activeStagingDir(repo.path);
  if (stage !== undefined) return stage.newTmpPath(prefix);
  return join(repo.tmpPath, `larch-${prefix}-${process.pid}-${(tmpCounter++).toString(36)}-${randomBytes(4).toString('hex')}`);
}

/** Write bytes to a new file in `tmp/` (fsynced when `core.fsync`) and return its path. */
export async function writeTmpFile(repo: Repo, content: string | Uint8Array, mode = 0o644): Promise<string> {
  const p = repo.newTmpPath('f');
  try {
    await fsp.writeFile(p, content, { mode });
    if (repo.fsyncEnabled) await syncFile(p);
  } catch (e) {
    await fsp.rm(p, { force: true });
    throw ioError(e, 'Writing temporary file', p);
  }
  return p;
}

/** Synchronously create `tmp` (exclusively) with `bytes`; no fsync (batches sync the filesystem once). */
export function writeTmpSync(repo: Repo, tmp: string, bytes: Uint8Array, mode = 0o644): void {
  const fd = openSync(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, mode);
  try {
    writeAllSync(fd, bytes);
  } catch (e) {
    closeSync(fd);
    try {
      unlinkSync(tmp);
    } catch {
      // ignore
    }
    throw ioError(e, 'Writing temporary file', tmp);
  }
  closeSync(fd);
}

/** syncfs(2) the filesystem holding `tmp/`. */
export async function syncTmpFs(repo: Repo): Promise<void> {
  const fh = await fsp.open(repo.tmpPath, fsc.O_RDONLY | fsc.O_DIRECTORY);
  try {
    await syncfsAsync(fh.fd);
  } finally {
    await fh.close();
  }
}

/** fsync a directory. */
export async function fsyncDir(repo: Repo, dir: string): Promise<void> {
  if (!repo.fsyncEnabled) return;
  await fsyncDirPath(dir);
}

/** `objects/XX/` for `checksum`, created (and `objects/` fsynced) the first time; `made` remembers the directories known to exist. */
export function ensureObjectDirSync(repo: Repo, made: Set<string>, checksum: Checksum): string {
  const dir = join(repo.path, OBJECTS_DIR, checksum.slice(0, 2));
  if (!made.has(dir)) {
    try {
      mkdirSync(dir);
      if (repo.fsyncEnabled) fsyncDirSync(join(repo.path, OBJECTS_DIR));
    } catch (e) {
      if (!hasErrno(e, 'EEXIST')) throw ioError(e, 'Creating object directory', dir);
    }
    made.add(dir);
  }
  return dir;
}

/** Synchronous {@link publishStaged}. */
export function publishStagedSync(repo: Repo, made: Set<string>, tmp: string, type: ObjectType, checksum: Checksum): string {
  const dir = ensureObjectDirSync(repo, made, checksum);
  const dest = repo.objectPath(type, checksum);
  try {
    linkSync(tmp, dest);
  } catch (e) {
    if (!hasErrno(e, 'EEXIST')) {
      try {
        unlinkSync(tmp);
      } catch {
        // ignore
      }
      throw ioError(e, 'Publishing object', dest);
    }
  }
  unlinkSync(tmp);
  if (type === 'commit') dropTombstoneSync(repo, checksum);
  return dir;
}

/** A commit written again replaces its tombstone (ostree deletes the tombstone with each commit it writes). */
export function dropTombstoneSync(repo: Repo, checksum: Checksum): void {
  try {
    unlinkSync(repo.objectPath('tombstone-commit', checksum));
  } catch (e) {
    if (!hasErrno(e, 'ENOENT')) throw ioError(e, 'Deleting tombstone of', checksum);
  }
}

/** Asynchronous {@link ensureObjectDirSync}. */
export async function ensureObjectDir(repo: Repo, made: Set<string>, checksum: Checksum): Promise<string> {
  const dir = join(repo.path, OBJECTS_DIR, checksum.slice(0, 2));
  if (!made.has(dir)) {
    try {
      await fsp.mkdir(dir);
      if (repo.fsyncEnabled) await fsyncDirPath(join(repo.path, OBJECTS_DIR));
    } catch (e) {
      if (!hasErrno(e, 'EEXIST')) throw ioError(e, 'Creating object directory', dir);
    }
    made.add(dir);
  }
  return dir;
}

/** Link a durable staged file into `objects/` (existing object wins), drop the tmp name; returns the object dir. */
export async function publishStaged(repo: Repo, made: Set<string>, tmp: string, type: ObjectType, checksum: Checksum): Promise<string> {
  const dir = await ensureObjectDir(repo, made, checksum);
  const dest = repo.objectPath(type, checksum);
  try {
    await fsp.link(tmp, dest);
  } catch (e) {
    if (!hasErrno(e, 'EEXIST')) {
      await fsp.rm(tmp, { force: true });
      throw ioError(e, 'Publishing object', dest);
    }
  }
  await fsp.unlink(tmp);
  if (type === 'commit') dropTombstoneSync(repo, checksum);
  return dir;
}

export async function publishOne(repo: Repo, tmp: string, type: ObjectType, checksum: Checksum, isSymlink: boolean): Promise<void> {
  try {
    if (repo.fsyncEnabled) {
      if (isSymlink) await repo.syncTmpFs();
      else await syncFile(tmp);
    }
  } catch (e) {
    await fsp.rm(tmp, { force: true });
    throw ioError(e, 'Syncing', tmp);
  }
  const dir = await repo.publishStaged(tmp, type, checksum);
  if (repo.fsyncEnabled) await fsyncDirPath(dir);
}

export async function syncFile(p: string): Promise<void> {
  const fh = await fsp.open(p, fsc.O_RDONLY | fsc.O_NOFOLLOW);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export async function fsyncDirPath(dir: string): Promise<void> {
  const fh = await fsp.open(dir, fsc.O_RDONLY | fsc.O_DIRECTORY);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export function fsyncDirSync(dir: string): void {
  const fd = openSync(dir, fsc.O_RDONLY | fsc.O_DIRECTORY);
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
