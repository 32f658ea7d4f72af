/**
 * `larch remote …`: the remotes of a repository, in OSTree's config keys and OSTree's command
 * forms (ostree 2022.7):
 *   remote add [--set=KEY=VALUE]… [--no-gpg-verify] [--no-sign-verify]
 *              [--sign-verify=ed25519=inline:KEY|file:PATH]… [--if-not-exists | --force]
 *              [--gpg-import=FILE] [--custom-backend=NAME] [--contenturl=URL]
 *              [--collection-id=ID] [--sysroot=PATH] NAME URL [BRANCH…]
 *   remote delete [--if-exists] [--sysroot=PATH] NAME
 *   remote show-url NAME
 *   remote list [-u]
 *   remote gpg-import [-k FILE]… [--stdin] NAME [KEY-ID…]
 *   remote gpg-list-keys [NAME]
 *   remote add-cookie NAME DOMAIN PATH COOKIE_NAME VALUE      (@larch/http-pull; remote-cookies.ts prints)
 *   remote delete-cookie NAME DOMAIN PATH COOKIE_NAME
 *   remote list-cookies NAME
 *   remote refs [--cache-dir=DIR] NAME                         (remote-summary.ts)
 *   remote summary [--cache-dir=DIR] [--raw] NAME
 * Config handling (where remotes live, validation, rewriting, locking) is @larch/http-pull's;
 * keyrings (`REPO/NAME.trustedkeys.gpg`, merged) are @larch/signing's. As in ostree, words after
 * the last argument a sub-verb reads are ignored, and a missing argument prints the sub-verb's
 * help before the error line (`NAME must be specified`).
 */
import { existsSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { Option, type Command } from 'commander';
import { addRemote, addRemoteCookie, deleteRemote, deleteRemoteCookie, listRemoteCookies, listRemotes, remoteUrl, type AddRemoteOptions } from '@larch/http-pull';
import type { Repo } from '@larch/core-store';
import type { VerbContext } from '../cli.js';
import { CommandError, openRepo, repoPath, UsageError } from '../context.js';
import { SubcommandError } from '../help.js';
import { collect } from '../options.js';
import { toJson } from '../format.js';
import { allOptions, verb } from './common.js';

/** Where a repository's remotes live (http-pull's RemotesScope). */
type RemotesScope = NonNullable<AddRemoteOptions['scope']>;

interface AddOpts {
  set?: string[];
  noGpgVerify?: boolean;
  noSignVerify?: boolean;
  signVerify?: string[];
  ifNotExists?: boolean;
  force?: boolean;
  gpgImport?: string;
  customBackend?: string;
  contenturl?: string;
  collectionId?: string;
  sysroot?: string;
}

/** `--set=KEY=VALUE` as ostree splits it (`ot_parse_keyvalue`). */
function setPair(kv: string): [string, string] {
  const eq = kv.indexOf('=');
  if (eq < 0) throw new CommandError("Missing '=' in KEY=VALUE for --set");
  if (eq === 0) throw new CommandError(`Empty key in KEY=VALUE for --set: '${kv}'`);
  return [kv.slice(0, eq), kv.slice(eq + 1)];
}

/** `--sign-verify=TYPE=inline:KEY|file:PATH` (`add_verify_opt`): the key and its sign type. */
function signVerifySpec(spec: string): { type: string; ref: 'inline' | 'file'; value: string } {
  const eq = spec.indexOf('=');
  if (eq < 0) throw new CommandError(`Failed to parse KEYTYPE=[inline|file]:DATA in ${spec}`);
  const type = spec.slice(0, eq);
  const rest = spec.slice(eq + 1);
  if (type !== 'ed25519') {
    throw new CommandError(`Requested signature type is not implemented (Unsupported signature type '${type}' in --sign-verify; the supported type is ed25519)`);
  }
  const colon = rest.indexOf(':');
  const ref = colon < 0 ? rest : rest.slice(0, colon);
  if (ref !== 'inline' && ref !== 'file') throw new CommandError(`Invalid key reference ${ref}, expected inline|file`);
  // ostree aborts on an assertion here; a missing key is refused in its parse error's words.
  if (colon < 0) throw new CommandError(`Failed to parse KEYTYPE=[inline|file]:DATA in ${spec}`);
  return { type, ref, value: rest.slice(colon + 1) };
}

/**
 * A `--no-…` switch that is a switch of its own (`noGpgVerify`), not the negation of an option of
 * the same name: ostree lists it in the help, and `--sign-verify=SPEC` keeps its own list.
 */
function switchOption(flags: string, description: string): Option {
  const o = new Option(flags, description);
  o.negate = false;
  return o;
}

/** A usage mistake as ostree reports it: the sub-verb's help on stderr, then the error line. */
function usageError(cmd: Command, message: string): SubcommandError {
  return new SubcommandError(message, cmd);
}

/**
 * The repository of `--sysroot=PATH` (`PATH/ostree/repo`) and where its remotes live
 * (`ostree_parse_sysroot_or_repo_option`): a system repo whose remotes config dir is
 * `PATH/etc/ostree/remotes.d` when PATH is a deployed root (it has a `sysroot` directory or a
 * booted deployment), none when PATH is a physical root.
 */
async function sysrootRepo(path: string): Promise<{ repoPath: string; scope: RemotesScope }> {
  const abs = resolve(path);
  const isDir = async (p: string): Promise<boolean> => (await stat(p).catch(() => null))?.isDirectory() === true;
  if (!(await isDir(abs))) throw new CommandError(`loading sysroot: opendir(${abs}): No such file or directory`);
  if (!(await isDir(join(abs, 'ostree/repo')))) throw new CommandError('loading sysroot: opendir(ostree/repo): No such file or directory');
  if (!(await isDir(join(abs, 'ostree/deploy')))) throw new CommandError('loading sysroot: fstatat(ostree/deploy): No such file or directory');
  const { Sysroot } = await import('@larch/sysroot');
  let booted: boolean;
  try {
    booted = (await Sysroot.open(abs)).booted !== null;
  } catch (e) {
    throw new CommandError(`loading sysroot: ${(e as Error).message}`);
  }
  const deployed = booted || existsSync(join(abs, 'sysroot'));
  return { repoPath: join(abs, 'ostree/repo'), scope: { system: true, remotesConfigDir: deployed ? join(abs, 'etc/ostree/remotes.d') : null } };
}

/** The repository `remote add|delete` act on, and where its remotes live. */
async function repoAndScope(opts: { repo?: string; sysroot?: string }): Promise<{ repo: Repo; scope?: RemotesScope }> {
  const { Repo } = await import('@larch/core-store');
  if (opts.sysroot !== undefined) {
    const s = await sysrootRepo(opts.sysroot);
    const repo = await Repo.open(s.repoPath);
    try {
      // ostree reads the remotes while it loads the sysroot, and words their errors so.
      listRemotes(repo, s.scope);
    } catch (e) {
      throw new CommandError(`loading sysroot: ${(e as Error).message}`);
    }
    return { repo, scope: s.scope };
  }
  return { repo: await Repo.open(await repoPath(opts)) };
}

async function readKeySource(file: string): Promise<{ bytes: Uint8Array; name: string }> {
  try {
    return { bytes: await readFile(file), name: file };
  } catch (e) {
    throw new CommandError(`Opening ${file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'No such file or directory' : (e as Error).message}`);
  }
}

async function readStdin(): Promise<Uint8Array> {
  const parts: Buffer[] = [];
  for await (const c of process.stdin) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

function importedLine(n: number, remote: string): string {
  return `Imported ${n} GPG key${n === 1 ? '' : 's'} to remote "${remote}"\n`;
}

/** A `remote` sub-verb with the common `--repo` option (accepted after the sub-verb too). */
function sub(parent: Command, name: string, description: string): Command {
  return parent
    .command(name)
    .description(description)
    .option('--repo <path>', 'Path to OSTree repository (defaults to $OSTREE_REPO or the current directory)')
    .allowExcessArguments(false);
}

/**
 * A non-GPG `remote` sub-verb, with ostree's `--repo` help (add and delete default to the system
 * repo and list `--repo` after their own options) and ostree's tolerance of extra arguments.
 */
function ownSub(parent: Command, name: string, description: string, repoFirst = true): Command {
  const cmd = parent.command(name).description(description).allowExcessArguments(true);
  if (repoFirst) cmd.option('--repo <path>', 'Path to OSTree repository (defaults to current directory or /sysroot/ostree/repo)');
  return cmd;
}

/** Register `remote` and its sub-verbs. */
export function registerRemote(program: Command, ctx: VerbContext): void {
  const remote = verb(program, 'remote', 'Remote commands that may involve internet access');
  // ostree hands the options before the sub-verb to it: `remote --set=K=V add NAME URL` is
  // `remote add --set=K=V NAME URL`. Only `add` takes --set; it is not listed on `remote` itself.
  remote.addOption(new Option('--set <KEY=VALUE>', 'Set config option KEY=VALUE for remote').argParser(collect).hideHelp());
  remote.hook('preAction', (_remote, action) => {
    const before = (remote.opts() as { set?: string[] }).set;
    if (before !== undefined && action !== remote && action.name() !== 'add') throw new UsageError(`Unknown option --set=${before[0]}`);
  });

  const add = ownSub(remote, 'add', 'Add a remote repository', false);
  add
    .argument('[name]', 'Name of the remote')
    .argument('[url]', 'URL of the remote (http://, https:// or file://)')
    .argument('[branch...]', 'Default branches to pull')
    .option('--set <KEY=VALUE>', 'Set config option KEY=VALUE for remote', collect)
    .addOption(switchOption('--no-gpg-verify', 'Disable GPG verification'))
    .addOption(switchOption('--no-sign-verify', 'Disable signature verification'))
    .addOption(
      Object.assign(new Option('--sign-verify <spec>', 'Verify signatures using KEYTYPE=inline:PUBKEY or KEYTYPE=file:/path/to/key').argParser(collect), {
        // The help's metavar, which commander cannot take in the flags (it splits them at `|`).
        flags: '--sign-verify <KEYTYPE=[inline|file]:PUBKEY>',
      }),
    )
    .option('--if-not-exists', 'Do nothing if the provided remote exists')
    .option('--force', 'Replace the provided remote if it exists')
    .option('--gpg-import <file>', 'Import GPG key from FILE')
    .option('--custom-backend <name>', 'This remote has content not fetched via libostree')
    .option('--contenturl <url>', 'Use URL when fetching content')
    .option('--collection-id <collection-id>', 'Globally unique ID for this repository as an collection of refs for redistribution to other repositories')
    .option('--repo <path>', 'Path to OSTree repository (defaults to /sysroot/ostree/repo)')
    .option('--sysroot <path>', 'Use sysroot at PATH (overrides --repo)')
    .action(async (name: string | undefined, url: string | undefined, branches: string[], _o: AddOpts, cmd: Command) => {
      const opts = allOptions<AddOpts>(cmd);
      const noSignVerify = Boolean(opts.noSignVerify);
      const signSpecs = opts.signVerify ?? [];
      const target = await repoAndScope(opts);
      if (name === undefined || (url === undefined && opts.customBackend === undefined)) {
        throw usageError(cmd, opts.customBackend !== undefined ? 'NAME must be specified' : 'NAME and URL must be specified');
      }
      if (opts.ifNotExists && opts.force) throw usageError(cmd, 'Can only specify one of --if-not-exists and --force');
      const before = (remote.opts() as { set?: string[] }).set ?? [];
      const set = [...before, ...(add.opts() as { set?: string[] }).set ?? []].map(setPair);
      if (noSignVerify && signSpecs.length > 0) throw new CommandError('Cannot specify both --sign-verify and --no-sign-verify');
      const specs = signSpecs.map(signVerifySpec);
      const source = opts.gpgImport !== undefined ? await readKeySource(opts.gpgImport) : null;
      const { repo, scope } = target;
      await addRemote(repo, {
        name,
        url: url ?? null,
        ...(branches.length > 0 ? { branches } : {}),
        ...(opts.contenturl !== undefined ? { contentUrl: opts.contenturl } : {}),
        ...(opts.customBackend !== undefined ? { customBackend: opts.customBackend } : {}),
        ...(set.length > 0 ? { set } : {}),
        ...(opts.noGpgVerify ? { gpgVerify: false } : {}),
        ...(noSignVerify ? { signVerify: false as const } : specs.length > 0 ? { signVerify: specs } : {}),
        ...(opts.collectionId !== undefined ? { collectionId: opts.collectionId } : {}),
        ...(opts.ifNotExists ? { ifNotExists: true } : {}),
        ...(opts.force ? { force: true } : {}),
        ...(scope !== undefined ? { scope } : {}),
        // As ostree: any URL is taken (a pull refuses one it cannot fetch).
        checkUrls: false,
      });
      // As ostree: the keys are imported whether or not --if-not-exists left an existing remote alone.
      if (source !== null) {
        const { importRemoteGpgKeys } = await import('@larch/signing');
        ctx.io.out(importedLine((await importRemoteGpgKeys(repo, name, [source])).imported, name));
      }
    });

  ownSub(remote, 'delete', 'Delete a remote repository', false)
    .argument('[name]', 'Name of the remote')
    .option('--if-exists', 'Do nothing if the provided remote does not exist')
    .option('--repo <path>', 'Path to OSTree repository (defaults to /sysroot/ostree/repo)')
    .option('--sysroot <path>', 'Use sysroot at PATH (overrides --repo)')
    .action(async (name: string | undefined, _o: object, cmd: Command) => {
      const opts = allOptions<{ ifExists?: boolean; sysroot?: string }>(cmd);
      const { repo, scope } = await repoAndScope(opts);
      if (name === undefined) throw usageError(cmd, 'NAME must be specified');
      // As OSTree, the remote's keyring goes with it.
      if (await deleteRemote(repo, name, { ifExists: Boolean(opts.ifExists), ...(scope !== undefined ? { scope } : {}) })) {
        await (await import('@larch/signing')).deleteRemoteGpgKeyring(repo, name);
      }
    });

  ownSub(remote, 'show-url', 'Show remote repository URL')
    .argument('[name]', 'Name of the remote')
    .action(async (name: string | undefined, _o: object, cmd: Command) => {
      const opts = allOptions<object>(cmd);
      const repo = await openRepo(opts);
      if (name === undefined) throw usageError(cmd, 'NAME must be specified');
      ctx.io.out(`${remoteUrl(repo, name)}\n`);
    });

  ownSub(remote, 'list', 'List remote repository names')
    .option('-u, --show-urls', 'Show remote URLs in list')
    .option('--json', 'Print JSON: [{ name, url }]')
    .action(async (_o: object, cmd: Command) => {
      const opts = allOptions<{ showUrls?: boolean; json?: boolean }>(cmd);
      const repo = await openRepo(opts);
      const remotes = listRemotes(repo);
      if (opts.json) {
        ctx.io.out(toJson(remotes));
        return;
      }
      const width = Math.max(0, ...remotes.map((r) => Buffer.byteLength(r.name)));
      for (const r of remotes) {
        // As ostree: each URL is looked up as it is printed; a remote without one stops the list.
        const line = opts.showUrls ? `${r.name}${' '.repeat(width - Buffer.byteLength(r.name))}  ${remoteUrl(repo, r.name)}` : r.name;
        ctx.io.out(`${line}\n`);
      }
    });

  sub(remote, 'gpg-import', 'Import GPG keys')
    .argument('<name>', 'Name of the remote')
    .argument('[keyids...]', 'Import only these keys')
    .option('-k, --keyring <file>', 'Import keys from a keyring file (repeatable)', collect)
    .option('--stdin', 'Import keys from standard input')
    .action(async (name: string, keyIds: string[], _o: { keyring?: string[]; stdin?: boolean }, cmd: Command) => {
      const opts = allOptions<{ keyring?: string[]; stdin?: boolean }>(cmd);
      const { importRemoteGpgKeys, loadGpgHomedirKeyring } = await import('@larch/signing');
      const repo = await openRepo(opts);
      // As ostree: the remote must exist (in this repo or a parent), URL or not.
      if (!listRemotes(repo).some((r) => r.name === name)) throw new CommandError(`GPG: Remote "${name}" not found`);
      const sources: Array<{ bytes: Uint8Array; name: string }> = [];
      for (const f of opts.keyring ?? []) sources.push(await readKeySource(f));
      if (opts.stdin) sources.push({ bytes: await readStdin(), name: '<stdin>' });
      if (sources.length === 0) {
        // As OSTree: the user's default keyring.
        const { gnupgHome } = await import('./sign.js');
        const ring = await loadGpgHomedirKeyring(gnupgHome(undefined));
        sources.push({ bytes: Buffer.concat(ring.keys.map((k) => Buffer.from(k.write()))), name: 'default keyring' });
      }
      ctx.io.out(importedLine((await importRemoteGpgKeys(repo, name, sources, keyIds)).imported, name));
    });

  sub(remote, 'gpg-list-keys', 'Show remote GPG keys')
    .argument('[name]', 'Name of the remote (without: the global keys)')
    .action(async (name: string | undefined, _o: object, cmd: Command) => {
      const opts = allOptions<object>(cmd);
      const { gpgListKeysText } = await import('./remote-gpg.js');
      ctx.io.out(await gpgListKeysText(await openRepo(opts), name));
    });

  ownSub(remote, 'add-cookie', 'Add a cookie to remote')
    .argument('[name]')
    .argument('[domain]')
    .argument('[path]')
    .argument('[cookie_name]')
    .argument('[value]')
    .action(async (name: string | undefined, domain: string | undefined, path: string | undefined, cookieName: string | undefined, value: string | undefined, _o: object, cmd: Command) => {
      const repo = await openRepo(allOptions<object>(cmd));
      if (value === undefined) throw usageError(cmd, 'NAME, DOMAIN, PATH, COOKIE_NAME and VALUE must be specified');
      await addRemoteCookie(repo, name!, { domain: domain!, path: path!, name: cookieName!, value });
    });

  ownSub(remote, 'delete-cookie', 'Remove one cookie from remote')
    .argument('[name]')
    .argument('[domain]')
    .argument('[path]')
    .argument('[cookie_name]')
    .action(async (name: string | undefined, domain: string | undefined, path: string | undefined, cookieName: string | undefined, _o: object, cmd: Command) => {
      const repo = await openRepo(allOptions<object>(cmd));
      if (cookieName === undefined) throw usageError(cmd, 'NAME, DOMAIN, PATH and COOKIE_NAME must be specified');
      await deleteRemoteCookie(repo, name!, { domain: domain!, path: path!, name: cookieName });
    });

  ownSub(remote, 'list-cookies', 'Show remote repository cookies')
    .argument('[name]')
    .action(async (name: string | undefined, _o: object, cmd: Command) => {
      const repo = await openRepo(allOptions<object>(cmd));
      if (name === undefined) throw usageError(cmd, 'NAME must be specified');
      const { cookiesText } = await import('./remote-cookies.js');
      ctx.io.out(cookiesText(await listRemoteCookies(repo, name)));
    });

  ownSub(remote, 'refs', 'List remote refs')
    .argument('[name]')
    .option('--cache-dir <dir>', 'Use custom cache dir')
    .action(async (name: string | undefined, _o: object, cmd: Command) => {
      const opts = allOptions<{ cacheDir?: string }>(cmd);
      const repo = await openRepo(opts);
      if (name === undefined) throw usageError(cmd, 'NAME must be specified');
      const { remoteRefsText } = await import('./remote-summary.js');
      ctx.io.out(await remoteRefsText(repo, name, { ...(opts.cacheDir !== undefined ? { cacheDir: opts.cacheDir } : {}) }));
    });

  ownSub(remote, 'summary', 'Show remote summary')
    .argument('[name]')
    .option('--cache-dir <dir>', 'Use custom cache dir')
    .option('--raw', 'Show raw variant data')
    .action(async (name: string | undefined, _o: object, cmd: Command) => {
      const opts = allOptions<{ cacheDir?: string; raw?: boolean }>(cmd);
      const repo = await openRepo(opts);
      if (name === undefined) throw usageError(cmd, 'NAME must be specified');
      const { remoteSummaryText } = await import('./remote-summary.js');
      ctx.io.out(await remoteSummaryText(repo, name, { raw: Boolean(opts.raw), ...(opts.cacheDir !== undefined ? { cacheDir: opts.cacheDir } : {}) }));
    });

  // ostree's `-v` on every sub-verb, listed after the sub-verb's own options.
  for (const cmd of remote.commands) cmd.option('-v, --verbose', 'Print debug information during command processing');
}
