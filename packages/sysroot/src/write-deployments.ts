/**
 * Writing a new deployment list: the atomic bootloader transaction (spec §9).
 *
 * Every piece the new configuration needs is written under names the current one does not
 * reference — `boot/loader.B'` (entries and the backend's file), `ostree/boot.B'.S'` (the
 * symlink farm the entries' `ostree=` karg resolves through), kernels under
 * `boot/ostree/STATEROOT-BOOTCSUM` — then the filesystem is synced and one `rename()` of the
 * `boot/loader.tmp` symlink over `boot/loader` flips what boots. A crash before that rename boots
 * the old set (the leftovers are removed by the next cleanup); after it, the new set.
 *
 * When every position keeps the same boot configuration (same bootcsum, kernel arguments,
 * stateroot, overlay initrds and commit version), the entries stay as they are and only a new
 * farm `ostree/boot.B.S'` is built and `ostree/boot.B` repointed with one rename — OSTree's
 * "sub-bootversion" swap.
 */
import { mkdirSync, readFileSync, rmSync, utimesSync } from 'node:fs';
import path from 'node:path';
import { BootConfig } from './bootconfig.js';
import { selectBootloader, type Bootloader, type BootloaderType } from './bootloader.js';
import { sysrootError } from './errors.js';
import { fsyncPath, lstatOrNull, readlinkOrNull, rmTree, symlinkAtomic, syncFs, sysrootDebug, writeFileAtomic } from './fsutil.js';
import { findKernel, installKernel } from './kernel.js';
import { KernelArgs } from './kargs.js';
import { deploymentName, sameDeployment, type Deployment, type Sysroot } from './sysroot.js';

export interface WriteResult {
  /** True when a full bootversion swap happened (new BLS entries). */
  bootconfigSwap: boolean;
  bootversion: 0 | 1;
  subbootversion: 0 | 1;
  countChange: number;
  /** The line OSTree logs, e.g. `Bootloader updated; bootconfig swap: yes; bootversion: boot.1.1, deployment count change: 1`. */
  message: string;
  /** The backend that wrote its config, if any. */
  bootloader: Bootloader['name'] | null;
  /** True when the new list equalled the current one and nothing was written. */
  noop: boolean;
}

/** Parse an os-release file (shell-style `KEY=value`, quotes removed). */
export function parseOsRelease(text: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of text.split('\n')) {
    const r = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line.trim());
    if (!r) continue;
    let v = r[2];
    if (v.length >= 2 && ((v.startsWith('"') && v.endsWith('"')) || (v.startsWith("'") && v.endsWith("'")))) {
      const q = v[0];
      v = v.slice(1, -1);
      if (q === '"') v = v.replace(/\\(["\\$`])/g, '$1');
    }
    m.set(r[1], v);
  }
  return m;
}

function osName(deployDir: string): string {
  for (const f of ['usr/lib/os-release', 'etc/os-release']) {
    let text: string;
    try {
      text = readFileSync(path.join(deployDir, f), 'utf8');
    } catch {
      continue;
    }
    const m = parseOsRelease(text);
    const name = m.get('PRETTY_NAME') ?? m.get('ID');
    if (name !== undefined) return name;
    throw sysrootError('BAD_CONFIG', 'bad-boot-entry', `No PRETTY_NAME or ID in ${f}`, { path: path.join(deployDir, f) });
  }
  throw sysrootError('BAD_CONFIG', 'bad-boot-entry', `Couldn't find os-release in ${deployDir}`, { path: deployDir });
}

/** Renumber bootserials: per bootcsum, 0, 1, 2… in list order. Returns copies with `index` set. */
export function assignBootserials(list: Deployment[]): Deployment[] {
  const seen = new Map<string, number>();
  return list.map((d, i) => {
    const n = seen.get(d.bootcsum) ?? 0;
    seen.set(d.bootcsum, n + 1);
    return { ...d, index: i, bootserial: n };
  });
}

function kargsKey(d: Deployment): string {
  return KernelArgs.parse(d.bootconfig.get('options') ?? '').without('ostree=').without('ostree').toString();
}

async function bootconfigsEqual(sr: Sysroot, a: Deployment, b: Deployment): Promise<boolean> {
  if (a.bootcsum !== b.bootcsum || a.stateroot !== b.stateroot) return false;
  if (a.bootconfig.overlayInitrds.join('\0') !== b.bootconfig.overlayInitrds.join('\0')) return false;
  if (kargsKey(a) !== kargsKey(b)) return false;
  return (await sr.commitVersion(a.csum)) === (await sr.commitVersion(b.csum));
}

/** Build the symlink farm `ostree/boot.B.S` for `list` (removing any stale one first). */
function createBootlinks(sr: Sysroot, b: 0 | 1, s: 0 | 1, list: Deployment[]): void {
  const farm = sr.p('ostree', `boot.${b}.${s}`);
  rmTree(farm);
  mkdirSync(farm, { mode: 0o755 });
  for (const d of list) {
    const dir = path.join(farm, d.stateroot, d.bootcsum);
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    symlinkAtomic(`../../../deploy/${d.stateroot}/deploy/${deploymentName(d)}`, path.join(dir, String(d.bootserial)));
  }
}

function fullSync(sr: Sysroot): void {
  syncFs(sr.path);
  // OSTree's failpoint in its freeze/thaw of /boot (OSTREE_SYSROOT_DEBUG=test-fifreeze): its
  // watchdog reports on stderr, then the transaction stops before the commit point.
  if (sysrootDebug('test-fifreeze')) {
    process.stderr.write('fifreeze watchdog was run\n');
    throw sysrootError('IO_ERROR', 'bootloader', 'Full sync: During fsfreeze-thaw: aborting due to test-fifreeze');
  }
  syncFs(sr.p('boot'));
}

/** Bump the mtime of `ostree/deploy`, which other processes watch for changes (OSTree's `_ostree_sysroot_bump_mtime`). */
export function bumpDeployMtime(sr: Sysroot): void {
  const now = new Date();
  utimesSync(sr.p('ostree', 'deploy'), now, now);
}

/** The configured backend: repo config `[sysroot] bootloader` (default auto). */
export async function configuredBootloader(sr: Sysroot): Promise<Bootloader | null> {
  const repo = await sr.repo();
  const type = (repo.config.get('sysroot', 'bootloader') ?? 'auto') as BootloaderType;
  return selectBootloader(sr.path, type);
}

/**
 * Build the BLS entry of `d` at position `d.index` for bootversion `b` in a list of `n`.
 * Installs the kernel files into /boot as a side effect (only missing files).
 */
async function buildEntry(sr: Sysroot, d: Deployment, b: 0 | 1, n: number, multiStateroot: boolean, blsAppend: Array<[string, string]>): Promise<BootConfig> {
  const dir = sr.deploymentDir(d);
  // As OSTree: the kernel files are looked up again in the tree, but they go into the directory of
  // the bootcsum the deployment was made with (the entry's), which can differ from what the tree
  // hashes to now (a deployment made with OSTREE_SYSROOT_DEBUG=no-dtb gains its dtb/ here).
  const layout = await findKernel(dir);
  const bootcsumdir = `ostree/${d.stateroot}-${d.bootcsum}`;
  installKernel(layout, sr.p('boot', bootcsumdir), false);
  const c = d.bootconfig.clone();
  c.set('linux', `/${bootcsumdir}/${layout.kernel.name}`);
  if (layout.initramfs) c.set('initrd', `/${bootcsumdir}/${layout.initramfs.name}`);
  else c.delete('initrd');
  if (layout.devicetree) c.set('devicetree', `/${bootcsumdir}/${layout.devicetree.name}`);
  else c.delete('devicetree');
  if (layout.dtbDir) c.set('fdtdir', `/${bootcsumdir}/dtb`);
  else c.delete('fdtdir');
  const bootpath = `/ostree/boot.${b}/${d.stateroot}/${d.bootcsum}/${d.bootserial}`;
  const kargs = KernelArgs.parse(c.get('options') ?? '');
  if (!layout.initramfs) kargs.replace(`init=${bootpath}/usr/lib/ostree/ostree-prepare-root`);
  kargs.replace(`ostree=${bootpath}`);
  c.set('options', kargs.toString());
  let title = osName(dir);
  const version = await sr.commitVersion(d.csum);
  if (version && !title.includes(version)) title += ` ${version}`;
  title += ` (ostree${multiStateroot ? `:${d.stateroot}` : ''}:${d.index})`;
  c.set('title', title);
  c.set('version', String(n - d.index));
  if (d.index > 0) for (const [k, v] of blsAppend) c.set(k, v);
  return c;
}

export interface WriteOptions {
  /** Backend override (default: repo config `sysroot.bootloader`). */
  bootloader?: Bootloader | null;
}

/**
 * Make `list` the deployment list (index 0 = default). See the file comment for the transaction.
 *
 * Locking: the caller holds the sysroot lock. Crash guarantee: the boot configuration names
 * exactly the old or the new list at every instant. Does not delete anything the old list used
 * (run cleanup afterwards). Reloads `sr` on success.
 */
export async function writeDeployments(sr: Sysroot, input: Deployment[], opts: WriteOptions = {}): Promise<WriteResult> {
  // A staged deployment is never written to the boot configuration. It stays staged only while it
  // is first in the new list; otherwise its record is dropped once the new list is in place.
  const keepStaged = input[0]?.staged === true;
  const list = assignBootserials(input.filter((d) => !d.staged));
  const old = sr.deployments.filter((d) => !d.staged);
  const dropStaged = (): void => {
    if (!keepStaged && sr.staged) rmSync(sr.stagedPath, { force: true });
  };
  const b = sr.bootversion;
  const s = sr.subbootversion;
  const countChange = list.length - old.length;
  let requiresNew = old.length !== list.length;
  for (let i = 0; !requiresNew && i < list.length; i++) if (!(await bootconfigsEqual(sr, old[i], list[i]))) requiresNew = true;

  if (!requiresNew) {
    const same = list.every((d, i) => sameDeployment(d, old[i]) && d.bootserial === old[i].bootserial);
    if (same) {
      dropStaged();
      await sr.load();
      return { bootconfigSwap: false, bootversion: b, subbootversion: s, countChange: 0, message: `Transaction complete; bootconfig swap: no; bootversion: boot.${b}.${s}, deployment count change: 0`, bootloader: null, noop: true };
    }
    const s2 = (1 - s) as 0 | 1;
    createBootlinks(sr, b, s2, list);
    fullSync(sr);
    symlinkAtomic(`boot.${b}.${s2}`, sr.p('ostree', `boot.${b}`));
    fsyncPath(sr.p('ostree'));
    bumpDeployMtime(sr);
    dropStaged();
    await sr.load();
    return { bootconfigSwap: false, bootversion: b, subbootversion: s2, countChange, message: `Transaction complete; bootconfig swap: no; bootversion: boot.${b}.${s2}, deployment count change: ${countChange}`, bootloader: null, noop: false };
  }

  const b2 = (1 - b) as 0 | 1;
  const bootloader = opts.bootloader !== undefined ? opts.bootloader : await configuredBootloader(sr);
  const repo = await sr.repo();
  const blsAppend: Array<[string, string]> = [];
  const appendSpec = repo.config.get('sysroot', 'bls-append-except-default');
  if (appendSpec) {
    for (const kv of appendSpec.split(';')) {
      const i = kv.indexOf('=');
      if (i > 0) blsAppend.push([kv.slice(0, i).trim(), kv.slice(i + 1).trim()]);
    }
  }
  const loaderDir = sr.p('boot', `loader.${b2}`);
  rmTree(loaderDir);
  mkdirSync(path.join(loaderDir, 'entries'), { recursive: true, mode: 0o755 });
  const multi = new Set(list.map((d) => d.stateroot)).size > 1;
  const entries: BootConfig[] = [];
  for (const d of list) {
    const c = await buildEntry(sr, d, b2, list.length, multi, blsAppend);
    entries.push(c);
    writeFileAtomic(path.join(loaderDir, 'entries', `ostree-${list.length - d.index}-${d.stateroot}.conf`), c.serialize(), 0o644, { fsync: false });
  }
  const cur = readlinkOrNull(sr.p('ostree', `boot.${b2}`));
  const s2 = (cur === null ? 1 : cur.endsWith('.1') ? 0 : 1) as 0 | 1;
  createBootlinks(sr, b2, s2, list);
  symlinkAtomic(`boot.${b2}.${s2}`, sr.p('ostree', `boot.${b2}`));
  if (bootloader) {
    bootloader.writeConfig({ sysroot: sr.path, bootversion: b2, entries, defaultDeploymentDir: list.length > 0 ? sr.deploymentDir(list[0]) : null });
  }
  if (!lstatOrNull(sr.p('boot', 'boot'))) symlinkAtomic('.', sr.p('boot', 'boot'));
  fullSync(sr);
  // The commit point.
  symlinkAtomic(`loader.${b2}`, sr.p('boot', 'loader'));
  fsyncPath(sr.p('boot'));
  bumpDeployMtime(sr);
  dropStaged();
  await sr.load();
  const word = bootloader ? 'Transaction complete' : 'Bootloader updated';
  return {
    bootconfigSwap: true,
    bootversion: b2,
    subbootversion: s2,
    countChange,
    message: `${word}; bootconfig swap: yes; bootversion: boot.${b2}.${s2}, deployment count change: ${countChange}`,
    bootloader: bootloader?.name ?? null,
    noop: false,
  };
}
