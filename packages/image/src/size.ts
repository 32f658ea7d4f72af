/** Disk sizes as a user writes them: `4G`, `512M`, `2048K`, `1.5G` or a byte count (binary units). */
import { LarchError } from '@larch/core-store';

const UNITS: Record<string, number> = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 };

/** Parse SIZE into bytes; INVALID_ARGUMENT naming the text when it is not a positive size. */
export function parseSize(text: string): number {
  const m = /^([0-9]+(?:\.[0-9]+)?)([KMGT]?)(?:i?B)?$/i.exec(text.trim());
  const bytes = m ? Math.floor(Number(m[1]) * UNITS[m[2].toUpperCase()]) : NaN;
  if (!Number.isSafeInteger(bytes) || bytes <= 0) {
    throw new LarchError('INVALID_ARGUMENT', `Invalid size '${printable(text)}' (expected e.g. 4G, 512M or a byte count)`, { size: text, reason: 'bad-size' });
  }
  return bytes;
}

/** `text` with control characters escaped and cut to 80 characters, for error messages. */
export function printable(text: string): string {
  const s = text.replace(/[\x00-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
  return s.length > 80 ? `${s.slice(0, 80)}…` : s;
}

export const MiB = 1024 * 1024;

/** `n` rounded up to a multiple of `to`. */
export function alignUp(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}
