/**
 * `larch rev-parse REV`: print the full checksum of a ref (`REF`, `REMOTE:REF`), a unique
 * checksum prefix, or `X^` (parent) forms. `-S`/`--single` prints the repository's only commit.
 */
import type { Command } from 'commander';
import { singleCommit } from '@larch/core-store';
import type { VerbContext } from '../cli.js';
import { openRepo, UsageError } from '../context.js';
import { allOptions, verb } from './common.js';

interface RevParseOptions {
  single?: boolean;
}

/** Register `rev-parse`: resolve a revision to a checksum. */
export function registerRevParse(program: Command, ctx: VerbContext): void {
  verb(program, 'rev-parse', 'Output the target of a rev')
    .argument('[rev]', 'Ref, REMOTE:REF, checksum or prefix, optionally followed by ^')
    .option('-S, --single', 'If the repository has exactly one commit, then print it; any other case will result in an error')
    .action(async (rev: string | undefined, _o: object, cmd: Command) => {
      const opts = allOptions<RevParseOptions>(cmd);
      if (opts.single) {
        if (rev !== undefined) throw new UsageError('Cannot specify arguments with --single');
        ctx.io.out(`${await singleCommit(await openRepo(opts))}\n`);
        return;
      }
      if (rev === undefined) throw new UsageError('REV must be specified');
      const repo = await openRepo(opts);
      ctx.io.out(`${await repo.revParse(rev)}\n`);
    });
}
