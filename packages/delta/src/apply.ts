/**
 * Applying a static delta to a repository: the op-stream interpreter and the part loop shared by
 * offline application (`static-delta apply-offline`) and by pulls.
 *
 * Trust model: every byte of the superblock and of the parts is hostile until checked. Stored
 * parts must match the size and SHA-256 of their header before they are decompressed; the xz
 * decoder's output is capped (decompression bomb); every op argument is bounds-checked against
 * the payload, the mode/xattr tables and the declared object size; every object is checksummed
 * and must equal the name the header lists before it is staged, and objects are named only by
 * those validated 32-byte checksums (never by any path taken from the delta). Objects are staged
 * in the repo's `tmp/` and published through core-store write batches, so a failure leaves
 * nothing half-written under `objects/`.
 *
 * Publication: `'at-end'` (offline default) publishes every part's objects only after all parts
 * ran, so a bad delta adds nothing; `'per-part'` (pulls) publishes after each part, so an
 * interrupted pull resumes at part granularity (parts whose objects are all present are skipped).
 * The TO commit (and its detached metadata) is written last, only after every part succeeded.
 */
import { createHash } from 'node:crypto';
import { closeSync, constants as fsc, openSync, promises as fsp, readSync, rmSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import {
  LarchError,
  MAX_SYMLINK_TARGET,
  S_IFLNK,
  S_IFMT,
  contentChecksumOf,
  fileChecksumMismatch,
  parseCommit,
  parseDirMeta,
  parseDirTree,
  validateFileMode,
  writeAllSync,
  type Checksum,
  type FileMeta,
  type Repo,
  type WriteBatch,
} from '@larch/core-store';
import type { Variant } from '@larch/gvariant';
import { bspatch } from './bsdiff.js';
import { COMPRESSION_NONE, COMPRESSION_XZ, decodePartBody, inlinePartBytes, type DeltaObject, type PartHeader, type Superblock } from './format.js';
import { deltaRelDir } from './names.js';
import {
  OP_BSPATCH,
  OP_CLOSE,
  OP_OPEN,
  OP_OPEN_SPLICE_AND_CLOSE,
  OP_SET_READ_SOURCE,
  OP_UNSET_READ_SOURCE,
  OP_WRITE,
  OpReader,
} from './ops.js';
import { xzDecompressBounded } from './xz.js';

/**
 * Default of {@link ApplyOptions.maxPartSize}: the largest decompressed part body accepted, and
 * the largest uncompressed size a part may declare. Part bodies are held in memory, so this is
 * also the most memory one part can take. ostree 2022.7 has no such limit (it inflates parts into
 * an anonymous temporary file); ostree 2026.3 capped part bodies at 512 MiB and 2026.4 dropped the
 * cap again, because a size predicted from the header broke real deltas (bsdiff patches can be
 * larger than the files they make). Our generator makes parts of up to about this size (a single
 * large file), so the default stays here; a caller with less memory lowers it.
 */
export const MAX_PART_BODY = 1024 * 1024 * 1024;
/** Objects up to this size are assembled in memory; larger ones stream through a file in `tmp/`. */
const IN_MEMORY_OBJECT = 4 * 1024 * 1024;
/** Largest read source loaded whole for bspatch. */
const MAX_BSPATCH_SOURCE = 1024 * 1024 * 1024;

export interface DeltaProgress {
  partsDone: number;
  partsTotal: number;
  /** Stored part bytes obtained so far (fetched or read) and in total for the parts that run. */
  bytesDone: number;
  bytesTotal: number;
}

/** Where the stored bytes of non-inline parts come from. */
export interface PartSource {
  /** The stored bytes of part `index` (at most `header.size` bytes are accepted). */
  readPart(index: number, header: PartHeader): Promise<Uint8Array>;
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

function corrupt(msg: string, data: Record<string, unknown> = {}): LarchError {
  return new LarchError('OBJECT_CORRUPTED', msg, data);
}

/**
 * Decompression bound for a part: min(what its header declares, `max`). The header's usize is
 * the size of the objects the part makes, not of its body, so the declared bound leaves room for
 * op streams, tables and patches (twice usize, 1 KiB per object, 1 MiB). The declared size can
 * lower the bound but never raise it: a usize above `max` is refused by {@link checkDeclaredSizes}
 * (and by {@link unpackPart}), and the bound is at most `max` whatever the header says.
 */
export function partBodyLimit(h: PartHeader, max: number = MAX_PART_BODY): number {
  return Math.min(max, h.usize * 2 + h.objects.length * 1024 + 1024 * 1024);
}

/** Largest stored size a part may declare: an uncompressed body of `max` bytes, or its xz stream (which adds a little). */
export function maxStoredPartSize(max: number = MAX_PART_BODY): number {
  return max + Math.ceil(max / 1024) + 64 * 1024;
}

function assertPartSizeLimit(max: number): void {
  if (!Number.isSafeInteger(max) || max < 0) throw new RangeError(`maxPartSize must be a non-negative integer, got ${max}`);
}

/**
 * Refuse a part whose header declares more than `max` uncompressed bytes, or a stored size no
 * body of `max` bytes could need. `what` names the part ("part 3").
 */
export function checkDeclaredSize(h: PartHeader, what: string, max: number = MAX_PART_BODY): void {
  assertPartSizeLimit(max);
  if (h.usize > max) {
    throw new LarchError('LIMIT_EXCEEDED', `Static delta ${what} declares ${h.usize} uncompressed bytes, more than the limit of ${max}`, { part: what, declared: h.usize, limit: max });
  }
  const stored = maxStoredPartSize(max);
  if (h.size > stored) {
    throw new LarchError('LIMIT_EXCEEDED', `Static delta ${what} declares a stored size of ${h.size} bytes, more than the limit of ${stored}`, { part: what, declared: h.size, limit: stored });
  }
}

/** {@link checkDeclaredSize} for every part of a superblock, before anything is read or fetched. */
export function checkDeclaredSizes(sb: Superblock, max: number = MAX_PART_BODY): void {
  sb.parts.forEach((h, i) => checkDeclaredSize(h, `part ${i}`, max));
}

/**
 * Decode stored part bytes (compression byte + payload) into the body bytes, bounded by
 * {@link partBodyLimit}(h, max). Compression `0` and `'x'` (xz) only, as ostree: any other byte
 * ('g' included, which old ostree documents mention but never implemented) is refused unread.
 */
export async function unpackPart(stored: Uint8Array, h: PartHeader, what: string, max: number = MAX_PART_BODY): Promise<Uint8Array> {
  checkDeclaredSize(h, what, max);
  if (stored.length === 0) throw corrupt(`Truncated static delta ${what}: empty`);
  const kind = stored[0];
  const rest = stored.subarray(1);
  const limit = partBodyLimit(h, max);
  if (kind === COMPRESSION_NONE) {
    if (rest.length > limit) throw new LarchError('LIMIT_EXCEEDED', `Static delta ${what} is larger than its limit of ${limit} bytes`, { limit });
    return rest;
  }
  if (kind === COMPRESSION_XZ) return xzDecompressBounded(rest, limit, what);
  throw corrupt(`Invalid compression type '${kind}' in static delta ${what}`);
}

/** Check stored part bytes against the size and checksum of the header. */
export function verifyPart(stored: Uint8Array, h: PartHeader, what: string): void {
  if (stored.length !== h.size) throw corrupt(`Static delta ${what} is ${stored.length} bytes, expected ${h.size} (truncated or corrupt)`, { size: stored.length, expected: h.size });
  const actual = createHash('sha256').update(stored).digest('hex');
  if (actual !== h.checksum) throw corrupt(`Checksum mismatch for static delta ${what}: expected ${h.checksum}, actual ${actual}`, { expected: h.checksum, actual });
}

interface ReadSource {
  checksum: Checksum;
  /** The checksum as the 32 bytes the ops name it by. */
  raw: Buffer;
  fd: number;
  size: number;
  tmp: string | null;
  /** A window of the source read ahead for small writes: copy ops read a few dozen bytes each, mostly moving forward. */
  window: Buffer | null;
  windowAt: number;
  windowLen: number;
  /** Window misses so far: a source missed often is read whole (up to {@link SOURCE_WHOLE}). */
  misses: number;
}

/** Read-ahead window of a read source, and the largest write served from it. */
const SOURCE_WINDOW = 16 * 1024;
const SOURCE_WINDOW_WRITE = 4 * 1024;
/** A source that misses its window this often, and is no larger than SOURCE_WHOLE, is read whole instead. */
const SOURCE_MISSES = 64;
const SOURCE_WHOLE = 64 * 1024 * 1024;

interface OutObject {
  obj: DeltaObject;
  meta: FileMeta;
  size: number;
  written: number;
  skip: boolean;
  chunks: Buffer[];
  /** Where the bytes of an object too large to gather in memory go. */
  large: LargeSink | null;
  /** Small writes to `large` gathered into one (copy ops write a few dozen bytes at a time). */
  pend: Buffer | null;
  pendLen: number;
}

/** The staging of a large object, written a piece at a time. */
interface LargeSink {
  write(b: Uint8Array): void;
  /** Verify against the object's checksum and add it to the part's batch. */
  finish(): Promise<void>;
  abort(): void;
}

/**
 * Bare modes: straight into the object's staged file, hashed as written (core-store's
 * beginFileSync), never read back. Archive: into a plain tmp file, which core-store then hashes
 * and compresses into the `.filez`.
 */
function largeSink(repo: Repo, obj: DeltaObject, meta: FileMeta, batch: WriteBatch): LargeSink {
  if (repo.mode !== 'archive') {
    const w = repo.beginFileSync(meta);
    return {
      write: (b) => w.write(b),
      finish: () => {
        w.finish(obj.checksum, batch);
        return Promise.resolve();
      },
      abort: () => w.abort(),
    };
  }
  const tmp = repo.newTmpPath('delta');
  let fd = openSync(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o600);
  const abort = (): void => {
    if (fd >= 0) closeSync(fd);
    fd = -1;
    rmSync(tmp, { force: true });
  };
  return {
    write: (b) => writeAllSync(fd, b),
    finish: async () => {
      closeSync(fd);
      fd = -1;
      try {
        await repo.writeFile(meta, { path: tmp }, { expectedChecksum: obj.checksum, batch });
      } finally {
        abort();
      }
    },
    abort,
  };
}

/** Buffer for gathering small writes to a staged object. */
const WRITE_GATHER = 1 << 20;

/** Runs one part's op stream, staging its objects into `batch`. */
class PartRunner {
  private idx = 0;
  private src: ReadSource | null = null;
  /** The last read source unset, kept open: op streams switch between it and the payload often. */
  private idle: ReadSource | null = null;
  private out: OutObject | null = null;
  written = 0;
  private readonly reader: OpReader;

  constructor(
    private readonly repo: Repo,
    private readonly header: PartHeader,
    private readonly body: ReturnType<typeof decodePartBody>,
    private readonly batch: WriteBatch,
    private readonly what: string,
    /** Sources read whole, kept for the parts that follow (one at a time: the last one). */
    private readonly wholeSources: Map<Checksum, Buffer> = new Map(),
  ) {
    this.reader = new OpReader(body.ops, what);
  }

  private slice(offset: number, size: number): Uint8Array {
    const p = this.body.payload;
    if (offset > p.length || size > p.length - offset) {
      throw corrupt(`Static delta ${this.what}: op reads out of bounds (offset ${offset} size ${size}, payload ${p.length} bytes)`, { offset, size });
    }
    return p.subarray(offset, offset + size);
  }

  private nextObject(): DeltaObject {
    if (this.idx >= this.header.objects.length) throw corrupt(`Static delta ${this.what}: op stream produces more objects than the ${this.header.objects.length} listed`);
    return this.header.objects[this.idx];
  }

  private fileMeta(modeIdx: number, xattrIdx: number): FileMeta {
    const m = this.body.modes[modeIdx];
    const x = this.body.xattrs[xattrIdx];
    if (m === undefined) throw corrupt(`Static delta ${this.what}: mode index ${modeIdx} out of bounds (${this.body.modes.length} modes)`);
    if (x === undefined) throw corrupt(`Static delta ${this.what}: xattr index ${xattrIdx} out of bounds (${this.body.xattrs.length} xattr sets)`);
    const [uid, gid, mode] = m;
    validateFileMode(mode, `static delta ${this.what} mode`);
    return { uid, gid, mode, symlinkTarget: '', xattrs: x };
  }

  async run(signal?: AbortSignal): Promise<void> {
    try {
      while (!this.reader.done) {
        signal?.throwIfAborted();
        const op = this.reader.byte();
        switch (op) {
          case OP_OPEN_SPLICE_AND_CLOSE:
            await this.openSpliceClose();
            break;
          case OP_OPEN:
            this.open();
            break;
          case OP_WRITE:
            this.write();
            break;
          case OP_SET_READ_SOURCE: {
            const raw = this.slice(this.reader.varint(), 32);
            if (this.reuseSource(raw)) break;
            if (this.repo.mode !== 'archive') this.openSource(raw);
            else await this.inflateSource(raw);
            break;
          }
          case OP_UNSET_READ_SOURCE:
            this.parkSource();
            break;
          case OP_CLOSE:
            await this.close();
            break;
          case OP_BSPATCH:
            await this.bspatchOp();
            break;
          default:
            throw corrupt(`Unknown opcode ${op} in static delta ${this.what}`);
        }
      }
      if (this.out !== null) throw corrupt(`Static delta ${this.what}: op stream ends inside an open object`);
      if (this.idx !== this.header.objects.length) throw corrupt(`Static delta ${this.what}: op stream produced ${this.idx} of ${this.header.objects.length} objects`);
    } finally {
      this.parkSource();
      this.releaseSource(this.idle);
      this.idle = null;
      this.discardOut();
    }
  }

  /**
   * Store a content object whose bytes are in memory. Bare modes: hash here and stage
   * synchronously (one open/write/close); archive: core-store compresses and hashes while staging.
   * Either way the object must hash to the name the part lists before it can be published.
   */
  private async storeContent(obj: DeltaObject, meta: FileMeta, bytes: Uint8Array): Promise<void> {
    if (this.repo.mode !== 'archive') {
      const actual = contentChecksumOf(meta, (meta.mode & S_IFMT) === S_IFLNK ? new Uint8Array(0) : bytes);
      if (actual !== obj.checksum) {
        throw fileChecksumMismatch(obj.checksum, actual);
      }
      this.repo.stageVerifiedFileSync(meta, bytes, obj.checksum, this.batch);
      return;
    }
    await this.repo.writeFile(meta, { bytes }, { expectedChecksum: obj.checksum, batch: this.batch });
  }

  private async openSpliceClose(): Promise<void> {
    const obj = this.nextObject();
    if (obj.type !== 'file') {
      const size = this.reader.varint();
      const offset = this.reader.varint();
      const bytes = this.slice(offset, size);
      const actual = createHash('sha256').update(bytes).digest('hex');
      if (actual !== obj.checksum) throw corrupt(`Corrupted ${obj.type} object in static delta ${this.what}; checksum expected='${obj.checksum}' actual='${actual}'`, { checksum: obj.checksum, actual });
      if (!this.repo.hasObjectSync(obj.type, obj.checksum)) {
        // Parsed first (names, lengths, normal form), so a malformed object is never stored; then
        // staged without a per-object fsync: the batch makes the whole part durable at once.
        try {
          if (obj.type === 'dirtree') parseDirTree(bytes);
          else if (obj.type === 'dirmeta') parseDirMeta(bytes);
          else parseCommit(bytes);
        } catch (e) {
          throw new LarchError('OBJECT_CORRUPTED', `Refusing to write invalid ${obj.type} object: ${(e as Error).message}`, { type: obj.type, checksum: obj.checksum }, { cause: e });
        }
        const tmp = this.repo.newTmpPath('delta-meta');
        this.repo.writeTmpSync(tmp, bytes);
        this.batch.add(tmp, obj.type, obj.checksum);
        this.written++;
      }
    } else {
      const meta = this.fileMeta(this.reader.varint(), this.reader.varint());
      const size = this.reader.varint();
      const offset = this.reader.varint();
      const bytes = this.slice(offset, size);
      if (!this.repo.hasObjectSync('file', obj.checksum)) {
        if ((meta.mode & S_IFMT) === S_IFLNK) {
          if (size === 0 || size > MAX_SYMLINK_TARGET || bytes.includes(0)) throw corrupt(`Static delta ${this.what}: invalid symlink target for object ${obj.checksum}`);
          meta.symlinkTarget = Buffer.from(bytes).toString('utf8');
          if (!Buffer.from(meta.symlinkTarget, 'utf8').equals(bytes)) throw corrupt(`Static delta ${this.what}: symlink target of ${obj.checksum} is not UTF-8`);
        }
        await this.storeContent(obj, meta, bytes);
        this.written++;
      }
    }
    this.idx++;
  }

  private open(): void {
    if (this.out !== null) throw corrupt(`Static delta ${this.what}: open while another object is open`);
    const obj = this.nextObject();
    if (obj.type !== 'file') throw corrupt(`Static delta ${this.what}: open of ${obj.type} object ${obj.checksum} (only content objects can be opened)`);
    const meta = this.fileMeta(this.reader.varint(), this.reader.varint());
    const size = this.reader.varint();
    if ((meta.mode & S_IFMT) !== (0o100000 as number)) throw corrupt(`Static delta ${this.what}: open of a non-regular file ${obj.checksum}`);
    const skip = this.repo.hasObjectSync('file', obj.checksum);
    const large = !skip && size > IN_MEMORY_OBJECT ? largeSink(this.repo, obj, meta, this.batch) : null;
    this.out = { obj, meta, size, written: 0, skip, chunks: [], large, pend: null, pendLen: 0 };
  }

  private append(b: Uint8Array): void {
    const out = this.out!;
    if (b.length > out.size - out.written) throw corrupt(`Static delta ${this.what}: write past the declared size ${out.size} of object ${out.obj.checksum}`);
    out.written += b.length;
    if (out.skip) return;
    if (out.large === null) {
      out.chunks.push(Buffer.from(b));
      return;
    }
    if (b.length < WRITE_GATHER / 16) {
      out.pend ??= Buffer.allocUnsafe(WRITE_GATHER);
      if (out.pendLen + b.length > WRITE_GATHER) this.flushOut(out);
      out.pend.set(b, out.pendLen);
      out.pendLen += b.length;
      return;
    }
    this.flushOut(out);
    out.large.write(b);
  }

  private flushOut(out: OutObject): void {
    if (out.pendLen === 0) return;
    out.large!.write(out.pend!.subarray(0, out.pendLen));
    out.pendLen = 0;
  }

  private write(): void {
    if (this.out === null) throw corrupt(`Static delta ${this.what}: write with no open object`);
    const size = this.reader.varint();
    const offset = this.reader.varint();
    if (this.src === null) {
      this.append(this.slice(offset, size));
      return;
    }
    const src = this.src;
    if (offset > src.size || size > src.size - offset) throw corrupt(`Static delta ${this.what}: write reads out of bounds of source object ${src.checksum} (offset ${offset} size ${size}, object ${src.size} bytes)`);
    if (size > this.out.size - this.out.written) throw corrupt(`Static delta ${this.what}: write past the declared size ${this.out.size} of object ${this.out.obj.checksum}`);
    if (size <= SOURCE_WINDOW_WRITE) {
      if (src.window === null || offset < src.windowAt || offset + size > src.windowAt + src.windowLen) {
        const whole = this.wholeSources.get(src.checksum);
        if (whole !== undefined && whole.length === src.size) {
          src.window = whole;
          src.windowAt = 0;
          src.windowLen = whole.length;
        } else if (++src.misses > SOURCE_MISSES && src.size <= SOURCE_WHOLE) {
          src.window = Buffer.allocUnsafeSlow(src.size);
          src.windowAt = 0;
          src.windowLen = readFull(src, src.window, src.size, 0);
          this.wholeSources.clear();
          this.wholeSources.set(src.checksum, src.window);
        } else {
          if (src.window === null || src.window.length !== SOURCE_WINDOW) src.window = Buffer.allocUnsafe(SOURCE_WINDOW);
          src.windowAt = offset;
          src.windowLen = readFull(src, src.window, Math.min(SOURCE_WINDOW, src.size - offset), offset);
        }
      }
      this.append(src.window.subarray(offset - src.windowAt, offset - src.windowAt + size));
      return;
    }
    const step = 1 << 20;
    let done = 0;
    while (done < size) {
      const n = Math.min(step, size - done);
      const buf = Buffer.allocUnsafe(n);
      readFull(src, buf, n, offset + done);
      this.append(buf);
      done += n;
    }
  }

  /** Make the current or the idle source the read source again if it is `raw`; false if neither is. */
  private reuseSource(raw: Uint8Array): boolean {
    if (this.src?.raw.equals(raw)) return true;
    if (this.idle?.raw.equals(raw) !== true) return false;
    [this.src, this.idle] = [this.idle, this.src];
    return true;
  }

  private sourceMissing(checksum: Checksum): (e: unknown) => never {
    return (e) => {
      if (e instanceof LarchError && e.code === 'OBJECT_MISSING') throw new LarchError('OBJECT_MISSING', `Static delta ${this.what}: read source object ${checksum}.file is not in the repository`, { checksum });
      throw e;
    };
  }

  /** Bare modes: open the source object itself, synchronously (a patched file each needs one). */
  private openSource(raw: Uint8Array): void {
    const checksum = Buffer.from(raw).toString('hex');
    this.parkSource();
    let opened: { fd: number; size: number };
    try {
      opened = this.repo.openRegularFileSync(checksum);
    } catch (e) {
      if (e instanceof LarchError && e.code === 'OBJECT_CORRUPTED' && e.data.detail === 'not a regular file') throw corrupt(`Static delta ${this.what}: read source ${checksum} is not a regular file`);
      return this.sourceMissing(checksum)(e);
    }
    this.src = { checksum, raw: Buffer.from(raw), fd: opened.fd, size: opened.size, tmp: null, window: null, windowAt: 0, windowLen: 0, misses: 0 };
  }

  /** Archive repos keep content compressed: inflate the source once into tmp/ for random access. */
  private async inflateSource(raw: Uint8Array): Promise<void> {
    const checksum = Buffer.from(raw).toString('hex');
    this.parkSource();
    const f = await this.repo.openFile(checksum).catch(this.sourceMissing(checksum));
    if ((f.meta.mode & S_IFMT) !== 0o100000) throw corrupt(`Static delta ${this.what}: read source ${checksum} is not a regular file`);
    const tmp = this.repo.newTmpPath('delta-src');
    const fh = await fsp.open(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o600);
    try {
      for await (const c of f.open() as AsyncIterable<Buffer>) await fh.write(c);
    } catch (e) {
      await fh.close();
      await fsp.rm(tmp, { force: true });
      throw e;
    }
    await fh.close();
    const fd = openSync(tmp, fsc.O_RDONLY);
    this.src = { checksum, raw: Buffer.from(raw), fd, size: f.size, tmp, window: null, windowAt: 0, windowLen: 0, misses: 0 };
  }

  /** Unset the read source, keeping it open as `idle` (and closing the previous idle one). */
  private parkSource(): void {
    const s = this.src;
    if (s === null) return;
    this.src = null;
    const prev = this.idle;
    this.idle = s;
    this.releaseSource(prev);
  }

  private releaseSource(s: ReadSource | null): void {
    if (s === null) return;
    closeSync(s.fd);
    if (s.tmp !== null) rmSync(s.tmp, { force: true });
  }

  private discardOut(): void {
    const o = this.out;
    this.out = null;
    o?.large?.abort();
  }

  private async close(): Promise<void> {
    const out = this.out;
    if (out === null) throw corrupt(`Static delta ${this.what}: close with no open object`);
    if (out.written !== out.size) throw corrupt(`Static delta ${this.what}: object ${out.obj.checksum} got ${out.written} bytes, declared ${out.size}`);
    if (!out.skip) {
      if (out.large !== null) {
        this.flushOut(out);
        const large = out.large;
        out.large = null;
        try {
          await large.finish();
        } catch (e) {
          large.abort();
          throw e;
        }
      } else {
        await this.storeContent(out.obj, out.meta, Buffer.concat(out.chunks, out.size));
      }
      this.written++;
    }
    this.discardOut();
    this.parkSource();
    this.idx++;
  }

  private async bspatchOp(): Promise<void> {
    const offset = this.reader.varint();
    const length = this.reader.varint();
    const patch = this.slice(offset, length);
    if (this.out === null) throw corrupt(`Static delta ${this.what}: bspatch with no open object`);
    if (this.src === null) throw corrupt(`Static delta ${this.what}: bspatch with no read source`);
    const src = this.src;
    if (src.size > MAX_BSPATCH_SOURCE) throw new LarchError('LIMIT_EXCEEDED', `Static delta ${this.what}: bspatch source ${src.checksum} too large`);
    const old = Buffer.allocUnsafe(src.size);
    readFull(src, old, src.size, 0);
    const remaining = this.out.size - this.out.written;
    bspatch(old, patch, remaining, (b) => this.append(b));
  }
}

/** Read `n` bytes of the source at `position` into the start of `buf`; returns `n`. */
function readFull(src: ReadSource, buf: Buffer, n: number, position: number): number {
  let got = 0;
  while (got < n) {
    const r = readSync(src.fd, buf, got, n - got, position + got);
    if (r === 0) throw corrupt(`Source object ${src.checksum} is shorter than its size`);
    got += r;
  }
  return n;
}

/** The stored bytes of part `i`: inline from the superblock metadata, or from `source`. */
async function partBytes(sb: Superblock, i: number, source: PartSource): Promise<{ bytes: Uint8Array; inline: boolean }> {
  const key = `${deltaRelDir(sb.from, sb.to)}/${i}`;
  const v = sb.metadata.find(([k]) => k === key)?.[1];
  if (v !== undefined) return { bytes: inlinePartBytes(v, `part ${i}`), inline: true };
  return { bytes: await source.readPart(i, sb.parts[i]), inline: false };
}

function isInline(sb: Superblock, i: number): boolean {
  const key = `${deltaRelDir(sb.from, sb.to)}/${i}`;
  return sb.metadata.some(([k]) => k === key);
}

/** The detached metadata of TO carried in the superblock, if any. */
export function superblockCommitMeta(sb: Superblock): Array<[string, Variant]> | null {
  const key = `${deltaRelDir(sb.from, sb.to)}/commitmeta`;
  const v = sb.metadata.find(([k]) => k === key)?.[1];
  if (v === undefined) return null;
  if (v.type !== 'a{sv}') throw corrupt(`Invalid detached metadata in static delta superblock: type ${v.type}`);
  return v.value as Array<[string, Variant]>;
}

/** True when every object of a part is already in the repository. */
export function partComplete(repo: Repo, h: PartHeader): boolean {
  return h.objects.every((o) => repo.hasObjectSync(o.type, o.checksum));
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

