/**
 * Static deltas pulled out of a local repository (`ostree pull-local --require-static-deltas`).
 *
 * With that option ostree does not copy objects from the source repository: it pulls from it as
 * from a remote (a `file://` URL) and takes the deltas the remote offers, as its network pull
 * does (`initiate_request` and `get_best_static_delta_start_for` in ostree-repo-pull.c):
 *
 * - Which deltas exist: the source's summary lists some (`ostree.static-deltas`: name →
 *   SHA-256 of the superblock); when the source indexes its deltas (`ostree.summary.indexed-deltas`
 *   in the summary, or `[core] indexed-deltas` in its config when only commits are asked for and
 *   no summary is needed) the index of each target (`delta-indexes/XX/REST.index`) adds its own.
 *   With neither: `Fetch configured to require static deltas, but no summary deltas or delta index
 *   found`.
 * - Which delta, for each target commit not yet complete here: of the deltas ending at it, the one
 *   from the newest commit (by timestamp) that is here and complete; else the from-scratch delta,
 *   unless the target's ref already exists here (ostree then fetches objects); else
 *   `Static deltas required, but none found for REF to CHECKSUM`.
 * - The superblock must hash to what the summary or index says (`Invalid checksum for static delta
 *   NAME`). The target commit is marked partial before the delta is applied, so the object walk
 *   that follows (the caller's) fetches whatever the delta left out (fallback objects), checks
 *   the tree and only then clears the mark.
 *
 * Locking: each delta is applied under the repository's shared lock (see applySuperblock).
 */
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { LarchError, deltaIndexRelPath, deltaRelDir, readSummary, type Checksum, type Repo } from '@larch/core-store';
import { encode } from '@larch/gvariant';
import { applySuperblock, type ApplyResult } from './apply.js';
import { superblockCommitMeta } from './part-reader.js';
import { decodeSuperblock } from './format.js';
import { directoryPartSource, MAX_SUPERBLOCK_SIZE, parseDeltaIndex, readBounded } from './manage.js';
import { parseDeltaName } from './names.js';

/** Largest summary or delta index read (ostree's OSTREE_MAX_METADATA_SIZE). */
const MAX_METADATA_SIZE = 128 * 1024 * 1024;

/** A commit to pull, named by a ref of the source or by its checksum. */
export interface LocalDeltaTarget {
  checksum: Checksum;
  ref: string | null;
}

export interface LocalDeltaPullOptions {
  /** Where the deltas are applied. */
  repo: Repo;
  /** The source repository (the deltas' home). */
  src: Repo;
  targets: readonly LocalDeltaTarget[];
  /** The local refspec a target's ref is found under (default: the ref itself, as pull-local writes it). */
  refspecOf?: (ref: string) => string;
  /**
   * Called with each target commit, as the superblock carries it, before its delta is applied
   * (signature checks; the detached metadata is its `a{sv}` bytes, or null).
   */
  verifyCommit?: (checksum: Checksum, commit: Uint8Array, detachedMetadata: Uint8Array | null) => void | Promise<void>;
  signal?: AbortSignal;
  /** Passed to applySuperblock. */
  maxPartSize?: number;
}

export interface LocalDeltaPulled extends ApplyResult {
  from: Checksum | null;
  to: Checksum;
}

async function optionalFile(path: string, what: string): Promise<Buffer | null> {
  try {
    return await readBounded(path, MAX_METADATA_SIZE, what);
  } catch (e) {
    if (e instanceof LarchError && e.code === 'OBJECT_MISSING') return null;
    throw e;
  }
}

/** The source's deltas listed in its summary, and whether it indexes deltas. */
async function offeredDeltas(src: Repo, targets: readonly LocalDeltaTarget[]): Promise<{ listed: Map<string, string>; indexed: boolean }> {
  const listed = new Map<string, string>();
  let indexed = false;
  // ostree needs the summary for refs; for commits alone it first asks the config whether deltas
  // are indexed, and reads the summary only when they are not.
  let needSummary = targets.some((t) => t.ref !== null);
  if (!needSummary) {
    indexed = src.config.getBoolean('core', 'indexed-deltas', false);
    needSummary = !indexed;
  }
  if (needSummary) {
    const bytes = await optionalFile(join(src.path, 'summary'), 'summary');
    if (bytes !== null) {
      const summary = readSummary(bytes);
      const deltas = summary.metadata.find(([k]) => k === 'ostree.static-deltas')?.[1];
      if (deltas !== undefined && deltas.type === 'a{sv}') {
        for (const [name, v] of deltas.value as Array<[string, { type: string; value: unknown }]>) {
          if (v.type === 'ay' && v.value instanceof Uint8Array && v.value.length === 32) listed.set(name, Buffer.from(v.value).toString('hex'));
        }
      }
      const flag = summary.metadata.find(([k]) => k === 'ostree.summary.indexed-deltas')?.[1];
      if (flag !== undefined && flag.type === 'b') indexed = flag.value === true;
    }
  }
  return { listed, indexed };
}

type Choice = { kind: 'unchanged' } | { kind: 'objects' } | { kind: 'delta'; from: Checksum | null; name: string };

/** ostree's `get_best_static_delta_start_for`, then `initiate_delta_request`'s use of its answer. */
async function chooseDelta(repo: Repo, to: Checksum, known: Map<string, string>, refHere: Checksum | null, ref: string | null): Promise<Choice> {
  if (repo.hasObjectSync('commit', to) && !(await repo.isCommitPartial(to))) return { kind: 'unchanged' };
  let scratch = false;
  let best: { from: Checksum; timestamp: bigint } | null = null;
  for (const name of known.keys()) {
    const d = parseDeltaName(name);
    if (d.to !== to) continue;
    if (d.from === null) {
      scratch = true;
      continue;
    }
    if (!repo.hasObjectSync('commit', d.from) || (await repo.isCommitPartial(d.from))) continue;
    const { timestamp } = await repo.readCommit(d.from);
    if (best === null || timestamp > best.timestamp) best = { from: d.from, timestamp };
  }
  if (best !== null) return { kind: 'delta', from: best.from, name: `${best.from}-${to}` };
  // A from-scratch delta is not used when the ref is already here: a few objects are likely cheaper.
  if (scratch) return refHere !== null ? { kind: 'objects' } : { kind: 'delta', from: null, name: to };
  throw new LarchError('OBJECT_MISSING', `Static deltas required, but none found for ${ref ?? ''} to ${to}`, { to });
}

/**
 * Apply, for each target, the delta ostree's `pull-local --require-static-deltas` would take
 * from `src` (see the file comment). Targets complete here are skipped; a target whose ref exists
 * here and for which only a from-scratch delta exists is left to the object walk. Returns the
 * deltas applied. Refs are not moved; the caller's object walk completes each commit.
 */
export async function pullLocalDeltas(o: LocalDeltaPullOptions): Promise<LocalDeltaPulled[]> {
  const { repo, src } = o;
  const { listed, indexed } = await offeredDeltas(src, o.targets);
  if (!indexed && listed.size === 0) {
    throw new LarchError('OBJECT_MISSING', 'Fetch configured to require static deltas, but no summary deltas or delta index found', { src: src.path });
  }
  const out: LocalDeltaPulled[] = [];
  for (const t of o.targets) {
    o.signal?.throwIfAborted();
    const known = new Map(listed);
    if (indexed) {
      const bytes = await optionalFile(join(src.path, deltaIndexRelPath(t.checksum)), 'static delta index');
      if (bytes !== null) for (const [name, digest] of parseDeltaIndex(bytes)) known.set(name, digest);
    }
    const refHere = t.ref === null ? null : await repo.resolveRef((o.refspecOf ?? ((r: string) => r))(t.ref)).catch(() => null);
    const choice = await chooseDelta(repo, t.checksum, known, refHere, t.ref);
    if (choice.kind !== 'delta') continue;
    const dir = join(src.path, deltaRelDir(choice.from, t.checksum));
    const bytes = await readBounded(join(dir, 'superblock'), MAX_SUPERBLOCK_SIZE, 'static delta superblock').catch((e: unknown) => {
      if (e instanceof LarchError && e.code === 'OBJECT_MISSING') throw new LarchError('OBJECT_MISSING', `Static deltas required, but none found for ${choice.from ?? ''} to ${t.checksum}`, { to: t.checksum });
      throw e;
    });
    if (createHash('sha256').update(bytes).digest('hex') !== known.get(choice.name)) {
      throw new LarchError('OBJECT_CORRUPTED', `Invalid checksum for static delta ${choice.name}`, { name: choice.name });
    }
    const sb = decodeSuperblock(bytes);
    if (sb.to !== t.checksum || sb.from !== choice.from) throw new LarchError('OBJECT_CORRUPTED', `Static delta ${choice.name} holds the delta ${sb.from ?? ''}-${sb.to}`, { name: choice.name });
    if (o.verifyCommit !== undefined) {
      const meta = superblockCommitMeta(sb);
      await o.verifyCommit(t.checksum, sb.commit, meta === null ? null : encode('a{sv}', meta));
    }
    if (!repo.hasObjectSync('commit', t.checksum)) await repo.markCommitPartial(t.checksum);
    const r = await applySuperblock(repo, sb, directoryPartSource(dir), {
      publish: 'at-end',
      allowFallbacks: true,
      ...(o.signal !== undefined ? { signal: o.signal } : {}),
      ...(o.maxPartSize !== undefined ? { maxPartSize: o.maxPartSize } : {}),
    });
    out.push({ ...r, from: choice.from, to: t.checksum });
  }
  return out;
}

