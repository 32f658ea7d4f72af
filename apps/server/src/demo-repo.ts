/**
 * The embedded demo repository: what a bare `larch-server` serves, so that a first-time user
 * can pull something real without preparing a repository.
 *
 * It is an archive repository built with @larch/core-store from the sample tree shipped in
 * dist/demo-tree (copied from test-fixtures/sample-os at build time), committed with a fixed
 * timestamp, uid/gid 0 and no xattrs, so its commit checksum depends only on the tree.
 *
 * It lives in a cache directory and is reused across starts. A stamp file next to it records a
 * digest of the tree and the server version; when either changes, the repository is rebuilt in
 * a temporary sibling directory and renamed into place, so a crash mid-build leaves either the
 * old repository or none (a leftover `demo-repo.tmp-*` directory is removed on the next build).
 * Two servers starting at once may both build; the second rename fails and that server uses the
 * repository the first one published.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import * as fsp from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Repo, commitTree, generateSummary, readSummaryFile, type Checksum } from '@larch/core-store';

/** Branch the demo commit is on. */
export const DEMO_REF = 'larch/demo';
/** Commit timestamp of the demo commit (2024-01-01T00:00:00Z), fixed so rebuilds are identical. */
export const DEMO_TIMESTAMP = 1_704_067_200n;

/** The server's package version. */
export function serverVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

/** Where the demo tree shipped with the package is. */
export function demoTreePath(): string {
  const p = fileURLToPath(new URL('./demo-tree', import.meta.url));
  if (existsSync(p)) return p;
  // Running from src/ (tests, tsx): use the built copy.
  const built = fileURLToPath(new URL('../dist/demo-tree', import.meta.url));
  if (existsSync(built)) return built;
  throw new Error(`Demo tree not found at ${p}; build @larch/server first (pnpm turbo run build --filter=@larch/server...)`);
}

/** `--state-dir`, else `$XDG_CACHE_HOME/larch`, else `~/.cache/larch`. */
export function defaultStateDir(env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env.XDG_CACHE_HOME;
  return join(xdg && xdg.startsWith('/') ? xdg : join(homedir(), '.cache'), 'larch');
}

/** Digest of a tree: names, types, modes, sizes, symlink targets and contents, in sorted order. */
async function treeDigest(root: string): Promise<string> {
  const h = createHash('sha256');
  const walk = async (dir: string, rel: string): Promise<void> => {
    const names = (await fsp.readdir(dir)).sort();
    for (const name of names) {
      const abs = join(dir, name);
      const st = await fsp.lstat(abs);
      h.update(`${rel}/${name}\0${st.mode.toString(8)}\0`);
      if (st.isDirectory()) await walk(abs, `${rel}/${name}`);
      else if (st.isSymbolicLink()) h.update(`${await fsp.readlink(abs)}\0`);
      else h.update(`${st.size}\0`).update(await fsp.readFile(abs));
    }
  };
  await walk(root, '');
  return h.digest('hex');
}

interface Stamp {
  version: string;
  tree: string;
  commit: string;
}

/** Result of ensureDemoRepo(). */
export interface DemoRepo {
  path: string;
  ref: string;
  commit: Checksum;
  /** False when an existing repository was reused. */
  created: boolean;
}

async function reusable(repoPath: string, stampPath: string, want: Omit<Stamp, 'commit'>): Promise<Checksum | null> {
  try {
    const stamp = JSON.parse(await fsp.readFile(stampPath, 'utf8')) as Stamp;
    if (stamp.version !== want.version || stamp.tree !== want.tree) return null;
    const repo = await Repo.open(repoPath);
    if (repo.mode !== 'archive') return null;
    const ref = await repo.resolveRef(DEMO_REF);
    if (ref === null || ref !== stamp.commit || !(await repo.hasObject('commit', ref))) return null;
    await readSummaryFile(repo);
    return ref;
  } catch {
    return null;
  }
}

/**
 * Build (or reuse) the demo archive repository `<stateDir>/demo-repo` from `tree`
 * (default: the tree shipped with the package). Locking: the exclusive/shared repository locks
 * of core-store while committing into the temporary repository. Crash: see the file comment.
 */
export async function ensureDemoRepo(opts: { stateDir: string; tree?: string }): Promise<DemoRepo> {
  const tree = opts.tree ?? demoTreePath();
  const repoPath = join(opts.stateDir, 'demo-repo');
  const stampPath = join(opts.stateDir, 'demo-repo.stamp');
  const want = { version: serverVersion(), tree: await treeDigest(tree) };
  const existing = await reusable(repoPath, stampPath, want);
  if (existing) return { path: repoPath, ref: DEMO_REF, commit: existing, created: false };

  await fsp.mkdir(opts.stateDir, { recursive: true });
  for (const name of await fsp.readdir(opts.stateDir)) {
    if (name.startsWith('demo-repo.tmp-') || name.startsWith('demo-repo.old-')) {
      await fsp.rm(join(opts.stateDir, name), { recursive: true, force: true });
    }
  }
  const tmp = await fsp.mkdtemp(join(opts.stateDir, 'demo-repo.tmp-'));
  try {
    const repo = await Repo.init({ path: tmp, mode: 'archive' });
    const { commit } = await commitTree(repo, {
      tree,
      branch: DEMO_REF,
      subject: 'Larch demo tree',
      body: 'The sample tree shipped with larch-server.',
      parent: null,
      timestamp: DEMO_TIMESTAMP,
      ownerUid: 0,
      ownerGid: 0,
      noXattrs: true,
    });
    await generateSummary(repo, { now: DEMO_TIMESTAMP });

    if (existsSync(repoPath)) {
      const old = `${repoPath}.old-${process.pid}`;
      await fsp.rename(repoPath, old).catch(() => undefined);
      await fsp.rm(old, { recursive: true, force: true });
    }
    try {
      await fsp.rename(tmp, repoPath);
    } catch (e) {
      // Another server published a repository first: use it if it is complete.
      const other = await reusable(repoPath, stampPath, want);
      if (other) return { path: repoPath, ref: DEMO_REF, commit: other, created: false };
      throw e;
    }
    const stampTmp = `${stampPath}.tmp-${process.pid}`;
    await fsp.writeFile(stampTmp, `${JSON.stringify({ ...want, commit } satisfies Stamp)}\n`);
    await fsp.rename(stampTmp, stampPath);
    return { path: repoPath, ref: DEMO_REF, commit, created: true };
  } finally {
    await fsp.rm(tmp, { recursive: true, force: true });
  }
}
