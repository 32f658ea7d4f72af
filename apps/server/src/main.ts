#!/usr/bin/env node
/**
 * Entry point of the `larch-server` binary. Sets the exit status instead of calling
 * process.exit so that queued output (the access log, the last lines on stdout) is written.
 */
import { runServerCli } from './cli.js';

process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code !== 'EPIPE') throw e;
});

process.exitCode = await runServerCli(process.argv.slice(2));
