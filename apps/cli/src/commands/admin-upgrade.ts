/**
 * `larch admin upgrade` and `larch admin switch`, in `ostree admin`'s forms:
 *   admin upgrade [--os=OS] [--override-commit=CHECKSUM] [--allow-downgrade] [--pull-only | --deploy-only] [--stage]
 *   admin switch [--os=OS] REMOTE:REF | REF | REMOTE:
 * @larch/sysroot's `upgrade` runs OSTree's upgrader; this module gives it the pull (from
 * @larch/http-pull, with the remote's signature policy, a progress bar on a terminal, Ctrl-C
 * stopping it with the refs untouched) and prints OSTree's messages.
 */
import { join } from 'node:path';
import type { Command } from 'commander';
import type { UpgradePullRequest } from '@larch/sysroot';
import type { VerbContext } from '../cli.js';
import { CommandError, interruptible, UsageError } from '../context.js';
import { allOptions } from './common.js';
import { bootedOf, bootedRootOption, lib, sub, sysrootOf, type SysrootOpts } from './admin-common.js';

interface UpgradeOpts extends SysrootOpts {
  os?: string;
  pullOnly?: boolean;
  deployOnly?: boolean;
  allowDowngrade?: boolean;
  overrideCommit?: string;
  stage?: boolean;
  reboot?: boolean;
}

/** The upgrader's pull: REFS from REMOTE into the sysroot's repository. */
function puller(ctx: VerbContext, sysroot: string): (req: UpgradePullRequest) => Promise<void> {
  return async (req) => {
    const { Repo } = await import('@larch/core-store');
    const { pull } = await import('@larch/http-pull');
    const { progressSink, signatureVerifier } = await import('./pull.js');
    const repo = await Repo.open(join(sysroot, 'ostree/repo'));
    const sink = progressSink(ctx.io, false);
    try {
      await interruptible((signal) =>
        pull({
          repo,
          remote: req.remote,
          refs: req.refs,
          verifier: signatureVerifier(repo.path),
          allowDowngrade: req.allowDowngrade,
          signal,
          ...(sink ? { onProgress: (p) => sink.update(p) } : {}),
        }),
      );
    } finally {
      sink?.stop();
    }
  };
}

/** Register `admin upgrade` and `admin switch`. */
export function registerAdminUpgrade(admin: Command, ctx: VerbContext): void {
  const out = (line: string): void => ctx.io.out(`${line}\n`);

  bootedRootOption(sub(admin, 'upgrade', 'Construct new tree from current origin and deploy it, if it changed'))
    .option('--os <osname>', 'Use a different operating system root than the current one')
    .option('-r, --reboot', 'Reboot after a successful upgrade (not supported by larch)')
    .option('--allow-downgrade', 'Permit deployment of chronologically older trees')
    .option('--override-commit <checksum>', 'Deploy CHECKSUM instead of the latest tree')
    .option('--pull-only', 'Do not create a deployment, just download')
    .option('--deploy-only', 'Do not pull, only deploy')
    .option('--stage', 'Enable staging (finalization at reboot time)')
    .action(async (_o: unknown, cmd: Command) => {
      const opts = allOptions<UpgradeOpts>(cmd);
      if (opts.pullOnly && opts.deployOnly) throw new UsageError('Cannot simultaneously specify --pull-only and --deploy-only');
      if (opts.pullOnly && opts.reboot) throw new UsageError('Cannot simultaneously specify --pull-only and --reboot');
      if (opts.reboot) throw new CommandError('--reboot is not supported: reboot the system yourself once the upgrade is done');
      const l = await lib();
      await l.upgrade(
        sysrootOf(opts),
        {
          ...(opts.os !== undefined ? { stateroot: opts.os } : {}),
          ...(opts.overrideCommit !== undefined ? { overrideCommit: opts.overrideCommit } : {}),
          allowDowngrade: Boolean(opts.allowDowngrade),
          ...(opts.deployOnly ? {} : { pull: puller(ctx, sysrootOf(opts)) }),
          pullOnly: Boolean(opts.pullOnly),
          stage: Boolean(opts.stage),
          log: out,
        },
        bootedOf(opts),
      );
    });

  bootedRootOption(sub(admin, 'switch', 'Construct new tree from REFSPEC and deploy it'))
    .argument('<refspec>', 'REMOTE:REF, REF (same remote), or REMOTE: (same ref)')
    .option('--os <osname>', 'Use a different operating system root than the current one')
    .option('-r, --reboot', 'Reboot after a successful switch (not supported by larch)')
    .action(async (given: string, _o: unknown, cmd: Command) => {
      const opts = allOptions<UpgradeOpts>(cmd);
      if (opts.reboot) throw new CommandError('--reboot is not supported: reboot the system yourself once the switch is done');
      const l = await lib();
      const sysroot = sysrootOf(opts);
      const { refspec: old } = await l.upgradeOrigin(sysroot, opts.os, bootedOf(opts));
      const [oldRemote, oldRef] = await splitRefspec(old);
      // ostree's rules: "REMOTE:" keeps the ref, a bare REF keeps the remote.
      const [givenRemote, givenRef] = given.endsWith(':') ? [given.slice(0, -1), oldRef] : await splitRefspec(given);
      const remote = givenRemote ?? oldRemote;
      const next = remote === null ? givenRef : `${remote}:${givenRef}`;
      await splitRefspec(next);
      if (next === old) throw new CommandError(`Old and new refs are equal: ${next}`);
      await l.upgrade(sysroot, { ...(opts.os !== undefined ? { stateroot: opts.os } : {}), refspec: next, pull: puller(ctx, sysroot), log: out }, bootedOf(opts));
      // The ref the system followed is dropped, as ostree drops it (a local branch is kept).
      if (oldRemote !== null) {
        out(`Deleting ref '${oldRemote}:${oldRef}'`);
        const { Repo } = await import('@larch/core-store');
        await (await Repo.open(join(sysroot, 'ostree/repo'))).setRef(old, null);
      }
    });
}

/** `REMOTE:REF` → [REMOTE, REF]; `REF` → [null, REF]; validated by core-store's parseRefspec. */
export async function splitRefspec(refspec: string): Promise<[string | null, string]> {
  const { parseRefspec } = await import('@larch/core-store');
  const r = parseRefspec(refspec);
  if (r.kind === 'mirrors') throw new CommandError(`Invalid refspec ${refspec}: a collection ref cannot be an origin`);
  return [r.scope, r.name];
}
