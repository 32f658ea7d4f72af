/**
 * Shared steps of the interop suite: repo creation with either tool, the
 * commit options both tools receive, and the checks every failing command
 * must pass (one `error:` line, no stack trace, no leftovers in tmp/, no ref
 * change).
 */
import { lstat, readFile, readdir } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { larch, larchOk, ostreeOk, runOk, type RunResult } from '@larch/test-fixtures';

export type Mode = 'archive' | 'bare-user' | 'bare-user-only';

/** Options given identically to `larch commit` and `ostree commit`. */
export const COMMIT_ARGS = [
  '-s',
  'fixture subject',
  '--body=fixture body\nsecond line',
  '--timestamp=2021-02-03 04:05:06 +0000',
  '--owner-uid=0',
  '--owner-gid=0',
  '--add-metadata-string=version=1.2.3',
  '--add-metadata-string=ostree.source-title=fixture',
];

export async function initLarch(repo: string, mode: Mode): Promise<void> {
  await larchOk(['init', `--repo=${repo}`, `--mode=${mode}`]);
}

export async function initOstree(repo: string, mode: Mode): Promise<void> {
  await ostreeOk(['init', `--repo=${repo}`, `--mode=${mode}`]);
}

/** Commits `tree` with the shared options on `branch`; returns the checksum printed on stdout. */
export async function commitWith(
  tool: 'larch' | 'ostree',
  repo: string,
  tree: string,
  branch: string,
  extra: string[] = [],
): Promise<string> {
  const args = ['commit', `--repo=${repo}`, '-b', branch, ...COMMIT_ARGS, ...extra, `--tree=dir=${tree}`];
  const r = tool === 'larch' ? await larchOk(args) : await ostreeOk(args);
  const csum = r.stdout.trim();
  if (!/^[0-9a-f]{64}$/.test(csum)) throw new Error(`${tool} commit printed ${JSON.stringify(r.stdout)}, not a checksum`);
  return csum;
}

/** Every file (not directory) below `dir`, relative, sorted; [] when `dir` is missing. */
export async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  async function walk(d: string): Promise<void> {
    let names: string[];
    try {
      names = await readdir(d);
    } catch {
      return;
    }
    for (const n of names) {
      const p = join(d, n);
      const st = await lstat(p);
      if (st.isDirectory()) await walk(p);
      else out.push(relative(dir, p));
    }
  }
  await walk(dir);
  return out.sort();
}

/** refs/** as path → content, to detect any ref change. */
export async function snapshotRefs(repo: string): Promise<Record<string, string>> {
  const files = await listFiles(join(repo, 'refs'));
  const out: Record<string, string> = {};
  for (const f of files) out[f] = await readFile(join(repo, 'refs', f), 'utf8').catch(() => '<unreadable>');
  return out;
}

/**
 * Asserts the shape of a failure: non-zero exit, exactly one non-empty
 * stderr line starting with `error: `, and no stack-trace lines.
 * Returns the message for further checks.
 */
export function expectOneLineError(r: RunResult): string {
  const problems: string[] = [];
  if (r.code === 0) problems.push('exit code 0');
  if (r.signal) problems.push(`killed by ${r.signal}`);
  const lines = r.stderr.split('\n').filter((l) => l.trim() !== '');
  if (lines.length !== 1) problems.push(`${lines.length} stderr lines`);
  if (!/^error: \S/.test(lines[0] ?? '')) problems.push('stderr does not start with "error: "');
  if (/^\s+at .+(:\d+:\d+\)?|native\))$/m.test(r.stderr)) problems.push('stack trace on stderr');
  if (problems.length > 0) {
    throw new Error(`${r.command}: ${problems.join(', ')}\n--- stderr ---\n${r.stderr}--- stdout ---\n${r.stdout}`);
  }
  return lines[0];
}

/** Runs a larch command that must fail cleanly and leave `repo` as it was (tmp/ files and refs). */
export async function expectCleanFailure(args: string[], repo: string | null): Promise<string> {
  const tmpBefore = repo ? await listFiles(join(repo, 'tmp')) : [];
  const refsBefore = repo ? await snapshotRefs(repo) : {};
  const r = await larch(args, { timeoutMs: 60_000 });
  const msg = expectOneLineError(r);
  if (repo) {
    const tmpAfter = await listFiles(join(repo, 'tmp'));
    const leftovers = tmpAfter.filter((f) => !tmpBefore.includes(f));
    if (leftovers.length > 0) throw new Error(`files left in ${repo}/tmp: ${leftovers.join(', ')}`);
    const refsAfter = await snapshotRefs(repo);
    if (JSON.stringify(refsAfter) !== JSON.stringify(refsBefore)) {
      throw new Error(`refs changed: ${JSON.stringify(refsBefore)} -> ${JSON.stringify(refsAfter)}`);
    }
  }
  return msg;
}

/** Copies a repo directory with `cp -a` (bare-user objects need their user.ostreemeta xattrs). */
export async function copyRepo(from: string, to: string): Promise<void> {
  await runOk('cp', ['-a', '--', from, to]);
}

/** Memoizes an async step so several tests can share it and each reports its own failure. */
export function lazy<T>(fn: () => Promise<T>): () => Promise<T> {
  let p: Promise<T> | undefined;
  return () => (p ??= fn());
}
