/**
 * `larch checksum [--ignore-xattrs] PATH`: the checksum PATH would have as an object — a file or
 * symlink as a content object, a directory as a dirmeta — as `ostree checksum` prints it.
 */
import type { Command } from 'commander';
import type { VerbContext } from '../cli.js';
import { allOptions, verb } from './common.js';

/** Register `checksum`. */
export function registerChecksum(program: Command, ctx: VerbContext): void {
  verb(program, 'checksum', 'Checksum a file or directory')
    .argument('<path>', 'File, symlink or directory')
    .option('--ignore-xattrs', "Don't include xattrs in checksum")
    .action(async (path: string, _o: object, cmd: Command) => {
      const opts = allOptions<{ ignoreXattrs?: boolean }>(cmd);
      const { checksumPath } = await import('@larch/core-store');
      ctx.io.out(`${await checksumPath(path, { ignoreXattrs: Boolean(opts.ignoreXattrs) })}\n`);
    });
}
