/**
 * `larch remote add|list|delete|show-url`: the remotes of a repository, in OSTree's config keys
 * and OSTree's command forms:
 *   remote add [--no-gpg-verify] [--if-not-exists] [--set=KEY=VALUE]… NAME URL [BRANCH…]
 *   remote list [-u]
 *   remote delete [--if-exists] NAME
 *   remote show-url NAME
 * Everything else (validation, config rewriting, locking) is @larch/http-pull's.
 */
import type { Command } from 'commander';
import { addRemote, deleteRemote, listRemotes, remoteUrl } from '@larch/http-pull';
import type { VerbContext } from '../cli.js';
import { openRepo } from '../context.js';
import { collect, keyValue, parseOption } from '../options.js';
import { toJson } from '../format.js';
import { allOptions, verb } from './common.js';

interface AddOpts {
  gpgVerify: boolean;
  ifNotExists?: boolean;
  set?: string[];
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
    .action(async (name: string, url: string, branches: string[], _o: AddOpts, cmd: Command) => {
      const opts = allOptions<AddOpts>(cmd);
      const set = (opts.set ?? []).map((kv) => parseOption(keyValue, kv));
      const repo = await openRepo(opts);
      await addRemote(repo, {
        name,
        url,
        ...(branches.length > 0 ? { branches } : {}),
        ...(set.length > 0 ? { set } : {}),
        ...(opts.gpgVerify === false ? { gpgVerify: false } : {}),
        ...(opts.ifNotExists ? { ifNotExists: true } : {}),
      });
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
      await deleteRemote(await openRepo(opts), name, { ifExists: Boolean(opts.ifExists) });
    });

  sub(remote, 'show-url', 'Show remote repository URL')
    .argument('<name>', 'Name of the remote')
    .action(async (name: string, _o: object, cmd: Command) => {
      const opts = allOptions<object>(cmd);
      ctx.io.out(`${remoteUrl(await openRepo(opts), name)}\n`);
    });
}
