/**
 * `larch reset REF COMMIT`: point an existing local branch at another commit (usually an older
 * one), as `ostree reset`. The commit must be in the repository.
 */
import type { Command } from 'commander';
import type { VerbContext } from '../cli.js';
import { CommandError, openRepo } from '../context.js';
import { allOptions, verb } from './common.js';

/** Register `reset`. */
export function registerReset(program: Command, _ctx: VerbContext): void {
  verb(program, 'reset', 'Reset a REF to a previous COMMIT')
    .argument('<ref>', 'A local branch')
    .argument('<commit>', 'Commit, ref or checksum prefix')
    .action(async (ref: string, target: string, _o: object, cmd: Command) => {
      const repo = await openRepo(allOptions<object>(cmd));
      const heads = await repo.listRefs({ kind: 'heads', prefix: ref });
      if (!heads.has(ref)) throw new CommandError(`Invalid ref '${ref}'`);
      const commit = await repo.revParse(target);
      // A ref moves only to a commit that is here (ostree does not check).
      await repo.readCommit(commit);
      await repo.setRef(ref, commit);
    });
}
