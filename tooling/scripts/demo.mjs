#!/usr/bin/env node
// The README's main job: a short end-to-end run on the embedded default, the
// sample OS tree in test-fixtures/sample-os.
//
//   pnpm demo [--out DIR] [--tree DIR]
//
// It initialises an archive repo, commits the tree, shows the log and the
// listing, checks the commit out again, compares the checkout with the input,
// verifies the repo with fsck and writes its summary. Then it serves the repo
// with larch-server on a free loopback port and pulls it over HTTP into a
// second, bare-user repo (with a progress bar on a terminal), and fscks that.
// Every step is a real `larch` invocation, printed before it runs; the first
// failing step stops the demo with its exit status.
import { spawn, spawnSync } from 'node:child_process';
import { createInterface } from 'node:readline';
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
const serverBin = join(root, 'apps', 'server', 'dist', 'main.js');
for (const bin of [larchBin, serverBin]) {
  if (!existsSync(bin)) {
    console.error(`error: ${bin} is missing; run "pnpm build" first`);
    process.exit(1);
  }
}

const repo = join(out, 'repo');
const checkoutDir = join(out, 'checkout');
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });

function larch(...argv) {
  console.log(`\n$ larch ${argv.map((a) => (/[\s'"]/.test(a) ? JSON.stringify(a) : a)).join(' ')}`);
  const r = spawnSync(process.execPath, [larchBin, ...argv], { stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8' });
  if (r.error) {
    console.error(`demo: could not run larch: ${r.error.message}`);
    process.exit(1);
  }
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

// Serve the repo over HTTP and pull it into a second repo.
console.log(`\n$ larch-server --repo=${repo} --port=0`);
const server = spawn(process.execPath, [serverBin, `--repo=${repo}`, '--port=0', `--access-log=${join(out, 'access.log')}`], {
  stdio: ['ignore', 'pipe', 'inherit'],
});
// Stopped however the demo ends, including a failing step's process.exit.
process.on('exit', () => server.kill('SIGTERM'));
const url = await new Promise((resolveUrl, reject) => {
  const rl = createInterface({ input: server.stdout });
  const timer = setTimeout(() => reject(new Error('larch-server did not start within 20 s')), 20_000);
  rl.on('line', (line) => {
    console.log(line);
    const m = / at (http:\/\/\S+)/.exec(line);
    if (m) {
      clearTimeout(timer);
      resolveUrl(m[1]);
    }
  });
  server.on('exit', (code) => reject(new Error(`larch-server exited with status ${code}`)));
}).catch((e) => {
  console.error(`demo: ${e.message}`);
  process.exit(1);
});
const mirror = join(out, 'mirror');
try {
  larch('init', `--repo=${mirror}`, '--mode=bare-user');
  larch('remote', 'add', `--repo=${mirror}`, '--no-gpg-verify', 'demo', url);
  larch('pull', `--repo=${mirror}`, 'demo', ref);
  larch('log', `--repo=${mirror}`, `demo:${ref}`);
  larch('fsck', `--repo=${mirror}`);
} finally {
  server.kill('SIGTERM');
}
// One update-agent cycle: a device sysroot follows a branch served by larch-server (check,
// pull, pre-flight, stage, "reboot", health checks, confirm).
console.log('\n$ bash tooling/scripts/demo-agent.sh');
const agent = spawnSync('bash', [join(root, 'tooling/scripts/demo-agent.sh'), join(out, 'agent')], { stdio: 'inherit' });
if (agent.status !== 0) {
  console.error(`demo: the agent cycle failed (status ${agent.status})`);
  process.exit(1);
}
console.log(`\nDemo finished: repo in ${repo}, checkout in ${checkoutDir}, pulled over HTTP into ${mirror}, agent cycle in ${join(out, 'agent')}.`);
