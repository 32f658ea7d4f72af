/**
 * `larch commit`: commit a directory, print the new commit checksum alone on stdout.
 *
 * Mirrors `ostree commit` 2022.7 option for option where Larch supports it. Metadata order is
 * part of the commit checksum, so it is built exactly as ostree builds it: every
 * `--add-metadata-string` in command-line order, then every `--add-metadata`, then (with
 * --bootable) `ostree.linux` and `ostree.bootable`; the ref binding is appended by commitTree.
 * Without --timestamp the commit time is $SOURCE_DATE_EPOCH, else now (decided by commitTree).
 * A progress bar is drawn on stderr only when stderr is a terminal.
 */
import { readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Command } from 'commander';
import { startProgress, type Progress } from '../progress.js';
import { commitTree, defaultCommitTimestamp, LarchError, parseRefspec, signCommit, validateRefName, type CommitTreeOptions } from '@larch/core-store';
import type { VerbContext } from '../cli.js';
import { CommandError, interruptible, openRepo, UsageError, type Io } from '../context.js';
import { checksum, collect, parseOption, timestamp, uidGid } from '../options.js';
import { formatSize } from '../format.js';
import { booleanVariant, metadataFromText, stringVariant, type Variant } from '../variants.js';
import { allOptions, verb } from './common.js';
import type { SignerOptions } from '@larch/signing';

interface CommitOptions extends SignerOptions {
  branch?: string;
  subject?: string;
  body?: string;
  bodyFile?: string;
  bindRef?: string[];
  base?: string;
  tree?: string[];
  keepMetadata?: string[];
  addDetachedMetadataString?: string[];
  modeRoExecutables?: boolean;
  linkCheckoutSpeedup?: boolean;
  devinoCanonical?: boolean;
  tarAutocreateParents?: boolean;
  skipIfUnchanged?: boolean;
  statoverride?: string;
  consume?: boolean;
  generateSizes?: boolean;
  tableOutput?: boolean;
  fsync?: string;
  timestamp?: string;
  parent?: string;
  ownerUid?: string;
  ownerGid?: string;
  addMetadataString?: string[];
  addMetadata?: string[];
  bootable?: boolean;
  skipList?: string;
  bindings: boolean;
  canonicalPermissions?: boolean;
  xattrs: boolean;
  orphan?: boolean;
}

/** Register `commit`: commit a directory (commitTree) and print the checksum. */
export function registerCommit(program: Command, ctx: VerbContext): void {
  verb(program, 'commit', 'Commit a new revision')
    .argument('[path]', 'Directory to commit (default: the current directory)')
    .option('-b, --branch <branch>', 'Branch')
    .option('-s, --subject <subject>', 'One line subject')
    .option('-m, --body <body>', 'Full description')
    .option('-F, --body-file <file>', 'Commit message from FILE path')
    .option('--bind-ref <branch>', 'Add a ref to ref binding commit metadata', collect)
    .option('--base <rev>', 'Start from the given commit as a base (no modifiers apply)')
    .option('--tree <spec>', 'Overlay the given argument as a tree (dir=PATH, tar=TARFILE or ref=COMMIT; repeatable)', collect)
    .option('--timestamp <timestamp>', 'Override the timestamp of the commit (@SECONDS, ISO 8601, ...)')
    .option('--parent <commit>', 'Parent commit checksum, or "none"')
    .option('--owner-uid <uid>', 'Set file ownership user id')
    .option('--owner-gid <gid>', 'Set file ownership group id')
    .option('--add-metadata-string <key=value>', 'Add a key/value pair to metadata', collect)
    .option('--add-metadata <key=value>', 'Add a key/value pair to metadata, VALUE in GVariant text format', collect)
    .option('--keep-metadata <key>', 'Keep metadata KEY and its associated VALUE from parent', collect)
    .option('--add-detached-metadata-string <key=value>', 'Add a key/value pair to detached metadata', collect)
    .option('--bootable', 'Flag this commit as a bootable OSTree (needs usr/lib/modules/VERSION/vmlinuz)')
    .option('--mode-ro-executables', 'Ensure executable files are not writable')
    .option('--link-checkout-speedup', 'Optimize for commits of trees composed of hardlinks into the repository')
    .option('-I, --devino-canonical', 'Assume hardlinked objects are unmodified (implies --link-checkout-speedup)')
    .option('--tar-autocreate-parents', 'When loading tar archives, automatically create parent directories as needed')
    .option('--skip-if-unchanged', 'If the contents are unchanged from previous commit, do nothing')
    .option('--statoverride <file>', 'File containing list of modifications to make to permissions')
    .option('--skip-list <file>', 'File containing list of files to skip')
    .option('--consume', 'Consume (delete) content after commit (for local directories)')
    .option('--table-output', 'Output more information in a KEY: VALUE format')
    .option('--generate-sizes', 'Generate size information along with commit metadata')
    .option('--fsync <policy>', 'Specify how to invoke fsync() (true or false)')
    .option('--no-bindings', 'Do not write any ref bindings')
    .option('--canonical-permissions', 'Canonicalize permissions as bare-user does')
    .option('--no-xattrs', 'Do not import extended attributes')
    .option('--orphan', 'Create a commit without writing a ref')
    .option('--gpg-sign <keyid>', 'GPG Key ID to sign the commit with', collect)
    .option('--gpg-homedir <homedir>', 'GPG Homedir to use when looking for keyrings')
    .option('--gpg-secret-key-file <file>', 'Sign with this armored OpenPGP secret key file instead of gpg (--gpg-sign picks a key in it)')
    .option('--gpg-passphrase-file <file>', 'Passphrase of the signing key (first line of FILE)')
    .option('--sign <key>', 'Sign the commit with this base64 ed25519 secret key', collect)
    .option('--sign-type <name>', 'Signature type to use (defaults to ed25519)')
    .option('--keys-file <file>', 'Sign with the ed25519 secret keys in FILE (one base64 key per line)')
    .action(async (path: string | undefined, _o: CommitOptions, cmd: Command) => {
      const opts = allOptions<CommitOptions>(cmd);
      await runCommit(ctx.io, path, opts);
    });
}

async function runCommit(io: Io, positional: string | undefined, opts: CommitOptions & { repo?: string }): Promise<void> {
  // Read first, as ostree does: a bad --statoverride or --skip-list file fails before anything else.
  const statOverrides = opts.statoverride === undefined ? undefined : parseStatOverrides(await readListFile(opts.statoverride));
  const skipList = opts.skipList === undefined ? undefined : await readSkipList(opts.skipList);
  if (opts.branch === undefined && !opts.orphan) {
    throw new UsageError('A branch must be specified with --branch, or use --orphan');
  }
  // As ostree: a branch may be REMOTE:REF (written under refs/remotes/REMOTE/, bound as given).
  if (opts.branch !== undefined && parseRefspec(opts.branch).kind === 'mirrors') validateRefName(opts.branch);
  for (const r of opts.bindRef ?? []) validateRefName(r);
  const trees = treeSources(positional, opts.tree);
  const ts = opts.timestamp === undefined ? undefined : BigInt.asUintN(64, parseOption(timestamp, opts.timestamp));
  // SOURCE_DATE_EPOCH is checked up front too (commitTree would refuse it only after storing the files).
  if (ts === undefined) defaultCommitTimestamp();
  let parent: string | null | undefined;
  if (opts.parent !== undefined) {
    parent = opts.parent === 'none' ? null : parseOption(checksum, opts.parent, `Invalid rev ${opts.parent}`);
  }
  const ownerUid = opts.ownerUid === undefined ? undefined : parseOption(uidGid('--owner-uid'), opts.ownerUid);
  const ownerGid = opts.ownerGid === undefined ? undefined : parseOption(uidGid('--owner-gid'), opts.ownerGid);
  if (opts.canonicalPermissions && ownerUid !== undefined && ownerUid > 0) {
    throw new UsageError('Cannot specify both --canonical-permissions and non-zero --owner-uid');
  }
  if (opts.canonicalPermissions && ownerGid !== undefined && ownerGid > 0) {
    throw new UsageError('Cannot specify both --canonical-permissions and non-zero --owner-gid');
  }

  const metadata: Array<[string, Variant]> = [];
  for (const kv of opts.addMetadataString ?? []) {
    const [k, v] = metadataKeyValue(kv);
    metadata.push([k, stringVariant(v)]);
  }
  for (const kv of opts.addMetadata ?? []) {
    const [k, text] = metadataKeyValue(kv);
    metadata.push(metadataFromText(kv, k, text));
  }
  const detached: Array<[string, Variant]> = [];
  for (const kv of opts.addDetachedMetadataString ?? []) {
    const [k, v] = metadataKeyValue(kv);
    detached.push([k, stringVariant(v)]);
  }
  // As ostree, an empty key is refused in the commit's metadata only (detached metadata may
  // have one), once every option has been parsed.
  if (metadata.some(([k]) => k === '')) throw new CommandError('Empty metadata key');
  if (opts.bootable) {
    const dir = trees.find((t): t is { dir: string } => 'dir' in t);
    if (dir === undefined) throw new CommandError('--bootable needs a directory tree (dir=PATH)');
    metadata.push(['ostree.linux', stringVariant(await kernelVersion(dir.dir))]);
    metadata.push(['ostree.bootable', booleanVariant(true)]);
  }
  const fsync = opts.fsync === undefined ? undefined : parseFsync(opts.fsync);
  let body = opts.body;
  if (opts.bodyFile !== undefined) body = await readTextFile(opts.bodyFile);
  // Signers are prepared before the commit is written, so a bad key fails without leaving an
  // unsigned commit behind; the signing module is loaded only when asked for.
  const wantsSigning =
    (opts.gpgSign?.length ?? 0) > 0 || opts.gpgSecretKeyFile !== undefined || (opts.sign?.length ?? 0) > 0 || opts.keysFile !== undefined;
  const signing = wantsSigning ? await import('@larch/signing') : null;
  const signers = signing ? await signing.signersFromOptions(opts) : [];
  if (signing) await signing.preflightSigners(signers);

  const repo = await openRepo(opts);
  // --fsync=false: this commit only (the repository's config file is not changed), as in ostree.
  if (fsync !== undefined) repo.config.set('core', 'fsync', fsync);
  const bar = io.stderrIsTTY ? progressBar() : null;
  try {
    const result = await interruptible((signal) =>
      commitTree(repo, {
        signal,
        trees,
        ...(opts.base !== undefined ? { base: opts.base } : {}),
        // --orphan only stops the branch's head from becoming the parent; a -b branch is still written.
        ...(opts.branch !== undefined ? { branch: opts.branch } : {}),
        ...(opts.subject !== undefined ? { subject: opts.subject } : {}),
        ...(body !== undefined ? { body } : {}),
        ...(parent !== undefined ? { parent } : opts.orphan ? { parent: null } : {}),
        ...(ts !== undefined ? { timestamp: ts } : {}),
        metadata,
        ...(opts.keepMetadata !== undefined ? { keepMetadata: opts.keepMetadata } : {}),
        bindings: opts.bindings,
        ...(opts.bindRef !== undefined ? { bindRefs: opts.bindRef } : {}),
        ...(ownerUid !== undefined ? { ownerUid } : {}),
        ...(ownerGid !== undefined ? { ownerGid } : {}),
        ...(skipList !== undefined ? { skipList } : {}),
        ...(statOverrides !== undefined ? { statOverrides } : {}),
        modeRoExecutables: Boolean(opts.modeRoExecutables),
        canonicalPermissions: Boolean(opts.canonicalPermissions),
        noXattrs: !opts.xattrs,
        consume: Boolean(opts.consume),
        skipIfUnchanged: Boolean(opts.skipIfUnchanged),
        generateSizes: Boolean(opts.generateSizes),
        tarAutocreateParents: Boolean(opts.tarAutocreateParents),
        linkCheckoutSpeedup: Boolean(opts.linkCheckoutSpeedup || opts.devinoCanonical),
        devinoCanonical: Boolean(opts.devinoCanonical),
        ...(bar ? { onProgress: bar.update } : {}),
      }),
    );
    bar?.stop();
    if (!result.skipped) {
      if (detached.length > 0) await repo.writeCommitMeta(result.commit, detached);
      // The ref already points at the commit (as with `ostree commit --gpg-sign`, which signs
      // after writing the ref); the signature lands in its detached metadata right after.
      if (signers.length > 0) await signCommit(repo, result.commit, signers);
    }
    if (opts.tableOutput) {
      const st = result.stats;
      io.out(
        `Commit: ${result.commit}\nMetadata Total: ${st.metadataTotal}\nMetadata Written: ${st.metadataWritten}\n` +
          `Content Total: ${st.contentTotal}\nContent Written: ${st.contentWritten}\nContent Cache Hits: ${st.devinoHits}\n` +
          `Content Bytes Written: ${st.contentBytesWritten}\n`,
      );
    } else io.out(`${result.commit}\n`);
  } catch (e) {
    bar?.stop();
    if (e instanceof LarchError && Array.isArray(e.data.unmatched) && /^Unmatched (skip-list|statoverride) paths/.test(e.message)) {
      // ostree names each unmatched path on its own line, then fails with one summary line.
      const what = e.message.startsWith('Unmatched skip-list') ? 'skip-list' : 'statoverride';
      for (const p of e.data.unmatched as string[]) io.err(`Unmatched ${what} path: ${p}\n`);
      throw new CommandError(`Unmatched ${what} paths`);
    }
    throw e;
  }
}

/** `--fsync=POLICY`: a boolean as GLib spells it. */
/** `KEY=VALUE` of the metadata options, split at the first `=` (the key may be empty here). */
function metadataKeyValue(s: string): [string, string] {
  const eq = s.indexOf('=');
  if (eq < 0) throw new UsageError(`Missing '=' in KEY=VALUE metadata '${s}'`);
  return [s.slice(0, eq), s.slice(eq + 1)];
}

function parseFsync(v: string): boolean {
  if (/^(true|yes|1)$/i.test(v)) return true;
  if (/^(false|no|0|none)$/i.test(v)) return false;
  throw new UsageError(`Invalid boolean argument '${v}'`);
}

type Sources = NonNullable<CommitTreeOptions['trees']>;

/** The --tree arguments in order (`dir=`, `ref=`, `tar=`), else the positional PATH, else the current directory. */
function treeSources(positional: string | undefined, trees: string[] | undefined): Sources {
  if (trees === undefined || trees.length === 0) return [{ dir: positional ?? '.' }];
  return trees.map((spec) => {
    const eq = spec.indexOf('=');
    if (eq < 0) throw new UsageError(`Missing type in tree specification '${spec}'`);
    const kind = spec.slice(0, eq);
    const value = spec.slice(eq + 1);
    if (kind === 'dir') return { dir: value };
    if (kind === 'ref') return { ref: value };
    if (kind === 'tar') return { tar: value };
    throw new UsageError(`Invalid tree type specification '${kind}'`);
  });
}

/**
 * `--statoverride` lines, as ostree reads them: `+MODE PATH` (or `MODE PATH`) adds mode bits,
 * `=MODE PATH` sets the permission bits; MODE is read as a decimal number (its leading number,
 * as strtod), PATH is everything after the first space.
 */
function parseStatOverrides(lines: string[]): NonNullable<CommitTreeOptions['statOverrides']> {
  const add = new Map<string, number>();
  const set = new Map<string, number>();
  for (const line of lines) {
    const sp = line.indexOf(' ');
    if (sp < 0) throw new CommandError('Malformed statoverride file (no space found)');
    const path = line.slice(sp + 1);
    const isSet = line.startsWith('=');
    const m = /^[ \t]*[+-]?(?:\d+(?:\.\d*)?|\.\d+)/.exec(line.slice(isSet ? 1 : 0, sp));
    const value = m === null ? 0 : Math.trunc(Number(m[0].trim())) | 0;
    (isSet ? set : add).set(path, value >>> 0);
  }
  return { add, set };
}

async function readTextFile(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (e) {
    throw new CommandError(`openat(${file}): ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'No such file or directory' : (e as Error).message}`);
  }
}

/** A file read line by line as ostree's ot_parse_file_by_line: empty lines are skipped. */
async function readListFile(file: string): Promise<string[]> {
  return (await readTextFile(file)).split('\n').filter((l) => l !== '');
}

/** The skip list: one absolute path per line, as `ostree commit --skip-list` reads it. */
async function readSkipList(file: string): Promise<string[]> {
  return readListFile(file);
}

/**
 * `--bootable` needs the kernel version for `ostree.linux`: ostree 2022.7 looks for
 * usr/lib/modules/VERSION/vmlinuz in the tree being committed.
 */
async function kernelVersion(tree: string): Promise<string> {
  const modules = join(tree, 'usr/lib/modules');
  let entries: string[];
  try {
    entries = (await readdir(modules)).sort();
  } catch {
    throw new CommandError('No such file or directory: /usr');
  }
  for (const v of entries) {
    try {
      if ((await stat(join(modules, v, 'vmlinuz'))).isFile()) return v;
    } catch {
      /* not a kernel directory */
    }
  }
  throw new CommandError('No kernel found in /usr/lib/modules');
}

function progressBar(): Progress<{ filesDone: number; filesTotal?: number; bytesWritten: number }> {
  return startProgress(
    'Committing [{bar}] {value}/{total} files, {written} written',
    (p) => ({ value: p.filesDone, ...(p.filesTotal !== undefined ? { total: p.filesTotal } : {}), payload: { written: formatSize(p.bytesWritten) } }),
    { written: '0 bytes' },
  );
}
