/**
 * The commit modifier (ostree's OstreeRepoCommitModifier as `ostree commit` builds it): what a
 * commit changes in the metadata of what it records, and what it leaves out. In ostree's order,
 * `--owner-uid/gid`, `--mode-ro-executables`, `--statoverride` (add, else set) and canonical
 * permissions (forced by a bare-user-only repository); xattrs are read from the input unless
 * `noXattrs` or canonical permissions; `--skip-list` paths are left out. Every skip-list and
 * statoverride path must be met by the end of the commit, as in ostree.
 */
import { LarchError, ioError } from './errors.js';
import { readXattrs } from './objects/content-io.js';
import type { Repo } from './repo.js';
import type { CommitTreeOptions } from './repo-commit.js';
import { S_IFDIR, S_IFMT, S_IFREG, type Xattr } from './types.js';

export class CommitModifier {
  /** `canonicalPermissions`, or a bare-user-only repository. */
  readonly canonical: boolean;
  /** Whether xattrs are recorded. */
  readonly withXattrs: boolean;
  /** Skip-list paths (`/dir/file`), and those met so far. */
  readonly skip = new Set<string>();
  readonly matched = new Set<string>();
  /**
   * Any modifier at all: as ostree, it makes a commit "modified", so a `--tree=ref` source is
   * rewritten file by file.
   */
  readonly modified: boolean;
  private readonly overAdd: Map<string, number>;
  private readonly overSet: Map<string, number>;
  /** Statoverride paths not met yet; each is taken off when its path is seen. */
  private readonly overPending: Set<string>;

  constructor(
    repo: Repo,
    private readonly opts: CommitTreeOptions,
  ) {
    this.canonical = opts.canonicalPermissions === true || repo.mode === 'bare-user-only';
    this.withXattrs = !this.canonical && opts.noXattrs !== true;
    for (const raw of opts.skipList ?? []) {
      const s = raw.trim().replace(/\/+$/, '');
      if (s !== '') this.skip.add(s);
    }
    this.overAdd = new Map(opts.statOverrides?.add ?? []);
    this.overSet = new Map(opts.statOverrides?.set ?? []);
    this.overPending = new Set([...this.overAdd.keys(), ...this.overSet.keys()]);
    this.modified =
      this.canonical ||
      opts.noXattrs === true ||
      opts.ownerUid !== undefined ||
      opts.ownerGid !== undefined ||
      opts.statOverrides !== undefined ||
      opts.skipList !== undefined ||
      opts.modeRoExecutables === true ||
      opts.consume === true ||
      opts.generateSizes === true;
  }

  /**
   * The commit filter, in ostree's order: --owner-uid/gid, --mode-ro-executables (regular files),
   * --statoverride (add, else set), then canonical permissions. `rel` is `/path` (`/` for the root).
   * A property, so that it can be handed out on its own (commit-tar.ts).
   */
  readonly modify = (rel: string, mode: number, uid: number, gid: number): { mode: number; uid: number; gid: number } => {
    const opts = this.opts;
    if (opts.ownerUid !== undefined) uid = opts.ownerUid;
    if (opts.ownerGid !== undefined) gid = opts.ownerGid;
    const fmt = mode & S_IFMT;
    if (opts.modeRoExecutables && fmt === S_IFREG && (mode & 0o111) !== 0) mode &= ~0o222;
    const add = this.overAdd.get(rel);
    const set = this.overSet.get(rel);
    if (add !== undefined) {
      mode = (mode | add) >>> 0;
      this.overPending.delete(rel);
    } else if (set !== undefined) {
      mode = (fmt | set) >>> 0;
      this.overPending.delete(rel);
    }
    if (this.canonical) {
      if (fmt === S_IFREG) mode &= S_IFREG | 0o755;
      else if (fmt === S_IFDIR) mode &= S_IFDIR | 0o755;
      uid = 0;
      gid = 0;
    }
    return { mode, uid, gid };
  };

  /** The xattrs to record for the input file `abs` (none unless `withXattrs`). */
  xattrsOf(abs: string): Xattr[] {
    if (!this.withXattrs) return [];
    try {
      return readXattrs(abs);
    } catch (e) {
      throw ioError(e, 'Reading xattrs of', abs);
    }
  }

  /** Throws INVALID_ARGUMENT naming the skip-list, then the statoverride, paths never met. */
  checkAllMatched(): void {
    const unmatched = [...this.skip].filter((s) => !this.matched.has(s));
    if (unmatched.length) {
      throw new LarchError('INVALID_ARGUMENT', `Unmatched skip-list paths: ${unmatched.join(', ')}`, { unmatched });
    }
    if (this.overPending.size) {
      throw new LarchError('INVALID_ARGUMENT', `Unmatched statoverride paths: ${[...this.overPending].join(', ')}`, { unmatched: [...this.overPending] });
    }
  }
}

/** The modifier's path of a walked directory: `/` for the root, else its `/path`. */
export function rootRel(rel: string): string {
  return rel === '' ? '/' : rel;
}
