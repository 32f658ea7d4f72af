/**
 * `larch init --repo=R [--mode=MODE] [--collection-id=ID]`: create a repository as `ostree init`
 * does. The default mode is `bare`, as in ostree. As in ostree, a directory that already has
 * `objects/` is an existing repository: it is opened, its configuration left as it is (whatever
 * mode is asked for), and arguments after the options are ignored.
 */
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Command } from 'commander';
import { Repo } from '@larch/core-store';
import type { VerbContext } from '../cli.js';
import { UsageError } from '../context.js';
import { parseOption, repoMode } from '../options.js';
import { allOptions, verb } from './common.js';

interface InitOptions {
  mode: string;
  collectionId?: string;
}

/** Register `init`: create a repository (Repo.init). */
export function registerInit(program: Command, _ctx: VerbContext): void {
  verb(program, 'init', 'Initialize a new empty repository')
    .option('--mode <mode>', 'Repository mode (bare, bare-user, bare-user-only, archive)', 'bare')
    .option('--collection-id <id>', 'Globally unique ID for this repository as a collection of refs')
    .allowExcessArguments(true)
    .action(async (_opts: InitOptions, cmd: Command) => {
      const opts = allOptions<InitOptions>(cmd);
      const mode = parseOption(repoMode, opts.mode);
      const path = opts.repo ?? process.env.OSTREE_REPO;
      if (path === undefined || path === '') throw new UsageError('Command requires a --repo argument');
      const existing = await stat(join(path, 'objects')).then(
        () => true,
        () => false,
      );
      if (existing) {
        await Repo.open(path);
        return;
      }
      await Repo.init({ path, mode, ...(opts.collectionId !== undefined ? { collectionId: opts.collectionId } : {}) });
    });
}
