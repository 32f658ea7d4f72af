/**
 * The install story: `install/install-tree.sh DESTDIR` lays out larch and larch-agent under
 * /usr/lib/larch with their wrappers and the systemd units, enabled; the programs run from the
 * tree alone; systemd accepts the units (`systemd-analyze verify`, where installed).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tmpDir, type TmpDir } from '@larch/test-fixtures';

const APP = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const SCRIPT = path.join(APP, 'install/install-tree.sh');
const analyze = spawnSync('systemd-analyze', ['--version']).status === 0;
const UNITS = ['larch-agent.service', 'larch-agent.timer', 'larch-finalize-staged.path', 'larch-finalize-staged.service', 'larch-finalize-staged-hold.service'];

/** `KEY=VALUE` lines of a unit file (a repeated key: every value). */
function unit(text: string): Map<string, string[]> {
  const m = new Map<string, string[]>();
  for (const line of text.split('\n')) {
    const i = line.indexOf('=');
    if (i <= 0 || line.startsWith('#')) continue;
    m.set(line.slice(0, i), [...(m.get(line.slice(0, i)) ?? []), line.slice(i + 1)]);
  }
  return m;
}

describe('install-tree.sh', () => {
  let work: TmpDir;
  let dest = '';
  beforeAll(async () => {
    work = await tmpDir('larch-agent-install-');
    dest = work.join('dest');
    const r = spawnSync('bash', [SCRIPT, '--mask-ostree-finalize', dest], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`install-tree.sh: ${r.stderr}`);
  }, 600_000);
  afterAll(async () => {
    await work?.cleanup();
  });

  it('lays out /usr/lib/larch, the wrappers and the enabled units; the programs run from the tree', () => {
    for (const p of ['usr/lib/larch/node', 'usr/lib/larch/cli/dist/main.js', 'usr/lib/larch/agent/dist/main.js', 'usr/lib/larch/README.md']) expect(existsSync(path.join(dest, p)), p).toBe(true);
    expect(readFileSync(path.join(dest, 'usr/bin/larch-agent'), 'utf8')).toBe('#!/bin/sh\nexec /usr/lib/larch/node /usr/lib/larch/agent/dist/main.js "$@"\n');
    expect(readFileSync(path.join(dest, 'usr/bin/larch'), 'utf8')).toBe('#!/bin/sh\nexec /usr/lib/larch/node /usr/lib/larch/cli/dist/main.js "$@"\n');
    const units = path.join(dest, 'usr/lib/systemd/system');
    expect(readdirSync(units).filter((n) => n.startsWith('larch-')).sort()).toEqual([...UNITS].sort());
    expect(readlinkSync(path.join(units, 'timers.target.wants/larch-agent.timer'))).toBe('../larch-agent.timer');
    expect(readlinkSync(path.join(units, 'multi-user.target.wants/larch-finalize-staged.path'))).toBe('../larch-finalize-staged.path');
    expect(readlinkSync(path.join(dest, 'usr/etc/systemd/system/ostree-finalize-staged.path'))).toBe('/dev/null');
    // The copied programs need nothing from the workspace.
    const node = path.join(dest, 'usr/lib/larch/node');
    const agent = spawnSync(node, [path.join(dest, 'usr/lib/larch/agent/dist/main.js'), 'config', `--config=${work.join('missing.toml')}`], { encoding: 'utf8', cwd: '/' });
    expect(agent.status).toBe(1);
    expect(agent.stderr).toMatch(/^larch-agent: error: Cannot read configuration .*missing\.toml/);
    const cli = spawnSync(node, [path.join(dest, 'usr/lib/larch/cli/dist/main.js'), 'init', `--repo=${work.join('repo')}`, '--mode=archive'], { encoding: 'utf8', cwd: '/' });
    expect(cli.status, cli.stderr).toBe(0);
    expect(readFileSync(work.join('repo/config'), 'utf8')).toContain('mode=archive');
  });

  it('finalize-staged runs at shutdown, ordered as ostree-finalize-staged.service', () => {
    const u = unit(readFileSync(path.join(dest, 'usr/lib/systemd/system/larch-finalize-staged.service'), 'utf8'));
    expect(u.get('ExecStop')).toEqual(['/usr/bin/larch admin finalize-staged']);
    expect(u.get('ExecStart')).toBeUndefined();
    expect(u.get('DefaultDependencies')).toEqual(['no']);
    expect(u.get('RemainAfterExit')).toEqual(['yes']);
    expect(u.get('RequiresMountsFor')).toEqual(['/sysroot /boot']);
    expect(u.get('Conflicts')).toEqual(['final.target']);
    expect(u.get('Before')).toEqual(['basic.target final.target']);
    expect(u.get('After')).toEqual(['local-fs.target', 'systemd-journal-flush.service', 'larch-finalize-staged-hold.service']);
    expect(unit(readFileSync(path.join(dest, 'usr/lib/systemd/system/larch-finalize-staged.path'), 'utf8')).get('PathExists')).toEqual(['/run/ostree/staged-deployment']);
    expect(unit(readFileSync(path.join(dest, 'usr/lib/systemd/system/larch-agent.service'), 'utf8')).get('ExecStart')).toEqual(['/usr/bin/larch-agent run --once --config=/etc/larch/agent.toml']);
  });

  (analyze ? it : it.skip)('systemd-analyze verify accepts the units', () => {
    // verify checks that the programs exist: point the copies at the tree's wrappers.
    const dir = work.join('verify');
    mkdirSync(dir);
    for (const name of UNITS) {
      writeFileSync(path.join(dir, name), readFileSync(path.join(dest, 'usr/lib/systemd/system', name), 'utf8').replaceAll('/usr/bin/', `${dest}/usr/bin/`));
    }
    const r = spawnSync('systemd-analyze', ['verify', ...UNITS.map((n) => `./${n}`)], { encoding: 'utf8', cwd: dir });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  it('refuses a DESTDIR missing and an unknown option, in one line', () => {
    const none = spawnSync('bash', [SCRIPT], { encoding: 'utf8' });
    expect(none.status).toBe(2);
    expect(none.stderr).toBe('usage: install-tree.sh [--node=PATH] [--mask-ostree-finalize] DESTDIR\n');
    const bad = spawnSync('bash', [SCRIPT, '--frob', dest], { encoding: 'utf8' });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toBe("install-tree.sh: unknown option '--frob'\n");
    const nonode = spawnSync('bash', [SCRIPT, '--node=/nonexistent/node', dest], { encoding: 'utf8' });
    expect(nonode.status).toBe(1);
    expect(nonode.stderr).toBe("install-tree.sh: no Node.js at '/nonexistent/node' (give --node=PATH)\n");
  });
});
