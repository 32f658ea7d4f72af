/**
 * The op interpreter (spec static-deltas.md section 5; the ops are defined in ops.ts): runs one
 * part's op stream over its payload and mode/xattr tables, and stages the objects it makes.
 *
 * Every op argument is bounds-checked against the payload, the mode/xattr tables and the
 * declared object size; every object is checksummed and must equal the name the part header
 * lists before it is staged, and objects are named only by those validated 32-byte checksums
 * (never by any path taken from the delta). Objects are staged in the repo's `tmp/` and added to
 * a core-store write batch, so a failure leaves nothing half-written under `objects/`. Small
 * objects are assembled in memory; large ones stream through a staged file.
 */
import { createHash } from 'node:crypto';
import { closeSync, constants as fsc, openSync, promises as fsp, readSync, rmSync } from 'node:fs';
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
import { bspatch } from './bsdiff.js';
import type { DeltaObject, PartHeader, decodePartBody } from './format.js';
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
import { corrupt } from './part-reader.js';

/** Objects up to this size are assembled in memory; larger ones stream through a file in `tmp/`. */
const IN_MEMORY_OBJECT = 4 * 1024 * 1024;
/** Largest read source loaded whole for bspatch. */
const MAX_BSPATCH_SOURCE = 1024 * 1024 * 1024;

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
export class PartRunner {
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
