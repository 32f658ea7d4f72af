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
import { BOOT_FAILED, bootableOs, FAST_KARGS, MINUTE, report, ROOT, type BootableOs } from './boot-os.js';
import { bootImage, hasQemu, type Vm } from './qemu.js';

// Skipped only when CI is unset and QEMU is absent: v1 → v2 takes about 14 minutes on a loaded
// 2-core machine (docs/BOOT.md has the times).
const runs = Boolean(process.env.CI) || hasQemu();
// The v3 follow-up (21 more minutes) is opt-in (LARCH_BOOT_UPDATE_V3=1) until a whole run passes:
// in its one run everything up to the agent's accepted check-in of v3 as bad passed, then the
// device record was expected to keep `target` (it is null once the cycle ends; fixed, not re-run),
// so the fleet `bad-commit` event check has not run yet.
const v3Runs = process.env.LARCH_BOOT_UPDATE_V3 === '1';
const describeBoot = runs ? describe : describe.skip;
const FORWARD = join(ROOT, 'packages/image/test/fixtures/tcp-forward.mjs');
const SERVER_BIN = join(ROOT, 'apps/server/dist/main.js');
const REF = 'larch/testos/x86_64';
/** The agent's deviceId (test-fixtures/bootable-os/agent/usr/etc/larch/agent.toml). */
const DEVICE = 'larch-boot-update';

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

/**
 * The `larch admin status` the agent unit prints after the cycle that ended with `result`, its
 * lines without the prefix the console puts on a unit's output (`[  165.019651] sh[418]: `).
 */
function statusAfter(text: string, result: string): string[] {
  const m = new RegExp(`"result":"${result}"[\\s\\S]*?LARCH-STATUS-BEGIN\\r?\\n([\\s\\S]*?)LARCH-STATUS-END`).exec(text);
  if (!m) throw new Error(`no status after the result ${result} on the console`);
  return m[1].split(/\r?\n/).map((l) => l.replace(/^\[\s*\d+\.\d+\] \S+: /, '')).filter((l) => l.trim() !== '');
}

const transitions = (lines: Array<Record<string, unknown>>): string[] => lines.filter((l) => l.event === 'transition').map((l) => `${String(l.from)}>${String(l.to)}`);

describeBoot('an update from inside the booted machine', () => {
  let d: TmpDir | null = null;
  const vms: Vm[] = [];
  let server: ChildProcess | null = null;
  /** What the v3 test continues from: the machine running v2, confirmed, and its server. */
  let onV2: { vm: Vm; extra: string; srv: string; url: string; readToken: string; v2: BootableOs } | null = null;

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
    // Its fleet API (--database) takes the device's check-ins with a token bound to the device;
    // the guest gets that token from QEMU's fw_cfg (larch-test-provision.service), not the image.
    const db = d.join('server.db');
    const token = (rights: string, ...more: string[]): string =>
      (JSON.parse(run(process.execPath, [SERVER_BIN, 'token', 'create', `--database=${db}`, '--repo=default', `--rights=${rights}`, ...more, '--json'])) as { token: string }).token;
    const checkinToken = token('checkin', `--device=${DEVICE}`);
    const readToken = token('read');
    server = spawn(process.execPath, [SERVER_BIN, `--repo=${srv}`, `--database=${db}`, '--port=0'], { stdio: ['ignore', 'pipe', 'inherit'] });
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
    const vm = bootImage({
      image: built.out,
      dir,
      reboot: true,
      name: `larch-boot-update-${process.pid}`,
      fwCfg: { 'opt/larch/checkin-token': checkinToken },
      netdev: `user,id=n0,restrict=on,guestfwd=tcp:10.0.2.100:8080-cmd:${process.execPath} ${FORWARD} ${port}`,
    });
    vms.push(vm);
    const stop = new RegExp(`${BOOT_FAILED.source}|"result":"(stage-failed|preflight-refused|rollback-failed|degraded|boot-failed)"`);
    // Backstops only (TCG on a loaded 2-core machine); every wait ends on a console marker.
    const report1Ms = await vm.waitFor(/LARCH-TEST-END/, 40 * MINUTE, stop);
    const rebootMs = await vm.waitFor(/"event":"reboot"/, 60 * MINUTE, stop);
    const report2Ms = await vm.waitFor(/"event":"reboot"[\s\S]*LARCH-TEST-END/, 100 * MINUTE, stop);
    const confirmedMs = await vm.waitFor(/"result":"confirmed"[\s\S]*LARCH-STATUS-END/, 120 * MINUTE, stop);
    const text = vm.console();
    console.log(
      `boot-update: image build ${(buildMs / 1000).toFixed(1)} s; power-on to v1's report ${(report1Ms / 1000).toFixed(1)} s, ` +
        `to the agent's reboot ${(rebootMs / 1000).toFixed(1)} s, to v2's report ${(report2Ms / 1000).toFixed(1)} s, to the confirmation ${(confirmedMs / 1000).toFixed(1)} s`,
    );

    const cut = text.indexOf('"event":"reboot"');
    const [first, second] = [text.slice(0, cut), text.slice(cut)];
    // One reboot: the shutdown may kill `systemctl reboot` (logged as a failed command), but v2's
    // new boot id proves the reboot and the agent confirms instead of rebooting again.
    expect(text.slice(0, text.indexOf('"result":"confirmed"')).match(/"event":"reboot"/g)).toHaveLength(1);
    // v1, booted from the menu on the root filesystem, no trial.
    const r1 = report(first);
    expect(r1.get('version')).toBe('v1');
    expect(r1.get('system-state')).toBe('running');
    expect(r1.get('boot-check')).toBe(`LARCH-BOOT no-trial healthy booted=${v1.commit}`);
    // The local change to /etc (larch-test-etc-local.service), made on v1 before the agent runs.
    expect(r1.get('etc-marker')).toBe('local-on-v1');
    expect(r1.get('etc-conf')).toBe('greeting=hello local=kept');
    const a1 = agentLines(first);
    expect(transitions(a1).slice(-5)).toEqual(['idle>check', 'check>pull', 'pull>preflight', 'preflight>stage', 'stage>reboot']);
    expect(a1.find((l) => l.event === 'transition' && l.to === 'pull')).toMatchObject({ commit: v2.commit, previous: v1.commit });

    // v2, on its trial boot, marked good by its boot check.
    const r2 = report(second);
    expect(r2.get('version')).toBe('v2');
    expect(r2.get('system-state')).toBe('running');
    expect(r2.get('boot-check')).toBe(`LARCH-BOOT trial-good booted=${v2.commit}`);
    expect(r2.get('failed-units')).toBe('');
    // The three-way merge of /etc on a real boot: the file made on v1 is there (the unit that
    // makes it did not run again), and the locally changed file is kept as it was on v1, not
    // replaced by v2's new default (greeting=hello-v2).
    expect(r2.get('etc-marker')).toBe('local-on-v1');
    expect(r2.get('etc-conf')).toBe('greeting=hello local=kept');
    const a2 = agentLines(second);
    expect(transitions(a2)).toEqual(expect.arrayContaining(['reboot>confirm', 'confirm>idle']));
    const confirmed = a2.findIndex((l) => l.event === 'transition' && l.to === 'idle');
    expect(a2[confirmed]).toMatchObject({ result: 'confirmed', commit: v2.commit });

    // `larch admin status` inside, after the confirming cycle: v2 booted, v1 the rollback.
    const status = statusAfter(second, 'confirmed');
    expect(status).toContain(`* testos ${v2.commit}.0`);
    expect(status).toContain(`  testos ${v1.commit}.0 (rollback)`);

    // The server's record of the device: the confirming cycle's check-in (accepted, on the
    // console) says v2 is booted, updated once, healthy. Later idle cycles report the same.
    expect(a2.slice(confirmed).find((l) => l.event === 'check-in')).toMatchObject({ sent: true, status: 204, payload: { phase: 'idle', booted: { commit: v2.commit } } });
    expect(await device(url, readToken)).toMatchObject({
      deviceId: DEVICE,
      ref: REF,
      phase: 'idle',
      degraded: false,
      booted: { commit: v2.commit },
      badCommits: [],
      lastError: null,
      counters: { updates: 1, rollbacks: 0 },
      health: [{ name: '10-ostree-booted', kind: 'required', ok: true }],
    });
    onV2 = { vm, extra, srv, url, readToken, v2 };
  }, 180 * MINUTE);

  it.runIf(v3Runs)('then the agent updates to v3, whose required check fails on its trial boot: GRUB falls back to v2 by itself, and the agent marks v3 bad and reports it', async (ctx) => {
    if (!onV2) return ctx.skip();
    const { vm, extra, srv, url, readToken, v2 } = onV2;
    const v3 = bootableOs('v3', extra);
    const ostree = findTool('ostree')!;
    const from = vm.console().length;
    const t0 = Date.now();
    run(ostree, ['pull-local', `--repo=${srv}`, v3.repo, v3.commit]);
    run(ostree, ['refs', `--repo=${srv}`, '--force', `--create=${REF}`, v3.commit]);
    run(ostree, ['summary', `--repo=${srv}`, '-u']);
    const since = (): string => `${((Date.now() - t0) / 1000).toFixed(1)} s`;
    // The machine is never reset from outside: v3's boot check reboots it, GRUB falls back.
    const stop = new RegExp(`${BOOT_FAILED.source}|"result":"(stage-failed|preflight-refused|rollback-failed|degraded|confirmed)"`);
    await vm.waitFor(/"event":"reboot"/, 60 * MINUTE, stop, from);
    const reboot = since();
    await vm.waitFor(/LARCH-BOOT trial-failed/, 100 * MINUTE, stop, from);
    const trialFailed = since();
    await vm.waitFor(/LARCH-BOOT fallback[\s\S]*LARCH-TEST-END/, 140 * MINUTE, stop, from);
    const fallback = since();
    await vm.waitFor(/"result":"boot-failed"[\s\S]*LARCH-STATUS-END/, 160 * MINUTE, stop, from);
    const text = vm.console().slice(from);
    vm.kill();
    console.log(`boot-update v3: from publishing v3 to the agent's reboot ${reboot}, to v3's failed trial ${trialFailed}, to v2's report after the fallback ${fallback}, to the agent's report ${since()}`);

    // On v2: the agent pulls v3, deploys it (on trial) and reboots.
    const cut = text.indexOf('"event":"reboot"');
    expect(text.slice(0, text.indexOf('"result":"boot-failed"')).match(/"event":"reboot"/g)).toHaveLength(1);
    const a1 = agentLines(text.slice(0, cut));
    expect(a1.find((l) => l.event === 'transition' && l.to === 'pull')).toMatchObject({ commit: v3.commit, previous: v2.commit });
    expect(transitions(a1).slice(-4)).toEqual(['check>pull', 'pull>preflight', 'preflight>stage', 'stage>reboot']);
    // v3 boots once, on trial; its boot check finds the required check failing and reboots.
    const after = text.slice(cut);
    expect(after).toMatch(new RegExp(`LARCH-BOOT trial-failed booted=${v3.commit} failed=50-v3-broken=1 `));
    // GRUB's trial is used up: v2 comes back by itself, and its boot check records v3 as a failed trial.
    const back = after.slice(after.indexOf('LARCH-BOOT trial-failed'));
    const r = report(back);
    expect(r.get('version')).toBe('v2');
    expect(r.get('system-state')).toBe('running');
    expect(r.get('boot-check')).toBe(`LARCH-BOOT fallback bad=${v3.commit} booted=${v2.commit} health=ok`);
    expect(r.get('failed-trials')).toBe(v3.commit);
    // The agent, on v2 again: the update did not boot; v3 is bad, v2 the default again.
    const a2 = agentLines(back);
    const failed = a2.findIndex((l) => l.event === 'transition' && l.to === 'idle');
    expect(a2[failed]).toMatchObject({ from: 'confirm', result: 'boot-failed', commit: v3.commit });
    expect(a2.slice(0, failed).find((l) => l.event === 'marked-bad')).toMatchObject({ commit: v3.commit });
    expect(statusAfter(back, 'boot-failed')[0]).toMatch(new RegExp(`^\\* testos ${v2.commit}\\.\\d+$`));
    expect(a2.slice(failed).find((l) => l.event === 'check-in')).toMatchObject({ sent: true, status: 204, payload: { badCommits: [v3.commit] } });

    // The server: the device runs v2 (no update in flight) and reported v3 bad; the fleet's event
    // log has it.
    expect(await device(url, readToken)).toMatchObject({
      phase: 'idle',
      booted: { commit: v2.commit },
      target: null,
      badCommits: [v3.commit],
      lastError: { phase: 'confirm' },
    });
    const ev = await fetch(`${url}api/v1/repos/default/fleet/events?deviceId=${DEVICE}`, { headers: { authorization: `Bearer ${readToken}` } });
    expect(ev.status).toBe(200);
    expect(((await ev.json()) as { events: unknown[] }).events).toContainEqual(expect.objectContaining({ kind: 'bad-commit', commit: v3.commit, deviceId: DEVICE }));
  }, 180 * MINUTE);
});

/** The server's record of the test's device (GET …/devices/ID with a read token). */
async function device(url: string, readToken: string): Promise<Record<string, unknown>> {
  const res = await fetch(`${url}api/v1/repos/default/devices/${DEVICE}`, { headers: { authorization: `Bearer ${readToken}` } });
  expect(res.status).toBe(200);
  return (await res.json()) as Record<string, unknown>;
}
