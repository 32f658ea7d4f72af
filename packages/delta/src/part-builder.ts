/**
 * The part builder (spec static-deltas.md sections 4-6): writes the planned objects (plan.ts)
 * into parts — the mode and xattr tables, the payload and the op stream of each — and compresses
 * the finished parts in the background.
 *
 * Parts are filled as ostree fills them, so that a delta has ostree's number of parts: one part at
 * a time, in the order metadata, patched files, plain files, symlinks. An object spliced whole
 * starts a new part when the part already holds an object and its payload plus the object's size
 * would exceed `max-chunk-size` (10^6-byte MB); a patched file starts one when the payload already
 * exceeds it. (So a file larger than `max-chunk-size` always sits alone in its part.) A file copied
 * from a FROM file of a different name (a copy patch) is Larch's own and takes a part of its own,
 * built on a one-shot worker and compressed with text settings.
 *
 * Memory: at most one part being filled, `concurrency` parts being compressed, and one old/new
 * pair per bsdiff worker. Parts go to files in the generation's private directory (or, inline,
 * into the superblock's metadata); the superblock writer publishes them.
 */
import { createHash } from 'node:crypto';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { S_IFLNK, S_IFMT, deltaRelPath, type Checksum, type FileMeta, type ObjectType, type Repo, type Xattr } from '@larch/core-store';
import type { Variant } from '@larch/gvariant';
import { encodePartBodyChunks, partBodyFrame, inlinePartVariant, COMPRESSION_NONE, COMPRESSION_XZ, type DeltaObject, type PartHeader } from './format.js';
import { ByteSink, ChunkSink, OP_BSPATCH, OP_CLOSE, OP_OPEN, OP_OPEN_SPLICE_AND_CLOSE, OP_SET_READ_SOURCE, OP_UNSET_READ_SOURCE, OP_WRITE } from './ops.js';
import type { BsdiffPool } from './pool.js';
import { runCopyPart } from './copy-part.js';
import type { Match } from './rollsum.js';
import { xzCompress } from './xz.js';
import type { GenerateEvent } from './generate.js';
import { CONTENT_PAIR_SHARE, ELF_MAGIC, compareByRollsum, readContent, type DeltaPlan, type NewFile, type RollsumTally } from './plan.js';

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
export class PartBuilder {
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

/** How the part writer compresses and where it puts parts. */
export interface PartWriterOptions {
  repo: Repo;
  from: Checksum | null;
  to: Checksum;
  /** The generation's private directory: part files are written there as `0`, `1`, … */
  tmpDir: string;
  maxChunk: number;
  concurrency: number;
  compression: 'xz' | 'none';
  preset: number;
  extreme: boolean;
  dictCap: number;
  /** The caller gave an xz preset: use it as is (no sized dictionary, no text settings). */
  presetGiven: boolean;
  inlineParts: boolean;
  x86Filter: 'auto' | 'always' | 'never';
  pool: BsdiffPool;
  tally: RollsumTally;
  onEvent?: (event: GenerateEvent) => void;
  /** Where the time goes (ms), added to as parts are written. */
  timings: { waitBsdiff: number; waitCompress: number };
}

/** The parts written, for the superblock and the statistics. */
export interface PartsWritten {
  headers: PartHeader[];
  /** `deltas/…/N` → part bytes, for inline parts. */
  inlineVariants: Array<[string, Variant]>;
  objects: number;
  bsdiff: number;
  copy: number;
  /** Part file bytes on disk (0 for inline parts). */
  fileSize: number;
  /** Stored bytes of all parts, inline ones included. */
  partSize: number;
  usize: number;
  /** Repository bytes of the objects written whole into the parts (ostree's `loose=`). */
  looseSize: number;
}

/** Fills parts one at a time and compresses finished ones, at most `concurrency` at once. */
export class PartWriter {
  private readonly headers: PartHeader[] = [];
  private readonly inlineVariants: Array<[string, Variant]> = [];
  private readonly inflight = new Set<Promise<void>>();
  private firstError: unknown = null;
  private bsdiffCount = 0;
  private copyCount = 0;
  private objectCount = 0;
  private fileSize = 0;
  private partSize = 0;
  private totalUsize = 0;
  // Objects written whole into the parts, for the `loose=` figure (their sizes are looked up as
  // the parts are built, off the main path).
  private readonly loose: Array<[ObjectType, Checksum]> = [];
  private readonly looseSizes: Array<Promise<number>> = [];
  // Parts are reported in part order, as each is compressed (they finish in any order).
  private readonly partDone: boolean[] = [];
  private partsReported = 0;
  private cur = new PartBuilder();

  constructor(private readonly o: PartWriterOptions) {}

  /** Write every planned object into parts; wait for all compression. Throws the first failure. */
  async write(plan: DeltaPlan): Promise<PartsWritten> {
    try {
      await this.writeCopyPairs(plan.copyPaired);
      for (const [c, t] of plan.meta) {
        const bytes = await this.o.repo.readMetadata(t as 'dirtree' | 'dirmeta', c);
        await this.room(bytes.length);
        this.cur.addMetadata(t, c, bytes);
        this.wrote(t, c);
      }
      await this.writePaired(plan.paired, plan.bsdiffTotal);
      // No diff is left: release the workers (and their memory) before the plain files.
      await this.o.pool.close();
      for (const fb of plan.fallbacks) this.o.onEvent?.({ type: 'fallback', checksum: fb.checksum, size: plan.fallbackStreamSize.get(fb.checksum)! });
      await this.writePlain(plan);
      // At least one part always exists.
      if (this.cur.objects.length > 0 || this.headers.length === 0) await this.closePart(this.cur);
      this.flushLoose();
      const tw = performance.now();
      await Promise.all(this.inflight);
      this.o.timings.waitCompress += performance.now() - tw;
      if (this.firstError !== null) throw this.firstError;
    } catch (e) {
      await Promise.all(this.inflight);
      throw e;
    }
    return {
      headers: this.headers,
      inlineVariants: this.inlineVariants,
      objects: this.objectCount,
      bsdiff: this.bsdiffCount,
      copy: this.copyCount,
      fileSize: this.fileSize,
      partSize: this.partSize,
      usize: this.totalUsize,
      looseSize: (await Promise.all(this.looseSizes)).reduce((n, x) => n + x, 0),
    };
  }

  /**
   * Content pairs first, each in a part of its own: they are the largest and slowest to
   * compress, so their compression starts at once and overlaps with everything else.
   */
  private async writeCopyPairs(files: readonly NewFile[]): Promise<void> {
    const { repo, timings } = this.o;
    for (const f of files) {
      const tw = performance.now();
      const old = (await readContent(repo, f.pair!)).data;
      const nw = (await readContent(repo, f.checksum)).data;
      const { body } = await runCopyPart({ old, nw, from: f.pair!, uid: f.meta.uid, gid: f.meta.gid, mode: f.meta.mode, xattrs: f.meta.xattrs, minShare: CONTENT_PAIR_SHARE });
      timings.waitBsdiff += performance.now() - tw;
      if (body !== null) {
        this.copyCount++;
        await this.submit({ version: 0, checksum: '', size: 0, usize: f.size, objects: [{ type: 'file', checksum: f.checksum }] }, [body], false, true);
      } else await this.closeSingle(f);
      if (this.firstError !== null) throw this.firstError;
    }
  }

  /** Paired files: bsdiff (on workers), or the rollsum copies planned. */
  private async writePaired(paired: readonly NewFile[], bsdiffTotal: number): Promise<void> {
    const { repo, timings, pool } = this.o;
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
        await this.room(null);
        this.cur.addRollsum(f.checksum, f.meta, nw, f.pair!, f.rollsum.matches);
        continue;
      }
      if (p !== null) {
        this.o.onEvent?.({ type: 'bsdiff', index: bsdiffIndex++, total: bsdiffTotal });
        const tw = performance.now();
        const patch = await p;
        timings.waitBsdiff += performance.now() - tw;
        // A raw patch is about the new file's size (diff + extra bytes, mostly zeros in the diff).
        // A larger one means many short matches — little in common, or a rebuilt binary whose
        // addresses all moved, which still compresses far better than the file: a quick xz
        // pass over both decides.
        if (patch.length > f.size * 1.05 + 64) nw = (await readContent(repo, f.checksum)).data;
        if (nw === null || (await patchPays(patch, nw))) {
          await this.room(null);
          this.cur.addBsdiff(f.checksum, f.meta, f.size, f.pair!, patch);
          this.bsdiffCount++;
          continue;
        }
      }
      // The patch does not pay: rollsum copies when ostree's measure would take them, else
      // the file whole.
      nw ??= (await readContent(repo, f.checksum)).data;
      const r = compareByRollsum((await readContent(repo, f.pair!)).data, nw);
      if (r.take) {
        this.o.tally.record(f, r.stats);
        await this.room(null);
        this.cur.addRollsum(f.checksum, f.meta, nw, f.pair!, r.matches);
      } else {
        await this.room(nw.length);
        this.cur.addSpliced(f.checksum, f.meta, nw);
        this.wrote('file', f.checksum);
      }
    }
  }

  /** Files larger than a part (alone in theirs), then plain files, ELF ones first, then symlinks. */
  private async writePlain(plan: DeltaPlan): Promise<void> {
    for (const f of plan.huge) {
      await this.room(f.size);
      await this.closeSingle(f);
      if (this.firstError !== null) throw this.firstError;
    }
    for (const f of plan.plain) {
      await this.room(f.size);
      const { data } = await readContent(this.o.repo, f.checksum);
      this.cur.addSpliced(f.checksum, f.meta, data, f.elf === true);
      this.wrote('file', f.checksum);
    }
    for (const f of plan.links) {
      await this.room(0);
      this.cur.addSpliced(f.checksum, f.meta, Buffer.from(f.meta.symlinkTarget, 'utf8'));
      this.wrote('file', f.checksum);
    }
  }

  private wrote(type: ObjectType, checksum: Checksum): void {
    this.loose.push([type, checksum]);
    if (this.loose.length >= 1024) this.flushLoose();
  }

  private flushLoose(): void {
    const p = storageSize(this.o.repo, this.loose.splice(0));
    p.catch(() => undefined);
    this.looseSizes.push(p);
  }

  private reportParts(): void {
    while (this.partDone[this.partsReported] === true) {
      const h = this.headers[this.partsReported];
      this.o.onEvent?.({ type: 'part', index: this.partsReported, objects: h.objects.length, size: h.size, usize: h.usize });
      this.partsReported++;
    }
  }

  /**
   * Register part `header` and compress `body` in the background (at most `concurrency` at once).
   * A `text` part (a copy patch: mostly text with zero runs) gets lc=4 pb=0.
   */
  private async submit(header: PartHeader, body: Uint8Array[], x86: boolean, text = false): Promise<void> {
    const o = this.o;
    const index = this.headers.length;
    this.headers.push(header);
    this.objectCount += header.objects.length;
    this.totalUsize += header.usize;
    const job = (async () => {
      const bodyLength = body.reduce((n, c) => n + c.length, 0);
      let dict = 1 << 20;
      while (dict < bodyLength && dict < o.dictCap) dict *= 2;
      const packed = o.compression === 'xz' ? await xzCompress(body, o.preset, o.extreme, x86, o.presetGiven ? undefined : Math.min(dict, o.dictCap), text && !o.presetGiven) : Buffer.concat(body);
      const stored = Buffer.allocUnsafe(packed.length + 1);
      stored[0] = o.compression === 'xz' ? COMPRESSION_XZ : COMPRESSION_NONE;
      packed.copy(stored, 1);
      header.checksum = createHash('sha256').update(stored).digest('hex');
      header.size = stored.length;
      this.partSize += stored.length;
      if (o.inlineParts) this.inlineVariants[index] = [deltaRelPath(o.from, o.to, index), inlinePartVariant(stored)];
      else {
        await fsp.writeFile(join(o.tmpDir, String(index)), stored, { mode: 0o644 });
        this.fileSize += stored.length;
      }
      this.partDone[index] = true;
      this.reportParts();
    })().then(collectGarbage, (e: unknown) => {
      this.firstError ??= e;
    });
    this.inflight.add(job);
    void job.finally(() => this.inflight.delete(job));
    const tw = performance.now();
    while (this.inflight.size >= o.concurrency) await Promise.race(this.inflight);
    o.timings.waitCompress += performance.now() - tw;
  }

  private async closePart(b: PartBuilder): Promise<void> {
    const header: PartHeader = { version: 0, checksum: '', size: 0, usize: b.usize, objects: b.objects };
    // Parts that are mostly machine code compress better behind the x86 branch filter;
    // any liblzma .xz decoder (ostree's included) undoes it.
    const x86 = this.o.x86Filter === 'always' || (this.o.x86Filter !== 'never' && b.elfBytes * 2 > b.payload.length);
    await this.submit(header, encodePartBodyChunks(b.modes, b.xattrs, b.payload.parts(), b.ops.view()), x86);
  }

  /** A part holding one large plain file: its body is laid out around the file's bytes, read in place (one copy in memory). */
  private async closeSingle(f: NewFile): Promise<void> {
    const ops = new ByteSink().byte(OP_OPEN_SPLICE_AND_CLOSE).varint(0).varint(0).varint(f.size).varint(0).view();
    const { head, tail } = partBodyFrame([[f.meta.uid, f.meta.gid, f.meta.mode]], [f.meta.xattrs], f.size, ops);
    const body = Buffer.allocUnsafeSlow(head.length + f.size + tail.length);
    head.copy(body, 0);
    await readContent(this.o.repo, f.checksum, { buf: body, offset: head.length });
    tail.copy(body, head.length + f.size);
    this.wrote('file', f.checksum);
    const x86 = this.o.x86Filter === 'always' || (this.o.x86Filter !== 'never' && f.elf === true);
    await this.submit({ version: 0, checksum: '', size: 0, usize: f.size, objects: [{ type: 'file', checksum: f.checksum }] }, [body], x86);
  }

  /**
   * Start a new part where ostree does: before an object spliced whole (`size` bytes of payload)
   * when the part holds one already and would outgrow `max-chunk-size`, or (`size` null) before a
   * patched file when the payload has outgrown it already.
   */
  private async room(size: number | null): Promise<void> {
    const over = size === null ? this.cur.payload.length > this.o.maxChunk : this.cur.payload.length + size > this.o.maxChunk;
    if (this.cur.objects.length > 0 && over) {
      const full = this.cur;
      this.cur = new PartBuilder();
      await this.closePart(full);
    }
    if (this.firstError !== null) throw this.firstError;
  }
}
