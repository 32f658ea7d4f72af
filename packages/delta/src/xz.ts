/**
 * xz (.xz container, LZMA2, CRC64) compression of delta parts, with a bounded decoder.
 *
 * Two back ends with the same results: the system's liblzma through koffi (xz-system.ts; the
 * library ostree itself links, and much faster than the copy bundled in lzma-native), and
 * lzma-native (a prebuilt liblzma binding with streaming coders and a decoder memory limit) where
 * the system library cannot be loaded, or with LARCH_XZ=native. Both run off the event loop, so
 * several parts (de)compress in parallel.
 *
 * Bounds on decoding: the decoder's memory is capped at {@link XZ_MEMLIMIT} (a stream asking for
 * a larger dictionary is refused) and its output is cut off, with an error, as soon as it passes
 * the caller's limit, so a small hostile stream cannot inflate into gigabytes.
 */
import lzma from 'lzma-native';
import { LarchError } from '@larch/core-store';
import { systemLzma, systemXzDecode, systemXzEncode } from './xz-system.js';

/** Decoder memory cap (ostree's newer releases use the same 100 MiB). */
export const XZ_MEMLIMIT = 100 * 1024 * 1024;

/** LZMA2 settings of xz preset 8 (normal mode, bt4 match finder, nice_len 64), any dictionary size. */
function lzma2Options(dictSize: number, extreme: boolean, text: boolean): Record<string, number> {
  return { dictSize, lc: text ? 4 : 3, lp: 0, pb: text ? 0 : 2, mode: 2, niceLen: extreme ? 273 : 64, mf: 0x14, depth: extreme ? 512 : 0 };
}

/**
 * Compress `data` into one .xz stream (CRC64). `preset` 0-9 and `extreme` as xz's; with
 * `dictSize`, preset 8's LZMA2 settings with that dictionary instead (a dictionary no larger than
 * the input loses nothing and needs a fraction of the encoder memory: about 11.5 × the
 * dictionary). `x86` puts the x86 BCJ filter before LZMA2, which helps machine code; `text`
 * (with `dictSize`) sets the literal context to 4 bits and drops the position bits (lc=4, pb=0),
 * which suits byte-aligned text.
 */
export async function xzCompress(input: Uint8Array | Uint8Array[], preset = 8, extreme = false, x86 = false, dictSize?: number, text = false): Promise<Buffer> {
  const sys = systemLzma();
  if (sys !== null) {
    const data = Array.isArray(input) ? (input.length === 1 ? input[0] : Buffer.concat(input)) : input;
    const out = await systemXzEncode(sys, data, preset, extreme, dictSize, x86, text);
    if (out !== null) return out;
  }
  return nativeCompress(input, preset, extreme, x86, dictSize, text);
}

/** The lzma-native back end of {@link xzCompress}. */
export function nativeCompress(input: Uint8Array | Uint8Array[], preset: number, extreme: boolean, x86: boolean, dictSize: number | undefined, text = false): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const p = preset | (extreme ? lzma.PRESET_EXTREME : 0);
    const lzma2 = dictSize !== undefined ? { id: lzma.FILTER_LZMA2, options: lzma2Options(dictSize, extreme, text) } : { id: lzma.FILTER_LZMA2, options: { preset: p } };
    const enc = x86 || dictSize !== undefined
      ? lzma.createStream('streamEncoder', { filters: x86 ? [{ id: lzma.FILTER_X86 }, lzma2] : [lzma2], check: lzma.CHECK_CRC64 })
      : lzma.createStream('easyEncoder', { preset: p, check: lzma.CHECK_CRC64 });
    const chunks: Buffer[] = [];
    enc.on('data', (c: Buffer) => chunks.push(c));
    enc.on('error', (e: Error) => reject(new LarchError('IO_ERROR', `xz compression failed: ${e.message}`, {}, { cause: e })));
    enc.on('end', () => resolve(Buffer.concat(chunks)));
    // Feed in slices so the encoder's input queue stays small.
    const pieces = Array.isArray(input) ? input : [input];
    const step = 1 << 20;
    let idx = 0;
    let off = 0;
    const pump = (): void => {
      while (idx < pieces.length) {
        const data = pieces[idx];
        if (off >= data.length) {
          idx++;
          off = 0;
          continue;
        }
        const slice = data.subarray(off, Math.min(off + step, data.length));
        off += slice.length;
        if (!enc.write(slice)) {
          enc.once('drain', pump);
          return;
        }
      }
      enc.end();
    };
    pump();
  });
}

/** liblzma's names for the results a one-shot decode can fail with. */
const LZMA_ERRORS: Record<number, string> = {
  [-1]: 'decoder failed',
  5: 'cannot allocate memory',
  7: 'not an .xz stream',
  8: 'unsupported options',
  9: 'compressed data is corrupt',
  10: 'compressed data is truncated',
};

function limitError(what: string, maxOut: number): LarchError {
  return new LarchError('LIMIT_EXCEEDED', `Static delta ${what} decompresses past its limit of ${maxOut} bytes`, { limit: maxOut });
}

/** The error for liblzma result `code` (6: decoder memory limit; else a corrupt stream), the same from both back ends. */
function decodeError(what: string, code: number, cause?: unknown): LarchError {
  if (code === 6) return new LarchError('LIMIT_EXCEEDED', `Static delta ${what} needs more than ${XZ_MEMLIMIT} bytes of xz decoder memory`, { limit: XZ_MEMLIMIT });
  const detail = LZMA_ERRORS[code] ?? `liblzma error ${code}`;
  return new LarchError('OBJECT_CORRUPTED', `Invalid xz stream in static delta ${what}: ${detail}`, { code }, cause !== undefined ? { cause } : undefined);
}

/**
 * Decompress one .xz stream, refusing output beyond `maxOut` bytes (decompression bomb), a
 * truncated or corrupt stream, or one needing more than {@link XZ_MEMLIMIT} of decoder memory.
 * `what` names the part in the error.
 *
 * Each back end stops decoding as soon as the output passes `maxOut`, and the error is worded
 * from that one pass: a stream is never decoded a second time (the native back end, given a
 * whole bomb at once, would inflate all of it into memory before anyone could stop it).
 */
export async function xzDecompressBounded(data: Uint8Array, maxOut: number, what: string): Promise<Buffer> {
  const sys = systemLzma();
  if (sys === null) return nativeDecompress(data, maxOut, what);
  const r = await systemXzDecode(sys, data, maxOut, XZ_MEMLIMIT);
  if (r.ok) return r.data;
  throw r.reason === 'limit' ? limitError(what, maxOut) : decodeError(what, r.code);
}

/**
 * Largest output one byte of .xz input is assumed to inflate to. LZMA's best case is a long
 * repeated match coded with saturated probabilities, about 0.3 bits per 273 bytes; `xz` makes
 * 2 GiB of zeros into 312 KB, 6,900 to 1.
 */
const XZ_MAX_RATIO = 8192;
/** Input slices fed to lzma-native: never more than could inflate to the room left under the bound. */
const NATIVE_MIN_SLICE = 1024;
const NATIVE_MAX_SLICE = 1024 * 1024;

/**
 * The lzma-native back end of {@link xzDecompressBounded} (streaming, bounded).
 *
 * lzma-native decodes each input chunk it is given to the end on a worker thread, queueing all
 * of the output before JavaScript sees any of it, so the input is fed in slices sized to the
 * room left under `maxOut` (at most {@link NATIVE_MIN_SLICE} × {@link XZ_MAX_RATIO}, 8 MiB, past
 * the bound in the worst case), the next one only after the previous one is decoded. The moment
 * the output passes `maxOut` no more input is fed, the decoder is ended (its dictionary freed)
 * and destroyed, and the output gathered so far is dropped.
 */
export function nativeDecompress(data: Uint8Array, maxOut: number, what: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const dec = lzma.createStream('streamDecoder', { memlimit: XZ_MEMLIMIT, bufsize: 64 * 1024 });
    const input = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    let chunks: Buffer[] = [];
    let total = 0;
    let fed = 0;
    let settled = false;
    const fail = (e: LarchError): void => {
      if (settled) return;
      settled = true;
      chunks = [];
      dec.removeAllListeners('data');
      dec.on('error', () => undefined); // whatever the ended decoder still reports
      dec.cleanup();
      dec.destroy();
      reject(e);
    };
    dec.on('data', (c: Buffer) => {
      if (settled) return;
      total += c.length;
      if (total > maxOut) return fail(limitError(what, maxOut));
      chunks.push(c);
    });
    dec.on('error', (e: Error & { code?: unknown }) => fail(decodeError(what, typeof e.code === 'number' ? e.code : -1, e)));
    dec.on('end', () => {
      if (settled) return;
      settled = true;
      const out = Buffer.concat(chunks, total);
      chunks = [];
      resolve(out);
    });
    const feed = (): void => {
      if (settled) return;
      if (fed >= input.length) {
        dec.end();
        return;
      }
      const room = Math.max(0, maxOut - total);
      const n = Math.min(NATIVE_MAX_SLICE, Math.max(NATIVE_MIN_SLICE, Math.floor(room / XZ_MAX_RATIO)));
      const slice = input.subarray(fed, fed + n);
      fed += slice.length;
      dec.write(slice, () => setImmediate(feed));
    };
    feed();
  });
}
