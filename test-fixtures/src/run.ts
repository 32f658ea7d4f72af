/**
 * Runners for the two command lines the interop suite compares: the real
 * `ostree` (the reference, 2022.7) and Larch's own `larch` (apps/cli, run with
 * the current Node from its built dist/main.js).
 *
 * Commands run asynchronously so tests can start several at once (concurrent
 * commits). Output is collected as UTF-8 text; the commands print little.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface RunOptions {
  cwd?: string;
  /** Extra environment variables, merged over process.env (with LC_ALL=C.UTF-8). */
  env?: Record<string, string | undefined>;
  /** Bytes or text written to stdin, which is then closed. */
  input?: string | Uint8Array;
  /** Kills the process with SIGKILL after this many milliseconds (default 10 minutes). */
  timeoutMs?: number;
}

export interface RunResult {
  stdout: string;
  /** stdout as raw bytes (for binary output such as `cat`). */
  stdoutBytes: Buffer;
  stderr: string;
  /** Exit code; null when the process died from a signal. */
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The command line, for messages. */
  command: string;
}

/** An external command exited non-zero (or by a signal) where success was expected. */
export class CommandFailedError extends Error {
  readonly result: RunResult;
  constructor(result: RunResult) {
    super(
      `${result.command} failed (${result.signal ? `signal ${result.signal}` : `exit ${result.code}`}): ` +
        (result.stderr.trim() || result.stdout.trim() || '(no output)'),
    );
    this.name = 'CommandFailedError';
    this.result = result;
  }
}

function quote(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

/** Runs `file args…` without a shell and resolves with its output; never rejects for a non-zero exit. */
export function run(file: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const command = [file, ...args].map(quote).join(' ');
  return new Promise((resolvePromise, reject) => {
    const child = spawn(file, args, {
      cwd: opts.cwd,
      // One UTF-8 locale for every child, whatever the caller's: ostree and larch print text in
      // the locale's charset, and tests compare names as they are (opts.env may choose another).
      env: { ...process.env, LC_ALL: 'C.UTF-8', ...opts.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 600_000);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const stdoutBytes = Buffer.concat(out);
      resolvePromise({
        stdout: stdoutBytes.toString('utf8'),
        stdoutBytes,
        stderr: Buffer.concat(err).toString('utf8'),
        code,
        signal,
        command,
      });
    });
    child.stdin.on('error', () => undefined); // the child may exit without reading
    child.stdin.end(opts.input ?? '');
  });
}

/** Like `run`, but rejects with CommandFailedError (carrying stderr) unless the exit code is 0. */
export async function runOk(file: string, args: readonly string[], opts?: RunOptions): Promise<RunResult> {
  const r = await run(file, args, opts);
  if (r.code !== 0) throw new CommandFailedError(r);
  return r;
}

// ---------------------------------------------------------------- ostree

let ostreeAvailable: boolean | undefined;

/** True when an `ostree` binary is on PATH and answers `--version`. The answer is cached. */
export function hasOstree(): boolean {
  if (ostreeAvailable === undefined) {
    const r = spawnSync('ostree', ['--version'], { stdio: 'ignore' });
    ostreeAvailable = r.status === 0;
  }
  return ostreeAvailable;
}

/**
 * Throws when `ostree` is missing. Call it from a `beforeAll` of an interop
 * suite: with `describeInterop` below, the suite runs in CI even when the
 * binary is missing, and this makes it fail with a clear message.
 */
export function requireOstree(): void {
  if (!hasOstree()) {
    throw new Error('the ostree CLI is not installed (interop tests need it; install the Debian package "ostree")');
  }
}

/** Whether interop suites run: 'run' (ostree present), 'fail' (missing, CI), 'skip' (missing, local). */
export function interopMode(env: NodeJS.ProcessEnv = process.env): 'run' | 'fail' | 'skip' {
  if (hasOstree()) return 'run';
  return env.CI === 'true' ? 'fail' : 'skip';
}

/**
 * Picks the `describe` to use for a suite that drives the real `ostree`:
 * the given one when ostree is installed or CI=true (so a missing binary
 * fails the run in CI), its `.skip` otherwise. Pass the test framework's own
 * `describe` so this package does not import a test runner:
 * `const describeInterop = interopDescribe(describe)`.
 */
export function interopDescribe<D extends { skip: unknown }>(describe: D): D {
  return interopMode() === 'skip' ? (describe.skip as D) : describe;
}

/** Runs the real `ostree` with `args`; never rejects for a non-zero exit. */
export function ostree(args: readonly string[], opts?: RunOptions): Promise<RunResult> {
  return run('ostree', args, opts);
}

/** Runs the real `ostree` and rejects with its stderr unless it exits 0. */
export function ostreeOk(args: readonly string[], opts?: RunOptions): Promise<RunResult> {
  return runOk('ostree', args, opts);
}

// ---------------------------------------------------------------- larch

/**
 * Path of the built `larch` entry point, apps/cli/dist/main.js, found relative
 * to this package (test-fixtures/dist → the monorepo root), never absolute.
 */
export function larchCliPath(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  return resolve(here, '..', '..', 'apps', 'cli', 'dist', 'main.js');
}

/** True when the CLI has been built. */
export function hasLarch(): boolean {
  return existsSync(larchCliPath());
}

/**
 * The command line that runs larch: `node apps/cli/dist/main.js`, or, when
 * the environment variable LARCH_CLI is set, that executable instead (used to
 * check the interop suite itself against another implementation, e.g. a
 * wrapper that runs `ostree`).
 */
function larchCommand(args: readonly string[]): [string, string[]] {
  const override = process.env.LARCH_CLI;
  if (override) return [override, [...args]];
  return [process.execPath, [larchCliPath(), ...args]];
}

/** Runs `node apps/cli/dist/main.js args…`; never rejects for a non-zero exit. */
export function larch(args: readonly string[], opts?: RunOptions): Promise<RunResult> {
  const [file, argv] = larchCommand(args);
  return run(file, argv, opts);
}

/** Runs `larch` and rejects with its stderr unless it exits 0. */
export function larchOk(args: readonly string[], opts?: RunOptions): Promise<RunResult> {
  const [file, argv] = larchCommand(args);
  return runOk(file, argv, opts);
}
