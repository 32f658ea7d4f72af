/**
 * Applying a static delta to a repository: the part loop shared by offline application
 * (`static-delta apply-offline`) and by pulls. Parts are read and checked by the part reader
 * (part-reader.ts) and run by the op interpreter (ops-interpreter.ts).
 *
 * Trust model: every byte of the superblock and of the parts is hostile until checked (see those
 * two files); objects are staged in the repo's `tmp/` and published through core-store write
 * batches, so a failure leaves nothing half-written under `objects/`.
 *
 * Publication: `'at-end'` (offline default) publishes every part's objects only after all parts
 * ran, so a bad delta adds nothing; `'per-part'` (pulls) publishes after each part, so an
 * interrupted pull resumes at part granularity (parts whose objects are all present are skipped).
 * The TO commit (and its detached metadata) is written last, only after every part succeeded.
 */
import { availableParallelism } from 'node:os';
import { LarchError, type Checksum, type Repo } from '@larch/core-store';
import { decodePartBody, type Superblock } from './format.js';
import { PartRunner } from './ops-interpreter.js';
import {
  MAX_PART_BODY,
  checkDeclaredSizes,
  isInline,
  partBytes,
  partComplete,
  superblockCommitMeta,
  unpackPart,
  verifyPart,
  type PartSource,
} from './part-reader.js';

export interface DeltaProgress {
  partsDone: number;
  partsTotal: number;
  /** Stored part bytes obtained so far (fetched or read) and in total for the parts that run. */
  bytesDone: number;
  bytesTotal: number;
}

export interface ApplyOptions {
  /** When objects become visible: `'at-end'` (default) or `'per-part'`. */
  publish?: 'at-end' | 'per-part';
  /** Skip the SHA-256 check of stored parts (ostree's skip_validation); default false. */
  skipValidation?: boolean;
  /** Allow fallback objects (the caller fetches them; they are not checked here). Default false. */
  allowFallbacks?: boolean;
  onProgress?: (p: DeltaProgress) => void;
  signal?: AbortSignal;
  /** Parts read and decompressed ahead of the one running (default: min(2, cores)). */
  prefetch?: number;
  /**
   * Largest uncompressed size a part may declare and largest part body decompressed (default
   * {@link MAX_PART_BODY}). A superblock declaring more for any part is refused before any part
   * is read; see {@link partBodyLimit} for the bound each part gets.
   */
  maxPartSize?: number;
}

export interface ApplyResult {
  partsApplied: number;
  partsSkipped: number;
  objectsWritten: number;
  bytesRead: number;
  commitWritten: boolean;
}

/**
 * Apply a decoded superblock to `repo`, reading non-inline parts from `source`.
 *
 * Locking: takes the shared repo lock for the whole application. Crash guarantees: objects are
 * staged in `tmp/` and published by link, never torn; with `'at-end'` nothing is published unless
 * every part succeeded; the commit is written last. Does not move any ref. Limits: a superblock
 * declaring more than `maxPartSize` for any part is refused before any part is read; each part
 * body is held in memory, decompressed only up to {@link partBodyLimit}; large objects stream
 * through `tmp/`.
 * Refuses fallbacks unless `allowFallbacks`; refuses a delta whose FROM commit is not local.
 */
export async function applySuperblock(repo: Repo, sb: Superblock, source: PartSource, opts: ApplyOptions = {}): Promise<ApplyResult> {
  return repo.withLock('shared', async () => {
    if (sb.from !== null && !(await repo.hasObject('commit', sb.from))) {
      throw new LarchError('OBJECT_MISSING', `Commit ${sb.from}, which is the delta source, is not in repository`, { checksum: sb.from });
    }
    if (sb.fallbacks.length > 0 && !opts.allowFallbacks) {
      throw new LarchError('INVALID_ARGUMENT', `Cannot execute static delta with ${sb.fallbacks.length} fallback objects offline`, { fallbacks: sb.fallbacks.length });
    }
    const maxPartSize = opts.maxPartSize ?? MAX_PART_BODY;
    checkDeclaredSizes(sb, maxPartSize);
    const commitMeta = superblockCommitMeta(sb);
    const publishAtEnd = (opts.publish ?? 'at-end') === 'at-end';
    const todo: number[] = [];
    let skipped = 0;
    for (let i = 0; i < sb.parts.length; i++) {
      if (sb.parts[i].objects.length === 0 || partComplete(repo, sb.parts[i])) skipped++;
      else todo.push(i);
    }
    const progress: DeltaProgress = {
      partsDone: 0,
      partsTotal: todo.length,
      bytesDone: 0,
      bytesTotal: todo.reduce((s, i) => s + (isInline(sb, i) ? 0 : sb.parts[i].size), 0),
    };
    opts.onProgress?.({ ...progress });
    // Published at the end: one batch for every part, so the filesystem is synced once and each
    // object directory fsynced once. Published per part: a batch each.
    const shared = publishAtEnd ? repo.beginBatch() : null;
    const sources = new Map<Checksum, Buffer>();
    let objectsWritten = 0;
    try {
      // The next part is read (or fetched) and decompressed while the current one runs.
      const load = async (i: number): Promise<ReturnType<typeof decodePartBody>> => {
        const h = sb.parts[i];
        const what = `part ${i}`;
        const { bytes, inline } = await partBytes(sb, i, source);
        if (!inline) progress.bytesDone += bytes.length;
        if (!opts.skipValidation || inline) verifyPart(bytes, h, what);
        return decodePartBody(await unpackPart(bytes, h, what, maxPartSize), what);
      };
      // Up to `window` parts are read and decompressed at once (decoding runs on libuv's pool),
      // and each runs as soon as it is ready: parts are independent, so their order is free.
      const window = Math.max(1, opts.prefetch ?? Math.min(2, availableParallelism()));
      type Loaded = { k: number; body?: ReturnType<typeof decodePartBody>; error?: unknown };
      const loaded = new Map<number, Promise<Loaded>>();
      let started = 0;
      const topUp = (): void => {
        while (started < todo.length && loaded.size < window) {
          const k = started++;
          loaded.set(
            k,
            load(todo[k]).then(
              (body) => ({ k, body }),
              (error: unknown) => ({ k, error }),
            ),
          );
        }
      };
      const drain = async (): Promise<void> => {
        await Promise.all(loaded.values());
      };
      // A part that fails to load stops new loads. Published per part, the parts already in
      // flight still run, so a resumed pull skips them; published at the end, nothing would.
      let failure: { error: unknown } | null = null;
      for (;;) {
        opts.signal?.throwIfAborted();
        if (failure === null) topUp();
        if (loaded.size === 0) break;
        const got = await Promise.race(loaded.values());
        loaded.delete(got.k);
        if (got.error !== undefined) {
          failure ??= { error: got.error };
          if (shared !== null) {
            await drain();
            throw failure.error;
          }
          continue;
        }
        if (failure === null) topUp();
        const i = todo[got.k];
        const h = sb.parts[i];
        const body = got.body!;
        const batch = shared ?? repo.beginBatch();
        const runner = new PartRunner(repo, h, body, batch, `part ${i}`, sources);
        try {
          await runner.run(opts.signal);
        } catch (e) {
          if (shared === null) await batch.abort();
          await drain();
          throw e;
        }
        objectsWritten += runner.written;
        if (shared === null) await batch.commit();
        progress.partsDone++;
        opts.onProgress?.({ ...progress });
      }
      if (failure !== null) throw failure.error;
      await shared?.commit();
    } catch (e) {
      await shared?.abort();
      throw e;
    } finally {
      sources.clear();
    }
    let commitWritten = false;
    if (!(await repo.hasObject('commit', sb.to))) {
      if (commitMeta !== null) await repo.writeCommitMeta(sb.to, commitMeta);
      await repo.writeMetadata('commit', sb.commit);
      commitWritten = true;
    } else if (commitMeta !== null && !(await repo.hasObject('commitmeta', sb.to))) {
      await repo.writeCommitMeta(sb.to, commitMeta);
    }
    return { partsApplied: todo.length, partsSkipped: skipped, objectsWritten, bytesRead: progress.bytesDone, commitWritten };
  });
}


