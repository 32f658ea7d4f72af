/**
 * SIGKILL at many points: `larch-agent run --once` is killed after its N-th log line (N grows
 * through the cycle, so the kills walk across check, pull, pre-flight, stage, reboot, the health
 * checks, rollback and confirmation) plus a random delay, then restarted, until the update is
 * done. After every kill the device must be consistent: the state file parses, the sysroot
 * loads, the booted deployment and the default one are the old or the new commit (never neither,
 * never a missing directory), and in the end the update is confirmed (or, for a commit failing
 * its required check, rolled back and marked bad).
 */
import { existsSync, statSync } from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Sysroot } from '@larch/sysroot';
import { tmpDir, type TmpDir } from '@larch/test-fixtures';
import { readState } from '../src/index.js';
import { Device, Publisher, runAgent } from './harness.js';

describe('larch-agent killed with SIGKILL at many points', () => {
  let work: TmpDir;
  let pub: Publisher;
  const devices: Device[] = [];
  /** The persisted phase right after each kill. */
  const killedIn: string[] = [];

  beforeAll(async () => {
    work = await tmpDir('larch-agent-crash-');
    pub = new Publisher(work.join('pub'));
    await pub.init();
    await pub.publish({ version: '1' });
    const url = await pub.start();
    for (const id of ['crash-one', 'crash-two']) {
      const d = new Device(work.join(id), id);
      await d.provision(url, { timeouts: { noProgressSeconds: 5, requestSeconds: 30, rebootSeconds: 1 } });
      d.writeChecks({ slow: 0.3 });
      devices.push(d);
    }
  }, 60_000);

  afterAll(async () => {
    await pub?.stop();
    for (const d of devices) await d.remove();
    await work?.cleanup();
  });

  async function consistent(d: Device, allowed: string[]): Promise<void> {
    readState(d.stateDir);
    const booted = d.bootedCommit();
    expect(allowed).toContain(booted);
    expect(statSync(d.bootedLink).isDirectory()).toBe(true);
    const sr = await Sysroot.open(d.sysroot, { bootedRoot: d.bootedLink });
    expect(sr.booted?.csum).toBe(booted);
    expect(allowed).toContain(sr.deployments[0].csum);
    for (const dep of sr.deployments) expect(existsSync(sr.deploymentDir(dep))).toBe(true);
  }

  /** Drive one update to its end with kills; returns the number of kills that hit a running agent. */
  async function updateWithKills(d: Device, from: string, to: string, firstKill: number, maxKills: number, killInStage = false): Promise<number> {
    let kills = 0;
    let checkKills = 0;
    let stageKilled = !killInStage;
    let k = firstKill;
    for (let iter = 0; iter < 80; iter++) {
      const kill = kills < maxKills;
      // Runs that will confirm get killed while the (slow) health check runs, twice per update.
      const phase = readState(d.stateDir).phase;
      const inChecks = (phase === 'reboot' || phase === 'confirm') && checkKills < 2;
      // Staging is quick: where asked, one run is killed right as it enters the stage phase (the
      // phase is saved before the transition is logged), so every phase is hit whatever the speed.
      const atStage = !stageKilled && (phase === 'idle' || phase === 'check' || phase === 'pull' || phase === 'preflight');
      const opts = !kill
        ? {}
        : inChecks
          ? { killOnEvent: 'boot-counted', killDelayMs: 50 + Math.floor(Math.random() * 200) }
          : atStage
            ? { killOnTransitionTo: 'stage', killDelayMs: 0 }
            : { killAfterLines: k, killDelayMs: kills % 3 === 2 ? 100 + Math.floor(Math.random() * 300) : Math.floor(Math.random() * 40) };
      const r = await runAgent(['run', '--once', `--config=${d.configPath}`], opts);
      if (inChecks && r.signal === 'SIGKILL') checkKills++;
      if (atStage && r.signal === 'SIGKILL' && readState(d.stateDir).phase === 'stage') stageKilled = true;
      if (r.signal === 'SIGKILL') {
        kills++;
        killedIn.push(readState(d.stateDir).phase);
        // Walk the kill point through the (resumed) cycle, wrapping around.
        k = (k % 6) + 1;
        await consistent(d, [from, to]);
        continue;
      }
      expect(r.code, r.stderr).toBe(0);
      await consistent(d, [from, to]);
      const st = readState(d.stateDir);
      if (st.phase === 'idle' && r.lines.some((l) => l.event === 'transition' && l.to === 'idle' && l.result !== 'check-failed')) return kills;
      await delay(150);
    }
    throw new Error(`${d.deviceId}: update ${to} did not finish`);
  }

  it('resumes to a consistent state and finishes, over 30+ kills', async () => {
    let total = 0;
    let prev = devices[0].bootedCommit();
    // Good updates and bad ones (required check fails: rollback), alternating.
    const plan: Array<{ broken: boolean }> = [{ broken: false }, { broken: true }, { broken: false }, { broken: false }, { broken: true }, { broken: false }];
    const bad: string[] = [];
    for (const [n, step] of plan.entries()) {
      const next = await pub.publish({
        version: `${n + 2}`,
        kernel: `kernel ${n}\n`,
        extra: step.broken ? { 'usr/share/broken': 'yes\n' } : { 'usr/share/data': `${n}`.repeat(20_000) },
      });
      const kills = await Promise.all(devices.map((d, i) => updateWithKills(d, prev, next, 1 + ((n + i) % 4), 8, n === 1 || n === 3)));
      total += kills.reduce((a, b) => a + b, 0);
      if (step.broken) bad.push(next);
      const expected = step.broken ? prev : next;
      for (const d of devices) {
        expect(d.bootedCommit()).toBe(expected);
        const st = readState(d.stateDir);
        expect(st).toMatchObject({ phase: 'idle', degraded: false, badCommits: bad });
        const sr = await Sysroot.open(d.sysroot, { bootedRoot: d.bootedLink });
        expect(sr.deployments[0].csum).toBe(expected);
        if (!step.broken) expect(sr.deployments.map((x) => x.csum)).toEqual([next, prev]);
      }
      prev = expected;
    }
    const phases = new Set(killedIn);
    for (const p of ['check', 'pull', 'stage', 'reboot', 'confirm']) expect(phases).toContain(p);
    expect(total).toBeGreaterThanOrEqual(30);
  }, 300_000);
});
