/**
 * `larch cat REV PATH...`: write the content of files in a commit to stdout, streamed. As with
 * ostree, a symlink is followed (inside the commit) and a directory is an error.
 */
import { posix } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Command } from 'commander';
import { ls, type Checksum, type Repo } from '@larch/core-store';
import type { VerbContext } from '../cli.js';
import { CommandError, openRepo, type Io } from '../context.js';
import { allOptions, verb } from './common.js';

/** Same bound as the kernel's MAXSYMLINKS. */
const MAX_SYMLINK_HOPS = 40;

/** Register `cat`: stream files of a commit to stdout. */
export function registerCat(program: Command, ctx: VerbContext): void {
  verb(program, 'cat', 'Concatenate contents of files')
    .argument('<rev>', 'Commit or ref')
    .argument('<paths...>', 'Files inside the commit')
    .action(async (rev: string, paths: string[], _o: object, cmd: Command) => {
      const opts = allOptions<object>(cmd);
      const repo = await openRepo(opts);
      const commit = await repo.revParse(rev);
      for (const p of paths) await catOne(ctx.io, repo, commit, p);
    });
}

async function catOne(io: Io, repo: Repo, commit: Checksum, path: string): Promise<void> {
  let current = posix.resolve('/', path);
  for (let hops = 0; ; hops++) {
    const [entry] = await ls(repo, commit, current, { directoryOnly: true });
    if (entry === undefined || entry.type === 'd') throw new CommandError("Can't open directory");
    if (entry.type === 'l') {
      if (hops >= MAX_SYMLINK_HOPS) throw new CommandError(`Too many levels of symbolic links: ${path}`);
      current = posix.resolve(posix.dirname(current), entry.target ?? '');
      continue;
    }
    const file = await repo.openFile(entry.checksum);
    await io.flush();
    await pipeline(file.open(), io.stdout, { end: false });
    return;
  }
}
