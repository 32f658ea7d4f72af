/**
 * The object walker shared by `pull` and `pullLocal` (spec pull-and-signing.md 2.1, 4).
 *
 * For each target commit: detached metadata first (optional), then the commit, then, unless the
 * commit is already complete locally, its tree: each dirtree before its children, dirmetas, and
 * the content objects. Only objects missing locally are requested; dirtrees that are present are
 * read from disk and still walked, because an interrupted pull leaves present dirtrees with
 * missing children (that is how a second run resumes without re-downloading anything).
 *
 * Crash and failure guarantees:
 * - `state/C.commitpartial` is written (durably) before commit C is stored, and removed only
 *   after every object of its tree has been published; refs are written by the caller after
 *   that. A crash or failure therefore never leaves a ref pointing at an incomplete commit, and
 *   `fsck` skips the partial commit.
 * - Verified objects are staged in `tmp/` and published in batches: missing `objects/XX/`
 *   directories are created, syncfs(2) of the repo's filesystem (the staged files and the new
 *   directories are durable), link(2) of each into `objects/` (an existing
 *   object is never replaced), then a second syncfs (the new directory entries are durable).
 *   Two syncfs per batch replace one fsync per object and one per `objects/XX/` directory,
 *   which dominated the cost of pulling many small files. `core.fsync=false` skips both. On
 *   failure the already-verified objects are still published, so the next run does not fetch
 *   them again; after a crash, unpublished staged files are only stray files in `tmp/`.
 *
 * Concurrency: all work runs in one TaskGroup; network requests are bounded by the transfer
 * semaphore, with metadata ahead of content so the tree (and the progress total) is discovered
 * early. The first error cancels everything in flight.
 */
import { mkdirSync, promises as fsp } from 'node:fs';
import { join } from 'node:path';
import {
  LarchError,
  ReceiveWorkers,
  WriteBatch,
  commitRefBindings,
  parseCommitMeta,
  type Checksum,
  type Commit,
  type ObjectType,
  type Repo,
} from '@larch/core-store';
import type { PullLimits } from './limits.js';
import type { ProgressTracker } from './progress.js';
import type { ObjectSource } from './pull-source.js';
import { stageFilez, stageMetadata, stagePlain, verifyCommitMeta, verifyMetadata } from './pull-store.js';
import { bareuseronlyChecked, validateBareuseronlyMode } from './bareuseronly.js';
import { stageTrustedFilez, stageTrustedPlain } from './pull-local-trusted.js';
import type { TaskGroup } from './pull-transfer.js';

/** One commit to pull: by ref (checked against the commit's ref bindings) or by checksum. */
export interface CommitTarget {
  checksum: Checksum;
  ref: string | null;
  /** Largest accepted `.commit` download (the summary's commit_size when known). */
  maxSize: number;
}

/** What the walker needs: where objects come from, where they go, and the policy. */
export interface EngineOptions {
  repo: Repo;
  source: ObjectSource;
  limits: PullLimits;
  progress: ProgressTracker;
  group: TaskGroup;
  /** Follow this many parents (-1: all). */
  depth: number;
  commitMetadataOnly: boolean;
  /** Only these paths (each as path components) of each tree; the commit stays partial. */
  subpath: string[][] | null;
  /** The remote's `collection-id`: every commit must carry a matching `ostree.collection-binding` (repo-format.md 3.4). */
  collectionId?: string | null;
  /** Skip the ref and collection binding checks (`ostree pull --disable-verify-bindings`). */
  disableVerifyBindings?: boolean;
  /** Refuse regular files with mode bits outside 0775 (`ostree pull --bareuseronly-files`). */
  bareuseronlyFiles?: boolean;
  /**
   * Store every content object of an archive destination as received, unchecked (`pull --mirror
   * --http-trusted` into an archive repository, as ostree's trusted direct copy).
   */
  trustedContent?: boolean;
  /** Called with the exact commit bytes and detached metadata before the commit is stored. */
  verifyCommit?: (checksum: Checksum, commitBytes: Uint8Array, detachedMeta: Uint8Array | null) => Promise<void>;
}

/**
 * The WriteBatch handed to core-store's writers: it only records staged files, which the engine
 * publishes itself (see the top of this file).
 */
class CurrentBatch extends WriteBatch {
  constructor(repo: Repo, private readonly engine: PullEngine) {
    super(repo);
  }
  override add(tmp: string, type: ObjectType, checksum: Checksum): void {
    this.engine.addStaged(tmp, type, checksum);
  }
}

interface Staged {
  tmp: string;
  type: ObjectType;
  checksum: Checksum;
}

async function discard(list: Staged[]): Promise<void> {
  await Promise.all(list.map((s) => fsp.rm(s.tmp, { force: true }).catch(() => undefined)));
}

/**
 * ostree's binding checks of a fetched commit (`_ostree_repo_verify_bindings`), in its wording:
 * a commit carrying `ostree.ref-binding` must list the ref it was requested by; with a collection
 * ID configured for the remote, the commit must carry both bindings and its collection binding
 * must be that ID. A commit requested by checksum has no ref to check.
 */
export function verifyBindings(checksum: Checksum, commit: Commit, ref: string | null, collectionId: string | null): void {
  const fail = (msg: string, extra: Record<string, unknown> = {}): never => {
    throw new LarchError('OBJECT_CORRUPTED', `Commit ${checksum}: ${msg}`, { checksum, ref, reason: 'verification', ...extra });
  };
  const hasRefBinding = commit.metadata.some(([k]) => k === 'ostree.ref-binding');
  if (!hasRefBinding) {
    if (collectionId === null) return;
    fail('Expected commit metadata to have ref binding information, found none');
  }
  if (ref !== null) {
    const bindings = commitRefBindings(commit);
    if (!bindings.includes(ref)) {
      fail(`Commit has no requested ref ‘${ref}’ in ref binding metadata (${bindings.map((b) => `‘${b}’`).join(', ')})`, { bindings });
    }
  }
  if (collectionId !== null) {
    const v = commit.metadata.find(([k]) => k === 'ostree.collection-binding')?.[1];
    if (v === undefined || v.type !== 's') fail('Expected commit metadata to have collection ID binding information, found none');
    else if (v.value !== collectionId) {
      fail(`Commit has collection ID ‘${String(v.value)}’ in collection binding metadata, while the remote it came from has collection ID ‘${collectionId}’`);
    }
  }
}

/** Counts of what the engine did. */
export interface EngineResult {
  /** Commits whose whole tree is now present (partial marker removed). */
  complete: Checksum[];
  /** Commits stored but left partial (commit-metadata-only, subpath). */
  partial: Checksum[];
}

/** Walks commits and trees, fetching, verifying and staging what the repo lacks (see the top of this file). */
export class PullEngine {
  private staged: Staged[] = [];
  private readonly proxy: CurrentBatch;
  private readonly scheduled = new Set<string>();
  private readonly complete = new Set<Checksum>();
  private readonly partial = new Set<Checksum>();
  private readonly flushes: Array<Promise<void>> = [];
  private readonly madeDirs = new Set<string>();
  private contentQueue: Checksum[] = [];
  private contentHead = 0;
  private contentWorkers = 0;
  /** Threads that verify and write small content objects (created with the first one). */
  private receivers: ReceiveWorkers | null = null;

  constructor(private readonly o: EngineOptions) {
    this.proxy = new CurrentBatch(o.repo, this);
  }

  /** @internal Record a verified, staged object; publish when the batch is full. */
  addStaged(tmp: string, type: ObjectType, checksum: Checksum): void {
    this.staged.push({ tmp, type, checksum });
    if (this.staged.length >= this.o.limits.batchSize) {
      const p = this.publish();
      // Handled at once (a failed publish fails the pull), awaited again at the end of run().
      p.catch((e: unknown) => this.o.group.fail(e));
      this.flushes.push(p);
    }
  }

  /** Publish every staged object: syncfs, link each, syncfs. */
  private async publish(): Promise<void> {
    const list = this.staged;
    this.staged = [];
    if (list.length === 0) return;
    const { repo } = this.o;
    let i = 0;
    try {
      // Create missing objects/XX/ directories first, so the syncfs below makes them durable
      // together with the staged files (instead of one fsync of objects/ per new directory).
      for (const prefix of new Set(list.map((s) => s.checksum.slice(0, 2)))) {
        if (this.madeDirs.has(prefix)) continue;
        try {
          mkdirSync(join(repo.path, 'objects', prefix));
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        }
        this.madeDirs.add(prefix);
      }
      if (repo.fsyncEnabled) await repo.syncTmpFs();
      // Synchronous link/unlink: a thread-pool round trip per object costs more than the call.
      for (; i < list.length; i++) repo.publishStagedSync(list[i].tmp, list[i].type, list[i].checksum);
      if (repo.fsyncEnabled) await repo.syncTmpFs();
    } catch (e) {
      await discard(list.slice(i + 1));
      throw e;
    }
  }

  /**
   * Pull every target. Resolves when all objects are published and the partial markers of
   * complete commits are removed; refs are left to the caller.
   */
  async run(targets: CommitTarget[]): Promise<EngineResult> {
    const { group, progress } = this.o;
    progress.phase = 'objects';
    for (const t of targets) this.spawnCommit(t.checksum, this.o.depth, t.maxSize, t.ref, false);
    progress.emit();
    try {
      return await this.runAll();
    } finally {
      await this.receivers?.close();
    }
  }

  private async runAll(): Promise<EngineResult> {
    const { group, progress } = this.o;
    try {
      await group.wait();
      await Promise.all(this.flushes);
    } catch (e) {
      // Publish what was verified so a retry resumes instead of starting over.
      await Promise.allSettled(this.flushes);
      try {
        await this.publish();
      } catch {
        // the staged files were removed; the next run fetches them again
      }
      throw e;
    }
    progress.phase = 'publishing';
    progress.emit();
    await this.publish();
    for (const c of this.complete) {
      if (!this.partial.has(c)) await this.o.repo.clearCommitPartial(c);
    }
    return { complete: [...this.complete].filter((c) => !this.partial.has(c)), partial: [...this.partial] };
  }

  private spawnCommit(checksum: Checksum, depthLeft: number, maxSize: number, ref: string | null, isParent: boolean): void {
    const key = `commit:${checksum}`;
    if (this.scheduled.has(key)) return;
    this.scheduled.add(key);
    const { progress, group } = this.o;
    progress.openScans++;
    group.spawn(async () => {
      try {
        await this.processCommit(checksum, depthLeft, maxSize, ref, isParent);
      } finally {
        progress.openScans--;
        progress.tick();
      }
    });
  }

  private async processCommit(checksum: Checksum, depthLeft: number, maxSize: number, ref: string | null, isParent: boolean): Promise<void> {
    const { repo, source, limits, progress } = this.o;
    // commitmeta before the commit, always re-fetched: signatures may have been added. Detached
    // metadata that does not decode counts as none (OSTree reads it as an empty dictionary): a
    // pull that verifies signatures then finds none, one that does not goes on without it.
    const meta = await source.metadata('commitmeta', checksum, limits.maxMetadataSize, true, (b) => {
      try {
        verifyCommitMeta(checksum, b);
        return true;
      } catch {
        return false;
      }
    });
    progress.commitMetaRequested();
    const detached = meta !== null && meta.value ? meta.bytes : null;
    const present = repo.hasObjectSync('commit', checksum);
    let bytes: Uint8Array;
    let commit;
    if (present) {
      bytes = await repo.readMetadata('commit', checksum);
      commit = verifyMetadata('commit', checksum, bytes);
    } else {
      const got = await source.metadata('commit', checksum, Math.min(maxSize, limits.maxMetadataSize), isParent, (b) => verifyMetadata('commit', checksum, b));
      if (got === null) return; // a parent beyond the server's history: tolerated at depth > 0
      bytes = got.bytes;
      commit = got.value;
    }
    if (this.o.verifyCommit) await this.o.verifyCommit(checksum, bytes, detached);
    if (!this.o.disableVerifyBindings) verifyBindings(checksum, commit, ref, this.o.collectionId ?? null);
    if (detached !== null) await this.storeCommitMeta(checksum, detached);
    const wasPartial = present ? await repo.isCommitPartial(checksum) : true;
    if (!present) {
      await repo.markCommitPartial(checksum);
      stageMetadata(repo, this.proxy, 'commit', checksum, bytes);
      progress.objectDone('metadata', bytes.length);
    } else {
      progress.objectsSkipped++;
    }
    if (this.o.commitMetadataOnly) {
      if (wasPartial) this.partial.add(checksum);
    } else if (wasPartial) {
      this.walkTree(commit.rootTree, commit.rootMeta, this.o.subpath);
      if (this.o.subpath !== null) this.partial.add(checksum);
      else this.complete.add(checksum);
    }
    if (depthLeft !== 0 && commit.parent !== null) {
      this.spawnCommit(commit.parent, depthLeft > 0 ? depthLeft - 1 : -1, limits.maxMetadataSize, null, true);
    }
  }

  private async storeCommitMeta(checksum: Checksum, bytes: Uint8Array): Promise<void> {
    const { repo } = this.o;
    try {
      const existing = await repo.readMetadata('commitmeta', checksum);
      if (Buffer.compare(Buffer.from(existing), Buffer.from(bytes)) === 0) return;
    } catch (e) {
      if (!(e instanceof LarchError && e.code === 'OBJECT_MISSING')) throw e;
    }
    await repo.writeCommitMeta(checksum, parseCommitMeta(bytes));
  }

  private ensureMeta(checksum: Checksum): void {
    const key = `dirmeta:${checksum}`;
    if (this.scheduled.has(key)) return;
    this.scheduled.add(key);
    const { repo, source, limits, progress, group } = this.o;
    if (repo.hasObjectSync('dirmeta', checksum)) {
      progress.objectsSkipped++;
      return;
    }
    progress.outstanding++;
    group.spawn(async () => {
      const { bytes } = (await source.metadata('dirmeta', checksum, limits.maxMetadataSize, false, (b) => verifyMetadata('dirmeta', checksum, b)))!;
      stageMetadata(repo, this.proxy, 'dirmeta', checksum, bytes);
      progress.outstanding--;
      progress.objectDone('metadata', bytes.length);
    });
  }

  private walkTree(tree: Checksum, meta: Checksum, sub: string[][] | null): void {
    this.ensureMeta(meta);
    const key = `dirtree:${tree}:${sub === null ? '*' : JSON.stringify(sub)}`;
    if (this.scheduled.has(key)) return;
    this.scheduled.add(key);
    const { repo, source, limits, progress, group } = this.o;
    progress.openScans++;
    group.spawn(async () => {
      try {
        let dt;
        if (repo.hasObjectSync('dirtree', tree)) {
          dt = await repo.readDirTree(tree);
          progress.objectsSkipped++;
        } else {
          progress.outstanding++;
          const got = (await source.metadata('dirtree', tree, limits.maxMetadataSize, false, (b) => verifyMetadata('dirtree', tree, b)))!;
          const bytes = got.bytes;
          dt = got.value;
          stageMetadata(repo, this.proxy, 'dirtree', tree, bytes);
          progress.outstanding--;
          progress.objectDone('metadata', bytes.length);
        }
        for (const f of dt.files) {
          if (sub === null || sub.some((p) => p.length === 1 && p[0] === f.name)) this.ensureContent(f.checksum);
        }
        for (const d of dt.dirs) {
          if (sub === null) {
            this.walkTree(d.treeChecksum, d.metaChecksum, null);
            continue;
          }
          const below = sub.filter((p) => p[0] === d.name);
          if (below.length === 0) continue;
          // A path that ends here takes the whole directory; otherwise only the deeper paths.
          this.walkTree(d.treeChecksum, d.metaChecksum, below.some((p) => p.length === 1) ? null : below.map((p) => p.slice(1)));
        }
      } finally {
        progress.openScans--;
        progress.tick();
      }
    });
  }

  private ensureContent(checksum: Checksum): void {
    const key = `file:${checksum}`;
    if (this.scheduled.has(key)) return;
    this.scheduled.add(key);
    const { repo, progress } = this.o;
    if (repo.hasObjectSync('file', checksum)) {
      progress.objectsSkipped++;
      return;
    }
    progress.outstanding++;
    // Content waits in a plain queue drained by at most `concurrency` workers, so a tree of a
    // million files costs a million short strings, not a million pending promises.
    this.contentQueue.push(checksum);
    if (this.contentWorkers < this.o.limits.concurrency) {
      this.contentWorkers++;
      this.o.group.spawn(() => this.contentWorker());
    }
  }

  private async contentWorker(): Promise<void> {
    const { repo, source, progress, group } = this.o;
    try {
      while (this.contentHead < this.contentQueue.length && !group.failed) {
        const checksum = this.contentQueue[this.contentHead++];
        if (this.contentHead > 4096 && this.contentHead * 2 > this.contentQueue.length) {
          this.contentQueue = this.contentQueue.slice(this.contentHead);
          this.contentHead = 0;
        }
        let size = 0;
        const n = await source.content(checksum, async (input) => {
          const body = input.kind === 'filez' && this.o.bareuseronlyFiles ? bareuseronlyChecked(checksum, input.body) : null;
          // A bare-user-only repository refuses such files anyway: in ostree's words, as they arrive.
          if (input.kind === 'plain' && (this.o.bareuseronlyFiles || repo.mode === 'bare-user-only')) validateBareuseronlyMode(checksum, input.meta.mode);
          // A trusted local source (pull-local): filed under its name unchecked (pull-local-trusted.ts).
          const staged =
            input.kind === 'filez'
              ? (input.trusted || this.o.trustedContent) && repo.mode === 'archive'
                ? await stageTrustedFilez(repo, this.proxy, checksum, body ?? input.body)
                : await stageFilez(repo, this.proxy, checksum, body ?? input.body, input.sizeHint, this.o.limits.maxContentSize, (this.receivers ??= new ReceiveWorkers(repo)))
              : input.trusted
                ? await stageTrustedPlain(repo, this.proxy, checksum, input.meta, input.size, input.stream)
                : await stagePlain(repo, this.proxy, checksum, input.meta, input.size, input.stream);
          size = staged.size;
          return staged.written;
        });
        progress.outstanding--;
        progress.contentBytesWritten += size;
        progress.objectDone('content', n);
      }
    } finally {
      this.contentWorkers--;
    }
  }
}
