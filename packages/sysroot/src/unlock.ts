/**
 * `ostree admin unlock`: make the booted deployment's `/usr` writable with an overlayfs, as
 * OSTree 2022.7's `ostree_sysroot_deployment_unlock` does.
 *
 * - development (default) and transient: the overlay's upper and work directories go into a new
 *   `VAR/tmp/ostree-unlock-ovl.XXXXXX`, and `RUN/ostree/deployment-state/CSUM.SERIAL/unlocked-…`
 *   records it; everything is gone after a reboot. Transient mounts the overlay read-only.
 * - hotfix: first a copy of the booted deployment (same commit, the merge deployment's kernel
 *   arguments) is deployed as the rollback target (not as default), so the unmodified tree stays
 *   bootable; then the overlay directories are `.usr-ovl-upper` / `.usr-ovl-work` in the
 *   deployment itself, and its origin says `unlocked=hotfix` (OSTree's initramfs mounts them at
 *   every boot).
 *
 * Only the running system can be unlocked ("Not currently booted into an OSTree system"
 * otherwise). The overlay is mounted on the running root's `/usr`: `/usr` itself on a real boot,
 * `ROOT/usr` for a root given as `bootedRoot`. VAR is `/var` on a real boot, else the stateroot's
 * `var`. Differences from OSTree: the overlay options name absolute paths (OSTree mounts from
 * inside the deployment with relative ones; same mount); no SELinux labelling of the new
 * directories. Locking: the sysroot lock. Crash: a hotfix interrupted after its clone leaves the
 * clone as rollback (a valid state); the recorded state is written after the mount succeeds.
 */
import { chmodSync, lstatSync, mkdirSync, mkdtempSync } from 'node:fs';
import path from 'node:path';
import { KernelArgs } from './kargs.js';
import { deployLocked, mergeDeploymentOf, requireRootIfBooted, type Log } from './deploy.js';
import { sysrootError } from './errors.js';
import { mountOverlay, setImmutable, writeFileAtomic } from './fsutil.js';
import { deploymentName, Sysroot, UNLOCKED_RUNSTATE_FLAGS, type Deployment, type SysrootOptions, type UnlockedState } from './sysroot.js';
import { bumpDeployMtime } from './write-deployments.js';

export type UnlockTarget = Exclude<UnlockedState, 'none'>;

export interface UnlockResult {
  deployment: Deployment;
  state: UnlockTarget;
  /** Where the overlay's upper directory is. */
  upperdir: string;
}

/** mkdir -p then chmod, so the umask does not narrow the mode (OSTree's mkdir_unmasked). */
function mkdirUnmasked(dir: string, mode: number): void {
  mkdirSync(dir, { recursive: true, mode });
  chmodSync(dir, mode);
}

/**
 * Unlock the booted deployment. Throws INVALID_ARGUMENT `not-booted` on a sysroot that is not
 * the running system, `unlocked` when it is already unlocked, IO_ERROR when the overlay cannot be
 * mounted (`Failed overlayfs mount: REASON`). See the file comment.
 */
export async function unlock(sysrootPath: string, state: UnlockTarget, sysrootOpts: SysrootOptions = {}, log?: Log): Promise<UnlockResult> {
  const sr = new Sysroot(sysrootPath, sysrootOpts);
  return sr.withLock(async () => {
    await sr.load();
    requireRootIfBooted(sr);
    if (!sr.booted) throw sysrootError('INVALID_ARGUMENT', 'not-booted', 'Not currently booted into an OSTree system');
    let booted: Deployment = sr.booted;
    const current = sr.unlockedState(booted);
    if (current !== 'none') throw sysrootError('INVALID_ARGUMENT', 'unlocked', `Deployment is already in unlocked state: ${current}`, { state: current });
    const merge = mergeDeploymentOf(sr, booted.stateroot);
    if (!merge) throw sysrootError('INVALID_ARGUMENT', 'no-deployment', 'No previous deployment to duplicate');

    if (state === 'hotfix') {
      // The rollback target: the same commit, kept unmodified, right after the booted deployment.
      const kargs = KernelArgs.parse(merge.bootconfig.get('options') ?? '').toArray();
      await deployLocked(sr, {
        stateroot: booted.stateroot,
        refspec: booted.csum,
        ...(booted.origin ? { origin: booted.origin } : {}),
        kargs: { none: true, append: kargs },
        notAsDefault: true,
        ...(log ? { log } : {}),
      });
      booted = sr.booted ?? booted;
    }

    const dir = sr.deploymentDir(booted);
    setImmutable(dir, false);
    const usrMode = lstatSync(path.join(dir, 'usr')).mode & 0o7777;
    let upper: string;
    let work: string;
    let ovldir: string | null = null;
    if (state === 'hotfix') {
      upper = path.join(dir, '.usr-ovl-upper');
      work = path.join(dir, '.usr-ovl-work');
    } else {
      const root = sr.bootedRootPath!;
      const varTmp = root === '/' ? '/var/tmp' : sr.p('ostree', 'deploy', booted.stateroot, 'var', 'tmp');
      mkdirSync(varTmp, { recursive: true, mode: 0o1777 });
      ovldir = mkdtempSync(path.join(varTmp, 'ostree-unlock-ovl.'));
      chmodSync(ovldir, 0o755);
      upper = path.join(ovldir, 'upper');
      work = path.join(ovldir, 'work');
    }
    mkdirUnmasked(upper, usrMode);
    mkdirUnmasked(work, usrMode);
    for (const p of [dir, upper, work]) {
      // overlayfs reads these three characters as separators in its option string
      if (/[,:\\]/.test(p)) throw sysrootError('INVALID_ARGUMENT', 'unlocked', `Cannot mount an overlay from ${p}: the path contains ',', ':' or '\\'`);
    }
    const target = path.join(sr.bootedRootPath!, 'usr');
    try {
      mountOverlay(target, `lowerdir=${path.join(dir, 'usr')},upperdir=${upper},workdir=${work}`, state === 'transient');
    } catch (e) {
      throw sysrootError('IO_ERROR', 'unlocked', `Failed overlayfs mount: ${(e as Error).message}`, { target, code: (e as NodeJS.ErrnoException).code }, e);
    }

    if (state === 'hotfix') {
      const origin = booted.origin;
      const text = origin ? (origin.set('origin', 'unlocked', 'hotfix'), origin.toString()) : '[origin]\nunlocked=hotfix\n';
      writeFileAtomic(sr.originPath(booted), text, 0o644);
    } else {
      const flag = sr.runstatePath(booted, UNLOCKED_RUNSTATE_FLAGS[state]);
      mkdirSync(path.dirname(flag), { recursive: true, mode: 0o755 });
      writeFileAtomic(flag, ovldir!, 0o644);
    }
    bumpDeployMtime(sr);
    await sr.load();
    const mine = sr.deployments.find((d) => deploymentName(d) === deploymentName(booted) && d.stateroot === booted.stateroot) ?? booted;
    return { deployment: mine, state, upperdir: upper };
  });
}
