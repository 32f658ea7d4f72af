/**
 * Declarative directory-tree builder for tests.
 *
 * A spec maps relative paths to entries. Entries are created first (parents
 * implicitly, 0755), and only then are modes and owners applied, deepest path
 * first, so that a 0444 file or a 0500 directory in the spec cannot block the
 * creation of its siblings or children. Large generated files are streamed to
 * disk chunk by chunk from a seeded generator and never held in memory.
 */
import { createWriteStream } from 'node:fs';
import { chmod, lchown, link, mkdir, symlink, writeFile } from 'node:fs/promises';
import { dirname, join, normalize, isAbsolute } from 'node:path';
import { once } from 'node:events';

export interface FileEntry {
  type: 'file';
  /** Content; default empty. Mutually exclusive with `generate`. */
  content?: string | Uint8Array;
  /** Deterministic pseudo-random content of `size` bytes from `seed`, streamed to disk. */
  generate?: { size: number; seed: number };
  /** Permission bits including setuid/setgid/sticky (default 0644). */
  mode?: number;
  uid?: number;
  gid?: number;
}
export interface DirEntry {
  type: 'dir';
  /** Permission bits (default 0755). */
  mode?: number;
  uid?: number;
  gid?: number;
}
export interface SymlinkEntry {
  type: 'symlink';
  /** Stored verbatim: relative, absolute or dangling. */
  target: string;
  uid?: number;
  gid?: number;
}
export interface HardlinkEntry {
  type: 'hardlink';
  /** Spec path (relative to the tree root) of the file this is another name for. */
  to: string;
}
export type TreeEntry = FileEntry | DirEntry | SymlinkEntry | HardlinkEntry;
/** Paths relative to the tree root (use '/' as separator) → entries; a string is a 0644 file with that content. */
export type TreeSpec = Record<string, TreeEntry | string>;

function entryOf(e: TreeEntry | string): TreeEntry {
  return typeof e === 'string' ? { type: 'file', content: e } : e;
}

function checkRelative(path: string): void {
  if (path === '' || isAbsolute(path) || normalize(path).split('/').includes('..') || path.split('/').includes('')) {
    throw new Error(`makeTree: bad spec path ${JSON.stringify(path)} (must be relative, without '..' or empty components)`);
  }
}

/**
 * Deterministic byte stream generator (xorshift128, 32-bit lanes) — fast,
 * seedable and poorly compressible, which is what a large-file test wants.
 * `fill` continues the sequence across calls.
 */
export class SeededBytes {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;
  constructor(seed: number) {
    // splitmix32-style seeding so that nearby seeds diverge immediately
    let z = seed >>> 0;
    const next = (): number => {
      z = (z + 0x9e3779b9) >>> 0;
      let t = z;
      t = Math.imul(t ^ (t >>> 16), 0x85ebca6b) >>> 0;
      t = Math.imul(t ^ (t >>> 13), 0xc2b2ae35) >>> 0;
      return (t ^ (t >>> 16)) >>> 0 || 1;
    };
    this.s0 = next();
    this.s1 = next();
    this.s2 = next();
    this.s3 = next();
  }
  /** Fills `buf` (length a multiple of 4 is fastest; any length works). */
  fill(buf: Uint8Array): Uint8Array {
    const words = buf.length >>> 2;
    const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    let { s0, s1, s2, s3 } = this;
    for (let i = 0; i < words; i++) {
      let t = s3;
      t ^= t << 11;
      t ^= t >>> 8;
      s3 = s2;
      s2 = s1;
      s1 = s0;
      s0 = (t ^ s0 ^ (s0 >>> 19)) >>> 0;
      view.setUint32(i * 4, s0, true);
    }
    for (let i = words * 4; i < buf.length; i++) {
      let t = s3;
      t ^= t << 11;
      t ^= t >>> 8;
      s3 = s2;
      s2 = s1;
      s1 = s0;
      s0 = (t ^ s0 ^ (s0 >>> 19)) >>> 0;
      buf[i] = s0 & 0xff;
    }
    Object.assign(this, { s0, s1, s2, s3 });
    return buf;
  }
}

/**
 * Writes `size` deterministic bytes from `seed` to `path`, 1 MiB at a time
 * with back-pressure; memory use is constant whatever the size.
 */
export async function writeSeededFile(path: string, size: number, seed: number): Promise<void> {
  const gen = new SeededBytes(seed);
  const out = createWriteStream(path, { flags: 'wx' });
  const CHUNK = 1 << 20;
  try {
    let left = size;
    while (left > 0) {
      const n = Math.min(CHUNK, left);
      const buf = gen.fill(Buffer.allocUnsafe(n));
      left -= n;
      if (!out.write(buf)) await once(out, 'drain');
    }
    out.end();
    await once(out, 'finish');
  } catch (e) {
    out.destroy();
    throw e;
  }
}

/**
 * Creates the entries of `spec` under `dir` (which is created if needed).
 * Files default to 0644 and directories (implicit parents and `dir` itself,
 * unless `rootMode` says otherwise) to 0755; modes are applied with chmod, so
 * the umask does not matter. uid/gid need root. Fails if a path exists.
 */
export async function makeTree(dir: string, spec: TreeSpec, opts: { rootMode?: number } = {}): Promise<void> {
  await mkdir(dir, { recursive: true });
  const entries = Object.entries(spec).map(([p, e]) => {
    checkRelative(p);
    return [p, entryOf(e)] as const;
  });
  const modes: Array<[string, number, boolean]> = [];
  const owners: Array<[string, number, number]> = [];
  // directories first, so explicit modes/owners of parents are honoured
  for (const [p, e] of entries) {
    if (e.type !== 'dir') continue;
    await mkdir(join(dir, p), { recursive: true });
    modes.push([p, e.mode ?? 0o755, true]);
    if (e.uid !== undefined || e.gid !== undefined) owners.push([p, e.uid ?? 0, e.gid ?? 0]);
  }
  for (const [p, e] of entries) {
    const full = join(dir, p);
    if (e.type === 'dir' || e.type === 'hardlink') continue;
    await mkdir(dirname(full), { recursive: true });
    if (e.type === 'file') {
      if (e.generate) {
        if (e.content !== undefined) throw new Error(`makeTree: ${p} has both content and generate`);
        await writeSeededFile(full, e.generate.size, e.generate.seed);
      } else {
        await writeFile(full, e.content ?? '', { flag: 'wx' });
      }
      modes.push([p, e.mode ?? 0o644, false]);
    } else {
      await symlink(e.target, full);
    }
    if (e.uid !== undefined || e.gid !== undefined) owners.push([p, e.uid ?? 0, e.gid ?? 0]);
  }
  for (const [p, e] of entries) {
    if (e.type !== 'hardlink') continue;
    checkRelative(e.to);
    const full = join(dir, p);
    await mkdir(dirname(full), { recursive: true });
    await link(join(dir, e.to), full);
  }
  // owners before modes: chown clears setuid/setgid bits
  for (const [p, uid, gid] of owners) await lchown(join(dir, p), uid, gid);
  // implicit parents get 0755 whatever the umask
  const explicit = new Set(entries.map(([p]) => p));
  for (const [p] of entries) {
    const parts = p.split('/');
    for (let i = 1; i < parts.length; i++) {
      const parent = parts.slice(0, i).join('/');
      if (!explicit.has(parent)) {
        explicit.add(parent);
        modes.push([parent, 0o755, true]);
      }
    }
  }
  const depth = (p: string): number => p.split('/').length;
  modes.sort((a, b) => depth(b[0]) - depth(a[0]));
  for (const [p, mode] of modes) await chmod(join(dir, p), mode);
  await chmod(dir, opts.rootMode ?? 0o755);
}
