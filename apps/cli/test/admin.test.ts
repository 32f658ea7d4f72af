/**
 * `larch admin …` end to end through the built CLI: the ostree command forms, the messages
 * ostree prints, `status` (text equal to ostree's, and --json), `deploy --dry-run` with the /etc
 * merge preview, kargs, pin, set-default, rollback, upgrade, and one-line errors.
 */
import { readFileSync, readdirSync, writeFileSync, mkdirSync, symlinkSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setImmutable } from '@larch/sysroot';
import { expectOneErrorLine, expectUsageError, HAVE_OSTREE, larch, ok, ostree, scratch } from './helpers.js';

let dir = '';
let cleanup: () => Promise<void> = async () => undefined;
let root = '';
let repo = '';
const env = { OSTREE_SYSROOT_DEBUG: 'mutable-deployments' };
let n = 0;

function commit(version: string, etc: Record<string, string>, kernel = 'a kernel\n', into = repo, branch = 'cli/os'): string {
  const t = join(dir, `tree${++n}`);
  mkdirSync(join(t, 'usr/lib/modules/5.0.0'), { recursive: true });
  mkdirSync(join(t, 'usr/etc'), { recursive: true });
  writeFileSync(join(t, 'usr/lib/modules/5.0.0/vmlinuz'), kernel);
  writeFileSync(join(t, 'usr/lib/modules/5.0.0/initramfs.img'), 'an initramfs\n');
  writeFileSync(join(t, 'usr/etc/os-release'), 'PRETTY_NAME="CLI OS"\n');
  for (const [k, v] of Object.entries(etc)) writeFileSync(join(t, 'usr/etc', k), v);
  symlinkSync('usr/lib', join(t, 'lib'));
  return ok(larch(['commit', `--repo=${into}`, '-b', branch, `--add-metadata-string=version=${version}`, `--tree=dir=${t}`])).trim();
}

function deployDir(i: number): string {
  const s = JSON.parse(ok(larch(['admin', 'status', `--sysroot=${root}`, '--json']))) as { deployments: Array<{ stateroot: string; name: string }> };
  const d = s.deployments[i];
  return join(root, 'ostree/deploy', d.stateroot, 'deploy', d.name);
}

beforeAll(async () => {
  ({ dir, cleanup } = await scratch('larch-cli-admin-'));
  root = join(dir, 'sysroot');
  repo = join(root, 'ostree/repo');
  mkdirSync(root);
});
afterAll(async () => {
  for (const os of ['cli']) {
    try {
      for (const name of readdirSync(join(root, 'ostree/deploy', os, 'deploy'))) setImmutable(join(root, 'ostree/deploy', os, 'deploy', name), false);
    } catch {
      /* nothing deployed */
    }
  }
  await cleanup();
});

describe('larch admin', () => {
  it('init-fs, os-init and a first deploy print what ostree prints', () => {
    ok(larch(['admin', 'init-fs', root]));
    expect(ok(larch(['admin', 'os-init', `--sysroot=${root}`, 'cli']))).toBe('ostree/deploy/cli initialized as OSTree root\n');
    expect(ok(larch(['admin', 'status', `--sysroot=${root}`]))).toBe('No deployments.\n');
    commit('1.0', { 'a.conf': 'a\n', 'b.conf': 'b\n' });
    const out = ok(larch(['admin', 'deploy', `--sysroot=${root}`, '--os=cli', '--karg=root=LABEL=ROOT', '--karg=quiet', 'cli/os'], { env }));
    expect(out).toBe("Relabeling /var (no stamp file 'var/.ostree-selabeled' found)\nBootloader updated; bootconfig swap: yes; bootversion: boot.1.1, deployment count change: 1\n");
    // --sysroot before the sub-verb works too
    expect(ok(larch(['admin', `--sysroot=${root}`, 'status']))).toContain('Version: 1.0');
  });

  it('status text equals ostree admin status; --json carries the details', () => {
    const text = ok(larch(['admin', 'status', `--sysroot=${root}`]));
    if (HAVE_OSTREE) expect(text).toBe(ok(ostree(['admin', 'status', `--sysroot=${root}`])));
    const s = JSON.parse(ok(larch(['admin', 'status', `--sysroot=${root}`, '--json'])));
    expect(s.bootversion).toBe(1);
    expect(s.deployments).toHaveLength(1);
    expect(s.deployments[0]).toMatchObject({ index: 0, stateroot: 'cli', deployserial: 0, version: '1.0', pinned: false, refspec: 'cli/os', kargs: 'root=LABEL=ROOT quiet' });
  });

  it('deploy --dry-run previews the /etc merge and changes nothing', () => {
    const d0 = deployDir(0);
    writeFileSync(join(d0, 'etc/a.conf'), 'local a\n');
    unlinkSync(join(d0, 'etc/b.conf'));
    writeFileSync(join(d0, 'etc/mine.conf'), 'mine\n');
    const c2 = commit('2.0', { 'a.conf': 'a2\n', 'b.conf': 'b\n' });
    const before = ok(larch(['admin', 'status', `--sysroot=${root}`]));
    const out = ok(larch(['admin', 'deploy', `--sysroot=${root}`, '--os=cli', '--dry-run', 'cli/os']));
    expect(out).toContain(`Would deploy cli ${c2}.0`);
    expect(out).toContain('Kernel arguments: root=LABEL=ROOT quiet');
    expect(out).toContain('/etc merge: 1 modified, 1 removed, 1 added');
    expect(out).toContain('  M    /etc/a.conf  (conflict: default-changed)');
    expect(out).toContain('  D    /etc/b.conf\n');
    expect(out).toContain('  A    /etc/mine.conf\n');
    const j = JSON.parse(ok(larch(['admin', 'deploy', `--sysroot=${root}`, '--os=cli', '--dry-run', '--json', 'cli/os'])));
    expect(j.commit).toBe(c2);
    expect(j.etc.entries.map((e: { path: string }) => e.path)).toEqual(['a.conf', 'b.conf', 'mine.conf']);
    expect(ok(larch(['admin', 'status', `--sysroot=${root}`]))).toBe(before);
  });

  it('deploy merges /etc and keeps the previous deployment as rollback', () => {
    const out = ok(larch(['admin', 'deploy', `--sysroot=${root}`, '--os=cli', 'cli/os'], { env }));
    expect(out).toContain('Copying /etc changes: 1 modified, 1 removed, 1 added\n');
    expect(out).toContain('bootconfig swap: yes; bootversion: boot.0.1, deployment count change: 1');
    const d0 = deployDir(0);
    expect(readFileSync(join(d0, 'etc/a.conf'), 'utf8')).toBe('local a\n');
    expect(readdirSync(join(d0, 'etc')).sort()).toEqual(['a.conf', 'mine.conf', 'os-release']);
  });

  it('config-diff lists /etc against its defaults as ostree admin config-diff does', () => {
    const d0 = deployDir(0);
    mkdirSync(join(d0, 'etc/extra.d'));
    writeFileSync(join(d0, 'etc/extra.d/one.conf'), '1\n');
    const out = ok(larch(['admin', 'config-diff', `--sysroot=${root}`, '--os=cli']));
    expect(out).toBe('M    a.conf\nD    b.conf\nA    extra.d\nA    extra.d/one.conf\nA    mine.conf\n');
    // ostree lists each group in directory order; the groups and their lines are the same.
    if (HAVE_OSTREE) {
      const theirs = ok(ostree(['admin', 'config-diff', `--sysroot=${root}`, '--os=cli']));
      const groups = (t: string): string[][] => ['M', 'D', 'A'].map((g) => t.split('\n').filter((l) => l.startsWith(`${g} `)).sort());
      expect(groups(out)).toEqual(groups(theirs));
      expect(theirs.split('\n').filter(Boolean).map((l) => l[0]).join('')).toBe('MDAAA');
    }
    const j = JSON.parse(ok(larch(['admin', 'config-diff', `--sysroot=${root}`, '--os=cli', '--json'])));
    expect(j).toMatchObject({ stateroot: 'cli', modified: ['a.conf'], removed: ['b.conf'], added: ['extra.d', 'extra.d/one.conf', 'mine.conf'] });
    expect(expectOneErrorLine(larch(['admin', 'config-diff', `--sysroot=${root}`]))).toBe('Not currently booted into an OSTree system and no --os= argument given');
    expect(expectOneErrorLine(larch(['admin', 'config-diff', `--sysroot=${root}`, '--os=nope']))).toBe("No deployment for OS 'nope'");
  });

  it('kargs shows and edits the kernel command line', () => {
    expect(ok(larch(['admin', 'kargs', `--sysroot=${root}`]))).toBe('root=LABEL=ROOT quiet\n');
    const out = ok(larch(['admin', 'kargs', `--sysroot=${root}`, '--append=console=ttyS0', '--delete=quiet', '--replace=root=LABEL=NEW']));
    expect(out.split('\n').slice(-2)[0]).toBe('root=LABEL=NEW console=ttyS0');
    const entries = readdirSync(join(root, 'boot/loader/entries'));
    const text = entries.map((e) => readFileSync(join(root, 'boot/loader/entries', e), 'utf8')).join('');
    expect(text).toContain('options root=LABEL=NEW console=ttyS0 ostree=/ostree/boot.');
    expect(JSON.parse(ok(larch(['admin', 'kargs', `--sysroot=${root}`, '--deployment-index=1', '--json']))).kargs).toBe('root=LABEL=ROOT quiet');
  });

  it('pin, set-default and rollback', () => {
    expect(ok(larch(['admin', 'pin', `--sysroot=${root}`, '1']))).toBe('Deployment 1 is now pinned\n');
    expect(ok(larch(['admin', 'status', `--sysroot=${root}`]))).toContain('Pinned: yes');
    expect(ok(larch(['admin', 'pin', `--sysroot=${root}`, '--unpin', '1']))).toBe('Deployment 1 is now unpinned\n');
    const s0 = JSON.parse(ok(larch(['admin', 'status', `--sysroot=${root}`, '--json']))).deployments.map((d: { name: string }) => d.name);
    ok(larch(['admin', 'set-default', `--sysroot=${root}`, '1'], { env }));
    const s1 = JSON.parse(ok(larch(['admin', 'status', `--sysroot=${root}`, '--json']))).deployments.map((d: { name: string }) => d.name);
    expect(s1).toEqual([s0[1], s0[0]]);
    const out = ok(larch(['admin', 'rollback', `--sysroot=${root}`], { env }));
    expect(out).toContain(`Moving '${s0[0]}' to be first deployment`);
    const s2 = JSON.parse(ok(larch(['admin', 'status', `--sysroot=${root}`, '--json']))).deployments.map((d: { name: string }) => d.name);
    expect(s2).toEqual(s0);
    if (HAVE_OSTREE) expect(ok(ostree(['admin', 'status', `--sysroot=${root}`]))).toBe(ok(larch(['admin', 'status', `--sysroot=${root}`])));
  });

  it('upgrade deploys the origin ref when it moved, and says so when it did not', () => {
    expect(ok(larch(['admin', 'upgrade', `--sysroot=${root}`], { env }))).toBe('No update available.\n');
    const c3 = commit('3.0', { 'a.conf': 'a3\n' }, 'kernel 3\n');
    ok(larch(['admin', 'upgrade', `--sysroot=${root}`], { env }));
    const s = JSON.parse(ok(larch(['admin', 'status', `--sysroot=${root}`, '--json'])));
    expect(s.deployments[0].checksum).toBe(c3);
    expect(s.deployments[0].refspec).toBe('cli/os');
  });

  it('undeploy and cleanup', () => {
    const s = JSON.parse(ok(larch(['admin', 'status', `--sysroot=${root}`, '--json'])));
    const out = ok(larch(['admin', 'undeploy', `--sysroot=${root}`, '1'], { env }));
    expect(out).toContain(`Deleted deployment ${s.deployments[1].name}\n`);
    ok(larch(['admin', 'cleanup', `--sysroot=${root}`]));
    expect(readdirSync(join(root, 'ostree/deploy/cli/deploy')).sort()).toEqual([s.deployments[0].name, `${s.deployments[0].name}.origin`].sort());
  });

  it('fails with one error line', () => {
    expect(expectOneErrorLine(larch(['admin', 'deploy', `--sysroot=${root}`, 'cli/os']))).toBe('Not currently booted into an OSTree system and no --os= argument given');
    expect(expectOneErrorLine(larch(['admin', 'undeploy', `--sysroot=${root}`, '7']))).toBe('Out of range deployment index 7, expected < 1');
    expect(expectOneErrorLine(larch(['admin', 'deploy', `--sysroot=${root}`, '--os=cli', '--stage', 'cli/os']))).toBe('Cannot stage deployment: Not currently booted into an OSTree system');
    expect(expectOneErrorLine(larch(['admin', 'deploy', `--sysroot=${root}`, '--os=nope', 'cli/os']))).toContain('No such stateroot: nope');
    expect(expectOneErrorLine(larch(['admin', 'deploy', `--sysroot=${root}`, '--os=cli', 'no/such/ref']))).toContain('no/such/ref');
    expect(expectOneErrorLine(larch(['admin', 'status', `--sysroot=${join(dir, 'nothing')}`]))).toContain('not an OSTree sysroot');
    expect(expectOneErrorLine(larch(['admin', 'undeploy', `--sysroot=${root}`, 'x']))).toContain('INDEX');
    expect(expectUsageError(larch(['admin', 'set-defaults', '1']), 'larch admin')).toBe('Unknown "admin" subcommand \'set-defaults\'');
    expect(expectUsageError(larch(['admin']), 'larch admin')).toBe('No "admin" subcommand specified');
    expect(expectOneErrorLine(larch(['admin', 'os-init', `--sysroot=${root}`, 'cli']))).toBe('Creating ostree/deploy/cli: File exists');
  });
});

describe('larch admin upgrade and switch with a remote origin', () => {
  let sr = '';
  let pub = '';
  const status = (): { deployments: Array<{ checksum: string; refspec: string; version: string }> } => JSON.parse(ok(larch(['admin', 'status', `--sysroot=${sr}`, '--json'])));
  const sameAsOstree = (): void => {
    if (HAVE_OSTREE) expect(ok(ostree(['admin', 'status', `--sysroot=${sr}`]))).toBe(ok(larch(['admin', 'status', `--sysroot=${sr}`])));
  };

  beforeAll(() => {
    sr = join(dir, 'remote-sysroot');
    pub = join(dir, 'pub');
    mkdirSync(sr);
    ok(larch(['init', `--repo=${pub}`, '--mode=archive']));
    commit('1.0', { 'a.conf': 'a\n' }, 'a kernel\n', pub, 'os/stable');
    commit('1.0-testing', { 'a.conf': 'a\n', 't.conf': 't\n' }, 'a kernel\n', pub, 'os/testing');
    ok(larch(['admin', 'init-fs', sr]));
    ok(larch(['admin', 'os-init', `--sysroot=${sr}`, 'rem']));
    ok(larch(['remote', 'add', `--repo=${sr}/ostree/repo`, '--no-gpg-verify', 'pub', `file://${pub}`]));
    ok(larch(['pull', `--repo=${sr}/ostree/repo`, 'pub', 'os/stable']));
    ok(larch(['admin', 'deploy', `--sysroot=${sr}`, '--os=rem', 'pub:os/stable'], { env }));
  });
  afterAll(() => {
    try {
      for (const name of readdirSync(join(sr, 'ostree/deploy/rem/deploy'))) setImmutable(join(sr, 'ostree/deploy/rem/deploy', name), false);
    } catch {
      /* nothing deployed */
    }
  });

  it('upgrade pulls the origin ref from its remote, then deploys it; --pull-only and --deploy-only split the two', () => {
    expect(ok(larch(['admin', 'upgrade', `--sysroot=${sr}`, '--os=rem'], { env }))).toBe('No update available.\n');
    const c2 = commit('2.0', { 'a.conf': 'a2\n' }, 'a kernel\n', pub, 'os/stable');
    ok(larch(['admin', 'upgrade', `--sysroot=${sr}`, '--os=rem'], { env }));
    expect(status().deployments[0]).toMatchObject({ checksum: c2, refspec: 'pub:os/stable', version: '2.0' });
    sameAsOstree();

    const c3 = commit('3.0', { 'a.conf': 'a3\n' }, 'a kernel\n', pub, 'os/stable');
    expect(ok(larch(['admin', 'upgrade', `--sysroot=${sr}`, '--os=rem', '--pull-only'], { env }))).toBe('');
    expect(status().deployments[0].checksum).toBe(c2);
    expect(ok(larch(['rev-parse', `--repo=${sr}/ostree/repo`, 'pub:os/stable'])).trim()).toBe(c3);
    ok(larch(['admin', 'upgrade', `--sysroot=${sr}`, '--os=rem', '--deploy-only'], { env }));
    expect(status().deployments[0].checksum).toBe(c3);
    expect(expectOneErrorLine(larch(['admin', 'upgrade', `--sysroot=${sr}`, '--pull-only', '--deploy-only']))).toBe('Cannot simultaneously specify --pull-only and --deploy-only');
  });

  it('switch pulls and deploys another ref of the same remote, drops the old ref, and refuses the same ref', () => {
    const testing = ok(larch(['rev-parse', `--repo=${pub}`, 'os/testing'])).trim();
    const out = ok(larch(['admin', 'switch', `--sysroot=${sr}`, '--os=rem', 'os/testing'], { env }));
    expect(out).toContain("Deleting ref 'pub:os/stable'\n");
    expect(status().deployments[0]).toMatchObject({ checksum: testing, refspec: 'pub:os/testing' });
    const d = status().deployments[0] as unknown as { name: string };
    expect(readFileSync(join(sr, 'ostree/deploy/rem/deploy', `${d.name}.origin`), 'utf8')).toBe('[origin]\nrefspec=pub:os/testing\n');
    expect(ok(larch(['refs', `--repo=${sr}/ostree/repo`])).split('\n')).not.toContain('pub:os/stable');
    sameAsOstree();
    expect(expectOneErrorLine(larch(['admin', 'switch', `--sysroot=${sr}`, '--os=rem', 'pub:os/testing']))).toBe('Old and new refs are equal: pub:os/testing');
    expect(expectOneErrorLine(larch(['admin', 'switch', `--sysroot=${sr}`, '--os=rem', 'nope:os/testing']))).toContain('nope');
  });

  it('set-origin adds the remote and points a deployment at it; ostree and larch read each other\'s origin files', () => {
    ok(larch(['admin', 'set-origin', `--sysroot=${sr}`, '--index=0', '--set=gpg-verify=false', 'mirror', `file://${pub}`]));
    expect(status().deployments[0].refspec).toBe('mirror:os/testing');
    const config = readFileSync(join(sr, 'ostree/repo/config'), 'utf8');
    expect(config).toContain(`[remote "mirror"]\nurl=file://${pub}\ngpg-verify=false\n`);
    // An existing remote is left as it is.
    ok(larch(['admin', 'set-origin', `--sysroot=${sr}`, '--index=0', 'mirror', 'file:///elsewhere', 'os/stable']));
    expect(readFileSync(join(sr, 'ostree/repo/config'), 'utf8')).toBe(config);
    expect(status().deployments[0].refspec).toBe('mirror:os/stable');
    if (HAVE_OSTREE) {
      ok(ostree(['admin', 'set-origin', `--sysroot=${sr}`, '--index=1', 'pub', `file://${pub}`, 'os/testing']));
      expect(status().deployments[1].refspec).toBe('pub:os/testing');
      sameAsOstree();
    }
    // The next upgrade follows the new origin.
    ok(larch(['admin', 'upgrade', `--sysroot=${sr}`, '--os=rem'], { env }));
    expect(status().deployments[0]).toMatchObject({ refspec: 'mirror:os/stable', checksum: ok(larch(['rev-parse', `--repo=${pub}`, 'os/stable'])).trim() });
    expect(expectOneErrorLine(larch(['admin', 'set-origin', `--sysroot=${sr}`, 'x', 'file:///x']))).toBe('Not currently booted into an OSTree system');
    // A branch that would break the origin file is refused before anything is written.
    const before = readFileSync(join(sr, 'ostree/repo/config'), 'utf8');
    expect(larch(['admin', 'set-origin', `--sysroot=${sr}`, '--index=0', 'mirror', `file://${pub}`, 'os/x\nrefspec=evil']).code).toBe(1);
    expect(status().deployments[0].refspec).toBe('mirror:os/stable');
    expect(readFileSync(join(sr, 'ostree/repo/config'), 'utf8')).toBe(before);
  });
});
