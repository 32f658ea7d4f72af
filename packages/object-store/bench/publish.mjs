#!/usr/bin/env node
/**
 * Publish and pull benchmark over the same repo, in one run:
 *   - publish throughput of @larch/object-store to a real Ceph radosgw (objects/s, MB/s), and the
 *     time of a no-op republish (one listing, nothing to upload);
 *   - pull time (the real `ostree pull` and `larch pull`, fresh archive repo each run) from the
 *     public-read bucket, from larch-server serving the repo directory, and from nginx serving it.
 *
 * Usage: node packages/object-store/bench/publish.mjs [--files=5000] [--runs=3] [--keep-engine]
 * Needs: a build (pnpm turbo run build --filter=@larch/cli... --filter=@larch/server...), ostree,
 * nginx (apt-get install -y nginx), root for the first engine start (it installs Ceph's packages).
 * Prints a Markdown section (and writes bench-out/object-store-bench.json).
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../../..');
const args = Object.fromEntries(process.argv.slice(2).map((a) => a.replace(/^--/, '').split('=')).map(([k, v]) => [k, v ?? true]));
const FILES = Number(args.files ?? 5000);
const RUNS = Number(args.runs ?? 3);
const engineScript = path.join(root, 'tooling/s3-engine/s3-engine.sh');
const larchCli = path.join(root, 'apps/cli/dist/main.js');
const serverCli = path.join(root, 'apps/server/dist/main.js');
const { S3Store, ensureBucket, publishRepo, publicUrl } = await import(path.join(root, 'packages/object-store/dist/index.js'));

const sh = (file, argv, opts = {}) => execFileSync(file, argv, { encoding: 'utf8', maxBuffer: 1 << 26, ...opts });
const seconds = (t0) => Number(process.hrtime.bigint() - t0) / 1e9;
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

// --- engine
const wasUp = (() => { try { sh('bash', [engineScript, 'status']); return true; } catch { return false; } })();
const envText = sh('bash', [engineScript, 'start'], { stdio: ['ignore', 'pipe', 'inherit'] });
for (const m of envText.matchAll(/^export (\w+)=(.*)$/gm)) process.env[m[1]] = m[2];
const endpoint = process.env.S3_ENDPOINT;

// --- a Debian-like tree (same shape as the tests': binaries, libraries, docs, man pages, locales)
let x = 12345;
const rand = () => { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; return x / 4294967296; };
function bytes(n, text) {
  n = Math.floor(n);
  const b = Buffer.alloc(n);
  if (text) { const w = ['the ', 'usr ', 'lib ', 'debian ', 'license ', 'GNU ', '\n']; let i = 0; while (i < n) i += b.write(w[Math.floor(rand() * w.length)], i); }
  else { let i = 0; for (; i + 4 <= n; i += 4) b.writeUInt32LE(Math.floor(rand() * 4294967296), i); for (; i < n; i++) b[i] = Math.floor(rand() * 256); }
  return b;
}
const work = mkdtempSync(path.join(tmpdir(), 'larch-os-bench-'));
const tree = path.join(work, 'tree');
let n = 0;
const add = (rel, size, text, mode = 0o644) => { const p = path.join(tree, rel); mkdirSync(path.dirname(p), { recursive: true }); writeFileSync(p, bytes(size, text), { mode }); n++; };
for (let p = 0; n < FILES; p++) {
  const pkg = `pkg${p % 400}-${Math.floor(p / 400)}`;
  const size = () => 100 + rand() * rand() * 60000;
  switch (p % 6) {
    case 0: add(`usr/bin/${pkg}`, size() * 2, false, 0o755); break;
    case 1: add(`usr/lib/x86_64-linux-gnu/lib${pkg}.so.1.0`, size() * 3, false); symlinkSync(`lib${pkg}.so.1.0`, path.join(tree, `usr/lib/x86_64-linux-gnu/lib${pkg}.so.1`)); break;
    case 2: add(`usr/share/man/man1/${pkg}.1.gz`, size() / 4 + 100, false); break;
    case 3: add(`usr/share/locale/de/LC_MESSAGES/${pkg}.mo`, size() / 2 + 100, false); break;
    case 4: add(`etc/${pkg}/${pkg}.conf`, size() / 8 + 50, true); break;
    default: add(`usr/share/${pkg}/data-${p}.dat`, size(), p % 2 === 0);
  }
  if (n < FILES) add(`usr/share/doc/${pkg}/copyright`, 200 + rand() * 3000, true);
}
const repo = path.join(work, 'repo');
sh('ostree', ['init', `--repo=${repo}`, '--mode=archive']);
const commit = sh('ostree', ['commit', `--repo=${repo}`, '-b', 'bench/stable', `--tree=dir=${tree}`, '-s', 'bench']).trim();
sh('ostree', ['summary', '-u', `--repo=${repo}`]);
let repoBytes = 0, repoFiles = 0;
const du = (d) => { for (const e of readdirSync(d, { withFileTypes: true })) { const p = path.join(d, e.name); if (e.isDirectory()) du(p); else { repoFiles++; repoBytes += statSync(p).size; } } };
du(path.join(repo, 'objects'));

// --- publish
const bucket = `larch-bench-${Date.now().toString(36)}`;
const store = new S3Store({ bucket, prefix: 'repo', concurrency: 16 });
await ensureBucket(store, { publicRead: true });
let t0 = process.hrtime.bigint();
const pub = await publishRepo(repo, store, { concurrency: 16 });
const publishSecs = seconds(t0);
t0 = process.hrtime.bigint();
const noop = await publishRepo(repo, store, { concurrency: 16 });
const noopSecs = seconds(t0);
if (noop.uploaded.length !== 0) throw new Error('republish uploaded something');

// --- servers over the same repo
const lsPort = 18400 + Math.floor(Math.random() * 500);
const server = spawn(process.execPath, [serverCli, `--repo=${repo}`, `--port=${lsPort}`, '--access-log=/dev/null'], { stdio: 'ignore' });
const ngPort = lsPort + 1;
const ngDir = path.join(work, 'nginx');
mkdirSync(path.join(ngDir, 'logs'), { recursive: true });
writeFileSync(path.join(ngDir, 'nginx.conf'), `${process.getuid?.() === 0 ? 'user root; ' : ''}worker_processes 2; daemon off; pid ${ngDir}/nginx.pid; error_log ${ngDir}/logs/error.log;
events { worker_connections 1024; }
http { access_log off; sendfile on; tcp_nopush on; keepalive_requests 100000; default_type application/octet-stream;
  server { listen 127.0.0.1:${ngPort}; root ${work}; location / { try_files $uri =404; } } }
`);
const children = [];
process.on('exit', () => { for (const c of children) c.kill('SIGTERM'); });
children.push(server);
const nginx = spawn('nginx', ['-p', ngDir, '-c', path.join(ngDir, 'nginx.conf')], { stdio: 'ignore' });
const waitUp = async (url) => { for (let i = 0; i < 100; i++) { try { if ((await fetch(url)).status === 200) return; } catch {} await new Promise((r) => setTimeout(r, 100)); } throw new Error(`${url} did not answer`); };
children.push(nginx);
await waitUp(`http://127.0.0.1:${lsPort}/config`);
await waitUp(`http://127.0.0.1:${ngPort}/repo/config`);

const sources = {
  'bucket (radosgw)': publicUrl(store, endpoint),
  'larch-server': `http://127.0.0.1:${lsPort}`,
  nginx: `http://127.0.0.1:${ngPort}/repo`,
};
const clients = {
  'ostree pull': (dest, url) => { sh('ostree', ['init', `--repo=${dest}`, '--mode=archive']); sh('ostree', ['remote', 'add', `--repo=${dest}`, '--no-gpg-verify', 'src', url]); return () => sh('ostree', ['pull', `--repo=${dest}`, 'src', 'bench/stable']); },
  'larch pull': (dest, url) => { sh(process.execPath, [larchCli, 'init', `--repo=${dest}`, '--mode=archive']); sh(process.execPath, [larchCli, 'remote', 'add', `--repo=${dest}`, '--no-gpg-verify', 'src', url]); return () => sh(process.execPath, [larchCli, 'pull', `--repo=${dest}`, 'src', 'bench/stable']); },
};
const pulls = {};
for (let run = 0; run < RUNS; run++) {
  for (const [client, setup] of Object.entries(clients)) {
    for (const [source, url] of Object.entries(sources)) {
      const dest = path.join(work, `pull-${run}-${client.split(' ')[0]}-${source.split(' ')[0]}`);
      const go = setup(dest, url);
      const t = process.hrtime.bigint();
      go();
      ((pulls[client] ??= {})[source] ??= []).push(seconds(t));
      const got = sh('ostree', ['rev-parse', `--repo=${dest}`, 'src:bench/stable']).trim();
      if (got !== commit) throw new Error(`${client} from ${source} got ${got}`);
      rmSync(dest, { recursive: true, force: true });
    }
  }
}
server.kill('SIGTERM');
nginx.kill('SIGTERM');
store.destroy();

const mb = repoBytes / 1e6;
const result = {
  date: new Date().toISOString().slice(0, 10), files: FILES, objects: repoFiles, objectBytes: repoBytes,
  publish: { seconds: publishSecs, uploaded: pub.uploaded.length, objectsPerSecond: pub.uploaded.length / publishSecs, mbPerSecond: pub.uploadedBytes / 1e6 / publishSecs },
  republishNoop: { seconds: noopSecs },
  pullSecondsMedian: Object.fromEntries(Object.entries(pulls).map(([c, s]) => [c, Object.fromEntries(Object.entries(s).map(([k, v]) => [k, median(v)]))])),
  runs: RUNS,
};
mkdirSync(path.join(root, 'bench-out'), { recursive: true });
writeFileSync(path.join(root, 'bench-out/object-store-bench.json'), JSON.stringify(result, null, 2));
const lines = [
  '## Object storage: publish to radosgw, pull from bucket vs larch-server vs nginx',
  '',
  `Produced by \`node packages/object-store/bench/publish.mjs --files=${FILES} --runs=${RUNS}\`. Date ${result.date}; Ceph 16.2.15 radosgw (single node, BlueStore on a sparse file) on the same 2-core machine as the client.`,
  `Repo: a Debian-like tree of ${FILES} files, ${repoFiles} archive objects, ${mb.toFixed(1)} MB of objects.`,
  '',
  '| publish | seconds | files | objects/s | MB/s |',
  '| --- | ---: | ---: | ---: | ---: |',
  `| first publish (empty bucket, concurrency 16) | ${publishSecs.toFixed(2)} | ${pub.uploaded.length} | ${result.publish.objectsPerSecond.toFixed(0)} | ${result.publish.mbPerSecond.toFixed(1)} |`,
  `| republish, nothing to upload (one listing) | ${noopSecs.toFixed(2)} | 0 | – | – |`,
  '',
  `| pull (median of ${RUNS}, fresh repo) | ${Object.keys(sources).join(' | ')} |`,
  `| --- |${Object.keys(sources).map(() => ' ---: |').join('')}`,
  ...Object.entries(result.pullSecondsMedian).map(([c, s]) => `| ${c} (s) | ${Object.keys(sources).map((k) => s[k].toFixed(2)).join(' | ')} |`),
];
console.log(lines.join('\n'));
rmSync(work, { recursive: true, force: true });
if (!wasUp && !args['keep-engine']) sh('bash', [engineScript, 'stop'], { stdio: 'inherit' });
