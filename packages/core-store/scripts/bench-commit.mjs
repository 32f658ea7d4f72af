#!/usr/bin/env node
// Local timing of commitTree against `ostree commit` on a generated tree.
// Usage: node packages/core-store/scripts/bench-commit.mjs [files=5000] [bytes=200000000] [modes=archive,bare-user]
// Needs a built dist (`npx tsc -b packages/core-store`) and `ostree` on PATH. Not part of the test suite.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Repo, commitTree } from '../dist/index.js';

const files = Number(process.argv[2] ?? 5000);
const bytes = Number(process.argv[3] ?? 200e6);
const modes = (process.argv[4] ?? 'archive,bare-user').split(',');
const base = mkdtempSync(join(tmpdir(), 'larch-bench-'));
const tree = join(base, 'tree');
const words = 'lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor int main return void static const char struct'.split(' ');
for (let i = 0; i < files; i++) {
  const dir = join(tree, `d${i % 50}`, `s${i % 7}`);
  mkdirSync(dir, { recursive: true });
  const size = Math.floor((bytes / files) * 2 * Math.random());
  let buf;
  if (i % 4 === 0) buf = randomBytes(size); // a quarter incompressible
  else {
    const parts = [];
    let len = 0;
    while (len < size) {
      const w = words[Math.floor(Math.random() * words.length)] + (Math.random() < 0.1 ? '\n' : ' ');
      parts.push(w);
      len += w.length;
    }
    buf = Buffer.from(parts.join('')).subarray(0, size);
  }
  writeFileSync(join(dir, `f${i}`), buf, { mode: i % 10 === 0 ? 0o755 : 0o644 });
}
const cpu = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};
for (const mode of modes) {
  const o = join(base, `ostree-${mode}`);
  execFileSync('ostree', ['init', `--repo=${o}`, `--mode=${mode}`]);
  execFileSync('sync');
  let t = performance.now();
  const theirs = execFileSync('ostree', ['commit', `--repo=${o}`, '-b', 'b', `--tree=dir=${tree}`, '--timestamp=2020-01-01 00:00:00 +0000'], { encoding: 'utf8' }).trim();
  const ostreeSecs = (performance.now() - t) / 1000;
  execFileSync('sync');
  const repo = await Repo.init({ path: join(base, `larch-${mode}`), mode });
  t = performance.now();
  const c0 = cpu();
  const ours = await commitTree(repo, { tree, branch: 'b', timestamp: 1577836800n });
  const larchSecs = (performance.now() - t) / 1000;
  console.log(
    `${mode}: ostree ${ostreeSecs.toFixed(2)}s, larch ${larchSecs.toFixed(2)}s (cpu ${(cpu() - c0).toFixed(2)}s, main thread + pool), ratio ${(larchSecs / ostreeSecs).toFixed(2)}, same commit: ${ours.commit === theirs}, peak rss ${Math.round(process.resourceUsage().maxRSS / 1024)} MiB`,
  );
}
rmSync(base, { recursive: true, force: true });
