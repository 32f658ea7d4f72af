/**
 * `larch ls [-R] [-C] [-d] [--json] REV [PATH...]`: ostree's columns, one entry per line:
 *   TYPE+MODE UID GID SIZE [CHECKSUM [METACHECKSUM]] PATH [-> TARGET]
 * e.g. `d00755 0 0      0 /` and `l00777 0 0      0 /link -> hello.txt`; the size is padded
 * to six columns, the mode is the permission bits in five octal digits.
 */
import type { Command } from 'commander';
import { formatLsEntry, ls, type LsEntry } from '@larch/core-store';
import type { VerbContext } from '../cli.js';
import { openRepo } from '../context.js';
import { toJson } from '../format.js';
import { allOptions, verb } from './common.js';

interface LsOptions {
  recursive?: boolean;
  checksum?: boolean;
  dironly?: boolean;
  json?: boolean;
}

/** Register `ls`: list paths inside a commit. */
export function registerLs(program: Command, ctx: VerbContext): void {
  verb(program, 'ls', 'List file paths')
    .argument('<rev>', 'Commit or ref')
    .argument('[paths...]', 'Paths inside the commit (default /)')
    .option('-R, --recursive', 'Print directories recursively')
    .option('-C, --checksum', 'Print checksum')
    .option('-d, --dironly', 'Do not recurse into directory arguments')
    .option('--json', 'Print JSON (see README)')
    .action(async (rev: string, paths: string[], _o: LsOptions, cmd: Command) => {
      const opts = allOptions<LsOptions>(cmd);
      const repo = await openRepo(opts);
      const commit = await repo.revParse(rev);
      const all: LsEntry[] = [];
      for (const p of paths.length > 0 ? paths : ['/']) {
        const entries = await ls(repo, commit, p, { recursive: Boolean(opts.recursive), directoryOnly: Boolean(opts.dironly) });
        if (opts.json) for (const e of entries) all.push(e);
        else ctx.io.out(entries.map((e) => `${formatLsEntry(e, { checksums: Boolean(opts.checksum) })}\n`).join(''));
      }
      if (opts.json) ctx.io.out(toJson(all.map(lsJson)));
    });
}

function lsJson(e: LsEntry): Record<string, unknown> {
  return {
    path: e.path,
    type: e.type === 'd' ? 'directory' : e.type === 'l' ? 'symlink' : 'file',
    mode: e.mode & 0o7777,
    uid: e.uid,
    gid: e.gid,
    size: e.size,
    checksum: e.checksum,
    ...(e.type === 'd' ? { metaChecksum: e.metaChecksum ?? null } : {}),
    ...(e.type === 'l' ? { target: e.target ?? '' } : {}),
  };
}
