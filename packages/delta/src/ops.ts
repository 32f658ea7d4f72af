/**
 * The part op stream (spec static-deltas.md section 5): opcodes and unsigned LEB128 varints.
 */
import { LarchError } from '@larch/core-store';

export const OP_OPEN_SPLICE_AND_CLOSE = 0x53; // 'S'
export const OP_OPEN = 0x6f; // 'o'
export const OP_WRITE = 0x77; // 'w'
export const OP_SET_READ_SOURCE = 0x72; // 'r'
export const OP_UNSET_READ_SOURCE = 0x52; // 'R'
export const OP_CLOSE = 0x63; // 'c'
export const OP_BSPATCH = 0x42; // 'B'

export const OP_NAMES: Record<number, string> = {
  [OP_OPEN_SPLICE_AND_CLOSE]: 'openspliceclose',
  [OP_OPEN]: 'open',
  [OP_WRITE]: 'write',
  [OP_SET_READ_SOURCE]: 'setread',
  [OP_UNSET_READ_SOURCE]: 'unsetread',
  [OP_CLOSE]: 'close',
  [OP_BSPATCH]: 'bspatch',
};

/** Growable byte buffer for building op streams and payloads. */
export class ByteSink {
  private buf: Buffer;
  length = 0;
  constructor(initial = 256) {
    this.buf = Buffer.allocUnsafe(initial);
  }
  private ensure(n: number): void {
    if (this.length + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.length + n) cap *= 2;
    const nb = Buffer.allocUnsafe(cap);
    this.buf.copy(nb, 0, 0, this.length);
    this.buf = nb;
  }
  byte(b: number): this {
    this.ensure(1);
    this.buf[this.length++] = b;
    return this;
  }
  varint(v: number): this {
    if (!Number.isSafeInteger(v) || v < 0) throw new LarchError('INVALID_ARGUMENT', `Cannot encode ${v} as a varint`);
    this.ensure(10);
    while (v >= 0x80) {
      this.buf[this.length++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    this.buf[this.length++] = v;
    return this;
  }
  bytes(b: Uint8Array): this {
    this.ensure(b.length);
    this.buf.set(b, this.length);
    this.length += b.length;
    return this;
  }
  view(): Buffer {
    return this.buf.subarray(0, this.length);
  }
}

/**
 * Append-only byte sequence kept as a list of chunks: large pieces (file contents, patches) are
 * referenced, not copied; small ones are coalesced. Used for part payloads, which are then
 * streamed into the compressor without ever being made contiguous.
 */
export class ChunkSink {
  readonly chunks: Uint8Array[] = [];
  length = 0;
  private small: ByteSink | null = null;

  bytes(b: Uint8Array): this {
    if (b.length >= 4096) {
      this.flushSmall();
      this.chunks.push(b);
    } else {
      (this.small ??= new ByteSink(8192)).bytes(b);
      if (this.small.length >= 1 << 16) this.flushSmall();
    }
    this.length += b.length;
    return this;
  }

  private flushSmall(): void {
    if (this.small !== null && this.small.length > 0) this.chunks.push(Buffer.from(this.small.view()));
    this.small = null;
  }

  /** The chunks, in order (finishes any coalesced tail). */
  parts(): Uint8Array[] {
    this.flushSmall();
    return this.chunks;
  }
}

/** Reads opcodes and varints from an op stream, refusing reads past its end. */
export class OpReader {
  pos = 0;
  constructor(private readonly ops: Uint8Array, private readonly what: string) {}
  get done(): boolean {
    return this.pos >= this.ops.length;
  }
  byte(): number {
    return this.ops[this.pos++];
  }
  varint(): number {
    let v = 0;
    let mul = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.ops.length) throw new LarchError('OBJECT_CORRUPTED', `Truncated varint in static delta ${this.what} op stream`, {});
      const b = this.ops[this.pos++];
      v += (b & 0x7f) * mul;
      if ((b & 0x80) === 0) {
        if (!Number.isSafeInteger(v)) break;
        return v;
      }
      mul *= 0x80;
    }
    throw new LarchError('OBJECT_CORRUPTED', `Invalid varint in static delta ${this.what} op stream`, {});
  }
}
