/**
 * `larch-server`: parse flags, open the repositories (or build the demo one), open the API
 * (database, tokens, publisher, fleet, read API) when a database is configured, start serving,
 * print one `Serving PATH at URL` line per repository on stdout, and shut down gracefully on
 * SIGINT/SIGTERM (HTTP first, then queued publish jobs, the fleet's last writes, the database).
 * `larch-server token …` manages API tokens instead (token-cli.ts). Exit statuses: 0 after a
 * clean shutdown, 1 on a runtime error, 2 on a usage error.
 */
import type { Writable } from 'node:stream';
import { Repo } from '@larch/core-store';
import { AccessLog } from './access-log.js';
import { openApiStack, type ApiStack } from './api-stack.js';
import { defaultStateDir, ensureDemoRepo, serverVersion } from './demo-repo.js';
import { USAGE, UsageError, resolveOptions } from './options.js';
import { startServer, type RunningServer } from './server.js';
import { runTokenCli } from './token-cli.js';

/** The built console's directory, or undefined when @larch/console is not installed. */
async function findConsoleDir(): Promise<string | undefined> {
  try {
    return (await import('@larch/console')).consoleDir();
  } catch {
    return undefined;
  }
}

/** Streams and hooks the command uses, injectable for tests. */
export interface CliIo {
  stdout: Writable;
  stderr: Writable;
  /** Registers the shutdown trigger (default: SIGINT and SIGTERM). */
  onSignal?: (handler: (signal: string) => void) => void;
}

function sanitize(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\x00-\x08\x0b-\x1f\x7f]/g, '?').slice(0, 2000);
}

/**
 * Run the server command to completion (until a signal shuts it down).
 * Resolves with the exit status.
 */
export async function runServerCli(argv: readonly string[], io: CliIo = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  const err = (msg: string): void => {
    io.stderr.write(`larch-server: error: ${sanitize(msg)}\n`);
  };
  if (argv[0] === 'token') {
    try {
      return await runTokenCli(argv.slice(1), io);
    } catch (e) {
      if (e instanceof UsageError) {
        err(e.message);
        io.stderr.write('Try larch-server token --help\n');
        return 2;
      }
      err((e as Error).message);
      return 1;
    }
  }
  let opts;
  try {
    opts = await resolveOptions(argv);
  } catch (e) {
    if (e instanceof UsageError) {
      err(e.message);
      io.stderr.write('Try larch-server --help\n');
      return 2;
    }
    throw e;
  }
  if (opts.help) {
    io.stdout.write(USAGE);
    return 0;
  }
  if (opts.version) {
    io.stdout.write(`larch-server ${serverVersion()}\n`);
    return 0;
  }

  let log: AccessLog | undefined;
  let running: RunningServer;
  let stack: ApiStack | undefined;
  try {
    let repos = opts.repos;
    if (repos.length === 0) {
      const demo = await ensureDemoRepo({ stateDir: opts.stateDir ?? defaultStateDir() });
      io.stderr.write(`Demo repository ${demo.created ? 'built' : 'reused'}: branch ${demo.ref}, commit ${demo.commit}\n`);
      repos = [{ prefix: '/', path: demo.path, name: 'default' }];
    }
    for (const r of repos) {
      const repo = await Repo.open(r.path);
      if (repo.mode !== 'archive') {
        io.stderr.write(`larch-server: warning: ${r.path} is a ${repo.mode} repository; ostree pull over HTTP only accepts archive repositories\n`);
      }
    }
    if (opts.database !== undefined) {
      stack = await openApiStack({
        database: opts.database,
        repos,
        ...(opts.autoPause !== undefined ? { autoPause: opts.autoPause } : {}),
        log: (line) => io.stderr.write(`larch-server: ${sanitize(line)}\n`),
      });
    }
    log = opts.accessLog !== undefined ? AccessLog.toFile(opts.accessLog, opts.logFormat) : AccessLog.toStream(io.stderr, opts.logFormat);
    const consoleDir = stack !== undefined ? await findConsoleDir() : undefined;
    running = await startServer({
      repos,
      bind: opts.bind,
      port: opts.port,
      log,
      maxConnections: opts.maxConnections,
      headersTimeoutMs: opts.headersTimeoutMs,
      keepAliveTimeoutMs: opts.keepAliveTimeoutMs,
      objectCacheBytes: opts.objectCacheBytes,
      ...(stack !== undefined ? { api: stack.api } : {}),
      ...(consoleDir !== undefined ? { consoleDir } : {}),
    });
  } catch (e) {
    err((e as Error).message);
    await stack?.close().catch(() => undefined);
    await log?.close();
    return 1;
  }

  for (const m of running.mounts) {
    io.stdout.write(`Serving ${m.path} at ${running.url}${m.prefixText.slice(1)}\n`);
  }
  if (stack !== undefined) io.stderr.write(`API at ${running.url}api/v1/ (database ${opts.database})\n`);

  await new Promise<void>((resolve) => {
    let signalled = 0;
    const handler = (signal: string): void => {
      signalled++;
      if (signalled === 1) {
        io.stderr.write(`larch-server: ${signal}: finishing in-flight requests (up to ${opts.shutdownTimeoutMs / 1000} s)\n`);
        void running.shutdown(opts.shutdownTimeoutMs).then(resolve);
      } else {
        running.server.closeAllConnections();
      }
    };
    if (io.onSignal) io.onSignal(handler);
    else {
      process.on('SIGINT', handler);
      process.on('SIGTERM', handler);
    }
  });
  await stack?.close();
  await log.close();
  return 0;
}

