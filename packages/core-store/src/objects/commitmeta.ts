/**
 * Detached commit metadata `.commitmeta` = `a{sv}` (repo-format.md 6): mutable, named after its
 * commit, not checksummed. Holds signatures. Read by key name, never by position.
 */
import { decodeNormal, encode, type Variant } from '@larch/gvariant';
import { corrupt } from './framing.js';
import { MAX_METADATA_SIZE } from './commit.js';

export function serializeCommitMeta(dict: Array<[string, Variant]>): Uint8Array {
  for (const [k] of dict) if (k.length === 0) throw corrupt('commitmeta', 'empty metadata key');
  return encode('a{sv}', dict as never);
}

export function parseCommitMeta(bytes: Uint8Array): Array<[string, Variant]> {
  if (bytes.length > MAX_METADATA_SIZE) throw corrupt('commitmeta', `size ${bytes.length} exceeds ${MAX_METADATA_SIZE}`);
  try {
    return decodeNormal<Array<[string, Variant]>>('a{sv}', bytes);
  } catch (e) {
    throw corrupt('commitmeta', (e as Error).message);
  }
}
