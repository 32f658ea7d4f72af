#!/usr/bin/env node
// Benchmark (not a test): static deltas on two versions of a real OS tree, Larch against the
// real `ostree` 2022.7 in the same run.
//
//   node packages/delta/bench/delta.mjs [--trees DIR] [--work DIR] [--runs N] [--skip-pull] [--reuse]
//
// DIR (default bench-out/os-trees, ignored by git) holds v1/ and v2/, made by
// `tooling/scripts/make-os-trees.sh bench-out/os-trees`. Both are committed by the
// real ostree into an archive repo (uid/gid 0, no xattrs). Then, --runs times (default 3), each
// tool generates the v1->v2 delta with --min-fallback-size=0 (so every byte is in the delta),
// and applies its own delta offline into a fresh bare-user repo that holds v1. Reported: delta
// size, median generation and apply wall and CPU time, peak RSS (GNU /usr/bin/time), the Larch/ostree
// ratios, and — unless --skip-pull — the bytes a Larch pull through the delta moves over the
// wire (counted by the server) against the delta's size. Every result is checked: `ostree fsck`
// clean and the same commit.
import { spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, readdirSync, rmSync, renameSync } from 'node:fs';
import os, { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '../../..');
const argv = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = argv.indexOf(name);
  return i >= 0 && argv[i + 1] !== undefined ? argv[i + 1] : dflt;
};
const trees = resolve(opt('--trees', join(root, 'bench-out', 'os-trees')));
const work = resolve(opt('--work', join(tmpdir(), 'larch-delta-bench')));
const runs = Number(opt('--runs', '3'));
const larchCli = join(root, 'apps/cli/dist/main.js');
if (!existsSync(larchCli)) throw new Error('build first: pnpm turbo run build --filter=@larch/cli...');
if (!existsSync(join(trees, 'v1')) || !existsSync(join(trees, 'v2'))) throw new Error(`no trees in ${trees}: run tooling/scripts/make-os-trees.sh ${trees}`);

function sh(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024, ...opts });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return r.stdout;
}
/** Run under GNU time: wall seconds and peak RSS (KiB). */
function timed(cmd, args) {
  const r = spawnSync('/usr/bin/time', ['-f', '@@%e %M %U %S', cmd, ...args], { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  const m = /@@([\d.]+) (\d+) ([\d.]+) ([\d.]+)/.exec(r.stderr);
  return { secs: Number(m[1]), rssKiB: Number(m[2]), cpu: Number(m[3]) + Number(m[4]), stdout: r.stdout };
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
function dirSize(d) {
  let n = 0;
  for (const e of readdirSync(d, { withFileTypes: true })) n += e.isDirectory() ? dirSize(join(d, e.name)) : lstatSync(join(d, e.name)).size;
  return n;
}

const src = join(work, 'src');
const base = join(work, 'base-v1');
let v1;
let v2;
if (argv.includes('--reuse') && existsSync(join(base, 'config'))) {
  // Same trees as the previous run: keep its commits (committing takes minutes).
  v2 = sh('ostree', [`--repo=${src}`, 'rev-parse', 'os']).trim();
  v1 = sh('ostree', [`--repo=${src}`, 'rev-parse', 'os^']).trim();
} else {
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  sh('ostree', [`--repo=${src}`, 'init', '--mode=archive']);
  const commitArgs = ['--owner-uid=0', '--owner-gid=0', '--no-xattrs', '--timestamp=2024-01-01T00:00:00Z'];
  console.error('committing v1 and v2 ...');
  v1 = sh('ostree', [`--repo=${src}`, 'commit', '-b', 'os', `--tree=dir=${join(trees, 'v1')}`, '-s', 'v1', ...commitArgs]).trim();
  v2 = sh('ostree', [`--repo=${src}`, 'commit', '-b', 'os', `--tree=dir=${join(trees, 'v2')}`, '-s', 'v2', ...commitArgs]).trim();
  // A bare-user repo holding v1, copied fresh (cp -a) for every apply.
  sh('ostree', [`--repo=${base}`, 'init', '--mode=bare-user']);
  sh('ostree', [`--repo=${base}`, 'pull-local', src, v1]);
}

const deltaDir = (repo) => {
  const d = join(repo, 'deltas');
  const pre = readdirSync(d)[0];
  return join(d, pre, readdirSync(join(d, pre))[0]);
};
const tools = {
  ostree: {
    generate: () => timed('ostree', [`--repo=${src}`, 'static-delta', 'generate', `--from=${v1}`, `--to=${v2}`, '--min-fallback-size=0']),
    apply: (repo, path) => timed('ostree', [`--repo=${repo}`, 'static-delta', 'apply-offline', path]),
  },
  larch: {
    generate: () => timed(process.execPath, [larchCli, 'static-delta', 'generate', `--repo=${src}`, `--from=${v1}`, `--to=${v2}`, '--min-fallback-size=0']),
    apply: (repo, path) => timed(process.execPath, [larchCli, 'static-delta', 'apply-offline', `--repo=${repo}`, path]),
  },
};
const res = { ostree: { gen: [], genCpu: [], genRss: [], apply: [], applyCpu: [], applyRss: [], size: 0, parts: 0 }, larch: { gen: [], genCpu: [], genRss: [], apply: [], applyCpu: [], applyRss: [], size: 0, parts: 0 } };
for (let run = 0; run < runs; run++) {
  for (const name of run % 2 === 0 ? ['ostree', 'larch'] : ['larch', 'ostree']) {
    const t = tools[name];
    rmSync(join(src, 'deltas'), { recursive: true, force: true });
    rmSync(join(src, 'delta-indexes'), { recursive: true, force: true });
    const g = t.generate();
    res[name].gen.push(g.secs);
    res[name].genCpu.push(g.cpu);
    res[name].genRss.push(g.rssKiB);
    const kept = join(work, `delta-${name}`);
    rmSync(kept, { recursive: true, force: true });
    renameSync(deltaDir(src), kept);
    res[name].size = dirSize(kept);
    res[name].parts = readdirSync(kept).length - 1;
    const target = join(work, `apply-${name}`);
    rmSync(target, { recursive: true, force: true });
    sh('cp', ['-a', base, target]); // keeps the user.ostreemeta xattrs
    const a = t.apply(target, kept);
    res[name].apply.push(a.secs);
    res[name].applyCpu.push(a.cpu);
    res[name].applyRss.push(a.rssKiB);
    const fsck = sh('ostree', [`--repo=${target}`, 'fsck']);
    if (!/no errors found/.test(fsck)) throw new Error(`${name}: fsck failed after apply:\n${fsck}`);
    sh('ostree', [`--repo=${target}`, 'rev-parse', v2]);
    console.error(`run ${run + 1} ${name}: gen ${g.secs}s apply ${a.secs}s size ${res[name].size}`);
  }
}
// Larch applies ostree's delta too (the same input for both readers).
const cross = join(work, 'apply-cross');
rmSync(cross, { recursive: true, force: true });
sh('cp', ['-a', base, cross]); // keeps the user.ostreemeta xattrs
const crossT = tools.larch.apply(cross, join(work, 'delta-ostree'));

const o = res.ostree;
const l = res.larch;
const out = {
  trees: { v1: dirSize(join(trees, 'v1')), v2: dirSize(join(trees, 'v2')) },
  runs,
  deltaBytes: { ostree: o.size, larch: l.size, ratio: +(l.size / o.size).toFixed(3) },
  parts: { ostree: o.parts, larch: l.parts },
  generateSecs: { ostree: median(o.gen), larch: median(l.gen), ratio: +(median(l.gen) / median(o.gen)).toFixed(3) },
  applySecs: { ostree: median(o.apply), larch: median(l.apply), ratio: +(median(l.apply) / median(o.apply)).toFixed(3), larchOnOstreeDelta: crossT.secs },
  // CPU time (user + sys) is the steadier figure on a shared machine.
  generateCpuSecs: { ostree: median(o.genCpu), larch: median(l.genCpu), ratio: +(median(l.genCpu) / median(o.genCpu)).toFixed(3) },
  applyCpuSecs: { ostree: median(o.applyCpu), larch: median(l.applyCpu), ratio: +(median(l.applyCpu) / median(o.applyCpu)).toFixed(3) },
  loadAverage: os.loadavg().map((x) => +x.toFixed(2)),
  generatePeakRssMiB: { ostree: Math.round(Math.max(...o.genRss) / 1024), larch: Math.round(Math.max(...l.genRss) / 1024) },
  applyPeakRssMiB: { ostree: Math.round(Math.max(...o.applyRss) / 1024), larch: Math.round(Math.max(...l.applyRss) / 1024) },
};

if (!argv.includes('--skip-pull')) {
  // A Larch pull through the delta: serve src with both deltas' Larch one in place and count bytes.
  const { spawn } = await import('node:child_process');
  rmSync(join(src, 'deltas'), { recursive: true, force: true });
  sh(process.execPath, [larchCli, 'static-delta', 'generate', `--repo=${src}`, `--from=${v1}`, `--to=${v2}`, '--min-fallback-size=0']);
  sh(process.execPath, [larchCli, 'summary', '-u', `--repo=${src}`]);
  const server = spawn(process.execPath, [join(here, 'count-server.mjs'), src], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise((r) => server.stdout.once('data', (d) => r(Number(String(d).trim()))));
  const target = join(work, 'pull-larch');
  rmSync(target, { recursive: true, force: true });
  sh('cp', ['-a', base, target]); // keeps the user.ostreemeta xattrs
  const p = timed(process.execPath, [join(here, 'pull-delta.mjs'), target, `http://127.0.0.1:${port}/`, v1, v2]);
  const stats = await (await fetch(`http://127.0.0.1:${port}/__stats`)).json();
  server.kill();
  const larchDelta = dirSize(deltaDir(src));
  out.larchPull = { wireBytes: stats.bytes, requests: stats.requests, deltaBytes: larchDelta, ratio: +(stats.bytes / larchDelta).toFixed(3), secs: p.secs };
}
console.log(JSON.stringify(out, null, 2));
