/**
 * Boot failures the agent must survive without looping: the boot loader falling back on its
 * own (the update never boots), a health check that never finishes (the confirmation deadline),
 * a fallback that fails its checks too (degraded, no more reboots), a fallback that never
 * comes up (boot counting gives up after maxBootAttempts), and a reboot whose command failed.
 */
import { randomUUID } from 'node:crypto';
import { chmodSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Sysroot } from '@larch/sysroot';
import { tmpDir, type TmpDir } from '@larch/test-fixtures';
import { readState } from '../src/index.js';
import { Device, Publisher, runAgent, runAgentWithClock, transitions, type AgentRun } from './harness.js';

/**
 * The body of a health check that never finishes on its own: it ends when it is killed or when
 * the agent that reads its output is gone (the write fails), so a killed agent leaves nothing
 * running behind, even one killed while it was starting the check.
 */
const UNTIL_AGENT_EXITS = 'while echo waiting; do sleep 0.2; done\nexit 1\n';

/**
 * How long a test may take: only a guard against a hang (a loaded machine runs these agents many
 * times slower than an idle one), never an assertion about speed.
 */
const LIMIT_MS = 300_000;

describe('boot failures', () => {
  let work: TmpDir;
  let pub: Publisher;
  let url = '';
  const devices: Record<string, Device> = {};

  beforeAll(async () => {
    work = await tmpDir('larch-agent-boot-');
    pub = new Publisher(work.join('pub'));
    await pub.init();
    await pub.publish({ version: '1' });
    url = await pub.start();
    for (const id of ['fallback', 'deadline', 'degraded', 'noboot', 'crashloop', 'noop', 'killed']) {
      devices[id] = new Device(work.join(id), id);
      await devices[id].provision(url);
    }
  }, LIMIT_MS);

  afterAll(async () => {
    await pub?.stop();
    for (const d of Object.values(devices)) await d.remove();
    await work?.cleanup();
  });

  const once = (d: Device): Promise<AgentRun> => runAgent(['run', '--once', `--config=${d.configPath}`]);

  /** A "reboot" that only starts a new boot, without booting the default deployment. */
  function stuckReboot(d: Device): string {
    const p = path.join(d.dir, 'stuck-reboot.sh');
    writeFileSync(p, `#!/bin/sh\ncat /proc/sys/kernel/random/uuid > "${d.bootIdFile}"\n`);
    chmodSync(p, 0o755);
    return p;
  }

  it('the boot loader falls back on its own: the update is marked bad, the default restored', async () => {
    const d = devices.fallback;
    const old = d.bootedCommit();
    const v2 = await pub.publish({ version: '2' });
    d.writeConfig(url, { rebootCommand: [stuckReboot(d)] });
    const a = await once(d);
    expect(transitions(a)).toEqual(['idle>check', 'check>pull', 'pull>preflight', 'preflight>stage', 'stage>reboot']);
    const b = await once(d);
    expect(transitions(b)).toEqual(['reboot>confirm', 'confirm>idle']);
    expect(b.lines.find((l) => l.to === 'idle')).toMatchObject({ result: 'boot-failed', commit: v2 });
    expect(readState(d.stateDir).badCommits).toEqual([v2]);
    const sr = await Sysroot.open(d.sysroot);
    expect(sr.deployments[0].csum).toBe(old);
    expect(d.bootedCommit()).toBe(old);
  }, LIMIT_MS);

  it('a check that never finishes: rolled back at the confirmation deadline', async () => {
    const d = devices.deadline;
    const old = d.bootedCommit();
    const hang = path.join(d.healthDir, 'required.d/50-hang');
    // The check's own limit is an hour: only the 3 s confirmation deadline can end it, so a run
    // that returns at all was cut at the deadline (one that waited would hit the test timeout).
    d.writeConfig(url, { healthChecks: { dir: d.healthDir, checkTimeoutSeconds: 3600, confirmTimeoutSeconds: 3, maxBootAttempts: 3 } });
    const v3 = await pub.publish({ version: '3' });
    await once(d);
    // Hangs only on the new deployment.
    writeFileSync(hang, `#!/bin/sh\n[ "$LARCH_BOOTED_COMMIT" = "${v3}" ] || exit 0\n${UNTIL_AGENT_EXITS}`);
    chmodSync(hang, 0o755);
    const b = await once(d);
    expect(transitions(b)).toEqual(['reboot>confirm', 'confirm>rollback', 'rollback>reboot']);
    expect(b.lines.find((l) => l.event === 'health-failed' && l.check === '50-hang')).toMatchObject({ timedOut: true });
    const c = await once(d);
    expect(c.lines.find((l) => l.to === 'idle')).toMatchObject({ result: 'rolled-back', commit: v3 });
    expect(d.bootedCommit()).toBe(old);
  }, LIMIT_MS);

  it('a fallback failing its checks too: degraded, and no reboot loop', async () => {
    const d = devices.degraded;
    const v4 = await pub.publish({ version: '4' });
    await once(d);
    // From now on every deployment fails the required check.
    const bad = path.join(d.healthDir, 'required.d/60-always');
    writeFileSync(bad, '#!/bin/sh\nexit 9\n');
    chmodSync(bad, 0o755);
    const b = await once(d);
    expect(transitions(b)).toEqual(['reboot>confirm', 'confirm>rollback', 'rollback>reboot']);
    const c = await once(d);
    expect(transitions(c)).toEqual(['reboot>confirm', 'confirm>idle']);
    expect(c.lines.find((l) => l.to === 'idle')).toMatchObject({ result: 'degraded', commit: v4 });
    expect(c.lines.some((l) => l.event === 'reboot')).toBe(false);
    expect(readState(d.stateDir)).toMatchObject({ degraded: true, phase: 'idle', badCommits: [v4] });
    // The next cycle does not reboot again.
    const e = await once(d);
    expect(transitions(e)).toEqual(['idle>check', 'check>idle']);
    expect(e.lines.some((l) => l.event === 'reboot')).toBe(false);
  }, LIMIT_MS);

  it('a fallback that never boots: boot counting gives up after maxBootAttempts', async () => {
    const d = devices.noboot;
    const v5 = await pub.publish({ version: '5', extra: { 'usr/share/broken': 'yes\n' } });
    await once(d); // staged, rebooted into v5
    expect(d.bootedCommit()).toBe(v5);
    // From now on reboots do not switch deployments.
    d.writeConfig(url, { rebootCommand: [stuckReboot(d)], healthChecks: { dir: d.healthDir, checkTimeoutSeconds: 10, confirmTimeoutSeconds: 120, maxBootAttempts: 2 } });
    const b = await once(d);
    expect(transitions(b)).toEqual(['reboot>confirm', 'confirm>rollback', 'rollback>reboot']);
    const runs: AgentRun[] = [];
    for (let i = 0; i < 6; i++) {
      const r = await once(d);
      runs.push(r);
      if (r.lines.some((l) => l.to === 'idle')) break;
    }
    const last = runs[runs.length - 1];
    expect(last.lines.find((l) => l.to === 'idle')).toMatchObject({ result: 'degraded', commit: v5 });
    expect(runs.length).toBe(2);
    expect(readState(d.stateDir)).toMatchObject({ degraded: true, fallbackBoots: 0, phase: 'idle' });
  }, LIMIT_MS);

  it('an update whose boots never get confirmed (the machine dies during the checks) is rolled back after maxBootAttempts boots', async () => {
    const d = devices.crashloop;
    const old = d.bootedCommit();
    // On v6 the required check never ends (and no limit ends it): the agent is always killed
    // before it can confirm, however late the kill comes.
    d.writeConfig(url, { healthChecks: { dir: d.healthDir, checkTimeoutSeconds: 3600, confirmTimeoutSeconds: 3600, maxBootAttempts: 3 } });
    const v6 = await pub.publish({ version: '6' });
    const hang = path.join(d.healthDir, 'required.d/50-hang');
    writeFileSync(hang, `#!/bin/sh\n[ "$(cat "$LARCH_BOOTED_ROOT/usr/share/version")" = 6 ] || exit 0\n${UNTIL_AGENT_EXITS}`);
    chmodSync(hang, 0o755);
    await once(d);
    expect(d.bootedCommit()).toBe(v6);
    // Three boots of v6, each dying during the health checks (the agent is killed, a new boot id).
    for (let boot = 1; boot <= 3; boot++) {
      const r = await runAgent(['run', '--once', `--config=${d.configPath}`], { killOnEvent: 'boot-counted', killDelayMs: 100 });
      expect(r.signal).toBe('SIGKILL');
      expect(r.lines.find((l) => l.event === 'boot-counted')).toMatchObject({ bootCount: boot });
      // Killed again within the same boot: not a new boot.
      const again = await runAgent(['run', '--once', `--config=${d.configPath}`], { killAfterLines: 1, killDelayMs: 200 });
      expect(again.lines.some((l) => l.event === 'boot-counted')).toBe(false);
      writeFileSync(d.bootIdFile, `${randomUUID()}\n`);
    }
    const r = await once(d);
    expect(transitions(r)).toEqual(['confirm>rollback', 'rollback>reboot']);
    expect(r.lines.find((l) => l.to === 'rollback')).toMatchObject({ reason: 'booted 4 times without confirmation' });
    const f = await once(d);
    expect(f.lines.find((l) => l.to === 'idle')).toMatchObject({ result: 'rolled-back', commit: v6 });
    expect(d.bootedCommit()).toBe(old);
  }, LIMIT_MS);

  it('a reboot command that returns without rebooting: wait in this boot, then issue it again', async () => {
    const d = devices.noop;
    // The agent's clock moves only when the test moves it: a restart "at once" is before the
    // pending reboot's deadline, "later" is at it, whatever the machine's speed.
    let clock = Date.now();
    const at = (): Promise<AgentRun> => runAgentWithClock(d.configPath, () => clock);
    const fail = path.join(d.dir, 'fail-reboot.sh');
    writeFileSync(fail, '#!/bin/sh\necho "no permission" >&2\nexit 1\n');
    chmodSync(fail, 0o755);
    const timeouts = { noProgressSeconds: 5, requestSeconds: 30, rebootSeconds: 60 };
    d.writeConfig(url, { rebootCommand: ['true'], timeouts });
    const v7 = await pub.publish({ version: '7' });
    const a = await at();
    expect(a.lines.filter((l) => l.event === 'reboot')).toHaveLength(1);
    expect(readState(d.stateDir).nextAttemptAt).toBe(clock + 60_000);
    const b = await at();
    expect(b.lines.some((l) => l.event === 'reboot')).toBe(false);
    expect(b.lines.find((l) => l.event === 'waiting')).toMatchObject({ reason: 'reboot pending' });
    // Still the same boot after rebootSeconds: the command is issued again; a failing one backs off.
    clock = readState(d.stateDir).nextAttemptAt!;
    d.writeConfig(url, { rebootCommand: [fail], timeouts });
    const c = await at();
    expect(c.lines.filter((l) => l.event === 'reboot')).toHaveLength(1);
    expect(c.lines.find((l) => l.event === 'error')).toMatchObject({ failedPhase: 'reboot', code: 'IO_ERROR' });
    const e = await at();
    expect(e.lines.some((l) => l.event === 'reboot')).toBe(false);
    expect(e.lines.find((l) => l.event === 'waiting')).toMatchObject({ reason: 'backoff' });
    clock = readState(d.stateDir).nextAttemptAt!;
    d.writeConfig(url, { timeouts });
    await at();
    expect(d.bootedCommit()).toBe(v7);
    const f = await at();
    expect(f.lines.find((l) => l.to === 'idle')).toMatchObject({ result: 'confirmed', commit: v7 });
  }, LIMIT_MS);

  it('a reboot command that reboots and then fails (killed by its own shutdown): the new boot counts, no second reboot', async () => {
    const d = devices.killed;
    const clock = Date.now();
    const at = (): Promise<AgentRun> => runAgentWithClock(d.configPath, () => clock);
    // The device's real "reboot" (a new boot id, the default deployment booted), then exit 143
    // as a systemctl killed by SIGTERM does.
    const killed = path.join(d.dir, 'killed-reboot.sh');
    const argv = d.config(url).rebootCommand!.map((a) => `'${a}'`).join(' ');
    writeFileSync(killed, `#!/bin/sh
${argv} || exit 1
exit 143
`);
    chmodSync(killed, 0o755);
    d.writeConfig(url, { rebootCommand: [killed], timeouts: { noProgressSeconds: 5, requestSeconds: 30, rebootSeconds: 600 } });
    const v8 = await pub.publish({ version: '8' });
    const a = await at();
    expect(a.lines.filter((l) => l.event === 'reboot')).toHaveLength(1);
    expect(a.lines.find((l) => l.event === 'error')).toMatchObject({ failedPhase: 'reboot', code: 'IO_ERROR' });
    expect(d.bootedCommit()).toBe(v8);
    // Same clock, long before the reboot's deadline: the new boot id is the reboot; confirm it.
    const b = await at();
    expect(b.lines.some((l) => l.event === 'reboot' || l.event === 'waiting')).toBe(false);
    expect(transitions(b)).toContain('reboot>confirm');
    expect(b.lines.find((l) => l.to === 'idle')).toMatchObject({ result: 'confirmed', commit: v8 });
  }, LIMIT_MS);
});
