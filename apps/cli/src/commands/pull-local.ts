/**
 * `larch pull-local [--depth=N] [--remote=REMOTE] [--gpg-verify] [--gpg-verify-summary]
 * [--commit-metadata-only] [--untrusted] [--trust-source] [--bareuseronly-files]
 * [--disable-fsync] [--per-object-fsync] [--disable-verify-bindings] [--json]
 * SRC_REPO [REF|CHECKSUM…]`: copy commits from another local repository (a path or file:// URL).
 * As ostree, a source is trusted unless `--untrusted`: its objects are copied (or hardlinked,
 * between repositories of one mode on one filesystem) without being checked against their
 * names, so a corrupted object is copied unnoticed (fsck finds it). Unlike ostree, that holds only
 * for a source directory owned by the invoking user: a source owned by anyone else is verified
 * as with `--untrusted`, unless `--trust-source`. Without refs every head of SRC_REPO is copied.
 * The closing line is ostree's for a local source:
 * `N metadata, M content objects imported; SIZE content written`.
 *
 * With --gpg-verify (and --remote, whose keyring is used, as in OSTree) each commit's signatures
 * are checked before it is stored; --gpg-verify-summary checks SRC_REPO's summary against its
 * summary.sig first (both done by `pullLocal` with the signing package's verifier).
 *
 * Also as ostree: --disable-fsync (the repository's `core.fsync=false` for this run; its config
 * file is not changed), --disable-verify-bindings (a commit whose ref binding does not list the
 * requested ref is accepted) and --per-object-fsync, accepted and needing nothing more (every
 * object is published durably unless fsync is disabled).
 */
import type { Command } from 'commander';
import { pullLocal, type PullProgress, type PullResult } from '@larch/http-pull';
import type { VerbContext } from '../cli.js';
import { interruptible, openRepo, UsageError, type Io } from '../context.js';
import { formatSize } from '../format.js';
import { integer, parseOption } from '../options.js';
import { allOptions, verb } from './common.js';
import { printResult, progressSink, signatureVerifier } from './pull.js';

interface PullLocalOpts {
  depth?: string;
  remote?: string;
  commitMetadataOnly?: boolean;
  json?: boolean;
  gpgVerify?: boolean;
  gpgVerifySummary?: boolean;
  requireStaticDeltas?: boolean;
  untrusted?: boolean;
  trustSource?: boolean;
  bareuseronlyFiles?: boolean;
  disableFsync?: boolean;
  perObjectFsync?: boolean;
  disableVerifyBindings?: boolean;
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
    .option('--untrusted', 'Verify checksums of local sources (always enabled for HTTP pulls)')
    .option('--trust-source', 'Do not verify the objects of SRC_REPO even when another user owns it (a corrupted source is copied unnoticed)')
    .option('--bareuseronly-files', 'Reject regular files with mode outside of 0775 (world writable, suid, etc.)')
    .option('--disable-fsync', 'Do not invoke fsync()')
    .option('--per-object-fsync', 'Perform writes in such a way that avoids stalling concurrent processes')
    .option('--disable-verify-bindings', 'Do not verify commit bindings')
    .option('--json', 'Print progress and the result as JSON lines on stdout')
    .action(async (src: string, refs: string[], _o: PullLocalOpts, cmd: Command) => {
      const opts = allOptions<PullLocalOpts>(cmd);
      const depth = opts.depth === undefined ? 0 : parseOption(integer('--depth', { min: -1 }), opts.depth);
      const repo = await openRepo(opts);
      // This run only: the config file is not changed, as in ostree.
      if (opts.disableFsync) repo.config.set('core', 'fsync', false);
      const verify = Boolean(opts.gpgVerify || opts.gpgVerifySummary);
      if (verify && opts.remote === undefined) throw new UsageError('--gpg-verify and --gpg-verify-summary require --remote');
      if (opts.untrusted && opts.trustSource) throw new UsageError('--untrusted and --trust-source cannot be combined');
      await runPull(ctx.io, Boolean(opts.json), importedLine, (signal, onProgress) =>
        pullLocal({
          repo,
          src,
          refs,
          depth,
          commitMetadataOnly: Boolean(opts.commitMetadataOnly),
          requireStaticDeltas: Boolean(opts.requireStaticDeltas),
          trust: opts.untrusted ? 'never' : opts.trustSource ? 'always' : 'owner',
          bareuseronlyFiles: Boolean(opts.bareuseronlyFiles),
          ...(opts.disableVerifyBindings ? { disableVerifyBindings: true } : {}),
          ...(opts.remote !== undefined ? { remote: opts.remote } : {}),
          ...(verify ? { gpgVerify: Boolean(opts.gpgVerify), gpgVerifySummary: Boolean(opts.gpgVerifySummary), verifier: signatureVerifier(repo.path) } : {}),
          signal,
          ...(onProgress ? { onProgress } : {}),
        }),
      );
    });
}

/**
 * ostree's closing line for a local source: `N metadata, M content objects imported; SIZE
 * content written` (no bytes transferred, detached metadata not counted). Hardlinked objects add
 * nothing to what is written.
 */
export function importedLine(r: PullResult): string {
  const p = r.progress;
  return `${p.metadataFetched} metadata, ${p.contentFetched} content objects imported; ${formatSize(p.contentBytesWritten)} content written\n`;
}

/** As pull's runPull, with the closing line of a local import. */
async function runPull(
  io: Io,
  json: boolean,
  line: (r: PullResult) => string,
  run: (signal: AbortSignal, onProgress: ((p: PullProgress) => void) | undefined) => Promise<PullResult>,
): Promise<void> {
  const sink = progressSink(io, json);
  let result: PullResult;
  try {
    result = await interruptible((signal) => run(signal, sink ? (p) => sink.update(p) : undefined));
  } finally {
    sink?.stop();
  }
  if (json || result.dryRun !== undefined) printResult(io, result, json);
  else io.out(line(result));
}
