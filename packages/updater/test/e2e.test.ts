/**
 * End to end with real processes: `larch-server` serving an archive repository, three devices
 * (a sysroot each, in temporary directories) driven by `larch-agent run --once` child
 * processes. A new commit is published; each agent checks, pulls, pre-flights, stages,
 * "reboots" (the reboot script boots the default deployment), and, restarted, runs its health
 * checks and confirms. A commit that fails a required check is rolled back on every device,
 * marked bad and not taken again; a failing wanted check only warns. Phased rollout at 34%
 * updates exactly the devices whose bucket is under 34.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'node:http';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { sysrootStatus } from '@larch/sysroot';
import { tmpDir, type TmpDir } from '@larch/test-fixtures';
import { readState, rolloutBucket } from '../src/index.js';
import { AGENT_BIN, CHILD_ENV, Device, Publisher, runAgent, runCli, transitions, type AgentRun } from './harness.js';

describe('larch-agent with three devices against larch-server', () => {
  let work: TmpDir;
  let pub: Publisher;
  const devices: Device[] = [];
  let v1 = '';

  beforeAll(async () => {
    work = await tmpDir('larch-agent-e2e-');
    pub = new Publisher(work.join('pub'));
    await pub.init();
    v1 = await pub.publish({ version: '1' });
    const url = await pub.start();
    for (const id of ['device-alpha', 'device-bravo', 'device-charlie']) {
      const d = new Device(work.join(id), id);
      await d.provision(url);
      devices.push(d);
    }
  }, 60_000);

  afterAll(async () => {
    await pub?.stop();
    for (const d of devices) await d.remove();
    await work?.cleanup();
  });

  const once = (d: Device): Promise<AgentRun> => runAgent(['run', '--once', `--config=${d.configPath}`]);
  const all = (): Promise<AgentRun[]> => Promise.all(devices.map(once));

  it('a new commit: check, pull, stage, reboot, then health checks and confirm on every device', async () => {
    const v2 = await pub.publish({ version: '2', kernel: 'a newer kernel\n' });
    const first = await all();
    for (const [i, r] of first.entries()) {
      expect(r.code, r.stderr).toBe(0);
      expect(transitions(r)).toEqual(['idle>check', 'check>pull', 'pull>preflight', 'preflight>stage', 'stage>reboot']);
      expect(r.lines.some((l) => l.event === 'reboot')).toBe(true);
      expect(devices[i].bootedCommit()).toBe(v2);
    }
    const second = await all();
    for (const [i, r] of second.entries()) {
      expect(r.code, r.stderr).toBe(0);
      expect(transitions(r)).toEqual(['reboot>confirm', 'confirm>idle']);
      expect(r.lines.find((l) => l.event === 'transition' && l.to === 'idle')).toMatchObject({ result: 'confirmed', commit: v2 });
      const st = readState(devices[i].stateDir);
      expect(st).toMatchObject({ phase: 'idle', target: null, degraded: false, counters: { updates: 1, rollbacks: 0 } });
      expect(st.counters.bytesFetched).toBeGreaterThan(0);
      // `larch admin status`: the new deployment first, the old one after it.
      const cli = await runCli(['admin', 'status', `--sysroot=${devices[i].sysroot}`, '--json']);
      expect(cli.code, cli.stderr).toBe(0);
      const js = JSON.parse(cli.stdout) as { deployments: Array<{ checksum: string; version: string }> };
      expect(js.deployments.map((d) => d.checksum)).toEqual([v2, v1]);
      const text = await runCli(['admin', 'status', `--sysroot=${devices[i].sysroot}`]);
      expect(text.stdout).toContain(`testos ${v2}.0`);
      expect(text.stdout).toContain(`testos ${v1}.0`);
      // With the running root known: v2 booted, v1 the rollback (the CLI, then the library).
      const booted = await runCli(['admin', 'status', `--sysroot=${devices[i].sysroot}`, `--booted-root=${devices[i].bootedLink}`]);
      expect(booted.code, booted.stderr).toBe(0);
      expect(booted.stdout).toMatch(new RegExp(`^\\* testos ${v2}\\.0$`, 'm'));
      expect(booted.stdout).toMatch(new RegExp(`^  testos ${v1}\\.0 \\(rollback\\)$`, 'm'));
      const s = await sysrootStatus(devices[i].sysroot, { bootedRoot: devices[i].bootedLink });
      expect(s.deployments.map((d) => [d.checksum, d.booted, d.rollback])).toEqual([
        [v2, true, false],
        [v1, false, true],
      ]);
    }
    // Nothing new: a check, up to date.
    const third = await once(devices[0]);
    expect(transitions(third)).toEqual(['idle>check', 'check>idle']);
    expect(third.lines.find((l) => l.to === 'idle')).toMatchObject({ result: 'up-to-date' });
    // status --json of the agent itself
    const st = await runAgentCli(['status', '--json', `--config=${devices[0].configPath}`]);
    const parsed = JSON.parse(st) as { deviceId: string; state: { phase: string }; sysroot: { deployments: Array<{ booted: boolean; checksum: string }> } };
    expect(parsed.deviceId).toBe('device-alpha');
    expect(parsed.state.phase).toBe('idle');
    expect(parsed.sysroot.deployments.find((d) => d.booted)?.checksum).toBe(v2);
    // The check-in payload is logged with its schema's fields.
    expect(third.lines.find((l) => l.event === 'check-in')).toMatchObject({ sent: false, payload: { deviceId: 'device-alpha', phase: 'idle', booted: { commit: v2, version: '2' } } });
  }, 120_000);

  it('a required check failing rolls back on every device, marks the commit bad, and it is not taken again', async () => {
    const good = devices.map((d) => d.bootedCommit());
    const v3 = await pub.publish({ version: '3', extra: { 'usr/share/broken': 'yes\n' } });
    const a = await all();
    for (const r of a) expect(transitions(r)).toEqual(['idle>check', 'check>pull', 'pull>preflight', 'preflight>stage', 'stage>reboot']);
    for (const d of devices) expect(d.bootedCommit()).toBe(v3);
    // Restarted on v3: the required check fails, rollback, reboot.
    const b = await all();
    for (const r of b) {
      expect(transitions(r)).toEqual(['reboot>confirm', 'confirm>rollback', 'rollback>reboot']);
      expect(r.lines.find((l) => l.event === 'health-failed')).toMatchObject({ check: '10-not-broken', kind: 'required', exitCode: 1 });
      expect(r.lines.find((l) => l.event === 'marked-bad')).toMatchObject({ commit: v3 });
    }
    for (const [i, d] of devices.entries()) expect(d.bootedCommit()).toBe(good[i]);
    // Restarted on the fallback: confirmed as rolled back.
    const c = await all();
    for (const [i, r] of c.entries()) {
      expect(transitions(r)).toEqual(['reboot>confirm', 'confirm>idle']);
      expect(r.lines.find((l) => l.to === 'idle')).toMatchObject({ result: 'rolled-back', commit: v3, booted: good[i] });
      const st = readState(devices[i].stateDir);
      expect(st.badCommits).toContain(v3);
      expect(st.counters.rollbacks).toBe(1);
      const s = await sysrootStatus(devices[i].sysroot, { bootedRoot: devices[i].bootedLink });
      expect(s.deployments[0]).toMatchObject({ checksum: good[i], booted: true });
    }
    // The next check skips it without fetching anything.
    const d = await all();
    for (const [i, r] of d.entries()) {
      expect(transitions(r)).toEqual(['idle>check', 'check>idle']);
      expect(r.lines.find((l) => l.event === 'skip-bad')).toMatchObject({ commit: v3 });
      expect(devices[i].bootedCommit()).toBe(good[i]);
    }
  }, 120_000);

  it('a fixed commit replacing the bad one is taken, even when it is dated before the bad one', async () => {
    const st = readState(devices[0].stateDir);
    const bad = st.badCommits[0];
    // Between the running commit (publish #2) and the bad one (#3): newer than what runs.
    const fixed = await pub.publish({ version: '3.1' }, undefined, 1_700_000_000n + 250n);
    expect(fixed).not.toBe(bad);
    const a = await all();
    for (const r of a) expect(transitions(r)).toEqual(['idle>check', 'check>pull', 'pull>preflight', 'preflight>stage', 'stage>reboot']);
    const b = await all();
    for (const [i, r] of b.entries()) {
      expect(r.lines.find((l) => l.to === 'idle')).toMatchObject({ result: 'confirmed', commit: fixed });
      expect(devices[i].bootedCommit()).toBe(fixed);
    }
  }, 120_000);

  it('a downgrade is refused at the check, before any content is fetched', async () => {
    const running = devices.map((d) => d.bootedCommit());
    const older = await pub.publish({ version: '0.9' }, undefined, 1_700_000_000n + 10n);
    const r = await all();
    for (const [i, run] of r.entries()) {
      expect(transitions(run)).toEqual(['idle>check', 'check>idle']);
      const err = run.lines.find((l) => l.event === 'error') as { code: string; message: string; data: { reason: string } };
      expect(err).toMatchObject({ failedPhase: 'check', code: 'INVALID_ARGUMENT', data: { reason: 'downgrade', commit: older, current: running[i] } });
      expect(err.message).toMatch(/^Upgrade target revision '[0-9a-f]{64}' with timestamp '.*' is chronologically older than current revision '[0-9a-f]{64}' with timestamp '.*'; use --allow-downgrade to permit$/);
      expect(run.lines.some((l) => l.event === 'pulled')).toBe(false);
      expect(devices[i].bootedCommit()).toBe(running[i]);
    }
  }, 60_000);

  it('a wanted check failing only warns', async () => {
    const v4 = await pub.publish({ version: '4', extra: { 'usr/share/wanted-broken': 'yes\n' } });
    await all();
    const r = await all();
    for (const [i, run] of r.entries()) {
      expect(transitions(run)).toEqual(['reboot>confirm', 'confirm>idle']);
      expect(run.lines.find((l) => l.event === 'health-warning')).toMatchObject({ check: '10-nice', kind: 'wanted', exitCode: 3 });
      expect(run.lines.find((l) => l.to === 'idle')).toMatchObject({ result: 'confirmed', commit: v4, warnings: 1 });
      expect(devices[i].bootedCommit()).toBe(v4);
    }
  }, 120_000);

  it('phased rollout at 34%: exactly the devices whose bucket is under 34 update', async () => {
    const before = devices.map((d) => d.bootedCommit());
    // Publish until the three devices fall on both sides of 34 for the new commit.
    let commit = '';
    let buckets: number[] = [];
    for (let n = 5; n < 40; n++) {
      commit = await pub.publish({ version: `${n}` }, 34);
      buckets = devices.map((d) => rolloutBucket(d.deviceId, commit));
      if (buckets.some((b) => b < 34) && buckets.some((b) => b >= 34)) break;
    }
    expect(buckets.some((b) => b < 34) && buckets.some((b) => b >= 34)).toBe(true);
    const r1 = await all();
    await all();
    for (const [i, d] of devices.entries()) {
      const takes = buckets[i] < 34;
      if (takes) {
        expect(d.bootedCommit()).toBe(commit);
      } else {
        expect(d.bootedCommit()).toBe(before[i]);
        expect(r1[i].lines.find((l) => l.event === 'rollout-skip')).toMatchObject({ commit, percent: 34, bucket: buckets[i] });
      }
    }
    // Raised to 100%: the rest follow.
    await pub.summary(100);
    await all();
    await all();
    for (const d of devices) expect(d.bootedCommit()).toBe(commit);
  }, 120_000);

  it('the daemon serves Prometheus metrics on 127.0.0.1 and stops on SIGTERM', async () => {
    const d = devices[0];
    d.writeConfig(pub.url, { metricsPort: 0, schedule: { intervalSeconds: 3600, jitterSeconds: 0 } });
    const child = spawn(process.execPath, [AGENT_BIN, 'run', `--config=${d.configPath}`], { stdio: ['ignore', 'pipe', 'pipe'], env: CHILD_ENV });
    const rl = createInterface({ input: child.stdout });
    const port = await new Promise<number>((resolve) => {
      rl.on('line', (l) => {
        const j = JSON.parse(l) as { event: string; port?: number };
        if (j.event === 'metrics') resolve(j.port!);
      });
    });
    // Wait for the first cycle to end (it sleeps after).
    await new Promise<void>((resolve) => rl.on('line', (l) => (JSON.parse(l) as { event: string }).event === 'sleep' && resolve()));
    const body = await new Promise<string>((resolve, reject) => {
      request({ host: '127.0.0.1', port, path: '/metrics' }, (res) => {
        let s = '';
        res.on('data', (b: Buffer) => (s += b.toString()));
        res.on('end', () => resolve(s));
      })
        .on('error', reject)
        .end();
    });
    expect(body).toContain('larch_agent_state{state="idle"} 1');
    expect(body).toMatch(/larch_agent_bytes_fetched_total [1-9][0-9]*/);
    expect(body).toMatch(/larch_agent_last_check_timestamp_seconds [1-9]/);
    expect(body).toContain('larch_agent_rollbacks_total 1');
    const exited = new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    d.writeConfig(pub.url);
  }, 60_000);
});

function runAgentCli(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [AGENT_BIN, ...args], { stdio: ['ignore', 'pipe', 'inherit'], env: CHILD_ENV });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`larch-agent exited with ${code}`))));
  });
}
