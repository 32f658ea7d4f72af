/**
 * An update from inside the booted machine (QEMU, TCG, OVMF): the test OS carries larch and
 * larch-agent as apps/agent/install/install-tree.sh lays them out (units included), plus the
 * test's network, agent configuration and unit drop-ins (test-fixtures/bootable-os/agent). The
 * image holds v1 only; the host serves v2 with larch-server, which the guest reaches through QEMU
 * user networking with `restrict=on` (no other way out) and one guestfwd to the host's loopback.
 *
 * On v1, larch-agent.timer starts the agent: it checks, pulls v2, stages it (a deploy: the
 * sysroot's larch-grub backend rewrites the GRUB menu on the root filesystem and puts v2 on a
 * one-boot trial) and reboots. GRUB loads that menu and boots v2 on trial; v2's boot check marks
 * the trial good; the agent confirms the update, and `larch admin status` inside shows v2 booted and
 * v1 as the rollback. Everything is read from the serial console.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { cpSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, describe, expect, it } from 'vitest';
import { tmpDir, type TmpDir } from '@larch/test-fixtures';
import { buildImage, findTool } from '../src/index.js';
import { BOOT_FAILED, bootableOs, FAST_KARGS, MINUTE, report, ROOT } from './boot-os.js';
import { bootImage, hasQemu, type Vm } from './qemu.js';

// Not passing yet, so not run by default (LARCH_BOOT_UPDATE=1 runs it): v1 boots and reports, but
// the agent's cycle never shows on the console and never reaches the server (docs/BOOT.md).
const runs = process.env.LARCH_BOOT_UPDATE === '1' && (Boolean(process.env.CI) || hasQemu());
const describeBoot = runs ? describe : describe.skip;
const FORWARD = join(ROOT, 'packages/image/test/fixtures/tcp-forward.mjs');
const SERVER_BIN = join(ROOT, 'apps/server/dist/main.js');
const REF = 'larch/testos/x86_64';

function run(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** The agent's JSON log lines on the console. */
function agentLines(text: string): Array<Record<string, unknown>> {
  const out: Array<Record<string, unknown>> = [];
  for (const m of text.matchAll(/\{"time":[^\r\n]*\}/g)) {
    try {
      out.push(JSON.parse(m[0]) as Record<string, unknown>);
    } catch {
      /* a line cut by other console output */
    }
  }
  return out;
}

const transitions = (lines: Array<Record<string, unknown>>): string[] => lines.filter((l) => l.event === 'transition').map((l) => `${String(l.from)}>${String(l.to)}`);

describeBoot('an update from inside the booted machine', () => {
  let d: TmpDir | null = null;
  const vms: Vm[] = [];
  let server: ChildProcess | null = null;

  afterAll(async () => {
    for (const vm of vms) vm.kill();
    await Promise.all(vms.map((vm) => vm.exited));
    if (server && server.exitCode === null) {
      const done = new Promise((r) => server!.once('exit', r));
      server.kill('SIGTERM');
      await done;
    }
    await d?.cleanup();
  });

  it('the guest agent pulls v2 from larch-server through guestfwd, stages it, reboots; v2 boots on trial, is marked good and confirmed', async () => {
    d = await tmpDir('larch-boot-update-');
    // The OS with larch in it: the installed tree plus the test's own files, on every version.
    const extra = d.join('extra');
    run('bash', [join(ROOT, 'apps/agent/install/install-tree.sh'), '--mask-ostree-finalize', extra]);
    // The agent starts once the boot report is out (larch-test-agent.path), not at boot.
    rmSync(join(extra, 'usr/lib/systemd/system/timers.target.wants/larch-agent.timer'));
    cpSync(join(ROOT, 'test-fixtures/bootable-os/agent'), extra, { recursive: true, verbatimSymlinks: true });
    const v2 = bootableOs('v2', extra);
    const v1 = bootableOs('v1', extra);

    // The update server: an archive repository holding v2 on the branch, served by larch-server.
    const srv = d.join('srv');
    const ostree = findTool('ostree')!;
    run(ostree, ['init', `--repo=${srv}`, '--mode=archive']);
    run(ostree, ['pull-local', `--repo=${srv}`, v2.repo, v2.commit]);
    run(ostree, ['refs', `--repo=${srv}`, `--create=${REF}`, v2.commit]);
    run(ostree, ['summary', `--repo=${srv}`, '-u']);
    server = spawn(process.execPath, [SERVER_BIN, `--repo=${srv}`, '--port=0'], { stdio: ['ignore', 'pipe', 'inherit'] });
    const url = await new Promise<string>((resolve, reject) => {
      createInterface({ input: server!.stdout! }).on('line', (l) => {
        const m = /at (http:\/\/\S+)/.exec(l);
        if (m) resolve(m[1]);
      });
      server!.once('exit', (c) => reject(new Error(`larch-server exited with ${c}`)));
    });
    const port = new URL(url).port;

    const t0 = Date.now();
    const built = await buildImage({ repo: v1.repo, os: 'testos', ref: v1.commit, out: d.join('disk.img'), kargs: [...FAST_KARGS, 'larch.test.keep-running'], grubTimeout: 0, workDir: d.path });
    const buildMs = Date.now() - t0;

    const dir = d.join('vm');
    mkdirSync(dir);
    // restrict=on: the guest reaches nothing but the one forwarded address (10.0.2.100:8080 → the server).
    const vm = bootImage({ image: built.out, dir, reboot: true, netdev: `user,id=n0,restrict=on,guestfwd=tcp:10.0.2.100:8080-cmd:${process.execPath} ${FORWARD} ${port}` });
    vms.push(vm);
    const stop = new RegExp(`${BOOT_FAILED.source}|"result":"(stage-failed|preflight-refused|rollback-failed|degraded|boot-failed)"`);
    // Backstops only (TCG on a loaded 2-core machine); every wait ends on a console marker.
    const report1Ms = await vm.waitFor(/LARCH-TEST-END/, 40 * MINUTE, stop);
    const rebootMs = await vm.waitFor(/"event":"reboot"/, 60 * MINUTE, stop);
    const report2Ms = await vm.waitFor(/"event":"reboot"[\s\S]*LARCH-TEST-END/, 100 * MINUTE, stop);
    const confirmedMs = await vm.waitFor(/"result":"confirmed"[\s\S]*LARCH-STATUS-END/, 120 * MINUTE, stop);
    const text = vm.console();
    vm.kill();
    console.log(
      `boot-update: image build ${(buildMs / 1000).toFixed(1)} s; power-on to v1's report ${(report1Ms / 1000).toFixed(1)} s, ` +
        `to the agent's reboot ${(rebootMs / 1000).toFixed(1)} s, to v2's report ${(report2Ms / 1000).toFixed(1)} s, to the confirmation ${(confirmedMs / 1000).toFixed(1)} s`,
    );

    const cut = text.indexOf('"event":"reboot"');
    const [first, second] = [text.slice(0, cut), text.slice(cut)];
    // v1, booted from the menu on the root filesystem, no trial.
    const r1 = report(first);
    expect(r1.get('version')).toBe('v1');
    expect(r1.get('system-state')).toBe('running');
    expect(r1.get('boot-check')).toBe(`LARCH-BOOT no-trial healthy booted=${v1.commit}`);
    const a1 = agentLines(first);
    expect(transitions(a1).slice(-5)).toEqual(['idle>check', 'check>pull', 'pull>preflight', 'preflight>stage', 'stage>reboot']);
    expect(a1.find((l) => l.event === 'transition' && l.to === 'pull')).toMatchObject({ commit: v2.commit, previous: v1.commit });

    // v2, on its trial boot, marked good by its boot check.
    const r2 = report(second);
    expect(r2.get('version')).toBe('v2');
    expect(r2.get('system-state')).toBe('running');
    expect(r2.get('boot-check')).toBe(`LARCH-BOOT trial-good booted=${v2.commit}`);
    expect(r2.get('failed-units')).toBe('');
    const a2 = agentLines(second);
    expect(transitions(a2)).toEqual(expect.arrayContaining(['reboot>confirm', 'confirm>idle']));
    expect(a2.find((l) => l.event === 'transition' && l.to === 'idle')).toMatchObject({ result: 'confirmed', commit: v2.commit });

    // `larch admin status` inside, after the confirming cycle: v2 booted, v1 the rollback.
    const status = /"result":"confirmed"[\s\S]*?LARCH-STATUS-BEGIN\r?\n([\s\S]*?)LARCH-STATUS-END/.exec(second)![1];
    expect(status).toMatch(new RegExp(`^\\* testos ${v2.commit}\\.0\\r?$`, 'm'));
    expect(status).toMatch(new RegExp(`^  testos ${v1.commit}\\.0 \\(rollback\\)\\r?$`, 'm'));
  }, 180 * MINUTE);
});
