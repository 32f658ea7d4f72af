/**
 * A sysroot managed by an unprivileged user: init-fs, os-init, two deploys, undeploy and status
 * through the CLI run as `nobody` (via setpriv) on a directory that user owns. No chown is needed
 * and the immutable attribute is skipped, as OSTree does.
 */
import { spawnSync } from 'node:child_process';
import { chownSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { larchCliPath, tmpDir, type TmpDir } from '@larch/test-fixtures';

const IS_ROOT = process.getuid?.() === 0;
const HAVE_SETPRIV = spawnSync('setpriv', ['--version'], { stdio: 'ignore' }).status === 0;
const NOBODY = 65534;

function asNobody(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const cmd = IS_ROOT ? ['setpriv', `--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', process.execPath] : [process.execPath];
  const r = spawnSync(cmd[0], [...cmd.slice(1), larchCliPath(), ...args], { encoding: 'utf8', env: { ...process.env, HOME: '/tmp' } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function chownTree(p: string): void {
  chownSync(p, NOBODY, NOBODY);
  for (const e of readdirSync(p, { withFileTypes: true })) {
    const q = path.join(p, e.name);
    if (e.isDirectory()) chownTree(q);
    else chownSync(q, NOBODY, NOBODY);
  }
}

(IS_ROOT && !HAVE_SETPRIV ? describe.skip : describe)('without root', () => {
  let work: TmpDir;
  beforeAll(async () => {
    work = await tmpDir('larch-sysroot-user-');
  });
  afterAll(async () => {
    await work?.cleanup();
  });

  it('deploys, redeploys, undeploys', () => {
    const root = work.join('sysroot');
    const tree = work.join('tree');
    mkdirSync(root);
    mkdirSync(path.join(tree, 'usr/lib/modules/1.0'), { recursive: true });
    mkdirSync(path.join(tree, 'usr/etc'), { recursive: true });
    writeFileSync(path.join(tree, 'usr/lib/modules/1.0/vmlinuz'), 'k\n');
    writeFileSync(path.join(tree, 'usr/lib/modules/1.0/initramfs.img'), 'i\n');
    writeFileSync(path.join(tree, 'usr/etc/os-release'), 'ID=useros\n');
    if (IS_ROOT) {
      chownSync(work.path, NOBODY, NOBODY);
      chownTree(root);
      chownTree(tree);
    }
    const ok = (args: string[]): string => {
      const r = asNobody(args);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0);
      return r.stdout;
    };
    ok(['admin', 'init-fs', root]);
    ok(['admin', 'os-init', `--sysroot=${root}`, 'useros']);
    ok(['commit', `--repo=${path.join(root, 'ostree/repo')}`, '-b', 'u/main', `--tree=dir=${tree}`]);
    ok(['admin', 'deploy', `--sysroot=${root}`, '--os=useros', '--karg=root=X', 'u/main']);
    writeFileSync(path.join(tree, 'usr/etc/extra'), 'e\n');
    if (IS_ROOT) chownSync(path.join(tree, 'usr/etc/extra'), NOBODY, NOBODY);
    ok(['commit', `--repo=${path.join(root, 'ostree/repo')}`, '-b', 'u/main', `--tree=dir=${tree}`]);
    ok(['admin', 'deploy', `--sysroot=${root}`, '--os=useros', 'u/main']);
    const s = JSON.parse(ok(['admin', 'status', `--sysroot=${root}`, '--json']));
    expect(s.deployments).toHaveLength(2);
    expect(s.deployments[1].kargs).toBe('root=X');
    expect(ok(['admin', 'undeploy', `--sysroot=${root}`, '1'])).toContain('Deleted deployment');
    expect(readdirSync(path.join(root, 'ostree/deploy/useros/deploy'))).toHaveLength(2);
  });
});
