import { createHash } from 'node:crypto';
import type { Checksum, Commit } from '../types.js';
import { unhex } from './framing.js';

/** sha256(rootTree || rootMeta) of a commit, the "ContentChecksum" `ostree show` prints. */
export function contentChecksumOfCommit(c: Pick<Commit, 'rootTree' | 'rootMeta'>): Checksum {
  return createHash('sha256').update(unhex(c.rootTree)).update(unhex(c.rootMeta)).digest('hex');
}
