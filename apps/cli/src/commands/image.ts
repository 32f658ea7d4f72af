/**
 * `larch image build --repo=R --os=OS [--karg=K]… [--size=SIZE] [--bootloader=grub2|none] REF
 * OUT.img`: a bootable GPT disk image of REF deployed in a fresh sysroot (@larch/image's
 * buildImage). Prints the default boot entry's kernel command line and the image's size.
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
  verb(image, 'build', 'Write a bootable GPT disk image of REF deployed as OS')
    .argument('<ref>', 'Ref or commit to deploy')
    .argument('<out>', 'Disk image to write')
    .option('--os <os>', 'Stateroot name')
    .option('--karg <k=v>', 'Append a kernel argument (after root=UUID=…, rw, console=ttyS0)', collect)
    .option('--size <size>', 'Disk size (e.g. 4G); default: room for the deployment and an update')
    .option('--bootloader <name>', 'grub2 (EFI system partition with GRUB) or none', 'grub2')
    .option('--root-uuid <uuid>', 'UUID of the root filesystem (default random)')
    .action(async (ref: string, out: string, _o: ImageBuildOpts, cmd: Command) => {
      const opts = allOptions<ImageBuildOpts>(cmd);
      if (opts.os === undefined || opts.os === '') throw new UsageError('--os=OS is required');
      const bootloader = opts.bootloader ?? 'grub2';
      if (bootloader !== 'grub2' && bootloader !== 'none') throw new UsageError(`Invalid --bootloader '${bootloader}' (expected grub2 or none)`);
      const repo = await repoPath(opts);
      const r = await interruptible((signal) =>
        buildImage({
          repo,
          os: opts.os!,
          ref,
          out,
          kargs: opts.karg ?? [],
          bootloader: bootloader as ImageBootloader,
          ...(opts.size !== undefined ? { size: parseSize(opts.size) } : {}),
          ...(opts.rootUuid !== undefined ? { rootUuid: opts.rootUuid } : {}),
          signal,
        }),
      );
      ctx.io.out(`${r.out}: ${r.size} bytes, root UUID ${r.rootUuid}\ncmdline: ${r.cmdline}\n`);
    });
}
