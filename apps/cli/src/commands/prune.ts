/**
 * `larch prune [--no-prune] [--refs-only] [--depth=N] [--keep-younger-than=DATE]
 * [--delete-commit=C] [--json]`: delete unreachable objects. Output lines are ostree's:
 * `Total objects: N`, then `No unreachable objects`, `Deleted N objects, SIZE freed` or, with
 * --no-prune, `Would delete: N objects, freeing SIZE` (SIZE as GLib formats it).
 */
import type { Command } from 'commander';
import { prune } from '@larch/core-store';
import type { VerbContext } from '../cli.js';
import { openRepo } from '../context.js';
import { formatSize, toJson } from '../format.js';
import { integer, parseOption, timestamp } from '../options.js';
import { allOptions, verb } from './common.js';
import { pruneSummaryCacheOf } from './remote-summary.js';

interface PruneOpts {
  prune: boolean;
  refsOnly?: boolean;
  depth?: string;
  keepYoungerThan?: string;
  deleteCommit?: string;
  json?: boolean;
}

/** Register `prune`: delete unreachable objects. */
export function registerPrune(program: Command, ctx: VerbContext): void {
  verb(program, 'prune', 'Search for unreachable objects')
    .option('--no-prune', "Only display unreachable objects; don't delete")
    .option('--refs-only', 'Only compute reachability via refs')
    .option('--depth <depth>', 'Only traverse DEPTH parents for each commit (default: -1=infinite)')
    .option('--keep-younger-than <date>', 'Prune all commits older than the specified date')
    .option('--delete-commit <commit>', 'Specify a commit to delete')
    .option('--json', 'Print JSON (see README)')
    .action(async (_o: PruneOpts, cmd: Command) => {
      const opts = allOptions<PruneOpts>(cmd);
      const depth = opts.depth === undefined ? -1 : parseOption(integer('--depth', { min: -1 }), opts.depth);
      const keepYoungerThan = opts.keepYoungerThan === undefined ? undefined : parseOption(timestamp, opts.keepYoungerThan);
      const repo = await openRepo(opts);
      const deleteCommit = opts.deleteCommit === undefined ? undefined : await repo.revParse(opts.deleteCommit);
      const result = await prune(repo, {
        noPrune: !opts.prune,
        refsOnly: Boolean(opts.refsOnly),
        depth,
        ...(keepYoungerThan !== undefined ? { keepYoungerThan } : {}),
        ...(deleteCommit !== undefined ? { deleteCommit } : {}),
      });
      await pruneSummaryCacheOf(repo); // cached summaries of deleted remotes, as ostree's prune
      if (opts.json) {
        ctx.io.out(toJson({ ...result, dryRun: !opts.prune }));
        return;
      }
      ctx.io.out(`Total objects: ${result.total}\n`);
      if (result.deleted === 0) ctx.io.out('No unreachable objects\n');
      else if (!opts.prune) ctx.io.out(`Would delete: ${result.deleted} objects, freeing ${formatSize(result.bytesFreed)}\n`);
      else ctx.io.out(`Deleted ${result.deleted} objects, ${formatSize(result.bytesFreed)} freed\n`);
    });
}
