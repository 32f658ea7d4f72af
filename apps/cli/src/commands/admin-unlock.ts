/**
 * `larch admin unlock [--hotfix | --transient]`: a writable overlay on the booted deployment's
 * `/usr` (@larch/sysroot's `unlock`), with ostree's messages. On a system not booted from a
 * sysroot it fails as ostree does ("Not currently booted into an OSTree system"); where overlayfs
 * cannot be mounted, in one line: `Failed overlayfs mount: REASON`.
 */
import type { Command } from 'commander';
import type { VerbContext } from '../cli.js';
import { CommandError, UsageError } from '../context.js';
import { allOptions } from './common.js';
import { bootedOf, bootedRootOption, lib, sub, sysrootOf, type SysrootOpts } from './admin-common.js';

const MESSAGES = {
  hotfix:
    'Hotfix mode enabled.  A writable overlayfs is now mounted on /usr\nfor this booted deployment.  A non-hotfixed clone has been created\nas the non-default rollback target.\n',
  development: 'Development mode enabled.  A writable overlayfs is now mounted on /usr.\nAll changes there will be discarded on reboot.\n',
  transient: 'A writable overlayfs is prepared for /usr, but is mounted read-only by default.\nAll changes there will be discarded on reboot.\n',
} as const;

/** Register `admin unlock`. */
export function registerAdminUnlock(admin: Command, ctx: VerbContext): void {
  bootedRootOption(sub(admin, 'unlock', 'Make the current deployment mutable (as a hotfix or development)'))
    .option('--hotfix', 'Retain changes across reboots')
    .option('--transient', 'Mount overlayfs read-only by default')
    .argument('[extra...]')
    .action(async (extra: string[], _o: unknown, cmd: Command) => {
      const opts = allOptions<SysrootOpts & { hotfix?: boolean; transient?: boolean }>(cmd);
      if (extra.length > 0) throw new UsageError('This command takes no extra arguments');
      const l = await lib();
      if (opts.hotfix && opts.transient) {
        // ostree looks for the booted deployment first
        if (!(await l.Sysroot.open(sysrootOf(opts), bootedOf(opts))).booted) throw new CommandError('Not currently booted into an OSTree system');
        throw new CommandError('Cannot specify both --hotfix and --transient');
      }
      const state = opts.hotfix ? 'hotfix' : opts.transient ? 'transient' : 'development';
      await l.unlock(sysrootOf(opts), state, bootedOf(opts), (line) => ctx.io.out(`${line}\n`));
      ctx.io.out(MESSAGES[state]);
    });
}
