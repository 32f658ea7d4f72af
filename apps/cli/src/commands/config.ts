/**
 * `larch config get SECTION.KEY`, `config set SECTION.KEY VALUE`, `config unset SECTION.KEY`
 * (also `--group=SECTION KEY`). The key is split at its last dot, so `remote "name".url` names
 * key `url` in group `remote "name"`, as in ostree. Unknown keys, comments and order of the
 * config file are preserved by core-store's KeyFile.
 */
import type { Command } from 'commander';
import type { Repo } from '@larch/core-store';
import type { VerbContext } from '../cli.js';
import { CommandError, openRepo, UsageError } from '../context.js';
import { toJson } from '../format.js';
import { allOptions, verb } from './common.js';

interface ConfigOpts {
  group?: string;
  json?: boolean;
}

/** Register `config`: get, set or unset repository config keys. */
export function registerConfig(program: Command, ctx: VerbContext): void {
  verb(program, 'config', 'Change repo configuration settings')
    .argument('[operation]', 'get, set or unset')
    .argument('[key]', 'SECTION.KEY (or KEY with --group)')
    .argument('[value]', 'Value for set')
    .option('--group <group>', 'Group name')
    .option('--json', 'With get: print {"group","key","value"}')
    .action(async (op: string | undefined, key: string | undefined, value: string | undefined, _o: ConfigOpts, cmd: Command) => {
      const opts = allOptions<ConfigOpts>(cmd);
      if (op === undefined) throw new UsageError('OPERATION must be specified');
      if (op !== 'get' && op !== 'set' && op !== 'unset') throw new UsageError(`Unknown operation ${op}`);
      if (key === undefined) throw new UsageError('KEY must be specified');
      const [group, name] = splitKey(key, opts.group);
      if (op !== 'set' && value !== undefined) throw new UsageError('Too many arguments given');
      const repo = await openRepo(opts);
      if (op === 'get') {
        const v = getValue(repo, group, name);
        ctx.io.out(opts.json ? toJson({ group, key: name, value: v }) : `${v}\n`);
      } else if (op === 'set') {
        if (value === undefined) throw new UsageError('VALUE must be specified');
        repo.config.set(group, name, value);
        await repo.saveConfig();
      } else {
        if (repo.config.removeKey(group, name)) await repo.saveConfig();
      }
    });
}

function splitKey(key: string, group: string | undefined): [string, string] {
  if (group !== undefined) return [group, key];
  const dot = key.lastIndexOf('.');
  if (dot <= 0 || dot === key.length - 1) throw new UsageError('Key must be of the form "sectionname.keyname"');
  return [key.slice(0, dot), key.slice(dot + 1)];
}

function getValue(repo: Repo, group: string, key: string): string {
  const v = repo.config.get(group, key);
  if (v !== undefined) return v;
  if (!repo.config.hasGroup(group)) throw new CommandError(`Key file does not have group “${group}”`);
  throw new CommandError(`Key file does not have key “${key}” in group “${group}”`);
}
