/**
 * Test support: the real S3 engine (Ceph radosgw via tooling/s3-engine), a fault-injecting and
 * request-counting HTTP proxy in front of it, a Debian-like synthetic tree, and a check that a
 * bucket's summary and refs name only objects that exist.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import net, { type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { randomBytes } from 'node:crypto';
import { parseCommit, parseDirTree, readSummary } from '@larch/core-store';
import { DeleteBucketCommand, DeleteObjectsCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { S3Store, deltaDirKey, objectKey, summaryDeltaNames, type S3StoreOptions } from '../src/index.js';

const exec = promisify(execFile);
export const ENGINE_SCRIPT = fileURLToPath(new URL('../../../tooling/s3-engine/s3-engine.sh', import.meta.url));

export interface Engine {
  endpoint: string;
  env: Record<string, string>;
  /** True when this process started the engine (and so stops it). */
  startedHere: boolean;
  /** The settings the script runs with (S3E_DIR and the ports). */
  scriptEnv: Record<string, string>;
  /** The scratch directory to remove after stopping: set for an engine of this process's own. */
  ownDir?: string;
}

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

/** A TCP port on 127.0.0.1 that nothing listens on now (the OS's choice). */
export async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r, j) => s.once('error', j).listen(0, '127.0.0.1', () => r()));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/**
 * Start an engine and put its exports into process.env. Throws when it cannot start: under
 * CI=true the suite fails; locally too (these tests exist to exercise a real store).
 *
 * By default the engine is this process's own: a new cluster in a new temporary directory, its
 * S3 and monitor ports chosen by the OS, stopped and removed by stopEngine. Two copies of the
 * suite (or two test files) running at once so never share daemons, ports or data. With S3E_DIR
 * set, the engine in that directory is used instead (started when it is not running, and then
 * stopped at the end unless S3E_KEEP=1): quicker for repeated local runs, but shared.
 */
export async function startEngine(): Promise<Engine> {
  const shared = process.env.S3E_DIR;
  const scriptEnv: Record<string, string> = {};
  let ownDir: string | undefined;
  if (!shared) {
    ownDir = await mkdtemp(path.join(tmpdir(), 'larch-s3e-'));
    scriptEnv.S3E_DIR = ownDir;
    scriptEnv.S3E_PORT = String(await freePort());
    scriptEnv.S3E_MON_PORT = String(await freePort());
  }
  const opts = { env: { ...process.env, ...scriptEnv } };
  const wasUp = shared ? await exec('bash', [ENGINE_SCRIPT, 'status'], opts).then(() => true, () => false) : false;
  const started = await exec('bash', [ENGINE_SCRIPT, 'start'], { ...opts, timeout: 900_000, maxBuffer: 1 << 20 }).catch(async (e: Error & { stderr?: string }) => {
    if (ownDir) await removeOwnEngine(scriptEnv, ownDir);
    throw new Error(`the S3 engine did not start (${ENGINE_SCRIPT} start): ${(e.stderr ?? e.message).trim().split('\n').slice(-3).join(' / ')}`);
  });
  const env: Record<string, string> = {};
  for (const m of started.stdout.matchAll(/^export (\w+)=(.*)$/gm)) env[m[1]] = m[2];
  Object.assign(process.env, env);
  return { endpoint: env.S3_ENDPOINT, env, startedHere: !wasUp, scriptEnv, ownDir };
}

async function removeOwnEngine(scriptEnv: Record<string, string>, dir: string): Promise<void> {
  await exec('bash', [ENGINE_SCRIPT, 'stop'], { env: { ...process.env, ...scriptEnv }, timeout: 300_000 }).catch(() => undefined);
  await rm(dir, { recursive: true, force: true });
}

export async function stopEngine(e: Engine): Promise<void> {
  if (e.ownDir) await removeOwnEngine(e.scriptEnv, e.ownDir);
  else if (e.startedHere && process.env.S3E_KEEP !== '1') await exec('bash', [ENGINE_SCRIPT, 'stop'], { env: { ...process.env, ...e.scriptEnv }, timeout: 300_000 });
}

/** Delete every object of the store's bucket, then the bucket (tests leave no data in the engine). */
export async function removeBucket(store: S3Store): Promise<void> {
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const page = await store.client.send(new ListObjectsV2Command({ Bucket: store.bucket, ContinuationToken: token }));
    for (const o of page.Contents ?? []) if (o.Key) keys.push(o.Key);
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  for (let i = 0; i < keys.length; i += 1000) {
    await store.client.send(new DeleteObjectsCommand({ Bucket: store.bucket, Delete: { Objects: keys.slice(i, i + 1000).map((Key) => ({ Key })), Quiet: true } }));
  }
  await store.client.send(new DeleteBucketCommand({ Bucket: store.bucket }));
}

export function uniqueBucket(tag: string): string {
  return `larch-${tag}-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
}

export function storeFor(bucket: string, prefix = 'repo', endpoint?: string, extra: Partial<S3StoreOptions> = {}): S3Store {
  return new S3Store({ bucket, prefix, ...(endpoint ? { endpoint } : {}), baseBackoffMs: 20, maxBackoffMs: 200, ...extra });
}

/** What the proxy does with one request. */
export type FaultAction = 'pass' | '500' | 'slowdown' | 'drop';

export interface Proxy {
  endpoint: string;
  /** Requests seen, by method. */
  counts: Record<string, number>;
  /** Decide per request (method, path without query); default pass. */
  decide: (method: string, key: string) => FaultAction;
  /** Called for each request before it is forwarded or failed. */
  onRequest: (method: string, key: string) => void;
  injected: number;
  close(): Promise<void>;
}

/**
 * An HTTP proxy in front of radosgw that forwards requests unchanged (the Host header too, so
 * SigV4 signatures stay valid) or answers 500 InternalError, 503 SlowDown, or drops the connection.
 */
export async function startProxy(target: string): Promise<Proxy> {
  const t = new URL(target);
  const sockets = new Set<Socket>();
  const proxy: Proxy = {
    endpoint: '',
    counts: {},
    decide: () => 'pass',
    onRequest: () => undefined,
    injected: 0,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  const server = http.createServer((req, res) => {
    const method = req.method ?? 'GET';
    const key = decodeURIComponent((req.url ?? '/').split('?')[0]);
    proxy.counts[method] = (proxy.counts[method] ?? 0) + 1;
    proxy.onRequest(method, key);
    const action = proxy.decide(method, key);
    if (action !== 'pass') {
      proxy.injected++;
      if (action === 'drop') {
        req.socket.destroy();
        return;
      }
      req.resume();
      req.on('end', () => {
        const [status, code, msg] = action === '500' ? [500, 'InternalError', 'We encountered an internal error. Please try again.'] : [503, 'SlowDown', 'Please reduce your request rate.'];
        const body = `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>${msg}</Message><Key>${key}</Key></Error>`;
        res.writeHead(status, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(body) });
        res.end(body);
      });
      return;
    }
    const up = http.request({ host: t.hostname, port: t.port, method, path: req.url, headers: req.headers, agent }, (ur) => {
      res.writeHead(ur.statusCode ?? 502, ur.headers);
      ur.pipe(res);
    });
    up.on('error', () => req.socket.destroy());
    req.pipe(up);
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  proxy.endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return proxy;
}

/** A seeded PRNG (xorshift32), so trees are the same on every run. */
export function prng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 0x100000000;
  };
}

function bytesOf(rand: () => number, size: number, text: boolean): Buffer {
  const n = Math.floor(size);
  const b = Buffer.alloc(n);
  if (text) {
    const words = ['the', 'usr', 'lib', 'package', 'debian', 'copyright', 'license', 'GNU', 'version', 'file', 'data', 'config', '\n'];
    let i = 0;
    while (i < n) i += b.write(`${words[Math.floor(rand() * words.length)]} `, i);
  } else {
    let i = 0;
    for (; i + 4 <= n; i += 4) b.writeUInt32LE(Math.floor(rand() * 0x100000000), i);
    for (; i < n; i++) b[i] = Math.floor(rand() * 256);
  }
  return b;
}

/**
 * A Debian-like tree: usr/bin and usr/sbin executables, shared libraries with version symlinks,
 * usr/share/doc/PKG/{copyright,changelog.Debian.gz}, man pages, locale files, /etc config. Sizes
 * from ~100 B to a few hundred KiB (a few MiB-sized files). Returns the regular file paths.
 */
export function makeDebianLikeTree(root: string, files: number, seed = 1): string[] {
  const rand = prng(seed);
  const out: string[] = [];
  const pkgs = Math.max(4, Math.floor(files / 12));
  const add = (rel: string, size: number, text: boolean, mode = 0o644): void => {
    const p = path.join(root, rel);
    mkdirSync(path.dirname(p), { recursive: true });
    writeFileSync(p, bytesOf(rand, size, text), { mode });
    out.push(rel);
  };
  let n = 0;
  for (let p = 0; n < files; p++) {
    const pkg = `pkg${p % pkgs}-${Math.floor(p / pkgs)}`;
    const kind = p % 6;
    const size = (): number => Math.floor(100 + rand() * rand() * 60_000);
    if (kind === 0) add(`usr/bin/${pkg}`, size() * 2, false, 0o755);
    else if (kind === 1) {
      add(`usr/lib/x86_64-linux-gnu/lib${pkg}.so.1.0.${p % 7}`, size() * 3, false);
      const link = path.join(root, `usr/lib/x86_64-linux-gnu/lib${pkg}.so.1`);
      symlinkSync(`lib${pkg}.so.1.0.${p % 7}`, link);
    } else if (kind === 2) add(`usr/share/man/man${1 + (p % 8)}/${pkg}.${1 + (p % 8)}.gz`, size() / 4 + 100, false);
    else if (kind === 3) add(`usr/share/locale/${['de', 'fr', 'es', 'ja', 'pt_BR'][p % 5]}/LC_MESSAGES/${pkg}.mo`, size() / 2 + 100, false);
    else if (kind === 4) add(`etc/${pkg}/${pkg}.conf`, size() / 8 + 50, true);
    else add(`usr/share/${pkg}/data-${p}.dat`, size(), p % 2 === 0);
    n++;
    if (n < files) {
      add(`usr/share/doc/${pkg}/copyright`, 200 + Math.floor(rand() * 3000), true);
      n++;
    }
  }
  // A few large files, as real trees have (firmware, locale archives).
  for (let i = 0; i < 3; i++) add(`usr/lib/firmware/blob-${i}.bin`, 1_500_000 + i * 250_000, false);
  return out;
}

/** Rewrite `count` of `files` (chosen by seed) with new content. */
export function changeFiles(root: string, files: string[], count: number, seed: number): string[] {
  const rand = prng(seed);
  const chosen = new Set<string>();
  while (chosen.size < count) chosen.add(files[Math.floor(rand() * files.length)]);
  for (const rel of chosen) writeFileSync(path.join(root, rel), bytesOf(rand, 500 + Math.floor(rand() * 20_000), false));
  return [...chosen];
}

/**
 * Check that everything the bucket's summary and refs name exists: each named commit, its root
 * dirmeta and dirtree and every object below, and the superblock of each listed delta.
 * Returns the problems found (empty = consistent) and the commits checked.
 */
export async function checkBucketConsistent(store: S3Store): Promise<{ problems: string[]; commits: string[] }> {
  const keys = new Map<string, number>();
  for await (const o of store.list('')) keys.set(o.key, o.size);
  const problems: string[] = [];
  const commits = new Set<string>();
  const summaryBytes = await store.getBytes('summary', 1 << 26);
  if (summaryBytes) {
    const s = readSummary(summaryBytes);
    for (const r of s.refs) commits.add(r.checksum);
    for (const name of summaryDeltaNames(s)) if (!keys.has(`${deltaDirKey(name)}superblock`)) problems.push(`delta ${name} (in the summary) has no superblock`);
  }
  for (const k of keys.keys()) {
    if (!k.startsWith('refs/heads/')) continue;
    const b = await store.getBytes(k, 100);
    if (b) commits.add(Buffer.from(b).toString().trim());
  }
  const seenTrees = new Set<string>();
  const walk = async (tree: string): Promise<void> => {
    if (seenTrees.has(tree)) return;
    seenTrees.add(tree);
    const k = objectKey(tree, 'dirtree');
    if (!keys.has(k)) {
      problems.push(`missing ${k}`);
      return;
    }
    const t = parseDirTree((await store.getBytes(k, 1 << 26))!);
    for (const f of t.files) if (!keys.has(objectKey(f.checksum, 'filez'))) problems.push(`missing ${objectKey(f.checksum, 'filez')}`);
    const subs = [];
    for (const d of t.dirs) {
      if (!keys.has(objectKey(d.metaChecksum, 'dirmeta'))) problems.push(`missing ${objectKey(d.metaChecksum, 'dirmeta')}`);
      subs.push(d.treeChecksum);
    }
    await Promise.all(subs.map(walk));
  };
  for (const c of commits) {
    const k = objectKey(c, 'commit');
    if (!keys.has(k)) {
      problems.push(`missing ${k}`);
      continue;
    }
    const commit = parseCommit((await store.getBytes(k, 1 << 26))!);
    if (!keys.has(objectKey(commit.rootMeta, 'dirmeta'))) problems.push(`missing ${objectKey(commit.rootMeta, 'dirmeta')}`);
    await walk(commit.rootTree);
  }
  return { problems, commits: [...commits] };
}
