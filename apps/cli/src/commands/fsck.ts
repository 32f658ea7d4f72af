/**
 * `larch fsck [--all] [--delete] [--verify-bindings] [-q] [--json]`: verify the repository.
 *
 * Output follows ostree 2022.7: the phase lines on stdout (not with -q), then either
 * `object fsck of N commits completed successfully - no errors found.` (exit 0) or, on
 * corruption, the first problem as `error: MESSAGE` (exit 1). With --all every problem is
 * listed on stderr, one per line, followed by `error: Repository corruption encountered`.
 */
import type { Command } from 'commander';
import { fsck } from '@larch/core-store';
import type { VerbContext } from '../cli.js';
import { CommandError, openRepo } from '../context.js';
import { oneLine, toJson } from '../format.js';
import { allOptions, verb } from './common.js';

interface FsckOpts {
  all?: boolean;
  delete?: boolean;
  quiet?: boolean;
  verifyBindings?: boolean;
  json?: boolean;
}

/** Register `fsck`: verify the repository. */
export function registerFsck(program: Command, ctx: VerbContext): void {
  verb(program, 'fsck', 'Check the repository for consistency')
    .option('-q, --quiet', 'Only print error messages')
    .option('-a, --all', "Don't stop on first error")
    .option('--delete', 'Remove corrupted objects')
    .option('--verify-bindings', 'Verify ref bindings')
    .option('--json', 'Print the report as JSON (see README); exit status as without it')
    .action(async (_o: FsckOpts, cmd: Command) => {
      const opts = allOptions<FsckOpts>(cmd);
      const repo = await openRepo(opts);
      const report = await fsck(repo, {
        all: Boolean(opts.all),
        delete: Boolean(opts.delete),
        verifyBindings: Boolean(opts.verifyBindings),
      });
      const { io } = ctx;
      if (opts.json) {
        io.out(toJson(report));
        if (report.errors.length > 0) throw new CommandError('Repository corruption encountered');
        return;
      }
      const verified = report.commits - report.partial;
      if (!opts.quiet) {
        io.out('Validating refs...\nValidating refs in collections...\nEnumerating commits...\n');
        io.out(`Verifying content integrity of ${verified} commit objects...\n`);
      }
      for (const c of report.markedPartial) io.out(`Marking commit as partial: ${c}\n`);
      if (report.partial > 0) io.out(`${report.partial} partial commits not verified\n`);
      if (report.errors.length === 0) {
        io.out(`object fsck of ${verified} commits completed successfully - no errors found.\n`);
        return;
      }
      if (!opts.all) throw new CommandError(report.errors[0].message);
      for (const e of report.errors) io.err(`${oneLine(e.message)}\n`);
      throw new CommandError('Repository corruption encountered');
    });
}
