/**
 * `larch checkout [-U] [--union|--union-add|--union-identical] [--subpath=P] REV [DEST]`:
 * materialise a commit as a directory. DEST defaults to REV, as in ostree.
 */
import type { Command } from 'commander';
import { checkout } from '@larch/core-store';
import type { VerbContext } from '../cli.js';
import { interruptible, openRepo, UsageError } from '../context.js';
import { toJson } from '../format.js';
import { startProgress } from '../progress.js';
import { allOptions, verb } from './common.js';
import { holdYoungGeneration } from './walk-memory.js';

interface CheckoutOpts {
  userMode?: boolean;
  union?: boolean;
  unionAdd?: boolean;
  unionIdentical?: boolean;
  subpath?: string;
  forceCopy?: boolean;
  json?: boolean;
}

/** Register `checkout`: materialise a commit as a directory. */
export function registerCheckout(program: Command, ctx: VerbContext): void {
  verb(program, 'checkout', 'Check out a commit into a filesystem tree')
    .argument('<rev>', 'Commit or ref')
    .argument('[destination]', 'Target directory (default: REV)')
    .option('-U, --user-mode', 'Do not change file ownership or initialize extended attributes')
    .option('--union', 'Keep existing directories, overwrite existing files')
    .option('--union-add', 'Keep existing files/directories, only add new')
    .option('--union-identical', 'Error out if a file would be replaced with a different version')
    .option('--subpath <path>', 'Checkout sub-directory PATH')
    .option('-C, --force-copy', 'Never hardlink')
    .option('--json', 'Print JSON statistics (see README)')
    .action(async (rev: string, dest: string | undefined, _o: CheckoutOpts, cmd: Command) => {
      const opts = allOptions<CheckoutOpts>(cmd);
      if (opts.union && opts.unionAdd) throw new UsageError('Cannot specify both --union and --union-add');
      if (opts.union && opts.unionIdentical) throw new UsageError('Cannot specify both --union and --union-identical');
      if (opts.unionAdd && opts.unionIdentical) throw new UsageError('Cannot specify both --union-add and --union-identical');
      const repo = await openRepo(opts);
      const commit = await repo.revParse(rev);
      holdYoungGeneration();
      const bar = ctx.io.stderrIsTTY
        ? startProgress<{ files: number; dirs: number; hardlinked: number; copied: number }>(
            'Checking out {value} files, {dirs} directories ({hardlinked} hardlinked, {copied} copied)',
            (p) => ({ value: p.files, payload: { dirs: p.dirs, hardlinked: p.hardlinked, copied: p.copied } }),
            { dirs: 0, hardlinked: 0, copied: 0 },
          )
        : null;
      const stats = await interruptible((signal) =>
        checkout(repo, {
          ...(bar ? { onProgress: bar.update } : {}),
          signal,
          commit,
          dest: dest ?? rev,
          ...(opts.subpath !== undefined ? { subpath: opts.subpath } : {}),
          userMode: Boolean(opts.userMode),
          union: Boolean(opts.union),
          unionAdd: Boolean(opts.unionAdd),
          unionIdentical: Boolean(opts.unionIdentical),
          noHardlinks: Boolean(opts.forceCopy),
        }),
      ).finally(() => bar?.stop());
      if (opts.json) ctx.io.out(toJson({ commit, ...stats }));
    });
}
