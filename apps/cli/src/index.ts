/**
 * @larch/cli as a module: `runCli(argv)` runs the `larch` command in-process and resolves to
 * its exit status. The binary (dist/main.js) is a thin wrapper around it.
 */
export { runCli, type VerbContext } from './cli.js';
export { processIo, type Io } from './context.js';
