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
import { commitTree, validateRefName } from '@larch/core-store';
import type { VerbContext } from '../cli.js';
import { CommandError, interruptible, openRepo, UsageError, type Io } from '../context.js';
import { checksum, collect, keyValue, parseOption, timestamp, uidGid } from '../options.js';
import { formatSize } from '../format.js';
import { booleanVariant, metadataFromText, stringVariant, type Variant } from '../variants.js';
import { allOptions, verb } from './common.js';
import type { SigningOptions } from './sign.js';

interface CommitOptions extends SigningOptions {
  branch?: string;
  subject?: string;
  body?: string;
  tree?: string[];
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
    .option('--tree <spec>', 'Overlay the given argument as a tree (dir=PATH)', collect)
    .option('--timestamp <timestamp>', 'Override the timestamp of the commit (@SECONDS, ISO 8601, ...)')
    .option('--parent <commit>', 'Parent commit checksum, or "none"')
    .option('--owner-uid <uid>', 'Set file ownership user id')
    .option('--owner-gid <gid>', 'Set file ownership group id')
    .option('--add-metadata-string <key=value>', 'Add a key/value pair to metadata', collect)
    .option('--add-metadata <key=value>', 'Add a key/value pair to metadata, VALUE in GVariant text format', collect)
    .option('--bootable', 'Flag this commit as a bootable OSTree (needs usr/lib/modules/VERSION/vmlinuz)')
    .option('--skip-list <file>', 'File containing list of files to skip')
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
  if (opts.branch === undefined && !opts.orphan) {
    throw new UsageError('A branch must be specified with --branch, or use --orphan');
  }
  if (opts.branch !== undefined) validateRefName(opts.branch);
  const tree = treeDir(positional, opts.tree);
  const ts = opts.timestamp === undefined ? undefined : parseOption(timestamp, opts.timestamp);
  let parent: string | null | undefined;
  if (opts.parent !== undefined) {
    parent = opts.parent === 'none' ? null : parseOption(checksum, opts.parent, `Invalid rev ${opts.parent}`);
  }
  const ownerUid = opts.ownerUid === undefined ? undefined : parseOption(uidGid('--owner-uid'), opts.ownerUid);
  const ownerGid = opts.ownerGid === undefined ? undefined : parseOption(uidGid('--owner-gid'), opts.ownerGid);

  const metadata: Array<[string, Variant]> = [];
  for (const kv of opts.addMetadataString ?? []) {
    const [k, v] = parseOption(keyValue, kv);
    metadata.push([k, stringVariant(v)]);
  }
  for (const kv of opts.addMetadata ?? []) {
    const [k, text] = parseOption(keyValue, kv);
    metadata.push(metadataFromText(kv, k, text));
  }
  if (opts.bootable) {
    metadata.push(['ostree.linux', stringVariant(await kernelVersion(tree))]);
    metadata.push(['ostree.bootable', booleanVariant(true)]);
  }
  const skipList = opts.skipList === undefined ? undefined : await readSkipList(opts.skipList);
  // Signers are prepared before the commit is written, so a bad key fails without leaving an
  // unsigned commit behind; the signing module is loaded only when asked for.
  const wantsSigning =
    (opts.gpgSign?.length ?? 0) > 0 || opts.gpgSecretKeyFile !== undefined || (opts.sign?.length ?? 0) > 0 || opts.keysFile !== undefined;
  const signing = wantsSigning ? await import('./sign.js') : null;
  const signers = signing ? await signing.signersFromOptions(opts) : [];
  if (signing) await signing.preflightSigners(signers);

  const repo = await openRepo(opts);
  const bar = io.stderrIsTTY ? progressBar() : null;
  try {
    const result = await interruptible((signal) =>
      commitTree(repo, {
        signal,
        tree,
        ...(opts.branch !== undefined && !opts.orphan ? { branch: opts.branch } : {}),
        ...(opts.subject !== undefined ? { subject: opts.subject } : {}),
        ...(opts.body !== undefined ? { body: opts.body } : {}),
        ...(parent !== undefined ? { parent } : {}),
        ...(ts !== undefined ? { timestamp: ts } : {}),
        metadata,
        bindings: opts.bindings && opts.branch !== undefined,
        ...(ownerUid !== undefined ? { ownerUid } : {}),
        ...(ownerGid !== undefined ? { ownerGid } : {}),
        ...(skipList !== undefined ? { skipList } : {}),
        canonicalPermissions: Boolean(opts.canonicalPermissions),
        noXattrs: !opts.xattrs,
        ...(bar ? { onProgress: bar.update } : {}),
      }),
    );
    bar?.stop();
    // The ref already points at the commit (as with `ostree commit --gpg-sign`, which signs
    // after writing the ref); the signature lands in its detached metadata right after.
    if (signing) await signing.signCommit(repo, result.commit, signers);
    io.out(`${result.commit}\n`);
  } catch (e) {
    bar?.stop();
    throw e;
  }
}

/** `--tree=dir=PATH` (one), else the positional PATH, else the current directory. */
function treeDir(positional: string | undefined, trees: string[] | undefined): string {
  if (trees === undefined || trees.length === 0) return positional ?? '.';
  if (trees.length > 1) throw new UsageError('Only one --tree argument is supported');
  const spec = trees[0];
  const eq = spec.indexOf('=');
  if (eq < 0) throw new UsageError(`Missing type in tree specification '${spec}'`);
  const kind = spec.slice(0, eq);
  if (kind !== 'dir') {
    throw new UsageError(
      kind === 'tar' || kind === 'ref' ? `Unsupported tree type '${kind}' (only dir= is supported)` : `Invalid tree type specification '${kind}'`,
    );
  }
  return spec.slice(eq + 1);
}

/** The skip list: one absolute path per line, as `ostree commit --skip-list` reads it. */
async function readSkipList(file: string): Promise<string[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new CommandError(`openat(${file}): ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'No such file or directory' : (e as Error).message}`);
  }
  return text.split('\n').filter((l) => l !== '');
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
