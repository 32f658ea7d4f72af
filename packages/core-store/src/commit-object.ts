/**
 * The commit object and its metadata (repo-commit.ts): the parent (the branch head unless
 * given) and the keys kept from it, the `ostree.ref-binding` and `ostree.collection-binding`
 * keys `ostree commit` appends, the `ostree.sizes` table of `--generate-sizes`, and the commit
 * object itself, written after every other object is published and before the ref moves.
 */
import { lstatSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { Variant } from '@larch/gvariant';
import { LarchError, ioError } from './errors.js';
import { serializeCommit } from './objects/commit.js';
import type { Repo } from './repo.js';
import type { CommitTreeOptions } from './repo-commit.js';
import type { CommitState, SizeEntry } from './commit-state.js';
import type { Checksum } from './types.js';

/**
 * Default commit timestamp: SOURCE_DATE_EPOCH when set, else now. The variable is read as
 * ostree reads it (strtoll in base 10: leading blanks and a sign allowed, trailing text ignored);
 * no digits at all, or a value outside a signed 64-bit integer, is an error as in ostree.
 */
export function defaultCommitTimestamp(): bigint {
  const sde = process.env.SOURCE_DATE_EPOCH;
  if (sde === undefined) return BigInt(Math.floor(Date.now() / 1000));
  const m = /^[ \t\n\v\f\r]*([+-]?)(\d+)/.exec(sde);
  if (m === null) throw new LarchError('INVALID_ARGUMENT', 'Failed to convert SOURCE_DATE_EPOCH', {});
  const v = BigInt(m[1] === '-' ? `-${m[2]}` : m[2]);
  if (v > 0x7fffffffffffffffn || v < -0x8000000000000000n) {
    throw new LarchError('INVALID_ARGUMENT', 'Parsing SOURCE_DATE_EPOCH: Numerical result out of range', {});
  }
  // A negative time is stored as its 64-bit two's complement, as ostree's guint64 does.
  return BigInt.asUintN(64, v);
}

/**
 * The parent of the new commit (`opts.parent`, else the branch head, else none) and the metadata
 * to start from: the caller's, then the `keepMetadata` keys copied from the parent. Known before
 * anything is written, so that --keep-metadata fails early.
 */
export async function parentAndMetadata(repo: Repo, opts: CommitTreeOptions): Promise<{ parent: Checksum | null; metadata: Array<[string, Variant]> }> {
  let parent: Checksum | null = null;
  if (opts.parent !== undefined) parent = opts.parent;
  else if (opts.branch !== undefined) parent = await repo.resolveRef(opts.branch);
  const metadata: Array<[string, Variant]> = [...(opts.metadata ?? [])];
  if (opts.keepMetadata !== undefined && opts.keepMetadata.length > 0) {
    if (parent === null) throw new LarchError('INVALID_ARGUMENT', 'Either --branch or --parent must be specified when using --keep-metadata', {});
    const pc = await repo.readCommit(parent);
    for (const key of opts.keepMetadata) {
      let found: Variant | undefined;
      for (const [k, v] of pc.metadata) if (k === key) found = v;
      if (found === undefined) throw new LarchError('INVALID_ARGUMENT', `Missing metadata key '${key}' from commit '${parent}'`, { key, commit: parent });
      metadata.push([key, found]);
    }
  }
  return { parent, metadata };
}

/** The `ostree.sizes` entry of one object: raw checksum, varint archived size, varint unpacked size, object type. */
function sizeEntry(checksum: Checksum, archived: number, unpacked: number, type: number): Uint8Array {
  const out: number[] = [...Buffer.from(checksum, 'hex')];
  for (let v of [BigInt(archived), BigInt(unpacked)]) {
    do {
      let b = Number(v & 0x7fn);
      v >>= 7n;
      if (v > 0n) b |= 0x80;
      out.push(b);
    } while (v > 0n);
  }
  out.push(type);
  return Uint8Array.from(out);
}

/** The `ostree.sizes` value, sorted by checksum; a content object's archived size is that of its stored .filez. */
function sizesValue(repo: Repo, sizes: Map<Checksum, SizeEntry>): Variant {
  const entries: Uint8Array[] = [];
  for (const ck of [...sizes.keys()].sort()) {
    const e = sizes.get(ck)!;
    let archived = e.archived;
    if (archived === undefined) {
      try {
        archived = lstatSync(repo.objectPath('file', ck)).size;
      } catch (err) {
        throw ioError(err, 'Reading', repo.objectPath('file', ck));
      }
    }
    entries.push(sizeEntry(ck, archived, e.unpacked, e.type));
  }
  return new Variant('aay', entries);
}

/**
 * Append the bindings and sizes to `metadata`, write the commit object, and move the branch to
 * it. Returns the commit's checksum.
 */
export async function writeCommitObject(st: CommitState, parent: Checksum | null, metadata: Array<[string, Variant]>, root: { tree: Checksum; meta: Checksum }): Promise<Checksum> {
  const { repo, opts, stats } = st;
  if (opts.bindings !== false) {
    // As `ostree commit`: the ref binding (the branch and every --bind-ref, sorted; an empty list
    // for a commit made without either), then the collection binding when the repo has a
    // collection id and the caller's metadata does not set one.
    const refs = [...(opts.branch !== undefined ? [opts.branch] : []), ...(opts.bindRefs ?? [])].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    metadata.push(['ostree.ref-binding', new Variant('as', refs)]);
    const cid = repo.collectionId;
    if (cid !== null && !metadata.some(([k]) => k === 'ostree.collection-binding')) metadata.push(['ostree.collection-binding', new Variant('s', cid)]);
  }
  if (st.sizes !== null && st.sizes.size > 0) metadata.push(['ostree.sizes', sizesValue(repo, st.sizes)]);
  const commitBytes = serializeCommit({
    metadata,
    parent,
    subject: opts.subject ?? '',
    body: opts.body ?? '',
    timestamp: opts.timestamp ?? defaultCommitTimestamp(),
    rootTree: root.tree,
    rootMeta: root.meta,
  });
  const had = repo.hasLocalObjectSync('commit', createHash('sha256').update(commitBytes).digest('hex'));
  const commit = await repo.writeMetadata('commit', commitBytes);
  stats.metadataTotal++;
  if (!had) {
    stats.newObjects++;
    stats.bytesWritten += commitBytes.length;
    stats.metadataWritten++;
  }
  if (opts.branch !== undefined) await repo.setRef(opts.branch, commit);
  return commit;
}
