/**
 * `larch admin …`: manage an OSTree sysroot, in `ostree admin`'s command forms:
 *   admin [--print-current-dir]
 *   admin init-fs [--modern] DIR
 *   admin os-init [--sysroot=DIR] OS
 *   admin deploy [--sysroot=DIR] --os=OS [--karg=K=V]… [--karg-append=K=V]… [--karg-delete=K]…
 *                [--karg-none | --karg-proc-cmdline] [--retain] [--retain-pending] [--retain-rollback]
 *                [--not-as-default] [--no-merge] [--no-prune] [--origin-file=F] [--stage]
 *                [--dry-run [--json]] REF|CHECKSUM
 *   admin undeploy INDEX | set-default INDEX | rollback | cleanup | pin [-u] INDEX… |
 *         kargs [--append=K=V]… [--delete=K]… [--replace=K=V]… [--deployment-index=N] [--json] |
 *         kargs edit-in-place [--append-if-missing=K=V]… |
 *         config-diff [--os=OS] [--json] | set-origin [--index=N] [--set=K=V]… REMOTE URL [BRANCH] |
 *         finalize-staged [--hold] | boot-complete (internal, for ostree's systemd units)
 * and, in their own modules: status (admin-status.ts), upgrade and switch (admin-upgrade.ts),
 * unlock (admin-unlock.ts), instutil (admin-instutil.ts).
 * The sysroot is `--sysroot` (before or after the sub-verb), else $OSTREE_SYSROOT, else `/`. The
 * work is @larch/sysroot's (and, for pulls, @larch/http-pull's); these modules parse, call and
 * print OSTree's messages.
 */
import { existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import type { VerbContext } from '../cli.js';
import { CommandError, UsageError } from '../context.js';
import { OWN_ACTION, SubcommandError } from '../help.js';
import { toJson } from '../format.js';
import { collect, keyValue, parseOption } from '../options.js';
import { allOptions } from './common.js';
import { bootedOf, bootedRootOption, index, lib, sub, sysrootOf, type SysrootOpts } from './admin-common.js';
import { registerAdminInstutil } from './admin-instutil.js';
import { registerAdminStatus } from './admin-status.js';
import { registerAdminUnlock } from './admin-unlock.js';
import { registerAdminUpgrade } from './admin-upgrade.js';

interface DeployOpts extends SysrootOpts {
  os?: string;
  karg?: string[];
  kargAppend?: string[];
  kargDelete?: string[];
  kargNone?: boolean;
  kargProcCmdline?: boolean;
  retain?: boolean;
  retainPending?: boolean;
  retainRollback?: boolean;
  notAsDefault?: boolean;
  merge: boolean;
  prune: boolean;
  originFile?: string;
  stage?: boolean;
  dryRun?: boolean;
}

/** The flag file of a system booted through OSTree; the internal verbs do nothing without it. */
const OSTREE_BOOTED = '/run/ostree-booted';
/** Under the sysroot's /boot: why the last finalization failed, for boot-complete to report. */
const FINALIZE_FAILURE_STAMP = 'ostree/finalize-failure.stamp';

/**
 * A failed finalization leaves its message in /boot, as ostree's does, so that `admin
 * boot-complete` at the next boot fails with it; a stamp that cannot be written is only reported.
 */
function recordFinalizeFailure(sysroot: string, e: unknown, err: (s: string) => void): void {
  const stamp = join(sysroot, 'boot', FINALIZE_FAILURE_STAMP);
  try {
    mkdirSync(join(sysroot, 'boot', 'ostree'), { recursive: true });
    writeFileSync(stamp, e instanceof Error ? e.message : String(e));
  } catch (w) {
    err(`Failed to write ${FINALIZE_FAILURE_STAMP}: ${(w as Error).message}\n`);
  }
}

/**
 * `finalize-staged --hold`: keep the sysroot's /boot open (an automount then stays mounted) until
 * the unit is stopped; SIGTERM ends the process as it ends ostree's.
 */
async function holdBootOpen(sysroot: string): Promise<never> {
  try {
    openSync(join(sysroot, 'boot'), 'r'); // open until the process ends
  } catch (e) {
    throw new CommandError(`opendir(boot): ${(e as Error).message}`);
  }
  return new Promise<never>(() => {
    setInterval(() => {}, 1 << 30);
  });
}

/** Register `admin` and its sub-verbs. */
export function registerAdmin(program: Command, ctx: VerbContext): void {
  const out = (line: string): void => ctx.io.out(`${line}\n`);
  const admin = program
    .command('admin')
    .description('Commands for managing a host system booted with ostree')
    .option('--sysroot <path>', 'Use system root PATH (default: /)')
    .option('-v, --verbose', 'Print debug information on errors')
    .option('--print-current-dir', 'Print the directory of the first deployment and exit')
    .argument('[command]')
    .allowExcessArguments(true)
    .action(async (command: string | undefined, opts: SysrootOpts & { printCurrentDir?: boolean }) => {
      if (command === undefined && opts.printCurrentDir) {
        const sr = await (await lib()).Sysroot.open(sysrootOf(opts));
        const first = sr.deployments[0];
        if (!first) throw new CommandError('Unable to find a deployment in sysroot');
        out(sr.deploymentDir(first));
        return;
      }
      throw new SubcommandError(command === undefined ? 'No "admin" subcommand specified' : `Unknown "admin" subcommand '${command}'`, admin);
    });
  OWN_ACTION.add(admin);

  sub(admin, 'init-fs', 'Initialize a root filesystem')
    .argument('<path>', 'Directory to initialize (must exist)')
    .option('--modern', 'Only create /boot and /ostree')
    .action(async (dir: string, _o: { modern?: boolean }, cmd: Command) => {
      const opts = allOptions<{ modern?: boolean }>(cmd);
      await (await lib()).initFs(dir, { modern: Boolean(opts.modern) });
    });

  sub(admin, 'os-init', 'Initialize empty state for given operating system')
    .argument('<os>', 'Stateroot name')
    .action(async (os: string, _o: SysrootOpts, cmd: Command) => {
      const opts = allOptions<SysrootOpts>(cmd);
      await (await lib()).osInit(sysrootOf(opts), os, out);
    });

  sub(admin, 'deploy', 'Checkout revision REFSPEC as the new default deployment')
    .argument('<refspec>', 'Ref or commit checksum')
    .option('--os <osname>', 'Use a different operating system root than the current one')
    .option('--karg <k=v>', 'Set kernel argument, like root=/dev/sda1; this overrides any earlier argument with the same name', collect)
    .option('--karg-append <k=v>', 'Append kernel argument; useful with e.g. console= that can be used multiple times', collect)
    .option('--karg-delete <k[=v]>', 'Delete kernel argument if exists', collect)
    .option('--karg-none', 'Do not import kernel arguments')
    .option('--karg-proc-cmdline', 'Import current /proc/cmdline')
    .option('--retain', 'Do not delete previous deployments')
    .option('--retain-pending', 'Do not delete pending deployments')
    .option('--retain-rollback', 'Do not delete rollback deployments')
    .option('--not-as-default', 'Append rather than prepend new deployment')
    .option('--no-merge', 'Do not apply configuration (/etc and kernel arguments) from booted deployment')
    .option('--no-prune', "Don't prune the repo when done")
    .option('--origin-file <file>', 'Specify origin file')
    .option('--stage', 'Complete deployment at OS shutdown')
    .option('--dry-run', 'Print what would be done, including the /etc merge preview; change nothing')
    .option('--json', 'With --dry-run: print the preview as JSON')
    .action(async (refspec: string, _o: DeployOpts, cmd: Command) => {
      const opts = allOptions<DeployOpts>(cmd);
      if (opts.kargProcCmdline && opts.kargNone) throw new UsageError("Can't specify both --karg-proc-cmdline and --karg-none");
      if (opts.kargNone && opts.kargDelete) throw new UsageError("Can't specify both --karg-none and --karg-delete");
      if (opts.merge === false && opts.kargDelete) throw new UsageError("Can't specify both --no-merge and --karg-delete");
      const l = await lib();
      const dopts = {
        ...(opts.os !== undefined ? { stateroot: opts.os } : {}),
        refspec,
        kargs: { none: Boolean(opts.kargNone), procCmdline: Boolean(opts.kargProcCmdline), replace: opts.karg ?? [], append: opts.kargAppend ?? [], delete: opts.kargDelete ?? [] },
        retain: Boolean(opts.retain),
        retainPending: Boolean(opts.retainPending),
        retainRollback: Boolean(opts.retainRollback),
        notAsDefault: Boolean(opts.notAsDefault),
        noMerge: opts.merge === false,
        noPrune: opts.prune === false,
        ...(opts.originFile !== undefined ? { originFile: opts.originFile } : {}),
        stage: Boolean(opts.stage),
        log: out,
      };
      if (opts.dryRun) {
        const p = await l.previewDeploy(sysrootOf(opts), dopts);
        if (opts.json) {
          ctx.io.out(toJson({ ...p, merge: p.merge ? { stateroot: p.merge.stateroot, name: l.deploymentName(p.merge) } : null }));
          return;
        }
        out(`Would deploy ${p.list.find((d) => d.isNew)?.stateroot ?? ''} ${p.commit}.${p.deployserial}`);
        out(`Merge deployment: ${p.merge ? `${p.merge.stateroot} ${l.deploymentName(p.merge)}` : 'none'}`);
        out(`Kernel arguments: ${p.kargs}`);
        out('Deployments after:');
        for (const d of p.list) out(`  ${d.stateroot} ${d.name}${d.isNew ? ' (new)' : ''}`);
        if (!p.etc) {
          out('/etc merge: none (no merge deployment)');
          return;
        }
        out(`/etc merge: ${p.etc.modified.length} modified, ${p.etc.removed.length} removed, ${p.etc.added.length} added`);
        const word = { 'keep-local': 'M', remove: 'D', 'add-local': 'A' } as const;
        for (const e of p.etc.entries) out(`  ${word[e.action]}    /etc/${e.path}${e.conflict ? `  (conflict: ${e.conflict})` : ''}`);
        if (p.etc.blocked) out('The merge would fail: a modified config file newly defaults to a directory');
        return;
      }
      await l.deploy(sysrootOf(opts), dopts);
    });

  // The two internal verbs of ostree's systemd units: hidden from `admin --help`, and, as in
  // ostree, doing nothing at all outside a booted OSTree system.
  sub(admin, 'finalize-staged', 'Internal command to run at shutdown time', { hidden: true })
    .option('--hold', 'Hold /boot open during finalization')
    .action(async (_o: SysrootOpts & { hold?: boolean }, cmd: Command) => {
      if (!existsSync(OSTREE_BOOTED)) return;
      const opts = allOptions<SysrootOpts & { hold?: boolean }>(cmd);
      if (opts.hold) await holdBootOpen(sysrootOf(opts));
      try {
        // Nothing staged: nothing to do and nothing to say (ostree only writes to the journal).
        await (await lib()).finalizeStaged(sysrootOf(opts), {}, out);
      } catch (e) {
        recordFinalizeFailure(sysrootOf(opts), e, ctx.io.err);
        throw e;
      }
    });

  sub(admin, 'boot-complete', 'Internal command to run at boot after an update was applied', { hidden: true }).action(async (_o: SysrootOpts, cmd: Command) => {
    if (!existsSync(OSTREE_BOOTED)) return;
    // ostree asserts this (and aborts): the unit's mount namespace is what makes /boot writable.
    if (process.env.INVOCATION_ID === undefined) throw new CommandError('admin boot-complete must be run by systemd (INVOCATION_ID is not set)');
    const opts = allOptions<SysrootOpts>(cmd);
    const l = await lib();
    const sr = await l.Sysroot.open(sysrootOf(opts));
    if (sr.booted && process.getuid?.() !== 0) throw new CommandError('You must be root to perform this command');
    const stamp = join(sr.path, 'boot', FINALIZE_FAILURE_STAMP);
    let failure: string;
    try {
      failure = readFileSync(stamp, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw new CommandError(`Reading from ${FINALIZE_FAILURE_STAMP}: ${(e as Error).message}`);
    }
    // Removed first, so that the failure is reported once rather than at every boot.
    rmSync(stamp, { force: true });
    throw new CommandError(`ostree-finalize-staged.service failed on previous boot: ${failure}`);
  });

  bootedRootOption(sub(admin, 'config-diff', 'Diff current /etc configuration versus default'))
    .option('--os <osname>', 'Use a different operating system root than the current one')
    .option('--json', 'Print JSON: { deployment, modified, removed, added }')
    .action(async (_o: SysrootOpts, cmd: Command) => {
      const opts = allOptions<SysrootOpts & { os?: string }>(cmd);
      const l = await lib();
      const d = await l.configDiff(sysrootOf(opts), opts.os, bootedOf(opts));
      if (opts.json) {
        ctx.io.out(toJson({ deployment: l.deploymentName(d.deployment), stateroot: d.deployment.stateroot, modified: d.modified, removed: d.removed, added: d.added }));
        return;
      }
      // ostree's layout: the modified, then the removed, then the added, "X    path".
      for (const [tag, list] of [['M', d.modified], ['D', d.removed], ['A', d.added]] as const) for (const p of list) out(`${tag}    ${p}`);
    });

  sub(admin, 'undeploy', 'Delete deployment INDEX')
    .argument('<index>', 'Deployment index')
    .action(async (i: string, _o: SysrootOpts, cmd: Command) => {
      const opts = allOptions<SysrootOpts>(cmd);
      await (await lib()).undeploy(sysrootOf(opts), index(i), out);
    });

  sub(admin, 'set-default', 'Make deployment INDEX the default (a Larch addition, not an ostree 2022.7 verb)')
    .argument('<index>', 'Deployment index')
    .action(async (i: string, _o: SysrootOpts, cmd: Command) => {
      const opts = allOptions<SysrootOpts>(cmd);
      await (await lib()).setDefault(sysrootOf(opts), index(i), out);
    });

  sub(admin, 'rollback', 'Make the previous deployment of the default stateroot the default (a Larch addition, not an ostree 2022.7 verb)')
    .action(async (_o: SysrootOpts, cmd: Command) => {
      const opts = allOptions<SysrootOpts>(cmd);
      const l = await lib();
      const r = await l.rollback(sysrootOf(opts), out);
      out(`Moving '${l.deploymentName(r.target)}' to be first deployment`);
    });

  sub(admin, 'cleanup', 'Delete untagged deployments and repository objects')
    .action(async (_o: SysrootOpts, cmd: Command) => {
      const opts = allOptions<SysrootOpts>(cmd);
      await (await lib()).cleanup(sysrootOf(opts), { log: out });
    });

  sub(admin, 'pin', 'Change the "pinning" state of a deployment')
    .argument('<index...>', 'Deployment indices')
    .option('-u, --unpin', 'Unset pin')
    .action(async (idx: string[], _o: { unpin?: boolean }, cmd: Command) => {
      const opts = allOptions<SysrootOpts & { unpin?: boolean }>(cmd);
      await (await lib()).pin(sysrootOf(opts), idx.map(index), Boolean(opts.unpin), out);
    });

  const kargs = sub(admin, 'kargs', 'Change kernel arguments')
    .option('--append <k=v>', 'Append a kernel argument', collect)
    .option('--delete <k[=v]>', 'Delete a kernel argument', collect)
    .option('--replace <k=v>', 'Replace every value of a kernel argument', collect)
    .option('--deployment-index <index>', 'Deployment to change (default 0)')
    .option('--json', 'Print JSON: { kargs }')
    .argument('[command]')
    .action(async (command: string | undefined, _o: unknown, cmd: Command) => {
      if (command !== undefined) throw new SubcommandError(`Unknown "admin kargs" subcommand '${command}'`, cmd);
      const opts = allOptions<SysrootOpts & { append?: string[]; delete?: string[]; replace?: string[]; deploymentIndex?: string }>(cmd);
      const l = await lib();
      const i = opts.deploymentIndex === undefined ? 0 : index(opts.deploymentIndex);
      const edits = (opts.append?.length ?? 0) + (opts.delete?.length ?? 0) + (opts.replace?.length ?? 0);
      // Bare `admin kargs` is a usage error, as in ostree (whose only sub-verb is edit-in-place);
      // with any of its own options it shows or edits the kernel arguments.
      if (edits === 0 && opts.sysroot === undefined && opts.json === undefined && opts.deploymentIndex === undefined && process.env.OSTREE_SYSROOT === undefined) {
        throw new SubcommandError('No "admin kargs" subcommand specified', cmd);
      }
      let kargs: string;
      if (edits === 0) {
        const s = await l.sysrootStatus(sysrootOf(opts));
        const d = s.deployments[i];
        if (!d) throw new UsageError(`Out of range deployment index ${i}, expected < ${s.deployments.length}`);
        kargs = d.kargs;
      } else {
        kargs = (await l.editKargs(sysrootOf(opts), { append: opts.append ?? [], delete: opts.delete ?? [], replace: opts.replace ?? [] }, i, out)).kargs;
      }
      ctx.io.out(opts.json ? toJson({ kargs }) : `${kargs}\n`);
    });
  // Without a sub-verb but with its options, `admin kargs` shows or edits the kernel arguments (a Larch addition).
  OWN_ACTION.add(kargs);

  sub(kargs, 'edit-in-place', 'Set new kernel command line arguments in place (applies to all deployments by default)')
    .option('--append-if-missing <name=value>', 'Append kernel arguments if they do not exist', collect)
    .argument('[args...]', 'Ignored, as by ostree')
    .action(async (_a: string[], _o: unknown, cmd: Command) => {
      const opts = allOptions<SysrootOpts & { appendIfMissing?: string[] }>(cmd);
      await (await lib()).editKargsInPlace(sysrootOf(opts), opts.appendIfMissing ?? []);
    });

  sub(admin, 'set-origin', 'Set Origin and create a new origin file')
    .argument('<remotename>', 'Remote name')
    .argument('<url>', 'Remote URL')
    .argument('[branch]', 'Branch (default: the ref of the current origin)')
    .option('-s, --set <key=value>', 'Set config option KEY=VALUE for remote', collect)
    .option('--index <index>', 'Operate on the deployment INDEX, starting from zero')
    .action(async (remote: string, url: string, branch: string | undefined, _o: unknown, cmd: Command) => {
      const opts = allOptions<SysrootOpts & { set?: string[]; index?: string }>(cmd);
      const set = (opts.set ?? []).map((kv) => parseOption(keyValue, kv));
      const i = opts.index === undefined ? undefined : index(opts.index);
      const { Repo } = await import('@larch/core-store');
      const { addRemote } = await import('@larch/http-pull');
      // As ostree: the remote is added unless it exists (then it is left as it is).
      await addRemote(await Repo.open(join(sysrootOf(opts), 'ostree/repo')), { name: remote, url, set, ifNotExists: true });
      await (await lib()).setOrigin(sysrootOf(opts), { remote, ...(branch !== undefined ? { branch } : {}), ...(i !== undefined ? { index: i } : {}) });
    });

  registerAdminStatus(admin, ctx);
  registerAdminUpgrade(admin, ctx);
  registerAdminUnlock(admin, ctx);
  registerAdminInstutil(admin, ctx);
}
