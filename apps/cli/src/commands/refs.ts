/**
 * `larch refs [PREFIX]` lists local refs then remote refs (`REMOTE:REF`); with PREFIX only the
 * refs below it, with PREFIX removed unless --list (as ostree). `refs --delete PREFIX...`
 * deletes every ref below each PREFIX (refusing a ref an alias points at); `refs --create=NEW REV`
 * makes a ref (refusing to replace one without --force); `--alias` lists aliases, or with
 * --create makes NEW an alias of the local ref REV (an existing alias is repointed without
 * --force). Listing is sorted (ostree prints in hash-table order).
 */
import type { Command } from 'commander';
import { assertRefDirs, listRefAliases, setRefAlias, validateRefName, type Checksum, type Repo } from '@larch/core-store';
import type { VerbContext } from '../cli.js';
import { CommandError, openRepo, UsageError } from '../context.js';
import { toJson } from '../format.js';
import { allOptions, verb } from './common.js';

interface RefsOpts {
  delete?: boolean;
  list?: boolean;
  alias?: boolean;
  create?: string;
  force?: boolean;
  json?: boolean;
}

/** Register `refs`: list, create, alias and delete refs. */
export function registerRefs(program: Command, ctx: VerbContext): void {
  verb(program, 'refs', 'List refs')
    .argument('[prefix...]', 'PREFIX (one for listing; one or more with --delete; the revision with --create)')
    .option('--delete', 'Delete refs which match PREFIX, rather than listing them')
    .option('--list', 'Do not remove the prefix from the refs')
    .option('-A, --alias', 'If used with --create, create an alias, otherwise just list aliases')
    .option('--create <newref>', 'Create a new ref for an existing commit')
    .option('--force', 'Overwrite existing refs when creating')
    .option('--json', 'Print JSON (see README)')
    .action(async (args: string[], _o: RefsOpts, cmd: Command) => {
      const opts = allOptions<RefsOpts>(cmd);
      const repo = await openRepo(opts);
      // Everything but listing below a PREFIX reads all refs, which ostree refuses to do when
      // refs/heads or refs/remotes is missing (a damaged repository), rather than list too few.
      if (opts.create !== undefined || opts.delete || opts.alias || args.length === 0) await assertRefDirs(repo);
      if (opts.create !== undefined) {
        if (args.length === 0) throw new UsageError('You must specify a revision when creating a new ref');
        if (args.length > 1) throw new UsageError('Too many arguments: --create takes one revision');
        await createRef(repo, opts.create, args[0], Boolean(opts.alias), Boolean(opts.force));
        return;
      }
      if (opts.delete) {
        if (args.length === 0) throw new UsageError('At least one PREFIX is required when deleting refs');
        const refs = await allRefs(repo);
        const aliases = await listRefAliases(repo);
        for (const prefix of args.map(wholeRemote)) {
          for (const name of refs.keys()) {
            if (!underPrefix(name, prefix)) continue;
            // Deleting a ref that an alias points at would leave the alias dangling.
            for (const [alias, target] of aliases) {
              if (target === name) throw new CommandError(`Ref '${name}' has an active alias: '${alias}'`);
            }
            await repo.setRef(name, null);
          }
        }
        return;
      }
      if (args.length > 1) throw new UsageError('Too many arguments: at most one PREFIX');
      const prefix = args[0] === undefined ? undefined : wholeRemote(args[0]);
      if (opts.alias) {
        const aliases = [...(await listRefAliases(repo)).entries()].filter(([n]) => prefix === undefined || underPrefix(n, prefix)).sort(byName);
        if (opts.json) ctx.io.out(toJson(aliases.map(([name, target]) => ({ name, target }))));
        else for (const [name, target] of aliases) ctx.io.out(`${name} -> ${target}\n`);
        return;
      }
      // Local heads first, then remote refs, each group sorted (allRefs keeps that order).
      const refs = [...(await allRefs(repo)).entries()].filter(([n]) => prefix === undefined || underPrefix(n, prefix));
      if (opts.json) {
        ctx.io.out(toJson(refs.map(([name, checksum]) => ({ name, checksum }))));
        return;
      }
      for (const [name] of refs) ctx.io.out(`${prefix === undefined || opts.list ? name : stripPrefix(name, prefix)}\n`);
    });
}

function byName(a: [string, string], b: [string, string]): number {
  return a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0;
}

/** Local heads, then remote refs as `REMOTE:REF`, each group sorted by name. */
async function allRefs(repo: Repo): Promise<Map<string, Checksum>> {
  const heads = [...(await repo.listRefs({ kind: 'heads' })).entries()].sort(byName);
  const remotes = [...(await repo.listRefs({ kind: 'remotes' })).entries()].sort(byName);
  return new Map([...heads, ...remotes]);
}

/** `REMOTE:.` means every ref of REMOTE, like `REMOTE:` (flatpak passes it). */
function wholeRemote(prefix: string): string {
  return /^[^:]+:\.$/.test(prefix) ? prefix.slice(0, -1) : prefix;
}

/** ostree's prefixes are whole path components: `a` covers `a` and `a/b`, not `ab`; `origin:` covers a remote. */
function underPrefix(name: string, prefix: string): boolean {
  if (prefix.endsWith(':')) return name.startsWith(prefix);
  return name === prefix || name.startsWith(`${prefix}/`);
}

/**
 * `refs a` prints `a/b` as `b`; a whole remote (`refs origin:`) keeps full refspecs, and a prefix
 * within a remote keeps the remote (`refs origin:a` prints `origin:a/b` as `origin:b`), as ostree.
 */
function stripPrefix(name: string, prefix: string): string {
  if (name === prefix || prefix.endsWith(':')) return name;
  const colon = prefix.indexOf(':');
  const remote = colon >= 0 ? prefix.slice(0, colon + 1) : '';
  return remote + name.slice(prefix.length + 1);
}

async function createRef(repo: Repo, name: string, rev: string, alias: boolean, force: boolean): Promise<void> {
  const colon = name.indexOf(':');
  validateRefName(colon >= 0 ? name.slice(colon + 1) : name);
  // An alias may be pointed elsewhere without --force, as ostree allows.
  const replacingAlias = alias && (await listRefAliases(repo)).has(name);
  if (!force && !replacingAlias && (await allRefs(repo)).has(name)) {
    throw new CommandError(`--create specified but ref ${name} already exists`);
  }
  if (alias) {
    if (colon >= 0) throw new CommandError(`Cannot create alias to remote ref: ${name.slice(0, colon)}`);
    if ((await repo.resolveRef(rev)) === null) throw new CommandError(`Cannot create alias to non-existent ref: ${rev}`);
    await setRefAlias(repo, name, rev);
    return;
  }
  await repo.setRef(name, await repo.revParse(rev));
}
