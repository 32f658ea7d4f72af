/**
 * Cleanup (spec §10): what a finished or interrupted transaction leaves behind that the current
 * boot configuration does not reference.
 *
 * In order: (1) the other bootversion's `boot/loader.B'`, `ostree/boot.B'`, `ostree/boot.B'.{0,1}`
 * and the unused sub-farm `ostree/boot.B.S'`, plus temporary symlinks; (2) every
 * `ostree/deploy/*\/deploy/CSUM.SERIAL` not in the list (immutable bit cleared, origin removed
 * first, then the tree); (3) `boot/ostree/*-BOOTCSUM` directories no deployment uses; (4) the
 * `ostree/B/S/I` refs in the system repository, one per deployment, written in one repository
 * transaction, then the others deleted; (5) with
 * `prune`, a refs-only depth-0 prune of the repository, as `ostree admin cleanup`.
 *
 * Crash safety: each step only removes things nothing in the current boot configuration names,
 * so an interruption anywhere leaves a bootable sysroot; the next cleanup finishes the job.
 */
import { readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { LarchError, prune } from '@larch/core-store';
import { lstatOrNull, rmTree } from './fsutil.js';
import { DEPLOY_NAME_RE, deploymentName, type Sysroot } from './sysroot.js';

export interface CleanupOptions {
  /** Prune the system repository afterwards (default true). */
  prune?: boolean;
  /** Put before the message of an error, as `PREFIX: message` (ostree's "Performing initial cleanup"). */
  errorPrefix?: string;
}

export interface CleanupResult {
  /** Deployment directories deleted, as `STATEROOT/CSUM.SERIAL`. */
  deletedDeployments: string[];
  deletedBootDirs: string[];
  /** Objects pruned and their size (0 without prune). */
  prunedObjects: number;
  freedBytes: number;
}

/**
 * Run cleanup on a loaded sysroot. Locking: the caller holds the sysroot lock; prune takes the
 * repository's exclusive lock itself.
 */
export async function cleanupSysroot(sr: Sysroot, opts: CleanupOptions = {}): Promise<CleanupResult> {
  if (opts.errorPrefix === undefined) return cleanupUnprefixed(sr, opts);
  try {
    return await cleanupUnprefixed(sr, opts);
  } catch (e) {
    throw prefixError(e, opts.errorPrefix);
  }
}

/** `e` with `prefix: ` before its message, when it is a LarchError (other errors are bugs: as they are). */
function prefixError(e: unknown, prefix: string): unknown {
  return e instanceof LarchError ? new LarchError(e.code, `${prefix}: ${e.message}`, e.data, { cause: e }) : e;
}

async function cleanupUnprefixed(sr: Sysroot, opts: CleanupOptions): Promise<CleanupResult> {
  const res: CleanupResult = { deletedDeployments: [], deletedBootDirs: [], prunedObjects: 0, freedBytes: 0 };
  const b = sr.bootversion;
  const s = sr.subbootversion;
  const ob = 1 - b;
  // (1) other bootversion and temporaries
  for (const p of [
    sr.p('boot', `loader.${ob}`),
    sr.p('boot', 'loader.tmp'),
    sr.p('ostree', `boot.${ob}`),
    sr.p('ostree', `boot.${ob}.0`),
    sr.p('ostree', `boot.${ob}.1`),
    sr.p('ostree', `boot.${ob}.tmp`),
    sr.p('ostree', `boot.${b}.${1 - s}`),
    sr.p('ostree', `boot.${b}.tmp`),
  ]) {
    rmTree(p);
  }

  // (2) unreferenced deployments
  const active = new Set(sr.deployments.map((d) => `${d.stateroot}/${deploymentName(d)}`));
  for (const os of sr.stateroots()) {
    const dd = sr.p('ostree', 'deploy', os, 'deploy');
    let names: string[];
    try {
      names = readdirSync(dd);
    } catch {
      continue;
    }
    for (const n of names) {
      const full = path.join(dd, n);
      if (n.startsWith('.') && n.includes('.tmp-')) {
        rmSync(full, { force: true });
        continue;
      }
      const base = n.endsWith('.origin') ? n.slice(0, -'.origin'.length) : n;
      if (!DEPLOY_NAME_RE.test(base) || active.has(`${os}/${base}`)) continue;
      if (n.endsWith('.origin')) {
        if (!lstatOrNull(path.join(dd, base))) rmSync(full, { force: true });
        continue;
      }
      if (!lstatOrNull(full)?.isDirectory()) continue;
      rmSync(`${full}.origin`, { force: true });
      rmTree(full);
      res.deletedDeployments.push(`${os}/${n}`);
    }
  }

  // (3) kernels no deployment uses
  const bootcsums = new Set(sr.deployments.map((d) => d.bootcsum));
  const bootOstree = sr.p('boot', 'ostree');
  let bootNames: string[] = [];
  try {
    bootNames = readdirSync(bootOstree);
  } catch {
    /* no /boot/ostree yet */
  }
  for (const n of bootNames) {
    const m = /^(.+)-([0-9a-f]{64})$/.exec(n);
    if (!m || bootcsums.has(m[2])) continue;
    if (!lstatOrNull(path.join(bootOstree, n))?.isDirectory()) continue;
    rmTree(path.join(bootOstree, n));
    res.deletedBootDirs.push(n);
  }

  // (4) refs ostree/B/S/I: the current ones are written in one repository transaction (which,
  // like ostree's, fails before writing anything under OSTREE_REPO_TEST_ERROR=pre-commit and then
  // keeps its staging directory); stale ones are deleted only once it has committed.
  const repo = await sr.repo();
  const want = new Map(sr.deployments.map((d, i) => [`ostree/${b}/${s}/${i}`, d.csum]));
  const existing = await repo.listRefs({ kind: 'heads', prefix: 'ostree' });
  try {
    await repo.withTransaction(async (txn) => {
      for (const [name, csum] of want) if (existing.get(name) !== csum) txn.setRef(name, csum);
    });
  } catch (e) {
    throw prefixError(e, 'Generating deployment refs');
  }
  for (const name of existing.keys()) if (/^ostree\/[01]\/[01]\/[0-9]+$/.test(name) && !want.has(name)) await repo.setRef(name, null);

  // (5) prune
  if (opts.prune !== false) {
    const r = await prune(repo, { refsOnly: true, depth: 0 });
    res.prunedObjects = r.deleted;
    res.freedBytes = r.bytesFreed;
  }
  return res;
}
