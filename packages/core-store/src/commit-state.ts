/**
 * The state of one commit while its objects are staged (repo-commit.ts): the batch they are
 * published in, which objects this commit has claimed, the statistics ostree reports, the
 * `ostree.sizes` table, the jobs in flight and the first failure. Every part of the commit
 * (commit-files.ts, commit-tree.ts, commit-tar.ts) stages through it.
 */
import { createHash } from 'node:crypto';
import { LarchError } from './errors.js';
import type { Repo, WriteBatch } from './repo.js';
import type { CommitTreeOptions, CommitTreeResult } from './repo-commit.js';
import type { StagingDir } from './repo-staging.js';
import type { CommitModifier } from './commit-modifier.js';
import type { Checksum } from './types.js';

/** An `ostree.sizes` entry in the making: object type (1 file, 2 dirtree, 3 dirmeta) and sizes. */
export interface SizeEntry {
  type: number;
  unpacked: number;
  archived?: number;
}

export class CommitState {
  readonly batch: WriteBatch;
  /** `${checksum}.${type}` of every object staged (or found present) in this commit. */
  readonly staged = new Set<string>();
  readonly stats: CommitTreeResult['stats'] = {
    files: 0,
    newObjects: 0,
    bytesWritten: 0,
    metadataTotal: 0,
    metadataWritten: 0,
    contentTotal: 0,
    contentWritten: 0,
    contentBytesWritten: 0,
    devinoHits: 0,
  };
  /** `generateSizes` in an archive repository: the `ostree.sizes` table by checksum; else null. */
  readonly sizes: Map<Checksum, SizeEntry> | null;
  /** Compressions and large-file copies in flight (at most `limit`). */
  readonly inflight = new Set<Promise<void>>();
  readonly limit: number;
  /** The first error of a job in flight; thrown by the next {@link checkAbort}. */
  failure: unknown = null;
  bytesDone = 0;
  filesTotal: number | undefined;

  constructor(
    readonly repo: Repo,
    readonly opts: CommitTreeOptions,
    readonly stage: StagingDir,
    readonly mod: CommitModifier,
    concurrency: number,
  ) {
    this.batch = repo.beginBatch();
    this.limit = Math.max(1, concurrency);
    this.sizes = opts.generateSizes === true && repo.mode === 'archive' ? new Map() : null;
  }

  checkAbort(): void {
    if (this.failure !== null) throw this.failure;
    if (this.opts.signal?.aborted) throw new LarchError('ABORTED', 'Commit aborted', {});
  }

  /** Claim `checksum.type` for staging: false when the repo or this commit already has it. */
  claim(type: 'file' | 'dirtree' | 'dirmeta', checksum: Checksum): boolean {
    const key = `${checksum}.${type}`;
    if (this.staged.has(key)) return false;
    this.staged.add(key);
    if (this.repo.hasLocalObjectSync(type, checksum)) return false;
    return true;
  }

  /** A new object staged: `unpacked` is a content object's payload size (what ostree counts as content bytes written). */
  record(tmp: string, type: 'file' | 'dirtree' | 'dirmeta', checksum: Checksum, written: number, unpacked = 0): void {
    this.batch.add(tmp, type, checksum);
    const stats = this.stats;
    stats.newObjects++;
    stats.bytesWritten += written;
    if (type === 'file') {
      stats.contentWritten++;
      stats.contentBytesWritten += unpacked;
    } else stats.metadataWritten++;
  }

  sizeOfFile(checksum: Checksum, unpacked: number): void {
    if (this.sizes !== null && !this.sizes.has(checksum)) this.sizes.set(checksum, { type: 1, unpacked });
  }

  /** Start `job` once fewer than `limit` jobs are in flight; its error becomes {@link failure}. */
  async launch(job: () => Promise<void>): Promise<void> {
    while (this.inflight.size >= this.limit) await Promise.race(this.inflight);
    this.checkAbort();
    const p = job().catch((e) => {
      if (this.failure === null) this.failure = e;
    });
    const tracked = p.finally(() => this.inflight.delete(tracked));
    this.inflight.add(tracked);
  }

  progress(): void {
    this.opts.onProgress?.({ filesDone: this.stats.files, filesTotal: this.filesTotal, bytesDone: this.bytesDone, bytesWritten: this.stats.bytesWritten });
  }

  /** Stage a dirtree or dirmeta (unless present) and return its checksum. */
  writeMetaSync(type: 'dirtree' | 'dirmeta', bytes: Uint8Array): Checksum {
    const checksum = createHash('sha256').update(bytes).digest('hex');
    this.stats.metadataTotal++;
    if (this.sizes !== null && !this.sizes.has(checksum)) this.sizes.set(checksum, { type: type === 'dirtree' ? 2 : 3, unpacked: bytes.length, archived: bytes.length });
    if (this.claim(type, checksum)) {
      const tmp = this.stage.newTmpPath('m');
      this.repo.writeTmpSync(tmp, bytes);
      this.record(tmp, type, checksum, bytes.length);
    }
    return checksum;
  }
}
