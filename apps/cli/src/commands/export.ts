/**
 * `larch export [--subpath=P] [--prefix=P] [--no-xattrs] [-o FILE] REV`: the commit's tree as a
 * GNU tar archive, byte for byte what `ostree export` writes (see core-store's repo-export.ts). With
 * `--output`, the archive is written to a temporary file beside FILE and renamed into place when
 * complete, so a failed export leaves no partial archive; without it, the archive streams to
 * stdout (padded to 10240 bytes, as libarchive pads a stream). Refuses to write to a terminal.
 */
import { open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Command } from 'commander';
import { exportArchive, streamSink, type TarSink } from '@larch/core-store';
import type { VerbContext } from '../cli.js';
import { CommandError, interruptible, openRepo } from '../context.js';
import { allOptions, verb } from './common.js';

interface ExportOpts {
  subpath?: string;
  prefix?: string;
  xattrs: boolean;
  output?: string;
}

/** Register `export`. */
export function registerExport(program: Command, ctx: VerbContext): void {
  verb(program, 'export', 'Stream COMMIT to stdout in tar format')
    .argument('<commit>', 'Commit or ref')
    .option('--no-xattrs', 'Skip output of extended attributes (the GNU tar format carries none)')
    .option('--subpath <path>', 'Checkout sub-directory PATH')
    .option('--prefix <path>', 'Add PATH as prefix to archive pathnames')
    .option('-o, --output <path>', 'Output to PATH')
    .action(async (rev: string, _o: ExportOpts, cmd: Command) => {
      const opts = allOptions<ExportOpts>(cmd);
      const repo = await openRepo(opts);
      const commit = await repo.revParse(rev);
      const what = { ...(opts.subpath !== undefined ? { subpath: opts.subpath } : {}), ...(opts.prefix !== undefined ? { prefix: opts.prefix } : {}) };
      if (opts.output === undefined) {
        if ((ctx.io.stdout as { isTTY?: boolean }).isTTY) throw new CommandError('Refusing to write a tar archive to a terminal; use --output=FILE or redirect stdout');
        await ctx.io.flush();
        await interruptible((signal) => exportArchive(repo, commit, streamSink(ctx.io.stdout), { ...what, padToRecord: true, signal }));
        return;
      }
      const out = opts.output;
      const tmp = join(dirname(out), `.${basename(out)}.tmp-${process.pid}`);
      const fh = await open(tmp, 'wx', 0o644).catch((e: NodeJS.ErrnoException) => {
        throw new CommandError(`Failed to open ${out}: ${e.code === 'ENOENT' ? 'No such file or directory' : e.message}`);
      });
      try {
        const sink: TarSink = async (chunk) => {
          let off = 0;
          while (off < chunk.length) off += (await fh.write(chunk, off, chunk.length - off)).bytesWritten;
        };
        await interruptible((signal) => exportArchive(repo, commit, sink, { ...what, signal }));
        await fh.sync();
        await fh.close();
        await rename(tmp, out);
      } catch (e) {
        await fh.close().catch(() => undefined);
        await rm(tmp, { force: true });
        throw e;
      }
    });
}
