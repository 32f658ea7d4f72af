/**
 * `larch checkout [OPTIONS] REV [DEST]`: materialise a commit as a directory. DEST defaults to
 * REV, as in ostree. The options are ostree's (2022.7), with its rules and words: `-H` requires
 * hardlinks and excludes `-C`; `--union-identical` requires `-H`; `--skip-list=FILE` names paths
 * to leave out, one a line (`/dir/file`; a directory as `/dir/`, with the trailing slash);
 * `--allow-noent` makes a missing `--subpath` a no-op; `--from-file=FILE`/`--from-stdin` read
 * NUL-terminated pairs REV, SUBPATH and check each out into the one argument, DEST;
 * `--whiteouts` applies Docker/OCI whiteouts; `--process-passthrough-whiteouts` turns
 * `.ostree-wh.NAME` into overlayfs whiteout devices; `-M` keeps directory modes within 0775.
 * A plain `checkout -U` (none of the options above, nor -C, -z or --disable-cache) of an archive
 * repository hardlinks from the repository's uncompressed-object cache, filling it as needed.
 * `-z` and `--fsync` are accepted and change nothing: empty files are always copied, and a
 * checkout is never fsynced.
 */
import { readFileSync } from 'node:fs';
import { Option, type Command } from 'commander';
import { checkout, LarchError, readTree, type CheckoutOptions, type Repo } from '@larch/core-store';
import type { VerbContext } from '../cli.js';
import { CommandError, interruptible, openRepo, UsageError } from '../context.js';
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
  requireHardlinks?: boolean;
  forceCopyZerosized?: boolean;
  bareuseronlyDirs?: boolean;
  whiteouts?: boolean;
  processPassthroughWhiteouts?: boolean;
  allowNoent?: boolean;
  fromStdin?: boolean;
  fromFile?: string;
  fsync?: string;
  disableCache?: boolean;
  skipList?: string;
  json?: boolean;
}

/** Register `checkout`: materialise a commit as a directory. */
export function registerCheckout(program: Command, ctx: VerbContext): void {
  verb(program, 'checkout', 'Check out a commit into a filesystem tree')
    .argument('<rev>', 'Commit or ref (with --from-file/--from-stdin: the destination)')
    .argument('[destination]', 'Target directory (default: REV)')
    .option('-U, --user-mode', 'Do not change file ownership or initialize extended attributes')
    .option('--disable-cache', 'Do not update or use the internal repository uncompressed object cache')
    .option('--subpath <path>', 'Checkout sub-directory PATH')
    .option('--union', 'Keep existing directories, overwrite existing files')
    .option('--union-add', 'Keep existing files/directories, only add new')
    .option('--union-identical', 'When layering checkouts, error out if a file would be replaced with a different version, but add new files and directories')
    .option('--whiteouts', "Process 'whiteout' (Docker style) entries")
    .option('--process-passthrough-whiteouts', 'Enable overlayfs whiteout extraction into char 0:0 devices')
    .option('--allow-noent', 'Do nothing if specified path does not exist')
    .option('--from-stdin', 'Process many checkouts from standard input')
    .option('--from-file <file>', 'Process many checkouts from input file')
    .option('--fsync <policy>', 'Specify how to invoke fsync()')
    .option('-H, --require-hardlinks', 'Do not fall back to full copies if hardlinking fails')
    .addOption(new Option('-z, --force-copy-zerosized', 'Do not hardlink zero-sized files').hideHelp())
    .option('-C, --force-copy', 'Never hardlink (but may reflink if available)')
    .option('-M, --bareuseronly-dirs', 'Suppress mode bits outside of 0775 for directories (suid, world writable, etc.)')
    .option('--skip-list <file>', 'File containing list of files to skip')
    .option('--json', 'Print JSON statistics (see README)')
    .action(async (rev: string, dest: string | undefined, _o: CheckoutOpts, cmd: Command) => {
      const opts = allOptions<CheckoutOpts>(cmd);
      if (opts.fsync !== undefined) parseBoolean(opts.fsync);
      if (opts.union && opts.unionAdd) throw new UsageError('Cannot specify both --union and --union-add');
      if (opts.union && opts.unionIdentical) throw new UsageError('Cannot specify both --union and --union-identical');
      if (opts.unionAdd && opts.unionIdentical) throw new UsageError('Cannot specify both --union-add and --union-identical');
      if (opts.requireHardlinks && opts.forceCopy) throw new UsageError('Cannot specify both --require-hardlinks and --force-copy');
      if (opts.unionIdentical && !opts.requireHardlinks) throw new UsageError('--union-identical requires --require-hardlinks');
      const skip = opts.skipList !== undefined ? readSkipList(opts.skipList) : null;
      const repo = await openRepo(opts);
      const base: Omit<CheckoutOptions, 'commit' | 'dest'> = {
        userMode: Boolean(opts.userMode),
        union: Boolean(opts.union),
        unionAdd: Boolean(opts.unionAdd),
        unionIdentical: Boolean(opts.unionIdentical),
        noHardlinks: Boolean(opts.forceCopy),
        requireHardlinks: Boolean(opts.requireHardlinks),
        bareUserOnlyDirs: Boolean(opts.bareuseronlyDirs),
        processWhiteouts: Boolean(opts.whiteouts),
        processPassthroughWhiteouts: Boolean(opts.processPassthroughWhiteouts),
        ...(skip ? { filter: (p: string) => skip.has(p) } : {}),
        // As ostree: only a plain checkout (none of the options below) uses the uncompressed-object cache.
        uncompressedCache: !(
          opts.disableCache ||
          opts.whiteouts ||
          opts.requireHardlinks ||
          opts.unionAdd ||
          opts.forceCopy ||
          opts.forceCopyZerosized ||
          opts.bareuseronlyDirs ||
          opts.unionIdentical ||
          opts.skipList !== undefined ||
          opts.processPassthroughWhiteouts
        ),
      };
      holdYoungGeneration();

      if (opts.fromStdin || opts.fromFile !== undefined) {
        // The one positional argument is the destination of every checkout.
        const target = rev;
        const input = opts.fromFile !== undefined ? readInput(opts.fromFile) : readFileSync(0);
        for (const { rev: r, subpath } of parseCheckoutList(input)) {
          const commit = await repo.revParse(r);
          try {
            await checkoutOne(ctx, repo, { ...base, commit, dest: target, ...(subpath !== '' ? { subpath } : {}) }, Boolean(opts.allowNoent), false);
          } catch (e) {
            if (e instanceof LarchError) throw new CommandError(`Processing tree ${commit}: ${e.message}`);
            throw e;
          }
        }
        return;
      }

      const commit = await repo.revParse(rev);
      const stats = await checkoutOne(
        ctx,
        repo,
        { ...base, commit, dest: dest ?? rev, ...(opts.subpath !== undefined ? { subpath: opts.subpath } : {}) },
        Boolean(opts.allowNoent),
        true,
      );
      if (opts.json && stats) ctx.io.out(toJson({ commit, ...stats }));
    });
}

/** One checkout, with a progress bar on a terminal. Null when `allowNoent` skipped a missing subpath. */
async function checkoutOne(ctx: VerbContext, repo: Repo, o: CheckoutOptions, allowNoent: boolean, progress: boolean) {
  if (allowNoent && o.subpath !== undefined && !(await subpathExists(repo, o.commit, o.subpath))) return null;
  const bar =
    progress && ctx.io.stderrIsTTY
      ? startProgress<{ files: number; dirs: number; hardlinked: number; copied: number }>(
          'Checking out {value} files, {dirs} directories ({hardlinked} hardlinked, {copied} copied)',
          (p) => ({ value: p.files, payload: { dirs: p.dirs, hardlinked: p.hardlinked, copied: p.copied } }),
          { dirs: 0, hardlinked: 0, copied: 0 },
        )
      : null;
  return interruptible((signal) => checkout(repo, { ...o, signal, ...(bar ? { onProgress: bar.update } : {}) })).finally(() => bar?.stop());
}

/** Whether `subpath` names a file or directory of the commit (each component looked up in its dirtree). */
async function subpathExists(repo: Repo, commit: string, subpath: string): Promise<boolean> {
  const c = await repo.readCommit(commit);
  let tree = c.rootTree;
  const parts = subpath.split('/').filter((p) => p !== '' && p !== '.');
  for (let i = 0; i < parts.length; i++) {
    const dt = await readTree(repo, tree);
    const d = dt.dirs.find((x) => x.name === parts[i]);
    if (d) {
      tree = d.treeChecksum;
      continue;
    }
    return i === parts.length - 1 && dt.files.some((f) => f.name === parts[i]);
  }
  return true;
}

/** ostree's boolean words for `--fsync` (`1`/`true`/`yes`, `0`/`false`/`no`/`none`, any case). */
function parseBoolean(v: string): boolean {
  const l = v.toLowerCase();
  if (l === '1' || l === 'true' || l === 'yes') return true;
  if (l === '0' || l === 'false' || l === 'no' || l === 'none') return false;
  throw new UsageError(`Invalid boolean argument '${v}'`);
}

function readInput(file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new CommandError(`Error opening file ${file}: ${err.code === 'ENOENT' ? 'No such file or directory' : err.message}`);
  }
}

/** The skip list: one path a line, empty lines ignored. */
function readSkipList(file: string): Set<string> {
  const text = readInput(file).toString('utf8');
  return new Set(text.split('\n').filter((l) => l !== ''));
}

/**
 * `--from-file`/`--from-stdin` input: REV NUL SUBPATH NUL, repeated; an empty REV (or the end of
 * the input) ends the list. A REV without its SUBPATH is refused.
 */
export function parseCheckoutList(input: Buffer): Array<{ rev: string; subpath: string }> {
  const out: Array<{ rev: string; subpath: string }> = [];
  let pos = 0;
  const field = (): string | null => {
    if (pos >= input.length) return null;
    let end = input.indexOf(0, pos);
    if (end < 0) end = input.length;
    const s = input.toString('utf8', pos, end);
    pos = end + 1;
    return s;
  };
  for (;;) {
    const rev = field();
    if (rev === null || rev === '') break;
    const subpath = field();
    if (subpath === null) throw new CommandError(`Checkout list: revision ${rev} has no subpath (entries are REV NUL SUBPATH NUL)`);
    out.push({ rev, subpath });
  }
  return out;
}
