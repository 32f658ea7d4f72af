/**
 * `larch admin` where OSTree's own admin tests found it differing from `ostree admin` 2022.7:
 * $OSTREE_SYSROOT, --print-current-dir, upgrade (transient origin state, --override-commit, the
 * end-of-life rebase), --karg-proc-cmdline, instutil, kargs edit-in-place, status --verify, unlock
 * and the /etc merge of a tree without /usr/etc. Where ostree's output is deterministic the same
 * steps run on a twin sysroot with the real `ostree` and the results are compared.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setImmutable } from '@larch/sysroot';
import { CLI, expectOneErrorLine, expectUsageError, HAVE_OSTREE, larch, ok, ostree, requireOstree, RUN_INTEROP, scratch, type RunOptions } from './helpers.js';

let dir = '';
let cleanup: () => Promise<void> = async () => undefined;
let osRepo = '';
let n = 0;
const env = { OSTREE_SYSROOT_DEBUG: 'mutable-deployments' };
const roots: string[] = [];

/** A bootable tree committed to the archive repo on BRANCH (version in the metadata). */
function commit(version: string, opts: { branch?: string; kernel?: string; usrEtc?: boolean; timestamp?: string; meta?: string[] } = {}): string {
  const t = join(dir, `tree${++n}`);
  mkdirSync(join(t, 'usr/lib/modules/3.6.0'), { recursive: true });
  mkdirSync(join(t, 'usr/bin'), { recursive: true });
  writeFileSync(join(t, 'usr/lib/modules/3.6.0/vmlinuz'), opts.kernel ?? 'a kernel\n');
  writeFileSync(join(t, 'usr/lib/modules/3.6.0/initramfs.img'), 'an initramfs\n');
  writeFileSync(join(t, 'usr/bin/sh'), `an executable ${n}\n`);
  const release = 'NAME=TestOS\nPRETTY_NAME="TestOS 42"\n';
  if (opts.usrEtc === false) writeFileSync(join(t, 'usr/lib/os-release'), release);
  else {
    mkdirSync(join(t, 'usr/etc'), { recursive: true });
    writeFileSync(join(t, 'usr/etc/os-release'), release);
    writeFileSync(join(t, 'usr/etc/aconfigfile'), 'a config file\n');
  }
  symlinkSync('usr/bin', join(t, 'bin'));
  const args = ['commit', `--repo=${osRepo}`, '-b', opts.branch ?? 'testos/buildmain/x86_64-runtime', `--add-metadata-string=version=${version}`, `--tree=dir=${t}`];
  if (opts.timestamp) args.push(`--timestamp=${opts.timestamp}`);
  for (const m of opts.meta ?? []) args.push(`--add-metadata-string=${m}`);
  return ok(larch(args)).trim();
}

/** init-fs + os-init testos + the branch pulled into the sysroot's repository with remote `testos`, by larch. */
function makeSysroot(name: string): string {
  const root = join(dir, name);
  mkdirSync(root);
  roots.push(root);
  ok(larch(['admin', 'init-fs', root]));
  ok(larch(['admin', 'os-init', `--sysroot=${root}`, 'testos']));
  ok(larch(['remote', 'add', `--repo=${root}/ostree/repo`, '--set=gpg-verify=false', 'testos', `file://${osRepo}`]));
  ok(larch(['pull', `--repo=${root}/ostree/repo`, 'testos', 'testos/buildmain/x86_64-runtime']));
  return root;
}

/** A copy of a sysroot (deployments' immutable bit is off here: mutable-deployments). */
function twin(root: string, name: string): string {
  const copy = join(dir, name);
  cpSync(root, copy, { recursive: true, verbatimSymlinks: true });
  roots.push(copy);
  return copy;
}

function entries(root: string): string[] {
  const d = join(root, 'boot/loader/entries');
  return readdirSync(d).sort().map((e) => readFileSync(join(d, e), 'utf8'));
}

function options(root: string): string[] {
  return entries(root).map((e) => /^options (.*)$/m.exec(e)?.[1] ?? '');
}

function status(root: string, opts: RunOptions = {}): string {
  return ok(larch(['admin', 'status', `--sysroot=${root}`], opts));
}

function deployments(root: string): Array<{ name: string; stateroot: string; checksum: string; version: string | null; pinned: boolean; refspec: string | null; unlocked: string }> {
  return JSON.parse(ok(larch(['admin', 'status', `--sysroot=${root}`, '--json']))).deployments;
}

function deployDir(root: string, i: number): string {
  const d = deployments(root)[i];
  return join(root, 'ostree/deploy', d.stateroot, 'deploy', d.name);
}

const sys = (root: string): RunOptions => ({ env: { ...env, OSTREE_SYSROOT: root } });

beforeAll(async () => {
  if (RUN_INTEROP) requireOstree();
  ({ dir, cleanup } = await scratch('larch-cli-admin-conf-'));
  osRepo = join(dir, 'testos-repo');
  ok(larch(['init', `--repo=${osRepo}`, '--mode=archive']));
  commit('1.0.9', { timestamp: '@1577836800' });
  commit('1.0.10', { timestamp: '@1577923200' });
});

afterAll(async () => {
  for (const root of roots) {
    try {
      for (const os of readdirSync(join(root, 'ostree/deploy'))) {
        for (const name of readdirSync(join(root, 'ostree/deploy', os, 'deploy'))) setImmutable(join(root, 'ostree/deploy', os, 'deploy', name), false);
      }
    } catch {
      /* nothing deployed */
    }
  }
  await cleanup();
});

describe('larch admin, as ostree admin', () => {
  it('takes the sysroot from $OSTREE_SYSROOT when --sysroot is not given', () => {
    const root = makeSysroot('env');
    ok(larch(['admin', 'deploy', '--os=testos', '--karg=root=LABEL=MOO', 'testos:testos/buildmain/x86_64-runtime'], sys(root)));
    const mine = ok(larch(['admin', 'status'], sys(root)));
    expect(mine).toContain('origin refspec: testos:testos/buildmain/x86_64-runtime');
    if (HAVE_OSTREE) expect(mine).toBe(ok(ostree(['admin', 'status'], sys(root))));
  });

  it('--print-current-dir prints the first deployment\'s directory, as ostree', () => {
    const root = makeSysroot('current');
    ok(larch(['admin', 'deploy', '--os=testos', 'testos:testos/buildmain/x86_64-runtime'], sys(root)));
    const cur = ok(larch(['admin', '--print-current-dir'], sys(root)));
    expect(cur).toBe(`${deployDir(root, 0)}\n`);
    if (HAVE_OSTREE) expect(cur).toBe(ok(ostree(['admin', '--print-current-dir'], sys(root))));
    expect(expectOneErrorLine(larch(['admin', '--print-current-dir'], sys(makeSysroot('current-empty'))))).toBe('Unable to find a deployment in sysroot');
  });

  it('kargs edit-in-place and instutil set-kargs need a deployment, as ostree', () => {
    const empty = makeSysroot('env-empty');
    for (const args of [['admin', 'kargs', 'edit-in-place', '--append-if-missing=x'], ['admin', 'instutil', 'set-kargs', 'x']]) {
      expect(expectOneErrorLine(larch(args, sys(empty)))).toBe('Unable to find a deployment in sysroot');
      if (HAVE_OSTREE) expect(ostree(args, sys(empty)).stderr).toBe('error: Unable to find a deployment in sysroot\n');
    }
  });

  it('upgrade drops the transient state (a pin) from the new deployment, and takes --override-commit', () => {
    const root = makeSysroot('upgrade');
    ok(larch(['admin', 'deploy', '--os=testos', 'testos:testos/buildmain/x86_64-runtime'], sys(root)));
    ok(larch(['admin', 'pin', '0'], sys(root)));
    const tip = commit('1.0.11', { timestamp: '@1578009600' });
    ok(larch(['admin', 'upgrade', '--os=testos'], sys(root)));
    expect(deployments(root).map((d) => [d.checksum, d.pinned])).toEqual([
      [tip, false],
      [expect.any(String), true],
    ]);
    const older = ok(larch(['rev-parse', `--repo=${osRepo}`, 'testos/buildmain/x86_64-runtime^'])).trim();
    const refused = larch(['admin', 'upgrade', '--os=testos', `--override-commit=${older}`], sys(root));
    expect(expectOneErrorLine(refused)).toMatch(new RegExp(`^Upgrade target revision '${older}' with timestamp 'Thu Jan  2 00:00:00 2020' is chronologically older than current revision '${tip}' with timestamp 'Fri Jan  3 00:00:00 2020'; use --allow-downgrade to permit$`));
    ok(larch(['admin', 'upgrade', '--os=testos', `--override-commit=${older}`, '--allow-downgrade'], sys(root)));
    expect(deployments(root)[0].checksum).toBe(older);
    // the override is transient too: a plain upgrade goes back to the tip
    ok(larch(['admin', 'upgrade', '--os=testos'], sys(root)));
    expect(deployments(root)[0].checksum).toBe(tip);
    expect(ok(larch(['admin', 'upgrade', '--os=testos'], sys(root)))).toBe('No update available.\n');
  });

  it('upgrade follows ostree.endoflife-rebase to the new branch (--pull-only, then --deploy-only)', () => {
    commit('1.0', { branch: 'testos/eol', timestamp: '@1609372800' });
    const root = makeSysroot('eol');
    ok(larch(['pull', `--repo=${root}/ostree/repo`, 'testos', 'testos/eol']));
    ok(larch(['admin', 'deploy', '--os=testos', 'testos:testos/eol'], sys(root)));
    const next = commit('2.0', { branch: 'testos/buildmain/newbranch', kernel: 'a new kernel\n', timestamp: '@1609459200' });
    const t = join(dir, 'empty');
    mkdirSync(t);
    ok(larch(['commit', `--repo=${osRepo}`, '-b', 'testos/eol', `--tree=dir=${t}`, '--timestamp=@1609545600', '--add-metadata-string=ostree.endoflife=Product discontinued', '--add-metadata-string=ostree.endoflife-rebase=testos/buildmain/newbranch']));
    ok(larch(['admin', 'upgrade', '--os=testos', '--pull-only'], sys(root)));
    expect(deployments(root)).toHaveLength(1);
    ok(larch(['admin', 'upgrade', '--os=testos', '--deploy-only'], sys(root)));
    const d = deployments(root)[0];
    expect(d.checksum).toBe(next);
    expect(d.refspec).toBe('testos:testos/buildmain/newbranch');
    expect(readFileSync(join(root, 'ostree/deploy/testos/deploy', `${d.name}.origin`), 'utf8')).toContain('refspec=testos:testos/buildmain/newbranch');
  });

  it('deploy --karg-proc-cmdline, instutil set-kargs and kargs edit-in-place write what ostree writes', () => {
    const base = makeSysroot('kargs');
    ok(larch(['admin', 'deploy', '--os=testos', '--karg=root=LABEL=MOO', 'testos:testos/buildmain/x86_64-runtime'], sys(base)));
    const steps: string[][] = [
      ['admin', 'deploy', '--os=testos', '--karg-proc-cmdline', 'testos:testos/buildmain/x86_64-runtime'],
      ['admin', 'instutil', 'set-kargs', 'FOO=BAZ', 'FOO=BIF', 'KEYWORD', 'EMPTYLIST='],
      ['admin', 'instutil', 'set-kargs', '--merge', 'FOO=BAR'],
      ['admin', 'instutil', 'set-kargs', '--merge', '--replace=FOO=XXX', '--append=A=1', '--append=A=2', 'extra:arg'],
      ['admin', 'kargs', 'edit-in-place', '--append-if-missing=TESTARG=TESTVALUE', '--append-if-missing=KEYWORD', 'ignored:arg'],
    ];
    const mine = twin(base, 'kargs-larch');
    const got: string[][] = [];
    for (const s of steps) {
      ok(larch(s, sys(mine)));
      got.push(options(mine));
    }
    const proc = readFileSync('/proc/cmdline', 'utf8').trim().split(' ').filter((w) => w && !w.startsWith('BOOT_IMAGE=') && !w.startsWith('initrd='));
    expect(got[0][1].split(' ').slice(0, -1)).toEqual(proc);
    expect(got[2][1]).toMatch(/^FOO=BAZ FOO=BIF KEYWORD EMPTYLIST= ostree=\S+ FOO=BAR$/);
    expect(got[3][1]).toMatch(/^FOO=XXX KEYWORD EMPTYLIST= ostree=\S+ A=1 A=2 extra:arg$/);
    expect(got[4][1]).toMatch(/ extra:arg TESTARG=TESTVALUE$/);
    expect(got[4][0]).toMatch(/ TESTARG=TESTVALUE KEYWORD$/);
    if (HAVE_OSTREE) {
      const theirs = twin(base, 'kargs-ostree');
      for (const [i, s] of steps.entries()) {
        ok(ostree(s, sys(theirs)));
        expect(got[i]).toEqual(options(theirs));
      }
    }
  });

  it('instutil grub2-generate prints the GRUB menu entries ostree prints; selinux-ensure-labeled finds no policy', () => {
    const root = makeSysroot('grub');
    ok(larch(['admin', 'deploy', '--os=testos', '--karg=root=LABEL=MOO', 'testos:testos/buildmain/x86_64-runtime'], sys(root)));
    ok(larch(['admin', 'deploy', '--os=testos', 'testos:testos/buildmain/x86_64-runtime'], sys(root)));
    const grubEnv = { ...sys(root).env, GRUB2_BOOT_DEVICE_ID: 'abcd', GRUB2_PREPARE_ROOT_CACHE: "search --no-floppy --fs-uuid --set=root 'x y'" };
    const out = ok(larch(['admin', 'instutil', 'grub2-generate'], { env: grubEnv }));
    expect(out).toMatch(/^menuentry 'TestOS 42 [0-9.]+ \(ostree:0\)' --class gnu-linux --class gnu --class os --unrestricted 'ostree-0-abcd' \{\n/);
    expect(out.match(/^menuentry /gm)).toHaveLength(2);
    if (HAVE_OSTREE) expect(out).toBe(ok(ostree(['admin', 'instutil', 'grub2-generate'], { env: grubEnv })));
    expect(expectOneErrorLine(larch(['admin', 'instutil', 'grub2-generate'], sys(root)))).toContain('GRUB2_BOOT_DEVICE_ID');
    const label = ok(larch(['admin', 'instutil', 'selinux-ensure-labeled'], sys(root)));
    expect(label).toBe(`No SELinux policy found in deployment '${deployDir(root, 0)}'\n`);
    if (HAVE_OSTREE) expect(label).toBe(ok(ostree(['admin', 'instutil', 'selinux-ensure-labeled'], sys(root))));
    expect(expectUsageError(larch(['admin', 'instutil', 'nope'], sys(root)), 'larch admin instutil')).toBe('Unknown "admin instutil" subcommand \'nope\'');
  });

  it('OSTREE_SYSROOT_DEBUG=test-fifreeze stops a deploy before its commit point, with ostree\'s lines', () => {
    const base = makeSysroot('fifreeze');
    ok(larch(['admin', 'deploy', '--os=testos', 'testos:testos/buildmain/x86_64-runtime'], sys(base)));
    const failing = (root: string): RunOptions => ({ env: { ...sys(root).env, OSTREE_SYSROOT_DEBUG: 'mutable-deployments,test-fifreeze' } });
    const root = twin(base, 'fifreeze-larch');
    const before = status(root);
    const r = larch(['admin', 'deploy', '--os=testos', 'testos:testos/buildmain/x86_64-runtime'], failing(root));
    expect([r.code, r.stdout, r.stderr]).toEqual([1, 'Copying /etc changes: 0 modified, 0 removed, 0 added\n', 'fifreeze watchdog was run\nerror: Full sync: During fsfreeze-thaw: aborting due to test-fifreeze\n']);
    expect(status(root)).toBe(before);
    if (HAVE_OSTREE) {
      const theirs = twin(base, 'fifreeze-ostree');
      const o = ostree(['admin', 'deploy', '--os=testos', 'testos:testos/buildmain/x86_64-runtime'], failing(theirs));
      expect([o.code, o.stdout, o.stderr]).toEqual([r.code, r.stdout, r.stderr]);
    }
  });

  it('status --verify and unlock fail on a sysroot that is not booted, with ostree\'s messages and exit codes', () => {
    const root = makeSysroot('verify');
    const rev = ok(larch(['rev-parse', `--repo=${root}/ostree/repo`, 'testos:testos/buildmain/x86_64-runtime'])).trim();
    ok(larch(['admin', 'deploy', '--os=testos', rev], sys(root)));
    const cases: Array<[string[], string]> = [
      [['admin', 'status', '--verify'], 'Cannot verify deployment without remote'],
      [['admin', 'unlock'], 'Not currently booted into an OSTree system'],
      [['admin', 'unlock', '--hotfix'], 'Not currently booted into an OSTree system'],
      [['admin', 'unlock', '--hotfix', '--transient'], 'Not currently booted into an OSTree system'],
      [['admin', 'upgrade', '--os=testos', '--override-commit=zzz'], 'Invalid rev zzz'],
    ];
    for (const [args, message] of cases) {
      const r = larch(args, sys(root));
      expect(r.stdout).toBe(args.includes('status') ? status(root) : '');
      expect(r.stderr).toBe(`error: ${message}\n`);
      expect(r.code).toBe(1);
      if (HAVE_OSTREE) {
        const o = ostree(args, sys(root));
        expect([o.code, o.stderr, o.stdout]).toEqual([r.code, r.stderr, r.stdout]);
      }
    }
    const extra = larch(['admin', 'unlock', 'x'], sys(root));
    expect(extra.code).toBe(1);
    expect(extra.stderr.trimEnd().split('\n').pop()).toBe('error: This command takes no extra arguments');
  });

  it('a tree without /usr/etc deploys once; a merge with it fails as ostree\'s', () => {
    const bare = commit('3.0', { branch: 'testos/noetc', usrEtc: false });
    const root = makeSysroot('noetc');
    ok(larch(['pull', `--repo=${root}/ostree/repo`, 'testos', 'testos/noetc']));
    ok(larch(['admin', 'deploy', '--os=testos', 'testos:testos/noetc'], sys(root)));
    const first = deployDir(root, 0);
    const mine = larch(['admin', 'deploy', '--os=testos', 'testos:testos/noetc'], sys(root));
    expect(expectOneErrorLine(mine)).toBe(`During /etc merge: While computing configuration diff: Error when getting information for file \u201c${first}/usr/etc\u201d: No such file or directory`);
    expect(deployments(root).map((d) => d.checksum)).toEqual([bare]);
    // With /usr/etc in the merge deployment but none in the new tree, ostree fails later:
    const other = makeSysroot('noetc-2');
    ok(larch(['pull', `--repo=${other}/ostree/repo`, 'testos', 'testos/noetc']));
    ok(larch(['admin', 'deploy', '--os=testos', 'testos:testos/buildmain/x86_64-runtime'], sys(other)));
    const r = larch(['admin', 'deploy', '--os=testos', 'testos:testos/noetc'], sys(other));
    expect(r.stdout).toBe('Copying /etc changes: 0 modified, 0 removed, 0 added\n');
    expect(expectOneErrorLine(r)).toBe('During /etc merge: opendir(etc): No such file or directory');
    if (HAVE_OSTREE) {
      const theirs = twin(other, 'noetc-2-ostree');
      rmSync(join(theirs, 'ostree/deploy/testos/deploy', `${bare}.0`), { recursive: true, force: true });
      const o = ostree(['admin', 'deploy', '--os=testos', 'testos:testos/noetc'], sys(theirs));
      expect([o.code, o.stdout, o.stderr]).toEqual([r.code, r.stdout, r.stderr]);
      // the first case, with ostree: the same words around its /proc/self/fd path
      const theirs1 = twin(root, 'noetc-ostree');
      const o1 = ostree(['admin', 'deploy', '--os=testos', 'testos:testos/noetc'], sys(theirs1));
      expect(o1.code).toBe(1);
      expect(o1.stderr).toMatch(/^error: During \/etc merge: While computing configuration diff: Error when getting information for file \u201c.*\/usr\/etc\u201d: No such file or directory\n$/);
    }
  });
});

describe('larch admin status, signed commits', () => {
  const HAVE_GPG = spawnSync('gpg', ['--version']).status === 0;

  function gpg(home: string, ...args: string[]): string {
    const r = spawnSync('gpg', ['--homedir', home, '--batch', ...args], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`gpg ${args.join(' ')} failed: ${r.stderr}`);
    return r.stdout;
  }

  it('prints the GPG lines ostree prints under a deployment whose remote verifies, and --verify checks it', () => {
    if (!HAVE_GPG) {
      if (RUN_INTEROP) throw new Error('gpg is required for this test (CI=true): apt-get install -y gnupg');
      return;
    }
    const home = join(dir, 'gnupg');
    mkdirSync(home, { recursive: true, mode: 0o700 });
    gpg(home, '--passphrase', '', '--quick-gen-key', 'Larch Admin <admin@example.com>', 'ed25519', 'sign', 'never');
    const keyId = /^pub:[^:]*:[^:]*:[^:]*:([0-9A-F]{16}):/m.exec(gpg(home, '--list-keys', '--with-colons'))![1];
    const pub = join(dir, 'admin-pub.asc');
    writeFileSync(pub, gpg(home, '--armor', '--export', keyId));
    try {
      const t = join(dir, `tree${++n}`);
      mkdirSync(join(t, 'usr/lib/modules/3.6.0'), { recursive: true });
      mkdirSync(join(t, 'usr/etc'), { recursive: true });
      writeFileSync(join(t, 'usr/lib/modules/3.6.0/vmlinuz'), 'a kernel\n');
      writeFileSync(join(t, 'usr/etc/os-release'), 'PRETTY_NAME="TestOS 42"\n');
      ok(larch(['commit', `--repo=${osRepo}`, '-b', 'testos/signed', '--add-metadata-string=version=9', `--gpg-sign=${keyId}`, `--gpg-homedir=${home}`, `--tree=dir=${t}`]));
      const root = join(dir, 'signed');
      mkdirSync(root);
      roots.push(root);
      ok(larch(['admin', 'init-fs', root]));
      ok(larch(['admin', 'os-init', `--sysroot=${root}`, 'testos']));
      ok(larch(['remote', 'add', `--repo=${root}/ostree/repo`, `--gpg-import=${pub}`, 'testos', `file://${osRepo}`]));
      ok(larch(['pull', `--repo=${root}/ostree/repo`, 'testos', 'testos/signed']));
      ok(larch(['admin', 'deploy', '--os=testos', 'testos:testos/signed'], sys(root)));
      const text = status(root);
      expect(text).toMatch(new RegExp(`^    GPG: Signature made .* using EdDSA key ID ${keyId}\n    GPG: Good signature from "Larch Admin <admin@example.com>"\n$`, 'm'));
      const verified = ok(larch(['admin', 'status', '--verify'], sys(root)));
      expect(verified).toMatch(new RegExp(`\nGPG: Signature made .* using EdDSA key ID ${keyId}\nGPG: Good signature from "Larch Admin <admin@example.com>"\n\n$`));
      if (HAVE_OSTREE) {
        expect(text).toBe(ok(ostree(['admin', 'status'], sys(root))));
        expect(verified).toBe(ok(ostree(['admin', 'status', '--verify'], sys(root))));
      }
    } finally {
      spawnSync('gpgconf', ['--homedir', home, '--kill', 'gpg-agent']);
    }
  });
});

/** The `umount` of a test's overlay (lazy, so a busy mount never blocks the teardown). */
function umount(target: string): void {
  spawnSync('umount', ['-l', target]);
}

describe('larch admin unlock on a running system (--booted-root)', () => {
  // The run-state flags live in the host's /run, keyed by CSUM.SERIAL (the same in every sysroot
  // here): each test removes what it made.
  const runstate = (name: string): string => join('/run/ostree/deployment-state', name);
  afterAll(() => {
    for (const p of ['/run/ostree/deployment-state', '/run/ostree']) {
      try {
        if (readdirSync(p).length === 0) rmSync(p, { recursive: true });
      } catch {
        /* not there */
      }
    }
  });

  it('development: a writable overlay on /usr, gone with the mount; status says Unlocked', () => {
    const root = makeSysroot('unlock-dev');
    ok(larch(['admin', 'deploy', '--os=testos', 'testos:testos/buildmain/x86_64-runtime'], sys(root)));
    const booted = deployDir(root, 0);
    const { name, version } = deployments(root)[0];
    const r = larch(['admin', 'unlock', `--booted-root=${booted}`], sys(root));
    try {
      expect(r.stderr).toBe('');
      expect(r.stdout).toBe('Development mode enabled.  A writable overlayfs is now mounted on /usr.\nAll changes there will be discarded on reboot.\n');
      writeFileSync(join(booted, 'usr/hotfixed'), 'x\n');
      const flag = readFileSync(join('/run/ostree/deployment-state', name, 'unlocked-development'), 'utf8');
      expect(existsSync(join(flag, 'upper/hotfixed'))).toBe(true);
      expect(status(root, { env: { ...sys(root).env } })).not.toContain('Unlocked');
      expect(ok(larch(['admin', 'status', `--booted-root=${booted}`], sys(root)))).toBe(`* testos ${name}\n    Version: ${version}\n    Unlocked: development\n    origin refspec: testos:testos/buildmain/x86_64-runtime\n`);
      expect(expectOneErrorLine(larch(['admin', 'unlock', `--booted-root=${booted}`], sys(root)))).toBe('Deployment is already in unlocked state: development');
    } finally {
      umount(join(booted, 'usr'));
      rmSync(runstate(name), { recursive: true, force: true });
    }
    expect(existsSync(join(booted, 'usr/hotfixed'))).toBe(false);
  });

  it('hotfix: an unmodified clone becomes the rollback, the origin says unlocked=hotfix', () => {
    const root = makeSysroot('unlock-hotfix');
    ok(larch(['admin', 'deploy', '--os=testos', 'testos:testos/buildmain/x86_64-runtime'], sys(root)));
    const booted = deployDir(root, 0);
    const before = deployments(root)[0];
    const r = larch(['admin', 'unlock', '--hotfix', `--booted-root=${booted}`], sys(root));
    try {
      expect(r.stderr).toBe('');
      expect(r.stdout).toContain('Hotfix mode enabled.  A writable overlayfs is now mounted on /usr\nfor this booted deployment.  A non-hotfixed clone has been created\nas the non-default rollback target.\n');
      const after = deployments(root);
      expect(after.map((d) => [d.checksum, d.name, d.unlocked])).toEqual([
        [before.checksum, before.name, 'hotfix'],
        [before.checksum, `${before.checksum}.1`, 'none'],
      ]);
      expect(readFileSync(join(root, 'ostree/deploy/testos/deploy', `${before.name}.origin`), 'utf8')).toMatch(/^unlocked=hotfix$/m);
      expect(existsSync(join(booted, '.usr-ovl-upper'))).toBe(true);
      writeFileSync(join(booted, 'usr/hotfixed'), 'x\n');
      expect(existsSync(join(booted, '.usr-ovl-upper/hotfixed'))).toBe(true);
    } finally {
      umount(join(booted, 'usr'));
    }
  });

  it('says in one line when overlayfs cannot be mounted', () => {
    const root = makeSysroot('unlock-noperm');
    ok(larch(['admin', 'deploy', '--os=testos', 'testos:testos/buildmain/x86_64-runtime'], sys(root)));
    const booted = deployDir(root, 0);
    // A user namespace keeps uid 0 (so the sysroot stays writable) without the right to mount.
    const r = spawnSync('unshare', ['--user', '--map-root-user', process.execPath, CLI, 'admin', 'unlock', `--booted-root=${booted}`], { encoding: 'utf8', env: { ...process.env, ...sys(root).env } });
    if (r.error) throw r.error;
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe('error: Failed overlayfs mount: Operation not permitted\n');
    expect(r.status).toBe(1);
    expect(existsSync(runstate(deployments(root)[0].name))).toBe(false);
  });
});
