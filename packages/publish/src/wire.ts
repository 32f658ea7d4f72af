/**
 * The upload body format (`Content-Type: application/vnd.larch.objects`): several objects in
 * one request, each streamed without knowing its length in advance (content objects are
 * compressed on the fly by the client).
 *
 *   body   := MAGIC record* END
 *   MAGIC  := "LARCHOB1"                         (8 bytes)
 *   record := type:u8 checksum:32 bytes chunk* 00 00 00 00
 *   chunk  := length:u32 BE (1..MAX_CHUNK) bytes
 *   END    := 00                                 (type 0)
 *
 * Types: 1 file (the object in archive `.filez` form: BE32 header length, 4 reserved bytes,
 * header variant, raw-deflated payload), 2 dirtree, 3 dirmeta, 4 commit (the exact object
 * bytes). Why chunks rather than a length prefix: the compressed size of a file is known only
 * after compressing it, and buffering a large file to learn it is what streaming avoids.
 */
import { LarchError, type ObjectType } from '@larch/core-store';

/** Media type of upload bodies. */
export const OBJECTS_MEDIA_TYPE = 'application/vnd.larch.objects';
/** The first 8 bytes of an upload body. */
export const MAGIC = Buffer.from('LARCHOB1', 'latin1');
/** Largest chunk a writer emits and a reader accepts. */
export const MAX_CHUNK = 1024 * 1024;

/** Object types that can be uploaded. */
export type UploadType = 'file' | 'dirtree' | 'dirmeta' | 'commit';

const CODES: Record<UploadType, number> = { file: 1, dirtree: 2, dirmeta: 3, commit: 4 };
const TYPES: Record<number, UploadType> = { 1: 'file', 2: 'dirtree', 3: 'dirmeta', 4: 'commit' };

/** Whether an object type can be uploaded. */
export function isUploadType(t: ObjectType): t is UploadType {
  return t === 'file' || t === 'dirtree' || t === 'dirmeta' || t === 'commit';
}

/** Record header: type byte + raw checksum. */
export function recordHeader(type: UploadType, checksum: string): Buffer {
  const b = Buffer.alloc(33);
  b[0] = CODES[type];
  b.write(checksum, 1, 'hex');
  return b;
}

/** Frame `data` as chunks (split at MAX_CHUNK). Empty data yields nothing. */
export function* chunkFrames(data: Uint8Array): Iterable<Buffer> {
  for (let off = 0; off < data.length; off += MAX_CHUNK) {
    const part = data.subarray(off, Math.min(data.length, off + MAX_CHUNK));
    const len = Buffer.alloc(4);
    len.writeUInt32BE(part.length, 0);
    yield len;
    yield Buffer.from(part.buffer, part.byteOffset, part.byteLength);
  }
}

/** The end-of-record marker. */
export const RECORD_END = Buffer.alloc(4);
/** The end-of-body marker. */
export const BODY_END = Buffer.alloc(1);

function bad(msg: string): LarchError {
  return new LarchError('INVALID_ARGUMENT', `Invalid upload body: ${msg}`);
}

/**
 * Incremental reader of an upload body. {@link next} returns the next record's type and
 * checksum (null at the end); {@link chunks} then yields that record's chunks, which must be
 * consumed (or {@link skip}ped) before the next call to {@link next}.
 */
export class UploadReader {
  private buf: Buffer = Buffer.alloc(0);
  private readonly it: AsyncIterator<Uint8Array>;
  private ended = false;
  private started = false;
  /** Bytes read from the body so far. */
  bytes = 0;

  constructor(src: AsyncIterable<Uint8Array>) {
    this.it = src[Symbol.asyncIterator]();
  }

  private async fill(n: number): Promise<boolean> {
    while (this.buf.length < n && !this.ended) {
      const r = await this.it.next();
      if (r.done) {
        this.ended = true;
        break;
      }
      const c = Buffer.from(r.value.buffer, r.value.byteOffset, r.value.byteLength);
      this.bytes += c.length;
      this.buf = this.buf.length === 0 ? c : Buffer.concat([this.buf, c]);
    }
    return this.buf.length >= n;
  }

  private take(n: number): Buffer {
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return out;
  }

  /** The next record's type and checksum, or null after the end marker. */
  async next(): Promise<{ type: UploadType; checksum: string } | null> {
    if (!this.started) {
      if (!(await this.fill(8)) || !this.take(8).equals(MAGIC)) throw bad('missing LARCHOB1 header');
      this.started = true;
    }
    if (!(await this.fill(1))) throw bad('truncated (no end marker)');
    const code = this.buf[0];
    if (code === 0) {
      this.take(1);
      return null;
    }
    const type = TYPES[code];
    if (type === undefined) throw bad(`unknown object type code ${code}`);
    if (!(await this.fill(33))) throw bad('truncated record header');
    const h = this.take(33);
    return { type, checksum: h.subarray(1).toString('hex') };
  }

  /** The chunks of the current record, ending at its end marker. */
  async *chunks(): AsyncIterable<Buffer> {
    for (;;) {
      if (!(await this.fill(4))) throw bad('truncated record');
      const len = this.take(4).readUInt32BE(0);
      if (len === 0) return;
      if (len > MAX_CHUNK) throw bad(`chunk of ${len} bytes exceeds ${MAX_CHUNK}`);
      // Hand over what is buffered, then read through, without gathering the whole chunk.
      let left = len;
      while (left > 0) {
        if (this.buf.length === 0 && !(await this.fill(1))) throw bad('truncated chunk');
        const n = Math.min(left, this.buf.length);
        left -= n;
        yield this.take(n);
      }
    }
  }

  /** Consume the current record's chunks. */
  async skip(): Promise<void> {
    for await (const _ of this.chunks()) void _;
  }
}
