// Minimal typing of the parts of lzma-native this package uses.
declare module 'lzma-native' {
  import type { Duplex } from 'node:stream';
  export const CHECK_CRC64: number;
  export const PRESET_EXTREME: number;
  export const FILTER_X86: string;
  export const FILTER_LZMA2: string;
  export interface Filter {
    id: string;
    options?: { preset?: number } | Record<string, number>;
  }
  /** A coder stream; `cleanup()` ends the liblzma coder at once (frees its dictionary). */
  export interface LzmaStream extends Duplex {
    cleanup(): void;
  }
  export function createStream(
    coder: 'easyEncoder' | 'streamEncoder' | 'streamDecoder',
    options?: { preset?: number; check?: number; memlimit?: number; threads?: number; flags?: number; filters?: Filter[]; bufsize?: number },
  ): LzmaStream;
  const _default: { createStream: typeof createStream; CHECK_CRC64: number; PRESET_EXTREME: number; FILTER_X86: string; FILTER_LZMA2: string };
  export default _default;
}
