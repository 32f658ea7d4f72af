#!/usr/bin/env node
// Serving throughput: larch-server vs nginx on the same repository files, same run, loopback.
//
// A bounded client (undici 7 Agent, 8 connections, 64 requests in flight) fetches every object
// of an archive repository round-robin for a fixed time against each server in turn, twice
// each, alternating, after one untimed warm-up pass, and reports the better round of each: requests/s, MB/s, and the ratio
// larch-server / nginx. nginx runs with one worker process, as larch-server is one process.
// Both write an access log to a file. The peak RSS of larch-server during its rounds is printed.
//
// Usage: node apps/server/bench/serve.mjs [--repo=PATH] [--duration=SECS] [--files=N] [--json]
//   (build first: pnpm turbo run build --filter=@larch/server...)
// nginx: `apt-get install -y nginx` (or nginx-light); without it only larch-server is measured.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Agent, request } from 'undici';
import { Repo, commitTree, generateSummary } from '@larch/core-store';

const { values: args } = parseArgs({
  options: {
    repo: { type: 'string' },
    duration: { type: 'string', default: '4' },
    files: { type: 'string', default: '3000' },
    inflight: { type: 'string', default: '64' },
    connections: { type: 'string', default: '8' },
    json: { type: 'boolean', default: false },
  },
});
const DURATION_MS = Number(args.duration) * 1000;
const INFLIGHT = Number(args.inflight);
const SERVER_MAIN = fileURLToPath(new URL('../dist/main.js', import.meta.url));

const work = mkdtempSync(join(tmpdir(), 'larch-bench-serve-'));
const cleanups = [() => rmSync(work, { recursive: true, force: true })];
const log = (...a) => console.error(...a);

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

/** A tree shaped like an OS image: mostly small files, some medium, a few large. */
async function buildBenchRepo(dir, nFiles) {
  const tree = join(work, 'tree');
  for (let i = 0; i < nFiles; i++) {
    const r = (i * 2654435761) % 100;
    const size = r < 80 ? 100 + ((i * 7919) % 8000) : r < 98 ? 8192 + ((i * 104729) % 57344) : 262144 + ((i * 15485863) % 786432);
    const d = join(tree, `d${i % 40}`);
    mkdirSync(d, { recursive: true });
    writeFileSync(join(d, `f${i}`), seeded(size, i + 1));
  }
  const repo = await Repo.init({ path: dir, mode: 'archive' });
  await commitTree(repo, { tree, branch: 'bench/main', subject: 'bench', timestamp: 1_704_067_200n });
  await generateSummary(repo);
}

function listObjects(repo) {
  const out = [];
  let bytes = 0;
  for (const xx of readdirSync(join(repo, 'objects'))) {
    for (const name of readdirSync(join(repo, 'objects', xx))) {
      out.push(`/objects/${xx}/${name}`);
      bytes += statSync(join(repo, 'objects', xx, name)).size;
    }
  }
  return { paths: out, bytes };
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

async function startLarch(repo) {
  const proc = spawn(process.execPath, [SERVER_MAIN, `--repo=${repo}`, '--port=0', `--access-log=${join(work, 'larch-access.log')}`], { stdio: ['ignore', 'pipe', 'inherit'] });
  cleanups.push(() => proc.exitCode === null && proc.kill('SIGTERM'));
  const url = await new Promise((resolve, reject) => {
    let out = '';
    proc.stdout.setEncoding('utf8').on('data', (d) => {
      out += d;
      const m = /at (http:\/\/\S+)/.exec(out);
      if (m) resolve(m[1]);
    });
    proc.on('exit', (c) => reject(new Error(`larch-server exited with ${c}`)));
  });
  return { url, pid: proc.pid, stop: () => new Promise((r) => (proc.exitCode !== null ? r() : (proc.on('exit', r), proc.kill('SIGTERM')))) };
}

async function startNginx(repo) {
  if (spawnSync('nginx', ['-v'], { stdio: 'ignore' }).status !== 0) return null;
  const port = await freePort();
  const prefix = join(work, 'nginx');
  mkdirSync(join(prefix, 'tmp'), { recursive: true });
  const conf = join(prefix, 'nginx.conf');
  writeFileSync(
    conf,
    `${process.getuid?.() === 0 ? 'user root root;\n' : ''}worker_processes 1;
daemon off;
pid ${prefix}/nginx.pid;
error_log ${prefix}/error.log;
events { worker_connections 4096; }
http {
  access_log ${prefix}/access.log;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  default_type application/octet-stream;
  client_body_temp_path ${prefix}/tmp/body;
  proxy_temp_path ${prefix}/tmp/proxy;
  fastcgi_temp_path ${prefix}/tmp/fastcgi;
  uwsgi_temp_path ${prefix}/tmp/uwsgi;
  scgi_temp_path ${prefix}/tmp/scgi;
  server {
    listen 127.0.0.1:${port};
    root ${repo};
    location /objects/ { add_header Cache-Control "public, max-age=31536000, immutable"; }
  }
}
`,
  );
  const proc = spawn('nginx', ['-p', prefix, '-c', conf], { stdio: ['ignore', 'ignore', 'inherit'] });
  cleanups.push(() => proc.exitCode === null && proc.kill('SIGTERM'));
  const url = `http://127.0.0.1:${port}/`;
  for (let i = 0; i < 100; i++) {
    try {
      const r = await request(`${url}config`);
      await r.body.dump();
      if (r.statusCode === 200) break;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return { url, pid: proc.pid, stop: () => new Promise((r) => (proc.exitCode !== null ? r() : (proc.on('exit', r), proc.kill('SIGQUIT')))) };
}

function rssKiB(pid) {
  try {
    return Number(/^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);
  } catch {
    return 0;
  }
}

/** CPU seconds (user + system) used so far by `pid` and its children processes (nginx workers). */
function cpuSeconds(pid) {
  const ticks = 100; // USER_HZ on Linux
  let total = 0;
  const pids = [pid];
  try {
    pids.push(...readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number));
  } catch {
    // no children file: count the process alone
  }
  for (const p of pids) {
    try {
      const f = readFileSync(`/proc/${p}/stat`, 'utf8').split(') ')[1].split(' ');
      total += (Number(f[11]) + Number(f[12])) / ticks;
    } catch {
      // process gone
    }
  }
  return total;
}

/** Fetch `paths` round-robin for DURATION_MS with INFLIGHT requests in flight. */
async function load(base, paths, pid) {
  const agent = new Agent({ connections: Number(args.connections), pipelining: 1, keepAliveTimeout: 30_000 });
  const origin = base.replace(/\/$/, '');
  let next = 0;
  let requests = 0;
  let bytes = 0;
  let errors = 0;
  let peakRss = rssKiB(pid);
  const sampler = setInterval(() => (peakRss = Math.max(peakRss, rssKiB(pid))), 50);
  const cpu0 = cpuSeconds(pid);
  const t0 = performance.now();
  const deadline = t0 + DURATION_MS;
  const worker = async () => {
    while (performance.now() < deadline) {
      const p = paths[next++ % paths.length];
      try {
        const { statusCode, body } = await request(origin + p, { dispatcher: agent });
        for await (const chunk of body) bytes += chunk.length;
        if (statusCode !== 200) errors++;
        requests++;
      } catch {
        errors++;
      }
    }
  };
  await Promise.all(Array.from({ length: INFLIGHT }, worker));
  const secs = (performance.now() - t0) / 1000;
  const cpu = cpuSeconds(pid) - cpu0;
  clearInterval(sampler);
  await agent.close();
  return {
    reqPerSec: requests / secs,
    mbPerSec: bytes / secs / 1e6,
    requests,
    errors,
    peakRssMiB: Math.round(peakRss / 1024),
    cpuUsPerRequest: (cpu * 1e6) / Math.max(1, requests),
  };
}

try {
  let repo = args.repo;
  if (!repo) {
    repo = join(work, 'repo');
    log(`building a ${args.files}-file archive repository in ${repo} …`);
    await buildBenchRepo(repo, Number(args.files));
  }
  const { paths, bytes } = listObjects(repo);
  log(`load average before the run: ${loadavg().map((x) => x.toFixed(2)).join(' ')} (other work on the machine skews both servers)`);
  log(`${paths.length} objects, ${(bytes / 1e6).toFixed(1)} MB; ${INFLIGHT} requests in flight, ${args.connections} connections, ${DURATION_MS / 1000} s per round`);

  const larch = await startLarch(repo);
  const nginx = await startNginx(repo);
  if (!nginx) log('nginx is not installed (apt-get install -y nginx): measuring larch-server only');

  // One untimed pass over every object per server: JIT, page cache and larch-server's object
  // cache warm up before anything is measured.
  for (const srv of [larch, nginx].filter(Boolean)) {
    const agent = new Agent({ connections: Number(args.connections) });
    for (let i = 0; i < paths.length; i += INFLIGHT) {
      await Promise.all(paths.slice(i, i + INFLIGHT).map(async (p) => (await request(srv.url.replace(/\/$/, '') + p, { dispatcher: agent })).body.dump()));
    }
    await agent.close();
  }

  const best = { larch: null, nginx: null };
  const better = (a, b) => (a === null || (b.errors <= a.errors && b.reqPerSec > a.reqPerSec) ? b : a);
  for (let round = 0; round < 2; round++) {
    const l = await load(larch.url, paths, larch.pid);
    log(`round ${round + 1} larch-server: ${l.reqPerSec.toFixed(0)} req/s, ${l.mbPerSec.toFixed(1)} MB/s, ${l.cpuUsPerRequest.toFixed(0)} µs CPU/request, errors ${l.errors}, peak RSS ${l.peakRssMiB} MiB`);
    best.larch = better(best.larch, l);
    if (nginx) {
      const n = await load(nginx.url, paths, nginx.pid);
      log(`round ${round + 1} nginx:        ${n.reqPerSec.toFixed(0)} req/s, ${n.mbPerSec.toFixed(1)} MB/s, ${n.cpuUsPerRequest.toFixed(0)} µs CPU/request, errors ${n.errors}`);
      best.nginx = better(best.nginx, n);
    }
  }
  await larch.stop();
  if (nginx) await nginx.stop();

  const result = {
    objects: paths.length,
    megabytes: Number((bytes / 1e6).toFixed(1)),
    larch: best.larch,
    nginx: best.nginx,
    ratioRequests: best.nginx ? best.larch.reqPerSec / best.nginx.reqPerSec : null,
    ratioBytes: best.nginx ? best.larch.mbPerSec / best.nginx.mbPerSec : null,
    loadAverage: loadavg()[0],
  };
  if (args.json) console.log(JSON.stringify(result));
  else {
    console.log(`larch-server: ${best.larch.reqPerSec.toFixed(0)} req/s, ${best.larch.mbPerSec.toFixed(1)} MB/s, ${best.larch.cpuUsPerRequest.toFixed(0)} µs CPU/request (peak RSS ${best.larch.peakRssMiB} MiB)`);
    if (best.nginx) {
      console.log(`nginx:        ${best.nginx.reqPerSec.toFixed(0)} req/s, ${best.nginx.mbPerSec.toFixed(1)} MB/s, ${best.nginx.cpuUsPerRequest.toFixed(0)} µs CPU/request`);
      console.log(`ratio larch-server / nginx: ${result.ratioRequests.toFixed(2)}× requests/s, ${result.ratioBytes.toFixed(2)}× MB/s`);
    }
  }
} finally {
  for (const c of cleanups.reverse()) {
    try {
      c();
    } catch {
      // best effort
    }
  }
}
