/**
 * `Repo`: an OSTree repository on disk (spec/repo-format.md): opening and creating it, and
 * reading and writing its objects, refs, partial-commit markers and lock.
 *
 * Durability ("the write path"): every object is written into the repo's `tmp/`, made durable
 * (fsync of the file, or one syncfs(2) for a whole batch), then published into `objects/XX/` with
 * link(2), which never replaces an existing object (an object that already exists wins and the
 * temporary file is discarded), and finally the `objects/XX/` directory is fsynced. Refs are
 * written only by callers that have finished publishing. `core.fsync=false` skips the fsyncs, as
 * in OSTree. A crash therefore leaves at most stray files in `tmp/`, never a truncated object
 * under a valid name.
 *
 * Locking: object reads and writes take no lock themselves. A writer's whole transaction holds
 * the shared repo lock ({@link Repo.withLock}); destructive operations hold it exclusive.
 *
 * Parent repository (`core.parent`, as OSTree): reads fall through to it, writes never touch it.
 * `hasObject`, `readMetadata`, `openFile` and the like find an object in this repository or else
 * along the parent chain; the skip-if-present checks of the write path, `listObjects`,
 * `deleteObject` and everything else that changes `objects/` look at this repository only, so a
 * pull stores only what no repository of the chain has, and a prune deletes only its own objects.
 */
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, constants as fsc, fstatSync, fsyncSync, mkdirSync, linkSync, lstatSync, openSync, promises as fsp, readdirSync, readSync, unlinkSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { syncfsAsync } from '@larch/native';
import type { Variant } from '@larch/gvariant';
import { KeyFile } from './config.js';
import { LarchError, fileChecksumMismatch, hasErrno, ioError } from './errors.js';
import type { Checksum, Commit, DirMeta, DirTree, FileMeta, ObjectType, RepoMode } from './types.js';
import { S_IFLNK, S_IFMT } from './types.js';
import { isChecksum, validateChecksum, validateCollectionId } from './validate.js';
import { MAX_METADATA_SIZE, parseCommit } from './objects/commit.js';
import { parseCommitMeta, serializeCommitMeta } from './objects/commitmeta.js';
import { parseDirMeta } from './objects/dirmeta.js';
import { parseDirTree } from './objects/dirtree.js';
import { parseTombstone } from './objects/tombstone.js';
import { contentHasher } from './objects/file-header.js';
import { finishBareFileSync, openBareRegularSync, openContentObject, stageBytesSync, stageContent, writeAllSync, type ContentSource, type OpenedContent } from './objects/content-io.js';
import { acquireRepoLock, DEFAULT_LOCK_TIMEOUT_SECS, withRepoLock, type LockHandle, type LockKind } from './repo-lock.js';
import * as refs from './repo-refs.js';
import { _activeStagingDir, allocateStagingDir, cleanupTmp, withStagingDir, withTransaction, type CleanupTmpOptions, type StagingDir, type Transaction } from './repo-staging.js';
import { objectRelPath, objectSuffix } from './layout.js';

export type { ContentSource, OpenedContent } from './objects/content-io.js';

const EXT: Record<ObjectType, string> = {
  file: 'file',
  dirtree: 'dirtree',
  dirmeta: 'dirmeta',
  commit: 'commit',
  'tombstone-commit': 'tombstone-commit',
  commitmeta: 'commitmeta',
};

const MODE_STRINGS: Record<string, RepoMode> = {
  bare: 'bare',
  'bare-user': 'bare-user',
  'bare-user-only': 'bare-user-only',
  archive: 'archive',
  'archive-z2': 'archive',
};

/** The config `mode=` string `ostree init` writes for each mode. */
export function modeConfigString(mode: RepoMode): string {
  return mode === 'archive' ? 'archive-z2' : mode;
}

/** OSTree's default `[archive] zlib-level`. */
export const DEFAULT_ZLIB_LEVEL = 6;

/** Bound on `core.parent` chains (OSTree follows them without one; a cycle would never end). */
const MAX_PARENT_DEPTH = 32;

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

export class Repo {
  readonly path: string;
  readonly mode: RepoMode;
  readonly config: KeyFile;
  readonly tmpPath: string;
  /** The repository `core.parent` names, opened with this one; null without one. */
  parent: Repo | null = null;
  private readonly madeDirs = new Set<string>();

  private constructor(path: string, mode: RepoMode, config: KeyFile) {
    this.path = path;
    this.mode = mode;
    this.config = config;
    this.tmpPath = join(path, 'tmp');
  }

  /** `core.fsync` (default true). */
  get fsyncEnabled(): boolean {
    return this.config.getBoolean('core', 'fsync', true);
  }

  /** `[archive] zlib-level` (default 6, clamped to 1..9 as OSTree does). */
  get zlibLevel(): number {
    const l = this.config.getInteger('archive', 'zlib-level', DEFAULT_ZLIB_LEVEL);
    return Math.min(9, Math.max(1, l));
  }

  /** `core.lock-timeout-secs` in ms (default 30 s; -1 = wait forever). */
  get lockTimeoutMs(): number {
    const s = this.config.getInteger('core', 'lock-timeout-secs', DEFAULT_LOCK_TIMEOUT_SECS);
    return s < 0 ? -1 : s * 1000;
  }

  /** `core.collection-id`, if any. */
  get collectionId(): string | null {
    return this.config.get('core', 'collection-id') ?? null;
  }

  /**
   * Create a repository exactly like `ostree init`: `config` with `[core] repo_version=1` and
   * `mode=` (`archive-z2` for archive) plus `collection-id=` when given, and the directories
   * `objects/`, `refs/{heads,mirrors,remotes}/`, `state/`, `tmp/cache/`, `extensions/`.
   * If a repository with the same config already exists it is opened; a different one is EXISTS.
   */
  static async init(opts: { path: string; mode: RepoMode; collectionId?: string }): Promise<Repo> {
    const path = resolve(opts.path);
    if (!(opts.mode in MODE_STRINGS) || opts.mode === ('archive-z2' as RepoMode)) {
      throw new LarchError('BAD_MODE', `Invalid mode '${opts.mode}' in repository configuration`, { mode: opts.mode });
    }
    if (opts.collectionId !== undefined) validateCollectionId(opts.collectionId);
    let text = `[core]\nrepo_version=1\nmode=${modeConfigString(opts.mode)}\n`;
    if (opts.collectionId !== undefined) text += `collection-id=${opts.collectionId}\n`;
    const configPath = join(path, 'config');
    try {
      const existing = await fsp.readFile(configPath, 'utf8');
      if (existing !== text) throw new LarchError('EXISTS', `Repository already exists at ${path} with a different configuration`, { path });
      return await Repo.open(path);
    } catch (e) {
      if (!hasErrno(e, 'ENOENT')) throw e instanceof LarchError ? e : ioError(e, 'Reading', configPath);
    }
    try {
      await fsp.mkdir(path, { recursive: true });
      for (const d of ['objects', 'tmp', 'tmp/cache', 'extensions', 'state', 'refs', 'refs/heads', 'refs/mirrors', 'refs/remotes']) {
        await fsp.mkdir(join(path, d), { recursive: true });
      }
      const tmp = join(path, `.config.tmp-${randomBytes(6).toString('hex')}`);
      await fsp.writeFile(tmp, text, { mode: 0o644 });
      await syncFile(tmp);
      await fsp.rename(tmp, configPath);
      await fsyncDirPath(path);
    } catch (e) {
      throw ioError(e, 'Creating repository', path);
    }
    return Repo.open(path);
  }

  /**
   * Open an existing repository, and its parent chain (`core.parent`, a path relative to the
   * working directory, as OSTree opens it). Throws REPO_NOT_FOUND, BAD_CONFIG or BAD_MODE; a
   * parent that cannot be opened fails the open, in ostree's words ("While checking parent
   * repository 'P': …").
   */
  static async open(path: string): Promise<Repo> {
    return Repo.openChain(path, []);
  }

  /** Open `path` and its parents; `below` holds the paths of the children already opened. */
  private static async openChain(path: string, below: string[]): Promise<Repo> {
    const repo = await Repo.openOne(path);
    const parentPath = repo.config.get('core', 'parent');
    if (parentPath === undefined || parentPath === '') return repo;
    // OSTree follows the chain without a bound, so a cycle never ends; here a chain stops at a
    // repository already in it, or after MAX_PARENT_DEPTH parents, as the remote lookup does.
    const chain = [...below, repo.path];
    if (chain.includes(resolve(parentPath)) || chain.length > MAX_PARENT_DEPTH) return repo;
    try {
      repo.parent = await Repo.openChain(parentPath, chain);
    } catch (e) {
      const why = `While checking parent repository '${parentPath}': ${(e as Error).message}`;
      throw new LarchError(e instanceof LarchError ? e.code : 'IO_ERROR', why, { path: resolve(parentPath) }, { cause: e });
    }
    return repo;
  }

  /**
   * As ostree on every open of a repository whose `objects/` it may write to: recreate `tmp/`
   * and `tmp/cache/` (not the latter with OSTREE_SKIP_CACHE set), which may have been removed to
   * free space, before the configuration is read. A repository that cannot be written is left as
   * it is (where ostree then fails to open one without `tmp/`, this reads it).
   */
  private static async recreateTmp(abs: string): Promise<void> {
    try {
      await fsp.access(join(abs, 'objects'), fsc.W_OK);
    } catch {
      return;
    }
    for (const d of process.env.OSTREE_SKIP_CACHE === undefined ? ['tmp', 'tmp/cache'] : ['tmp']) {
      try {
        await fsp.mkdir(join(abs, d), 0o775);
      } catch (e) {
        if (!hasErrno(e, 'EEXIST')) throw new LarchError('IO_ERROR', `mkdir(${d}): ${(e as Error).message}`, { path: join(abs, d), errno: (e as NodeJS.ErrnoException).code }, { cause: e });
      }
    }
  }

  private static async openOne(path: string): Promise<Repo> {
    const abs = resolve(path);
    const configPath = join(abs, 'config');
    let text: string;
    try {
      const st = await fsp.stat(join(abs, 'objects'));
      if (!st.isDirectory()) throw Object.assign(new Error('objects is not a directory'), { code: 'ENOENT' });
      await Repo.recreateTmp(abs);
      text = await fsp.readFile(configPath, 'utf8');
    } catch (e) {
      if (e instanceof LarchError) throw e;
      if (hasErrno(e, 'ENOENT') || hasErrno(e, 'ENOTDIR')) {
        throw new LarchError('REPO_NOT_FOUND', `Couldn't find repository at ${abs}: no config or objects directory`, { path: abs }, { cause: e });
      }
      throw ioError(e, 'Opening repository', abs);
    }
    const config = KeyFile.parse(text, configPath);
    const version = config.get('core', 'repo_version');
    if (version === undefined) throw new LarchError('BAD_CONFIG', `Missing key 'repo_version' in group 'core' of ${configPath}`, { path: configPath });
    if (version.trim() !== '1') throw new LarchError('BAD_CONFIG', `Invalid repository version ${version}`, { path: configPath, version });
    const modeStr = config.get('core', 'mode') ?? 'bare';
    const mode = MODE_STRINGS[modeStr.trim()];
    if (mode === undefined) throw new LarchError('BAD_MODE', `Invalid mode '${modeStr}' in repository configuration`, { path: configPath, mode: modeStr });
    const repo = new Repo(abs, mode, config);
    // Validate the typed keys now so a bad value fails at open, like OSTree.
    void repo.fsyncEnabled;
    void repo.lockTimeoutMs;
    if (mode === 'archive') void repo.zlibLevel;
    const cid = repo.collectionId;
    if (cid !== null) {
      try {
        validateCollectionId(cid);
      } catch (e) {
        throw new LarchError('BAD_CONFIG', `Invalid core.collection-id '${cid}'`, { path: configPath }, { cause: e });
      }
    }
    return repo;
  }

  /** Write `config` back atomically (tmp + fsync + rename + fsync dir), preserving unknown keys and comments. */
  async saveConfig(): Promise<void> {
    const tmp = join(this.path, `.config.tmp-${randomBytes(6).toString('hex')}`);
    try {
      await fsp.writeFile(tmp, this.config.toString(), { mode: 0o644 });
      if (this.fsyncEnabled) await syncFile(tmp);
      await fsp.rename(tmp, join(this.path, 'config'));
      if (this.fsyncEnabled) await fsyncDirPath(this.path);
    } catch (e) {
      await fsp.rm(tmp, { force: true });
      throw ioError(e, 'Writing config of', this.path);
    }
  }

  // ---------------------------------------------------------------- objects

  /** Absolute path of an object (content objects are `.filez` in archive mode, `.file` otherwise). */
  objectPath(type: ObjectType, checksum: Checksum): string {
    validateChecksum(checksum);
    if (EXT[type] === undefined) throw new LarchError('INVALID_ARGUMENT', `Unknown object type ${String(type)}`, { type });
    return join(this.path, objectRelPath(checksum, objectSuffix(type, this.mode)));
  }

  /** Synchronous {@link hasObject} (one lstat per repository of the chain), for hot loops. */
  hasObjectSync(type: ObjectType, checksum: Checksum): boolean {
    return this.hasLocalObjectSync(type, checksum) || (this.parent?.hasObjectSync(type, checksum) ?? false);
  }

  /** Whether this repository or one of its parent chain holds the object (ostree_repo_has_object). */
  async hasObject(type: ObjectType, checksum: Checksum): Promise<boolean> {
    return (await this.hasLocalObject(type, checksum)) || ((await this.parent?.hasObject(type, checksum)) ?? false);
  }

  /** Whether this repository itself holds the object, whatever its parent has. Synchronous. */
  hasLocalObjectSync(type: ObjectType, checksum: Checksum): boolean {
    try {
      return lstatSync(this.objectPath(type, checksum), { throwIfNoEntry: false }) !== undefined;
    } catch (e) {
      throw ioError(e, 'Checking object', `${checksum}.${type}`);
    }
  }

  /** Whether this repository itself holds the object, whatever its parent has. */
  async hasLocalObject(type: ObjectType, checksum: Checksum): Promise<boolean> {
    try {
      await fsp.lstat(this.objectPath(type, checksum));
      return true;
    } catch (e) {
      if (hasErrno(e, 'ENOENT')) return false;
      throw ioError(e, 'Checking object', `${checksum}.${type}`);
    }
  }

  /**
   * The path to read an object from: in the first repository of the chain (this one, then its
   * parents) that holds it, else this repository's {@link objectPath}. For readers that open
   * object files themselves and read them in this repository's format: a content object is
   * looked for only in parents of the same mode.
   */
  objectReadPath(type: ObjectType, checksum: Checksum): string {
    if (this.parent !== null && !this.hasLocalObjectSync(type, checksum)) {
      for (let r: Repo | null = this.parent; r !== null; r = r.parent) {
        if (type === 'file' && r.mode !== this.mode) break;
        if (r.hasLocalObjectSync(type, checksum)) return r.objectPath(type, checksum);
      }
    }
    return this.objectPath(type, checksum);
  }

  /**
   * Raw bytes of a metadata object, bounded by MAX_METADATA_SIZE (LIMIT_EXCEEDED). With
   * `verify`, checks sha256 == name for dirtree/dirmeta/commit and normal form for every type.
   */
  async readMetadata(type: Exclude<ObjectType, 'file'>, checksum: Checksum, opts: { verify?: boolean } = {}): Promise<Uint8Array> {
    // Synchronous syscalls: metadata objects are small (bounded below) and, on a local
    // filesystem, open/fstat/read/close cost microseconds, far less than four thread-pool round
    // trips; a checkout or prune reads one dirtree and one dirmeta per directory.
    const p = this.objectPath(type, checksum);
    let bytes: Buffer;
    let fd = -1;
    try {
      fd = openSync(p, fsc.O_RDONLY | fsc.O_NOFOLLOW);
      const st = fstatSync(fd);
      if (!st.isFile()) throw new LarchError('OBJECT_CORRUPTED', `Corrupted ${type} object ${checksum}: not a regular file`, { type, checksum });
      if (st.size > MAX_METADATA_SIZE) {
        throw new LarchError('LIMIT_EXCEEDED', `Metadata object ${checksum}.${type} is ${st.size} bytes, exceeding the limit of ${MAX_METADATA_SIZE}`, { type, checksum, size: st.size, limit: MAX_METADATA_SIZE });
      }
      bytes = Buffer.alloc(st.size);
      let off = 0;
      while (off < st.size) {
        const n = readSync(fd, bytes, off, st.size - off, off);
        if (n === 0) break;
        off += n;
      }
      if (off !== st.size) throw new LarchError('OBJECT_CORRUPTED', `Corrupted ${type} object ${checksum}: short read`, { type, checksum });
    } catch (e) {
      if (hasErrno(e, 'ENOENT')) {
        if (this.parent !== null) return this.parent.readMetadata(type, checksum, opts);
        throw new LarchError('OBJECT_MISSING', `No such metadata object ${checksum}.${type}`, { type, checksum });
      }
      if (hasErrno(e, 'ELOOP')) throw new LarchError('OBJECT_CORRUPTED', `Corrupted ${type} object ${checksum}: is a symlink`, { type, checksum });
      throw ioError(e, 'Reading object', p);
    } finally {
      if (fd >= 0) closeSync(fd);
    }
    const u8 = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    if (opts.verify) {
      if (type === 'dirtree' || type === 'dirmeta' || type === 'commit') this.checkDigest(type, checksum, u8);
      try {
        if (type === 'dirtree') parseDirTree(u8);
        else if (type === 'dirmeta') parseDirMeta(u8);
        else if (type === 'commit') parseCommit(u8);
        else if (type === 'commitmeta') parseCommitMeta(u8);
        else parseTombstone(u8);
      } catch (e) {
        throw this.corrupted(type, checksum, e);
      }
    }
    return u8;
  }

  private checkDigest(type: ObjectType, checksum: Checksum, bytes: Uint8Array): void {
    const actual = createHash('sha256').update(bytes).digest('hex');
    if (actual !== checksum) {
      throw new LarchError('OBJECT_CORRUPTED', `Corrupted ${type} object; checksum expected='${checksum}' actual='${actual}'`, { type, checksum, actual });
    }
  }

  private corrupted(type: ObjectType, checksum: Checksum, e: unknown): LarchError {
    if (e instanceof LarchError && e.code !== 'OBJECT_CORRUPTED' && e.code !== 'INVALID_NAME' && e.code !== 'INVALID_CHECKSUM') return e;
    const msg = e instanceof Error ? e.message : String(e);
    return new LarchError('OBJECT_CORRUPTED', `Corrupted ${type} object ${checksum}: ${msg}`, { type, checksum }, { cause: e });
  }

  /** Read, checksum-verify and parse a commit. */
  async readCommit(checksum: Checksum): Promise<Commit> {
    const b = await this.readMetadata('commit', checksum);
    this.checkDigest('commit', checksum, b);
    try {
      return parseCommit(b);
    } catch (e) {
      throw this.corrupted('commit', checksum, e);
    }
  }

  /** Read, checksum-verify and parse a dirtree (names, 32-byte checksums, order, normal form). */
  async readDirTree(checksum: Checksum): Promise<DirTree> {
    const b = await this.readMetadata('dirtree', checksum);
    this.checkDigest('dirtree', checksum, b);
    try {
      return parseDirTree(b);
    } catch (e) {
      throw this.corrupted('dirtree', checksum, e);
    }
  }

  /** Read, checksum-verify and parse a dirmeta. */
  async readDirMeta(checksum: Checksum): Promise<DirMeta> {
    const b = await this.readMetadata('dirmeta', checksum);
    this.checkDigest('dirmeta', checksum, b);
    try {
      return parseDirMeta(b);
    } catch (e) {
      throw this.corrupted('dirmeta', checksum, e);
    }
  }

  /** Detached metadata of a commit, or null when there is none. */
  async readCommitMeta(commit: Checksum): Promise<Array<[string, Variant]> | null> {
    let b: Uint8Array;
    try {
      b = await this.readMetadata('commitmeta', commit);
    } catch (e) {
      if (e instanceof LarchError && e.code === 'OBJECT_MISSING') return null;
      throw e;
    }
    try {
      return parseCommitMeta(b);
    } catch (e) {
      throw this.corrupted('commitmeta', commit, e);
    }
  }

  /**
   * Replace `summary.sig` with `bytes` (the serialized `a{sv}` of signatures over the current
   * `summary`), atomically and durably: a reader sees the old file or the new one, never a part.
   */
  async writeSummarySignature(bytes: Uint8Array): Promise<void> {
    const tmp = await this.writeTmpFile(bytes);
    const dest = join(this.path, 'summary.sig');
    try {
      await fsp.rename(tmp, dest);
    } catch (e) {
      await fsp.rm(tmp, { force: true });
      throw ioError(e, 'Writing summary signature', dest);
    }
    if (this.fsyncEnabled) await this.fsyncDir(this.path);
  }

  /** Replace (or with null, delete) the detached metadata of a commit; atomic and durable. */
  async writeCommitMeta(commit: Checksum, dict: Array<[string, Variant]> | null): Promise<void> {
    const dest = this.objectPath('commitmeta', commit);
    if (dict === null) {
      await fsp.rm(dest, { force: true });
      return;
    }
    const tmp = await this.writeTmpFile(serializeCommitMeta(dict));
    const dir = await this.ensureObjectDir(commit);
    try {
      await fsp.rename(tmp, dest);
    } catch (e) {
      await fsp.rm(tmp, { force: true });
      throw ioError(e, 'Writing detached metadata', dest);
    }
    if (this.fsyncEnabled) await this.fsyncDir(dir);
  }

  /**
   * Store a metadata object (no-op when present) and return its checksum. Durable on return.
   * The bytes are parsed first, so a malformed object is never stored.
   */
  async writeMetadata(type: 'dirtree' | 'dirmeta' | 'commit', bytes: Uint8Array, batch?: WriteBatch): Promise<Checksum> {
    try {
      if (type === 'dirtree') parseDirTree(bytes);
      else if (type === 'dirmeta') parseDirMeta(bytes);
      else parseCommit(bytes);
    } catch (e) {
      throw new LarchError('OBJECT_CORRUPTED', `Refusing to write invalid ${type} object: ${(e as Error).message}`, { type }, { cause: e });
    }
    const checksum = createHash('sha256').update(bytes).digest('hex');
    if (await this.hasLocalObject(type, checksum)) return checksum;
    const tmp = await this.writeTmpFile(bytes, 0o644);
    if (batch) {
      batch.add(tmp, type, checksum);
      return checksum;
    }
    await this.publishOne(tmp, type, checksum, false);
    return checksum;
  }

  /** Open a content object: its meta, uncompressed size, and a factory for fresh content streams. */
  async openFile(checksum: Checksum): Promise<OpenedContent> {
    try {
      return await openContentObject(this.mode, this.objectPath('file', checksum), checksum);
    } catch (e) {
      if (this.parent !== null && e instanceof LarchError && e.code === 'OBJECT_MISSING') return this.parent.openFile(checksum);
      throw e;
    }
  }

  /**
   * A regular-file content object of a bare mode opened for positioned reads, synchronously: its
   * descriptor (the caller closes it) and size. Throws OBJECT_MISSING, or OBJECT_CORRUPTED for an
   * object that is not a regular file. Not verified (see {@link verifyFile}).
   */
  openRegularFileSync(checksum: Checksum): { fd: number; size: number } {
    validateChecksum(checksum);
    try {
      return openBareRegularSync(this.mode, this.objectPath('file', checksum), checksum);
    } catch (e) {
      // A parent of another mode stores another format: the caller's bare read cannot use it.
      if (this.parent?.mode === this.mode && e instanceof LarchError && e.code === 'OBJECT_MISSING') return this.parent.openRegularFileSync(checksum);
      throw e;
    }
  }

  /**
   * Store a content object and return its checksum. The checksum is computed from the bytes as
   * they are written; with `expectedChecksum` a mismatch throws OBJECT_CORRUPTED before anything
   * is published, and an object already present is not rewritten. Durable on return (or at
   * `batch.commit()` when a batch is given). The `path` source is opened once and read through
   * its descriptor; symlink metas ignore the content.
   */
  async writeFile(meta: FileMeta, content: ContentSource, opts: { expectedChecksum?: Checksum; batch?: WriteBatch } = {}): Promise<Checksum> {
    if (opts.expectedChecksum !== undefined) {
      validateChecksum(opts.expectedChecksum);
      if (await this.hasLocalObject('file', opts.expectedChecksum)) return opts.expectedChecksum;
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
      const tmp = this.newTmpPath();
      const staged = await stageContent({ mode: this.mode, meta, size, payload, tmpPath: tmp, zlibLevel: this.zlibLevel, what: 'content' });
      if (opts.expectedChecksum !== undefined && staged.checksum !== opts.expectedChecksum) {
        await fsp.rm(tmp, { force: true });
        throw fileChecksumMismatch(opts.expectedChecksum, staged.checksum);
      }
      if (opts.batch) opts.batch.add(tmp, 'file', staged.checksum);
      else await this.publishOne(tmp, 'file', staged.checksum, isLink && this.mode !== 'archive' && this.mode !== 'bare-user');
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
  stageVerifiedFileSync(meta: FileMeta, payload: Uint8Array, checksum: Checksum, batch: WriteBatch): number {
    if (this.mode === 'archive') throw new LarchError('INVALID_ARGUMENT', 'stageVerifiedFileSync is for bare modes; archive repos store the .filez as received');
    validateChecksum(checksum);
    const tmp = this.newTmpPath();
    const isLink = (meta.mode & S_IFMT) === S_IFLNK;
    const written = stageBytesSync(this.mode, meta, isLink ? null : payload, tmp, null);
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
  beginFileSync(meta: FileMeta): StagedFileWriter {
    if (this.mode === 'archive') throw new LarchError('INVALID_ARGUMENT', 'beginFileSync is for bare modes; archive repos compress their content');
    if ((meta.mode & S_IFMT) !== 0o100000) throw new LarchError('INVALID_ARGUMENT', 'beginFileSync stages regular files only');
    const tmp = this.newTmpPath();
    const fd = openSync(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o600);
    return new StagedFileWriter(this.mode, meta, fd, tmp);
  }

  /** Re-hash a content object. Throws OBJECT_MISSING, or OBJECT_CORRUPTED with data {checksum, actual}. */
  async verifyFile(checksum: Checksum): Promise<void> {
    let actual: string;
    try {
      const f = await this.openFile(checksum);
      const h = contentHasher(f.meta);
      for await (const chunk of f.open() as AsyncIterable<Buffer>) h.update(chunk);
      actual = h.digest('hex');
    } catch (e) {
      if (e instanceof LarchError && e.code === 'OBJECT_MISSING') throw e;
      if (e instanceof LarchError && (e.code === 'OBJECT_CORRUPTED' || e.code === 'INVALID_NAME')) {
        throw new LarchError('OBJECT_CORRUPTED', e.message.includes(checksum) ? e.message : `Corrupted object ${checksum}.file: ${e.message}`, { ...e.data, checksum, actual: null }, { cause: e });
      }
      throw e;
    }
    if (actual !== checksum) {
      throw fileChecksumMismatch(checksum, actual);
    }
  }

  /**
   * Every object in this repository's `objects/` (any order), not its parent's (ostree's
   * LIST_OBJECTS_NO_PARENTS). Files that are not objects of this mode are skipped.
   */
  async *listObjects(): AsyncIterable<{ type: ObjectType; checksum: Checksum }> {
    const root = join(this.path, 'objects');
    const contentExt = this.mode === 'archive' ? 'filez' : 'file';
    const byExt = new Map<string, ObjectType>([
      [contentExt, 'file'],
      ['dirtree', 'dirtree'],
      ['dirmeta', 'dirmeta'],
      ['commit', 'commit'],
      ['tombstone-commit', 'tombstone-commit'],
      ['commitmeta', 'commitmeta'],
    ]);
    let dirs: string[];
    try {
      dirs = await fsp.readdir(root);
    } catch (e) {
      throw ioError(e, 'Listing objects in', root);
    }
    for (const d of dirs.sort()) {
      if (!/^[0-9a-f]{2}$/.test(d)) continue;
      let names: string[];
      try {
        // Synchronous: one of 256 directories at a time, far cheaper than a thread-pool round trip each.
        names = readdirSync(join(root, d));
      } catch (e) {
        if (hasErrno(e, 'ENOTDIR') || hasErrno(e, 'ENOENT')) continue;
        throw ioError(e, 'Listing objects in', join(root, d));
      }
      for (const n of names) {
        const dot = n.indexOf('.');
        if (dot !== 62) continue;
        const type = byExt.get(n.slice(63));
        const checksum = d + n.slice(0, 62);
        if (type && isChecksum(checksum)) yield { type, checksum };
      }
    }
  }

  /** Unlink one object. Throws OBJECT_MISSING when absent. Callers hold the exclusive lock. */
  async deleteObject(type: ObjectType, checksum: Checksum): Promise<void> {
    const p = this.objectPath(type, checksum);
    try {
      await fsp.unlink(p);
    } catch (e) {
      if (hasErrno(e, 'ENOENT')) throw new LarchError('OBJECT_MISSING', `Object missing: ${checksum}.${type}`, { type, checksum });
      throw ioError(e, 'Deleting object', p);
    }
  }

  // ---------------------------------------------------------------- partial commits

  private partialPath(c: Checksum): string {
    validateChecksum(c);
    return join(this.path, 'state', `${c}.commitpartial`);
  }

  async isCommitPartial(c: Checksum): Promise<boolean> {
    try {
      await fsp.lstat(this.partialPath(c));
      return true;
    } catch (e) {
      if (hasErrno(e, 'ENOENT')) return false;
      throw ioError(e, 'Checking', this.partialPath(c));
    }
  }

  /**
   * null for a complete commit; 'fsck' when fsck marked it partial (the marker holds `f`, as
   * ostree's FSCK_PARTIAL state), 'partial' otherwise.
   */
  async commitPartialState(c: Checksum): Promise<'partial' | 'fsck' | null> {
    let content: Buffer;
    try {
      content = await fsp.readFile(this.partialPath(c));
    } catch (e) {
      if (hasErrno(e, 'ENOENT')) return null;
      if (hasErrno(e, 'EISDIR')) return 'partial';
      throw ioError(e, 'Reading', this.partialPath(c));
    }
    return content.length > 0 && content[0] === 0x66 ? 'fsck' : 'partial';
  }

  /** Create `state/C.commitpartial` (durable); `reason: 'fsck'` records that fsck found it damaged. An existing marker is kept. */
  async markCommitPartial(c: Checksum, opts: { reason?: 'fsck' } = {}): Promise<void> {
    const p = this.partialPath(c);
    await fsp.mkdir(join(this.path, 'state'), { recursive: true });
    try {
      await fsp.writeFile(p, opts.reason === 'fsck' ? 'f' : '', { mode: 0o644, flag: 'wx' });
    } catch (e) {
      if (!hasErrno(e, 'EEXIST')) throw ioError(e, 'Creating', p);
    }
    if (this.fsyncEnabled) await this.fsyncDir(join(this.path, 'state'));
  }

  /** Remove `state/C.commitpartial` (durable); no-op when absent. */
  async clearCommitPartial(c: Checksum): Promise<void> {
    try {
      await fsp.unlink(this.partialPath(c));
    } catch (e) {
      if (hasErrno(e, 'ENOENT')) return;
      throw ioError(e, 'Removing', this.partialPath(c));
    }
    if (this.fsyncEnabled) await this.fsyncDir(join(this.path, 'state'));
  }

  // ---------------------------------------------------------------- refs

  listRefs(opts?: { kind?: 'heads' | 'remotes' | 'mirrors' | 'all'; remote?: string; prefix?: string }): Promise<Map<string, Checksum>> {
    return refs.listRefs(this, opts);
  }

  resolveRef(refspec: string): Promise<Checksum | null> {
    return refs.resolveRef(this, refspec);
  }

  /**
   * Point `refspec` at `checksum` (null deletes it). With `core.auto-update-summary` (or its
   * older name `core.commit-update-summary`) set, the summary is regenerated afterwards, as ostree
   * does on every ref it writes (taking the exclusive lock for that).
   */
  async setRef(refspec: string, checksum: Checksum | null): Promise<void> {
    await refs.setRef(this, refspec, checksum);
    await this.maybeRegenerateSummary();
  }

  /** Regenerate the summary when `core.auto-update-summary` or `core.commit-update-summary` is true. */
  async maybeRegenerateSummary(): Promise<void> {
    const auto = this.config.getBoolean('core', 'auto-update-summary', false) || this.config.getBoolean('core', 'commit-update-summary', false);
    if (!auto) return;
    const { generateSummary } = await import('./repo-summary.js');
    await generateSummary(this);
  }

  revParse(spec: string): Promise<Checksum> {
    return refs.revParse(this, spec);
  }

  // ---------------------------------------------------------------- lock

  /** Take the repo lock (see repo-lock.ts); waits up to `timeoutMs` (default `core.lock-timeout-secs`). */
  lock(kind: LockKind, opts: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<LockHandle> {
    return acquireRepoLock(this.path, kind, { timeoutMs: opts.timeoutMs ?? this.lockTimeoutMs, signal: opts.signal });
  }

  /** Run `fn` holding the lock; nested `withLock` calls inside `fn` reuse (or upgrade) it. */
  withLock<T>(kind: LockKind, fn: () => Promise<T>, opts: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<T> {
    return withRepoLock(this.path, kind, { timeoutMs: opts.timeoutMs ?? this.lockTimeoutMs, signal: opts.signal }, fn);
  }

  // ---------------------------------------------------------------- write-path internals

  /**
   * A fresh, unused path for staging: in the staging directory of the transaction running in
   * this async context ({@link withStagingDir}), else in `tmp/`.
   */
  newTmpPath(prefix = 'obj'): string {
    const stage = _activeStagingDir(this.path);
    if (stage !== undefined) return stage.newTmpPath(prefix);
    return join(this.tmpPath, `larch-${prefix}-${process.pid}-${(tmpCounter++).toString(36)}-${randomBytes(4).toString('hex')}`);
  }

  /** Write bytes to a new file in `tmp/` (fsynced when `core.fsync`) and return its path. */
  async writeTmpFile(content: string | Uint8Array, mode = 0o644): Promise<string> {
    const p = this.newTmpPath('f');
    try {
      await fsp.writeFile(p, content, { mode });
      if (this.fsyncEnabled) await syncFile(p);
    } catch (e) {
      await fsp.rm(p, { force: true });
      throw ioError(e, 'Writing temporary file', p);
    }
    return p;
  }

  /** Synchronously create `tmp` (exclusively) with `bytes`; no fsync (batches sync the filesystem once). */
  writeTmpSync(tmp: string, bytes: Uint8Array, mode = 0o644): void {
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

  /** `core.tmp-expiry-secs` (OSTree's default: one day). */
  get tmpExpirySecs(): number {
    return this.config.getInteger('core', 'tmp-expiry-secs', 86400);
  }

  /**
   * Remove what crashed writers left in `tmp/`, with OSTree's rules (repo-staging.ts): staging
   * directories whose lock nobody holds, of other boots (of every boot with `allBoots`), and
   * every other entry but `cache` older than `core.tmp-expiry-secs`. A staging directory of a
   * running writer is never touched. Returns the number of entries removed.
   * Locking: none of its own; call it at the start or end of a transaction (under the shared
   * lock), or with `allBoots` under the exclusive lock (prune).
   */
  cleanupTmp(opts: CleanupTmpOptions = {}): Promise<number> {
    return cleanupTmp(this, opts);
  }

  /**
   * A locked staging directory for one transaction's files, `tmp/staging-<BOOTID>-XXXXXX` (a
   * dead writer's directory of this boot is taken over and emptied). Stage with its
   * `newTmpPath`, and call its `remove` when the transaction ends, published or not.
   */
  allocateStagingDir(): Promise<StagingDir> {
    return allocateStagingDir(this);
  }

  /**
   * Run `fn` as a transaction's staging (repo-staging.ts): its `newTmpPath` files go into a
   * locked staging directory, which is removed when `fn` succeeds and kept, unlocked, when it
   * throws (as ostree's abort); then `tmp/` is cleaned of what crashed writers left. Call it
   * just inside the shared lock.
   */
  withStagingDir<T>(fn: (stage: StagingDir) => Promise<T>): Promise<T> {
    return withStagingDir(this, fn);
  }

  /**
   * Run `fn` as a repository transaction (repo-staging.ts): under the shared lock, in a staging
   * directory; the refs `fn` sets with `txn.setRef` are written only when it commits. Honours the
   * `OSTREE_REPO_TEST_ERROR=pre-commit` failpoint, which aborts it before anything is written.
   */
  withTransaction<T>(fn: (txn: Transaction) => Promise<T>): Promise<T> {
    return withTransaction(this, fn);
  }

  /** Start a batch of object writes published together (see {@link WriteBatch}). */
  beginBatch(): WriteBatch {
    return new WriteBatch(this);
  }

  /** syncfs(2) the filesystem holding `tmp/`. */
  async syncTmpFs(): Promise<void> {
    const fh = await fsp.open(this.tmpPath, fsc.O_RDONLY | fsc.O_DIRECTORY);
    try {
      await syncfsAsync(fh.fd);
    } finally {
      await fh.close();
    }
  }

  /** fsync a directory. */
  async fsyncDir(dir: string): Promise<void> {
    if (!this.fsyncEnabled) return;
    await fsyncDirPath(dir);
  }

  private ensureObjectDirSync(checksum: Checksum): string {
    const dir = join(this.path, 'objects', checksum.slice(0, 2));
    if (!this.madeDirs.has(dir)) {
      try {
        mkdirSync(dir);
        if (this.fsyncEnabled) fsyncDirSync(join(this.path, 'objects'));
      } catch (e) {
        if (!hasErrno(e, 'EEXIST')) throw ioError(e, 'Creating object directory', dir);
      }
      this.madeDirs.add(dir);
    }
    return dir;
  }

  /** Synchronous {@link publishStaged}. */
  publishStagedSync(tmp: string, type: ObjectType, checksum: Checksum): string {
    const dir = this.ensureObjectDirSync(checksum);
    const dest = this.objectPath(type, checksum);
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
    if (type === 'commit') this.dropTombstoneSync(checksum);
    return dir;
  }

  /** A commit written again replaces its tombstone (ostree deletes the tombstone with each commit it writes). */
  private dropTombstoneSync(checksum: Checksum): void {
    try {
      unlinkSync(this.objectPath('tombstone-commit', checksum));
    } catch (e) {
      if (!hasErrno(e, 'ENOENT')) throw ioError(e, 'Deleting tombstone of', checksum);
    }
  }

  private async ensureObjectDir(checksum: Checksum): Promise<string> {
    const dir = join(this.path, 'objects', checksum.slice(0, 2));
    if (!this.madeDirs.has(dir)) {
      try {
        await fsp.mkdir(dir);
        if (this.fsyncEnabled) await fsyncDirPath(join(this.path, 'objects'));
      } catch (e) {
        if (!hasErrno(e, 'EEXIST')) throw ioError(e, 'Creating object directory', dir);
      }
      this.madeDirs.add(dir);
    }
    return dir;
  }

  /** Link a durable staged file into `objects/` (existing object wins), drop the tmp name; returns the object dir. */
  async publishStaged(tmp: string, type: ObjectType, checksum: Checksum): Promise<string> {
    const dir = await this.ensureObjectDir(checksum);
    const dest = this.objectPath(type, checksum);
    try {
      await fsp.link(tmp, dest);
    } catch (e) {
      if (!hasErrno(e, 'EEXIST')) {
        await fsp.rm(tmp, { force: true });
        throw ioError(e, 'Publishing object', dest);
      }
    }
    await fsp.unlink(tmp);
    if (type === 'commit') this.dropTombstoneSync(checksum);
    return dir;
  }

  private async publishOne(tmp: string, type: ObjectType, checksum: Checksum, isSymlink: boolean): Promise<void> {
    try {
      if (this.fsyncEnabled) {
        if (isSymlink) await this.syncTmpFs();
        else await syncFile(tmp);
      }
    } catch (e) {
      await fsp.rm(tmp, { force: true });
      throw ioError(e, 'Syncing', tmp);
    }
    const dir = await this.publishStaged(tmp, type, checksum);
    if (this.fsyncEnabled) await fsyncDirPath(dir);
  }
}

async function syncFile(p: string): Promise<void> {
  const fh = await fsp.open(p, fsc.O_RDONLY | fsc.O_NOFOLLOW);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function fsyncDirPath(dir: string): Promise<void> {
  const fh = await fsp.open(dir, fsc.O_RDONLY | fsc.O_DIRECTORY);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

function fsyncDirSync(dir: string): void {
  const fd = openSync(dir, fsc.O_RDONLY | fsc.O_DIRECTORY);
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
