/**
 * `larch pull-local [--depth=N] [--remote=REMOTE] [--gpg-verify] [--gpg-verify-summary]
 * [--commit-metadata-only] [--json] SRC_REPO [REF|CHECKSUM…]`: copy commits from another local
 * repository (a path or file:// URL), verifying every object, as `ostree pull-local`. Without
 * refs every head of SRC_REPO is copied.
 *
 * With --gpg-verify (and --remote, whose keyring is used, as in OSTree) each commit's signatures
 * are checked before it is stored; --gpg-verify-summary checks SRC_REPO's summary against its
 * summary.sig first (both done by `pullLocal` with the signing package's verifier).
 */
import type { Command } from 'commander';
import { pullLocal } from '@larch/http-pull';
import type { VerbContext } from '../cli.js';
import { openRepo, UsageError } from '../context.js';
import { integer, parseOption } from '../options.js';
import { allOptions, verb } from './common.js';
import { runPull, signatureVerifier } from './pull.js';

interface PullLocalOpts {
  depth?: string;
  remote?: string;
  commitMetadataOnly?: boolean;
  json?: boolean;
  gpgVerify?: boolean;
  gpgVerifySummary?: boolean;
  requireStaticDeltas?: boolean;
}

/** Register `pull-local`. */
export function registerPullLocal(program: Command, ctx: VerbContext): void {
  verb(program, 'pull-local', 'Copy data from SRC_REPO')
    .argument('<src_repo>', 'Source repository path or file:// URL')
    .argument('[refs...]', 'Refs or commit checksums (default: every ref of SRC_REPO)')
    .option('--depth <depth>', 'Traverse DEPTH parents (-1=infinite) (default: 0)')
    .option('--remote <remote>', 'Add REMOTE to refspec')
    .option('--commit-metadata-only', 'Fetch only the commit metadata')
    .option('--gpg-verify', 'GPG verify commits (must specify --remote)')
    .option('--gpg-verify-summary', 'GPG verify summary (must specify --remote)')
    .option('--require-static-deltas', 'Require static deltas')
    .option('--json', 'Print progress and the result as JSON lines on stdout')
    .action(async (src: string, refs: string[], _o: PullLocalOpts, cmd: Command) => {
      const opts = allOptions<PullLocalOpts>(cmd);
      const depth = opts.depth === undefined ? 0 : parseOption(integer('--depth', { min: -1 }), opts.depth);
      const repo = await openRepo(opts);
      const verify = Boolean(opts.gpgVerify || opts.gpgVerifySummary);
      if (verify && opts.remote === undefined) throw new UsageError('--gpg-verify and --gpg-verify-summary require --remote');
      await runPull(ctx.io, Boolean(opts.json), (signal, onProgress) =>
        pullLocal({
          repo,
          src,
          refs,
          depth,
          commitMetadataOnly: Boolean(opts.commitMetadataOnly),
          requireStaticDeltas: Boolean(opts.requireStaticDeltas),
          ...(opts.remote !== undefined ? { remote: opts.remote } : {}),
          ...(verify ? { gpgVerify: Boolean(opts.gpgVerify), gpgVerifySummary: Boolean(opts.gpgVerifySummary), verifier: signatureVerifier(repo.path) } : {}),
          signal,
          ...(onProgress ? { onProgress } : {}),
        }),
      );
    });
}
