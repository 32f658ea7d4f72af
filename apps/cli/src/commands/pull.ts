/**
 * `larch pull [--depth=N] [--mirror] [--commit-metadata-only] [--subpath=P] [-T]
 * [--timestamp-check-from-rev=REV] [--url=URL] [--network-retries=N] [--json] REMOTE
 * [REF[@CHECKSUM]…]`: fetch refs (or commit checksums) from a configured remote, as `ostree
 * pull`; `REF@CHECKSUM` pulls that commit and points the ref at it. Signatures are enforced as
 * the remote's config asks (`gpg-verify`, on by default, `gpg-verify-summary`, `sign-verify`,
 * `sign-verify-summary`) by @larch/signing's verifier, before a commit is stored. As ostree, a
 * ref follows the remote to an older commit unless -T is given (then `Upgrade … is
 * chronologically older …`, overrides included); --timestamp-check-from-rev=REV refuses any
 * commit older than REV. --allow-downgrade, the default, is accepted. Progress goes to
 * a bar on stderr when it is a terminal (it says "estimating" until the tree walk has found every
 * object, then shows the exact object count, bytes, rate and ETA), or as JSON lines on stdout
 * with --json; ^C stops the pull cleanly (refs untouched, verified objects kept for the next
 * run). The progress helpers here are shared with `pull-local`.
 *
 * Also as ostree: `--dry-run --require-static-deltas` (prints `Delta update: …`, writes nothing),
 * `--http-header=NAME=VALUE` (every request), `--disable-verify-bindings`, `--disable-fsync` (the
 * repository's `core.fsync=false` for this run; its config file is not changed), and `--untrusted` and
 * `--per-object-fsync`, accepted and needing nothing more (every object is verified, and published
 * durably, whatever the source).
 */
import type { Command } from 'commander';
import { LarchError } from '@larch/core-store';
import { pull, summaryCacheRoot, type PullProgress, type PullResult, type PullVerifier } from '@larch/http-pull';
import type { VerbContext } from '../cli.js';
import { interruptible, openRepo, UsageError, type Io } from '../context.js';
import { formatSize, jsonLine } from '../format.js';
import { collect, integer, parseOption } from '../options.js';
import { startProgress } from '../progress.js';
import { allOptions, verb } from './common.js';
import { checkCacheDir } from './remote-summary.js';

interface PullOpts {
  depth?: string;
  mirror?: boolean;
  commitMetadataOnly?: boolean;
  subpath?: string[];
  json?: boolean;
  allowDowngrade?: boolean;
  timestampCheck?: boolean;
  timestampCheckFromRev?: string;
  disableStaticDeltas?: boolean;
  requireStaticDeltas?: boolean;
  url?: string;
  networkRetries?: string;
  cacheDir?: string;
  dryRun?: boolean;
  httpHeader?: string[];
  untrusted?: boolean;
  perObjectFsync?: boolean;
  disableFsync?: boolean;
  disableVerifyBindings?: boolean;
  bareuseronlyFiles?: boolean;
  httpTrusted?: boolean;
}

/** Register `pull`. */
export function registerPull(program: Command, ctx: VerbContext): void {
  verb(program, 'pull', 'Download data from a remote repository')
    .argument('<remote>', 'Name of a configured remote (or REMOTE:REF)')
    .argument('[refs...]', 'Refs or commit checksums (default: the remote\'s branches, or every ref with --mirror)')
    .option('--depth <depth>', 'Traverse DEPTH parents (-1=infinite) (default: 0)')
    .option('--mirror', 'Write refs suitable for a mirror and fetch all refs if none provided')
    .option('--commit-metadata-only', 'Fetch only the commit metadata')
    .option('--subpath <subpath>', 'Only pull the provided subpath (may be given more than once)', collect)
    .option('--json', 'Print progress and the result as JSON lines on stdout')
    .option('--allow-downgrade', 'Accept commits older than the ones the local refs point to (the default)')
    .option('-T, --timestamp-check', 'Require fetched commits to have newer timestamps')
    .option('--timestamp-check-from-rev <rev>', 'Require fetched commits to have newer timestamps than given rev')
    .option('--disable-static-deltas', 'Do not use static deltas')
    .option('--require-static-deltas', 'Require static deltas')
    .option('--url <url>', 'Pull objects from this URL instead of the one from the remote config')
    .option('--cache-dir <dir>', 'Use custom cache dir')
    .option('--network-retries <n>', 'Specifies how many times each download should be retried upon error (default: 5)')
    .option('--dry-run', 'Only print information on what will be downloaded (requires static deltas)')
    .option('--http-header <NAME=VALUE>', 'Add NAME=VALUE as HTTP header to all requests', collect, [] as string[])
    .option('--untrusted', 'Verify checksums of local sources (always enabled for HTTP pulls)')
    .option('--http-trusted', 'Do not verify checksums of HTTP sources (mostly useful when mirroring)')
    .option('--disable-verify-bindings', 'Do not verify commit bindings')
    .option('--bareuseronly-files', 'Reject regular files with mode outside of 0775 (world writable, suid, etc.)')
    .option('--disable-fsync', 'Do not invoke fsync()')
    .option('--per-object-fsync', 'Perform writes in such a way that avoids stalling concurrent processes')
    .action(async (first: string, rest: string[], _o: PullOpts, cmd: Command) => {
      const opts = allOptions<PullOpts>(cmd);
      const depth = opts.depth === undefined ? 0 : parseOption(integer('--depth', { min: -1 }), opts.depth);
      // ostree also accepts `pull REMOTE:REF`.
      const colon = first.indexOf(':');
      const remote = colon < 0 ? first : first.slice(0, colon);
      let refs = colon < 0 ? rest : [first.slice(colon + 1), ...rest];
      if (remote === '' || (colon >= 0 && refs[0] === '')) throw new UsageError(`Invalid refspec ${first}`);
      // `REMOTE REF@CHECKSUM` (not with `REMOTE:REF`, as in ostree): that commit for the ref.
      const overrideCommits: Record<string, string> = {};
      if (colon < 0) {
        refs = refs.map((arg) => {
          const at = arg.lastIndexOf('@');
          if (at < 0) return arg;
          const ref = arg.slice(0, at);
          const checksum = arg.slice(at + 1);
          if (!/^[0-9a-f]{64}$/.test(checksum)) throw new UsageError(`Invalid rev ${checksum}`);
          if (ref === '') throw new UsageError(`Invalid ref name ${ref}`);
          overrideCommits[ref] = checksum;
          return ref;
        });
      }
      const retries = opts.networkRetries === undefined ? undefined : parseOption(integer('--network-retries', { min: 0 }), opts.networkRetries);
      if (opts.allowDowngrade && opts.timestampCheck) throw new UsageError('--allow-downgrade and --timestamp-check are mutually exclusive');
      if (opts.disableStaticDeltas && opts.requireStaticDeltas) throw new UsageError('Cannot specify both --disable-static-deltas and --require-static-deltas');
      // ostree's wording; checked before the repository is opened, as ostree does.
      if (opts.dryRun && !opts.requireStaticDeltas) throw new LarchError('INVALID_ARGUMENT', '--dry-run requires --require-static-deltas', {});
      const httpHeaders = (opts.httpHeader ?? []).map((kv): [string, string] => {
        const eq = kv.indexOf('=');
        if (eq < 0) throw new LarchError('INVALID_ARGUMENT', "Missing '=' in --http-header", { header: kv });
        return [kv.slice(0, eq), kv.slice(eq + 1)];
      });
      const repo = await openRepo(opts);
      // This run only: the config file is not changed, as in ostree.
      if (opts.disableFsync) repo.config.set('core', 'fsync', false);
      if (opts.cacheDir !== undefined) await checkCacheDir(opts.cacheDir);
      // As ostree: REPO/tmp/cache unless OSTREE_SKIP_CACHE is set, or --cache-dir.
      const cacheDir = summaryCacheRoot(repo, opts.cacheDir);
      const verifier = signatureVerifier(repo.path);
      await runPull(ctx.io, Boolean(opts.json), (signal, onProgress) =>
        pull({
          repo,
          remote,
          refs,
          depth,
          mirror: Boolean(opts.mirror),
          commitMetadataOnly: Boolean(opts.commitMetadataOnly),
          ...(opts.subpath !== undefined ? { subpath: opts.subpath } : {}),
          ...(Object.keys(overrideCommits).length > 0 ? { overrideCommits } : {}),
          ...(opts.url !== undefined ? { url: opts.url } : {}),
          ...(cacheDir !== null ? { cacheDir } : {}),
          timestampCheck: Boolean(opts.timestampCheck),
          ...(opts.timestampCheckFromRev !== undefined ? { timestampCheckFromRev: opts.timestampCheckFromRev } : {}),
          ...(opts.dryRun ? { dryRun: true } : {}),
          ...(opts.disableVerifyBindings ? { disableVerifyBindings: true } : {}),
          ...(opts.bareuseronlyFiles ? { bareuseronlyFiles: true } : {}),
          ...(opts.httpTrusted ? { httpTrusted: true } : {}),
          ...(httpHeaders.length > 0 ? { httpHeaders } : {}),
          ...(retries !== undefined ? { limits: { retries } } : {}),
          verifier,
          disableStaticDeltas: Boolean(opts.disableStaticDeltas),
          requireStaticDeltas: Boolean(opts.requireStaticDeltas),
          signal,
          ...(onProgress ? { onProgress } : {}),
        }),
      );
    });
}

/**
 * The pull's signature checks, from @larch/signing, which is loaded on the first check only
 * (a remote without verification never pays for OpenPGP.js start-up).
 */
export function signatureVerifier(repoPath: string): PullVerifier {
  let inner: Promise<PullVerifier> | undefined;
  const get = (): Promise<PullVerifier> => (inner ??= import('@larch/signing').then((m) => m.createPullVerifier({ repoPath })));
  return {
    verifyCommit: async (bytes, meta, ctx) => (await get()).verifyCommit(bytes, meta, ctx),
    verifySummary: async (bytes, sig, ctx) => (await get()).verifySummary(bytes, sig, ctx),
  };
}

/**
 * Run a pull (or pull-local) with its progress going to a terminal bar or JSON lines, cancellable
 * by Ctrl-C, and print its result.
 */
export async function runPull(
  io: Io,
  json: boolean,
  run: (signal: AbortSignal, onProgress: ((p: PullProgress) => void) | undefined) => Promise<PullResult>,
): Promise<void> {
  const sink = progressSink(io, json);
  let result: PullResult;
  try {
    result = await interruptible((signal) => run(signal, sink ? (p) => sink.update(p) : undefined));
  } finally {
    sink?.stop(); // cleared before anything else is printed
  }
  printResult(io, result, json);
}

/** Where pull progress goes: a terminal bar or JSON lines. */
export interface ProgressSink {
  update(p: PullProgress): void;
  stop(): void;
}

function describe(p: PullProgress): string {
  if (p.phase === 'deltas') {
    const eta = p.etaSeconds === null ? '' : ` ETA ${p.etaSeconds}s`;
    return `delta parts ${p.deltaPartsDone}/${p.deltaPartsTotal}, ${formatSize(p.bytesDone)}${p.bytesTotal !== null ? `/${formatSize(p.bytesTotal)}` : ''} ${formatSize(p.bytesPerSecond)}/s${eta}`;
  }
  const objects = p.objectsTotal === null ? `${p.objectsDone} objects (estimating)` : `${p.objectsDone}/${p.objectsTotal} objects`;
  const rate = `${formatSize(p.bytesPerSecond)}/s`;
  const eta = p.etaSeconds === null ? '' : ` ETA ${p.etaSeconds}s`;
  return `${objects}, ${formatSize(p.bytesDone)} ${rate}${eta}`;
}

/** A bar on stderr (terminal only), JSON lines on stdout (`--json`), or nothing. */
export function progressSink(io: Io, json: boolean): ProgressSink | null {
  if (json) {
    return {
      update: (p) => io.out(jsonLine({ event: 'progress', ...p })),
      stop: () => undefined,
    };
  }
  if (!io.stderrIsTTY) return null;
  // While the walk is still finding objects the bar stays empty and says "estimating".
  return startProgress<PullProgress>(
    'Receiving [{bar}] {text}',
    (p) => ({
      value: p.phase === 'deltas' ? p.deltaPartsDone : p.estimating ? 0 : p.objectsDone,
      ...(p.phase === 'deltas' ? { total: Math.max(1, p.deltaPartsTotal) } : p.objectsTotal !== null ? { total: Math.max(1, p.objectsTotal) } : {}),
      payload: { text: describe(p) },
    }),
    { text: 'metadata (estimating)' },
  );
}

/**
 * ostree's closing line, printed when the pull succeeds: `N metadata, M content objects fetched`
 * (`P delta parts, L loose fetched` when static delta parts were applied), then
 * `; X B|KiB transferred in S seconds` when anything was received (bytes below 1 KiB, whole KiB
 * above), then `; SIZE content written` (the uncompressed size of the new files, in GLib's
 * decimal units). ostree prints it alone when its output is not a terminal, and as the last line
 * of its progress display when it is: either way it ends up as the last line on stdout.
 */
export function summaryLine(r: PullResult): string {
  const p = r.progress;
  let line =
    p.deltaPartsDone > 0
      ? `${p.deltaPartsDone} delta parts, ${p.metadataFetched + p.detachedMetaRequests + p.contentFetched} loose fetched`
      : `${p.metadataFetched + p.detachedMetaRequests} metadata, ${p.contentFetched} content objects fetched`;
  const bytes = p.bytesTransferred;
  if (bytes > 0) {
    const amount = bytes < 1024 ? `${bytes} B` : `${Math.floor(bytes / 1024)} KiB`;
    line += `; ${amount} transferred in ${Math.floor(p.elapsedMs / 1000)} seconds`;
  }
  return `${line}; ${formatSize(p.contentBytesWritten)} content written\n`;
}

/** Print the result: the summary line, or with --json a final `{ event: "done", ... }` line. */
export function printResult(io: Io, r: PullResult, json: boolean): void {
  if (r.dryRun !== undefined && !json) {
    const d = r.dryRun;
    io.out(`Delta update: ${d.partsFetched}/${d.partsTotal} parts, ${formatSize(d.fetchedSize)}/${formatSize(d.totalSize)}, ${formatSize(d.totalUncompressedSize)} total uncompressed\n`);
    return;
  }
  if (json) io.out(jsonLine({ event: 'done', ...r }));
  else io.out(summaryLine(r));
}
