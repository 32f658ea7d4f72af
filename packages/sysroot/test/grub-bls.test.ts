/**
 * The GRUB menu generated from BLS entries and the trial-boot state in grubenv, against GRUB's own
 * `grub-editenv` where it is installed (grub-common). The boot itself (GRUB counting the trial
 * down and falling back) is exercised under QEMU in packages/image/test/boot-fallback.test.ts.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { tmpDir, type TmpDir } from '@larch/test-fixtures';
import { BootConfig, formatGrubenv, grubBlsConfig, grubMenuEntryFromBls, GRUBENV_PATH, markBootGood, parseGrubenv, readGrubenv, startTrialBoot, trialBootState, writeGrubenv } from '../src/index.js';

const editenv = spawnSync('grub-editenv', ['--version']).status === 0 ? 'grub-editenv' : null;
const itEditenv = editenv ? it : it.skip;

function grubEditenv(file: string, ...args: string[]): string {
  const r = spawnSync(editenv!, [file, ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`grub-editenv ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

function entry(title: string, ostree: string): BootConfig {
  return BootConfig.parse(`title ${title}\nversion 1\noptions root=UUID=0f1e2d3c-0000-4000-8000-000000000001 rw ${ostree}\nlinux /ostree/os-x/vmlinuz\ninitrd /ostree/os-x/initramfs.img\n`);
}

describe('grubenv', () => {
  let d: TmpDir;
  beforeEach(async () => {
    d = await tmpDir('larch-grubenv-');
  });
  afterEach(async () => d.cleanup());

  itEditenv('formatGrubenv writes the block grub-editenv writes, byte for byte', () => {
    const file = d.join('grubenv');
    grubEditenv(file, 'create');
    grubEditenv(file, 'set', 'boot_counter=1', 'boot_success=0');
    expect(formatGrubenv({ boot_counter: '1', boot_success: '0' }).equals(readFileSync(file))).toBe(true);
    expect(formatGrubenv(new Map()).equals((grubEditenv(file, 'unset', 'boot_counter', 'boot_success'), readFileSync(file)))).toBe(true);
  });

  itEditenv('parseGrubenv reads what grub-editenv wrote, escapes included; grub-editenv reads what writeGrubenv wrote', () => {
    const file = d.join('grubenv');
    grubEditenv(file, 'create');
    grubEditenv(file, 'set', 'a=x\\y', 'b=line1\nline2', 'boot_counter=-1');
    expect([...parseGrubenv(readFileSync(file))]).toEqual([['a', 'x\\y'], ['b', 'line1\nline2'], ['boot_counter', '-1']]);

    writeGrubenv(d.path, { saved_entry: '0', boot_counter: '2' });
    expect(grubEditenv(d.join(GRUBENV_PATH), 'list')).toBe('saved_entry=0\nboot_counter=2\n');
  });

  it('a trial: started, counted, fallen back, marked good; other variables kept; the file rewritten in place', () => {
    expect(trialBootState(d.path)).toEqual({ pending: false, bootsLeft: null, fellBack: false });
    writeGrubenv(d.path, { saved_entry: 'x' });
    const ino = statSync(d.join(GRUBENV_PATH)).ino;
    startTrialBoot(d.path, 3);
    expect([...readGrubenv(d.path)]).toEqual([['saved_entry', 'x'], ['boot_counter', '3'], ['boot_success', '0']]);
    expect(trialBootState(d.path)).toEqual({ pending: true, bootsLeft: 3, fellBack: false });
    // What GRUB saves when the boots are used up.
    writeGrubenv(d.path, { ...Object.fromEntries(readGrubenv(d.path)), boot_counter: '-1' });
    expect(trialBootState(d.path)).toEqual({ pending: false, bootsLeft: 0, fellBack: true });
    // A value GRUB does not count down from: used up.
    writeGrubenv(d.path, { boot_counter: 'x', boot_success: '0' });
    expect(trialBootState(d.path)).toEqual({ pending: true, bootsLeft: 0, fellBack: false });
    markBootGood(d.path);
    expect([...readGrubenv(d.path)]).toEqual([['boot_success', '1']]);
    expect(trialBootState(d.path).pending).toBe(false);
    expect(statSync(d.join(GRUBENV_PATH)).ino).toBe(ino);
    expect(statSync(d.join(GRUBENV_PATH)).size).toBe(1024);
  });

  it('refuses what GRUB could not read back or would misread, in one line', () => {
    expect(() => startTrialBoot(d.path, 0)).toThrow(/^Invalid number of trial boots '0' \(1 to 9\)$/);
    expect(() => startTrialBoot(d.path, 10)).toThrow(/^Invalid number of trial boots '10'/);
    // A newline in a value would add a variable of its own.
    expect(() => formatGrubenv({ boot_success: '1\nboot_counter=5' })).toThrow(/^Invalid value of GRUB environment variable boot_success: '1\\x0aboot_counter=5'/);
    expect(() => formatGrubenv({ 'a=b': '1' })).toThrow(/^Invalid GRUB environment variable name 'a=b'$/);
    expect(() => formatGrubenv({ big: 'x'.repeat(1000) })).toThrow(/^GRUB environment too large: 1099 bytes \(at most 1024\)$/);
    mkdirSync(path.dirname(d.join(GRUBENV_PATH)), { recursive: true });
    writeFileSync(d.join(GRUBENV_PATH), '# GRUB Environment Block\nboot_counter=1\n');
    expect(() => readGrubenv(d.path)).toThrow(/^Invalid .*boot\/grub\/grubenv: not a 1024-byte GRUB environment block \(40 bytes\)$/);
    writeFileSync(d.join(GRUBENV_PATH), 'boot_counter=1\n'.padEnd(1024, '#'));
    expect(() => startTrialBoot(d.path)).toThrow(/not a 1024-byte GRUB environment block \(1024 bytes, no header\)$/);
  });
});

describe('grubBlsConfig', () => {
  const uuid = '0f1e2d3c-0000-4000-8000-000000000001';
  it('a menu entry per deployment, default first, with the trial scheme when there is a previous entry', () => {
    const cfg = grubBlsConfig({ rootUuid: uuid, entries: [entry('new', 'ostree=/ostree/boot.1/os/b/0'), entry('old', 'ostree=/ostree/boot.1/os/a/0')].map((e) => grubMenuEntryFromBls(e)), timeout: 0 });
    const titles = [...cfg.matchAll(/^menuentry '([^']*)'/gm)].map((m) => m[1]);
    expect(titles).toEqual(['new', 'old']);
    expect(cfg).toContain(`search --no-floppy --fs-uuid --set=root ${uuid}\n`);
    // Only the two trial variables are taken from grubenv: a grubenv setting default or root changes nothing.
    expect(cfg).toContain('  load_env --file "(${root})/boot/grub/grubenv" boot_counter boot_success\n');
    expect(cfg).toContain('    elif [ "${boot_counter}" = "1" ]; then\n      set boot_counter=0\n    else\n      set boot_counter=-1\n      set default=1\n    fi\n    save_env --file "(${root})/boot/grub/grubenv" boot_counter\n');
    // The trial block comes before the menu entries, and the default is set before it.
    expect(cfg.indexOf('set default=0')).toBeLessThan(cfg.indexOf('load_env'));
    expect(cfg.indexOf('save_env')).toBeLessThan(cfg.indexOf('menuentry'));
  });

  it('no trial scheme with one entry (nothing to fall back to) or when turned off', () => {
    const one = grubBlsConfig({ rootUuid: uuid, entries: [grubMenuEntryFromBls(entry('only', 'ostree=/ostree/boot.1/os/a/0'))] });
    expect(one).not.toContain('load_env');
    const two = [entry('b', 'ostree=/ostree/boot.1/os/b/0'), entry('a', 'ostree=/ostree/boot.1/os/a/0')].map((e) => grubMenuEntryFromBls(e));
    expect(grubBlsConfig({ rootUuid: uuid, entries: two, trialBoot: false })).not.toContain('load_env');
  });
});
