/**
 * Automatic pause end to end, with three real agents (`larch-agent run --once` processes over
 * temporary sysroots, as in @larch/updater's tests) checking in to
 *   - the real `larch-server --database` (fleet wired to the publisher's `setRollout`, tokens
 *     issued with `larch-server token create`), and
 *   - a small node:http server composing the fleet handler, static serving of the archive
 *     repository and an `onAutoPause` that rewrites the summary with the ref's rollout at 0.
 *
 * A commit needs a firmware that two devices lack: their required health check fails, they roll
 * back, mark it bad and check in; the ref pauses by itself, and the third device, which would
 * have taken the commit, skips it because the published rollout is now 0%.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createReadStream, statSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readSummary, Repo } from '@larch/core-store';
import { Database } from '@larch/db';
import { TokenStore } from '@larch/publish';
import { tmpDir, type TmpDir } from '@larch/test-fixtures';
import { rolloutPercent } from '@larch/updater';
import { createFleet, type Fleet } from '../src/index.js';
import { CHILD_ENV, Device, Publisher as RepoWriter, REF, runAgent, SERVER_BIN, transitions, type AgentRun } from '../../updater/test/harness.js';
import { call, serve, type TestServer } from './helpers.js';

/**
 * How long to wait for the write-behind thread or the pause timer to get there: a guard against
 * a hang, not a bound on speed (a loaded machine may take many times longer than an idle one).
 */
const POLL_MS = 60_000;

/** Static files of the repository (GET/HEAD), refusing dot segments. */
function serveRepo(root: string, req: IncomingMessage, res: ServerResponse): void {
  const segs = (req.url ?? '/').split('?')[0].split('/').slice(1).map(decodeURIComponent);
  if ((req.method !== 'GET' && req.method !== 'HEAD') || segs.some((s) => s === '..' || s === '.' || s.includes('/'))) {
    res.writeHead(400);
    res.end();
    return;
  }
  const file = path.join(root, ...segs);
  let size: number;
  try {
    const st = statSync(file);
    if (!st.isFile()) throw new Error('not a file');
    size = st.size;
  } catch {
    res.writeHead(404);
    res.end();
    return;
  }
  res.writeHead(200, { 'content-length': size });
  if (req.method === 'HEAD') res.end();
  else createReadStream(file).pipe(res);
}

/** What the scenario needs of a server. */
interface World {
  url: string;
  repoName: string;
  readToken: string;
  deviceToken(id: string): Promise<string>;
  /** The pauses made so far, as the server knows them. */
  pauses(): Promise<Array<{ ref: string; reason: string }>>;
  close(): Promise<void>;
}

/** `node larch-server ARGS…` to completion. */
function serverCli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, [SERVER_BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: CHILD_ENV });
    let stdout = '';
    let stderr = '';
    c.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    c.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    c.on('error', reject);
    c.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** The real larch-server over the repository, with a database. */
async function larchServer(work: TmpDir, repo: RepoWriter): Promise<World> {
  const dbPath = work.join('larch-server.db');
  const token = async (args: string[]): Promise<string> => {
    const r = await serverCli(['token', 'create', `--database=${dbPath}`, '--repo=default', ...args]);
    if (r.code !== 0) throw new Error(`larch-server token create failed: ${r.stderr}`);
    return r.stdout.trim();
  };
  const readToken = await token(['--rights=read']);
  const child: ChildProcess = spawn(process.execPath, [SERVER_BIN, `--repo=${repo.repoPath}`, '--port=0', `--database=${dbPath}`, `--access-log=${work.join('access.log')}`], { stdio: ['ignore', 'pipe', 'pipe'], env: CHILD_ENV });
  let stderr = '';
  child.stderr!.on('data', (b: Buffer) => (stderr = (stderr + b.toString()).slice(-8000)));
  // However long a loaded machine takes: a server that exits first fails here, one that hangs
  // runs into the test's timeout.
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (b: Buffer) => {
      out += b.toString();
      const m = /at (http:\/\/\S+?)\/?\s/.exec(out);
      if (m) resolve(m[1]);
    });
    child.once('error', reject);
    child.once('exit', (c) => reject(new Error(`larch-server exited with ${c}: ${stderr}`)));
  });
  return {
    url,
    repoName: 'default',
    readToken,
    deviceToken: (id) => token(['--rights=checkin', `--device=${id}`, `--label=${id}`]),
    pauses: async () => {
      const r = await call('GET', `${url}/api/v1/repos/default/rollouts`, { token: readToken });
      return (r.body.rollouts as Array<{ ref: string; paused: boolean; reason: string | null }>).filter((x) => x.paused).map((x) => ({ ref: x.ref, reason: x.reason ?? '' }));
    },
    close: async () => {
      if (child.exitCode === null) {
        const done = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await done;
      }
    },
  };
}

/** A node:http server composing the fleet handler with static serving and a summary-rewriting pause. */
async function composedServer(work: TmpDir, repo: RepoWriter): Promise<World> {
  const db = Database.open(work.join('server.db'));
  const tokens = new TokenStore(db);
  const made: Array<{ ref: string; reason: string }> = [];
  const fleet: Fleet = createFleet({
    db,
    tokens,
    repos: ['main'],
    refCommit: async (_name, ref) => (await Repo.open(repo.repoPath)).resolveRef(ref),
    onAutoPause: async (_name, ref, reason) => {
      made.push({ ref, reason });
      await repo.summary(0);
    },
    log: () => undefined,
  });
  const srv: TestServer = await serve([fleet.handler], (req, res) => serveRepo(repo.repoPath, req, res));
  return {
    url: srv.url,
    repoName: 'main',
    readToken: tokens.create({ repo: 'main', rights: ['read'] }).token,
    deviceToken: async (id) => tokens.create({ repo: 'main', rights: ['checkin'], deviceId: id, label: id }).token,
    pauses: async () => made,
    close: async () => {
      await srv.close();
      await fleet.close();
      db.close();
    },
  };
}

describe.each([
  ['larch-server', larchServer],
  ['a composed node:http server', composedServer],
] as const)('auto-pause with three agents, %s', (_name, makeWorld) => {
  let work: TmpDir;
  let repo: RepoWriter;
  let world: World;
  const devices: Device[] = [];

  beforeAll(async () => {
    work = await tmpDir('larch-fleet-autopause-');
    repo = new RepoWriter(work.join('pub'));
    await repo.init();
    await repo.publish({ version: '1' });
    world = await makeWorld(work, repo);
    for (const id of ['device-alpha', 'device-bravo', 'device-charlie']) {
      const d = new Device(work.join(id), id);
      const token = await world.deviceToken(id);
      await d.provision(`${world.url}/`, { checkInUrl: `${world.url}/api/v1/repos/${world.repoName}/devices/{deviceId}/check-in`, checkInToken: token });
      // Commits marked as needing the new firmware fail on devices without it (charlie has it).
      const check = path.join(d.healthDir, 'required.d/20-firmware');
      const firmware = path.join(d.dir, 'new-firmware');
      await writeFile(check, `#!/bin/sh\ntest ! -e "$LARCH_BOOTED_ROOT/usr/share/needs-new-firmware" || test -e '${firmware}' || { echo "firmware too old"; exit 1; }\n`, { mode: 0o755 });
      if (id === 'device-charlie') await writeFile(firmware, 'v2\n');
      devices.push(d);
    }
  }, 90_000);

  afterAll(async () => {
    await world?.close();
    for (const d of devices) await d.remove();
    await work?.cleanup();
  });

  const once = (d: Device): Promise<AgentRun> => runAgent(['run', '--once', `--config=${d.configPath}`]);
  const [alpha, bravo, charlie] = [0, 1, 2].map((i) => () => devices[i]);
  const publishedPercent = async (): Promise<number> => rolloutPercent(readSummary(await readFile(path.join(repo.repoPath, 'summary'))).metadata, REF);
  const checkInsSent = (r: AgentRun): unknown[] => r.lines.filter((l) => l.event === 'check-in').map((l) => l.sent);
  const api = (p: string): Promise<{ status: number; body: any }> => call('GET', `${world.url}/api/v1/repos/${world.repoName}/${p}`, { token: world.readToken });

  it('two devices fail the commit, the ref pauses by itself, the third does not take it', async () => {
    // Every device checks in once, up to date.
    for (const r of await Promise.all(devices.map(once))) {
      expect(transitions(r)).toEqual(['idle>check', 'check>idle']);
      expect(checkInsSent(r)).toEqual([true]);
    }
    const listed = await api('devices');
    expect(listed.body.devices.map((d: { deviceId: string; phase: string }) => [d.deviceId, d.phase])).toEqual([
      ['device-alpha', 'idle'],
      ['device-bravo', 'idle'],
      ['device-charlie', 'idle'],
    ]);
    const v1 = alpha().bootedCommit();

    const v2 = await repo.publish({ version: '2', extra: { 'usr/share/needs-new-firmware': 'yes\n' } });
    expect(await publishedPercent()).toBe(100);
    expect(await world.pauses()).toEqual([]);
    // charlie would take v2 at this point (100%); alpha and bravo go first.
    const staged = await Promise.all([alpha(), bravo()].map(once));
    for (const r of staged) expect(transitions(r)).toEqual(['idle>check', 'check>pull', 'pull>preflight', 'preflight>stage', 'stage>reboot']);
    const failed = await Promise.all([alpha(), bravo()].map(once));
    for (const r of failed) {
      expect(transitions(r)).toEqual(['reboot>confirm', 'confirm>rollback', 'rollback>reboot']);
      expect(r.lines.find((l) => l.event === 'health-failed')).toMatchObject({ check: '20-firmware', kind: 'required', exitCode: 1 });
      // The marked-bad check-in went out before the reboot into the fallback.
      expect(r.lines.filter((l) => l.event === 'check-in').map((l) => [l.reason, l.sent])).toEqual([
        ['marked-bad', true],
        ['cycle', true],
      ]);
    }

    // The fleet pauses the ref by itself; the published summary says 0%.
    await expect.poll(async () => (await api(`fleet/refs/${REF}`)).body.autoPaused, { timeout: POLL_MS, interval: 100 }).toBe(true);
    const health = await api(`fleet/refs/${REF}`);
    expect(health.body).toMatchObject({ ref: REF, commit: v2, devices: 3, attempted: 2, failed: 2, failedShare: 1, autoPaused: true });
    const reason = `Automatic pause: commit ${v2.slice(0, 12)} failed on 2 of 2 devices that attempted it (100%; threshold 50%, at least 2)`;
    expect(health.body.autoPauseReason).toBe(reason);
    expect(await world.pauses()).toEqual([{ ref: REF, reason }]);
    await expect.poll(publishedPercent, { timeout: POLL_MS }).toBe(0);

    // alpha and bravo come back on v1.
    for (const r of await Promise.all([alpha(), bravo()].map(once))) {
      expect(r.lines.find((l) => l.event === 'transition' && l.to === 'idle')).toMatchObject({ result: 'rolled-back', commit: v2, booted: v1 });
    }

    // charlie does not take v2.
    const c = await once(charlie());
    expect(transitions(c)).toEqual(['idle>check', 'check>idle']);
    expect(c.lines.find((l) => l.event === 'rollout-skip')).toMatchObject({ commit: v2, percent: 0 });
    expect(charlie().bootedCommit()).toBe(v1);

    const after = await api('devices');
    expect(after.body.devices.map((d: { deviceId: string; booted: { commit: string }; badCommits: string[] }) => [d.deviceId, d.booted.commit, d.badCommits])).toEqual([
      ['device-alpha', v1, [v2]],
      ['device-bravo', v1, [v2]],
      ['device-charlie', v1, []],
    ]);
    expect(after.body.devices[0].health).toEqual([
      { name: '10-not-broken', kind: 'required', ok: true },
      { name: '20-firmware', kind: 'required', ok: true },
      { name: '10-nice', kind: 'wanted', ok: true },
    ]);
    const events = await api('fleet/events');
    expect(events.body.events.map((e: { kind: string; deviceId: string | null }) => `${e.kind}:${e.deviceId ?? ''}`).sort()).toEqual(
      ['auto-pause:', 'bad-commit:device-alpha', 'bad-commit:device-bravo', 'error:device-alpha', 'error:device-bravo'].sort(),
    );
  }, 180_000);
});
