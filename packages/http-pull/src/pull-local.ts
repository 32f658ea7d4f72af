/**
 * `pullLocal`: copy commits from another repository on this machine (`ostree pull-local`),
 * given as a path or a file:// URL, in any mode. Objects are read through core-store and go
 * through exactly the verification of a network pull (pull-engine.ts): metadata checksums and
 * formats, content re-hashed while it is copied. An archive source hands over its `.filez`
 * files as they are; other modes hand over header + payload.
 *
 * Refs: `refs/heads/REF` in the destination (or `refs/remotes/REMOTE/REF` with `remote`).
 * Locking: shared lock on the destination; the source is only read. Crash guarantee: as `pull`.
 */
import { fileURLToPath } from 'node:url';
import { LarchError, Repo, isChecksum, validateRefName } from '@larch/core-store';
import { resolveLimits, type PullLimits } from './limits.js';
import { ProgressTracker, type PullProgress } from './progress.js';
import { PullEngine, type CommitTarget } from './pull-engine.js';
import { LocalRepoSource } from './pull-source.js';
import { TaskGroup } from './pull-transfer.js';
import { moveRefs, pullResult, type PullResult } from './pull.js';

/** Options of {@link pullLocal}. */
export interface PullLocalOptions {
  /** Destination repository. */
  repo: Repo;
  /** Source repository: a path or a file:// URL. */
  src: string;
  /** Refs (heads of the source) or commit checksums; default: every head of the source. */
  refs?: string[];
  /** Parents to follow: 0 (default), N, or -1 for all. */
  depth?: number;
  /** Write `refs/remotes/REMOTE/REF` instead of `refs/heads/REF`. */
  remote?: string;
  commitMetadataOnly?: boolean;
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
  const limits = resolveLimits(opts.limits);
  const targets: CommitTarget[] = [];
  const names = opts.refs && opts.refs.length > 0 ? opts.refs : [...(await src.listRefs({ kind: 'heads' })).keys()];
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
  const source = new LocalRepoSource(src, (n) => progress.addBytes(n));
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
      });
      const done = await engine.run(targets);
      const refs = await moveRefs(repo, targets, (ref) => (opts.remote !== undefined ? `${opts.remote}:${ref}` : ref));
      return pullResult(refs, done, targets, progress);
    },
    opts.signal ? { signal: opts.signal } : {},
  );
}
