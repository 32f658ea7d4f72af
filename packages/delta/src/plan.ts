/**
 * The delta planner (spec static-deltas.md section 9): which objects a static delta carries and
 * how each one goes — as a fallback (an ordinary object fetched apart), a bsdiff patch, rollsum
 * copies, a copy patch out of a FROM file of another name, or spliced whole.
 *
 * The objects are those reachable from TO that FROM does not have (all of them for a
 * from-scratch delta), minus the TO commit (it travels in the superblock). Modified files are
 * paired with a FROM file of the same (or same-stem) basename and similar size; a pair that
 * bsdiff may take becomes a bsdiff patch. The other modified files are written as rollsum copies
 * exactly when ostree would: with ostree's pairing and its measure of matching chunks
 * (rollsum.ts), so that `--disable-bsdiff` and `--max-bsdiff-size` give ostree's decisions, and
 * the statistics ostree prints agree. (ostree tries rollsum before bsdiff; Larch diffs first, as
 * a bsdiff patch is smaller.) Large new files with no such pair are matched by content against
 * the FROM files (sampled window hashes): when one shares enough (an apt `Translation-en` and the
 * `Packages` file naming the same packages), the new file becomes a copy patch (copydiff.ts).
 *
 * The plan also fixes the order the part builder (part-builder.ts) fills parts in: within each
 * kind, similar content sits together (ELF files first, then by extension and name), which lets
 * xz find more redundancy; ostree's order there is its hash table's. Reads objects only; no lock
 * of its own (generate.ts holds the repository's shared lock).
 */
import { promises as fsp } from 'node:fs';
import { LarchError, S_IFLNK, S_IFMT, fileHeader, type Checksum, type FileMeta, type ObjectType, type Repo } from '@larch/core-store';
import type { FallbackEntry } from './format.js';
import { ContentAnchors } from './copydiff.js';
import { chunks as rollsumChunks, ostreeRollsumStats, ostreeTakesRollsum, rollsumMatches, type Match, type OstreeRollsumStats } from './rollsum.js';
import type { GenerateEvent } from './generate.js';

export interface TreeIndex {
  /** Each content object and the first name it was found under. */
  files: Map<Checksum, string>;
  /** Every name of each content object (ostree pairs files by any of their names). */
  names: Map<Checksum, string[]>;
  meta: Map<string, ObjectType>;
}

export async function walkCommit(repo: Repo, commit: Checksum): Promise<TreeIndex> {
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

export async function readContent(repo: Repo, checksum: Checksum, into?: { buf: Buffer; offset: number }): Promise<{ meta: FileMeta; data: Buffer }> {
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

export const ELF_MAGIC = 0x7f454c46;

export async function isElf(repo: Repo, checksum: Checksum): Promise<boolean> {
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
export const CONTENT_PAIR_SHARE = 0.05;

const ext = (name: string): string => {
  const i = name.lastIndexOf('.');
  return i > 0 ? name.slice(i + 1) : '';
};
/** The text before the first '.', when there is such text and a dot (ostree's fuzzy name match needs both). */
const stem = (name: string): string | null => {
  const i = name.indexOf('.');
  return i > 0 ? name.slice(0, i) : null;
};

export interface NewFile {
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
export function compareByRollsum(old: Uint8Array, nw: Uint8Array): { take: boolean; matches: Match[]; stats: OstreeRollsumStats } {
  const oc = rollsumChunks(old);
  const nc = rollsumChunks(nw);
  const stats = ostreeRollsumStats(old, nw, oc, nc);
  if (!ostreeTakesRollsum(stats)) return { take: false, matches: [], stats };
  return { take: true, matches: rollsumMatches(old, nw, oc, nc).matches, stats };
}

/** Size and metadata of content objects, looked up once each. */
export type FileInfo = (c: Checksum) => Promise<{ meta: FileMeta; size: number }>;

function fileInfo(repo: Repo): { info: FileInfo; sizeOf: Map<Checksum, { meta: FileMeta; size: number }> } {
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
  return { info, sizeOf };
}

/** Counts the files written as rollsum copies (the planner's and the part builder's), reporting each. */
export class RollsumTally {
  count = 0;
  size = 0;
  constructor(private readonly onEvent: ((e: GenerateEvent) => void) | undefined) {}

  record(f: NewFile, stats: OstreeRollsumStats): void {
    this.count++;
    this.size += stats.matchSize;
    this.onEvent?.({ type: 'rollsum', from: f.pair!, to: f.checksum, ...stats });
  }
}

/** What the planner decided, in the order the part builder writes it. */
export interface DeltaPlan {
  /** New dirtree and dirmeta objects, dirtrees first, each kind by checksum. */
  meta: Array<[Checksum, ObjectType]>;
  /** Files copied out of a FROM file of another name, each in a part of its own. */
  copyPaired: NewFile[];
  /** Files patched out of their pair: bsdiff, or the rollsum copies already planned (`rollsum` set). */
  paired: NewFile[];
  /** How many of `paired` are bsdiff candidates. */
  bsdiffTotal: number;
  /** Plain files larger than a part, largest first: each sits alone in its part. */
  huge: NewFile[];
  /** The other plain files, ELF first, then by extension and name. */
  plain: NewFile[];
  links: NewFile[];
  fallbacks: FallbackEntry[];
  /** Object stream size (header included) of each fallback, for its event. */
  fallbackStreamSize: Map<Checksum, number>;
  /** New regular files ostree pairs by name (its `modified:`). */
  modified: number;
}

export interface PlanOptions {
  from: Checksum | null;
  to: Checksum;
  /** Bytes; 0 disables fallbacks. */
  minFallback: number;
  /** Bytes: largest old + new pair diffed. */
  maxBsdiff: number;
  /** Bytes: target part size. */
  maxChunk: number;
  disableBsdiff: boolean;
  onEvent?: (event: GenerateEvent) => void;
}

/**
 * Plan the delta FROM→TO (see the file comment). Emits the `reachable`, `rollsum` and
 * `rollsum-planned` events. Throws OBJECT_MISSING when FROM is not in the repository.
 */
export async function planDelta(repo: Repo, opts: PlanOptions, tally: RollsumTally): Promise<DeltaPlan> {
  const { from, to } = opts;
  if (from !== null && !(await repo.hasObject('commit', from))) {
    throw new LarchError('OBJECT_MISSING', `Commit ${from}, which is the delta source, is not in repository`, { checksum: from });
  }
  const toIdx = await walkCommit(repo, to);
  const fromIdx = from === null ? null : await walkCommit(repo, from);
  const { info, sizeOf } = fileInfo(repo);

  // New metadata (dirtree/dirmeta) and content.
  const newMeta: Array<[Checksum, ObjectType]> = [];
  for (const [c, t] of toIdx.meta) if (!fromIdx?.meta.has(c)) newMeta.push([c, t]);
  const newFiles: NewFile[] = [];
  for (const [c, name] of toIdx.files) {
    if (fromIdx?.files.has(c)) continue;
    const { meta, size } = await info(c);
    newFiles.push({ checksum: c, name, meta, size, pair: null });
  }
  if (fromIdx) await pairByName(newFiles, fromIdx, info);
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
  if (fromIdx && !opts.disableBsdiff) await pairByContent(repo, newFiles, fromIdx, info, opts.maxBsdiff);

  // A pair that bsdiff may take (unless disabled, old + new at most --max-bsdiff-size) is
  // diffed. The others are written as rollsum copies when ostree would (at least half of the new
  // chunks found, by ostree's measure), whatever their size, so that --disable-bsdiff and
  // --max-bsdiff-size give ostree's rollsum files; else they are plain files. (ostree tries
  // rollsum first for every pair; Larch diffs first, as a bsdiff patch is smaller.)
  const bsdiffable = (f: NewFile): boolean => f.pair !== null && !opts.disableBsdiff && sizeOf.get(f.pair)!.size + f.size <= opts.maxBsdiff;
  for (const f of newFiles) {
    const pair = ostreePairs.get(f.checksum);
    if (pair === undefined || bsdiffable(f)) continue;
    // ostree drops a pair whose FROM file a bare-user client could not read.
    const old = sizeOf.get(pair)!;
    if ((old.meta.mode & 0o004) === 0 || f.size > ROLLSUM_MAX_FILE || old.size > ROLLSUM_MAX_FILE) continue;
    const r = compareByRollsum((await readContent(repo, pair)).data, (await readContent(repo, f.checksum)).data);
    if (!r.take) continue;
    f.pair = pair;
    f.rollsum = { matches: r.matches, stats: r.stats };
    tally.record(f, r.stats);
  }
  opts.onEvent?.({ type: 'rollsum-planned', rollsum: tally.count, modified });
  return { ...(await orderForParts(repo, newFiles, bsdiffable, opts)), meta: sortMeta(newMeta), modified };
}

/** Dirtrees first, then dirmetas, each kind by checksum. */
function sortMeta(meta: Array<[Checksum, ObjectType]>): Array<[Checksum, ObjectType]> {
  return meta.sort((a, b) => (a[1] === b[1] ? (a[0] < b[0] ? -1 : 1) : a[1] === 'dirtree' ? -1 : 1));
}

/**
 * Similar-file pairing for bsdiff, by ostree's rules (`_ostree_delta_compute_similar_objects`)
 * with three deliberate differences: among several candidates Larch takes the closest in size
 * (ostree the smallest, often another file of the same name); it skips FROM files that are not
 * world-readable while choosing (ostree chooses, then drops the pair); and it leaves out more
 * compressed names (ostree only *.xz and *.bz2). ostree's own pairs decide rollsum.
 */
async function pairByName(newFiles: NewFile[], fromIdx: TreeIndex, info: FileInfo): Promise<void> {
  const fromByName = new Map<string, Checksum[]>();
  const fromByStem = new Map<string, Checksum[]>();
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

/**
 * Content pairing: large files that found no pair by name, against the FROM file that shares the
 * most sampled windows with them (say an apt Translation-en and the Packages file naming the same
 * packages); copied with exact-match copy diffs.
 */
async function pairByContent(repo: Repo, newFiles: NewFile[], fromIdx: TreeIndex, info: FileInfo, maxBsdiff: number): Promise<void> {
  const eligible = async (c: Checksum, name: string): Promise<boolean> => {
    const o = await info(c);
    return (o.meta.mode & S_IFMT) !== S_IFLNK && (o.meta.mode & 0o004) !== 0 && o.size >= CONTENT_PAIR_MIN && !COMPRESSED.test(name) && !(await isElf(repo, c));
  };
  const wanted: NewFile[] = [];
  for (const f of newFiles) if (f.pair === null && f.size <= maxBsdiff && (await eligible(f.checksum, f.name))) wanted.push(f);
  if (wanted.length === 0) return;
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

/**
 * Sort the new files into the kinds the part builder writes, in its order. Fallbacks: large
 * plain regular files go out as ordinary objects.
 */
async function orderForParts(
  repo: Repo,
  newFiles: NewFile[],
  bsdiffable: (f: NewFile) => boolean,
  opts: PlanOptions,
): Promise<Omit<DeltaPlan, 'meta' | 'modified'>> {
  const fallbacks: FallbackEntry[] = [];
  const fallbackStreamSize = new Map<Checksum, number>();
  const plain: NewFile[] = [];
  const paired: NewFile[] = [];
  const links: NewFile[] = [];
  for (const f of newFiles) {
    if ((f.meta.mode & S_IFMT) === S_IFLNK) links.push(f);
    else if (f.rollsum !== undefined || bsdiffable(f)) paired.push(f);
    else if (opts.minFallback > 0 && fileHeader(f.meta).length + f.size > opts.minFallback) {
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
  // Files larger than a part sit alone in their part whatever the order (see part-builder.ts):
  // they go first among the plain files, so that the parts around them stay whole.
  const huge = plain.filter((f) => f.size > opts.maxChunk).sort((a, b) => b.size - a.size || (a.checksum < b.checksum ? -1 : 1));
  const small = plain.filter((f) => f.size <= opts.maxChunk);
  small.sort((a, b) => (a.elf === b.elf ? byContent(a, b) : a.elf ? -1 : 1));
  paired.sort(byContent);
  links.sort(byContent);
  const copyPaired = paired.filter((f) => f.pairKind === 'content');
  const patched = paired.filter((f) => f.pairKind !== 'content');
  return {
    copyPaired,
    paired: patched,
    bsdiffTotal: patched.filter((f) => f.rollsum === undefined).length,
    huge,
    plain: small,
    links,
    fallbacks,
    fallbackStreamSize,
  };
}
