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

/**
 * Decompress one .xz stream, refusing output beyond `maxOut` bytes (decompression bomb), a
 * truncated or corrupt stream, or one needing more than {@link XZ_MEMLIMIT} of decoder memory.
 * `what` names the part in the error.
 */
export async function xzDecompressBounded(data: Uint8Array, maxOut: number, what: string): Promise<Buffer> {
  const sys = systemLzma();
  if (sys !== null) {
    const r = await systemXzDecode(sys, data, maxOut, XZ_MEMLIMIT);
    if (r.ok) return r.data;
    if (r.reason === 'memlimit') throw new LarchError('LIMIT_EXCEEDED', `Static delta ${what} needs more than ${XZ_MEMLIMIT} bytes of xz decoder memory`, { limit: XZ_MEMLIMIT });
    // liblzma's one-shot decoder reports "output full" and "input truncated" alike; the
    // streaming decoder below tells them apart for the error message.
  }
  return nativeDecompress(data, maxOut, what);
}

/** The lzma-native back end of {@link xzDecompressBounded} (streaming, bounded). */
export function nativeDecompress(data: Uint8Array, maxOut: number, what: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const dec = lzma.createStream('streamDecoder', { memlimit: XZ_MEMLIMIT, bufsize: 1 << 20 });
    const chunks: Buffer[] = [];
    let total = 0;
    let failed = false;
    const fail = (e: LarchError): void => {
      if (failed) return;
      failed = true;
      dec.removeAllListeners('data');
      dec.destroy();
      reject(e);
    };
    dec.on('data', (c: Buffer) => {
      total += c.length;
      if (total > maxOut) {
        fail(new LarchError('LIMIT_EXCEEDED', `Static delta ${what} decompresses past its limit of ${maxOut} bytes`, { limit: maxOut }));
        return;
      }
      chunks.push(c);
    });
    dec.on('error', (e: Error) => fail(new LarchError('OBJECT_CORRUPTED', `Invalid xz stream in static delta ${what}: ${e.message}`, {}, { cause: e })));
    dec.on('end', () => {
      if (!failed) resolve(Buffer.concat(chunks, total));
    });
    dec.end(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
  });
}
