/**
 * `ostree admin upgrade` and `admin switch`: OSTree's upgrader (`OstreeSysrootUpgrader`), on a
 * sysroot whose repository is filled by the caller.
 *
 * The upgrader starts from the merge deployment of the stateroot (the booted one, else the first
 * of that stateroot; without `stateroot` nor a booted deployment, the default deployment's
 * stateroot, where OSTree asks for `--os`) and its origin: `[origin] refspec=[REMOTE:]REF`, plus what it may say
 * (`override-commit`, `unconfigured-state`, and the transient state that an upgrade drops: the
 * `[libostree-transient]` group, `override-commit` unless given again, `unlocked`). Then, as
 * `ostree_sysroot_upgrader_pull` does:
 *
 * 1. fetch REF (or the override commit) from REMOTE, unless the origin names no remote or the
 *    caller passes no `pull` (`--deploy-only`, a "synthetic" pull);
 * 2. if the commit REF now names carries `ostree.endoflife-rebase=NEWREF`, fetch NEWREF and
 *    follow it from now on (the new origin says `REMOTE:NEWREF`);
 * 3. with an override commit, point `REMOTE:REF` at it; the target is that commit, else what the
 *    ref names;
 * 4. the same commit as the merge deployment's: "No update available."; an older one (commit
 *    timestamp) is refused unless `allowDowngrade` (OSTree's wording, `… is chronologically older
 *    than current revision …`);
 * 5. deploy it with the origin (staged with `stage` or `$OSTREE_EX_STAGE_DEPLOYMENTS`), with the
 *    default list rules; `pullOnly` stops before this step.
 *
 * The network part is the caller's `pull` hook (this package does no network I/O; the CLI
 * passes @larch/http-pull, which also applies the remote's signature policy and its own
 * downgrade check against the local ref). Locking: the sysroot lock for the whole operation, as
 * `ostree admin upgrade` holds it; the repository's locks are core-store's and the puller's.
 * Crash: that of {@link deployLocked}; a pull interrupted midway leaves the refs untouched.
 */
import { isChecksum, KeyFile, parseRefspec, validateRefName, type Checksum, type Repo } from '@larch/core-store';
import { lookup } from '@larch/gvariant';
import { deployLocked, mergeDeploymentOf, type DeployResult, type KargOptions, type Log } from './deploy.js';
import { sysrootError } from './errors.js';
import { deploymentName, Sysroot, type Deployment, type SysrootOptions } from './sysroot.js';

const silent: Log = () => undefined;

/** The metadata key of an end-of-life commit that names the branch to follow instead. */
export const ENDOFLIFE_REBASE_KEY = 'ostree.endoflife-rebase';

/** What an upgrade asks its `pull` hook for: REFS (names or commit checksums) from REMOTE. */
export interface UpgradePullRequest {
  remote: string;
  refs: string[];
  /** The commit the system runs now (the merge deployment's): nothing older may replace it, unless allowDowngrade. */
  fromRevision: Checksum;
  allowDowngrade: boolean;
}

export interface UpgradeOptions {
  /** Stateroot (`--os`); default the booted one. */
  stateroot?: string;
  /**
   * `admin switch`: follow this refspec from now on. The origin becomes `[origin] refspec=…`
   * only, `unconfigured-state` is ignored, an older commit is allowed (two branches have no
   * order) and the tree is deployed even when it is the current commit.
   */
  refspec?: string;
  /** `--override-commit`: deploy this commit of the origin's branch instead of its tip. */
  overrideCommit?: string;
  /** `--allow-downgrade`: accept a commit older than the current one. */
  allowDowngrade?: boolean;
  /** Fetch refs; omitted, nothing is fetched (`--deploy-only`). */
  pull?: (req: UpgradePullRequest) => Promise<void>;
  /** `--pull-only`: stop after fetching (and checking) the new commit. */
  pullOnly?: boolean;
  /** `--stage`: stage the new deployment (booted systems only). `$OSTREE_EX_STAGE_DEPLOYMENTS` also does. */
  stage?: boolean;
  kargs?: KargOptions;
  log?: Log;
}

export interface UpgradeResult {
  /** True when there was a new commit (with `pullOnly`, fetched but not deployed). */
  updated: boolean;
  from: Checksum;
  to: Checksum;
  /** The refspec followed (after an end-of-life rebase, the new one). */
  refspec: string;
  deploy?: DeployResult;
}

/** The upgrader's starting point: the stateroot, its merge deployment and that one's origin. */
interface UpgradeBase {
  stateroot: string;
  merge: Deployment;
  origin: KeyFile;
}

function upgradeBase(sr: Sysroot, stateroot: string | undefined): UpgradeBase {
  // Larch keeps its earlier default where OSTree insists on --os when not booted: the stateroot
  // of the default deployment.
  const os = stateroot ?? sr.booted?.stateroot ?? sr.deployments[0]?.stateroot;
  if (os === undefined) throw sysrootError('INVALID_ARGUMENT', 'not-booted', 'Not currently booted into an OSTree system and no OS specified');
  if (os === '') throw sysrootError('INVALID_ARGUMENT', 'no-stateroot', 'Invalid empty osname');
  const merge = mergeDeploymentOf(sr, os);
  if (!merge) throw sysrootError('INVALID_ARGUMENT', 'no-deployment', `No previous deployment for OS '${os}'`, { stateroot: os });
  if (!merge.origin) throw sysrootError('BAD_CONFIG', 'no-origin', `No origin known for deployment ${deploymentName(merge)}`, { stateroot: os });
  return { stateroot: os, merge, origin: KeyFile.parse(merge.origin.toString(), 'origin') };
}

/** The origin's refspec split (validated), as `ostree_parse_refspec`. */
function originRefspec(origin: KeyFile, ignoreUnconfigured: boolean): { remote: string | null; ref: string } {
  if (!ignoreUnconfigured) {
    const unconfigured = origin.get('origin', 'unconfigured-state');
    if (unconfigured !== undefined) throw sysrootError('BAD_CONFIG', 'no-origin', `origin unconfigured-state: ${unconfigured}`);
  }
  const refspec = origin.get('origin', 'refspec');
  if (refspec === undefined) throw sysrootError('BAD_CONFIG', 'no-origin', 'No origin/refspec in current deployment origin; cannot upgrade via ostree');
  const p = parseRefspec(refspec);
  if (p.kind === 'mirrors') throw sysrootError('BAD_CONFIG', 'bad-origin', `Invalid refspec ${refspec} in origin`);
  return { remote: p.scope, ref: p.name };
}

/** OSTree's `ostree_deployment_origin_remove_transient_state`. */
export function removeTransientState(origin: KeyFile): void {
  origin.removeGroup('libostree-transient');
  origin.removeKey('origin', 'override-commit');
  origin.removeKey('origin', 'unlocked');
}

/**
 * The origin refspec an upgrade of `stateroot` (else the booted deployment's) follows, the
 * stateroot, and the commit deployed now. Read-only.
 */
export async function upgradeOrigin(sysrootPath: string, stateroot?: string, sysrootOpts: SysrootOptions = {}): Promise<{ stateroot: string; refspec: string; commit: Checksum }> {
  const base = upgradeBase(await Sysroot.open(sysrootPath, sysrootOpts), stateroot);
  originRefspec(base.origin, true);
  return { stateroot: base.stateroot, refspec: base.origin.get('origin', 'refspec')!, commit: base.merge.csum };
}

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** GLib's `%c` of a UTC date in the C locale (`Fri Oct 25 00:00:00 1985`), or null when out of range. */
function formatC(ts: bigint): string | null {
  const ms = Number(ts) * 1000;
  if (!Number.isSafeInteger(ms) || ms < -8.64e15 || ms > 8.64e15) return null;
  const d = new Date(ms);
  const p2 = (n: number): string => String(n).padStart(2, '0');
  return `${DAYS[d.getUTCDay()]} ${MONTHS[d.getUTCMonth()]} ${String(d.getUTCDate()).padStart(2, ' ')} ${p2(d.getUTCHours())}:${p2(d.getUTCMinutes())}:${p2(d.getUTCSeconds())} ${d.getUTCFullYear()}`;
}

/**
 * OSTree's `ostree_sysroot_upgrader_check_timestamps`: refuse `to` when its commit is older than
 * `from`'s (same timestamp passes). Reads both commits.
 */
export async function checkTimestamps(repo: Repo, from: Checksum, to: Checksum): Promise<void> {
  const a = (await repo.readCommit(from)).timestamp;
  const b = (await repo.readCommit(to)).timestamp;
  if (b >= a || from === to) return;
  const sa = formatC(a);
  const sb = formatC(b);
  const data = { from, to, reason: 'downgrade' };
  if (sa === null || sb === null) {
    throw sysrootError('INVALID_ARGUMENT', 'downgrade', `Upgrade target revision '${to}' timestamp (${b}) or current revision '${from}' timestamp (${a}) is invalid`, data);
  }
  throw sysrootError(
    'INVALID_ARGUMENT',
    'downgrade',
    `Upgrade target revision '${to}' with timestamp '${sb}' is chronologically older than current revision '${from}' with timestamp '${sa}'; use --allow-downgrade to permit`,
    data,
  );
}

/**
 * `ostree admin upgrade` (and, with `refspec`, `admin switch`). See the file comment for the
 * steps. Locking: the sysroot lock throughout. Crash: that of a deploy.
 */
export async function upgrade(sysrootPath: string, opts: UpgradeOptions = {}, sysrootOpts: SysrootOptions = {}): Promise<UpgradeResult> {
  const log = opts.log ?? silent;
  const sr = new Sysroot(sysrootPath, sysrootOpts);
  return sr.withLock(async () => {
    await sr.load();
    const base = upgradeBase(sr, opts.stateroot);
    const switching = opts.refspec !== undefined;
    let origin = base.origin;
    if (switching) {
      origin = KeyFile.parse(`[origin]\nrefspec=${opts.refspec}\n`, 'origin');
    } else {
      removeTransientState(origin);
      if (opts.overrideCommit !== undefined) origin.set('origin', 'override-commit', opts.overrideCommit);
    }
    let { remote, ref } = originRefspec(origin, switching);
    const override = origin.get('origin', 'override-commit');
    if (override !== undefined && !isChecksum(override)) throw sysrootError('INVALID_ARGUMENT', 'bad-origin', `Invalid rev ${override.slice(0, 80)}`, { override });
    const allowOlder = switching || opts.allowDowngrade === true;
    const from = base.merge.csum;
    const repo = await sr.repo();
    const fetch = async (refs: string[]): Promise<void> => {
      if (remote !== null && opts.pull) await opts.pull({ remote, refs, fromRevision: from, allowDowngrade: allowOlder });
    };
    const spec = (): string => (remote !== null ? `${remote}:${ref}` : ref);

    await fetch([override ?? ref]);
    // An end-of-life commit may name the branch to follow instead.
    const tip = await repo.readCommit(await repo.revParse(spec()));
    const rebase = lookup(tip.metadata, ENDOFLIFE_REBASE_KEY);
    if (rebase && typeof rebase.value === 'string') {
      // The branch name comes from the remote's commit: it must be a ref name before anything uses it.
      try {
        validateRefName(rebase.value);
      } catch (e) {
        throw sysrootError('BAD_CONFIG', 'bad-origin', `Invalid ${ENDOFLIFE_REBASE_KEY} '${rebase.value.slice(0, 200)}' in commit ${await repo.revParse(spec())}: not a ref name`, { rebase: rebase.value }, e);
      }
      await fetch([rebase.value]);
      ref = rebase.value;
      origin.set('origin', 'refspec', spec());
    }
    let to: Checksum;
    if (override !== undefined) {
      await repo.setRef(spec(), override);
      to = override;
    } else {
      to = await repo.revParse(spec());
    }
    const changed = to !== from;
    if (changed && !allowOlder) await checkTimestamps(repo, from, to);
    const result: UpgradeResult = { updated: changed, from, to, refspec: spec() };
    if (!changed && !switching) {
      log('No update available.');
      return result;
    }
    if (opts.pullOnly) return result;
    const stage = opts.stage === true || process.env.OSTREE_EX_STAGE_DEPLOYMENTS !== undefined;
    result.deploy = await deployLocked(sr, {
      stateroot: base.stateroot,
      refspec: to,
      origin,
      ...(opts.kargs !== undefined ? { kargs: opts.kargs } : {}),
      stage,
      log,
    });
    return result;
  });
}
