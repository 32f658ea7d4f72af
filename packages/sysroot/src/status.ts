/**
 * `ostree admin status`: the deployment list as text (2022.7 layout) or as a JSON-ready object.
 * Read-only; takes no lock (the on-disk state changes only by atomic renames).
 */
import { lookup } from '@larch/gvariant';
import { KernelArgs } from './kargs.js';
import { deploymentName, isPinned, Sysroot, type SysrootOptions, type UnlockedState } from './sysroot.js';

export interface DeploymentStatus {
  index: number;
  stateroot: string;
  checksum: string;
  deployserial: number;
  name: string;
  bootcsum: string;
  bootserial: number;
  version: string | null;
  pinned: boolean;
  refspec: string | null;
  /** Whether the deployment has an origin file at all. */
  hasOrigin: boolean;
  /** Kernel arguments without `ostree=`. */
  kargs: string;
  booted: boolean;
  /** Before the booted deployment, in its stateroot (only when booted). */
  pending: boolean;
  /** After the booted deployment, in its stateroot (only when booted). */
  rollback: boolean;
  /** Staged: becomes the default when the system shuts down (finalize-staged). */
  staged: boolean;
  /** `admin unlock` state (`none` unless unlocked). */
  unlocked: UnlockedState;
  /** The deployment's directory. */
  path: string;
  sourceTitle: string | null;
}

export interface SysrootStatus {
  sysroot: string;
  bootversion: 0 | 1;
  subbootversion: 0 | 1;
  deployments: DeploymentStatus[];
}

export async function sysrootStatus(sysrootPath: string, opts: SysrootOptions = {}): Promise<SysrootStatus> {
  const sr = await Sysroot.open(sysrootPath, opts);
  const deployments: DeploymentStatus[] = [];
  const bootedIndex = sr.booted ? sr.deployments.findIndex((d) => sr.isBooted(d)) : -1;
  const bootedOs = sr.booted?.stateroot;
  const pendingIndex = bootedIndex < 0 ? -1 : sr.deployments.findIndex((d, i) => i < bootedIndex && !d.staged && d.stateroot === bootedOs);
  const rollbackIndex = bootedIndex < 0 ? -1 : sr.deployments.findIndex((d, i) => i > bootedIndex && d.stateroot === bootedOs);
  for (const d of sr.deployments) {
    const commit = await sr.readCommitOrNull(d.csum);
    const v = commit ? lookup(commit.metadata, 'version') : undefined;
    const st = commit ? lookup(commit.metadata, 'ostree.source-title') : undefined;
    deployments.push({
      index: d.index,
      stateroot: d.stateroot,
      checksum: d.csum,
      deployserial: d.deployserial,
      name: deploymentName(d),
      bootcsum: d.bootcsum,
      bootserial: d.bootserial,
      version: v && typeof v.value === 'string' ? v.value : null,
      pinned: isPinned(d),
      refspec: d.origin?.get('origin', 'refspec') ?? null,
      hasOrigin: d.origin !== null,
      kargs: KernelArgs.parse(d.bootconfig.get('options') ?? '').without('ostree').toString(),
      booted: d.index === bootedIndex,
      pending: d.index === pendingIndex,
      rollback: d.index === rollbackIndex,
      staged: d.staged === true,
      unlocked: sr.unlockedState(d),
      path: sr.deploymentDir(d),
      sourceTitle: st && typeof st.value === 'string' ? st.value : null,
    });
  }
  return { sysroot: sr.path, bootversion: sr.bootversion, subbootversion: sr.subbootversion, deployments };
}

/** Render as `ostree admin status` 2022.7 does: `*` marks the booted deployment, then (pending) / (rollback). */
export function formatStatus(s: SysrootStatus): string {
  if (s.deployments.length === 0) return 'No deployments.\n';
  let out = '';
  for (const d of s.deployments) {
    out += formatDeploymentHeader(d) + formatDeploymentDetails(d);
  }
  return out;
}

/**
 * The lines `ostree admin status` prints under a deployment's first line (Version, Unlocked,
 * Pinned, origin, source title), without the signature lines the CLI adds. Pure.
 */
export function formatDeploymentDetails(d: DeploymentStatus): string {
  let out = '';
  if (d.version !== null) out += `    Version: ${d.version}\n`;
  if (d.unlocked !== 'none') out += `    Unlocked: ${d.unlocked}\n`;
  if (d.pinned) out += '    Pinned: yes\n';
  if (!d.hasOrigin) return `${out}    origin: none\n`;
  out += d.refspec !== null ? `    origin refspec: ${d.refspec}\n` : '    origin: <unknown origin type>\n';
  if (d.sourceTitle !== null) out += `    \`- ${d.sourceTitle}\n`;
  return out;
}

/** The first line of a deployment in `ostree admin status`: `* STATEROOT CSUM.SERIAL (pending)`. Pure. */
export function formatDeploymentHeader(d: DeploymentStatus): string {
  return `${d.booted ? '*' : ' '} ${d.stateroot} ${d.name}${d.staged ? ' (staged)' : d.pending ? ' (pending)' : d.rollback ? ' (rollback)' : ''}\n`;
}
