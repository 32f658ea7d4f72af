/**
 * `ostree pull --bareuseronly-files`: a regular file whose mode has bits outside 0775 (setuid,
 * setgid, sticky, world-writable) is refused before it is stored, so that what a pull brings in can
 * be checked out by an unprivileged user in a bare-user-only repository. Symlinks pass.
 */
import { LarchError } from '@larch/core-store';

const S_IFMT = 0o170000;
const S_IFREG = 0o100000;

/** Throws ostree's error for a regular file with mode bits outside 0775. */
export function validateBareuseronlyMode(checksum: string, mode: number): void {
  if ((mode & S_IFMT) !== S_IFREG) return;
  const invalid = mode & ~S_IFMT & ~0o775;
  if (invalid > 0) {
    const o = (n: number): string => n.toString(8).padStart(4, '0');
    throw new LarchError('BAD_MODE', `Content object ${checksum}: invalid mode 0${o(mode)} with bits 0${o(invalid)}`, { checksum, mode });
  }
}

/**
 * The `.filez` stream, passed through unchanged once its header's mode is checked. The header is
 * `u32 size, u32 pad` then the GVariant `(tuuuusa(ayay))`, big-endian: the mode is the u32 at byte 24.
 */
export async function* bareuseronlyChecked(checksum: string, body: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  const held: Uint8Array[] = [];
  let n = 0;
  let checked = false;
  for await (const chunk of body) {
    if (checked) {
      yield chunk;
      continue;
    }
    held.push(chunk);
    n += chunk.length;
    if (n < 28) continue;
    const head = Buffer.concat(held, n);
    validateBareuseronlyMode(checksum, head.readUInt32BE(24));
    checked = true;
    yield head;
  }
  // A stream shorter than its header: handed on for the normal checks to refuse.
  if (!checked && n > 0) yield Buffer.concat(held, n);
}
