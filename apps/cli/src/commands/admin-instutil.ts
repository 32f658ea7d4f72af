/**
 * `larch admin instutil …`, ostree's "deprecated commands intended for installer programs":
 *   instutil set-kargs [--import-proc-cmdline] [--merge] [--replace=K=V]… [--append=K=V]… [K=V…]
 *   instutil grub2-generate [BOOTVERSION]
 *   instutil selinux-ensure-labeled [SUBPATH PREFIX]
 * set-kargs replaces the first deployment's kernel arguments (from /proc/cmdline, or the current
 * ones with --merge, else none; then --replace, --append and the arguments in that order).
 * grub2-generate prints the GRUB 2 menu entries of the BLS entries, as the helper script
 * ostree's GRUB integration runs expects (it needs `GRUB2_BOOT_DEVICE_ID` and
 * `GRUB2_PREPARE_ROOT_CACHE`; ostree aborts without them, larch says so). selinux-ensure-labeled
 * reports a deployment without a policy as ostree does; a deployment with a SELinux policy is refused
 * in one line (Larch does not relabel files).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import type { VerbContext } from '../cli.js';
import { CommandError, UsageError } from '../context.js';
import { collect } from '../options.js';
import { allOptions } from './common.js';
import { bootedOf, lib, sub, sysrootOf, type SysrootOpts } from './admin-common.js';

interface SetKargsOpts extends SysrootOpts {
  importProcCmdline?: boolean;
  merge?: boolean;
  replace?: string[];
  append?: string[];
}

/** Register `admin instutil` and its sub-verbs. */
export function registerAdminInstutil(admin: Command, ctx: VerbContext): void {
  const out = (line: string): void => ctx.io.out(`${line}\n`);
  const instutil = sub(admin, 'instutil', 'Deprecated commands intended for installer programs')
    .argument('[command]')
    .allowExcessArguments(true)
    .action((command: string | undefined) => {
      throw new UsageError(command === undefined ? 'No "admin instutil" subcommand specified' : `Unknown "admin instutil" subcommand '${command}'`);
    });

  sub(instutil, 'set-kargs', 'Set new kernel command line arguments(Not stable)')
    .argument('[args...]', 'Kernel arguments to append')
    .option('--import-proc-cmdline', 'Import current /proc/cmdline')
    .option('--merge', 'Merge with previous command line')
    .option('--replace <name=value>', 'Set kernel argument, like root=/dev/sda1; this overrides any earlier argument with the same name', collect)
    .option('--append <name=value>', 'Append kernel argument; useful with e.g. console= that can be used multiple times', collect)
    .action(async (args: string[], _o: unknown, cmd: Command) => {
      const opts = allOptions<SetKargsOpts>(cmd);
      const l = await lib();
      await l.setKargs(
        sysrootOf(opts),
        (current) => {
          // As ostree: the running kernel's arguments win over --merge.
          const k = opts.importProcCmdline ? l.procCmdlineKargs() : new l.KernelArgs();
          if (!opts.importProcCmdline && opts.merge) k.appendAll(current.split(' ').filter((w) => w !== ''));
          k.replaceAll(opts.replace ?? []);
          k.appendAll(opts.append ?? []);
          k.appendAll(args);
          return k.toArray();
        },
        0,
        out,
        bootedOf(opts),
      );
    });

  sub(instutil, 'grub2-generate', 'Generate GRUB2 configuration from given BLS entries')
    .argument('[bootversion]', 'Boot version (default: $_OSTREE_GRUB2_BOOTVERSION, else the current one)')
    .action(async (given: string | undefined, _o: unknown, cmd: Command) => {
      const opts = allOptions<SysrootOpts>(cmd);
      const l = await lib();
      const sr = await l.Sysroot.open(sysrootOf(opts));
      let b: number;
      if (given !== undefined) {
        b = /^[0-9]+$/.test(given) ? Number(given) : 0;
        if (b !== 0 && b !== 1) throw new CommandError(`Invalid bootversion: ${given}`);
      } else {
        const env = process.env._OSTREE_GRUB2_BOOTVERSION;
        b = env !== undefined ? Number(env) : sr.bootversion;
        if (b !== 0 && b !== 1) throw new CommandError(`Invalid bootversion: ${env}`);
      }
      const bootDeviceId = process.env.GRUB2_BOOT_DEVICE_ID;
      const prepareRootCache = process.env.GRUB2_PREPARE_ROOT_CACHE;
      if (bootDeviceId === undefined || prepareRootCache === undefined) {
        throw new CommandError('GRUB2_BOOT_DEVICE_ID and GRUB2_PREPARE_ROOT_CACHE must be set: grub2-generate is run by the GRUB 2 helper script');
      }
      ctx.io.out(l.grub2MenuEntries(sr.bootLoaderConfigs(b as 0 | 1), { bootDeviceId, prepareRootCache, efi: process.env._OSTREE_GRUB2_IS_EFI !== undefined }));
    });

  sub(instutil, 'selinux-ensure-labeled', 'Relabel all or part of a deployment')
    .argument('[subpath]', 'Path inside the deployment (default: all of it)')
    .argument('[prefix]', 'The path SUBPATH has on the running system')
    .action(async (_s: string | undefined, _p: string | undefined, _o: unknown, cmd: Command) => {
      const opts = allOptions<SysrootOpts>(cmd);
      const l = await lib();
      const sr = await l.Sysroot.open(sysrootOf(opts));
      const first = sr.deployments[0];
      if (!first) throw new CommandError('Unable to find a deployment in sysroot');
      const dir = sr.deploymentDir(first);
      // A policy is what etc/selinux/config's SELINUXTYPE names, as ostree's OstreeSePolicy finds it.
      const config = join(dir, 'etc/selinux/config');
      const type = existsSync(config) ? /^SELINUXTYPE=(.+)$/m.exec(readFileSync(config, 'utf8'))?.[1]?.trim() : undefined;
      if (type === undefined || type === '' || !existsSync(join(dir, 'etc/selinux', type))) {
        out(`No SELinux policy found in deployment '${dir}'`);
        return;
      }
      throw new CommandError(`Relabeling with the SELinux policy '${type}' of deployment '${dir}' is not supported by larch`);
    });
}
