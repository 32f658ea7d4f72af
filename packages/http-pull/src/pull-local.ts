/**
 * `pullLocal`: copy commits from another repository on this machine (`ostree pull-local`),
 * given as a path or a file:// URL, in any mode. Objects are read through core-store. An
 * untrusted source goes through exactly the verification of a network pull (pull-engine.ts):
 * metadata checksums and formats, content re-hashed while it is copied. An archive source hands
 * over its `.filez` files as they are; other modes hand over header + payload. On one
 * filesystem, metadata objects (and content objects between repositories of the same mode) are
 * hardlinked, as ostree does, after the same check (pull-local-link.ts); so are bare-user regular
 * files into bare-user-only.
 *
 * Trust (`trust`): ostree trusts every local source unless `--untrusted`. Here a source is
 * trusted with `'owner'` only when its directory belongs to the invoking user (a repository
 * another user can write is not), always with `'always'` (`--trust-source`), never with
 * `'never'` (`--untrusted`, the default of this function). A trusted source's objects are filed
 * under the names it gives them without being checked against them, as ostree does: a corrupted
 * source object is copied as it is (pull-local-trusted.ts) and `fsck` finds it later.
 *
 * Refs: `refs/heads/REF` in the destination (or `refs/remotes/REMOTE/REF` with `remote`).
 * Signatures (`ostree pull-local --gpg-verify --gpg-verify-summary --remote=R`): with
 * `gpgVerify` every commit copied is checked by the verifier, against remote R's keys, before
 * it is stored (as in a network pull); with `gpgVerifySummary` the source's `summary` is
 * checked against its `summary.sig` before anything is read.
 * Locking: shared lock on the destination; the source is only read. Crash guarantee: as `pull`.
 */
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LarchError, Repo, isChecksum, validateRefName, type Checksum } from '@larch/core-store';
import { pullLocalDeltas } from '@larch/delta';
import { resolveLimits, type PullLimits } from './limits.js';
import { ProgressTracker, type PullProgress } from './progress.js';
import { PullEngine, type CommitTarget } from './pull-engine.js';
import { LinkImporter } from './pull-local-link.js';
import { LocalRepoSource } from './pull-source.js';
import { TaskGroup } from './pull-transfer.js';
import { moveRefs, pullResult, type PullResult } from './pull.js';
import { getRemote } from './remote-config.js';
import type { PullVerifier } from './verifier.js';

/** Options of {@link pullLocal}. */
export interface PullLocalOptions {
  /** Destination repository. */
  repo: Repo;
  /** Source repository: a path or a file:// URL. */
  src: string;
  /** Refs (heads of the source) or commit checksums; default: every ref of the source (`R:REF` of a remote is refused). */
  refs?: string[];
  /** Parents to follow: 0 (default), N, or -1 for all. */
  depth?: number;
  /** Write `refs/remotes/REMOTE/REF` instead of `refs/heads/REF`. */
  remote?: string;
  commitMetadataOnly?: boolean;
  /** Check each commit's signatures with `verifier` against `remote`'s keys (needs both). */
  gpgVerify?: boolean;
  /** Check the source's summary against its summary.sig with `verifier` (needs `remote`). */
  gpgVerifySummary?: boolean;
  /** Signature checks (from the signing package), for `gpgVerify` / `gpgVerifySummary`. */
  verifier?: PullVerifier;
  /**
   * Take the commits through the source's static deltas (`--require-static-deltas`), as ostree
   * then pulls from a local repository; see @larch/delta's `pullLocalDeltas`. The object walk
   * that follows completes and checks each commit.
   */
  requireStaticDeltas?: boolean;
  /**
   * Which sources are trusted (their objects taken without checking them against their names,
   * as ostree's pull-local without `--untrusted`; a corrupted source is then copied unnoticed and
   * fsck finds it later): `'owner'` a source whose directory belongs to the invoking user (the
   * CLI's default), `'always'` (`--trust-source`), `'never'` (`--untrusted`; the default here).
   */
  trust?: 'owner' | 'always' | 'never';
  /** Refuse regular files with mode bits outside 0775, as `ostree pull-local --bareuseronly-files`. */
  bareuseronlyFiles?: boolean;
  /** Skip the commits' ref-binding checks, as `ostree pull-local --disable-verify-bindings`. */
  disableVerifyBindings?: boolean;
  /**
   * Hardlink objects from a source on the same filesystem, after checking them unless trusted
   * (default true, as ostree): metadata in any mode, content between repositories of the same
   * mode and from bare-user into bare-user-only; false always copies.
   */
  hardlink?: boolean;
  signal?: AbortSignal;
  onProgress?: (p: PullProgress) => void;
  limits?: Partial<PullLimits>;
}

/** Resolve the `src` argument to a directory path. */
function srcPath(src: string): string {
  if (src.startsWith('file:')) {
    try {
      return fileURLToPath(src);
    } catch (e) {
      throw new LarchError('INVALID_ARGUMENT', `Invalid file URL ${src}`, { src }, { cause: e });
    }
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(src)) throw new LarchError('INVALID_ARGUMENT', `pull-local needs a path or file:// URL, not ${src}`, { src });
  return src;
}

/**
 * Pull commits from a local repository. Locking: shared lock on `repo`. Limits and errors as
 * {@link pull} (no network, so no retries); a missing ref is REF_NOT_FOUND
 * (`Refspec 'x' not found`).
 */
export async function pullLocal(opts: PullLocalOptions): Promise<PullResult> {
  if (opts.depth !== undefined && (!Number.isInteger(opts.depth) || opts.depth < -1)) throw new TypeError(`Invalid depth ${opts.depth}`);
  const src = await Repo.open(srcPath(opts.src));
  const { repo } = opts;
  const verifyCtx = opts.gpgVerify || opts.gpgVerifySummary ? verificationContext(opts) : null;
  if (verifyCtx !== null && opts.gpgVerifySummary) {
    const summary = await optionalFile(join(src.path, 'summary'));
    if (summary === null) throw new LarchError('BAD_CONFIG', 'GPG verification enabled, but no summary found (use gpg-verify-summary=false in remote config to disable)', { src: opts.src, reason: 'verification' });
    await verifyCtx.verifier.verifySummary(summary, await optionalFile(join(src.path, 'summary.sig')), { ...verifyCtx.ctx, required: ['gpg-verify-summary'] });
  }
  const limits = resolveLimits(opts.limits);
  const targets: CommitTarget[] = [];
  // Without refs, every ref as `ostree refs` lists them, as ostree: a remote's `R:REF` is then
  // refused by the name check below (`Invalid ref name R:REF`).
  const names = opts.refs && opts.refs.length > 0 ? opts.refs : [...(await src.listRefs()).keys()];
  for (const name of names) {
    if (isChecksum(name)) {
      targets.push({ checksum: name, ref: null, maxSize: limits.maxMetadataSize });
      continue;
    }
    validateRefName(name);
    const c = await src.resolveRef(name);
    if (c === null) throw new LarchError('REF_NOT_FOUND', `Refspec '${name}' not found`, { refspec: name, path: src.path });
    targets.push({ checksum: c, ref: name, maxSize: limits.maxMetadataSize });
  }
  const progress = new ProgressTracker(opts.onProgress);
  const group = new TaskGroup(opts.signal);
  const trust = await sourceTrusted(src.path, opts.trust ?? 'never');
  const bareuseronly = Boolean(opts.bareuseronlyFiles);
  const linkInto =
    opts.hardlink !== false
      ? new LinkImporter(src, repo, (await stat(repo.path)).uid, limits.maxContentSize, trust, !opts.gpgVerify, bareuseronly)
      : undefined;
  const source = new LocalRepoSource(src, {
    onBytes: (n) => progress.addBytes(n),
    trust,
    destMode: repo.mode,
    ...(linkInto !== undefined ? { linkInto } : {}),
  });
  return repo.withLock(
    'shared',
    async () => {
      const engine = new PullEngine({
        repo,
        source,
        limits,
        progress,
        group,
        depth: opts.depth ?? 0,
        commitMetadataOnly: Boolean(opts.commitMetadataOnly),
        subpath: null,
        bareuseronlyFiles: bareuseronly,
        ...(opts.disableVerifyBindings ? { disableVerifyBindings: true } : {}),
        ...(verifyCtx !== null && opts.gpgVerify
          ? {
              verifyCommit: async (checksum: Checksum, bytes: Uint8Array, meta: Uint8Array | null) => {
                await verifyCtx.verifier.verifyCommit(bytes, meta, { ...verifyCtx.ctx, required: ['gpg-verify'], checksum });
              },
            }
          : {}),
      });
      if (opts.requireStaticDeltas) {
        await pullLocalDeltas({
          repo,
          src,
          targets,
          refspecOf: (ref) => (opts.remote !== undefined ? `${opts.remote}:${ref}` : ref),
          ...(verifyCtx !== null && opts.gpgVerify
            ? { verifyCommit: (checksum: Checksum, bytes: Uint8Array, meta: Uint8Array | null) => verifyCtx.verifier.verifyCommit(bytes, meta, { ...verifyCtx.ctx, required: ['gpg-verify'], checksum }) }
            : {}),
          ...(opts.signal !== undefined ? { signal: opts.signal } : {}),
        });
      }
      const done = await engine.run(targets);
      const refs = await moveRefs(repo, targets, (ref) => (opts.remote !== undefined ? `${opts.remote}:${ref}` : ref));
      return pullResult(refs, done, targets, progress);
    },
    opts.signal ? { signal: opts.signal } : {},
  );
}

/**
 * Whether a source repository is trusted under `policy`: with `'owner'`, when its directory
 * belongs to the invoking user (ostree compares the same st_uid for its hardlink rule). Another
 * user who can write the source could put anything under any name in it.
 */
export async function sourceTrusted(path: string, policy: 'owner' | 'always' | 'never'): Promise<boolean> {
  if (policy !== 'owner') return policy === 'always';
  const uid = process.getuid?.();
  return uid !== undefined && (await stat(path)).uid === uid;
}

function verificationContext(opts: PullLocalOptions): { verifier: PullVerifier; ctx: { remote: string; config: ReturnType<typeof getRemote> } } {
  if (opts.remote === undefined) throw new TypeError('gpgVerify and gpgVerifySummary need the remote whose keys are used');
  if (opts.verifier === undefined) {
    throw new LarchError('BAD_CONFIG', `Signature verification requested for pull-local from ${opts.src}, but no signature verifier is available`, { remote: opts.remote, reason: 'verification' });
  }
  return { verifier: opts.verifier, ctx: { remote: opts.remote, config: getRemote(opts.repo, opts.remote, undefined, { fetchable: false }) } };
}

async function optionalFile(path: string): Promise<Uint8Array | null> {
  try {
    return await readFile(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}
