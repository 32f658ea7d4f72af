/**
 * Compares two directory trees the way a checkout must reproduce a commit:
 * entry types, regular-file content (sha256, streamed), permission bits,
 * symlink targets, and optionally owners and extended attributes.
 * Timestamps are ignored (OSTree sets them to 0). Returns every difference so
 * a test can assert an empty list and print what went wrong otherwise.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';

export type EntryKind = 'file' | 'dir' | 'symlink' | 'other';

export interface TreeDifference {
  /** Path relative to the compared roots; '' is the root itself. */
  path: string;
  what: 'only-in-a' | 'only-in-b' | 'type' | 'content' | 'mode' | 'symlink-target' | 'uid' | 'gid' | 'xattrs';
  a?: string;
  b?: string;
}

export interface CompareOptions {
  /** Permission bits compared for regular files (default 0o7777). */
  fileModeMask?: number;
  /** Permission bits compared for directories (default 0o7777). */
  dirModeMask?: number;
  /** Compare the roots' own modes too (default true). */
  rootMode?: boolean;
  /** Compare uid and gid (default false). */
  owners?: boolean;
  /** Compare extended attributes via `getfattr` (default false; needs the attr package). */
  xattrs?: boolean;
  /** Relative paths to leave out (with everything below them). */
  ignore?: (path: string) => boolean;
}

function kindOf(mode: number): EntryKind {
  switch (mode & 0o170000) {
    case 0o100000:
      return 'file';
    case 0o040000:
      return 'dir';
    case 0o120000:
      return 'symlink';
    default:
      return 'other';
  }
}

/** sha256 hex of a file's content, read as a stream. */
export async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  await pipeline(createReadStream(path), h);
  return h.digest('hex');
}

function readXattrs(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = spawn('getfattr', ['--absolute-names', '-h', '-d', '-m', '-', '-e', 'hex', '--', path]);
    const out: Buffer[] = [];
    p.stdout.on('data', (b: Buffer) => out.push(b));
    p.on('error', reject);
    p.on('close', (code) => {
      if (code !== 0) return reject(new Error(`getfattr failed on ${path}`));
      // drop the "# file:" header line; the rest is "name=0xHEX" lines, sorted by getfattr
      resolve(
        Buffer.concat(out)
          .toString('utf8')
          .split('\n')
          .filter((l) => l !== '' && !l.startsWith('# file:'))
          .sort()
          .join('\n'),
      );
    });
  });
}

const oct = (n: number): string => '0' + n.toString(8);

/**
 * Walks `a` and `b` in parallel (lstat, never following symlinks) and returns
 * every difference. Read-only; follows no links, so it is safe on hostile trees.
 */
export async function compareTrees(a: string, b: string, opts: CompareOptions = {}): Promise<TreeDifference[]> {
  const diffs: TreeDifference[] = [];
  const fileMask = opts.fileModeMask ?? 0o7777;
  const dirMask = opts.dirModeMask ?? 0o7777;

  async function visit(rel: string): Promise<void> {
    const pa = rel === '' ? a : join(a, rel);
    const pb = rel === '' ? b : join(b, rel);
    const [sa, sb] = await Promise.all([lstat(pa), lstat(pb)]);
    const ka = kindOf(sa.mode);
    const kb = kindOf(sb.mode);
    if (ka !== kb) {
      diffs.push({ path: rel, what: 'type', a: ka, b: kb });
      return;
    }
    if (ka === 'file' || (ka === 'dir' && (rel !== '' || opts.rootMode !== false))) {
      const mask = ka === 'file' ? fileMask : dirMask;
      if ((sa.mode & mask) !== (sb.mode & mask)) {
        diffs.push({ path: rel, what: 'mode', a: oct(sa.mode & mask), b: oct(sb.mode & mask) });
      }
    }
    if (opts.owners) {
      if (sa.uid !== sb.uid) diffs.push({ path: rel, what: 'uid', a: String(sa.uid), b: String(sb.uid) });
      if (sa.gid !== sb.gid) diffs.push({ path: rel, what: 'gid', a: String(sa.gid), b: String(sb.gid) });
    }
    if (opts.xattrs) {
      const [xa, xb] = await Promise.all([readXattrs(pa), readXattrs(pb)]);
      if (xa !== xb) diffs.push({ path: rel, what: 'xattrs', a: xa, b: xb });
    }
    if (ka === 'symlink') {
      const [ta, tb] = await Promise.all([readlink(pa), readlink(pb)]);
      if (ta !== tb) diffs.push({ path: rel, what: 'symlink-target', a: ta, b: tb });
    } else if (ka === 'file') {
      if (sa.size !== sb.size) {
        diffs.push({ path: rel, what: 'content', a: `${sa.size} bytes`, b: `${sb.size} bytes` });
      } else {
        const [ha, hb] = await Promise.all([sha256File(pa), sha256File(pb)]);
        if (ha !== hb) diffs.push({ path: rel, what: 'content', a: `sha256:${ha}`, b: `sha256:${hb}` });
      }
    } else if (ka === 'dir') {
      const [na, nb] = await Promise.all([readdir(pa), readdir(pb)]);
      const setB = new Set(nb);
      const setA = new Set(na);
      const child = (n: string): string => (rel === '' ? n : `${rel}/${n}`);
      for (const n of [...na].sort()) {
        const c = child(n);
        if (opts.ignore?.(c)) continue;
        if (!setB.has(n)) diffs.push({ path: c, what: 'only-in-a' });
        else await visit(c);
      }
      for (const n of [...nb].sort()) {
        const c = child(n);
        if (!setA.has(n) && !opts.ignore?.(c)) diffs.push({ path: c, what: 'only-in-b' });
      }
    }
  }

  await visit('');
  return diffs;
}

/** One line per difference, for assertion messages. */
export function formatDifferences(diffs: readonly TreeDifference[]): string {
  return diffs
    .map((d) => `${d.what} ${JSON.stringify(d.path)}${d.a !== undefined || d.b !== undefined ? `: ${d.a ?? '-'} vs ${d.b ?? '-'}` : ''}`)
    .join('\n');
}
