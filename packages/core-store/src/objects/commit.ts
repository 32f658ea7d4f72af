/**
 * commit `(a{sv}aya(say)sstayay)` (repo-format.md 3.3): metadata in serialized order (the
 * order is part of the checksum), parent (0 or 32 bytes), related objects (always empty when
 * we write), subject, body, timestamp (big-endian `t`), root dirtree and root dirmeta (32 bytes).
 */
import { bswap64, decodeNormal, encode, Variant } from '@larch/gvariant';
import type { Commit } from '../types.js';
import { validateChecksum } from '../validate.js';
import { corrupt, hex, unhex } from './framing.js';

export const COMMIT_TYPE = '(a{sv}aya(say)sstayay)';

/** OSTree's OSTREE_MAX_METADATA_SIZE: the largest metadata object (commit, dirtree, dirmeta, commitmeta) it loads. */
export const MAX_METADATA_SIZE = 128 * 1024 * 1024;

type CommitTuple = [Array<[string, Variant]>, Uint8Array, Array<[string, Uint8Array]>, string, string, bigint, Uint8Array, Uint8Array];

export function serializeCommit(c: Commit): Uint8Array {
  if (c.parent !== null) validateChecksum(c.parent);
  validateChecksum(c.rootTree);
  validateChecksum(c.rootMeta);
  for (const [k] of c.metadata) if (k.length === 0) throw corrupt('commit', 'empty metadata key');
  if (c.timestamp < 0n || c.timestamp > 0xffffffffffffffffn) throw corrupt('commit', `invalid timestamp ${c.timestamp}`);
  const value: CommitTuple = [
    c.metadata,
    c.parent === null ? new Uint8Array(0) : unhex(c.parent),
    [],
    c.subject,
    c.body,
    bswap64(c.timestamp),
    unhex(c.rootTree),
    unhex(c.rootMeta),
  ];
  return encode(COMMIT_TYPE, value as never);
}

/** Parse and validate a commit object (size limit, normal form, checksum lengths, non-empty keys). */
export function parseCommit(bytes: Uint8Array): Commit {
  if (bytes.length > MAX_METADATA_SIZE) throw corrupt('commit', `size ${bytes.length} exceeds ${MAX_METADATA_SIZE}`);
  let t: CommitTuple;
  try {
    t = decodeNormal<CommitTuple>(COMMIT_TYPE, bytes);
  } catch (e) {
    throw corrupt('commit', (e as Error).message);
  }
  const [metadata, parent, , subject, body, ts, root, meta] = t;
  if (parent.length !== 0 && parent.length !== 32) throw corrupt('commit', `Invalid checksum of length ${parent.length} expected 32 (parent)`);
  if (root.length !== 32) throw corrupt('commit', `Invalid checksum of length ${root.length} expected 32 (root tree)`);
  if (meta.length !== 32) throw corrupt('commit', `Invalid checksum of length ${meta.length} expected 32 (root meta)`);
  for (const [k] of metadata) if (k.length === 0) throw corrupt('commit', 'empty metadata key');
  return {
    metadata,
    parent: parent.length ? hex(parent) : null,
    subject,
    body,
    timestamp: bswap64(ts),
    rootTree: hex(root),
    rootMeta: hex(meta),
  };
}

/** ContentChecksum as `ostree show` prints it: sha256(rootTree bytes || rootMeta bytes). Informational only. */
export { contentChecksumOfCommit } from './commit-content.js';

/** Value of `ostree.ref-binding` in a commit, or [] when absent. */
export function commitRefBindings(c: Commit): string[] {
  const v = c.metadata.find(([k]) => k === 'ostree.ref-binding')?.[1];
  if (!v || !(v instanceof Variant) || v.type !== 'as' || !Array.isArray(v.value)) return [];
  return v.value as string[];
}
