#!/usr/bin/env node
// Benchmark (not a test): object-by-object pull over loopback, Larch against the real
// `ostree pull`, from one static server, in the same run.
//
//   node packages/http-pull/bench/pull.mjs [--files N] [--size-mb N] [--runs N] [--mode archive|bare-user] [--work DIR]
//                                          [--tree DIR]
//
// --tree pulls an existing tree instead of the generated one, e.g. bench-out/tree, the tree of
// the store benchmark (`pnpm bench`, tooling/scripts/bench.mjs).
// A deterministic tree is committed by the real ostree into an archive repo (summary updated);
// bench/static-server.mjs serves it as a separate process. Each run pulls `main` into a fresh
// repo with `ostree pull --disable-static-deltas` and with Larch, alternating, --runs times
// each (default 3). Reported: median wall time and CPU time (user+sys) per tool, the
// Larch/ostree ratios, requests per pull (counted by the server), peak RSS, and the load
// average (on a shared machine the CPU-time ratio is the steadier figure). Both results are checked: same commit,
// `ostree fsck` clean.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const argv = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = argv.indexOf(name);
  return i >= 0 && argv[i + 1] !== undefined ? argv[i + 1] : dflt;
};
const nFiles = Number(opt('--files', '3000'));
const sizeMb = Number(opt('--size-mb', '60'));
const runs = Number(opt('--runs', '3'));
const mode = opt('--mode', 'archive');
const work = resolve(opt('--work', join(tmpdir(), 'larch-pull-bench')));
const givenTree = opt('--tree', null);

function sh(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, ...opts });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout;
}
if (!existsSync(join(here, '..', 'dist', 'index.js'))) throw new Error('build first: npx tsc -b packages/http-pull');
sh('ostree', ['--version']);

// xorshift32: deterministic data, half text-like (compressible), half binary-like.
function rng(seed) {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>>= 0);
  };
}
function makeTree(dir) {
  const stamp = join(dir, '.stamp');
  const want = `${nFiles} ${sizeMb}`;
  if (existsSync(stamp) && spawnSync('cat', [stamp], { encoding: 'utf8' }).stdout === want) return;
  rmSync(dir, { recursive: true, force: true });
  const r = rng(1234);
  const big = Math.floor((sizeMb * 1024 * 1024) / 3);
  const small = Math.max(16, Math.floor((sizeMb * 1024 * 1024 - big) / nFiles));
  mkdirSync(join(dir, 'usr/lib'), { recursive: true });
  const blob = Buffer.allocUnsafe(big);
  for (let i = 0; i + 4 <= big; i += 4) blob.writeUInt32LE((i >> 6) % 3 === 0 ? r() : r() & 0x0f0f0f0f, i);
  writeFileSync(join(dir, 'usr/lib/big.bin'), blob);
  for (let i = 0; i < nFiles; i++) {
    const d = join(dir, `usr/share/p${Math.floor(i / 200)}/d${Math.floor(i / 20) % 10}`);
    if (i % 20 === 0) mkdirSync(d, { recursive: true });
    const size = Math.floor(small / 2 + (r() % small));
    const b = Buffer.allocUnsafe(size);
    for (let j = 0; j < size; j++) b[j] = i % 2 === 0 ? 97 + (r() % 16) : r() & 0xff;
    writeFileSync(join(d, `f${i}`), b, { mode: i % 7 === 0 ? 0o755 : 0o644 });
  }
  writeFileSync(stamp, want);
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

async function startServer(dir) {
  const child = spawn(process.execPath, [join(here, 'static-server.mjs'), dir], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise((res, rej) => {
    child.stdout.once('data', (d) => res(Number(String(d).trim())));
    child.once('exit', (c) => rej(new Error(`server exited ${c}`)));
  });
  return {
    url: `http://127.0.0.1:${port}/`,
    stats: async () => Number(await (await fetch(`http://127.0.0.1:${port}/__stats`)).text()),
    stop: () => child.kill('SIGTERM'),
  };
}

/** Wall time (ms) and peak RSS (kB) of a command, via GNU time when available. */
function timed(cmd, args) {
  const useTime = existsSync('/usr/bin/time');
  const t0 = process.hrtime.bigint();
  const r = useTime
    ? spawnSync('/usr/bin/time', ['-f', '%M %U %S', cmd, ...args], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 })
    : spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr}`);
  const [rss, user, sys] = useTime ? r.stderr.trim().split('\n').pop().split(' ').map(Number) : [NaN, NaN, NaN];
  return { ms, rss, cpuMs: (user + sys) * 1000, stdout: r.stdout };
}

mkdirSync(work, { recursive: true });
const tree = givenTree !== null ? resolve(givenTree) : join(work, 'tree');
const src = givenTree !== null ? join(work, 'src-given') : join(work, `src-${nFiles}-${sizeMb}`);
if (givenTree === null) makeTree(tree);
else if (existsSync(join(src, 'tree-path')) && spawnSync('cat', [join(src, 'tree-path')], { encoding: 'utf8' }).stdout !== tree) rmSync(src, { recursive: true, force: true });
if (!existsSync(join(src, 'summary'))) {
  rmSync(src, { recursive: true, force: true });
  sh('ostree', ['init', `--repo=${src}`, '--mode=archive']);
  sh('ostree', ['commit', `--repo=${src}`, '-b', 'main', '--timestamp=@1700000000', '--no-xattrs', tree]);
  sh('ostree', ['summary', '-u', `--repo=${src}`]);
  writeFileSync(join(src, 'tree-path'), tree);
}
const commit = sh('ostree', ['rev-parse', `--repo=${src}`, 'main']).trim();
const server = await startServer(src);
const results = { ostree: [], larch: [] };
try {
  for (let i = 0; i < runs; i++) {
    for (const tool of ['ostree', 'larch']) {
      const dest = join(work, `dest-${tool}`);
      rmSync(dest, { recursive: true, force: true });
      await server.stats();
      let t;
      if (tool === 'ostree') {
        sh('ostree', ['init', `--repo=${dest}`, `--mode=${mode}`]);
        sh('ostree', ['remote', 'add', `--repo=${dest}`, '--no-gpg-verify', 'origin', server.url]);
        t = timed('ostree', ['pull', `--repo=${dest}`, '--disable-static-deltas', 'origin', 'main']);
      } else {
        t = timed(process.execPath, [join(here, 'larch-pull.mjs'), dest, server.url, 'main', mode]);
      }
      const requests = await server.stats();
      const got = sh('ostree', ['rev-parse', `--repo=${dest}`, 'origin:main']).trim();
      if (got !== commit) throw new Error(`${tool} pulled ${got}, expected ${commit}`);
      sh('ostree', ['fsck', '-q', `--repo=${dest}`]);
      results[tool].push({ ms: t.ms, rss: t.rss, cpuMs: t.cpuMs, requests });
      console.error(`run ${i + 1} ${tool}: ${(t.ms / 1000).toFixed(2)} s wall, ${(t.cpuMs / 1000).toFixed(2)} s CPU, ${requests} requests, peak RSS ${t.rss} kB`);
    }
  }
} finally {
  server.stop();
}
const mo = median(results.ostree.map((r) => r.ms));
const ml = median(results.larch.map((r) => r.ms));
const ro = median(results.ostree.map((r) => r.requests));
const rl = median(results.larch.map((r) => r.requests));
const report = {
  tree: givenTree !== null ? { path: tree, mode } : { files: nFiles + 1, sizeMb, mode },
  runs,
  ostreeMedianMs: Math.round(mo),
  larchMedianMs: Math.round(ml),
  wallTimeRatio: Number((ml / mo).toFixed(3)),
  ostreeMedianCpuMs: Math.round(median(results.ostree.map((r) => r.cpuMs))),
  larchMedianCpuMs: Math.round(median(results.larch.map((r) => r.cpuMs))),
  cpuTimeRatio: Number((median(results.larch.map((r) => r.cpuMs)) / median(results.ostree.map((r) => r.cpuMs))).toFixed(3)),
  loadAverage: (await import('node:os')).loadavg().map((x) => Number(x.toFixed(2))),
  ostreeRequests: ro,
  larchRequests: rl,
  requestRatio: Number((rl / ro).toFixed(3)),
  larchPeakRssKb: Math.max(...results.larch.map((r) => r.rss)),
  ostreePeakRssKb: Math.max(...results.ostree.map((r) => r.rss)),
};
console.log(JSON.stringify(report, null, 2));
console.log(`\nLarch/ostree wall time: ${report.wallTimeRatio}x  CPU time: ${report.cpuTimeRatio}x  requests: ${rl} vs ${ro} (${report.requestRatio}x)`);
