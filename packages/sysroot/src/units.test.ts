import { describe, expect, it } from 'vitest';
import { KeyFile } from '@larch/core-store';
import { BootConfig, strverscmp } from './bootconfig.js';
import { joinLines } from './bootloader.js';
import { KernelArgs, splitCmdline } from './kargs.js';
import { planDeploymentList, formatSize } from './deploy.js';
import { parseOsRelease } from './write-deployments.js';
import type { Deployment } from './sysroot.js';

describe('KernelArgs (OSTree editing rules)', () => {
  it('replace drops every value and keeps the first position', () => {
    const k = KernelArgs.parse('a console=tty0 b console=ttyS0 c');
    k.replace('console=hvc0');
    expect(k.toString()).toBe('a console=hvc0 b c');
    k.replace('new=1');
    expect(k.toString()).toBe('a console=hvc0 b c new=1');
  });
  it('append keeps duplicates; delete needs a unique key or the exact value', () => {
    const k = KernelArgs.parse('quiet console=tty0');
    k.append('console=ttyS0');
    expect(k.toString()).toBe('quiet console=tty0 console=ttyS0');
    expect(() => k.delete('console')).toThrow("Multiple values for key 'console' found");
    k.delete('console=tty0');
    expect(k.toString()).toBe('quiet console=ttyS0');
    k.delete('quiet');
    expect(k.toString()).toBe('console=ttyS0');
    expect(() => k.delete('nothere')).toThrow("No karg 'nothere' found");
    expect(() => k.delete('console=other')).toThrow("No karg 'console=other' found");
  });
  it('splits at whitespace outside double quotes', () => {
    expect(splitCmdline('a  b="x y"\tc')).toEqual(['a', 'b="x y"', 'c']);
    expect(KernelArgs.parse('').toString()).toBe('');
  });
});

describe('BootConfig', () => {
  it('round-trips with the fixed key order, overlays and unknown keys', () => {
    const text = 'linux /k\ncustom v\ntitle T (ostree:0)\n# comment\ninitrd /i\ninitrd /overlay.img\nversion 3\noptions a=b ostree=/ostree/boot.1/os/c/0\n';
    const b = BootConfig.parse(text);
    expect(b.overlayInitrds).toEqual(['/overlay.img']);
    expect(b.serialize()).toBe('title T (ostree:0)\nversion 3\noptions a=b ostree=/ostree/boot.1/os/c/0\nlinux /k\ninitrd /i\ninitrd /overlay.img\ncustom v\n');
  });
  it('strverscmp orders as glibc', () => {
    expect(strverscmp('2', '10')).toBe(-1);
    expect(strverscmp('10', '9')).toBe(1);
    expect(strverscmp('1.0.9', '1.0.10')).toBe(-1);
    expect(strverscmp('abc', 'abc')).toBe(0);
    expect(strverscmp('000', '00')).toBe(-1);
    expect(strverscmp('a', 'ab')).toBe(-1);
    const order = ['000', '00', '01', '010', '09', '0', '1', '9', '10'];
    for (let i = 0; i + 1 < order.length; i++) expect(strverscmp(order[i], order[i + 1]), `${order[i]} < ${order[i + 1]}`).toBe(-1);
  });
});

describe('small formats', () => {
  it('joinLines drops a leading empty line and every empty line after the first', () => {
    expect(joinLines(['', 'a', '', 'b', '', 'c'])).toBe('a\n\nb\nc\n');
  });
  it('parses os-release with quoting', () => {
    const m = parseOsRelease('PRETTY_NAME="Test \\"OS\\" 1"\nID=test\nVERSION=\'2\'\n# c\n');
    expect(m.get('PRETTY_NAME')).toBe('Test "OS" 1');
    expect(m.get('ID')).toBe('test');
    expect(m.get('VERSION')).toBe('2');
  });
  it('formats sizes like GLib', () => {
    expect(formatSize(1)).toBe('1 byte');
    expect(formatSize(142)).toBe('142 bytes');
    expect(formatSize(1500)).toBe('1.5\u00a0kB');
    expect(formatSize(2_500_000)).toBe('2.5\u00a0MB');
  });
});

function dep(stateroot: string, csum: string, serial = 0, pinned = false): Deployment {
  return {
    index: 0,
    stateroot,
    csum: csum.repeat(64).slice(0, 64),
    deployserial: serial,
    bootcsum: 'b'.repeat(64),
    bootserial: 0,
    bootconfig: new BootConfig(),
    origin: pinned ? KeyFile.parse('[origin]\nrefspec=x\n\n[libostree-transient]\npinned=true\n') : null,
  };
}

describe('planDeploymentList (simple_write_deployment)', () => {
  const names = (l: Deployment[]): string[] => l.map((d) => `${d.stateroot}:${d.csum[0]}${d.deployserial}`);
  it('keeps the new one and the merge deployment; other stateroots and pinned ones stay', () => {
    const cur = [dep('os', 'a'), dep('os', 'b'), dep('other', 'c'), dep('os', 'd', 0, true), dep('os', 'e')];
    expect(names(planDeploymentList(cur, dep('os', 'n'), cur[0]))).toEqual(['os:n0', 'os:a0', 'other:c0', 'os:d0']);
    expect(names(planDeploymentList(cur, dep('os', 'n'), cur[0], { retain: true }))).toEqual(['os:n0', 'os:a0', 'os:b0', 'other:c0', 'os:d0', 'os:e0']);
  });
  it('--not-as-default inserts after the merge deployment; --retain-rollback keeps what follows it', () => {
    const cur = [dep('os', 'a'), dep('os', 'b'), dep('os', 'c')];
    expect(names(planDeploymentList(cur, dep('os', 'n'), cur[0], { notAsDefault: true }))).toEqual(['os:a0', 'os:n0']);
    expect(names(planDeploymentList(cur, dep('os', 'n'), cur[1], { retainRollback: true }))).toEqual(['os:n0', 'os:b0', 'os:c0']);
    expect(names(planDeploymentList(cur, dep('os', 'n'), cur[1], { retainPending: true }))).toEqual(['os:n0', 'os:a0', 'os:b0']);
    expect(names(planDeploymentList(cur, dep('os', 'n'), null, { retainPending: true }))).toEqual(['os:n0', 'os:a0', 'os:b0', 'os:c0']);
  });
});

describe('staged deployment record', () => {
  it('round-trips with and without kargs and merge deployment', async () => {
    const { encodeStaged, decodeStaged } = await import('./sysroot.js');
    const full = { target: { name: `${'a'.repeat(64)}.0`, osname: 'os', bootcsum: 'b'.repeat(64) }, merge: { name: `${'c'.repeat(64)}.1`, osname: 'os', bootcsum: 'd'.repeat(64) }, kargs: ['root=X', 'quiet'] };
    expect(decodeStaged(encodeStaged(full))).toEqual(full);
    const bare = { target: full.target, merge: null, kargs: null };
    expect(decodeStaged(encodeStaged(bare))).toEqual(bare);
    expect(() => decodeStaged(encodeStaged(bare).subarray(0, 10))).toThrow();
  });
});
