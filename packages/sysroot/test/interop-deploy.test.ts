/**
 * Larch and the real `ostree admin` run the same sequence of admin commands on two sysroots whose
 * repositories hold the same commits; after every step the boot state (BLS entries, backend
 * config, /boot/ostree, the boot.B.S farms, the loader symlinks, origin files, ostree/B/S/I refs)
 * must be byte-for-byte identical, the printed messages equal, and `ostree admin status` must
 * print the same for both. One run per bootloader backend (none, syslinux, uboot, grub2 with a
 * generator script given through OSTREE_GRUB2_EXEC, as OSTree's own tests do: grub-mkconfig is
 * not installed here).
 */
import { chmodSync, mkdirSync, readFileSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compareTrees, formatDifferences, interopDescribe, larch, ostree, requireOstree, tmpDir, type TmpDir } from '@larch/test-fixtures';
import { Sysroot } from '../src/index.js';
import { commitOs, mutating, removeSysroot, snapshot } from './helpers.js';

const describeInterop = interopDescribe(describe);

const GENERATOR = `#!/bin/sh
# Minimal grub.cfg generator over the BLS entries, in the manner of ostree-grub-generator.
out="$2"
dir="$(dirname "$out")/entries"
{
  echo "# bootversion $_OSTREE_GRUB2_BOOTVERSION"
  for f in $(ls "$dir" | sort); do
    title=$(sed -n 's/^title //p' "$dir/$f")
    linux=$(sed -n 's/^linux //p' "$dir/$f")
    initrd=$(sed -n 's/^initrd //p' "$dir/$f")
    options=$(sed -n 's/^options //p' "$dir/$f")
    echo "menuentry '$title' {"
    echo "  linux $linux $options"
    [ -n "$initrd" ] && echo "  initrd $initrd"
    echo "}"
  done
} > "$out"
`;

type Tool = 'larch' | 'ostree';

async function tool(t: Tool, args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return t === 'larch' ? larch(args, { env }) : ostree(args, { env });
}

function setupBackend(sysroot: string, backend: string): void {
  switch (backend) {
    case 'syslinux':
      mkdirSync(path.join(sysroot, 'boot/loader.0'), { recursive: true });
      symlinkSync('loader.0', path.join(sysroot, 'boot/loader'));
      writeFileSync(path.join(sysroot, 'boot/loader/syslinux.cfg'), 'PROMPT 1\nTIMEOUT 50\nDEFAULT ostree\n\nLABEL other\n\tKERNEL /vmlinuz-other\n\tAPPEND root=/dev/sda1\n');
      mkdirSync(path.join(sysroot, 'boot/syslinux'));
      symlinkSync('../loader/syslinux.cfg', path.join(sysroot, 'boot/syslinux/syslinux.cfg'));
      break;
    case 'uboot':
      mkdirSync(path.join(sysroot, 'boot/loader.0'), { recursive: true });
      symlinkSync('loader.0', path.join(sysroot, 'boot/loader'));
      writeFileSync(path.join(sysroot, 'boot/loader/uEnv.txt'), '');
      symlinkSync('loader/uEnv.txt', path.join(sysroot, 'boot/uEnv.txt'));
      break;
    case 'grub2':
      mkdirSync(path.join(sysroot, 'boot/grub2'), { recursive: true });
      symlinkSync('../loader/grub.cfg', path.join(sysroot, 'boot/grub2/grub.cfg'));
      break;
  }
}

// syslinux and uboot are found by `auto` probing; none and grub2 are configured explicitly.
const CONFIG: Record<string, string> = { none: 'none', syslinux: 'auto', uboot: 'auto', grub2: 'grub2' };

for (const backend of ['none', 'syslinux', 'uboot', 'grub2']) {
  describeInterop(`admin deploy sequence, bootloader ${backend} (sysroot.bootloader=${CONFIG[backend]}): larch and ostree write the same files`, () => {
    let work: TmpDir;
    const roots: Record<Tool, string> = { larch: '', ostree: '' };
    const env: Record<string, string> = {};
    const repos = (): string[] => [path.join(roots.larch, 'ostree/repo'), path.join(roots.ostree, 'ostree/repo')];

    beforeAll(async () => {
      requireOstree();
      work = await tmpDir('larch-sysroot-interop-');
      if (backend === 'grub2') {
        const gen = work.join('ostree-grub-generator');
        writeFileSync(gen, GENERATOR);
        chmodSync(gen, 0o755);
        env.OSTREE_GRUB2_EXEC = gen;
      }
      for (const t of ['larch', 'ostree'] as Tool[]) {
        roots[t] = work.join(t);
        mkdirSync(roots[t]);
      }
    });
    afterAll(async () => {
      for (const t of ['larch', 'ostree'] as Tool[]) if (roots[t]) await removeSysroot(roots[t]);
      await work?.cleanup();
    });

    /** Run the same command in both sysroots; compare messages, boot state and status. */
    async function both(args: (root: string) => string[], opts: { sameOutput?: boolean } = {}): Promise<void> {
      const out: Record<Tool, string> = { larch: '', ostree: '' };
      for (const t of ['ostree', 'larch'] as Tool[]) {
        const r = await tool(t, args(roots[t]), env);
        expect(r.code, `${t} ${args(roots[t]).join(' ')}\n${r.stderr}`).toBe(0);
        out[t] = r.stdout.replace(/\u00a0/g, ' ');
      }
      if (opts.sameOutput !== false) expect(out.larch).toBe(out.ostree);
      expect(snapshot(roots.larch).replaceAll(roots.larch, 'SYSROOT')).toBe(snapshot(roots.ostree).replaceAll(roots.ostree, 'SYSROOT'));
      const st = await Promise.all([roots.larch, roots.ostree].map((r) => ostree(['admin', 'status', `--sysroot=${r}`])));
      expect(st[0].stderr).toBe('');
      expect(st[0].stdout).toBe(st[1].stdout);
      const ls = await larch(['admin', 'status', `--sysroot=${roots.larch}`]);
      expect(ls.stdout).toBe(st[0].stdout);
    }

    it('init-fs, os-init and the backend setup', async () => {
      await both((r) => ['admin', 'init-fs', r]);
      await both((r) => ['admin', 'os-init', `--sysroot=${r}`, 'testos']);
      for (const t of ['larch', 'ostree'] as Tool[]) {
        const r = await ostree(['config', `--repo=${path.join(roots[t], 'ostree/repo')}`, 'set', 'sysroot.bootloader', CONFIG[backend]]);
        expect(r.code).toBe(0);
        setupBackend(roots[t], backend);
        if (backend === 'none') {
          const b = await ostree(['config', `--repo=${path.join(roots[t], 'ostree/repo')}`, 'set', 'sysroot.bls-append-except-default', 'grub_users=""']);
          expect(b.code).toBe(0);
        }
      }
    });

    it('first deploy with kargs', async () => {
      await commitOs(work.path, repos(), { version: '1.0.9', etc: { removeme: 'x\n', 'dir/inner': 'i\n' } });
      await both((r) => ['admin', 'deploy', `--sysroot=${r}`, '--os=testos', '--karg=root=LABEL=MOO', '--karg=quiet', 'testos/main']);
    });

    it('second deploy merges /etc exactly as ostree does', async () => {
      for (const t of ['larch', 'ostree'] as Tool[]) {
        const sr = await Sysroot.open(roots[t]);
        const dir = sr.deploymentDir(sr.deployments[0]);
        await mutating(dir, () => {
          writeFileSync(path.join(dir, 'etc/aconfigfile'), 'locally modified\n');
          writeFileSync(path.join(dir, 'etc/added-by-admin'), 'admin added\n');
          unlinkSync(path.join(dir, 'etc/removeme'));
          rmSync(path.join(dir, 'etc/dir'), { recursive: true });
          writeFileSync(path.join(dir, 'etc/dir'), 'now a file\n');
          chmodSync(path.join(dir, 'etc/os-release'), 0o600);
        });
      }
      // The admin turned etc/dir into a file and the new defaults keep a directory there: both refuse.
      await commitOs(work.path, repos(), { version: '1.0.10', etc: { 'dir/inner': 'i\n' } });
      const before = snapshot(roots.larch);
      const fails = await Promise.all((['larch', 'ostree'] as Tool[]).map((t) => tool(t, ['admin', 'deploy', `--sysroot=${roots[t]}`, '--os=testos', 'testos/main'], env)));
      expect(fails.map((f) => f.code)).toEqual([1, 1]);
      expect(fails[0].stderr).toContain("During /etc merge: Modified config file newly defaults to directory 'dir', cannot merge");
      expect(fails[1].stderr).toContain("During /etc merge: Modified config file newly defaults to directory 'dir', cannot merge");
      expect(snapshot(roots.larch)).toBe(before);
      // ostree leaves the unfinished deployment directory behind; its next cleanup removes it.
      await both((r) => ['admin', 'cleanup', `--sysroot=${r}`, '--verbose'].slice(0, 3));
      await commitOs(work.path, repos(), { version: '1.0.10', etc: { removeme: 'x\n', 'newdefault.conf': 'n\n' } });
      await both((r) => ['admin', 'deploy', `--sysroot=${r}`, '--os=testos', 'testos/main']);
      const srs = await Promise.all([roots.larch, roots.ostree].map((r) => Sysroot.open(r)));
      const diffs = await compareTrees(srs[0].deploymentDir(srs[0].deployments[0]), srs[1].deploymentDir(srs[1].deployments[0]), { owners: true });
      expect(formatDifferences(diffs)).toBe(formatDifferences([]));
      const etc = path.join(srs[0].deploymentDir(srs[0].deployments[0]), 'etc');
      expect(readFileSync(path.join(etc, 'aconfigfile'), 'utf8')).toBe('locally modified\n');
      expect(readFileSync(path.join(etc, 'newdefault.conf'), 'utf8')).toBe('n\n');
    });

    it('redeploying the same commit: full swap, then a sub-bootversion swap only', async () => {
      await both((r) => ['admin', 'deploy', `--sysroot=${r}`, '--os=testos', 'testos/main']);
      await both((r) => ['admin', 'deploy', `--sysroot=${r}`, '--os=testos', 'testos/main']);
    });

    it('a second stateroot, --retain, kargs edits', async () => {
      await both((r) => ['admin', 'os-init', `--sysroot=${r}`, 'otheros']);
      await both((r) => ['admin', 'deploy', `--sysroot=${r}`, '--os=otheros', '--karg-none', '--karg=console=ttyS0', 'testos/main']);
      await commitOs(work.path, repos(), { version: '2.0', kernel: 'another kernel\n', devicetree: 'a devicetree\n', extra: { 'usr/lib/ostree-boot/uEnv.txt': 'fdt_high=0xffffffff\n' } });
      await both((r) => ['admin', 'deploy', `--sysroot=${r}`, '--os=testos', 'testos/main']);
      // the legacy kernel layout: usr/lib/ostree-boot/vmlinuz-VER-CSUM, bootcsum = CSUM
      const csum = 'c'.repeat(64);
      await commitOs(work.path, repos(), {
        version: '2.0.1',
        extra: { [`usr/lib/ostree-boot/vmlinuz-4.0-${csum}`]: 'legacy kernel\n', [`usr/lib/ostree-boot/initramfs-4.0.img-${csum}`]: 'legacy initramfs\n', 'usr/lib/modules': { type: 'dir' } },
        kernel: null,
      });
      await both((r) => ['admin', 'deploy', `--sysroot=${r}`, '--os=testos', 'testos/main']);
      await commitOs(work.path, repos(), { version: '2.1', kernel: 'another kernel\n', initramfs: null });
      await both((r) => ['admin', 'deploy', `--sysroot=${r}`, '--os=testos', '--retain', '--karg-append=console=tty0', '--karg-delete=quiet', 'testos/main']);
    });

    it('--not-as-default, --no-merge, --origin-file, --retain-rollback, kargs edit-in-place (BLS only)', async () => {
      if (backend !== 'none') return;
      await both((r) => ['admin', 'deploy', `--sysroot=${r}`, '--os=testos', '--not-as-default', 'testos/main']);
      await both((r) => ['admin', 'deploy', `--sysroot=${r}`, '--os=testos', '--no-merge', '--karg=root=LABEL=FRESH', 'testos/main']);
      const origin = work.join('custom.origin');
      writeFileSync(origin, '[origin]\nrefspec=remote:testos/main\n\n[rpmostree]\nlayers=vim;\n');
      await both((r) => ['admin', 'deploy', `--sysroot=${r}`, '--os=testos', `--origin-file=${origin}`, '--retain-rollback', 'testos/main']);
      await both((r) => ['admin', 'kargs', 'edit-in-place', `--sysroot=${r}`, '--append-if-missing=console=ttyS0', '--append-if-missing=quiet']);
    });

    it('pin, unpin, undeploy and cleanup', async () => {
      await both((r) => ['admin', 'pin', `--sysroot=${r}`, '1']);
      await both((r) => ['admin', 'pin', `--sysroot=${r}`, '-u', '1']);
      await both((r) => ['admin', 'undeploy', `--sysroot=${r}`, '2']);
      await both((r) => ['admin', 'cleanup', `--sysroot=${r}`]);
    });
  });
}
