/**
 * xz through the system's liblzma (liblzma.so.5) via koffi, when it can be loaded.
 *
 * Why: the liblzma bundled in lzma-native's prebuilt binary is 5.2.3 (2016); the one every
 * Debian system ships (dpkg depends on it) is newer and markedly faster: measured here, 1.6×
 * for preset-6 encoding and 2× for decoding. Encoding is one-shot (lzma_stream_buffer_encode),
 * decoding streams (lzma_code); every call runs on koffi's worker threads, so parts still
 * (de)compress in parallel off the event loop.
 *
 * Bounds: decoding runs liblzma's streaming decoder (lzma_code) one output window at a time,
 * never giving it room for more than one byte past the caller's limit, so it stops the moment the
 * output passes the limit and each failure is told apart from that one pass (output past the
 * limit, decoder memory limit, corrupt or truncated data). The one-shot lzma_stream_buffer_decode
 * cannot do that: it reports a full output buffer and truncated input alike, with its positions
 * reset. The decoder state and its windows live in memory allocated through koffi (liblzma keeps
 * pointers into them between calls); the decoder is ended and that memory freed on every path.
 */
import koffi, { type TypeObject } from 'koffi';

const LZMA_OK = 0;
const LZMA_MEMLIMIT_ERROR = 6;
const LZMA_BUF_ERROR = 10;
const LZMA_CHECK_CRC64 = 4;
const LZMA_FILTER_X86 = 0x04n;
const LZMA_FILTER_LZMA2 = 0x21n;
const LZMA_VLI_UNKNOWN = 0xffffffffffffffffn;
const LZMA_PRESET_EXTREME = 0x80000000;
/** Generous upper bound of sizeof(lzma_options_lzma) across liblzma versions. */
const OPTIONS_SIZE = 256;

type Cb<T> = (err: unknown, res: T) => void;
interface Fn<A extends unknown[], R> {
  (...args: A): R;
  async(...args: [...A, Cb<R>]): void;
}

interface Lib {
  preset: Fn<[Buffer, number], number>;
  bound: Fn<[number], number>;
  encode: Fn<[Array<{ id: bigint; options: Buffer | null }>, number, null, Uint8Array, number, Buffer, number[], number], number>;
  streamDecoder: Fn<[unknown, bigint, number], number>;
  code: Fn<[unknown, number], number>;
  end: Fn<[unknown], void>;
  /** koffi's description of lzma_stream. */
  stream: TypeObject;
}

let lib: Lib | null | undefined;

/** The system liblzma, or null when it cannot be loaded (or LARCH_XZ=native asks not to). */
export function systemLzma(): Lib | null {
  if (lib !== undefined) return lib;
  if (process.env.LARCH_XZ === 'native') return (lib = null);
  try {
    const so = koffi.load('liblzma.so.5');
    const filter = koffi.struct('larch_lzma_filter', { id: 'uint64_t', options: 'void *' });
    lib = {
      preset: so.func('int lzma_lzma_preset(void *options, uint32_t preset)') as unknown as Lib['preset'],
      bound: so.func('size_t lzma_stream_buffer_bound(size_t uncompressed_size)') as unknown as Lib['bound'],
      encode: so.func('lzma_stream_buffer_encode', 'int', [koffi.pointer(filter), 'int', 'void *', 'const uint8_t *', 'size_t', 'uint8_t *', koffi.inout(koffi.pointer('size_t')), 'size_t']) as unknown as Lib['encode'],
      streamDecoder: so.func('int lzma_stream_decoder(void *strm, uint64_t memlimit, uint32_t flags)') as unknown as Lib['streamDecoder'],
      code: so.func('int lzma_code(void *strm, int action)') as unknown as Lib['code'],
      end: so.func('void lzma_end(void *strm)') as unknown as Lib['end'],
      // lzma_stream, as liblzma 5 lays it out (the reserved fields must be zero).
      stream: koffi.struct('larch_lzma_stream', {
        next_in: 'void *',
        avail_in: 'size_t',
        total_in: 'uint64_t',
        next_out: 'void *',
        avail_out: 'size_t',
        total_out: 'uint64_t',
        allocator: 'void *',
        internal: 'void *',
        reserved_ptr1: 'void *',
        reserved_ptr2: 'void *',
        reserved_ptr3: 'void *',
        reserved_ptr4: 'void *',
        seek_pos: 'uint64_t',
        reserved_int2: 'uint64_t',
        reserved_int3: 'size_t',
        reserved_int4: 'size_t',
        reserved_enum1: 'int',
        reserved_enum2: 'int',
      }),
    };
  } catch {
    lib = null;
  }
  return lib;
}

const call = <A extends unknown[], R>(fn: Fn<A, R>, ...args: A): Promise<R> =>
  new Promise((resolve, reject) => fn.async(...args, (err: unknown, res: R) => (err ? reject(err) : resolve(res))));

/**
 * Encode `data` as one .xz stream (CRC64) with the preset's LZMA2 settings, `dictSize`, and for
 * `text` lc=4 pb=0. Returns null on a liblzma error.
 */
export async function systemXzEncode(l: Lib, data: Uint8Array, preset: number, extreme: boolean, dictSize: number | undefined, x86: boolean, text = false): Promise<Buffer | null> {
  const options = Buffer.alloc(OPTIONS_SIZE);
  if (l.preset(options, preset | (extreme ? LZMA_PRESET_EXTREME : 0)) !== 0) return null;
  if (dictSize !== undefined) options.writeUInt32LE(dictSize, 0);
  if (text) {
    // lzma_options_lzma: dict_size, preset_dict (pointer), preset_dict_size, lc, lp, pb, ...
    const ptr = koffi.sizeof('void *');
    const lcOff = ptr + ptr + 4; // the pointer is aligned to its own size
    options.writeUInt32LE(4, lcOff);
    options.writeUInt32LE(0, lcOff + 8);
  }
  const filters = [
    ...(x86 ? [{ id: LZMA_FILTER_X86, options: null }] : []),
    { id: LZMA_FILTER_LZMA2, options },
    { id: LZMA_VLI_UNKNOWN, options: null },
  ];
  // Most parts shrink well below their size: try an output buffer of 40 % first and pay for a
  // second pass only when the data does not compress (keeps peak memory down on large parts).
  const bound = l.bound(data.length);
  for (const size of data.length > 1 << 20 ? [Math.ceil(data.length * 0.4) + 65536, bound] : [bound]) {
    const out = Buffer.allocUnsafe(Math.min(size, bound));
    const pos = [0];
    const ret = await call(l.encode, filters, LZMA_CHECK_CRC64, null, data, data.length, out, pos, out.length);
    if (ret === LZMA_OK) return Buffer.from(out.subarray(0, pos[0]));
    if (ret !== LZMA_BUF_ERROR) return null;
  }
  void options; // kept alive until the calls return
  return null;
}

/**
 * `limit`: the stream inflates past `maxOut`; `memlimit`: it needs more decoder memory than
 * allowed; `corrupt`: any other liblzma error (`code`: 7 not .xz, 8 unsupported options, 9
 * corrupt data, 10 truncated input, 5 out of memory).
 */
export type DecodeResult = { ok: true; data: Buffer } | { ok: false; reason: 'limit' | 'memlimit' | 'corrupt'; code: number };

const LZMA_STREAM_END = 1;
const LZMA_FINISH = 3;
/** Output window of one lzma_code call. */
const DECODE_WINDOW = 1 << 20;

/**
 * Decode one .xz stream into at most `maxOut` bytes with decoder memory at most `memlimit`, in
 * one pass that stops as soon as the output passes `maxOut` (each lzma_code call gets an output
 * window no larger than the room left plus one byte). What was decoded before a failure is
 * dropped; the decoder is ended at once, so its dictionary does not outlive the call.
 */
export async function systemXzDecode(l: Lib, input: Uint8Array, maxOut: number, memlimit: number): Promise<DecodeResult> {
  const size = koffi.sizeof(l.stream);
  const off = (field: string): number => koffi.offsetof(l.stream, field);
  const strm = koffi.alloc('uint8_t', size);
  const inMem = koffi.alloc('uint8_t', Math.max(1, input.length));
  const window = Math.max(1, Math.min(DECODE_WINDOW, maxOut + 1));
  const outMem = koffi.alloc('uint8_t', window);
  let started = false;
  try {
    Buffer.from(koffi.view(strm, size)).fill(0); // LZMA_STREAM_INIT
    Buffer.from(koffi.view(inMem, Math.max(1, input.length))).set(input);
    let ret = l.streamDecoder(strm, BigInt(memlimit), 0);
    if (ret !== LZMA_OK) return { ok: false, reason: ret === LZMA_MEMLIMIT_ERROR ? 'memlimit' : 'corrupt', code: ret };
    started = true;
    koffi.encode(strm, off('next_in'), 'void *', inMem);
    koffi.encode(strm, off('avail_in'), 'size_t', input.length);
    const outView = Buffer.from(koffi.view(outMem, window));
    let chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      // Room for the rest of the limit and one byte more: that byte proves the stream is longer.
      const room = Math.min(window, maxOut + 1 - total);
      koffi.encode(strm, off('next_out'), 'void *', outMem);
      koffi.encode(strm, off('avail_out'), 'size_t', room);
      ret = await call(l.code, strm, LZMA_FINISH);
      const n = room - Number(koffi.decode(strm, off('avail_out'), 'size_t'));
      if (n > 0) {
        total += n;
        if (total > maxOut) {
          chunks = [];
          return { ok: false, reason: 'limit', code: LZMA_BUF_ERROR };
        }
        chunks.push(Buffer.from(outView.subarray(0, n)));
      }
      if (ret === LZMA_STREAM_END) return { ok: true, data: chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, total) };
      if (ret === LZMA_OK) continue;
      chunks = [];
      return { ok: false, reason: ret === LZMA_MEMLIMIT_ERROR ? 'memlimit' : 'corrupt', code: ret };
    }
  } finally {
    if (started) l.end(strm);
    koffi.free(outMem);
    koffi.free(inMem);
    koffi.free(strm);
  }
}

let mapped = false;

/**
 * Ask glibc to serve allocations of 1 MiB and more with their own mappings (M_MMAP_THRESHOLD),
 * so liblzma's large encoder tables are handed back to the system when each part is done instead
 * of lingering in malloc's arenas (glibc otherwise raises the threshold to 32 MiB after the first
 * large free). Delta generation calls it; a no-op where libc cannot be loaded.
 */
export function mapLargeAllocations(): void {
  if (mapped) return;
  mapped = true;
  try {
    const mallopt = koffi.load('libc.so.6').func('int mallopt(int param, int value)') as (p: number, v: number) => number;
    mallopt(-3 /* M_MMAP_THRESHOLD */, 1 << 20);
  } catch {
    // Not glibc: nothing to tune.
  }
}
