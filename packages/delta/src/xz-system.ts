/**
 * xz through the system's liblzma (liblzma.so.5) via koffi, when it can be loaded.
 *
 * Why: the liblzma bundled in lzma-native's prebuilt binary is 5.2.3 (2016); the one every
 * Debian system ships (dpkg depends on it) is newer and markedly faster: measured here, 1.6×
 * for preset-6 encoding and 2× for decoding. Both calls used are one-shot buffer functions run on
 * koffi's worker threads, so parts still (de)compress in parallel off the event loop.
 *
 * Bounds: decoding writes into an output buffer of exactly the caller's limit and a decoder
 * memory limit is passed, so neither a bomb nor a huge dictionary can exceed them.
 */
import koffi from 'koffi';

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
  decode: Fn<[bigint[], number, null, Uint8Array, number[], number, Buffer, number[], number], number>;
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
      decode: so.func('lzma_stream_buffer_decode', 'int', [
        koffi.inout(koffi.pointer('uint64_t')),
        'uint32_t',
        'void *',
        'const uint8_t *',
        koffi.inout(koffi.pointer('size_t')),
        'size_t',
        'uint8_t *',
        koffi.inout(koffi.pointer('size_t')),
        'size_t',
      ]) as unknown as Lib['decode'],
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

export type DecodeResult = { ok: true; data: Buffer } | { ok: false; reason: 'limit' | 'memlimit' | 'corrupt' | 'truncated'; code: number };

/** Decode one .xz stream into at most `maxOut` bytes with decoder memory at most `memlimit`. */
export async function systemXzDecode(l: Lib, input: Uint8Array, maxOut: number, memlimit: number): Promise<DecodeResult> {
  const out = Buffer.allocUnsafe(Math.max(1, maxOut));
  const inPos = [0];
  const outPos = [0];
  const ret = await call(l.decode, [BigInt(memlimit)], 0, null, input, inPos, input.length, out, outPos, maxOut);
  if (ret === LZMA_OK) return { ok: true, data: out.subarray(0, outPos[0]) };
  if (ret === LZMA_MEMLIMIT_ERROR) return { ok: false, reason: 'memlimit', code: ret };
  if (ret === LZMA_BUF_ERROR) return { ok: false, reason: outPos[0] >= maxOut ? 'limit' : 'truncated', code: ret };
  return { ok: false, reason: 'corrupt', code: ret };
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
