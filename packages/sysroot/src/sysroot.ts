/**
 * A sysroot on disk and its deployment list, reconstructed from files only, exactly as
 * `ostree admin status` does it (spec/sysroot.md §8): `boot/loader` gives the bootversion B,
 * `ostree/boot.B` the subbootversion S, the BLS entries in `boot/loader.B/entries` (sorted by
 * their `version` key, descending) give the order, and each entry's `ostree=` karg resolves
 * through the `ostree/boot.B` symlink farm to a `CHECKSUM.SERIAL` deployment directory.
 *
 * Locking: mutating operations take `ostree/lock` with flock(LOCK_EX), like OSTree, and unlink it
 * when done, as OSTree does.
 */
import { closeSync, constants as C, existsSync, openSync, readdirSync, readFileSync, statSync, unlinkSync } from 'node:fs';
import path from 'node:path';
import { KeyFile, Repo, type Commit } from '@larch/core-store';
import { decode, encode, lookup, Variant } from '@larch/gvariant';
import * as native from '@larch/native';
import { BootConfig, strverscmp } from './bootconfig.js';
import { sysrootError } from './errors.js';
import { lstatOrNull, readlinkOrNull } from './fsutil.js';

export const DEPLOY_NAME_RE = /^([0-9a-f]+)\.([0-9]+)$/;
const OSTREE_KARG_RE = /^\/ostree\/boot\.([01])\/([^/]+)\/([^/]+)\/([0-9]+)$/;

/** One deployment: a checked-out commit in a stateroot, with its boot entry and origin. */
export interface Deployment {
  /** Position in the list (0 = default boot entry). */
  index: number;
  stateroot: string;
  /** Commit checksum. */
  csum: string;
  deployserial: number;
  /** SHA-256 of kernel (+initramfs, +devicetree): the `boot/ostree/STATEROOT-BOOTCSUM` directory. */
  bootcsum: string;
  /** Counter among deployments sharing the bootcsum, in list order. */
  bootserial: number;
  /** The BLS entry (its `options` hold the kernel arguments). */
  bootconfig: BootConfig;
  /** The origin keyfile, or null when the deployment has none. */
  origin: KeyFile | null;
  /** A staged deployment (finalized at shutdown); only on a booted system. */
  staged?: boolean;
}

/** `admin unlock` states: hotfix persists (origin `unlocked=hotfix`), the others last until reboot. */
export type UnlockedState = 'none' | 'hotfix' | 'development' | 'transient';

/** Run-state flag files of the unlocked states that end at reboot, in RUN/ostree/deployment-state/CSUM.SERIAL/. */
export const UNLOCKED_RUNSTATE_FLAGS = { development: 'unlocked-development', transient: 'unlocked-transient' } as const;

export function deploymentName(d: Pick<Deployment, 'csum' | 'deployserial'>): string {
  return `${d.csum}.${d.deployserial}`;
}

/** True when two list entries are the same deployment (stateroot, commit, serial). */
export function sameDeployment(a: Deployment, b: Deployment): boolean {
  return a.stateroot === b.stateroot && a.csum === b.csum && a.deployserial === b.deployserial;
}

export function isPinned(d: Deployment): boolean {
  return d.origin?.getBoolean('libostree-transient', 'pinned', false) ?? false;
}

export interface LockOptions {
  /** Give up after this many ms (default: wait forever, as `ostree admin`). */
  timeoutMs?: number;
}

export interface SysrootOptions {
  /**
   * The root directory of the running system, to find the booted deployment (the one whose
   * directory is the same inode). Default: `/` when the sysroot is `/` and `/run/ostree-booted`
   * exists (as OSTree decides it), else none: a `--sysroot=DIR` is never booted.
   */
  bootedRoot?: string | null;
  /** Where the running system keeps `ostree/staged-deployment` (default `/run`). */
  runDir?: string;
}

/** The staged deployment's record in `RUN/ostree/staged-deployment` (spec §11). */
export interface StagedRecord {
  target: { name: string; osname: string; bootcsum: string };
  merge: { name: string; osname: string; bootcsum: string } | null;
  /** Only when kernel arguments were given; otherwise finalization takes the merge deployment's. */
  kargs: string[] | null;
}

export class Sysroot {
  readonly path: string;
  bootversion: 0 | 1 = 0;
  subbootversion: 0 | 1 = 0;
  deployments: Deployment[] = [];
  /** The deployment the running system booted from, if any. */
  booted: Deployment | null = null;
  private readonly bootedRoot: string | null;
  /** `RUN/ostree/staged-deployment`. */
  readonly stagedPath: string;
  /** `RUN` (default `/run`): the running system's state, staged deployments and unlock flags. */
  readonly runDir: string;
  /** The staged deployment's record, when one is loaded. */
  stagedRecord: StagedRecord | null = null;
  private repoHandle: Repo | null = null;
  private lockFd: number | null = null;

  constructor(sysrootPath: string, opts: SysrootOptions = {}) {
    this.path = path.resolve(sysrootPath);
    this.bootedRoot =
      opts.bootedRoot !== undefined ? opts.bootedRoot : this.path === '/' && existsSync('/run/ostree-booted') ? '/' : null;
    this.runDir = opts.runDir ?? '/run';
    this.stagedPath = path.join(this.runDir, 'ostree', 'staged-deployment');
  }

  /** The root directory of the running system, when the sysroot is booted. */
  get bootedRootPath(): string | null {
    return this.bootedRoot;
  }

  /** `RUN/ostree/deployment-state/CSUM.SERIAL/FLAG`, where `admin unlock` records a state that ends at reboot. */
  runstatePath(d: Pick<Deployment, 'csum' | 'deployserial'>, flag: string): string {
    return path.join(this.runDir, 'ostree', 'deployment-state', deploymentName(d), flag);
  }

  /**
   * The unlocked state of a deployment, as OSTree reads it: the run-state flags (only on the
   * running system: a `--sysroot` directory has none), else the origin's `unlocked=hotfix`.
   */
  unlockedState(d: Deployment): UnlockedState {
    if (this.bootedRoot !== null) {
      if (existsSync(this.runstatePath(d, UNLOCKED_RUNSTATE_FLAGS.development))) return 'development';
      if (existsSync(this.runstatePath(d, UNLOCKED_RUNSTATE_FLAGS.transient))) return 'transient';
    }
    return d.origin?.get('origin', 'unlocked') === 'hotfix' ? 'hotfix' : 'none';
  }

  /** The staged deployment, if any (always index 0). */
  get staged(): Deployment | null {
    return this.deployments[0]?.staged ? this.deployments[0] : null;
  }

  /** Open and load a sysroot (must have been through init-fs: `ostree/repo` and `ostree/deploy`). */
  static async open(sysrootPath: string, opts: SysrootOptions = {}): Promise<Sysroot> {
    const s = new Sysroot(sysrootPath, opts);
    await s.load();
    return s;
  }

  /** Whether `d` is the booted deployment. */
  isBooted(d: Deployment): boolean {
    return this.booted !== null && sameDeployment(d, this.booted);
  }

  p(...parts: string[]): string {
    return path.join(this.path, ...parts);
  }

  get repoPath(): string {
    return this.p('ostree', 'repo');
  }

  async repo(): Promise<Repo> {
    if (!this.repoHandle) this.repoHandle = await Repo.open(this.repoPath);
    return this.repoHandle;
  }

  deploymentDir(d: Pick<Deployment, 'stateroot' | 'csum' | 'deployserial'>): string {
    return this.p('ostree', 'deploy', d.stateroot, 'deploy', deploymentName(d));
  }

  originPath(d: Pick<Deployment, 'stateroot' | 'csum' | 'deployserial'>): string {
    return `${this.deploymentDir(d)}.origin`;
  }

  stateroots(): string[] {
    try {
      return readdirSync(this.p('ostree', 'deploy'), { withFileTypes: true })
        .filter((e) => e.isDirectory())
        .map((e) => e.name)
        .sort();
    } catch {
      return [];
    }
  }

  /** Take `ostree/lock` exclusively. Throws LOCK_TIMEOUT after `timeoutMs`. */
  async lock(opts: LockOptions = {}): Promise<void> {
    if (this.lockFd !== null) return;
    const fd = openSync(this.p('ostree', 'lock'), C.O_RDWR | C.O_CREAT, 0o600);
    const start = Date.now();
    for (;;) {
      if (native.flock(fd, 'ex', { nonblocking: true })) break;
      if (opts.timeoutMs !== undefined && Date.now() - start > opts.timeoutMs) {
        closeSync(fd);
        throw sysrootError('LOCK_TIMEOUT', 'locked', `Locking sysroot ${this.path}: another process holds ostree/lock`, { path: this.path });
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    this.lockFd = fd;
  }

  /** Release the lock taken by {@link lock} (unlinking `ostree/lock`, as OSTree does). */
  unlock(): void {
    if (this.lockFd === null) return;
    try {
      unlinkSync(this.p('ostree', 'lock'));
    } catch {
      /* already gone */
    }
    native.flock(this.lockFd, 'un');
    closeSync(this.lockFd);
    this.lockFd = null;
  }

  async withLock<T>(fn: () => Promise<T>, opts: LockOptions = {}): Promise<T> {
    await this.lock(opts);
    try {
      return await fn();
    } finally {
      this.unlock();
    }
  }

  /** Read `boot/loader` → bootversion (absent → 0). */
  readBootversion(): 0 | 1 {
    const st = lstatOrNull(this.p('boot', 'loader'));
    if (!st) return 0;
    if (!st.isSymbolicLink()) throw sysrootError('BAD_CONFIG', 'bad-bootversion', `Not a symlink: ${this.p('boot', 'loader')}`);
    const t = readlinkOrNull(this.p('boot', 'loader'));
    if (t === 'loader.0') return 0;
    if (t === 'loader.1') return 1;
    throw sysrootError('BAD_CONFIG', 'bad-bootversion', `Invalid target '${t}' in ${this.p('boot', 'loader')}`);
  }

  /** Subbootversion of bootversion `b`: suffix of the `ostree/boot.B` target (absent → 0). */
  readSubbootversion(b: 0 | 1): 0 | 1 {
    const t = readlinkOrNull(this.p('ostree', `boot.${b}`));
    if (t === null) return 0;
    if (t === `boot.${b}.0`) return 0;
    if (t === `boot.${b}.1`) return 1;
    throw sysrootError('BAD_CONFIG', 'bad-bootversion', `Invalid target '${t}' in ostree/boot.${b}`);
  }

  /** (Re)load bootversion, subbootversion and the deployment list from disk. */
  async load(): Promise<void> {
    const dep = lstatOrNull(this.p('ostree', 'deploy'));
    if (!dep || !dep.isDirectory()) {
      throw sysrootError('REPO_NOT_FOUND', 'not-a-sysroot', `No ostree/deploy in ${this.path}: not an OSTree sysroot (run admin init-fs)`, { path: this.path });
    }
    this.bootversion = this.readBootversion();
    this.subbootversion = this.readSubbootversion(this.bootversion);
    this.deployments = this.bootLoaderConfigs(this.bootversion).map((c, i) => this.deploymentFromEntry(c, i));
    this.booted = null;
    if (this.bootedRoot !== null) {
      const root = statSync(this.bootedRoot);
      this.booted =
        this.deployments.find((d) => {
          const st = statSync(this.deploymentDir(d));
          return st.dev === root.dev && st.ino === root.ino;
        }) ?? null;
    }
    // A staged deployment exists only on a booted system; it goes first (spec §8 step 5).
    this.stagedRecord = null;
    if (this.booted && existsSync(this.stagedPath)) {
      const rec = decodeStaged(readFileSync(this.stagedPath));
      const m = DEPLOY_NAME_RE.exec(rec.target.name);
      if (!m) throw sysrootError('BAD_CONFIG', 'bad-boot-entry', `Invalid staged deployment name ${rec.target.name}`);
      const bc = new BootConfig();
      const merge = rec.merge ? this.deployments.find((x) => x.stateroot === rec.merge!.osname && deploymentName(x) === rec.merge!.name) : undefined;
      bc.set('options', rec.kargs !== null ? rec.kargs.join(' ') : (merge?.bootconfig.get('options') ?? ''));
      const d: Deployment = { index: 0, stateroot: rec.target.osname, csum: m[1], deployserial: Number(m[2]), bootcsum: rec.target.bootcsum, bootserial: 0, bootconfig: bc, origin: null, staged: true };
      try {
        d.origin = KeyFile.parse(readFileSync(this.originPath(d), 'utf8'), this.originPath(d));
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      }
      this.stagedRecord = rec;
      this.deployments = [d, ...this.deployments].map((x, i) => ({ ...x, index: i }));
      if (this.booted) this.booted = this.deployments.find((x) => !x.staged && sameDeployment(x, this.booted!)) ?? null;
    }
  }

  /**
   * The BLS entries of bootversion `b` (`boot/loader.B/entries/ostree-*.conf`, regular files),
   * sorted by their `version` key, highest first (entries without one last), as OSTree orders them.
   */
  bootLoaderConfigs(b: 0 | 1): BootConfig[] {
    const entriesDir = this.p('boot', `loader.${b}`, 'entries');
    const configs: BootConfig[] = [];
    let names: string[] = [];
    try {
      names = readdirSync(entriesDir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    for (const n of names) {
      if (!n.startsWith('ostree-') || !n.endsWith('.conf')) continue;
      const f = path.join(entriesDir, n);
      const st = lstatOrNull(f);
      if (!st || !st.isFile()) continue;
      configs.push(BootConfig.parse(readFileSync(f, 'utf8')));
    }
    return configs.sort((a, b2) => {
      const va = a.get('version');
      const vb = b2.get('version');
      if (va === undefined && vb === undefined) return 0;
      if (va === undefined) return 1;
      if (vb === undefined) return -1;
      return -strverscmp(va, vb);
    });
  }

  private deploymentFromEntry(c: BootConfig, index: number): Deployment {
    const options = c.get('options') ?? '';
    const karg = options.split(/\s+/).find((a) => a.startsWith('ostree='));
    if (!karg) throw sysrootError('BAD_CONFIG', 'bad-boot-entry', `No ostree= kernel argument found in boot loader configuration file`, { options });
    const m = OSTREE_KARG_RE.exec(karg.slice('ostree='.length));
    if (!m) throw sysrootError('BAD_CONFIG', 'bad-boot-entry', `Invalid ostree= argument '${karg}', expected ostree=/ostree/boot.BOOTVERSION/OSNAME/BOOTCSUM/TREESERIAL`, { karg });
    const [, , stateroot, bootcsum, bootserialStr] = m;
    const link = this.p('ostree', `boot.${this.bootversion}`, stateroot, bootcsum, bootserialStr);
    const target = readlinkOrNull(link);
    if (target === null) throw sysrootError('BAD_CONFIG', 'bad-boot-entry', `Failed to read symlink ${link}`, { path: link });
    const dm = DEPLOY_NAME_RE.exec(path.basename(target));
    if (!dm) throw sysrootError('BAD_CONFIG', 'bad-boot-entry', `Invalid boot directory symlink target ${target}`, { path: link });
    const d: Deployment = {
      index,
      stateroot,
      csum: dm[1],
      deployserial: Number(dm[2]),
      bootcsum,
      bootserial: Number(bootserialStr),
      bootconfig: c,
      origin: null,
    };
    const dir = this.deploymentDir(d);
    try {
      if (!statSync(dir).isDirectory()) throw new Error('not a directory');
    } catch (e) {
      throw sysrootError('BAD_CONFIG', 'bad-boot-entry', `Deployment directory ${dir} is missing`, { path: dir }, e);
    }
    try {
      d.origin = KeyFile.parse(readFileSync(this.originPath(d), 'utf8'), this.originPath(d));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    return d;
  }

  /** The commit's `version` metadata, if any (null when the commit is missing or has none). */
  async commitVersion(csum: string): Promise<string | null> {
    const c = await this.readCommitOrNull(csum);
    if (!c) return null;
    const v = lookup(c.metadata, 'version');
    return v && typeof v.value === 'string' ? v.value : null;
  }

  async readCommitOrNull(csum: string): Promise<Commit | null> {
    try {
      return await (await this.repo()).readCommit(csum);
    } catch {
      return null;
    }
  }
}

function str(v: Variant | undefined): string {
  if (!v || typeof v.value !== 'string') throw sysrootError('BAD_CONFIG', 'bad-boot-entry', 'Malformed staged deployment record');
  return v.value;
}

function dict(v: Variant | undefined): Array<[string, Variant]> | null {
  return v ? (v.value as unknown as Array<[string, Variant]>) : null;
}

/**
 * Serialize a staged record as OSTree's `a{sv}`: `target` and `merge-deployment` as
 * `a{sv}` {name, osname, bootcsum}, then `kargs` (`as`) when kernel arguments were given.
 */
export function encodeStaged(r: StagedRecord): Uint8Array {
  const entries: Array<[string, Variant]> = [
    ['target', new Variant('a{sv}', [['name', new Variant('s', r.target.name)], ['osname', new Variant('s', r.target.osname)], ['bootcsum', new Variant('s', r.target.bootcsum)]])],
  ];
  if (r.merge) entries.push(['merge-deployment', new Variant('a{sv}', [['name', new Variant('s', r.merge.name)], ['osname', new Variant('s', r.merge.osname)], ['bootcsum', new Variant('s', r.merge.bootcsum)]])]);
  if (r.kargs !== null) entries.push(['kargs', new Variant('as', r.kargs)]);
  return encode('a{sv}', entries);
}

/** Parse `RUN/ostree/staged-deployment`. */
export function decodeStaged(bytes: Uint8Array): StagedRecord {
  const d = decode<Array<[string, Variant]>>('a{sv}', bytes);
  const t = dict(lookup(d, 'target'));
  if (!t) throw sysrootError('BAD_CONFIG', 'bad-boot-entry', 'Malformed staged deployment record: no target');
  const m = dict(lookup(d, 'merge-deployment'));
  const k = lookup(d, 'kargs');
  return {
    target: { name: str(lookup(t, 'name')), osname: str(lookup(t, 'osname')), bootcsum: str(lookup(t, 'bootcsum')) },
    merge: m ? { name: str(lookup(m, 'name')), osname: str(lookup(m, 'osname')), bootcsum: str(lookup(m, 'bootcsum')) } : null,
    kargs: k && Array.isArray(k.value) ? (k.value as string[]) : null,
  };
}
