/**
 * `larch show [--json] [--raw] [--print-metadata-key=K] REV`: one commit in ostree's layout, or
 * one metadata value printed as GVariant text (`'1.0'`, `['test']`) as ostree does.
 */
import type { Command } from 'commander';
import { COMMIT_TYPE } from '@larch/core-store';
import { lookup } from '@larch/gvariant';
import type { VerbContext } from '../cli.js';
import { CommandError, openRepo } from '../context.js';
import { commitJson, commitText } from '../commit-text.js';
import { toJson } from '../format.js';
import { byteswapVariant, rawObjectText, variantText, variantToJson } from '../variants.js';
import { allOptions, verb } from './common.js';

interface ShowOptions {
  raw?: boolean;
  json?: boolean;
  printMetadataKey?: string;
}

/** Register `show`: print one commit or one of its metadata values. */
export function registerShow(program: Command, ctx: VerbContext): void {
  verb(program, 'show', 'Output a metadata object')
    .argument('<rev>', 'Commit or ref')
    .option('--print-metadata-key <key>', 'Print string value of metadata key')
    .option('--raw', 'Show raw variant data')
    .option('--json', 'Print JSON (see README)')
    .action(async (rev: string, _o: ShowOptions, cmd: Command) => {
      const opts = allOptions<ShowOptions>(cmd);
      const repo = await openRepo(opts);
      const checksum = await repo.revParse(rev);
      const commit = await repo.readCommit(checksum);
      if (opts.printMetadataKey !== undefined) {
        const key = opts.printMetadataKey;
        const value = lookup(commit.metadata, key);
        if (value === undefined) throw new CommandError(`No such metadata key '${key}'`);
        if (opts.json) ctx.io.out(toJson({ key, type: value.type, value: variantToJson(value), text: variantText(value) }));
        // ostree byteswaps the whole commit for display, metadata values included.
        else ctx.io.out(`${variantText(byteswapVariant(value))}\n`);
        return;
      }
      if (opts.json) ctx.io.out(toJson(commitJson(checksum, commit)));
      else if (opts.raw) {
        const bytes = await repo.readMetadata('commit', checksum);
        ctx.io.out(`commit ${checksum}\n${rawObjectText(COMMIT_TYPE, bytes)}\n`);
      } else ctx.io.out(commitText(checksum, commit));
    });
}
