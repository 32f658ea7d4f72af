/**
 * What every verb needs besides its own logic: where output goes, how the repository is found,
 * and the one error type the CLI itself raises (argument mistakes). Everything that knows the
 * repository format lives in @larch/core-store; verbs only parse, call, print.
 */
import { access } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { Repo } from '@larch/core-store';
import { localeText } from './output-charset.js';

/** A mistake in the command line: printed as `error: MESSAGE`, exit status 1. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** An expected failure of a verb (not a usage mistake): printed as `error: MESSAGE`, exit 1. */
export class CommandError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CommandError';
  }
}

/** Where verbs write. Kept as an object so output can be captured and stdout errors handled once. */
export interface Io {
  out(text: string | Uint8Array): void;
  err(text: string): void;
  /** Wait until everything written to stdout has been handed to the OS. */
  flush(): Promise<void>;
  readonly stdout: NodeJS.WritableStream;
  readonly stderrIsTTY: boolean;
}

/** The real process streams; text is converted to the locale's charset as ostree's is. */
export function processIo(): Io {
  // Text in the locale's charset, as GLib's g_print/g_printerr write ostree's; bytes as they are.
  const text = localeText();
  return {
    out: (t) => {
      process.stdout.write(typeof t === 'string' ? text(t) : t);
    },
    err: (t) => {
      process.stderr.write(text(t));
    },
    flush: () =>
      new Promise<void>((res) => {
        // An empty write calls back once everything queued before it is written.
        if (process.stdout.writableLength === 0) res();
        else process.stdout.write('', () => res());
      }),
    stdout: process.stdout,
    stderrIsTTY: Boolean(process.stderr.isTTY),
  };
}

/** The options every repository verb accepts. */
export interface RepoOptions {
  repo?: string;
}

/** The system repository: `ostree/repo` under $OSTREE_SYSROOT, or under `/`, as ostree finds it. */
function defaultSystemRepo(): string {
  const sysroot = process.env.OSTREE_SYSROOT;
  return join(sysroot !== undefined && sysroot !== '' ? resolve(sysroot) : '/', 'ostree/repo');
}

async function looksLikeRepo(dir: string): Promise<boolean> {
  try {
    await access(join(dir, 'config'));
    await access(join(dir, 'objects'));
    return true;
  } catch {
    return false;
  }
}

/**
 * Find the repository as ostree does: `--repo`, else $OSTREE_REPO, else the current directory if
 * it is a repository, else `ostree/repo` under $OSTREE_SYSROOT (default `/`) if that exists.
 */
export async function repoPath(opts: RepoOptions): Promise<string> {
  const given = opts.repo ?? process.env.OSTREE_REPO;
  if (given !== undefined && given !== '') return resolve(given);
  if (await looksLikeRepo('.')) return resolve('.');
  const system = defaultSystemRepo();
  if (await looksLikeRepo(system)) return system;
  throw new UsageError('Command requires a --repo argument');
}

/** Open the repository named by the options (see repoPath); REPO_NOT_FOUND / BAD_CONFIG from core-store. */
export async function openRepo(opts: RepoOptions): Promise<Repo> {
  // Repo.open recreates a removed tmp/ (and tmp/cache/) of a writable repository, as ostree does.
  return Repo.open(await repoPath(opts));
}

let interrupted: NodeJS.Signals | undefined;

/** The signal that stopped an {@link interruptible} operation in this process, if one did. */
export function interruptedBy(): NodeJS.Signals | undefined {
  return interrupted;
}

/**
 * Run a long operation with an AbortSignal that fires on SIGINT/SIGTERM, so the package can stop
 * cleanly (discard its staging files, leave refs untouched) instead of the process dying mid-write.
 * The handlers are removed afterwards; a second signal while stopping kills the process as usual.
 */
export async function interruptible<T>(fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const ac = new AbortController();
  const onSignal = (sig: NodeJS.Signals): void => {
    interrupted = sig;
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    ac.abort(new Error(`Interrupted by ${sig}`));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    return await fn(ac.signal);
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  }
}
