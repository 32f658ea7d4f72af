#!/usr/bin/env node
// Benchmark: `larch admin deploy` against the real `ostree admin deploy` on a large OS-like tree,
// in the same run, on the same sysroot.
//
//   node packages/sysroot/bench/deploy.mjs [--tree DIR] [--runs N] [--work DIR] [--keep]
//
// The tree is tooling/scripts/bench.mjs's generated one (20,000 files, ~520 MB; default
// bench-out/tree, which `pnpm bench` generates — or pass --tree to use another, e.g. the
// output of tooling/scripts/make-os-trees.sh) plus a kernel, an initramfs and 200 files of
// /usr/etc. It is committed once (by ostree) into the sysroot's bare repo and deployed once
// untimed, so that every timed deploy is a real update: a hardlink checkout, a copy of /usr/etc,
// the /etc three-way merge, the bootloader swap and the cleanup with prune. After each timed
// deploy the new deployment is undeployed (untimed), so every run starts from the same state.
// Runs alternate ostree and larch; the medians and the larch/ostree ratio are printed. --keep
// leaves the sysroot in place (one deployment) for profiling.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync, cpSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const argv = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = argv.indexOf(name);
  return i >= 0 && argv[i + 1] !== undefined ? argv[i + 1] : dflt;
};
const runs = Number(opt('--runs', '3'));
const work = resolve(opt('--work', join(root, 'bench-out', 'sysroot-bench')));
const tree = resolve(opt('--tree', join(root, 'bench-out', 'tree')));
const larchBin = join(root, 'apps', 'cli', 'dist', 'main.js');

function die(msg) {
  console.error(`bench: ${msg}`);
  process.exit(1);
}
function sh(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 1 << 26, ...opts });
  if (r.status !== 0) die(`${cmd} ${args.join(' ')} failed: ${r.stderr || r.stdout}`);
  return r.stdout;
}
if (!existsSync(larchBin)) die(`${larchBin} is missing; run "pnpm build" first`);
if (spawnSync('ostree', ['--version']).status !== 0) die('the real ostree is needed (apt-get install -y ostree)');
if (!existsSync(tree)) die(`no tree at ${tree}: run "pnpm bench" once (it generates bench-out/tree) or pass --tree DIR`);

const sysroot = join(work, 'sysroot');
const repo = join(sysroot, 'ostree', 'repo');
function clearImmutable() {
  spawnSync('sh', ['-c', `chattr -i ${join(sysroot, 'ostree/deploy/benchos/deploy')}/*.* 2>/dev/null`]);
}
if (existsSync(work)) {
  clearImmutable();
  rmSync(work, { recursive: true, force: true });
}
mkdirSync(sysroot, { recursive: true });
const osTree = join(work, 'os-tree');
console.log(`bench: copying ${tree} and adding a kernel and /usr/etc`);
cpSync(tree, osTree, { recursive: true, verbatimSymlinks: true });
// A real OS tree (make-os-trees.sh) has /etc: OSTree deploys the defaults from /usr/etc, so move
// it there first, as image builders for OSTree do.
if (existsSync(join(osTree, 'etc')) && !existsSync(join(osTree, 'usr/etc'))) renameSync(join(osTree, 'etc'), join(osTree, 'usr/etc'));
mkdirSync(join(osTree, 'usr/lib/modules/6.1.0'), { recursive: true });
writeFileSync(join(osTree, 'usr/lib/modules/6.1.0/vmlinuz'), Buffer.alloc(8 << 20, 7));
writeFileSync(join(osTree, 'usr/lib/modules/6.1.0/initramfs.img'), Buffer.alloc(16 << 20, 9));
mkdirSync(join(osTree, 'usr/etc/conf.d'), { recursive: true });
rmSync(join(osTree, 'usr/etc/os-release'), { force: true });
writeFileSync(join(osTree, 'usr/etc/os-release'), 'PRETTY_NAME="Bench OS"\nID=bench\n');
for (let i = 0; i < 200; i++) writeFileSync(join(osTree, 'usr/etc/conf.d', `c${i}.conf`), `setting${i}=${'x'.repeat(i * 10)}\n`);

sh('ostree', ['admin', 'init-fs', sysroot]);
sh('ostree', ['admin', 'os-init', `--sysroot=${sysroot}`, 'benchos']);
console.log('bench: committing the tree into the sysroot repo (ostree, untimed)');
sh('ostree', [`--repo=${repo}`, 'commit', '-b', 'bench/os', '--timestamp=@1700000000', '--add-metadata-string=version=1', `--tree=dir=${osTree}`]);
rmSync(osTree, { recursive: true, force: true });
sh('ostree', ['admin', 'deploy', `--sysroot=${sysroot}`, '--os=benchos', '--karg=root=LABEL=ROOT', 'bench/os']);
// admin changes, so the /etc merge has something to carry
clearImmutable();
const first = sh('sh', ['-c', `ls -d ${join(sysroot, 'ostree/deploy/benchos/deploy')}/*.0`]).trim();
writeFileSync(join(first, 'etc/conf.d/c1.conf'), 'changed by the admin\n');
writeFileSync(join(first, 'etc/added-by-admin.conf'), 'x\n');

function timedDeploy(tool) {
  const args = ['admin', 'deploy', `--sysroot=${sysroot}`, '--os=benchos', 'bench/os'];
  const cmd = tool === 'larch' ? process.execPath : 'ostree';
  const full = tool === 'larch' ? [larchBin, ...args] : args;
  spawnSync('sync');
  const t0 = process.hrtime.bigint();
  const r = spawnSync(cmd, full, { encoding: 'utf8' });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) die(`${tool} deploy failed: ${r.stderr}`);
  const status = sh('ostree', ['admin', 'status', `--sysroot=${sysroot}`]);
  if ((status.match(/^ {2}benchos /gm) ?? []).length !== 2) die(`unexpected status after ${tool}:\n${status}`);
  // back to one deployment: drop the older one so the next run deploys over the same state
  sh('ostree', ['admin', 'undeploy', `--sysroot=${sysroot}`, '1']);
  return ms;
}

const samples = { ostree: [], larch: [] };
for (let i = 0; i < runs; i++) {
  for (const tool of ['ostree', 'larch']) {
    const ms = timedDeploy(tool);
    samples[tool].push(ms);
    console.log(`bench: ${tool} admin deploy run ${i + 1}: ${(ms / 1000).toFixed(2)} s`);
  }
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const mo = median(samples.ostree);
const ml = median(samples.larch);
console.log(`\nadmin deploy of ${tree} (median of ${runs}):`);
console.log(`  ostree ${(mo / 1000).toFixed(2)} s`);
console.log(`  larch  ${(ml / 1000).toFixed(2)} s`);
console.log(`  ratio larch/ostree ${(ml / mo).toFixed(2)}x`);
if (!argv.includes('--keep')) {
  clearImmutable();
  rmSync(work, { recursive: true, force: true });
}
