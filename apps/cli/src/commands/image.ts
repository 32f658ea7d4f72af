/**
 * `larch image build --repo=R --os=OS [--karg=K]… [--size=SIZE] [--bootloader=grub2|none] REF
 * OUT.img`: a bootable GPT disk image of REF deployed in a fresh sysroot (@larch/image's
 * buildImage). `larch image build --from-sysroot=DIR [--size=SIZE] [--bootloader=…] OUT.img`: the
 * image of an existing sysroot (e.g. one `ostree admin deploy --karg=root=UUID=…` made), as it is.
 * Prints the default boot entry's kernel command line and the image's size.
 */
import type { Command } from 'commander';
import { buildImage, parseSize, type ImageBootloader } from '@larch/image';
import type { VerbContext } from '../cli.js';
import { interruptible, repoPath, UsageError } from '../context.js';
import { collect } from '../options.js';
import { allOptions, verb } from './common.js';

interface ImageBuildOpts {
  os?: string;
  karg?: string[];
  size?: string;
  bootloader?: string;
  rootUuid?: string;
  fromSysroot?: string;
  grubTimeout?: string;
}

/** Register `image` (with its one sub-verb, `build`). */
export function registerImage(program: Command, ctx: VerbContext): void {
  const image = program
    .command('image')
    .description('Make bootable disk images of deployments')
    .option('-v, --verbose', 'Print debug information on errors')
    .argument('[command]')
    .allowExcessArguments(true)
    .action((command: string | undefined) => {
      throw new UsageError(command === undefined ? 'No "image" subcommand specified' : `Unknown "image" subcommand '${command}'`);
    });
  verb(image, 'build', 'Write a bootable GPT disk image of REF deployed as OS, or of an existing sysroot')
    .argument('[ref]', 'Ref or commit to deploy (not with --from-sysroot)')
    .argument('[out]', 'Disk image to write')
    .option('--os <os>', 'Stateroot name')
    .option('--karg <k=v>', 'Append a kernel argument (after root=UUID=…, rw, console=ttyS0)', collect)
    .option('--size <size>', 'Disk size (e.g. 4G); default: room for the deployment and an update')
    .option('--bootloader <name>', 'grub2 (EFI system partition with GRUB) or none', 'grub2')
    .option('--root-uuid <uuid>', 'UUID of the root filesystem (default random)')
    .option('--grub-timeout <seconds>', 'Seconds GRUB shows its menu (default 1; 0 boots the default entry at once)')
    .option('--from-sysroot <dir>', 'Put this sysroot (as ostree admin deploy left it) on the root partition instead of deploying REF')
    .action(async (arg1: string | undefined, arg2: string | undefined, _o: ImageBuildOpts, cmd: Command) => {
      const opts = allOptions<ImageBuildOpts>(cmd);
      const bootloader = opts.bootloader ?? 'grub2';
      if (bootloader !== 'grub2' && bootloader !== 'none') throw new UsageError(`Invalid --bootloader '${bootloader}' (expected grub2 or none)`);
      let source: { repo: string; os: string; ref: string; kargs: string[] } | { sysroot: string };
      let out: string | undefined;
      if (opts.fromSysroot !== undefined) {
        if (opts.fromSysroot === '') throw new UsageError('--from-sysroot needs a directory');
        if (arg2 !== undefined) throw new UsageError('With --from-sysroot, give only OUT (the sysroot\'s deployments are used, not a REF)');
        for (const [flag, v] of [['--os', opts.os], ['--karg', opts.karg]] as const) {
          if (v !== undefined) throw new UsageError(`${flag} cannot be used with --from-sysroot (the sysroot's deployments are used as they are)`);
        }
        source = { sysroot: opts.fromSysroot };
        out = arg1;
      } else {
        if (opts.os === undefined || opts.os === '') throw new UsageError('--os=OS is required');
        if (arg1 === undefined) throw new UsageError('REF must be specified');
        source = { repo: await repoPath(opts), os: opts.os, ref: arg1, kargs: opts.karg ?? [] };
        out = arg2;
      }
      if (out === undefined) throw new UsageError('OUT must be specified');
      let grubTimeout: number | undefined;
      if (opts.grubTimeout !== undefined) {
        if (!/^[0-9]{1,5}$/.test(opts.grubTimeout)) throw new UsageError(`Invalid --grub-timeout '${opts.grubTimeout}' (expected a whole number of seconds)`);
        grubTimeout = Number(opts.grubTimeout);
      }
      const r = await interruptible((signal) =>
        buildImage({
          ...source,
          out,
          bootloader: bootloader as ImageBootloader,
          ...(opts.size !== undefined ? { size: parseSize(opts.size) } : {}),
          ...(opts.rootUuid !== undefined ? { rootUuid: opts.rootUuid } : {}),
          ...(grubTimeout !== undefined ? { grubTimeout } : {}),
          signal,
        }),
      );
      ctx.io.out(`${r.out}: ${r.size} bytes, root UUID ${r.rootUuid}\ncmdline: ${r.cmdline}\n`);
    });
}
