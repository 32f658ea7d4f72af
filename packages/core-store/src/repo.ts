/**
 * `Repo`: an OSTree repository on disk (spec/repo-format.md): opening and creating it, its
 * configuration, and the one handle through which its objects (repo-objects.ts, read;
 * repo-write.ts, written), refs (repo-refs.ts), partial-commit markers (repo-commitpartial.ts),
 * staging directories (repo-staging.ts) and lock (repo-lock.ts) are reached.
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
import { randomBytes } from 'node:crypto';
import { constants as fsc, lstatSync, promises as fsp } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Variant } from '@larch/gvariant';
import { KeyFile } from './config.js';
import { LarchError, hasErrno, ioError } from './errors.js';
import type { Checksum, Commit, DirMeta, DirTree, FileMeta, ObjectType, RepoMode } from './types.js';
import { validateChecksum, validateCollectionId } from './validate.js';
import type { ContentSource, OpenedContent } from './objects/content-io.js';
import { acquireRepoLock, DEFAULT_LOCK_TIMEOUT_SECS, withRepoLock, type LockHandle, type LockKind } from './repo-lock.js';
import * as refs from './repo-refs.js';
import { allocateStagingDir, cleanupTmp, withStagingDir, withTransaction, type CleanupTmpOptions, type StagingDir, type Transaction } from './repo-staging.js';
import { objectRelPath, OBJECTS_DIR, objectSuffix, REFS_DIR, REFS_HEADS_DIR, REFS_MIRRORS_DIR, REFS_REMOTES_DIR } from './layout.js';
import * as objects from './repo-objects.js';
import * as write from './repo-write.js';
import * as partial from './repo-commitpartial.js';
import { fsyncDirPath, syncFile, WriteBatch, type StagedFileWriter } from './repo-write.js';

export type { ContentSource, OpenedContent } from './objects/content-io.js';
export { WriteBatch, StagedFileWriter } from './repo-write.js';

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
      for (const d of [OBJECTS_DIR, 'tmp', 'tmp/cache', 'extensions', 'state', REFS_DIR, REFS_HEADS_DIR, REFS_MIRRORS_DIR, REFS_REMOTES_DIR]) {
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
      await fsp.access(join(abs, OBJECTS_DIR), fsc.W_OK);
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
      const st = await fsp.stat(join(abs, OBJECTS_DIR));
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
  readMetadata(type: Exclude<ObjectType, 'file'>, checksum: Checksum, opts: { verify?: boolean } = {}): Promise<Uint8Array> {
    return objects.readMetadata(this, type, checksum, opts);
  }

  /** Read, checksum-verify and parse a commit. */
  readCommit(checksum: Checksum): Promise<Commit> {
    return objects.readCommit(this, checksum);
  }

  /** Read, checksum-verify and parse a dirtree (names, 32-byte checksums, order, normal form). */
  readDirTree(checksum: Checksum): Promise<DirTree> {
    return objects.readDirTree(this, checksum);
  }

  /** Read, checksum-verify and parse a dirmeta. */
  readDirMeta(checksum: Checksum): Promise<DirMeta> {
    return objects.readDirMeta(this, checksum);
  }

  /** Detached metadata of a commit, or null when there is none. */
  readCommitMeta(commit: Checksum): Promise<Array<[string, Variant]> | null> {
    return objects.readCommitMeta(this, commit);
  }

  /**
   * Replace `summary.sig` with `bytes` (the serialized `a{sv}` of signatures over the current
   * `summary`), atomically and durably: a reader sees the old file or the new one, never a part.
   */
  writeSummarySignature(bytes: Uint8Array): Promise<void> {
    return write.writeSummarySignature(this, bytes);
  }

  /** Replace (or with null, delete) the detached metadata of a commit; atomic and durable. */
  writeCommitMeta(commit: Checksum, dict: Array<[string, Variant]> | null): Promise<void> {
    return write.writeCommitMeta(this, this.madeDirs, commit, dict);
  }

  /**
   * Store a metadata object (no-op when present) and return its checksum. Durable on return.
   * The bytes are parsed first, so a malformed object is never stored.
   */
  writeMetadata(type: 'dirtree' | 'dirmeta' | 'commit', bytes: Uint8Array, batch?: WriteBatch): Promise<Checksum> {
    return write.writeMetadata(this, type, bytes, batch);
  }

  /** Open a content object: its meta, uncompressed size, and a factory for fresh content streams. */
  openFile(checksum: Checksum): Promise<OpenedContent> {
    return objects.openFile(this, checksum);
  }

  /**
   * A regular-file content object of a bare mode opened for positioned reads, synchronously: its
   * descriptor (the caller closes it) and size. Throws OBJECT_MISSING, or OBJECT_CORRUPTED for an
   * object that is not a regular file. Not verified (see {@link verifyFile}).
   */
  openRegularFileSync(checksum: Checksum): { fd: number; size: number } {
    return objects.openRegularFileSync(this, checksum);
  }

  /**
   * Store a content object and return its checksum. The checksum is computed from the bytes as
   * they are written; with `expectedChecksum` a mismatch throws OBJECT_CORRUPTED before anything
   * is published, and an object already present is not rewritten. Durable on return (or at
   * `batch.commit()` when a batch is given). The `path` source is opened once and read through
   * its descriptor; symlink metas ignore the content.
   */
  writeFile(meta: FileMeta, content: ContentSource, opts: { expectedChecksum?: Checksum; batch?: WriteBatch } = {}): Promise<Checksum> {
    return write.writeFile(this, meta, content, opts);
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
    return write.stageVerifiedFileSync(this, meta, payload, checksum, batch);
  }

  /**
   * Stage a regular file of a bare mode whose content arrives in pieces too large to hold in
   * memory together (a static delta's large object), hashing it as it is written, so it is
   * written once and never read back. `write` appends; `finish` checks that the object hashes to
   * `checksum`, gives the file its stored metadata and adds it to `batch` (until then it lives in
   * `tmp/` only); `abort` removes it. Synchronous, like {@link stageVerifiedFileSync}.
   */
  beginFileSync(meta: FileMeta): StagedFileWriter {
    return write.beginFileSync(this, meta);
  }

  /** Re-hash a content object. Throws OBJECT_MISSING, or OBJECT_CORRUPTED with data {checksum, actual}. */
  verifyFile(checksum: Checksum): Promise<void> {
    return objects.verifyFile(this, checksum);
  }

  /**
   * Every object in this repository's `objects/` (any order), not its parent's (ostree's
   * LIST_OBJECTS_NO_PARENTS). Files that are not objects of this mode are skipped.
   */
  listObjects(): AsyncIterable<{ type: ObjectType; checksum: Checksum }> {
    return objects.listObjects(this);
  }

  /** Unlink one object. Throws OBJECT_MISSING when absent. Callers hold the exclusive lock. */
  deleteObject(type: ObjectType, checksum: Checksum): Promise<void> {
    return objects.deleteObject(this, type, checksum);
  }

  // ---------------------------------------------------------------- partial commits

  isCommitPartial(c: Checksum): Promise<boolean> {
    return partial.isCommitPartial(this, c);
  }

  /**
   * null for a complete commit; 'fsck' when fsck marked it partial (the marker holds `f`, as
   * ostree's FSCK_PARTIAL state), 'partial' otherwise.
   */
  commitPartialState(c: Checksum): Promise<'partial' | 'fsck' | null> {
    return partial.commitPartialState(this, c);
  }

  /** Create `state/C.commitpartial` (durable); `reason: 'fsck'` records that fsck found it damaged. An existing marker is kept. */
  markCommitPartial(c: Checksum, opts: { reason?: 'fsck' } = {}): Promise<void> {
    return partial.markCommitPartial(this, c, opts);
  }

  /** Remove `state/C.commitpartial` (durable); no-op when absent. */
  clearCommitPartial(c: Checksum): Promise<void> {
    return partial.clearCommitPartial(this, c);
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
    return write.newTmpPath(this, prefix);
  }

  /** Write bytes to a new file in `tmp/` (fsynced when `core.fsync`) and return its path. */
  writeTmpFile(content: string | Uint8Array, mode = 0o644): Promise<string> {
    return write.writeTmpFile(this, content, mode);
  }

  /** Synchronously create `tmp` (exclusively) with `bytes`; no fsync (batches sync the filesystem once). */
  writeTmpSync(tmp: string, bytes: Uint8Array, mode = 0o644): void {
    write.writeTmpSync(this, tmp, bytes, mode);
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
  syncTmpFs(): Promise<void> {
    return write.syncTmpFs(this);
  }

  /** fsync a directory. */
  fsyncDir(dir: string): Promise<void> {
    return write.fsyncDir(this, dir);
  }

  /** Synchronous {@link publishStaged}. */
  publishStagedSync(tmp: string, type: ObjectType, checksum: Checksum): string {
    return write.publishStagedSync(this, this.madeDirs, tmp, type, checksum);
  }

  /** Link a durable staged file into `objects/` (existing object wins), drop the tmp name; returns the object dir. */
  publishStaged(tmp: string, type: ObjectType, checksum: Checksum): Promise<string> {
    return write.publishStaged(this, this.madeDirs, tmp, type, checksum);
  }

}
