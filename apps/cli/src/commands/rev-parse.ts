/**
 * `larch rev-parse REV`: print the full checksum of a ref (`REF`, `REMOTE:REF`), a unique
 * checksum prefix, or `X^` (parent) forms. `-S`/`--single` prints the repository's only commit.
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Command } from 'commander';
import type { Repo } from '@larch/core-store';
import type { VerbContext } from '../cli.js';
import { CommandError, openRepo, UsageError } from '../context.js';
import { allOptions, verb } from './common.js';

interface RevParseOptions {
  single?: boolean;
}

/** Every commit object stored in `repo` (objects/XX/YYYY….commit), stopping once two are found. */
async function firstTwoCommits(repo: Repo): Promise<string[]> {
  const found: string[] = [];
  const objects = join(repo.path, 'objects');
  for (const dir of await readdir(objects)) {
    if (!/^[0-9a-f]{2}$/.test(dir)) continue;
    let names: string[];
    try {
      names = await readdir(join(objects, dir));
    } catch {
      continue;
    }
    for (const n of names) {
      if (!/^[0-9a-f]{62}\.commit$/.test(n)) continue;
      found.push(dir + n.slice(0, 62));
      if (found.length > 1) return found;
    }
  }
  return found;
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
        const commits = await firstTwoCommits(await openRepo(opts));
        if (commits.length > 1) throw new CommandError('Multiple commit objects found');
        if (commits.length === 0) throw new CommandError('No commit objects found');
        ctx.io.out(`${commits[0]}\n`);
        return;
      }
      if (rev === undefined) throw new UsageError('REV must be specified');
      const repo = await openRepo(opts);
      ctx.io.out(`${await repo.revParse(rev)}\n`);
    });
}
