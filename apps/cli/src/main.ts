#!/usr/bin/env node
/**
 * Entry point of the `larch` binary. Sets the exit status instead of calling process.exit so
 * that output still queued for stdout is written first.
 */
import { runCli } from './cli.js';

// `larch log | head` closes stdout early: stop quietly, as a shell tool should.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw e;
});

process.exitCode = await runCli(process.argv.slice(2));
