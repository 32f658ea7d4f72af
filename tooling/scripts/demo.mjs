#!/usr/bin/env node
// The README's main job: a short end-to-end run of the store on its embedded
// default, the sample OS tree in test-fixtures/sample-os.
//
//   pnpm demo [--out DIR] [--tree DIR]
//
// It initialises an archive repo, commits the tree, shows the log and the
// listing, checks the commit out again, compares the checkout with the input,
// and verifies the repo with fsck. Every step is a real `larch` invocation,
// printed before it runs; the first failing step stops the demo with its exit
// status.
import { spawnSync } from 'node:child_process';
import { rmSync, mkdirSync, existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 && args[i + 1] ? resolve(args[i + 1]) : dflt;
};
const out = opt('--out', join(root, 'demo-out'));
const tree = opt('--tree', join(root, 'test-fixtures', 'sample-os'));
const larchBin = join(root, 'apps', 'cli', 'dist', 'main.js');
if (!existsSync(larchBin)) {
  console.error(`error: ${larchBin} is missing; run "pnpm build" first`);
  process.exit(1);
}

const repo = join(out, 'repo');
const checkoutDir = join(out, 'checkout');
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });

function larch(...argv) {
  console.log(`\n$ larch ${argv.map((a) => (/[\s'"]/.test(a) ? JSON.stringify(a) : a)).join(' ')}`);
  const r = spawnSync(process.execPath, [larchBin, ...argv], { stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8' });
  process.stdout.write(r.stdout);
  if (r.status !== 0) {
    console.error(`demo: step failed with exit status ${r.status}`);
    process.exit(r.status ?? 1);
  }
  return r.stdout.trim();
}

const ref = 'larch-demo/x86_64/stable';
larch('init', `--repo=${repo}`, '--mode=archive');
const commit = larch(
  'commit', `--repo=${repo}`, '-b', ref, '-s', 'Larch demo OS 1', '--body', 'The sample OS-like tree from test-fixtures.',
  '--add-metadata-string=version=1', `--tree=dir=${tree}`,
);
larch('log', `--repo=${repo}`, ref);
larch('ls', `--repo=${repo}`, '-R', ref);
larch('rev-parse', `--repo=${repo}`, ref);
larch('checkout', `--repo=${repo}`, commit, checkoutDir);
console.log(`\n$ diff -r ${tree} ${checkoutDir}`);
const diff = spawnSync('diff', ['-r', '--no-dereference', tree, checkoutDir], { stdio: 'inherit' });
if (diff.status !== 0) {
  console.error('demo: the checkout differs from the committed tree');
  process.exit(1);
}
console.log('(identical)');
larch('fsck', `--repo=${repo}`);
larch('summary', `--repo=${repo}`, '-u');
larch('summary', `--repo=${repo}`, '--view');
console.log(`\nDemo finished: repo in ${repo}, checkout in ${checkoutDir}.`);
