/**
 * Generating a static delta in OSTree's format (spec static-deltas.md section 9).
 *
 * Plan: the objects reachable from TO that FROM does not have (all of them for a from-scratch
 * delta), minus the TO commit (it travels in the superblock). Modified files are paired with a
 * FROM file of the same (or same-stem) basename and similar size; a pair that bsdiff may take
 * becomes a bsdiff patch (computed on worker threads). The other modified files are written as
 * rollsum copies exactly when ostree would: with ostree's pairing and its measure of matching
 * chunks (rollsum.ts), so that `--disable-bsdiff` and `--max-bsdiff-size` give ostree's
 * decisions, and the statistics ostree prints (`onEvent`) agree. (ostree tries rollsum before
 * bsdiff; Larch diffs first, as a bsdiff patch is smaller.) Large new files
 * with no such pair are matched by content against the FROM files (sampled window hashes): when
 * one shares enough (an apt `Translation-en` and the `Packages` file naming the same packages),
 * the new file becomes a copy patch (copydiff.ts) in a part of its own, built on a one-shot worker
 * and compressed with text settings. Everything else is spliced whole.
 *
 * Parts are filled as ostree fills them, so that a delta has ostree's number of parts: one part at
 * a time, in the order metadata, patched files, plain files, symlinks. An object spliced whole
 * starts a new part when the part already holds an object and its payload plus the object's size
 * would exceed `max-chunk-size` (10^6-byte MB); a patched file starts one when the payload already
 * exceeds it. (So a file larger than `max-chunk-size` always sits alone in its part.) Within each
 * kind, Larch orders objects so that similar content sits together (ELF files first, then by file
 * extension and name), which lets xz find more redundancy; ostree's order there is its hash
 * table's. A file copied from a FROM file of a different name (a copy patch) is Larch's own and
 * takes a part of its own.
 *
 * Memory: at most one part being filled, `concurrency` parts being compressed, and one old/new
 * pair per bsdiff worker. Output is written into a private directory under `tmp/` and renamed
 * into `deltas/` only when the superblock (written last) is durable, so readers never see a
 * half-written delta.
 */
import { createHash } from 'node:crypto';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { availableParallelism } from 'node:os';
import { promises as fsp } from 'node:fs';
import { join, dirname, resolve } from 'node:path';
import {
  LarchError,
  S_IFLNK,
  S_IFMT,
  fileHeader,
  type Checksum,
  type FileMeta,
  type ObjectType,
  type Repo,
  type Xattr,
} from '@larch/core-store';
import { Variant } from '@larch/gvariant';
import { encodePartBodyChunks, partBodyFrame, encodeSuperblock, inlinePartVariant, COMPRESSION_NONE, COMPRESSION_XZ, type DeltaObject, type FallbackEntry, type PartHeader } from './format.js';
import { deltaName, deltaRelDir } from './names.js';
import { signSuperblock, type SuperblockSigner } from './sign.js';
import { ByteSink, ChunkSink, OP_BSPATCH, OP_CLOSE, OP_OPEN, OP_OPEN_SPLICE_AND_CLOSE, OP_SET_READ_SOURCE, OP_UNSET_READ_SOURCE, OP_WRITE } from './ops.js';
import { BsdiffPool } from './pool.js';
import { ContentAnchors } from './copydiff.js';
import { runCopyPart } from './copy-part.js';
import { chunks as rollsumChunks, ostreeRollsumStats, ostreeTakesRollsum, rollsumMatches, type Match, type OstreeRollsumStats } from './rollsum.js';
import { xzCompress } from './xz.js';
import { mapLargeAllocations } from './xz-system.js';
import { reindexDeltas } from './manage.js';

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

interface TreeIndex {
  /** Each content object and the first name it was found under. */
  files: Map<Checksum, string>;
  /** Every name of each content object (ostree pairs files by any of their names). */
  names: Map<Checksum, string[]>;
  meta: Map<string, ObjectType>;
}

async function walkCommit(repo: Repo, commit: Checksum): Promise<TreeIndex> {
  const c = await repo.readCommit(commit);
  const out: TreeIndex = { files: new Map(), names: new Map(), meta: new Map() };
  const visit = async (tree: Checksum, meta: Checksum): Promise<void> => {
    out.meta.set(meta, 'dirmeta');
    if (out.meta.has(tree)) return;
    out.meta.set(tree, 'dirtree');
    const dt = await repo.readDirTree(tree);
    for (const f of dt.files) {
      if (!out.files.has(f.checksum)) out.files.set(f.checksum, f.name);
      const l = out.names.get(f.checksum);
      if (l) l.push(f.name);
      else out.names.set(f.checksum, [f.name]);
    }
    await Promise.all(dt.dirs.map((d) => visit(d.treeChecksum, d.metaChecksum)));
  };
  await visit(c.rootTree, c.rootMeta);
  return out;
}

async function readContent(repo: Repo, checksum: Checksum, into?: { buf: Buffer; offset: number }): Promise<{ meta: FileMeta; data: Buffer }> {
  const f = await repo.openFile(checksum);
  if ((f.meta.mode & S_IFMT) === S_IFLNK) return { meta: f.meta, data: Buffer.from(f.meta.symlinkTarget, 'utf8') };
  // One buffer of the declared size (or the caller's, at its offset), filled in place.
  if (into !== undefined && into.buf.length - into.offset < f.size) throw new LarchError('OBJECT_CORRUPTED', `Corrupted file object ${checksum}: size changed`, { checksum });
  const data = into !== undefined ? into.buf.subarray(into.offset, into.offset + f.size) : Buffer.allocUnsafeSlow(f.size);
  let n = 0;
  for await (const c of f.open() as AsyncIterable<Buffer>) {
    if (n + c.length > f.size) throw new LarchError('OBJECT_CORRUPTED', `Corrupted file object ${checksum}: longer than its size`, { checksum });
    c.copy(data, n);
    n += c.length;
  }
  if (n !== f.size) throw new LarchError('OBJECT_CORRUPTED', `Corrupted file object ${checksum}: shorter than its size`, { checksum });
  return { meta: f.meta, data };
}

/** Sampled content anchors of a regular file (copydiff.ts), read as a stream. */
async function anchorsOf(repo: Repo, checksum: Checksum): Promise<Uint32Array> {
  const f = await repo.openFile(checksum);
  const a = new ContentAnchors();
  for await (const c of f.open() as AsyncIterable<Buffer>) a.update(c);
  return a.digest();
}

const ELF_MAGIC = 0x7f454c46;

async function isElf(repo: Repo, checksum: Checksum): Promise<boolean> {
  const f = await repo.openFile(checksum);
  const stream = f.open() as NodeJS.ReadableStream & { destroy?: () => void };
  let head = Buffer.alloc(0);
  for await (const c of stream as AsyncIterable<Buffer>) {
    head = Buffer.concat([head, c]);
    if (head.length >= 4) break;
  }
  stream.destroy?.();
  return head.length >= 4 && head.readUInt32BE(0) === ELF_MAGIC;
}

/** Names of files already compressed (nothing to gain from diffing them). */
const COMPRESSED = /\.(xz|bz2|gz|zst|lz4|lzma)$/;
/** How far (percent) the sizes of a modified file and its FROM file may differ (ostree's CONTENT_SIZE_SIMILARITY_THRESHOLD_PERCENT). */
const SIMILARITY_PERCENT = 30;
/** Smallest file considered for content pairing. */
const CONTENT_PAIR_MIN = 256 * 1024;
/** Share of a file's sampled windows (and then of its bytes) that must come from the old file. */
const CONTENT_PAIR_SHARE = 0.05;

let gcFn: (() => void) | null | undefined;
/**
 * Run a full garbage collection. Part bodies and file buffers live outside V8's heap, which the
 * collector does not see filling up; while the main thread only waits on a long compression no
 * collection happens at all, and hundreds of MB of dead buffers would stay resident. Called when
 * a part has been compressed (a few ms each).
 */
function collectGarbage(): void {
  if (gcFn === undefined) {
    try {
      setFlagsFromString('--expose-gc');
      gcFn = runInNewContext('gc') as () => void;
    } catch {
      gcFn = null;
    }
  }
  gcFn?.();
}

const ext = (name: string): string => {
  const i = name.lastIndexOf('.');
  return i > 0 ? name.slice(i + 1) : '';
};
/** The text before the first '.', when there is such text and a dot (ostree's fuzzy name match needs both). */
const stem = (name: string): string | null => {
  const i = name.indexOf('.');
  return i > 0 ? name.slice(0, i) : null;
};

/** Preset of the quick xz pass that compares a large patch with its new file. */
const ESTIMATE_PRESET = 1;

/**
 * Whether `patch` compresses smaller than the new file `data` it rebuilds (with the x86 filter
 * when that is an ELF file, as its part would be), by a quick xz pass over both.
 */
async function patchPays(patch: Uint8Array, data: Buffer): Promise<boolean> {
  const elf = data.length >= 64 && data.readUInt32BE(0) === ELF_MAGIC;
  const [p, d] = await Promise.all([xzCompress([patch], ESTIMATE_PRESET), xzCompress([data], ESTIMATE_PRESET, false, elf)]);
  return p.length < d.length;
}

/** Accumulates one part: tables, payload and op stream. */
class PartBuilder {
  readonly modes: Array<[number, number, number]> = [];
  readonly xattrs: Xattr[][] = [];
  private readonly modeIdx = new Map<string, number>();
  private readonly xattrIdx = new Map<string, number>();
  readonly payload = new ChunkSink();
  readonly ops = new ByteSink(1 << 10);
  readonly objects: DeltaObject[] = [];
  usize = 0;
  /** Payload bytes that are whole ELF files. */
  elfBytes = 0;

  private mode(meta: FileMeta): number {
    const k = `${meta.uid}:${meta.gid}:${meta.mode}`;
    let i = this.modeIdx.get(k);
    if (i === undefined) {
      i = this.modes.length;
      this.modes.push([meta.uid, meta.gid, meta.mode]);
      this.modeIdx.set(k, i);
    }
    return i;
  }

  private xattr(meta: FileMeta): number {
    const k = meta.xattrs.map((x) => `${x.name}\0${Buffer.from(x.value).toString('base64')}`).join('\0');
    let i = this.xattrIdx.get(k);
    if (i === undefined) {
      i = this.xattrs.length;
      this.xattrs.push(meta.xattrs);
      this.xattrIdx.set(k, i);
    }
    return i;
  }

  addMetadata(type: ObjectType, checksum: Checksum, bytes: Uint8Array): void {
    const off = this.payload.length;
    this.payload.bytes(bytes);
    this.ops.byte(OP_OPEN_SPLICE_AND_CLOSE).varint(bytes.length).varint(off);
    this.objects.push({ type, checksum });
    this.usize += bytes.length;
  }

  addSpliced(checksum: Checksum, meta: FileMeta, data: Uint8Array, elf = false): void {
    if (elf) this.elfBytes += data.length;
    const m = this.mode(meta);
    const x = this.xattr(meta);
    const off = this.payload.length;
    this.payload.bytes(data);
    this.ops.byte(OP_OPEN_SPLICE_AND_CLOSE).varint(m).varint(x).varint(data.length).varint(off);
    this.objects.push({ type: 'file', checksum });
    // ostree counts a symlink as 0 bytes (its file info has no size), in usize as in the part's fill.
    if ((meta.mode & S_IFMT) !== S_IFLNK) this.usize += data.length;
  }

  addBsdiff(checksum: Checksum, meta: FileMeta, size: number, from: Checksum, patch: Uint8Array): void {
    const srcOff = this.payload.length;
    this.payload.bytes(Buffer.from(from, 'hex'));
    const patchOff = this.payload.length;
    this.payload.bytes(patch);
    this.ops.byte(OP_SET_READ_SOURCE).varint(srcOff);
    this.ops.byte(OP_OPEN).varint(this.mode(meta)).varint(this.xattr(meta)).varint(size);
    this.ops.byte(OP_BSPATCH).varint(patchOff).varint(patch.length);
    this.ops.byte(OP_CLOSE);
    this.objects.push({ type: 'file', checksum });
    this.usize += size;
  }

  addRollsum(checksum: Checksum, meta: FileMeta, data: Uint8Array, from: Checksum, matches: Match[]): void {
    const srcOff = this.payload.length;
    this.payload.bytes(Buffer.from(from, 'hex'));
    this.ops.byte(OP_OPEN).varint(this.mode(meta)).varint(this.xattr(meta)).varint(data.length);
    let pos = 0;
    let active = false;
    const literal = (end: number): void => {
      if (end <= pos) return;
      if (active) {
        this.ops.byte(OP_UNSET_READ_SOURCE);
        active = false;
      }
      const off = this.payload.length;
      this.payload.bytes(data.subarray(pos, end));
      this.ops.byte(OP_WRITE).varint(end - pos).varint(off);
      pos = end;
    };
    for (const mt of matches) {
      literal(mt.to);
      if (!active) {
        this.ops.byte(OP_SET_READ_SOURCE).varint(srcOff);
        active = true;
      }
      this.ops.byte(OP_WRITE).varint(mt.length).varint(mt.from);
      pos = mt.to + mt.length;
    }
    literal(data.length);
    if (active) this.ops.byte(OP_UNSET_READ_SOURCE);
    this.ops.byte(OP_CLOSE);
    this.objects.push({ type: 'file', checksum });
    this.usize += data.length;
  }
}

interface NewFile {
  checksum: Checksum;
  name: string;
  meta: FileMeta;
  size: number;
  pair: Checksum | null;
  /** How `pair` was found: same (or same-stem) name, diffed with bsdiff; or shared content, copied with copydiff. */
  pairKind?: 'name' | 'content';
  /** Starts with the ELF magic (compressed with the x86 BCJ filter when it dominates a part). */
  elf?: boolean;
  /** Planned as rollsum copies out of `pair` (ostree's decision), with the copies Larch writes. */
  rollsum?: { matches: Match[]; stats: OstreeRollsumStats };
}

/** ostree's test for a file it may pair (`sizename_is_delta_candidate`): not empty, no name ending in .xz or .bz2. */
const ostreeCandidate = (size: number, names: readonly string[]): boolean => size > 0 && !names.some((n) => /\.(xz|bz2)$/.test(n));

/**
 * The pairs ostree's `_ostree_delta_compute_similar_objects` makes, new file → FROM file: for each
 * new regular file, the smallest FROM regular file of a size within 30 % (bounds truncated as
 * ostree computes them) that shares one of its names, or failing that one of its stems (both names
 * with a non-empty text before their first '.'). ostree breaks ties between FROM files of equal
 * size by hash-table order; Larch by checksum.
 */
async function ostreeSimilarFiles(
  newFiles: readonly NewFile[],
  toIdx: TreeIndex,
  fromIdx: TreeIndex,
  info: (c: Checksum) => Promise<{ meta: FileMeta; size: number }>,
): Promise<Map<Checksum, Checksum>> {
  const byName = new Map<string, Checksum[]>();
  const byStem = new Map<string, Checksum[]>();
  const add = (m: Map<string, Checksum[]>, k: string, c: Checksum): void => {
    const l = m.get(k);
    if (l === undefined) m.set(k, [c]);
    else if (l[l.length - 1] !== c) l.push(c);
  };
  for (const [c, names] of fromIdx.names) {
    for (const n of names) {
      add(byName, n, c);
      const st = stem(n);
      if (st !== null) add(byStem, st, c);
    }
  }
  // FROM files that may be paired (regular, not empty, not *.xz/*.bz2), with their sizes; looked
  // up once each (many new files share a name: __init__.py, Makefile).
  const eligible = new Map<Checksum, number | null>();
  const fromSize = async (c: Checksum): Promise<number | null> => {
    let v = eligible.get(c);
    if (v === undefined) {
      const o = await info(c);
      v = (o.meta.mode & S_IFMT) !== S_IFLNK && ostreeCandidate(o.size, fromIdx.names.get(c) ?? []) ? o.size : null;
      eligible.set(c, v);
    }
    return v;
  };
  const out = new Map<Checksum, Checksum>();
  for (const f of newFiles) {
    if ((f.meta.mode & S_IFMT) === S_IFLNK) continue;
    const names = toIdx.names.get(f.checksum) ?? [f.name];
    if (!ostreeCandidate(f.size, names)) continue;
    const low = Math.floor(f.size * (1 - SIMILARITY_PERCENT / 100));
    const high = Math.floor(f.size * (1 + SIMILARITY_PERCENT / 100));
    const smallest = async (keys: string[], index: Map<string, Checksum[]>): Promise<Checksum | null> => {
      let best: Checksum | null = null;
      let bestSize = Infinity;
      for (const k of keys) {
        for (const c of index.get(k) ?? []) {
          const size = eligible.has(c) ? eligible.get(c)! : await fromSize(c);
          if (size === null || size < low || size > high) continue;
          if (size < bestSize || (size === bestSize && best !== null && c < best)) [best, bestSize] = [c, size];
        }
      }
      return best;
    };
    const stems = names.map(stem).filter((x): x is string => x !== null);
    const from = (await smallest(names, byName)) ?? (await smallest(stems, byStem));
    if (from !== null) out.set(f.checksum, from);
  }
  return out;
}

/** Largest file (old or new) compared by rollsum: both are read whole. */
const ROLLSUM_MAX_FILE = 1024 * 1024 * 1024;

/**
 * Compare `old` and `nw` by rollsum: ostree's figures for the pair, and when they make ostree
 * write rollsum copies, the copies Larch writes (every chunk found verbatim, a superset of those
 * ostree counts).
 */
function compareByRollsum(old: Uint8Array, nw: Uint8Array): { take: boolean; matches: Match[]; stats: OstreeRollsumStats } {
  const oc = rollsumChunks(old);
  const nc = rollsumChunks(nw);
  const stats = ostreeRollsumStats(old, nw, oc, nc);
  if (!ostreeTakesRollsum(stats)) return { take: false, matches: [], stats };
  return { take: true, matches: rollsumMatches(old, nw, oc, nc).matches, stats };
}

/**
 * What objects take in the repository (ostree's `ostree_repo_query_object_storage_size`: the size
 * of the loose object file; 0 for one not stored here, say in a parent repository).
 */
async function storageSize(repo: Repo, objects: ReadonlyArray<[ObjectType, Checksum]>): Promise<number> {
  let total = 0;
  for (let i = 0; i < objects.length; i += 256) {
    const sizes = await Promise.all(objects.slice(i, i + 256).map(([t, c]) => fsp.lstat(repo.objectPath(t, c)).then((st) => st.size, () => 0)));
    for (const n of sizes) total += n;
  }
  return total;
}

/**
 * Generate the static delta FROM→TO (or from scratch) into `repo`'s `deltas/` and, unless
 * `updateIndex` is false, refresh `delta-indexes/` for TO.
 *
 * Locking: shared repo lock while reading objects and publishing. Crash guarantee: the delta
 * directory appears whole (renamed into place after its superblock is durable) or not at all; an
 * existing delta of the same name is replaced. Limits: see the file comment; a single object
 * larger than `max-chunk-size` makes a part of its own size, held in memory.
 */
export async function generateDelta(repo: Repo, opts: GenerateOptions): Promise<GenerateStats> {
  const minFallback = (opts.minFallbackSize ?? 4) * MB;
  const maxBsdiff = (opts.maxBsdiffSize ?? 128) * MB;
  const maxChunk = Math.max(1, (opts.maxChunkSize ?? 32) * MB);
  const concurrency = Math.max(1, opts.concurrency ?? availableParallelism());
  const compression = opts.compression ?? 'xz';
  const preset = opts.xzPreset ?? 8;
  const extreme = opts.xzExtreme ?? false;
  const dictCap = opts.xzDictSize ?? (concurrency > 1 ? 8 << 20 : 32 << 20);
  const { from, to } = opts;
  if (from === to) throw new LarchError('INVALID_ARGUMENT', `Static delta source and target are the same commit ${to}`);
  const outFile = opts.filename === undefined ? null : resolve(opts.filename);
  if (outFile !== null) {
    const st = await fsp.stat(dirname(outFile)).catch((e: NodeJS.ErrnoException) => {
      throw new LarchError('INVALID_ARGUMENT', `opendir(${dirname(outFile)}): ${e.code === 'ENOENT' ? 'No such file or directory' : e.message}`, { path: dirname(outFile) });
    });
    if (!st.isDirectory()) throw new LarchError('INVALID_ARGUMENT', `opendir(${dirname(outFile)}): Not a directory`, { path: dirname(outFile) });
  }

  return repo.withLock('shared', async () => {
    const t0 = performance.now();
    mapLargeAllocations();
    const timings = { plan: 0, waitBsdiff: 0, waitCompress: 0, total: 0 };
    const commitBytes = await repo.readMetadata('commit', to, { verify: true });
    if (from !== null && !(await repo.hasObject('commit', from))) {
      throw new LarchError('OBJECT_MISSING', `Commit ${from}, which is the delta source, is not in repository`, { checksum: from });
    }
    const toIdx = await walkCommit(repo, to);
    const fromIdx = from === null ? null : await walkCommit(repo, from);

    // New metadata (dirtree/dirmeta) and content.
    const newMeta: Array<[Checksum, ObjectType]> = [];
    for (const [c, t] of toIdx.meta) if (!fromIdx?.meta.has(c)) newMeta.push([c, t]);
    const newFiles: NewFile[] = [];
    const fromByName = new Map<string, Checksum[]>();
    const fromByStem = new Map<string, Checksum[]>();
    if (fromIdx) {
      for (const [c, n] of fromIdx.files) {
        const byName = fromByName.get(n);
        if (byName) byName.push(c);
        else fromByName.set(n, [c]);
        const st = stem(n);
        if (st === null) continue;
        const byStem = fromByStem.get(st);
        if (byStem) byStem.push(c);
        else fromByStem.set(st, [c]);
      }
    }
    const sizeOf = new Map<Checksum, { meta: FileMeta; size: number }>();
    const info = async (c: Checksum): Promise<{ meta: FileMeta; size: number }> => {
      let v = sizeOf.get(c);
      if (!v) {
        const f = await repo.openFile(c);
        v = { meta: f.meta, size: (f.meta.mode & S_IFMT) === S_IFLNK ? Buffer.byteLength(f.meta.symlinkTarget) : f.size };
        sizeOf.set(c, v);
      }
      return v;
    };
    for (const [c, name] of toIdx.files) {
      if (fromIdx?.files.has(c)) continue;
      const { meta, size } = await info(c);
      newFiles.push({ checksum: c, name, meta, size, pair: null });
    }

    // Similar-file pairing for bsdiff, by ostree's rules (`_ostree_delta_compute_similar_objects`)
    // with three deliberate differences: among several candidates Larch takes the closest in size
    // (ostree the smallest, often another file of the same name); it skips FROM files that are not
    // world-readable while choosing (ostree chooses, then drops the pair); and it leaves out more
    // compressed names (ostree only *.xz and *.bz2). ostree's own pairs (below) decide rollsum.
    if (fromIdx) {
      for (const f of newFiles) {
        if (f.size === 0 || (f.meta.mode & S_IFMT) === S_IFLNK || COMPRESSED.test(f.name)) continue;
        const low = Math.floor(f.size * (1 - SIMILARITY_PERCENT / 100));
        const high = Math.floor(f.size * (1 + SIMILARITY_PERCENT / 100));
        const pick = async (cands: Checksum[] | undefined): Promise<Checksum | null> => {
          let best: Checksum | null = null;
          let bestDiff = Infinity;
          for (const c of cands ?? []) {
            const o = await info(c);
            if ((o.meta.mode & S_IFMT) === S_IFLNK || (o.meta.mode & 0o004) === 0 || o.size === 0) continue;
            if (o.size < low || o.size > high) continue;
            const d = Math.abs(o.size - f.size);
            if (d < bestDiff) {
              bestDiff = d;
              best = c;
            }
          }
          return best;
        };
        const st = stem(f.name);
        f.pair = (await pick(fromByName.get(f.name))) ?? (st === null ? null : await pick(fromByStem.get(st)));
        if (f.pair !== null) f.pairKind = 'name';
      }
    }
    // ostree's own pairs, for its `modified` count and for the files written as rollsum copies
    // (so that --disable-bsdiff and --max-bsdiff-size take ostree's decisions).
    const ostreePairs = fromIdx ? await ostreeSimilarFiles(newFiles, toIdx, fromIdx, info) : new Map<Checksum, Checksum>();
    const modified = ostreePairs.size;
    opts.onEvent?.({
      type: 'reachable',
      modified,
      metadata: newMeta.length + 1,
      regular: newFiles.filter((f) => (f.meta.mode & S_IFMT) !== S_IFLNK).length,
      symlink: newFiles.filter((f) => (f.meta.mode & S_IFMT) === S_IFLNK).length,
    });

    // Content pairing: large files that found no pair by name, against the FROM file that shares
    // the most sampled windows with them (say an apt Translation-en and the Packages file naming the
    // same packages); copied with exact-match copy diffs.
    if (fromIdx && !opts.disableBsdiff) {
      const eligible = async (c: Checksum, name: string): Promise<boolean> => {
        const o = await info(c);
        return (o.meta.mode & S_IFMT) !== S_IFLNK && (o.meta.mode & 0o004) !== 0 && o.size >= CONTENT_PAIR_MIN && !COMPRESSED.test(name) && !(await isElf(repo, c));
      };
      const wanted: NewFile[] = [];
      for (const f of newFiles) if (f.pair === null && f.size <= maxBsdiff && (await eligible(f.checksum, f.name))) wanted.push(f);
      if (wanted.length > 0) {
        const owner = new Map<number, number>();
        const olds: Checksum[] = [];
        for (const [c, n] of fromIdx.files) {
          if (olds.includes(c) || !(await eligible(c, n))) continue;
          for (const a of await anchorsOf(repo, c)) if (!owner.has(a)) owner.set(a, olds.length);
          olds.push(c);
        }
        for (const f of wanted) {
          const anchors = await anchorsOf(repo, f.checksum);
          const hits = new Map<number, number>();
          for (const a of anchors) {
            const o = owner.get(a);
            if (o !== undefined) hits.set(o, (hits.get(o) ?? 0) + 1);
          }
          let best = -1;
          let bestHits = 0;
          for (const [o, n] of hits) if (n > bestHits || (n === bestHits && o < best)) [best, bestHits] = [o, n];
          if (best >= 0 && bestHits >= anchors.length * CONTENT_PAIR_SHARE && (await info(olds[best])).size + f.size <= maxBsdiff) {
            f.pair = olds[best];
            f.pairKind = 'content';
          }
        }
      }
    }

    // A pair that bsdiff may take (unless disabled, old + new at most --max-bsdiff-size) is
    // diffed. The others are written as rollsum copies when ostree would (at least half of the new
    // chunks found, by ostree's measure), whatever their size, so that --disable-bsdiff and
    // --max-bsdiff-size give ostree's rollsum files; else they are plain files. (ostree tries
    // rollsum first for every pair; Larch diffs first, as a bsdiff patch is smaller.)
    const bsdiffable = (f: NewFile): boolean => f.pair !== null && !opts.disableBsdiff && sizeOf.get(f.pair)!.size + f.size <= maxBsdiff;
    let rollsumCount = 0;
    let rollsumSize = 0;
    const rollsumEvent = (f: NewFile, stats: OstreeRollsumStats): void => {
      rollsumCount++;
      rollsumSize += stats.matchSize;
      opts.onEvent?.({ type: 'rollsum', from: f.pair!, to: f.checksum, ...stats });
    };
    for (const f of newFiles) {
      const from = ostreePairs.get(f.checksum);
      if (from === undefined || bsdiffable(f)) continue;
      // ostree drops a pair whose FROM file a bare-user client could not read.
      const old = sizeOf.get(from)!;
      if ((old.meta.mode & 0o004) === 0 || f.size > ROLLSUM_MAX_FILE || old.size > ROLLSUM_MAX_FILE) continue;
      const r = compareByRollsum((await readContent(repo, from)).data, (await readContent(repo, f.checksum)).data);
      if (!r.take) continue;
      f.pair = from;
      f.rollsum = { matches: r.matches, stats: r.stats };
      rollsumEvent(f, r.stats);
    }
    opts.onEvent?.({ type: 'rollsum-planned', rollsum: rollsumCount, modified });

    // Fallbacks: large plain regular files go out as ordinary objects.
    const fallbacks: FallbackEntry[] = [];
    const fallbackStreamSize = new Map<Checksum, number>();
    const plain: NewFile[] = [];
    const paired: NewFile[] = [];
    const links: NewFile[] = [];
    for (const f of newFiles) {
      if ((f.meta.mode & S_IFMT) === S_IFLNK) links.push(f);
      else if (f.rollsum !== undefined || bsdiffable(f)) paired.push(f);
      else if (minFallback > 0 && fileHeader(f.meta).length + f.size > minFallback) {
        const st = await fsp.stat(repo.objectPath('file', f.checksum));
        fallbacks.push({ type: 'file', checksum: f.checksum, compressedSize: st.size, size: f.size });
        fallbackStreamSize.set(f.checksum, fileHeader(f.meta).length + f.size);
      } else plain.push(f);
    }
    const byContent = (a: NewFile, b: NewFile): number => {
      const ea = ext(a.name);
      const eb = ext(b.name);
      if (ea !== eb) return ea < eb ? -1 : 1;
      return a.name < b.name ? -1 : a.name > b.name ? 1 : a.checksum < b.checksum ? -1 : 1;
    };
    // Plain files: ELF first (their parts get the x86 filter), then grouped by extension and name.
    await Promise.all(plain.map(async (f) => {
      f.elf = f.size >= 64 && (await isElf(repo, f.checksum));
    }));
    // Files larger than a part sit alone in their part whatever the order (see the file comment):
    // they go first among the plain files, so that the parts around them stay whole.
    const huge = plain.filter((f) => f.size > maxChunk).sort((a, b) => b.size - a.size || (a.checksum < b.checksum ? -1 : 1));
    const small = plain.filter((f) => f.size <= maxChunk);
    small.sort((a, b) => (a.elf === b.elf ? byContent(a, b) : a.elf ? -1 : 1));
    plain.length = 0;
    plain.push(...small);
    paired.sort(byContent);
    links.sort(byContent);
    const copyPaired = paired.filter((f) => f.pairKind === 'content');
    paired.splice(0, paired.length, ...paired.filter((f) => f.pairKind !== 'content'));

    // One core is left to xz (it compresses finished parts meanwhile), so cores - 1 diff workers.
    // (The scratch directory first: the pool's workers keep the process alive until it is closed.)
    const tmpDir = await fsp.mkdtemp(join(repo.tmpPath, 'larch-delta-'));
    const bsdiffTotal = paired.filter((f) => f.rollsum === undefined).length;
    const pool = new BsdiffPool(bsdiffTotal === 0 ? 0 : Math.max(1, Math.min(concurrency - 1, bsdiffTotal)));
    const relDir = deltaRelDir(from, to);
    const headers: PartHeader[] = [];
    const inlineVariants: Array<[string, Variant]> = [];
    const inflight = new Set<Promise<void>>();
    let firstError: unknown = null;
    let bsdiffCount = 0;
    let copyCount = 0;
    let objectCount = 0;
    let totalSize = 0;
    let partSize = 0;
    let totalUsize = 0;
    // Objects written whole into the parts, for the `loose=` figure (their sizes are looked up as
    // the parts are built, off the main path).
    const loose: Array<[ObjectType, Checksum]> = [];
    const looseSizes: Array<Promise<number>> = [];
    const wrote = (type: ObjectType, checksum: Checksum): void => {
      loose.push([type, checksum]);
      if (loose.length >= 1024) flushLoose();
    };
    const flushLoose = (): void => {
      const p = storageSize(repo, loose.splice(0));
      p.catch(() => undefined);
      looseSizes.push(p);
    };
    // Parts are reported in part order, as each is compressed (they finish in any order).
    const partDone: boolean[] = [];
    let partsReported = 0;
    const reportParts = (): void => {
      while (partDone[partsReported] === true) {
        const h = headers[partsReported];
        opts.onEvent?.({ type: 'part', index: partsReported, objects: h.objects.length, size: h.size, usize: h.usize });
        partsReported++;
      }
    };

    /**
     * Register part `header` and compress `body` in the background (at most `concurrency` at once).
     * A `text` part (a copy patch: mostly text with zero runs) gets lc=4 pb=0.
     */
    const submit = async (header: PartHeader, body: Uint8Array[], x86: boolean, text = false): Promise<void> => {
      const index = headers.length;
      headers.push(header);
      objectCount += header.objects.length;
      totalUsize += header.usize;
      const job = (async () => {
        const bodyLength = body.reduce((n, c) => n + c.length, 0);
        let dict = 1 << 20;
        while (dict < bodyLength && dict < dictCap) dict *= 2;
        const packed = compression === 'xz' ? await xzCompress(body, preset, extreme, x86, opts.xzPreset === undefined ? Math.min(dict, dictCap) : undefined, text && opts.xzPreset === undefined) : Buffer.concat(body);
        const stored = Buffer.allocUnsafe(packed.length + 1);
        stored[0] = compression === 'xz' ? COMPRESSION_XZ : COMPRESSION_NONE;
        packed.copy(stored, 1);
        header.checksum = createHash('sha256').update(stored).digest('hex');
        header.size = stored.length;
        partSize += stored.length;
        if (opts.inlineParts) inlineVariants[index] = [`${relDir}/${index}`, inlinePartVariant(stored)];
        else {
          await fsp.writeFile(join(tmpDir, String(index)), stored, { mode: 0o644 });
          totalSize += stored.length;
        }
        partDone[index] = true;
        reportParts();
      })().then(collectGarbage, (e: unknown) => {
        firstError ??= e;
      });
      inflight.add(job);
      void job.finally(() => inflight.delete(job));
      const tw = performance.now();
      while (inflight.size >= concurrency) await Promise.race(inflight);
      timings.waitCompress += performance.now() - tw;
    };

    const closePart = async (b: PartBuilder): Promise<void> => {
      const header: PartHeader = { version: 0, checksum: '', size: 0, usize: b.usize, objects: b.objects };
      // Parts that are mostly machine code compress better behind the x86 branch filter;
      // any liblzma .xz decoder (ostree's included) undoes it.
      const x86 = opts.x86Filter === 'always' || (opts.x86Filter !== 'never' && b.elfBytes * 2 > b.payload.length);
      await submit(header, encodePartBodyChunks(b.modes, b.xattrs, b.payload.parts(), b.ops.view()), x86);
    };

    /** A part holding one large plain file: its body is laid out around the file's bytes, read in place (one copy in memory). */
    const closeSingle = async (f: NewFile): Promise<void> => {
      const ops = new ByteSink().byte(OP_OPEN_SPLICE_AND_CLOSE).varint(0).varint(0).varint(f.size).varint(0).view();
      const { head, tail } = partBodyFrame([[f.meta.uid, f.meta.gid, f.meta.mode]], [f.meta.xattrs], f.size, ops);
      const body = Buffer.allocUnsafeSlow(head.length + f.size + tail.length);
      head.copy(body, 0);
      await readContent(repo, f.checksum, { buf: body, offset: head.length });
      tail.copy(body, head.length + f.size);
      wrote('file', f.checksum);
      const x86 = opts.x86Filter === 'always' || (opts.x86Filter !== 'never' && f.elf === true);
      await submit({ version: 0, checksum: '', size: 0, usize: f.size, objects: [{ type: 'file', checksum: f.checksum }] }, [body], x86);
    };

    let cur = new PartBuilder();
    /**
     * Start a new part where ostree does: before an object spliced whole (`size` bytes of payload)
     * when the part holds one already and would outgrow `max-chunk-size`, or (`size` null) before a
     * patched file when the payload has outgrown it already.
     */
    const room = async (size: number | null): Promise<void> => {
      const over = size === null ? cur.payload.length > maxChunk : cur.payload.length + size > maxChunk;
      if (cur.objects.length > 0 && over) {
        const full = cur;
        cur = new PartBuilder();
        await closePart(full);
      }
      if (firstError !== null) throw firstError;
    };

    timings.plan = performance.now() - t0;
    try {
      // Content pairs first, each in a part of its own: they are the largest and slowest to
      // compress, so their compression starts at once and overlaps with everything else.
      for (const f of copyPaired) {
        const tw = performance.now();
        const old = (await readContent(repo, f.pair!)).data;
        const nw = (await readContent(repo, f.checksum)).data;
        const { body } = await runCopyPart({ old, nw, from: f.pair!, uid: f.meta.uid, gid: f.meta.gid, mode: f.meta.mode, xattrs: f.meta.xattrs, minShare: CONTENT_PAIR_SHARE });
        timings.waitBsdiff += performance.now() - tw;
        if (body !== null) {
          copyCount++;
          await submit({ version: 0, checksum: '', size: 0, usize: f.size, objects: [{ type: 'file', checksum: f.checksum }] }, [body], false, true);
        } else await closeSingle(f);
        if (firstError !== null) throw firstError;
      }
      // Metadata first.
      newMeta.sort((a, b) => (a[1] === b[1] ? (a[0] < b[0] ? -1 : 1) : a[1] === 'dirtree' ? -1 : 1));
      for (const [c, t] of newMeta) {
        const bytes = await repo.readMetadata(t as 'dirtree' | 'dirmeta', c);
        await room(bytes.length);
        cur.addMetadata(t, c, bytes);
        wrote(t, c);
      }
      // Paired files: bsdiff (on workers), or the rollsum copies planned above.
      const patches = paired.map((f) => {
        if (f.rollsum !== undefined) return null;
        return pool.diff(async () => ({ old: (await readContent(repo, f.pair!)).data, nw: (await readContent(repo, f.checksum)).data }));
      });
      patches.forEach((p) => p?.catch(() => undefined));
      let bsdiffIndex = 0;
      for (let i = 0; i < paired.length; i++) {
        const f = paired[i];
        const p = patches[i];
        let nw: Buffer | null = null;
        if (f.rollsum !== undefined) {
          nw = (await readContent(repo, f.checksum)).data;
          const { matches } = f.rollsum;
          await room(null);
          cur.addRollsum(f.checksum, f.meta, nw, f.pair!, matches);
          continue;
        }
        if (p !== null) {
          opts.onEvent?.({ type: 'bsdiff', index: bsdiffIndex++, total: bsdiffTotal });
          const tw = performance.now();
          const patch = await p;
          timings.waitBsdiff += performance.now() - tw;
          // A raw patch is about the new file's size (diff + extra bytes, mostly zeros in the diff).
          // A larger one means many short matches — little in common, or a rebuilt binary whose
          // addresses all moved, which still compresses far better than the file: a quick xz
          // pass over both decides.
          if (patch.length > f.size * 1.05 + 64) nw = (await readContent(repo, f.checksum)).data;
          if (nw === null || (await patchPays(patch, nw))) {
            await room(null);
            cur.addBsdiff(f.checksum, f.meta, f.size, f.pair!, patch);
            bsdiffCount++;
            continue;
          }
        }
        // The patch does not pay: rollsum copies when ostree's measure would take them, else
        // the file whole.
        nw ??= (await readContent(repo, f.checksum)).data;
        const r = compareByRollsum((await readContent(repo, f.pair!)).data, nw);
        if (r.take) {
          rollsumEvent(f, r.stats);
          await room(null);
          cur.addRollsum(f.checksum, f.meta, nw, f.pair!, r.matches);
        } else {
          await room(nw.length);
          cur.addSpliced(f.checksum, f.meta, nw);
          wrote('file', f.checksum);
        }
      }
      // No diff is left: release the workers (and their memory) before the plain files.
      await pool.close();
      for (const fb of fallbacks) opts.onEvent?.({ type: 'fallback', checksum: fb.checksum, size: fallbackStreamSize.get(fb.checksum)! });
      for (const f of huge) {
        await room(f.size);
        await closeSingle(f);
        if (firstError !== null) throw firstError;
      }
      // Plain files, ELF ones first (a part mostly made of them takes the x86 filter).
      for (const f of plain) {
        await room(f.size);
        const { data } = await readContent(repo, f.checksum);
        cur.addSpliced(f.checksum, f.meta, data, f.elf === true);
        wrote('file', f.checksum);
      }
      for (const f of links) {
        await room(0);
        cur.addSpliced(f.checksum, f.meta, Buffer.from(f.meta.symlinkTarget, 'utf8'));
        wrote('file', f.checksum);
      }
      // At least one part always exists.
      if (cur.objects.length > 0 || headers.length === 0) await closePart(cur);
      flushLoose();
      const tw = performance.now();
      await Promise.all(inflight);
      timings.waitCompress += performance.now() - tw;
      if (firstError !== null) throw firstError;
      const looseSize = (await Promise.all(looseSizes)).reduce((n, x) => n + x, 0);

      const metadata: Array<[string, Variant]> = [...(opts.metadata ?? [])];
      const endianness = opts.endianness ?? 'l';
      metadata.push(['ostree.endianness', new Variant('y', endianness === 'B' ? 0x42 : 0x6c)]);
      for (const v of inlineVariants) if (v) metadata.push(v);
      const cm = await repo.readCommitMeta(to);
      if (cm !== null) metadata.push([`${relDir}/commitmeta`, new Variant('a{sv}', cm)]);
      const plainSb = encodeSuperblock({
        metadata,
        timestamp: opts.timestamp ?? BigInt(Math.floor(Date.now() / 1000)),
        from,
        to,
        commit: commitBytes,
        parts: headers,
        fallbacks,
      }, endianness);
      // Signed, the superblock file is the wrapper (and the summary's digest is over it).
      const sb = opts.signers !== undefined && opts.signers.length > 0 ? await signSuperblock(plainSb, opts.signers) : plainSb;
      totalSize += sb.length;
      const sbTmp = join(tmpDir, 'superblock');
      const fh = await fsp.open(sbTmp, 'wx', 0o644);
      try {
        await fh.writeFile(sb);
        if (repo.fsyncEnabled) await fh.sync();
      } finally {
        await fh.close();
      }
      if (repo.fsyncEnabled) {
        for (let i = 0; i < headers.length && !opts.inlineParts; i++) {
          const h = await fsp.open(join(tmpDir, String(i)), 'r');
          await h.sync();
          await h.close();
        }
      }
      const stats = (dir: string): GenerateStats => ({
        name: deltaName(from, to),
        dir,
        parts: headers.length,
        objects: objectCount,
        fallbacks: fallbacks.length,
        bsdiff: bsdiffCount,
        copy: copyCount,
        rollsum: rollsumCount,
        rollsumSize,
        modified,
        size: totalSize,
        partSize,
        usize: totalUsize,
        looseSize,
        superblockSha256: createHash('sha256').update(sb).digest('hex'),
        timings: { ...timings, total: performance.now() - t0 },
      });
      if (outFile !== null) {
        // Outside the repository (`--filename`): the parts go beside the superblock, which is
        // renamed into place last; nothing in the repository changes.
        for (let i = 0; i < headers.length && !opts.inlineParts; i++) await moveFile(join(tmpDir, String(i)), join(dirname(outFile), String(i)));
        await moveFile(sbTmp, outFile);
        return stats(dirname(outFile));
      }
      await fsp.chmod(tmpDir, 0o755);
      const dest = join(repo.path, relDir);
      await fsp.mkdir(dirname(dest), { recursive: true });
      const old = `${tmpDir}.old`;
      let replaced = false;
      try {
        await fsp.rename(dest, old);
        replaced = true;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      }
      await fsp.rename(tmpDir, dest);
      if (replaced) await fsp.rm(old, { recursive: true, force: true });
      if (opts.updateIndex !== false) await reindexDeltas(repo, { to });
      return stats(relDir);
    } catch (e) {
      await Promise.all(inflight);
      throw e;
    } finally {
      await pool.close();
      await fsp.rm(tmpDir, { recursive: true, force: true });
    }
  });
}

/** Rename `from` to `to`, copying (then syncing and removing) across filesystems. */
async function moveFile(from: string, to: string): Promise<void> {
  try {
    await fsp.rename(from, to);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EXDEV') throw e;
    const tmp = `${to}.${process.pid}.tmp`;
    await fsp.copyFile(from, tmp);
    const fh = await fsp.open(tmp, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fsp.rename(tmp, to);
    await fsp.rm(from, { force: true });
  }
}
