/**
 * buildImage on a small fake OS (a kernel and initramfs of a few bytes): the disk's partition
 * table, the root filesystem's UUID and contents, and what it refuses. Booting a real OS is
 * boot-qemu.test.ts.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { larchOk, larch, tmpDir, type TmpDir } from '@larch/test-fixtures';
import { buildImage, grubConfig, menuEntryFromBls, findTool } from '../src/index.js';
import { BootConfig } from '@larch/sysroot';

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

describe('larch image build: bad input', () => {
  const cases: [string, string[], RegExp][] = [
    ['no --os', ['image', 'build', '--repo=/nonexistent', 'r', 'out.img'], /^error: --os=OS is required\n$/],
    ['a bad --size', ['image', 'build', '--repo=/nonexistent', '--os=x', '--size=12Q', 'r', 'out.img'], /^error: Invalid size '12Q' \(expected e\.g\. 4G, 512M or a byte count\)\n$/],
    ['an unknown --bootloader', ['image', 'build', '--repo=/nonexistent', '--os=x', '--bootloader=lilo', 'r', 'out.img'], /^error: Invalid --bootloader 'lilo' \(expected grub2 or none\)\n$/],
    ['a karg with a newline', ['image', 'build', '--repo=/nonexistent', '--os=x', '--karg=a\nb', 'r', 'out.img'], /^error: Invalid kernel argument 'a\\x0ab': control characters are not allowed\n$/],
    // (the usage text may precede the error line, as for other verbs with sub-verbs)
    ['an unknown sub-verb', ['image', 'burn'], /(^|\n)error: Unknown "image" subcommand 'burn'\n$/],
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
