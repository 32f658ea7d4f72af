/**
 * `larch diff REV_A REV_B`: ostree's `KIND    /path` lines, modified first, then deleted, then
 * added (within each group in tree order). `--json` gives `[{ "kind", "path" }]`.
 */
import type { Command } from 'commander';
import { diffCommits } from '@larch/core-store';
import type { VerbContext } from '../cli.js';
import { openRepo } from '../context.js';
import { toJson } from '../format.js';
import { allOptions, verb } from './common.js';

/** Register `diff`: compare the trees of two commits. */
export function registerDiff(program: Command, ctx: VerbContext): void {
  verb(program, 'diff', 'Compare two revisions')
    .argument('<rev-a>', 'Old revision')
    .argument('<rev-b>', 'New revision')
    .option('--json', 'Print JSON (see README)')
    .action(async (a: string, b: string, _o: { json?: boolean }, cmd: Command) => {
      const opts = allOptions<{ json?: boolean }>(cmd);
      const repo = await openRepo(opts);
      const from = await repo.revParse(a);
      const to = await repo.revParse(b);
      // diffCommits returns the changes grouped and ordered as ostree prints them.
      const changes = await diffCommits(repo, from, to);
      if (opts.json) ctx.io.out(toJson(changes.map((c) => ({ kind: c.kind, path: c.path }))));
      else for (const c of changes) ctx.io.out(`${c.kind}    ${c.path}\n`);
    });
}
