/**
 * Refreshing what clients read first: the static delta indexes, the `summary` and its
 * `summary.sig`, in that order, as `ostree summary -u` does (OSTree's `regenerate_metadata`
 * reindexes the deltas before writing the summary, and signs the new bytes after). It lives in
 * this package because the delta indexes are this package's; the summary and its signature
 * are core-store's.
 *
 * Why the order keeps readers safe: a client that reads the new summary finds every delta it
 * names already indexed; the summary is renamed into place whole, and its old signature is
 * removed before (core-store's `generateSummary`), so a reader never pairs new bytes with an
 * old signature: it sees an unsigned summary until the new `summary.sig` is renamed in.
 */
import { generateSummary, signSummary, type Checksum, type Repo, type RepoSigner } from '@larch/core-store';
import type { Variant } from '@larch/gvariant';
import { listDeltas, reindexDeltas } from './manage.js';

/** Options of {@link refreshSummary}. */
export interface RefreshSummaryOptions {
  /** Extra summary metadata (`summary -u --add-metadata`); replaces generated keys of the same name. */
  additionalMetadata?: Array<[string, Variant]>;
  /** Sign the new summary into a fresh `summary.sig` with these (none: the summary stays unsigned). */
  signers?: readonly RepoSigner[];
  /** Regeneration time for `ostree.summary.last-modified`, epoch seconds (default: now). */
  now?: bigint;
  signal?: AbortSignal;
}

/**
 * Reindex every static delta, regenerate the summary and sign it: `ostree summary -u
 * [--gpg-sign=KEYID…] [--sign=KEY…]`. Returns the new summary's bytes.
 *
 * Locking: the repository's exclusive lock for all three steps, so no ref moves and no other
 * writer signs between the summary and its signature.
 * Crash: each file is replaced whole. Stopped after reindexing: the old summary (still valid
 * for its deltas) with fresh indexes. Stopped after the summary: the new summary, unsigned (a
 * client that requires a signed summary refuses it until the next refresh). Never a summary
 * with a signature over other bytes.
 */
export async function refreshSummary(repo: Repo, opts: RefreshSummaryOptions = {}): Promise<Uint8Array> {
  return repo.withLock('exclusive', async () => {
    opts.signal?.throwIfAborted();
    await reindexDeltas(repo);
    opts.signal?.throwIfAborted();
    const bytes = await generateSummary(repo, {
      ...(opts.additionalMetadata !== undefined ? { additionalMetadata: opts.additionalMetadata } : {}),
      ...(opts.now !== undefined ? { now: opts.now } : {}),
    });
    if (opts.signers !== undefined && opts.signers.length > 0) await signSummary(repo, opts.signers, opts.signal !== undefined ? { signal: opts.signal } : {});
    return bytes;
  });
}

/**
 * Regenerate the delta index of `to` (or all of them), as `ostree static-delta reindex [--to]`.
 * Locking: exclusive. Crash: each index file is replaced whole; a stopped run leaves some
 * indexes old, which the next reindex (or summary refresh) rewrites.
 */
export async function reindexDeltasLocked(repo: Repo, opts: { to?: Checksum } = {}): Promise<void> {
  await repo.withLock('exclusive', () => reindexDeltas(repo, opts));
}

/** True when the delta from `from` (null: from scratch) to `to` exists (has a superblock). No lock; read-only. */
export async function hasDelta(repo: Repo, from: Checksum | null, to: Checksum): Promise<boolean> {
  return (await listDeltas(repo)).some((d) => d.from === from && d.to === to);
}
