/**
 * Tombstone commits (repo-format.md 7): `a{sv}` {"commit": <ay "HEX\0">} stored under the
 * deleted commit's checksum as `.tombstone-commit`.
 */
import { decodeNormal, encode, Variant } from '@larch/gvariant';
import type { Checksum } from '../types.js';
import { isChecksum, validateChecksum } from '../validate.js';
import { corrupt, utf8 } from './framing.js';

export function serializeTombstone(commit: Checksum): Uint8Array {
  validateChecksum(commit);
  const bs = new Uint8Array(65);
  bs.set(utf8.encode(commit), 0);
  return encode('a{sv}', [['commit', new Variant('ay', bs)]] as never);
}

/** Returns the checksum recorded in the tombstone. */
export function parseTombstone(bytes: Uint8Array): Checksum {
  let dict: Array<[string, Variant]>;
  try {
    dict = decodeNormal<Array<[string, Variant]>>('a{sv}', bytes);
  } catch (e) {
    throw corrupt('tombstone-commit', (e as Error).message);
  }
  const v = dict.find(([k]) => k === 'commit')?.[1];
  if (!v || v.type !== 'ay' || !(v.value instanceof Uint8Array)) throw corrupt('tombstone-commit', 'missing commit key');
  const b = v.value;
  const s = Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('latin1').replace(/\0$/, '');
  if (!isChecksum(s)) throw corrupt('tombstone-commit', 'invalid checksum');
  return s;
}
