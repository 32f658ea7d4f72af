/**
 * `larch prune [--no-prune] [--refs-only] [--depth=N] [--keep-younger-than=DATE]
 * [--delete-commit=C] [--static-deltas-only] [--retain-branch-depth=BRANCH=DEPTH]…
 * [--only-branch=BRANCH]… [--commit-only] [--json]`: delete unreachable objects. Output lines are
 * ostree's: `Total objects: N` (`Total (commit only) objects: N`), then `No unreachable objects`,
 * `Deleted N objects, SIZE freed` or, with --no-prune, `Would delete: N objects, freeing SIZE`
 * (SIZE as GLib formats it).
 */
import type { Command } from 'commander';
import { prune } from '@larch/core-store';
import type { VerbContext } from '../cli.js';
import { CommandError, openRepo } from '../context.js';
import { formatSize, toJson } from '../format.js';
import { collect, integer, parseOption, timestamp } from '../options.js';
import { allOptions, verb } from './common.js';
import { pruneSummaryCacheOf } from './remote-summary.js';

interface PruneOpts {
  prune: boolean;
  refsOnly?: boolean;
  depth?: string;
  keepYoungerThan?: string;
  deleteCommit?: string;
  staticDeltasOnly?: boolean;
  retainBranchDepth?: string[];
  onlyBranch?: string[];
  commitOnly?: boolean;
  json?: boolean;
}

const UNITS: Record<string, number> = { second: 1, sec: 1, minute: 60, min: 60, hour: 3600, day: 86400, week: 604800, fortnight: 1209600 };

/**
 * `N UNIT(s) ago` (and `UNIT ago`, `last UNIT`), the relative dates gnulib's parse_datetime reads
 * for ostree; months and years move the calendar date. Anything else goes to the shared parser.
 */
function parseDate(text: string, now = new Date()): bigint {
  const m = /^\s*(?:(\d+)\s+|(last)\s+)?(second|sec|minute|min|hour|day|week|fortnight|month|year)s?(\s+ago)?\s*$/i.exec(text);
  if (m && (m[4] !== undefined || m[2] !== undefined)) {
    const n = m[2] !== undefined ? 1 : m[1] !== undefined ? Number(m[1]) : 1;
    const unit = m[3].toLowerCase();
    const d = new Date(now.getTime());
    if (unit === 'month') d.setMonth(d.getMonth() - n);
    else if (unit === 'year') d.setFullYear(d.getFullYear() - n);
    else d.setTime(d.getTime() - n * UNITS[unit] * 1000);
    return BigInt(Math.floor(d.getTime() / 1000));
  }
  return parseOption(timestamp, text);
}

/** `BRANCH=DEPTH` as ostree reads it (g_ascii_strtoll: leading digits count, trailing junk is ignored). */
function branchDepth(spec: string): [string, number] {
  const eq = spec.indexOf('=');
  if (eq < 0) throw new CommandError(`Invalid value ${spec}, must specify BRANCH=DEPTH`);
  const text = spec.slice(eq + 1);
  const m = /^\s*[+-]?\d+/.exec(text);
  if (!m) throw new CommandError(`Invalid depth ${text}`);
  const n = Number(m[0]);
  if (!Number.isSafeInteger(n) || n > 2 ** 31 - 1 || n < -(2 ** 31)) throw new CommandError(`Out of range depth ${text}`);
  return [spec.slice(0, eq), n];
}

/** Register `prune`: delete unreachable objects. */
export function registerPrune(program: Command, ctx: VerbContext): void {
  verb(program, 'prune', 'Search for unreachable objects')
    .option('--no-prune', "Only display unreachable objects; don't delete")
    .option('--refs-only', 'Only compute reachability via refs')
    .option('--depth <depth>', 'Only traverse DEPTH parents for each commit (default: -1=infinite)')
    .option('--delete-commit <commit>', 'Specify a commit to delete')
    .option('--keep-younger-than <date>', 'Prune all commits older than the specified date')
    .option('--static-deltas-only', 'Change the behavior of delete-commit and keep-younger-than to prune only static deltas')
    .option('--retain-branch-depth <branch=depth>', 'Additionally retain BRANCH=DEPTH commits', collect)
    .option('--only-branch <branch>', 'Only prune BRANCH (may be specified multiple times)', collect)
    .option('--commit-only', 'Only traverse and delete commit objects.')
    .option('--json', 'Print JSON (see README)')
    .action(async (_o: PruneOpts, cmd: Command) => {
      const opts = allOptions<PruneOpts>(cmd);
      const depth = opts.depth === undefined ? -1 : parseOption(integer('--depth', { min: -1 }), opts.depth);
      const repo = await openRepo(opts);
      if (opts.deleteCommit !== undefined && !opts.prune) throw new CommandError('Cannot specify both --delete-commit and --no-prune');
      const deleteCommit = opts.deleteCommit === undefined ? undefined : await repo.revParse(opts.deleteCommit);
      if (opts.staticDeltasOnly && deleteCommit === undefined) {
        throw new CommandError('--static-deltas-only requires --delete-commit; see https://github.com/ostreedev/ostree/issues/1479');
      }
      const keepYoungerThan = opts.keepYoungerThan === undefined ? undefined : parseDate(opts.keepYoungerThan);
      const retainBranchDepth = opts.retainBranchDepth === undefined ? undefined : new Map(opts.retainBranchDepth.map(branchDepth));
      // Each --only-branch must resolve (ostree's "Refspec 'X' not found").
      if (opts.onlyBranch) for (const b of opts.onlyBranch) await repo.revParse(b);
      const result = await prune(repo, {
        noPrune: !opts.prune,
        refsOnly: Boolean(opts.refsOnly),
        depth,
        commitOnly: Boolean(opts.commitOnly),
        staticDeltasOnly: Boolean(opts.staticDeltasOnly),
        ...(keepYoungerThan !== undefined ? { keepYoungerThan } : {}),
        ...(deleteCommit !== undefined ? { deleteCommit } : {}),
        ...(retainBranchDepth !== undefined ? { retainBranchDepth } : {}),
        ...(opts.onlyBranch !== undefined ? { onlyBranches: opts.onlyBranch } : {}),
      });
      await pruneSummaryCacheOf(repo); // cached summaries of deleted remotes, as ostree's prune
      if (opts.json) {
        ctx.io.out(toJson({ ...result, dryRun: !opts.prune }));
        return;
      }
      ctx.io.out(opts.commitOnly ? `Total (commit only) objects: ${result.total}\n` : `Total objects: ${result.total}\n`);
      if (result.deleted === 0) ctx.io.out('No unreachable objects\n');
      else if (!opts.prune) ctx.io.out(`Would delete: ${result.deleted} objects, freeing ${formatSize(result.bytesFreed)}\n`);
      else ctx.io.out(`Deleted ${result.deleted} objects, ${formatSize(result.bytesFreed)} freed\n`);
    });
}
