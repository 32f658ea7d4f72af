/**
 * `larch diff [--stats] [--fs-diff] [--no-xattrs] [--owner-uid=UID] [--owner-gid=GID]
 * REV_OR_DIR [REV_OR_DIR]`: ostree's `KIND    PATH` lines, modified first, then deleted, then
 * added. A side is a directory on disk when it starts with `/` or `./`, else a revision; with one
 * argument REV, `REV^` is compared with REV. Entries of a commit print as `/a/b`, entries on disk
 * relative to their directory. `--stats` prints the object counts of both commits and what they
 * share. `--json` gives `[{ "kind", "path" }]`.
 */
import { lstat } from 'node:fs/promises';
import { Option, type Command } from 'commander';
import { diffTrees, traverseCommit, type DiffSide, type ObjectRef, type Repo } from '@larch/core-store';
import type { VerbContext } from '../cli.js';
import { openRepo } from '../context.js';
import { formatSize, toJson } from '../format.js';
import { integer, parseOption } from '../options.js';
import { allOptions, verb } from './common.js';

interface DiffOptions {
  json?: boolean;
  stats?: boolean;
  fsDiff?: boolean;
  noXattrs?: boolean;
  ownerUid?: string;
  ownerGid?: string;
}

/** A GLib `G_OPTION_ARG_INT` value. */
const int32 = (name: string) => integer(name, { min: -2147483648, max: 2147483647 });

async function side(repo: Repo, arg: string): Promise<DiffSide> {
  if (arg.startsWith('/') || arg.startsWith('./')) return { dir: arg };
  return { commit: await repo.revParse(arg) };
}

/** What `ostree_repo_traverse_commit` reaches with depth 0 (the detached metadata is not an object it counts). */
async function reachable(repo: Repo, rev: string): Promise<Map<string, ObjectRef>> {
  const all = await traverseCommit(repo, await repo.revParse(rev));
  for (const [k, o] of all) if (o.type === 'commitmeta') all.delete(k);
  return all;
}

async function statsText(repo: Repo, a: string, b: string): Promise<string> {
  const ra = await reachable(repo, a);
  const rb = await reachable(repo, b);
  let common = 0;
  let size = 0;
  for (const [k, o] of ra) {
    if (!rb.has(k)) continue;
    common++;
    size += (await lstat(repo.objectPath(o.type, o.checksum))).size;
  }
  return `[A] Object Count: ${ra.size}\n[B] Object Count: ${rb.size}\nCommon Object Count: ${common}\nCommon Object Size: ${formatSize(size)}\n`;
}

/** Register `diff`: compare two commits, or a commit and a directory. */
export function registerDiff(program: Command, ctx: VerbContext): void {
  verb(program, 'diff', 'Compare directory TARGETDIR against revision REV')
    .argument('<rev-or-dir>', 'Old revision or directory (./DIR or /DIR); alone, REV^ is compared with it')
    .argument('[rev-or-dir]', 'New revision or directory')
    .option('--stats', 'Print various statistics')
    .option('--fs-diff', 'Print filesystem diff')
    .addOption(Object.assign(new Option('--no-xattrs', 'Skip output of extended attributes'), { negate: false }))
    .option('--owner-uid <uid>', 'Use file ownership user id for local files')
    .option('--owner-gid <gid>', 'Use file ownership group id for local files')
    .option('--json', 'Print JSON (see README)')
    .action(async (first: string, second: string | undefined, _o: DiffOptions, cmd: Command) => {
      const opts = allOptions<DiffOptions>(cmd);
      const uid = opts.ownerUid === undefined ? -1 : parseOption(int32('--owner-uid'), opts.ownerUid);
      const gid = opts.ownerGid === undefined ? -1 : parseOption(int32('--owner-gid'), opts.ownerGid);
      const repo = await openRepo(opts);
      const [a, b] = second === undefined ? [`${first}^`, first] : [first, second];
      const fsDiff = opts.fsDiff || !opts.stats;
      if (fsDiff) {
        const changes = await diffTrees(repo, await side(repo, a), await side(repo, b), {
          ignoreXattrs: Boolean(opts.noXattrs),
          ...(uid >= 0 ? { ownerUid: uid } : {}),
          ...(gid >= 0 ? { ownerGid: gid } : {}),
        });
        if (opts.json) ctx.io.out(toJson(changes.map((c) => ({ kind: c.kind, path: c.path }))));
        else for (const c of changes) ctx.io.out(`${c.kind}    ${c.path}\n`);
      }
      if (opts.stats) ctx.io.out(await statsText(repo, a, b));
    });
}
