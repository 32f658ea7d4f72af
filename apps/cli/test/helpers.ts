/**
 * Test helpers: run the built `larch` binary and the real `ostree` as child processes, make
 * scratch directories and small trees. Interop tests need `ostree`; in CI (CI=true) its absence
 * is a failure, elsewhere those tests are skipped.
 */
import { spawn, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const CLI = resolve(dirname(fileURLToPath(import.meta.url)), '../dist/main.js');

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

function result(r: SpawnSyncReturns<string>): RunResult {
  if (r.error) throw r.error;
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** Environment for both tools: UTC, no SOURCE_DATE_EPOCH or OSTREE_REPO leaking in from outside. */
function env(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const e: NodeJS.ProcessEnv = { ...process.env, TZ: 'UTC', LC_ALL: 'C.UTF-8' };
  delete e.SOURCE_DATE_EPOCH;
  delete e.OSTREE_REPO;
  for (const [k, v] of Object.entries(extra)) {
    if (v === undefined) delete e[k];
    else e[k] = v;
  }
  return e;
}

export interface RunOptions {
  cwd?: string;
  env?: Record<string, string | undefined>;
  input?: string;
}

export function larch(args: string[], opts: RunOptions = {}): RunResult {
  return result(
    spawnSync(process.execPath, [CLI, ...args], {
      encoding: 'utf8',
      cwd: opts.cwd,
      env: env(opts.env),
      input: opts.input ?? '',
      maxBuffer: 64 * 1024 * 1024,
    }),
  );
}

/** Run a program without blocking the event loop (for tests that serve over HTTP in-process). */
function spawnAsync(cmd: string, args: string[], opts: RunOptions): Promise<RunResult> {
  return new Promise((resolveRun, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, env: env(opts.env), stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolveRun({ code: code ?? -1, stdout, stderr }));
    child.stdin.end(opts.input ?? '');
  });
}

/** Like {@link larch}, without blocking the event loop. */
export function larchAsync(args: string[], opts: RunOptions = {}): Promise<RunResult> {
  return spawnAsync(process.execPath, [CLI, ...args], opts);
}

/** Like {@link ostree}, without blocking the event loop. */
export function ostreeAsync(args: string[], opts: RunOptions = {}): Promise<RunResult> {
  return spawnAsync('ostree', args, opts);
}

export function larchBytes(args: string[], opts: RunOptions = {}): { code: number; stdout: Buffer; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { cwd: opts.cwd, env: env(opts.env), input: '', maxBuffer: 256 * 1024 * 1024 });
  if (r.error) throw r.error;
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr.toString('utf8') };
}

export const HAVE_OSTREE = spawnSync('ostree', ['--version'], { encoding: 'utf8' }).status === 0;
export const IN_CI = process.env.CI === 'true';
/** Interop suites run when ostree is installed, and always in CI (where a missing ostree fails). */
export const RUN_INTEROP = HAVE_OSTREE || IN_CI;

/** Call in beforeAll of interop suites: fails loudly when ostree is required but missing. */
export function requireOstree(): void {
  if (!HAVE_OSTREE) throw new Error('the real `ostree` CLI is required for interop tests (CI=true): apt-get install -y ostree');
}

export function ostree(args: string[], opts: RunOptions = {}): RunResult {
  return result(spawnSync('ostree', args, { encoding: 'utf8', cwd: opts.cwd, env: env(opts.env), input: '', maxBuffer: 64 * 1024 * 1024 }));
}

/** Run and insist on exit 0; returns stdout. */
export function ok(r: RunResult): string {
  if (r.code !== 0) throw new Error(`exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r.stdout;
}

export async function scratch(prefix = 'larch-cli-'): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/**
 * The tree of spec/repo-format.md section 2 (`hello.txt`, `link -> hello.txt`, `sub/empty`),
 * whose commit with the spec's options is 523dfdfd… in every mode.
 */
export async function makeSpecTree(dir: string): Promise<string> {
  await mkdir(join(dir, 'sub'), { recursive: true });
  await writeFile(join(dir, 'hello.txt'), 'hello\n');
  await writeFile(join(dir, 'sub/empty'), '');
  await symlink('hello.txt', join(dir, 'link'));
  await chmod(join(dir, 'hello.txt'), 0o644);
  await chmod(join(dir, 'sub/empty'), 0o644);
  await chmod(join(dir, 'sub'), 0o755);
  await chmod(dir, 0o755);
  return dir;
}

/** A second tree that differs from the spec tree by a modification, a deletion and additions. */
export async function makeChangedTree(dir: string): Promise<string> {
  await mkdir(join(dir, 'd2'), { recursive: true });
  await mkdir(join(dir, 'sub'), { recursive: true });
  await writeFile(join(dir, 'hello.txt'), 'changed\n');
  await writeFile(join(dir, 'new.txt'), 'new\n');
  await writeFile(join(dir, 'd2/z'), 'z\n');
  await symlink('hello.txt', join(dir, 'link'));
  for (const f of ['hello.txt', 'new.txt', 'd2/z']) await chmod(join(dir, f), 0o644);
  for (const d of ['', 'd2', 'sub']) await chmod(join(dir, d), 0o755);
  return dir;
}

export const SPEC_COMMIT = '523dfdfd32c67bb444a4ea88a9ed9c0757147265835f891b5eee72895668366d';
export const SPEC_COMMIT_ARGS = [
  '--timestamp=2020-01-01 00:00:00 +0000',
  '-s',
  'subj',
  '--body=body',
  '--add-metadata-string=version=1.0',
  '-b',
  'test',
  '--owner-uid=0',
  '--owner-gid=0',
];

export function exists(p: string): boolean {
  return existsSync(p);
}

/** Every failure must be exactly one `error: ...` line and no stack trace. */
/**
 * A usage error as ostree prints it: the command's usage on stderr (once), then one `error:` line,
 * stdout empty, exit 1. Returns the error message.
 */
export function expectUsageError(r: RunResult, path: string): string {
  if (r.code !== 1) throw new Error(`expected exit 1, got ${r.code}: ${r.stderr}`);
  if (r.stdout !== '') throw new Error(`expected nothing on stdout, got:\n${r.stdout}`);
  if (!r.stderr.startsWith(`Usage:\n  ${path} [OPTION…]`) || r.stderr.match(/^Usage/gm)?.length !== 1) throw new Error(`expected the usage of ${path} once, got:\n${r.stderr}`);
  const last = r.stderr.trimEnd().split('\n').pop() ?? '';
  if (!last.startsWith('error: ')) throw new Error(`expected an error line last, got:\n${r.stderr}`);
  return last.slice('error: '.length);
}

export function expectOneErrorLine(r: RunResult): string {
  const lines = r.stderr.split('\n').filter((l) => l !== '');
  if (r.code !== 1) throw new Error(`expected exit 1, got ${r.code}: ${r.stderr}`);
  if (lines.length !== 1 || !lines[0].startsWith('error: ')) throw new Error(`expected one error line, got:\n${r.stderr}`);
  if (/\bat .*\.js:\d+/.test(r.stderr)) throw new Error(`stack trace printed:\n${r.stderr}`);
  return lines[0].slice('error: '.length);
}

/**
 * An archive repo at DIR/repo with two commits on `test`: the spec tree (c1), then the changed
 * tree a day later (c2). The static-delta tests' fixture.
 */
export async function twoCommitRepo(dir: string): Promise<{ repo: string; c1: string; c2: string }> {
  const repo = join(dir, 'repo');
  ok(larch(['init', `--repo=${repo}`, '--mode=archive']));
  const t1 = await makeSpecTree(join(dir, 't1'));
  const t2 = await makeChangedTree(join(dir, 't2'));
  const c1 = ok(larch(['commit', `--repo=${repo}`, ...SPEC_COMMIT_ARGS, `--tree=dir=${t1}`])).trim();
  const c2 = ok(larch(['commit', `--repo=${repo}`, ...SPEC_COMMIT_ARGS.filter((a) => !a.startsWith('--timestamp')), '--timestamp=2020-01-02 00:00:00 +0000', `--tree=dir=${t2}`])).trim();
  return { repo, c1, c2 };
}
