/**
 * The `ostree admin` operations on a sysroot: init-fs, os-init, deploy (with the /etc merge and
 * the deployment-list rules of `simple_write_deployment`), undeploy, set-default, rollback, pin,
 * kernel-argument edits, cleanup and upgrade; on a booted system also staged deployments
 * (`deploy --stage` records the new deployment in `RUN/ostree/staged-deployment`; `finalizeStaged`
 * does the /etc merge and the swap later, as OSTree's shutdown service does).
 *
 * Every mutating operation takes the sysroot lock (`ostree/lock`), reloads the sysroot, makes its
 * change through {@link writeDeployments} (one atomic swap) and then cleans up. Deploying writes
 * the new tree under a fresh `CSUM.SERIAL` name that nothing references until the swap, so an
 * interrupted deploy leaves the old boot configuration intact and a stray directory that the next
 * operation's cleanup removes.
 */
import { chmodSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, symlinkSync, utimesSync } from 'node:fs';
import path from 'node:path';
import { checkout, KeyFile, Repo, validateRefName, validateRemoteName } from '@larch/core-store';
import { BootConfig } from './bootconfig.js';
import { cleanupSysroot, type CleanupResult } from './cleanup.js';
import { applyEtcMerge, diffEtc, previewEtcMerge, type EtcDiff, type EtcPreview } from './etc-merge.js';
import { sysrootError } from './errors.js';
import { copyTreeAsync, IS_ROOT, lstatOrNull, rmTree, setImmutable, sysrootDebug, writeFileAtomic } from './fsutil.js';
import { KernelArgs } from './kargs.js';
import { findKernel, type KernelLayout } from './kernel.js';
import { DEPLOY_NAME_RE, deploymentName, encodeStaged, isPinned, sameDeployment, Sysroot, type Deployment, type StagedRecord, type SysrootOptions } from './sysroot.js';
import { writeDeployments, type WriteResult } from './write-deployments.js';

/** Messages OSTree prints while working (the CLI writes them to stdout). */
export type Log = (line: string) => void;
const silent: Log = () => undefined;

// --- init-fs / os-init -------------------------------------------------------------------------

/**
 * `ostree admin init-fs DIR`: create the top-level directories and a bare system repository.
 * `dir` must exist. Idempotent. Locking: none (nothing to lock yet). Crash: re-running completes it.
 */
export async function initFs(dir: string, opts: { modern?: boolean } = {}): Promise<void> {
  const root = path.resolve(dir);
  if (!lstatOrNull(root)?.isDirectory()) throw sysrootError('IO_ERROR', 'not-a-sysroot', `opendir(${dir}): No such file or directory`, { path: root });
  const mk = (p: string, mode: number): void => {
    if (lstatOrNull(path.join(root, p))) return;
    mkdirSync(path.join(root, p), { mode });
    chmodSync(path.join(root, p), mode);
  };
  mk('boot', 0o755);
  if (!opts.modern) {
    for (const d of ['dev', 'home', 'proc', 'run', 'sys']) mk(d, 0o755);
    mk('root', 0o700);
    mk('tmp', 0o1777);
  }
  mk('ostree', 0o755);
  mk('ostree/deploy', 0o755);
  await Repo.init({ path: path.join(root, 'ostree/repo'), mode: 'bare' });
}

/**
 * `ostree admin os-init NAME`: the stateroot directory and its shared /var (runs init-fs first
 * when needed). An existing stateroot is an error (EXISTS), as in OSTree. Locking: the sysroot
 * lock. Crash: an interrupted run leaves the stateroot directory, possibly without all of /var.
 */
export async function osInit(sysrootPath: string, name: string, log: Log = silent): Promise<void> {
  if (name === '' || name.includes('/') || name === '.' || name === '..') throw sysrootError('INVALID_ARGUMENT', 'no-stateroot', `Invalid stateroot name '${name}'`);
  const sr = new Sysroot(sysrootPath);
  if (!lstatOrNull(sr.p('ostree/deploy'))?.isDirectory()) await initFs(sysrootPath);
  await sr.withLock(async () => {
    const base = sr.p('ostree/deploy', name);
    if (lstatOrNull(base)) throw sysrootError('EXISTS', 'stateroot-exists', `Creating ostree/deploy/${name}: File exists`, { stateroot: name });
    mkdirSync(base, { mode: 0o755 });
    const mk = (p: string, mode: number): void => {
      if (lstatOrNull(path.join(base, p))) return;
      mkdirSync(path.join(base, p), { mode });
      chmodSync(path.join(base, p), mode);
    };
    mk('var', 0o755);
    mk('var/tmp', 0o1777);
    mk('var/lib', 0o755);
    mk('var/log', 0o755);
    if (!lstatOrNull(path.join(base, 'var/run'))) symlinkSync('../run', path.join(base, 'var/run'));
    if (!lstatOrNull(path.join(base, 'var/lock'))) symlinkSync('../run/lock', path.join(base, 'var/lock'));
    const now = new Date();
    utimesSync(sr.p('ostree/deploy'), now, now);
  });
  log(`ostree/deploy/${name} initialized as OSTree root`);
}

// --- deploy ------------------------------------------------------------------------------------

export interface KargOptions {
  /** `--karg-none`: start from an empty command line. */
  none?: boolean;
  /**
   * `--karg-proc-cmdline`: start from the running kernel's `/proc/cmdline` (without the
   * `BOOT_IMAGE=` and `initrd=` the bootloader adds), as OSTree.
   */
  procCmdline?: boolean;
  /** `--karg=K=V`: replace every value of K. */
  replace?: string[];
  /** `--karg-append=K=V`. */
  append?: string[];
  /** `--karg-delete=K[=V]`. */
  delete?: string[];
}

export interface DeployOptions {
  /** Stateroot (`--os`). Defaults to the booted deployment's; required when not booted. */
  stateroot?: string;
  /** REF or CHECKSUM; written verbatim as the origin's `refspec`. */
  refspec: string;
  kargs?: KargOptions;
  /** Keep every existing deployment (`--retain`). */
  retain?: boolean;
  retainPending?: boolean;
  retainRollback?: boolean;
  /** Insert after the merge deployment instead of first (`--not-as-default`). */
  notAsDefault?: boolean;
  /** No /etc merge and no kargs inheritance (`--no-merge`). */
  noMerge?: boolean;
  /** Skip the repository prune (`--no-prune`). */
  noPrune?: boolean;
  /** A keyfile to use verbatim as the origin (`--origin-file`). */
  originFile?: string;
  /** The origin to write (default: `[origin] refspec=REFSPEC`); `originFile` wins when both are given. */
  origin?: KeyFile;
  /** Prepare a staged deployment (`--stage`); only possible on a booted system. */
  stage?: boolean;
  log?: Log;
}

export interface DeployResult {
  deployment: Deployment;
  /** The /etc merge done (null without a merge deployment, or when staged: it runs at finalization). */
  etc: EtcDiff | null;
  /** The boot configuration written (null when staged). */
  write: WriteResult | null;
  cleanup: CleanupResult | null;
}

/**
 * `simple_write_deployment`: the list after adding `next` (spec §7). The crossover is the booted
 * deployment, else the merge deployment. Pure.
 */
export function planDeploymentList(current: Deployment[], next: Deployment, merge: Deployment | null, opts: Pick<DeployOptions, 'retain' | 'retainPending' | 'retainRollback' | 'notAsDefault'> = {}, booted: Deployment | null = null): Deployment[] {
  const crossover = booted ?? merge;
  const retainAll = opts.retain === true || (!crossover && (opts.retainPending === true || opts.retainRollback === true));
  const out: Deployment[] = [];
  if (!opts.notAsDefault) out.push(next);
  let passedCrossover = false;
  let added = !opts.notAsDefault;
  for (const d of current) {
    const isCross = crossover !== null && sameDeployment(d, crossover);
    if (isCross) passedCrossover = true;
    const keep =
      retainAll ||
      isPinned(d) ||
      d.stateroot !== next.stateroot ||
      (booted !== null && sameDeployment(d, booted)) ||
      (merge !== null && sameDeployment(d, merge)) ||
      (opts.retainPending === true && !passedCrossover) ||
      (opts.retainRollback === true && passedCrossover);
    if (keep) out.push(d);
    if (opts.notAsDefault && isCross && !added) {
      out.push(next);
      added = true;
    }
  }
  if (!added) out.push(next);
  return out;
}

/** The merge deployment: the booted one when booted in `stateroot`, else its first deployment. */
export function mergeDeploymentOf(sr: Sysroot, stateroot: string): Deployment | null {
  if (sr.booted && sr.booted.stateroot === stateroot) return sr.booted;
  return sr.deployments.find((d) => d.stateroot === stateroot) ?? null;
}

/** Modifying a booted system needs root (a `--sysroot` directory never does), as in OSTree. */
export function requireRootIfBooted(sr: Sysroot): void {
  if (sr.booted && !IS_ROOT) throw sysrootError('INVALID_ARGUMENT', 'booted', 'You must be root to perform this command');
}

/** `--os`, else the booted stateroot; OSTree's error when neither exists. */
function targetStateroot(sr: Sysroot, stateroot: string | undefined): string {
  if (stateroot !== undefined) return stateroot;
  if (sr.booted) return sr.booted.stateroot;
  throw sysrootError('INVALID_ARGUMENT', 'not-booted', 'Not currently booted into an OSTree system and no --os= argument given');
}

/** Prefixes OSTree drops from `/proc/cmdline` (set by GRUB 2 and sd-boot, not by the admin). */
const PROC_CMDLINE_FILTERED = ['BOOT_IMAGE=', 'initrd='];

/** The running kernel's arguments as `--karg-proc-cmdline` imports them (OSTree's filter applied). */
export function procCmdlineKargs(file = '/proc/cmdline'): KernelArgs {
  const words = readFileSync(file, 'utf8').trimEnd().split(' ').filter((w) => w !== '');
  const k = new KernelArgs();
  k.appendAll(words.filter((w) => !PROC_CMDLINE_FILTERED.some((p) => w.startsWith(p))));
  return k;
}

/** The kernel command line for a new deployment (spec §6 step 6). */
export function computeKargs(merge: Deployment | null, k: KargOptions = {}): KernelArgs {
  const edits = (k.replace?.length ?? 0) + (k.append?.length ?? 0) + (k.delete?.length ?? 0) > 0;
  const base = k.none ? new KernelArgs() : k.procCmdline ? procCmdlineKargs() : merge ? KernelArgs.parse(merge.bootconfig.get('options') ?? '') : new KernelArgs();
  if (!edits) return base;
  if (k.replace) base.replaceAll(k.replace);
  if (k.append) base.appendAll(k.append);
  if (k.delete) base.deleteAll(k.delete);
  return base;
}

function allocateSerial(sr: Sysroot, stateroot: string, csum: string): number {
  let serial = 0;
  let names: string[] = [];
  try {
    names = readdirSync(sr.p('ostree/deploy', stateroot, 'deploy'));
  } catch {
    /* first deployment */
  }
  for (const n of names) {
    const m = DEPLOY_NAME_RE.exec(n);
    if (m && m[1] === csum) serial = Math.max(serial, Number(m[2]) + 1);
  }
  return serial;
}

function mutableDeployments(): boolean {
  return sysrootDebug('mutable-deployments');
}

async function resolveCommit(sr: Sysroot, refspec: string): Promise<string> {
  const repo = await sr.repo();
  return repo.revParse(refspec);
}

function requireStateroot(sr: Sysroot, stateroot: string): void {
  if (!lstatOrNull(sr.p('ostree/deploy', stateroot))?.isDirectory()) {
    throw sysrootError('INVALID_ARGUMENT', 'no-stateroot', `No such stateroot: ${stateroot} (run admin os-init ${stateroot})`, { stateroot });
  }
  // OSTree needs the stateroot's /var too ("opendir(var): No such file or directory").
  if (!lstatOrNull(sr.p('ostree/deploy', stateroot, 'var'))?.isDirectory()) {
    throw sysrootError('INVALID_ARGUMENT', 'no-stateroot', `Stateroot ${stateroot} has no var directory: opendir(var): No such file or directory`, { stateroot });
  }
}

/**
 * Deploy a commit (`ostree admin deploy`). See the file comment for crash behaviour.
 * Locking: the sysroot lock for the whole operation; the repository's locks via core-store.
 */
export async function deploy(sysrootPath: string, opts: DeployOptions, sysrootOpts: SysrootOptions = {}): Promise<DeployResult> {
  const sr = new Sysroot(sysrootPath, sysrootOpts);
  return sr.withLock(async () => {
    await sr.load();
    return deployLocked(sr, opts);
  });
}

/** {@link deploy} on a sysroot whose lock the caller holds (loaded). */
export async function deployLocked(sr: Sysroot, opts: DeployOptions): Promise<DeployResult> {
  const log = opts.log ?? silent;
  requireRootIfBooted(sr);
  if (opts.stage && !sr.booted) {
    throw sysrootError('INVALID_ARGUMENT', 'not-booted', 'Cannot stage deployment: Not currently booted into an OSTree system');
  }
  // Staging replaces any previous staged deployment.
  const previous = sr.staged;
  if (opts.stage && previous) {
    rmSync(sr.stagedPath, { force: true });
    rmSync(sr.originPath(previous), { force: true });
    rmTree(sr.deploymentDir(previous));
    await sr.load();
  }
  const stateroot = targetStateroot(sr, opts.stateroot);
  requireStateroot(sr, stateroot);
  const repo = await sr.repo();
  const csum = await resolveCommit(sr, opts.refspec);
  const merge = opts.noMerge ? null : mergeDeploymentOf(sr, stateroot);
  // Leftovers of interrupted runs go first (they may hold the serial we want).
  await cleanupSysroot(sr, { prune: false, errorPrefix: 'Performing initial cleanup' });

  const serial = allocateSerial(sr, stateroot, csum);
  const stub = { stateroot, csum, deployserial: serial };
  const dir = sr.deploymentDir(stub);
  rmTree(dir);
  mkdirSync(path.dirname(dir), { recursive: true, mode: 0o755 });
  let etc: EtcDiff | null = null;
  let layout;
  let kernel: Promise<KernelLayout> | null = null;
  try {
    // As ostree's deploy: `.ostree-wh.NAME` files become overlayfs whiteouts (char 0:0) for container layers.
    await checkout(repo, { commit: csum, dest: dir, processPassthroughWhiteouts: true });
    // The kernel's checksum (reading tens of MB) overlaps with the /etc copy and merge.
    kernel = findKernel(dir);
    kernel.catch(() => undefined);
    const hasEtc = lstatOrNull(path.join(dir, 'etc'))?.isDirectory() ?? false;
    const hasUsrEtc = lstatOrNull(path.join(dir, 'usr/etc'))?.isDirectory() ?? false;
    if (hasEtc && hasUsrEtc) throw sysrootError('BAD_CONFIG', 'etc-conflict', 'Tree contains both /etc and /usr/etc', { path: dir });
    if (hasEtc) renameSync(path.join(dir, 'etc'), path.join(dir, 'usr/etc'));
    if (hasEtc || hasUsrEtc) await copyTreeAsync(path.join(dir, 'usr/etc'), path.join(dir, 'etc'));
    if (merge && !opts.stage) {
      // As OSTree 2022.7: a merge needs /usr/etc and /etc in the merge deployment and /etc in
      // the new one (a tree without /usr/etc deploys only without a merge deployment).
      const mdir = sr.deploymentDir(merge);
      for (const sub of ['usr/etc', 'etc']) {
        if (!lstatOrNull(path.join(mdir, sub))?.isDirectory()) {
          throw sysrootError('BAD_CONFIG', 'etc-conflict', `During /etc merge: While computing configuration diff: Error when getting information for file \u201c${path.join(mdir, sub)}\u201d: No such file or directory`, { path: path.join(mdir, sub) });
        }
      }
      etc = await diffEtc(path.join(mdir, 'usr/etc'), path.join(mdir, 'etc'));
      log(`Copying /etc changes: ${etc.modified.length} modified, ${etc.removed.length} removed, ${etc.added.length} added`);
      if (!lstatOrNull(path.join(dir, 'etc'))?.isDirectory()) {
        throw sysrootError('BAD_CONFIG', 'etc-conflict', 'During /etc merge: opendir(etc): No such file or directory', { path: path.join(dir, 'etc') });
      }
      applyEtcMerge(path.join(mdir, 'etc'), path.join(dir, 'etc'), etc);
    }
    rmSync(path.join(dir, 'etc/.updated'), { force: true });
    layout = await kernel;
  } catch (e) {
    await kernel?.catch(() => undefined);
    rmTree(dir);
    throw e;
  }
  const varDir = sr.p('ostree/deploy', stateroot, 'var');
  rmSync(path.join(varDir, '.updated'), { force: true });
  if (lstatOrNull(varDir) && !lstatOrNull(path.join(varDir, '.ostree-selabeled'))) {
    log("Relabeling /var (no stamp file 'var/.ostree-selabeled' found)");
    writeFileAtomic(path.join(varDir, '.ostree-selabeled'), '', 0o644);
  }
  const originText = opts.originFile !== undefined ? readFileSync(opts.originFile, 'utf8') : opts.origin !== undefined ? opts.origin.toString() : `[origin]\nrefspec=${opts.refspec}\n`;
  writeFileAtomic(sr.originPath(stub), originText, 0o644, { fsync: false });
  const kargs = computeKargs(merge, opts.kargs);
  if (opts.stage) {
    // The /etc merge, the immutable bit and the boot configuration wait for finalization.
    const rec: StagedRecord = {
      target: { name: deploymentName(stub), osname: stateroot, bootcsum: layout.bootcsum },
      merge: merge ? { name: deploymentName(merge), osname: merge.stateroot, bootcsum: merge.bootcsum } : null,
      kargs: opts.kargs && (opts.kargs.none || (opts.kargs.replace?.length ?? 0) + (opts.kargs.append?.length ?? 0) + (opts.kargs.delete?.length ?? 0) > 0) ? kargs.toArray() : null,
    };
    mkdirSync(path.dirname(sr.stagedPath), { recursive: true, mode: 0o755 });
    writeFileAtomic(sr.stagedPath, encodeStaged(rec), 0o644);
    await sr.load();
    return { deployment: sr.staged ?? sr.deployments[0], etc: null, write: null, cleanup: null };
  }
  if (!mutableDeployments()) setImmutable(dir, true);

  const bootconfig = new BootConfig();
  bootconfig.set('options', kargs.toString());
  const deployment: Deployment = {
    index: 0,
    ...stub,
    bootcsum: layout.bootcsum,
    bootserial: 0,
    bootconfig,
    origin: KeyFile.parse(originText, sr.originPath(stub)),
  };
  const list = planDeploymentList(sr.deployments, deployment, merge, opts, sr.booted);
  const write = await writeDeployments(sr, list);
  log(write.message);
  const cleanup = await cleanupSysroot(sr, { prune: opts.noPrune !== true });
  if (cleanup.freedBytes > 0) log(`Freed objects: ${formatSize(cleanup.freedBytes)}`);
  const mine = sr.deployments.find((d) => sameDeployment(d, deployment)) ?? deployment;
  return { deployment: mine, etc, write, cleanup };
}

/**
 * `ostree admin finalize-staged`: turn the staged deployment into a real one, as the shutdown
 * service does: the state file is removed first, then the /etc merge against the deployment it
 * was staged from (so changes made to the running system after staging are carried), the
 * immutable bit, the new list (`simple_write_deployment` rules) and a cleanup without prune.
 * Returns null when nothing is staged.
 * Locking: the sysroot lock. Crash: the state file is gone first, so an interrupted finalization
 * boots the old list and leaves a stray deployment for cleanup, as with OSTree.
 */
export async function finalizeStaged(sysrootPath: string, sysrootOpts: SysrootOptions = {}, log: Log = silent): Promise<DeployResult | null> {
  const sr = new Sysroot(sysrootPath, sysrootOpts);
  return sr.withLock(async () => {
    await sr.load();
    requireRootIfBooted(sr);
    const staged = sr.staged;
    const rec = sr.stagedRecord;
    if (!staged || !rec) return null;
    rmSync(sr.stagedPath, { force: true });
    const rest = sr.deployments.filter((d) => !d.staged);
    const merge = rec.merge ? (rest.find((d) => d.stateroot === rec.merge!.osname && deploymentName(d) === rec.merge!.name) ?? null) : null;
    const dir = sr.deploymentDir(staged);
    let etc: EtcDiff | null = null;
    if (merge) {
      const mdir = sr.deploymentDir(merge);
      if (lstatOrNull(path.join(mdir, 'usr/etc'))?.isDirectory() && lstatOrNull(path.join(mdir, 'etc'))?.isDirectory() && lstatOrNull(path.join(dir, 'etc'))?.isDirectory()) {
        etc = await diffEtc(path.join(mdir, 'usr/etc'), path.join(mdir, 'etc'));
        log(`Copying /etc changes: ${etc.modified.length} modified, ${etc.removed.length} removed, ${etc.added.length} added`);
        applyEtcMerge(path.join(mdir, 'etc'), path.join(dir, 'etc'), etc);
      }
    }
    if (!mutableDeployments()) setImmutable(dir, true);
    const deployment: Deployment = { ...staged, staged: false };
    const list = planDeploymentList(rest, deployment, merge, {}, sr.booted);
    const write = await writeDeployments(sr, list);
    log(write.message);
    const cleanup = await cleanupSysroot(sr, { prune: false });
    const mine = sr.deployments.find((d) => sameDeployment(d, deployment)) ?? deployment;
    return { deployment: mine, etc, write, cleanup };
  });
}

export interface DeployPreview {
  commit: string;
  deployserial: number;
  merge: Deployment | null;
  kargs: string;
  etc: EtcPreview | null;
  /** The list the deploy would write, as `STATEROOT CSUM.SERIAL` (the new one marked). */
  list: Array<{ stateroot: string; name: string; isNew: boolean }>;
}

/**
 * `deploy --dry-run`: what a deploy would do, including the /etc merge preview; nothing is
 * written and no lock is taken.
 */
export async function previewDeploy(sysrootPath: string, opts: DeployOptions, sysrootOpts: SysrootOptions = {}): Promise<DeployPreview> {
  const sr = await Sysroot.open(sysrootPath, sysrootOpts);
  const stateroot = targetStateroot(sr, opts.stateroot);
  requireStateroot(sr, stateroot);
  const repo = await sr.repo();
  const csum = await resolveCommit(sr, opts.refspec);
  const merge = opts.noMerge ? null : mergeDeploymentOf(sr, stateroot);
  const serial = allocateSerial(sr, stateroot, csum);
  let etc: EtcPreview | null = null;
  if (merge) {
    const mdir = sr.deploymentDir(merge);
    if (lstatOrNull(path.join(mdir, 'usr/etc'))?.isDirectory() && lstatOrNull(path.join(mdir, 'etc'))?.isDirectory()) {
      etc = await previewEtcMerge(repo, path.join(mdir, 'usr/etc'), path.join(mdir, 'etc'), merge.csum, csum);
    }
  }
  const kargs = computeKargs(merge, opts.kargs).without('ostree').toString();
  const fake: Deployment = { index: 0, stateroot, csum, deployserial: serial, bootcsum: '', bootserial: 0, bootconfig: new BootConfig(), origin: null };
  const list = planDeploymentList(sr.deployments, fake, merge, opts, sr.booted).map((d) => ({ stateroot: d.stateroot, name: deploymentName(d), isNew: d === fake }));
  return { commit: csum, deployserial: serial, merge, kargs, etc, list };
}

export interface ConfigDiff {
  deployment: Deployment;
  /** Paths relative to `/etc`: changed (content, type, mode or owner), removed, added. */
  modified: string[];
  removed: string[];
  /** An added directory is followed by everything under it. */
  added: string[];
}

/**
 * `admin config-diff`: how a deployment's `/etc` differs from its defaults (`usr/etc`), as
 * `ostree admin config-diff` reports it (xattrs ignored): the merge deployment of `stateroot`
 * (`--os`), else the booted one. Read-only; takes no lock.
 */
export async function configDiff(sysrootPath: string, stateroot?: string, sysrootOpts: SysrootOptions = {}): Promise<ConfigDiff> {
  const sr = await Sysroot.open(sysrootPath, sysrootOpts);
  let d: Deployment | null;
  if (stateroot !== undefined) {
    d = mergeDeploymentOf(sr, stateroot);
    if (d === null) throw sysrootError('OBJECT_MISSING', 'no-deployment', `No deployment for OS '${stateroot}'`, { stateroot });
  } else {
    d = sr.booted;
    if (d === null) throw sysrootError('INVALID_ARGUMENT', 'not-booted', 'Not currently booted into an OSTree system and no --os= argument given');
  }
  const dir = sr.deploymentDir(d);
  const live = path.join(dir, 'etc');
  const diff = await diffEtc(path.join(dir, 'usr/etc'), live);
  const added: string[] = [];
  const addTree = (rel: string): void => {
    added.push(rel);
    if (!lstatOrNull(path.join(live, rel))?.isDirectory()) return;
    for (const n of readdirSync(path.join(live, rel)).sort()) addTree(`${rel}/${n}`);
  };
  for (const a of diff.added) addTree(a);
  return { deployment: d, modified: diff.modified, removed: diff.removed, added };
}

// --- list edits --------------------------------------------------------------------------------

function checkIndex(sr: Sysroot, index: number): Deployment {
  if (!Number.isInteger(index) || index < 0 || index >= sr.deployments.length) {
    throw sysrootError('INVALID_ARGUMENT', 'bad-index', `Out of range deployment index ${index}, expected < ${sr.deployments.length}`, { index });
  }
  return sr.deployments[index];
}

export interface ListEditResult {
  write: WriteResult;
  cleanup: CleanupResult;
}

async function editList(sysrootPath: string, fn: (sr: Sysroot) => Deployment[], opts: { prune?: boolean; cleanup?: boolean; log?: Log; sysroot?: SysrootOptions } = {}): Promise<ListEditResult> {
  const sr = new Sysroot(sysrootPath, opts.sysroot);
  return sr.withLock(async () => {
    await sr.load();
    requireRootIfBooted(sr);
    const list = fn(sr);
    const write = await writeDeployments(sr, list);
    (opts.log ?? silent)(write.message);
    const cleanup =
      opts.cleanup === false
        ? { deletedDeployments: [], deletedBootDirs: [], prunedObjects: 0, freedBytes: 0 }
        : await cleanupSysroot(sr, { prune: opts.prune !== false });
    if (cleanup.freedBytes > 0) (opts.log ?? silent)(`Freed objects: ${formatSize(cleanup.freedBytes)}`);
    return { write, cleanup };
  });
}

/**
 * `ostree admin undeploy INDEX`: remove one deployment, swap, clean up (with prune).
 * Locking: the sysroot lock. Crash: the old or the new list boots; cleanup finishes later.
 */
export async function undeploy(sysrootPath: string, index: number, log: Log = silent, sysrootOpts: SysrootOptions = {}): Promise<ListEditResult & { deleted: Deployment }> {
  let deleted!: Deployment;
  const r = await editList(
    sysrootPath,
    (sr) => {
      deleted = checkIndex(sr, index);
      if (sr.isBooted(deleted)) throw sysrootError('INVALID_ARGUMENT', 'booted', `Cannot undeploy currently booted deployment ${index}`, { index });
      return sr.deployments.filter((_, i) => i !== index);
    },
    { log, sysroot: sysrootOpts },
  );
  log(`Deleted deployment ${deploymentName(deleted)}`);
  return { ...r, deleted };
}

/**
 * `set-default INDEX` (OSTree 2023.x): move the deployment to index 0, then clean up.
 * Locking: the sysroot lock. Crash: the old or the new order boots.
 */
export async function setDefault(sysrootPath: string, index: number, log: Log = silent): Promise<ListEditResult> {
  return editList(
    sysrootPath,
    (sr) => {
      const d = checkIndex(sr, index);
      return [d, ...sr.deployments.filter((_, i) => i !== index)];
    },
    { log },
  );
}

/**
 * Rollback: make the first deployment after the default that shares its stateroot the default
 * (the previous default becomes the fallback). No deployment is deleted; the repo is not pruned.
 * Locking: the sysroot lock. Crash: the old or the new order boots.
 */
export async function rollback(sysrootPath: string, log: Log = silent): Promise<ListEditResult & { target: Deployment }> {
  let target!: Deployment;
  const r = await editList(
    sysrootPath,
    (sr) => {
      const first = sr.deployments[0];
      const i = first ? sr.deployments.findIndex((d, j) => j > 0 && d.stateroot === first.stateroot) : -1;
      if (i < 0) throw sysrootError('INVALID_ARGUMENT', 'bad-index', 'No rollback deployment found');
      target = sr.deployments[i];
      return [target, ...sr.deployments.filter((_, j) => j !== i)];
    },
    { log, cleanup: true, prune: false },
  );
  return { ...r, target };
}

/**
 * `ostree admin pin [-u] INDEX…`: set or clear `[libostree-transient] pinned` in the origin
 * (unknown keys and groups are kept). The boot configuration is not touched.
 * Locking: the sysroot lock. Crash: each origin file is replaced atomically (temp + rename).
 */
export async function pin(sysrootPath: string, indices: number[], unpin: boolean, log: Log = silent): Promise<void> {
  const sr = new Sysroot(sysrootPath);
  await sr.withLock(async () => {
    await sr.load();
    requireRootIfBooted(sr);
    for (const index of indices) {
      const d = checkIndex(sr, index);
      const pinned = isPinned(d);
      if (pinned === !unpin) {
        log(`Deployment ${index} is already ${unpin ? 'unpinned' : 'pinned'}`);
        continue;
      }
      const kf = d.origin ?? KeyFile.parse('', sr.originPath(d));
      if (unpin) kf.removeKey('libostree-transient', 'pinned');
      else kf.set('libostree-transient', 'pinned', 'true');
      writeFileAtomic(sr.originPath(d), kf.toString(), 0o644);
      d.origin = kf;
      log(`Deployment ${index} is now ${unpin ? 'unpinned' : 'pinned'}`);
    }
  });
}

/**
 * `admin set-origin`: point a deployment (`index`, else the booted one) at `REMOTE:BRANCH`, the
 * branch defaulting to the ref of its current origin. As ostree does, the origin file is replaced
 * by a new one holding only the refspec (a pin or an override-commit is dropped with it). The
 * remote itself is the caller's to add. Returns the new refspec. Locking: the sysroot lock.
 * Crash: the old or the new origin file.
 */
export async function setOrigin(sysrootPath: string, opts: { remote: string; branch?: string; index?: number }, sysrootOpts: SysrootOptions = {}): Promise<{ deployment: Deployment; refspec: string }> {
  const sr = new Sysroot(sysrootPath, sysrootOpts);
  return sr.withLock(async () => {
    await sr.load();
    requireRootIfBooted(sr);
    let d: Deployment;
    if (opts.index !== undefined) d = checkIndex(sr, opts.index);
    else if (sr.booted) d = sr.booted;
    else throw sysrootError('INVALID_ARGUMENT', 'not-booted', 'Not currently booted into an OSTree system');
    const old = d.origin?.get('origin', 'refspec');
    const oldRef = old === undefined ? undefined : old.includes(':') ? old.slice(old.indexOf(':') + 1) : old;
    const branch = opts.branch ?? oldRef;
    if (branch === undefined) throw sysrootError('BAD_CONFIG', 'no-origin', 'No host refspec found, branch is required');
    validateRemoteName(opts.remote);
    validateRefName(branch);
    const refspec = `${opts.remote}:${branch}`;
    const kf = KeyFile.parse(`[origin]\nrefspec=${refspec}\n`, sr.originPath(d));
    writeFileAtomic(sr.originPath(d), kf.toString(), 0o644);
    d.origin = kf;
    return { deployment: d, refspec };
  });
}

/**
 * Change the kernel arguments of one deployment (default: index 0) and swap the boot
 * configuration. Returns the new command line (without `ostree=`, which is regenerated last).
 * Locking: the sysroot lock. Crash: the old or the new command line boots.
 */
export async function editKargs(sysrootPath: string, k: KargOptions, index = 0, log: Log = silent): Promise<ListEditResult & { kargs: string }> {
  let kargs = '';
  const r = await editList(
    sysrootPath,
    (sr) => {
      const d = checkIndex(sr, index);
      // ostree= is regenerated (last) when the entry is written; edits apply to the rest.
      const ka = k.none ? new KernelArgs() : KernelArgs.parse(d.bootconfig.get('options') ?? '').without('ostree');
      if (k.replace) ka.replaceAll(k.replace);
      if (k.append) ka.appendAll(k.append);
      if (k.delete) ka.deleteAll(k.delete);
      const c = d.bootconfig.clone();
      c.set('options', ka.toString());
      kargs = ka.toString();
      return sr.deployments.map((x, i) => (i === index ? { ...x, bootconfig: c } : x));
    },
    { log, prune: false },
  );
  return { ...r, kargs };
}

/**
 * Set the kernel arguments of deployment `index` (default 0) to what `compute` returns from its
 * current command line (`ostree=` included; where the result keeps it, the regenerated one takes
 * its place, else it is appended), then swap the boot configuration: OSTree's
 * `ostree_sysroot_deployment_set_kargs`, used by `admin instutil set-kargs`.
 * Locking: the sysroot lock. Crash: the old or the new command line boots.
 */
export async function setKargs(sysrootPath: string, compute: (current: string) => string[], index = 0, log: Log = silent, sysrootOpts: SysrootOptions = {}): Promise<ListEditResult & { kargs: string }> {
  let kargs = '';
  const r = await editList(
    sysrootPath,
    (sr) => {
      if (sr.deployments.length === 0) throw sysrootError('INVALID_ARGUMENT', 'no-deployment', 'Unable to find a deployment in sysroot');
      const d = checkIndex(sr, index);
      const ka = new KernelArgs();
      ka.appendAll(compute(d.bootconfig.get('options') ?? ''));
      const c = d.bootconfig.clone();
      c.set('options', ka.toString());
      kargs = ka.without('ostree').toString();
      return sr.deployments.map((x, i) => (i === index ? { ...x, bootconfig: c } : x));
    },
    { log, prune: false, sysroot: sysrootOpts },
  );
  return { ...r, kargs };
}

/**
 * `ostree admin kargs edit-in-place --append-if-missing=K=V…`: add each argument whose key is not
 * present yet to every deployment's BLS entry, rewriting the entries of the current bootversion
 * in place (no bootversion swap, bootloader backend files untouched), as OSTree 2022.7 does.
 * Locking: the sysroot lock. Crash: each entry is replaced atomically (temp + rename), so every
 * entry holds either its old or its new command line.
 */
export async function editKargsInPlace(sysrootPath: string, appendIfMissing: string[], sysrootOpts: SysrootOptions = {}): Promise<void> {
  const sr = new Sysroot(sysrootPath, sysrootOpts);
  await sr.withLock(async () => {
    await sr.load();
    requireRootIfBooted(sr);
    const n = sr.deployments.length;
    if (n === 0) throw sysrootError('INVALID_ARGUMENT', 'no-deployment', 'Unable to find a deployment in sysroot');
    for (const d of sr.deployments) {
      const ka = KernelArgs.parse(d.bootconfig.get('options') ?? '');
      for (const a of appendIfMissing) {
        const key = a.includes('=') ? a.slice(0, a.indexOf('=')) : a;
        if (!ka.has(key)) ka.append(a);
      }
      const c = d.bootconfig.clone();
      c.set('options', ka.toString());
      writeFileAtomic(sr.p('boot', `loader.${sr.bootversion}`, 'entries', `ostree-${n - d.index}-${d.stateroot}.conf`), c.serialize(), 0o644);
    }
  });
}

/**
 * `ostree admin cleanup`: remove what the boot configuration does not reference, then prune the
 * repo (refs only, depth 0, as OSTree). Locking: the sysroot lock, and the repo's exclusive lock
 * while pruning. Crash: safe at any point (see cleanup.ts).
 */
export async function cleanup(sysrootPath: string, opts: { prune?: boolean; log?: Log } = {}): Promise<CleanupResult> {
  const sr = new Sysroot(sysrootPath);
  return sr.withLock(async () => {
    await sr.load();
    requireRootIfBooted(sr);
    const r = await cleanupSysroot(sr, { prune: opts.prune !== false });
    if (r.freedBytes > 0) (opts.log ?? silent)(`Freed objects: ${formatSize(r.freedBytes)}`);
    return r;
  });
}

/** GLib's g_format_size as `ostree` prints sizes: SI units, one decimal, a no-break space. */
export function formatSize(n: number): string {
  if (n < 1000) return n === 1 ? '1 byte' : `${n} bytes`;
  const units = ['kB', 'MB', 'GB', 'TB', 'PB', 'EB'];
  let unit = 1000;
  let u = 0;
  while (u < units.length - 1 && n >= unit * 1000) {
    unit *= 1000;
    u++;
  }
  return `${(n / unit).toFixed(1)}\u00a0${units[u]}`;
}
