/**
 * `larch rev-parse REV`: print the full checksum of a ref (`REF`, `REMOTE:REF`), a unique
 * checksum prefix, or `X^` (parent) forms.
 */
import type { Command } from 'commander';
import type { VerbContext } from '../cli.js';
import { openRepo } from '../context.js';
import { allOptions, verb } from './common.js';

/** Register `rev-parse`: resolve a revision to a checksum. */
export function registerRevParse(program: Command, ctx: VerbContext): void {
  verb(program, 'rev-parse', 'Output the target of a rev')
    .argument('<rev>', 'Ref, REMOTE:REF, checksum or prefix, optionally followed by ^')
    .action(async (rev: string, _o: object, cmd: Command) => {
      const repo = await openRepo(allOptions<object>(cmd));
      ctx.io.out(`${await repo.revParse(rev)}\n`);
    });
}
