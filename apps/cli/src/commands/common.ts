/**
 * Shared option wiring for verbs: every repository verb takes `--repo PATH` (also before the
 * verb) and `-v/--verbose`, and rejects arguments it does not declare.
 */
import type { Command } from 'commander';
import type { RepoOptions } from '../context.js';

export interface GlobalOptions extends RepoOptions {
  verbose?: boolean;
}

/** Declare a verb with ostree's common options. `shortVerbose` is false where -v means something else. */
export function verb(program: Command, name: string, description: string, shortVerbose = true): Command {
  return program
    .command(name)
    .description(description)
    .option('--repo <path>', 'Path to OSTree repository (defaults to $OSTREE_REPO or the current directory)')
    .option(shortVerbose ? '-v, --verbose' : '--verbose', 'Print debug information on errors')
    .allowExcessArguments(false);
}

/** This verb's options merged with those given before the verb (`larch --repo=R log X`). */
export function allOptions<T extends object>(cmd: Command): T & GlobalOptions {
  return cmd.optsWithGlobals() as T & GlobalOptions;
}
