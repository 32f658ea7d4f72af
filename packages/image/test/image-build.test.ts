/**
 * buildImage on a small fake OS (a kernel and initramfs of a few bytes): the disk's partition
 * table, the root filesystem's UUID and contents, and what it refuses. Booting a real OS is
 * boot-qemu.test.ts.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { larchOk, larch, tmpDir, type TmpDir } from '@larch/test-fixtures';
import { buildImage, grubConfig, menuEntryFromBls, findTool } from '../src/index.js';
import { BootConfig, setImmutable } from '@larch/sysroot';

const haveTools = ['mkfs.ext4', 'sgdisk', 'mkfs.vfat', 'mcopy', 'grub-mkstandalone', 'debugfs'].every((t) => findTool(t) !== null);
const describeTools = haveTools || process.env.CI ? describe : describe.skip;

async function fakeOs(d: TmpDir): Promise<string> {
  const tree = d.join('tree');
  mkdirSync(`${tree}/usr/lib/modules/6.1.0`, { recursive: true });
  mkdirSync(`${tree}/usr/etc`, { recursive: true });
  writeFileSync(`${tree}/usr/lib/modules/6.1.0/vmlinuz`, 'kernel\n');
  writeFileSync(`${tree}/usr/lib/modules/6.1.0/initramfs.img`, 'initramfs\n');
  writeFileSync(`${tree}/usr/etc/os-release`, 'ID=fake\nPRETTY_NAME="Fake OS"\n');
  await larchOk(['init', `--repo=${d.join('repo')}`, '--mode=bare']);
  await larchOk(['commit', `--repo=${d.join('repo')}`, '-b', 'os/main', '--bootable', `--tree=dir=${tree}`]);
  return d.join('repo');
}

function sh(file: string, args: string[]): string {
  const r = spawnSync(findTool(file)!, args, { encoding: 'utf8', env: { ...process.env, MTOOLS_SKIP_CHECK: '1' } });
  if (r.status !== 0) throw new Error(`${file} ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

describeTools('buildImage', () => {
  it('writes a GPT disk: ESP with GRUB at the removable path, ext4 root with the chosen UUID holding the deployment', async () => {
    const d = await tmpDir('larch-image-');
    const repo = await fakeOs(d);
    const uuid = '2c1b7f4e-9a53-4d1c-8f0e-51b0d0a6c001';
    const r = await buildImage({ repo, os: 'fake', ref: 'os/main', out: d.join('disk.img'), rootUuid: uuid, kargs: ['quiet'], workDir: d.path });
    const table = sh('sgdisk', ['-p', r.out]);
    expect(table).toMatch(/^ +1 +2048 +133119 .*EF00 +EFI System$/m);
    expect(table).toMatch(/^ +2 +133120 .*8300 +root$/m);
    expect(r.cmdline.split(' ')).toEqual(expect.arrayContaining([`root=UUID=${uuid}`, 'rw', 'console=ttyS0', 'quiet']));
    expect(r.cmdline).toMatch(/ ostree=\/ostree\/boot\.1\/fake\/[0-9a-f]{64}\/0$/);
    // Partitions out of the disk, as files.
    sh('dd', [`if=${r.out}`, `of=${d.join('esp.part')}`, 'bs=1M', 'skip=1', 'count=64', 'status=none']);
    expect(sh('mdir', ['-b', '-i', d.join('esp.part'), '::/EFI/BOOT'])).toContain('BOOTX64.EFI');
    sh('dd', [`if=${r.out}`, `of=${d.join('root.part')}`, 'bs=1M', 'skip=65', 'status=none']);
    expect(sh('dumpe2fs', ['-h', d.join('root.part')])).toMatch(new RegExp(`Filesystem UUID: +${uuid}`));
    const entry = sh('debugfs', ['-R', 'cat /boot/loader/entries/ostree-1-fake.conf', d.join('root.part')]);
    expect(entry).toContain(`options ${r.cmdline}`);
    expect(sh('debugfs', ['-R', `stat /ostree/deploy/fake/deploy/${r.deployment.csum}.0/usr/etc/os-release`, d.join('root.part')])).toContain('Type: regular');
    expect(existsSync(d.join('disk.img'))).toBe(true);
    await d.cleanup();
  });

  it('with --bootloader=none the disk has only the root partition', async () => {
    const d = await tmpDir('larch-image-');
    const repo = await fakeOs(d);
    const r = await buildImage({ repo, os: 'fake', ref: 'os/main', out: d.join('disk.img'), bootloader: 'none', workDir: d.path });
    const table = sh('sgdisk', ['-p', r.out]);
    expect(table).toMatch(/^ +1 +2048 .*8300 +root$/m);
    expect(table).not.toMatch(/EF00/);
    await d.cleanup();
  });

  it('refuses a kernel argument with a newline before writing anything', async () => {
    const d = await tmpDir('larch-image-');
    const repo = await fakeOs(d);
    await expect(buildImage({ repo, os: 'fake', ref: 'os/main', out: d.join('disk.img'), kargs: ['quiet\n}\nmenuentry evil {'], workDir: d.path })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
      data: { reason: 'bad-boot-text' },
    });
    expect(existsSync(d.join('disk.img'))).toBe(false);
    await d.cleanup();
  });

  it('refuses a size too small for the sysroot, naming what it needs', async () => {
    const d = await tmpDir('larch-image-');
    const repo = await fakeOs(d);
    await expect(buildImage({ repo, os: 'fake', ref: 'os/main', out: d.join('disk.img'), size: 70 * 1024 * 1024, workDir: d.path })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
      data: { reason: 'too-small' },
    });
    expect(existsSync(d.join('disk.img'))).toBe(false);
    await d.cleanup();
  });
});

describe('grubConfig', () => {
  it('single-quotes every kernel argument so GRUB runs none of it', () => {
    const bls = BootConfig.parse("title T\nlinux /ostree/os-x/vmlinuz\ninitrd /ostree/os-x/initramfs.img\noptions root=UUID=1 a';reboot;echo' $x ostree=/ostree/boot.1/os/x/0\n");
    const cfg = grubConfig({ rootUuid: '0f1e2d3c-0000-4000-8000-000000000001', entries: [menuEntryFromBls(bls)] });
    expect(cfg).toContain(`linux '/boot/ostree/os-x/vmlinuz' 'root=UUID=1' 'a'\\'';reboot;echo'\\''' '$x' 'ostree=/ostree/boot.1/os/x/0'\n`);
    expect(cfg).toContain(`initrd '/boot/ostree/os-x/initramfs.img'\n`);
  });

  it('refuses a BLS title with a newline', () => {
    const bls = BootConfig.parse('linux /v\noptions a\n');
    bls.set('title', 'x\nmenuentry evil {');
    expect(() => menuEntryFromBls(bls)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
  });
});

/** `ostree` (the real one) or fail with its stderr. */
function ostree(args: string[]): string {
  const r = spawnSync(findTool('ostree')!, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ostree ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** A sysroot the real ostree deployed the fake OS into; returns its directory and deployment. */
async function ostreeSysroot(d: TmpDir, kargs: string[]): Promise<{ sysroot: string; deployDir: string; commit: string }> {
  const repo = await fakeOs(d);
  const sysroot = d.join('sysroot');
  mkdirSync(sysroot);
  ostree(['admin', 'init-fs', sysroot]);
  ostree(['admin', 'os-init', `--sysroot=${sysroot}`, 'fake']);
  ostree(['pull-local', `--repo=${sysroot}/ostree/repo`, repo, 'os/main']);
  ostree(['admin', 'deploy', `--sysroot=${sysroot}`, '--os=fake', ...kargs.map((k) => `--karg=${k}`), 'os/main']);
  const commit = ostree(['rev-parse', `--repo=${sysroot}/ostree/repo`, 'os/main']).trim();
  return { sysroot, deployDir: `${sysroot}/ostree/deploy/fake/deploy/${commit}.0`, commit };
}

const describeOstree = (haveTools && findTool('ostree') !== null) || process.env.CI ? describe : describe.skip;

describeOstree('buildImage from a sysroot the real ostree deployed', () => {
  it('puts the sysroot on the root partition as it is, with the UUID its entry boots from, and leaves it unchanged', async () => {
    const d = await tmpDir('larch-image-');
    const uuid = '7d4f3c2a-1b0e-4f6d-9c8b-a1b2c3d4e5f6';
    const { sysroot, deployDir, commit } = await ostreeSysroot(d, [`root=UUID=${uuid}`, 'rw', 'console=ttyS0']);
    const before = sh('find', [sysroot, '-printf', '%p %s %i\n']);
    const r = await buildImage({ sysroot, out: d.join('disk.img'), grubTimeout: 0, workDir: d.path });
    expect(r.rootUuid).toBe(uuid);
    expect(r.deployment.csum).toBe(commit);
    const entry = readFileSync(`${sysroot}/boot/loader/entries/ostree-1-fake.conf`, 'utf8');
    expect(entry).toContain(`options ${r.cmdline}\n`);
    expect(sh('find', [sysroot, '-printf', '%p %s %i\n'])).toBe(before);
    sh('dd', [`if=${r.out}`, `of=${d.join('esp.part')}`, 'bs=1M', 'skip=1', 'count=64', 'status=none']);
    sh('dd', [`if=${r.out}`, `of=${d.join('root.part')}`, 'bs=1M', 'skip=65', 'status=none']);
    expect(sh('dumpe2fs', ['-h', d.join('root.part')])).toMatch(new RegExp(`Filesystem UUID: +${uuid}`));
    expect(sh('debugfs', ['-R', 'cat /boot/loader/entries/ostree-1-fake.conf', d.join('root.part')])).toBe(entry);
    expect(sh('debugfs', ['-R', `stat /ostree/deploy/fake/deploy/${commit}.0/etc/os-release`, d.join('root.part')])).toContain('Type: regular');
    // GRUB's menu: the entry's kernel under /boot, booting at once.
    sh('mcopy', ['-i', d.join('esp.part'), '::/EFI/BOOT/BOOTX64.EFI', d.join('grub.efi')]);
    const grubEfi = readFileSync(d.join('grub.efi'), 'latin1');
    expect(grubEfi).toContain('set timeout=0');
    expect(grubEfi).toContain(`'ostree=/ostree/boot.1/fake/`);
    setImmutable(deployDir, false);
    await d.cleanup();
  });

  it('refuses a sysroot whose default entry names no root=UUID=, in one line, before writing anything', async () => {
    const d = await tmpDir('larch-image-');
    const { sysroot, deployDir } = await ostreeSysroot(d, ['root=/dev/vda2', 'rw']);
    const r = await larch(['image', 'build', `--from-sysroot=${sysroot}`, d.join('disk.img')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^error: The default deployment of \S+ does not boot from root=UUID=… \(its kernel arguments: root=\/dev\/vda2 rw ostree=\S+\); deploy it with --karg=root=UUID=…\n$/);
    expect(existsSync(d.join('disk.img'))).toBe(false);
    setImmutable(deployDir, false);
    await d.cleanup();
  });

  it('refuses a root UUID other than the one the sysroot boots from, and kernel arguments', async () => {
    const d = await tmpDir('larch-image-');
    const uuid = '7d4f3c2a-1b0e-4f6d-9c8b-a1b2c3d4e5f6';
    const { sysroot, deployDir } = await ostreeSysroot(d, [`root=UUID=${uuid}`]);
    await expect(buildImage({ sysroot, out: d.join('disk.img'), rootUuid: '00000000-1111-2222-3333-444444444444', workDir: d.path })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
      message: `Root UUID 00000000-1111-2222-3333-444444444444 differs from the ${uuid} the default deployment boots from`,
    });
    await expect(buildImage({ sysroot, out: d.join('disk.img'), kargs: ['quiet'], workDir: d.path })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', data: { option: 'kargs' } });
    expect(existsSync(d.join('disk.img'))).toBe(false);
    setImmutable(deployDir, false);
    await d.cleanup();
  });
});

describe('larch image build: bad input', () => {
  const cases: [string, string[], RegExp][] = [
    ['no --os', ['image', 'build', '--repo=/nonexistent', 'r', 'out.img'], /^error: --os=OS is required\n$/],
    ['a bad --size', ['image', 'build', '--repo=/nonexistent', '--os=x', '--size=12Q', 'r', 'out.img'], /^error: Invalid size '12Q' \(expected e\.g\. 4G, 512M or a byte count\)\n$/],
    ['an unknown --bootloader', ['image', 'build', '--repo=/nonexistent', '--os=x', '--bootloader=lilo', 'r', 'out.img'], /^error: Invalid --bootloader 'lilo' \(expected grub2 or none\)\n$/],
    ['a karg with a newline', ['image', 'build', '--repo=/nonexistent', '--os=x', '--karg=a\nb', 'r', 'out.img'], /^error: Invalid kernel argument 'a\\x0ab': control characters are not allowed\n$/],
    // (the usage text may precede the error line, as for other verbs with sub-verbs)
    ['an unknown sub-verb', ['image', 'burn'], /(^|\n)error: Unknown "image" subcommand 'burn'\n$/],
    ['--from-sysroot with a REF', ['image', 'build', '--from-sysroot=/nonexistent', 'r', 'out.img'], /^error: With --from-sysroot, give only OUT \(the sysroot's deployments are used, not a REF\)\n$/],
    ['--from-sysroot with --os', ['image', 'build', '--from-sysroot=/nonexistent', '--os=x', 'out.img'], /^error: --os cannot be used with --from-sysroot \(the sysroot's deployments are used as they are\)\n$/],
    ['--from-sysroot that is no directory', ['image', 'build', '--from-sysroot=/nonexistent', 'out.img'], /^error: Sysroot \/nonexistent is not a directory\n$/],
    ['--from-sysroot that is no sysroot', ['image', 'build', '--from-sysroot=/usr', 'out.img'], /^error: \/usr is not a sysroot: it has no ostree\/repo\n$/],
    ['a bad --grub-timeout', ['image', 'build', '--repo=/nonexistent', '--os=x', '--grub-timeout=-1', 'r', 'out.img'], /^error: Invalid --grub-timeout '-1' \(expected a whole number of seconds\)\n$/],
  ];
  for (const [what, args, message] of cases) {
    it(`prints one line and exits 1 for ${what}`, async () => {
      const r = await larch(args);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(message);
    });
  }

  it('refuses an output in a missing directory before doing any work', async () => {
    const d = await tmpDir('larch-image-');
    const repo = await fakeOs(d);
    const r = await larch(['image', 'build', `--repo=${repo}`, '--os=fake', 'os/main', d.join('no/such/dir/out.img')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`error: Cannot write ${d.join('no/such/dir/out.img')}: ${d.join('no/such/dir')} is not a directory\n`);
    expect(existsSync(d.join('no'))).toBe(false);
    await d.cleanup();
  });

  it('refuses a stateroot name that is a path', async () => {
    const d = await tmpDir('larch-image-');
    const repo = await fakeOs(d);
    const r = await larch(['image', 'build', `--repo=${repo}`, '--os=../evil', 'os/main', d.join('out.img')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe("error: Invalid stateroot name '../evil'\n");
    expect(existsSync(d.join('out.img'))).toBe(false);
    await d.cleanup();
  });

  it('names a missing ref in one line', async () => {
    const d = await tmpDir('larch-image-');
    const repo = await fakeOs(d);
    const r = await larch(['image', 'build', `--repo=${repo}`, '--os=fake', 'no/such/ref', d.join('out.img')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe("error: Refspec 'no/such/ref' not found\n");
    expect(existsSync(d.join('out.img'))).toBe(false);
    await d.cleanup();
  });
});
