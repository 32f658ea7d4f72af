/**
 * Sentinels for escape tests: a file placed *outside* the directory an
 * operation may write to, recorded precisely (content hash, mode, inode,
 * size, mtime) together with the listing of its directory, so a test can
 * assert afterwards that nothing was written through a symlink or a `..`.
 */
import { randomBytes } from 'node:crypto';
import { lstat, mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { sha256File } from './compare.js';

export interface Sentinel {
  /** The directory that holds the sentinel (outside the target). */
  readonly dir: string;
  /** The sentinel file itself. */
  readonly path: string;
  /** Lists what changed since creation (empty when untouched). Never follows symlinks. */
  changes(): Promise<string[]>;
  /** Throws an Error naming every change unless the sentinel and its directory are untouched. */
  assertUntouched(): Promise<void>;
}

async function snapshot(dir: string, file: string, allow: ReadonlySet<string>): Promise<string[]> {
  const st = await lstat(file).catch(() => null);
  const lines = [(await readdir(dir)).filter((n) => !allow.has(n)).sort().join('\0')];
  if (!st) return [...lines, 'missing'];
  lines.push(
    `type=${(st.mode & 0o170000).toString(8)} mode=${(st.mode & 0o7777).toString(8)} ino=${st.ino} nlink=${st.nlink}`,
    `size=${st.size} mtime=${st.mtimeMs} uid=${st.uid} gid=${st.gid}`,
    st.isFile() ? `sha256=${await sha256File(file)}` : 'not a regular file',
  );
  return lines;
}

/**
 * Creates `dir` (if needed) and a file `opts.name` (default "sentinel") in it
 * with random content and mode 0644. Point hostile symlinks at `dir` or
 * `path`, run the operation, then `await sentinel.assertUntouched()`.
 * Names in `opts.allow` may appear in `dir` without counting as a change
 * (e.g. the operation's own target directory placed inside `dir`).
 */
export async function makeSentinel(dir: string, opts: { name?: string; allow?: string[] } = {}): Promise<Sentinel> {
  await mkdir(dir, { recursive: true });
  const path = join(dir, opts.name ?? 'sentinel');
  const allow = new Set(opts.allow ?? []);
  await writeFile(path, `sentinel ${randomBytes(16).toString('hex')}\n`, { flag: 'wx', mode: 0o644 });
  const snap = (): Promise<string[]> => snapshot(dir, path, allow);
  const before = await snap();
  const labels = ['directory listing', 'type and mode', 'size and times', 'content'];
  const changes = async (): Promise<string[]> => {
    const now = await snap();
    const out: string[] = [];
    for (let i = 0; i < Math.max(before.length, now.length); i++) {
      if (before[i] !== now[i]) {
        out.push(`${labels[i] ?? 'sentinel'} changed: ${JSON.stringify(before[i] ?? null)} -> ${JSON.stringify(now[i] ?? null)}`);
      }
    }
    return out;
  };
  return {
    dir,
    path,
    changes,
    async assertUntouched() {
      const c = await changes();
      if (c.length > 0) throw new Error(`sentinel ${path} was touched:\n${c.join('\n')}`);
    },
  };
}
