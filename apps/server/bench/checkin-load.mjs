#!/usr/bin/env node
// Device check-ins under load: `larch-server --database` with the fleet API, N simulated devices
// (default 500) each checking in once a second for a fixed time (default 60 s), while P clients
// (default 20) pull the repository over and over with the real `ostree pull`.
//
// Devices are scheduled open-loop: device i sends at i/N of every second whether or not its
// previous check-in was answered, and a check-in's latency counts from its scheduled time, so a
// stalled server or generator shows up in the figures instead of slowing the offered load down.
// Each device has its own token (right `checkin`, bound to the device), so every request does
// the token lookup a real fleet costs. The generator runs in a worker thread over an undici pool.
// The first 2 s are warm-up and not counted.
//
// The pullers stand for devices elsewhere on the network; on one small machine 20 of them would
// take the CPU from the server they load, so they run at nice 19 by default (`--puller-nice=0`
// to run them at the server's priority), and write their repositories to /dev/shm when it exists.
// The served bytes and completed pulls are reported.
//
// Reports p50/p95/p99/max latency, offered and answered check-ins per second, non-204 answers,
// completed pulls, and the server's CPU use and peak RSS; then checks that every device is
// listed by the API and, after a graceful shutdown, stored in `fleet_devices`.
//
// Usage: node apps/server/bench/checkin-load.mjs [--seconds=60] [--devices=500] [--pullers=20]
//          [--files=400] [--connections=64] [--puller-nice=19] [--profile=DIR] [--json]
//   --profile=DIR writes a V8 CPU profile of the server into DIR (open it in Chrome's DevTools).
//   (build first: pnpm turbo run build --filter=@larch/server...; needs `ostree` for the pullers,
//    without it the check-ins run alone and the report says so)
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';

const DEVICE_REF = 'bench/main';

if (isMainThread) await main();
else await generate(workerData);

// ---------------------------------------------------------------------------------------------
// Worker: the check-in generator.

async function generate({ url, repo, tokens, seconds, commit, connections, warmupMs }) {
  const { Pool } = await import('undici');
  const origin = new URL(url).origin;
  const pool = new Pool(origin, { connections, pipelining: 1, keepAliveTimeout: 30_000 });
  const n = tokens.length;
  const period = 1000;
  const bodies = tokens.map((_, i) => body(i));
  const latencies = [];
  const statuses = new Map();
  let sent = 0;
  let errors = 0;
  let inflight = 0;
  let maxInflight = 0;
  const t0 = performance.now() + 200;
  const end = t0 + seconds * 1000;
  let next = 0; // index of the next check-in in the global schedule (device = next % n)

  function body(i) {
    const id = `device-${String(i).padStart(4, '0')}`;
    // 1 device in 50 reports a failed pull; none fails the served commit (no pause is triggered).
    const failing = i % 50 === 7;
    return JSON.stringify({
      deviceId: id,
      time: new Date().toISOString(),
      phase: 'idle',
      degraded: false,
      ref: DEVICE_REF,
      booted: { commit, deployment: `${commit}.0`, version: '1.0' },
      target: null,
      badCommits: [],
      lastError: failing ? { phase: 'pull', code: 'IO_ERROR', message: 'Server returned HTTP 503 for summary' } : null,
      counters: { checks: 12, bytesFetched: 123456, failures: failing ? 1 : 0, updates: 1, rollbacks: 0 },
      health: [
        { name: '10-network', kind: 'required', ok: true },
        { name: '20-app', kind: 'wanted', ok: true },
      ],
    });
  }

  function fire(k, scheduled) {
    const i = k % n;
    const id = `device-${String(i).padStart(4, '0')}`;
    sent++;
    inflight++;
    if (inflight > maxInflight) maxInflight = inflight;
    pool
      .request({
        path: `/api/v1/repos/${repo}/devices/${id}/check-in`,
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${tokens[i]}` },
        body: bodies[i],
      })
      .then(async (res) => {
        await res.body.dump();
        const done = performance.now();
        inflight--;
        statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
        if (scheduled >= t0 + warmupMs) latencies.push(done - scheduled);
      })
      .catch(() => {
        inflight--;
        errors++;
      });
  }

  await new Promise((resolve) => {
    const tick = () => {
      const now = performance.now();
      // Everything scheduled up to now goes out now.
      for (;;) {
        const scheduled = t0 + Math.floor(next / n) * period + ((next % n) * period) / n;
        if (scheduled > now || scheduled >= end) break;
        fire(next, scheduled);
        next++;
      }
      const scheduledNext = t0 + Math.floor(next / n) * period + ((next % n) * period) / n;
      if (scheduledNext >= end) return resolve();
      setTimeout(tick, Math.max(0, Math.min(5, scheduledNext - performance.now())));
    };
    setTimeout(tick, Math.max(0, t0 - performance.now()));
  });
  // Wait for the stragglers (bounded).
  const waitUntil = performance.now() + 10_000;
  while (inflight > 0 && performance.now() < waitUntil) await new Promise((r) => setTimeout(r, 20));
  await pool.close();
  parentPort.postMessage({ latencies, statuses: Object.fromEntries(statuses), sent, errors, lost: inflight, maxInflight, measuredSeconds: (end - t0 - warmupMs) / 1000 });
}

// ---------------------------------------------------------------------------------------------
// Main thread: set up, run, report.

async function main() {
  const { values: args } = parseArgs({
    options: {
      seconds: { type: 'string', default: '60' },
      devices: { type: 'string', default: '500' },
      pullers: { type: 'string', default: '20' },
      files: { type: 'string', default: '400' },
      connections: { type: 'string', default: '64' },
      profile: { type: 'string' },
      'puller-nice': { type: 'string', default: '19' },
      json: { type: 'boolean', default: false },
    },
  });
  const SECONDS = Number(args.seconds);
  const DEVICES = Number(args.devices);
  const CONNECTIONS = Number(args.connections);
  const SERVER_MAIN = fileURLToPath(new URL('../dist/main.js', import.meta.url));
  const hasOstree = spawnSync('ostree', ['--version'], { stdio: 'ignore' }).status === 0;
  const PULLERS = hasOstree ? Number(args.pullers) : 0;
  const PULLER_NICE = Number(args['puller-nice']);
  const log = (...a) => console.error(...a);

  const { Repo, commitTree, generateSummary } = await import('@larch/core-store');
  const { Database } = await import('@larch/db');
  const { TokenStore } = await import('@larch/publish');

  const work = mkdtempSync(join(tmpdir(), 'larch-bench-checkin-'));
  const cleanups = [() => rmSync(work, { recursive: true, force: true })];
  const cleanup = () => {
    for (const f of cleanups.reverse()) {
      try {
        f();
      } catch {
        // best effort
      }
    }
  };
  process.on('SIGINT', () => {
    cleanup();
    process.exit(130);
  });

  try {
    // The repository: an OS-like tree, mostly small files.
    log(`building a ${args.files}-file repository…`);
    const tree = join(work, 'tree');
    const nFiles = Number(args.files);
    for (let i = 0; i < nFiles; i++) {
      const r = (i * 2654435761) % 100;
      const size = r < 85 ? 200 + ((i * 7919) % 8000) : r < 99 ? 8192 + ((i * 104729) % 57344) : 262144;
      const d = join(tree, `usr/d${i % 25}`);
      mkdirSync(d, { recursive: true });
      writeFileSync(join(d, `f${i}`), seeded(size, i + 1));
    }
    const repoPath = join(work, 'repo');
    const repo = await Repo.init({ path: repoPath, mode: 'archive' });
    const { commit } = await commitTree(repo, { tree, branch: DEVICE_REF, subject: 'bench', timestamp: 1_704_067_200n });
    await generateSummary(repo);

    // Tokens: one per device, and one to read the device list.
    const dbPath = join(work, 'server.db');
    const db = Database.open(dbPath);
    const store = new TokenStore(db);
    const tokens = [];
    db.transaction(() => {
      for (let i = 0; i < DEVICES; i++) tokens.push(store.create({ repo: 'default', rights: ['checkin'], deviceId: `device-${String(i).padStart(4, '0')}` }).token);
    });
    const readToken = store.create({ repo: 'default', rights: ['read'] }).token;
    db.close();

    // The server.
    const nodeArgs = args.profile ? ['--cpu-prof', `--cpu-prof-dir=${args.profile}`] : [];
    const server = spawn(process.execPath, [...nodeArgs, SERVER_MAIN, `--repo=${repoPath}`, '--port=0', `--database=${dbPath}`, `--access-log=${join(work, 'access.log')}`], { stdio: ['ignore', 'pipe', 'pipe'] });
    let serverErr = '';
    server.stderr.setEncoding('utf8').on('data', (d) => (serverErr = (serverErr + d).slice(-4000)));
    cleanups.push(() => server.exitCode === null && server.kill('SIGKILL'));
    const url = await new Promise((resolve, reject) => {
      let out = '';
      server.stdout.setEncoding('utf8').on('data', (d) => {
        out += d;
        const m = /at (http:\/\/\S+)/.exec(out);
        if (m) resolve(m[1]);
      });
      server.on('exit', (c) => reject(new Error(`larch-server exited with ${c}: ${serverErr}`)));
    });
    log(`larch-server at ${url} (pid ${server.pid})`);
    const probe = await fetch(new URL(`/api/v1/repos/default/devices`, url), { headers: { authorization: `Bearer ${readToken}` } });
    if (probe.status !== 200) throw new Error(`larch-server does not serve the fleet API (GET …/devices answered ${probe.status}: ${await probe.text()})`);

    // Pullers: each loops fresh `ostree pull`s of the ref into its own repository.
    // The clients' repositories live on tmpfs when there is one: their writes stand for disks
    // elsewhere, and must not queue behind (or in front of) the server's own fsyncs.
    const clientDir = existsSync('/dev/shm') ? mkdtempSync('/dev/shm/larch-bench-clients-') : join(work, 'clients');
    cleanups.push(() => rmSync(clientDir, { recursive: true, force: true }));
    let stopPulling = false;
    const children = new Set();
    cleanups.push(() => {
      for (const c of children) c.kill('SIGKILL');
    });
    const pullStats = { done: 0, failed: 0, ms: 0 };
    const pullers = [];
    for (let p = 0; p < PULLERS; p++) pullers.push(pullLoop(p));
    async function pullLoop(p) {
      const dir = join(clientDir, `puller-${p}`);
      while (!stopPulling) {
        rmSync(dir, { recursive: true, force: true });
        const t = performance.now();
        const ok =
          (await run('ostree', [`--repo=${dir}`, 'init', '--mode=archive'])) &&
          (await run('ostree', [`--repo=${dir}`, 'remote', 'add', '--no-gpg-verify', 'origin', url])) &&
          (await run('ostree', [`--repo=${dir}`, 'pull', 'origin', DEVICE_REF]));
        if (stopPulling) break;
        if (ok) {
          pullStats.done++;
          pullStats.ms += performance.now() - t;
        } else pullStats.failed++;
      }
    }
    function run(cmd, argv) {
      return new Promise((resolve) => {
        const c = PULLER_NICE > 0 ? spawn('nice', ['-n', String(PULLER_NICE), cmd, ...argv], { stdio: 'ignore' }) : spawn(cmd, argv, { stdio: 'ignore' });
        children.add(c);
        c.on('error', () => resolve(false));
        c.on('close', (code) => {
          children.delete(c);
          resolve(code === 0);
        });
      });
    }

    // Server CPU and memory, from /proc.
    const cpuTicks = () => {
      const f = readFileSync(`/proc/${server.pid}/stat`, 'utf8').split(') ')[1].split(' ');
      return Number(f[11]) + Number(f[12]); // utime + stime, in clock ticks
    };
    let peakRss = 0;
    const rssTimer = setInterval(() => {
      try {
        const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${server.pid}/status`, 'utf8'));
        if (m) peakRss = Math.max(peakRss, Number(m[1]) * 1024);
      } catch {
        // exited
      }
    }, 250);
    const hz = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

    // Let the pullers get going, then load.
    if (PULLERS > 0) await new Promise((r) => setTimeout(r, 1500));
    log(`${DEVICES} devices checking in every second for ${SECONDS} s${PULLERS ? `, ${PULLERS} ostree pull loops` : ' (no ostree: no pullers)'}…`);
    const cpu0 = cpuTicks();
    const wall0 = performance.now();
    const warmupMs = Math.min(2000, SECONDS * 100);
    const result = await new Promise((resolve, reject) => {
      const w = new Worker(new URL(import.meta.url), { workerData: { url, repo: 'default', tokens, seconds: SECONDS, commit, connections: CONNECTIONS, warmupMs } });
      w.once('message', resolve);
      w.once('error', reject);
    });
    const wall = (performance.now() - wall0) / 1000;
    const cpu = (cpuTicks() - cpu0) / hz;
    stopPulling = true;
    await Promise.all(pullers);
    clearInterval(rssTimer);

    // Every device is listed; after a graceful stop, every device is in the table.
    const list = await fetch(new URL(`/api/v1/repos/default/devices`, url), { headers: { authorization: `Bearer ${readToken}` } }).then((r) => r.json());
    const listed = list.devices.length;
    await new Promise((r) => {
      server.once('exit', r);
      server.kill('SIGTERM');
    });
    let servedBytes = 0;
    for (const line of readFileSync(join(work, 'access.log'), 'utf8').split('\n')) {
      if (!line) continue;
      try {
        const e = JSON.parse(line);
        if (!String(e.path).startsWith('/api/')) servedBytes += Number(e.bytes) || 0;
      } catch {
        // not a JSON line
      }
    }
    const db2 = Database.open(dbPath);
    const stored = db2.get('SELECT count(*) AS n FROM fleet_devices').n;
    const events = db2.get("SELECT count(*) AS n FROM fleet_events WHERE kind = 'error'").n;
    db2.close();

    const lat = Float64Array.from(result.latencies).sort();
    const pct = (q) => (lat.length ? lat[Math.min(lat.length - 1, Math.ceil(q * lat.length) - 1)] : NaN);
    const answered = Object.values(result.statuses).reduce((a, b) => a + b, 0);
    const report = {
      devices: DEVICES,
      seconds: SECONDS,
      pullers: PULLERS,
      connections: CONNECTIONS,
      checkIns: { sent: result.sent, answered, statuses: result.statuses, errors: result.errors, unanswered: result.lost, maxInFlight: result.maxInflight },
      throughputPerSecond: Math.round((answered / wall) * 10) / 10,
      latencyMs: { measured: lat.length, p50: round(pct(0.5)), p95: round(pct(0.95)), p99: round(pct(0.99)), max: round(lat[lat.length - 1]) },
      pulls: { completed: pullStats.done, failed: pullStats.failed, meanSeconds: pullStats.done ? round(pullStats.ms / pullStats.done / 1000) : null, nice: PULLER_NICE, servedMiB: round(servedBytes / 1048576) },
      server: { cpuSeconds: round(cpu), cpuShareOfOneCore: round(cpu / wall), peakRssMiB: round(peakRss / 1048576) },
      afterwards: { listedByApi: listed, storedInDatabase: stored, errorEvents: events },
      machine: { cpus: (await import('node:os')).cpus().length, node: process.version },
    };
    if (args.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    else {
      const l = report.latencyMs;
      process.stdout.write(
        [
          `check-ins: ${DEVICES} devices × 1/s for ${SECONDS} s, ${PULLERS} concurrent ostree pull loops, ${CONNECTIONS} client connections`,
          `  answered ${answered} of ${result.sent} (${JSON.stringify(result.statuses)}; ${result.errors} transport errors), ${report.throughputPerSecond}/s`,
          `  latency (ms, from the scheduled send time, after ${warmupMs / 1000} s warm-up, n=${l.measured}): p50 ${l.p50}  p95 ${l.p95}  p99 ${l.p99}  max ${l.max}`,
          `  pulls completed: ${pullStats.done} (failed ${pullStats.failed}, mean ${report.pulls.meanSeconds ?? '-'} s each, nice ${PULLER_NICE}); ${report.pulls.servedMiB} MiB of repository files served`,
          `  server: ${report.server.cpuSeconds} CPU s over ${round(wall)} s (${Math.round(report.server.cpuShareOfOneCore * 100)}% of one core), peak RSS ${report.server.peakRssMiB} MiB`,
          `  afterwards: ${listed} devices listed by the API, ${stored} rows in fleet_devices after shutdown, ${events} error events`,
          `  p99 < 50 ms: ${l.p99 < 50 ? 'yes' : 'NO'}`,
          '',
        ].join('\n'),
      );
    }
  } finally {
    cleanup();
  }
}

function round(x) {
  return Math.round(x * 100) / 100;
}

/** Deterministic pseudo-random bytes (xorshift32), so every run serves the same tree. */
function seeded(size, seed) {
  const buf = Buffer.allocUnsafe(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    buf[i] = x & 0xff;
  }
  return buf;
}
