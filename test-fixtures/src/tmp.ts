/**
 * Temporary directories for tests. Every directory lives under the OS temp
 * dir with a `larch-` prefix so a crashed run leaves recognisable leftovers.
 * Cleanup restores write permission first: fixture trees contain 0444 files
 * and 0700/0555 directories that `rm -rf` as a non-root user could not remove.
 */
import { chmod, lstat, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TmpDir {
  /** Absolute path of the directory (exists until cleanup). */
  readonly path: string;
  /** Joins path segments below the directory. */
  join(...parts: string[]): string;
  /** Removes the directory and everything below it; safe to call twice. */
  cleanup(): Promise<void>;
}

async function makeWritable(path: string): Promise<void> {
  const st = await lstat(path).catch(() => null);
  if (!st || !st.isDirectory()) return;
  await chmod(path, 0o700).catch(() => undefined);
  for (const name of await readdir(path).catch(() => [] as string[])) {
    await makeWritable(join(path, name));
  }
}

/** Creates a fresh empty directory. No locking; the name is unique (mkdtemp). */
export async function tmpDir(prefix = 'larch-'): Promise<TmpDir> {
  const path = await mkdtemp(join(tmpdir(), prefix));
  let removed = false;
  return {
    path,
    join: (...parts) => join(path, ...parts),
    async cleanup() {
      if (removed) return;
      removed = true;
      await makeWritable(path);
      await rm(path, { recursive: true, force: true });
    },
  };
}

/** Runs `fn` with a fresh temporary directory and always removes it afterwards. */
export async function withTmpDir<T>(fn: (dir: TmpDir) => Promise<T>, prefix?: string): Promise<T> {
  const dir = await tmpDir(prefix);
  try {
    return await fn(dir);
  } finally {
    await dir.cleanup();
  }
}

/**
 * A group of temporary directories removed together, for use with a test
 * framework's `afterAll`/`afterEach`: `const tmp = tmpDirs(); afterAll(tmp.cleanupAll)`.
 */
export function tmpDirs(prefix?: string): { make(): Promise<TmpDir>; cleanupAll(): Promise<void> } {
  const made: TmpDir[] = [];
  return {
    async make() {
      const d = await tmpDir(prefix);
      made.push(d);
      return d;
    },
    cleanupAll: async () => {
      for (const d of made.splice(0)) await d.cleanup();
    },
  };
}
