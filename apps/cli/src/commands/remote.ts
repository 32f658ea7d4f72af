/**
 * `larch remote add|list|delete|show-url`: the remotes of a repository, in OSTree's config keys
 * and OSTree's command forms:
 *   remote add [--no-gpg-verify] [--if-not-exists] [--set=KEY=VALUE]… [--gpg-import=FILE]
 *              [--sign-verify=ed25519=inline:KEY|file:PATH] NAME URL [BRANCH…]
 *   remote gpg-import [-k FILE]… [--stdin] NAME [KEY-ID…]
 *   remote gpg-list-keys [NAME]
 *   remote list [-u]
 *   remote delete [--if-exists] NAME
 *   remote show-url NAME
 * Config handling (validation, rewriting, locking) is @larch/http-pull's; keyrings
 * (`REPO/NAME.trustedkeys.gpg`, merged) are @larch/signing's. `--sign-verify` writes
 * `verification-TYPE-key` or `verification-TYPE-file` and `sign-verify=TYPE`, after the other
 * keys, in OSTree's order.
 */
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { addRemote, deleteRemote, listRemotes, remoteUrl } from '@larch/http-pull';
import type { VerbContext } from '../cli.js';
import { CommandError, openRepo, UsageError } from '../context.js';
import { collect, keyValue, parseOption } from '../options.js';
import { toJson } from '../format.js';
import { allOptions, verb } from './common.js';

interface AddOpts {
  gpgVerify: boolean;
  ifNotExists?: boolean;
  set?: string[];
  gpgImport?: string;
  signVerify?: string;
}

/** `--sign-verify=TYPE=inline:KEY|file:PATH` → the config keys OSTree writes for it. */
function signVerifyKeys(spec: string): Array<[string, string]> {
  const eq = spec.indexOf('=');
  if (eq < 0) throw new UsageError(`Failed to parse KEYTYPE=[inline|file]:DATA in ${spec}`);
  const type = spec.slice(0, eq);
  const rest = spec.slice(eq + 1);
  if (type !== 'ed25519') throw new CommandError(`Unsupported signature type '${type}' in --sign-verify; the supported type is ed25519`);
  const colon = rest.indexOf(':');
  const ref = colon < 0 ? rest : rest.slice(0, colon);
  if (ref !== 'inline' && ref !== 'file') throw new UsageError(`Invalid key reference ${ref}, expected inline|file`);
  if (colon < 0 || colon === rest.length - 1) throw new UsageError(`Failed to parse KEYTYPE=[inline|file]:DATA in ${spec}`);
  return [
    [`verification-${type}-${ref === 'inline' ? 'key' : 'file'}`, rest.slice(colon + 1)],
    ['sign-verify', type],
  ];
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

/** Register `remote` and its sub-verbs. */
export function registerRemote(program: Command, ctx: VerbContext): void {
  const remote = verb(program, 'remote', 'Remote management operations');

  sub(remote, 'add', 'Add a remote repository')
    .argument('<name>', 'Name of the remote')
    .argument('<url>', 'URL of the remote (http://, https:// or file://)')
    .argument('[branches...]', 'Default branches to pull')
    .option('--no-gpg-verify', 'Disable GPG verification')
    .option('--if-not-exists', 'Do nothing if the provided remote exists')
    .option('--set <key=value>', 'Set config option KEY=VALUE for remote', collect)
    .option('--gpg-import <file>', 'Import GPG key from FILE')
    .option('--sign-verify <spec>', 'Verify signatures using KEYTYPE=inline:PUBKEY or KEYTYPE=file:/path/to/key')
    .action(async (name: string, url: string, branches: string[], _o: AddOpts, cmd: Command) => {
      const opts = allOptions<AddOpts>(cmd);
      const set = (opts.set ?? []).map((kv) => parseOption(keyValue, kv));
      // OSTree's order: --set keys, gpg-verify=false, then the signature verification keys.
      const verifyKeys = opts.signVerify !== undefined ? signVerifyKeys(opts.signVerify) : [];
      if (verifyKeys.length > 0) {
        if (opts.gpgVerify === false) set.push(['gpg-verify', 'false']);
        set.push(...verifyKeys);
      }
      const source = opts.gpgImport !== undefined ? await readKeySource(opts.gpgImport) : null;
      const repo = await openRepo(opts);
      await addRemote(repo, {
        name,
        url,
        ...(branches.length > 0 ? { branches } : {}),
        ...(set.length > 0 ? { set } : {}),
        ...(opts.gpgVerify === false && verifyKeys.length === 0 ? { gpgVerify: false } : {}),
        ...(opts.ifNotExists ? { ifNotExists: true } : {}),
      });
      if (source !== null) {
        const { importGpgKeys } = await import('@larch/signing');
        const r = await repo.withLock('exclusive', () => importGpgKeys({ repoPath: repo.path, remote: name, sources: [source] }));
        ctx.io.out(importedLine(r.imported, name));
      }
    });

  sub(remote, 'gpg-import', 'Import GPG keys')
    .argument('<name>', 'Name of the remote')
    .argument('[keyids...]', 'Import only these keys')
    .option('-k, --keyring <file>', 'Import keys from a keyring file (repeatable)', collect)
    .option('--stdin', 'Import keys from standard input')
    .action(async (name: string, keyIds: string[], _o: { keyring?: string[]; stdin?: boolean }, cmd: Command) => {
      const opts = allOptions<{ keyring?: string[]; stdin?: boolean }>(cmd);
      const { importGpgKeys, loadGpgHomedirKeyring } = await import('@larch/signing');
      const repo = await openRepo(opts);
      remoteUrl(repo, name); // Remote "NAME" not found
      const sources: Array<{ bytes: Uint8Array; name: string }> = [];
      for (const f of opts.keyring ?? []) sources.push(await readKeySource(f));
      if (opts.stdin) sources.push({ bytes: await readStdin(), name: '<stdin>' });
      if (sources.length === 0) {
        // As OSTree: the user's default keyring.
        const { gnupgHome } = await import('./sign.js');
        const ring = await loadGpgHomedirKeyring(gnupgHome(undefined));
        sources.push({ bytes: Buffer.concat(ring.keys.map((k) => Buffer.from(k.write()))), name: 'default keyring' });
      }
      const r = await repo.withLock('exclusive', () => importGpgKeys({ repoPath: repo.path, remote: name, sources, ...(keyIds.length > 0 ? { keyIds } : {}) }));
      ctx.io.out(importedLine(r.imported, name));
    });

  sub(remote, 'gpg-list-keys', 'Show remote GPG keys')
    .argument('[name]', 'Name of the remote (without: the global keys)')
    .action(async (name: string | undefined, _o: object, cmd: Command) => {
      const opts = allOptions<object>(cmd);
      const { gpgListKeysText } = await import('./remote-gpg.js');
      ctx.io.out(await gpgListKeysText(await openRepo(opts), name));
    });

  sub(remote, 'list', 'List remote repository names')
    .option('-u, --show-urls', 'Show remote URLs in list')
    .option('--json', 'Print JSON: [{ name, url }]')
    .action(async (_o: { showUrls?: boolean; json?: boolean }, cmd: Command) => {
      const opts = allOptions<{ showUrls?: boolean; json?: boolean }>(cmd);
      const remotes = listRemotes(await openRepo(opts));
      if (opts.json) {
        ctx.io.out(toJson(remotes));
        return;
      }
      const width = Math.max(0, ...remotes.map((r) => r.name.length));
      for (const r of remotes) ctx.io.out(opts.showUrls ? `${r.name.padEnd(width)}  ${r.url}\n` : `${r.name}\n`);
    });

  sub(remote, 'delete', 'Delete a remote repository')
    .argument('<name>', 'Name of the remote')
    .option('--if-exists', 'Do nothing if the provided remote does not exist')
    .action(async (name: string, _o: { ifExists?: boolean }, cmd: Command) => {
      const opts = allOptions<{ ifExists?: boolean }>(cmd);
      const repo = await openRepo(opts);
      // As OSTree, the remote's keyring goes with it.
      if (await deleteRemote(repo, name, { ifExists: Boolean(opts.ifExists) })) await (await import('./remote-gpg.js')).deleteKeyringOf(repo, name);
    });

  sub(remote, 'show-url', 'Show remote repository URL')
    .argument('<name>', 'Name of the remote')
    .action(async (name: string, _o: object, cmd: Command) => {
      const opts = allOptions<object>(cmd);
      ctx.io.out(`${remoteUrl(await openRepo(opts), name)}\n`);
    });
}
