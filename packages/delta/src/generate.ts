/**
 * Generating a static delta in OSTree's format (spec static-deltas.md section 9), in three steps,
 * each in a file of its own:
 * - the planner (plan.ts) decides which objects the delta carries and how: fallback, bsdiff
 *   patch, rollsum copies, copy patch, or spliced whole;
 * - the part builder (part-builder.ts) writes them into parts as ostree fills them and compresses
 *   finished parts in the background (bsdiff on worker threads meanwhile);
 * - the superblock writer (superblock-writer.ts) writes the superblock over the parts and renames
 *   the delta into `deltas/` only once it is durable, so readers never see a half-written delta.
 */
import { availableParallelism } from 'node:os';
import { promises as fsp } from 'node:fs';
import { join, dirname, resolve } from 'node:path';
import { LarchError, deltaName, type Checksum, type Repo } from '@larch/core-store';
import type { Variant } from '@larch/gvariant';
import type { SuperblockSigner } from './sign.js';
import { BsdiffPool } from './pool.js';
import type { OstreeRollsumStats } from './rollsum.js';
import { mapLargeAllocations } from './xz-system.js';
import { reindexDeltas } from './manage.js';
import { planDelta, RollsumTally } from './plan.js';
import { PartWriter } from './part-builder.js';
import { publishDelta, superblockDigest, writeSuperblock } from './superblock-writer.js';

const MB = 1000 * 1000;

export interface GenerateOptions {
  /** FROM commit, or null for a from-scratch delta. */
  from: Checksum | null;
  to: Checksum;
  /** `--min-fallback-size` in MB (10^6 bytes); 0 disables fallbacks. Default 4. */
  minFallbackSize?: number;
  /** `--max-bsdiff-size` in MB: largest old+new pair diffed. Default 128. */
  maxBsdiffSize?: number;
  /** `--max-chunk-size` in MB: target part size. Default 32. */
  maxChunkSize?: number;
  /** `--inline-parts`: store parts inside the superblock. */
  inlineParts?: boolean;
  /** `--disable-bsdiff`. */
  disableBsdiff?: boolean;
  /** Part compression: 'xz' (default, what ostree writes) or 'none'. */
  compression?: 'xz' | 'none';
  /** xz preset 0-9 (when given, used as is instead of the sized preset-8 dictionary) and the extreme flag (default false: twice the time for about 0.2 % less). */
  xzPreset?: number;
  xzExtreme?: boolean;
  /**
   * Largest xz dictionary (bytes). Each part uses the smallest power of two holding its body, up
   * to this. Default: 8 MiB when parts compress in parallel, else 32 MiB (preset 8's), so that
   * the encoders together need no more memory than one ostree encoder (about 370 MB).
   */
  xzDictSize?: number;
  /** x86 BCJ filter in front of LZMA2: 'auto' (default: parts mostly made of ELF files), 'always', 'never'. */
  x86Filter?: 'auto' | 'always' | 'never';
  /** Extra superblock metadata, written first. */
  metadata?: Array<[string, Variant]>;
  /** Worker threads / parts compressed at once (default: available cores). */
  concurrency?: number;
  /** Generation time in the superblock (default now), seconds since the epoch. */
  timestamp?: bigint;
  /** Regenerate the delta index of TO afterwards (default true). */
  updateIndex?: boolean;
  /**
   * `--sign`: sign the superblock (a signed wrapper replaces it; see sign.ts). ostree's pull cannot
   * read signed superblocks: sign deltas for `apply-offline`.
   */
  signers?: readonly SuperblockSigner[];
  /**
   * `--filename=PATH`: write the superblock to PATH and the parts beside it (`0`, `1`, … in its
   * directory, which must exist) instead of into the repository; no index is updated.
   */
  filename?: string;
  /** `--set-endianness`: byte order of the superblock's part header and fallback numbers (default 'l'). */
  endianness?: 'l' | 'B';
  /**
   * Told what generation decides as it goes: the events behind the statistics lines ostree's
   * `static-delta generate` prints (its `verbose` parameter; see {@link GenerateEvent}). Called
   * synchronously; it must not throw.
   */
  onEvent?: (event: GenerateEvent) => void;
}

/**
 * What generation reports while it runs, in the order ostree prints the same facts:
 * - `reachable`: the new objects (`metadata` counts the TO commit, as ostree's line does) and
 *   `modified`, the new regular files paired with a FROM file of the same (or same-stem) name;
 * - `rollsum`, once per modified file written as rollsum copies, with ostree's figures for the
 *   pair (see `ostreeRollsumStats`), then `rollsum-planned` with how many of the modified files
 *   that is;
 * - `bsdiff`, before each bsdiff candidate is diffed (`index` counts from 0 of `total`);
 * - `fallback`, for each file left out of the parts (`size`: its object stream, header included);
 * - `part`, for each part once compressed, in part order.
 */
export type GenerateEvent =
  | { type: 'reachable'; modified: number; metadata: number; regular: number; symlink: number }
  | ({ type: 'rollsum'; from: Checksum; to: Checksum } & OstreeRollsumStats)
  | { type: 'rollsum-planned'; rollsum: number; modified: number }
  | { type: 'bsdiff'; index: number; total: number }
  | { type: 'fallback'; checksum: Checksum; size: number }
  | { type: 'part'; index: number; objects: number; size: number; usize: number };

export interface GenerateStats {
  name: string;
  dir: string;
  parts: number;
  objects: number;
  fallbacks: number;
  bsdiff: number;
  /** Objects written as copy patches out of a different FROM file (content pairs). */
  copy: number;
  rollsum: number;
  /** Bytes of the rollsum files matched in their FROM files (ostree's measure, as its `rollsum=` line counts them). */
  rollsumSize: number;
  /** New regular files paired with a FROM file by name (ostree's `modified:`). */
  modified: number;
  /** Total stored bytes (superblock + part files). */
  size: number;
  /** Stored bytes of the parts, inline ones included (ostree's `compressed=`). */
  partSize: number;
  usize: number;
  /** Bytes the objects written whole into the parts take in the repository (ostree's `loose=`). */
  looseSize: number;
  superblockSha256: string;
  /** Where the time went (ms): planning, waiting for bsdiff workers, waiting for compression, total. */
  timings: { plan: number; waitBsdiff: number; waitCompress: number; total: number };
}

/**
 * Generate the static delta FROM→TO (or from scratch) into `repo`'s `deltas/` and, unless
 * `updateIndex` is false, refresh `delta-indexes/` for TO.
 *
 * Locking: shared repo lock while reading objects and publishing. Crash guarantee: the delta
 * directory appears whole (renamed into place after its superblock is durable) or not at all; an
 * existing delta of the same name is replaced. Limits: see part-builder.ts; a single object
 * larger than `max-chunk-size` makes a part of its own size, held in memory.
 */
export async function generateDelta(repo: Repo, opts: GenerateOptions): Promise<GenerateStats> {
  const maxChunk = Math.max(1, (opts.maxChunkSize ?? 32) * MB);
  const concurrency = Math.max(1, opts.concurrency ?? availableParallelism());
  const { from, to } = opts;
  if (from === to) throw new LarchError('INVALID_ARGUMENT', `Static delta source and target are the same commit ${to}`);
  const outFile = opts.filename === undefined ? null : resolve(opts.filename);
  if (outFile !== null) await checkOutputDir(dirname(outFile));

  return repo.withLock('shared', async () => {
    const t0 = performance.now();
    mapLargeAllocations();
    const timings = { plan: 0, waitBsdiff: 0, waitCompress: 0, total: 0 };
    const commitBytes = await repo.readMetadata('commit', to, { verify: true });
    const tally = new RollsumTally(opts.onEvent);
    const plan = await planDelta(repo, {
      from,
      to,
      minFallback: (opts.minFallbackSize ?? 4) * MB,
      maxBsdiff: (opts.maxBsdiffSize ?? 128) * MB,
      maxChunk,
      disableBsdiff: opts.disableBsdiff ?? false,
      onEvent: opts.onEvent,
    }, tally);

    // One core is left to xz (it compresses finished parts meanwhile), so cores - 1 diff workers.
    // (The scratch directory first: the pool's workers keep the process alive until it is closed.)
    const tmpDir = await fsp.mkdtemp(join(repo.tmpPath, 'larch-delta-'));
    const pool = new BsdiffPool(plan.bsdiffTotal === 0 ? 0 : Math.max(1, Math.min(concurrency - 1, plan.bsdiffTotal)));
    timings.plan = performance.now() - t0;
    try {
      const parts = await new PartWriter({
        repo,
        from,
        to,
        tmpDir,
        maxChunk,
        concurrency,
        compression: opts.compression ?? 'xz',
        preset: opts.xzPreset ?? 8,
        extreme: opts.xzExtreme ?? false,
        dictCap: opts.xzDictSize ?? (concurrency > 1 ? 8 << 20 : 32 << 20),
        presetGiven: opts.xzPreset !== undefined,
        inlineParts: opts.inlineParts ?? false,
        x86Filter: opts.x86Filter ?? 'auto',
        pool,
        tally,
        onEvent: opts.onEvent,
        timings,
      }).write(plan);
      const sb = await writeSuperblock(repo, tmpDir, {
        from,
        to,
        commit: commitBytes,
        parts,
        fallbacks: plan.fallbacks,
        metadata: opts.metadata ?? [],
        endianness: opts.endianness ?? 'l',
        timestamp: opts.timestamp ?? BigInt(Math.floor(Date.now() / 1000)),
        signers: opts.signers,
        inlineParts: opts.inlineParts ?? false,
      });
      const dir = await publishDelta(repo, tmpDir, { from, to, partFiles: opts.inlineParts ? 0 : parts.headers.length, outFile });
      if (outFile === null && opts.updateIndex !== false) await reindexDeltas(repo, { to });
      return {
        name: deltaName(from, to),
        dir,
        parts: parts.headers.length,
        objects: parts.objects,
        fallbacks: plan.fallbacks.length,
        bsdiff: parts.bsdiff,
        copy: parts.copy,
        rollsum: tally.count,
        rollsumSize: tally.size,
        modified: plan.modified,
        size: parts.fileSize + sb.length,
        partSize: parts.partSize,
        usize: parts.usize,
        looseSize: parts.looseSize,
        superblockSha256: superblockDigest(sb),
        timings: { ...timings, total: performance.now() - t0 },
      };
    } finally {
      await pool.close();
      await fsp.rm(tmpDir, { recursive: true, force: true });
    }
  });
}

/** `--filename`'s directory must exist: one line in ostree's words when it does not. */
async function checkOutputDir(dir: string): Promise<void> {
  const st = await fsp.stat(dir).catch((e: NodeJS.ErrnoException) => {
    throw new LarchError('INVALID_ARGUMENT', `opendir(${dir}): ${e.code === 'ENOENT' ? 'No such file or directory' : e.message}`, { path: dir });
  });
  if (!st.isDirectory()) throw new LarchError('INVALID_ARGUMENT', `opendir(${dir}): Not a directory`, { path: dir });
}
