/**
 * The tree a commit is assembled in, as ostree's OstreeMutableTree: each directory holds its
 * dirmeta checksum, its files (name → content checksum) and its subdirectories. Several sources
 * (`--base`, each `--tree=dir|ref|tar`) are overlaid into one tree in order: a later file replaces
 * an earlier one of the same name, directories merge, and the later directory's metadata wins.
 *
 * A directory taken whole from the repository (`--base`, or `--tree=ref` into an empty tree) is
 * lazy: it keeps the checksum of its dirtree and reads it only when something is changed inside.
 * Writing the tree then reuses that dirtree as is. Any change clears the kept checksum of the
 * directory and of every directory above it, so exactly the changed paths are serialized again.
 */
import type { Repo } from './repo.js';
import { LarchError } from './errors.js';
import type { Checksum } from './types.js';
import { validateName } from './validate.js';

export class MutableTree {
  /** The dirmeta checksum, or null before any source has set it. */
  meta: Checksum | null = null;
  /** The dirtree checksum while unchanged from the repository, else null. */
  contents: Checksum | null = null;
  private parent: MutableTree | null = null;
  /** Lazy: the entries are still only in the repository's dirtree `contents`. */
  private lazy = false;
  private readonly fileMap = new Map<string, Checksum>();
  private readonly dirMap = new Map<string, MutableTree>();

  /** A lazy tree standing for the repository's dirtree `contents` with dirmeta `meta`. */
  static fromRepo(contents: Checksum, meta: Checksum): MutableTree {
    const t = new MutableTree();
    t.fillLazy(contents, meta);
    return t;
  }

  /** True while nothing has been put into this tree. */
  get isEmpty(): boolean {
    return !this.lazy && this.meta === null && this.fileMap.size === 0 && this.dirMap.size === 0;
  }

  /** Make an empty tree stand for an existing dirtree, unread (ostree's fill_empty_from_dirtree). */
  fillLazy(contents: Checksum, meta: Checksum): void {
    this.contents = contents;
    this.meta = meta;
    this.lazy = true;
  }

  /** Read the entries of a lazy tree from the repository (its kept checksum stays valid). */
  async load(repo: Repo): Promise<void> {
    if (!this.lazy) return;
    const dt = await repo.readDirTree(this.contents!);
    for (const f of dt.files) this.fileMap.set(f.name, f.checksum);
    for (const d of dt.dirs) {
      const child = MutableTree.fromRepo(d.treeChecksum, d.metaChecksum);
      child.parent = this;
      this.dirMap.set(d.name, child);
    }
    this.lazy = false;
  }

  private invalidate(): void {
    for (let t: MutableTree | null = this; t !== null && t.contents !== null; t = t.parent) t.contents = null;
  }

  setMeta(checksum: Checksum): void {
    if (checksum === this.meta) return;
    this.parent?.invalidate();
    this.meta = checksum;
  }

  /** Put a file in (loaded) tree; a directory of that name is an error, as in ostree. */
  replaceFile(name: string, checksum: Checksum): void {
    validateName(name);
    this.assertLoaded();
    if (this.dirMap.has(name)) throw new LarchError('INVALID_ARGUMENT', `Can't replace directory with file: ${name}`, { name });
    this.invalidate();
    this.fileMap.set(name, checksum);
  }

  /** The subdirectory `name` of a loaded tree, created empty when missing; a file of that name is an error. */
  ensureDir(name: string): MutableTree {
    validateName(name);
    this.assertLoaded();
    if (this.fileMap.has(name)) throw new LarchError('INVALID_ARGUMENT', `Can't replace file with directory: ${name}`, { name });
    let child = this.dirMap.get(name);
    if (child === undefined) {
      this.invalidate();
      child = new MutableTree();
      child.parent = this;
      this.dirMap.set(name, child);
    }
    return child;
  }

  get files(): ReadonlyMap<string, Checksum> {
    this.assertLoaded();
    return this.fileMap;
  }

  get dirs(): ReadonlyMap<string, MutableTree> {
    this.assertLoaded();
    return this.dirMap;
  }

  private assertLoaded(): void {
    if (this.lazy) throw new LarchError('INVALID_ARGUMENT', 'mutable tree used before load()', {});
  }
}
