/**
 * `larch log [--raw] [--json] [--gpg-verify-remote=R] [--gpg-homedir=H] REV`: the commit and its
 * ancestors, newest first, in ostree's layout; where a parent is not in the repository,
 * `<< History beyond this commit not fetched >>`. Signed commits are followed by the same
 * signature block as `show` (ostree 2022.7's log prints none; Larch shows the status so a
 * history can be audited at a glance).
 */
import type { Command } from 'commander';
import { COMMIT_TYPE, log } from '@larch/core-store';
import type { VerbContext } from '../cli.js';
import { openRepo } from '../context.js';
import { commitJson, commitText, HISTORY_NOT_FETCHED, type CommitJson } from '../commit-text.js';
import { toJson } from '../format.js';
import { rawObjectText } from '../variants.js';
import { allOptions, verb } from './common.js';
import { lazyTimeLocale, signatureText } from './show.js';

interface LogOptions {
  raw?: boolean;
  json?: boolean;
  gpgVerifyRemote?: string;
  gpgHomedir?: string;
}

/** Register `log`: print a commit and its ancestors. */
export function registerLog(program: Command, ctx: VerbContext): void {
  verb(program, 'log', 'Show log starting at commit or ref')
    .argument('<rev>', 'Commit or ref')
    .option('--raw', 'Show raw variant data')
    .option('--json', 'Print JSON (see README)')
    .option('--gpg-homedir <homedir>', 'GPG Homedir to use when looking for keyrings')
    .option('--gpg-verify-remote <remote>', 'Use REMOTE name for GPG configuration')
    .action(async (rev: string, _o: LogOptions, cmd: Command) => {
      const opts = allOptions<LogOptions>(cmd);
      const repo = await openRepo(opts);
      const start = await repo.revParse(rev);
      const commits: CommitJson[] = [];
      let missingParent: string | null = null;
      const timeLocale = lazyTimeLocale();
      for await (const entry of log(repo, start)) {
        if (entry.commit === null) {
          missingParent = entry.checksum;
          if (!opts.json) ctx.io.out(`${HISTORY_NOT_FETCHED}\n`);
          break;
        }
        if (opts.json) commits.push(commitJson(entry.checksum, entry.commit));
        else if (opts.raw) {
          const bytes = await repo.readMetadata('commit', entry.checksum);
          ctx.io.out(`commit ${entry.checksum}\n${rawObjectText(COMMIT_TYPE, bytes)}\n`);
        } else {
          const sigs = await signatureText(repo, entry.checksum, opts, timeLocale);
          ctx.io.out(commitText(entry.checksum, entry.commit) + (sigs === '' ? '' : `${sigs}\n`));
        }
      }
      if (opts.json) ctx.io.out(toJson({ commits, missingParent }));
    });
}
