/**
 * `larch pull-local [--depth=N] [--remote=REMOTE] [--commit-metadata-only] [--json] SRC_REPO [REF|CHECKSUM…]`:
 * copy commits from another local repository (a path or file:// URL), verifying every object,
 * as `ostree pull-local`. Without refs every head of SRC_REPO is copied.
 */
import type { Command } from 'commander';
import { pullLocal } from '@larch/http-pull';
import type { VerbContext } from '../cli.js';
import { openRepo } from '../context.js';
import { integer, parseOption } from '../options.js';
import { allOptions, verb } from './common.js';
import { runPull } from './pull.js';

interface PullLocalOpts {
  depth?: string;
  remote?: string;
  commitMetadataOnly?: boolean;
  json?: boolean;
}

/** Register `pull-local`. */
export function registerPullLocal(program: Command, ctx: VerbContext): void {
  verb(program, 'pull-local', 'Copy data from SRC_REPO')
    .argument('<src_repo>', 'Source repository path or file:// URL')
    .argument('[refs...]', 'Refs or commit checksums (default: every ref of SRC_REPO)')
    .option('--depth <depth>', 'Traverse DEPTH parents (-1=infinite) (default: 0)')
    .option('--remote <remote>', 'Add REMOTE to refspec')
    .option('--commit-metadata-only', 'Fetch only the commit metadata')
    .option('--json', 'Print progress and the result as JSON lines on stdout')
    .action(async (src: string, refs: string[], _o: PullLocalOpts, cmd: Command) => {
      const opts = allOptions<PullLocalOpts>(cmd);
      const depth = opts.depth === undefined ? 0 : parseOption(integer('--depth', { min: -1 }), opts.depth);
      const repo = await openRepo(opts);
      await runPull(ctx.io, Boolean(opts.json), (signal, onProgress) =>
        pullLocal({
          repo,
          src,
          refs,
          depth,
          commitMetadataOnly: Boolean(opts.commitMetadataOnly),
          ...(opts.remote !== undefined ? { remote: opts.remote } : {}),
          signal,
          ...(onProgress ? { onProgress } : {}),
        }),
      );
    });
}
