/**
 * @larch/object-store against a real S3 engine: Ceph radosgw started by
 * tooling/s3-engine/s3-engine.sh: a cluster of this file's own, in a temporary directory and on
 * ports the OS chose, removed at the end (or the one in $S3E_DIR, when that is set). When the engine cannot start (not root, no Debian packages), the file fails
 * under CI=true and is skipped otherwise, as the interop tests are without `ostree`. Every describe
 * uses its own bucket.
 */
import { spawn } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { compareTrees, larchCliPath, ostreeOk, requireOstree, runOk, run, tmpDir, type TmpDir } from '@larch/test-fixtures';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { ListMultipartUploadsCommand } from '@aws-sdk/client-s3';
import { ensureBucket, MIN_PART_SIZE, publishRepo, pruneStore, publicUrl, type RangedBody, type S3Store, type S3StoreOptions } from '../src/index.js';
import { changeFiles, checkBucketConsistent, removeBucket, makeDebianLikeTree, startEngine, startProxy, stopEngine, storeFor, uniqueBucket, type Engine } from './engine.js';

const started: Engine | null = await startEngine().catch((e: Error) => {
  if (process.env.CI === 'true') throw e;
  process.stderr.write(`skipping the S3 tests: ${e.message}\n`);
  return null;
});
const s3Describe = started ? describe : describe.skip;
let engine: Engine;
const stores: S3Store[] = [];
const dirs: TmpDir[] = [];

beforeAll(() => {
  if (!started) return;
  requireOstree();
  engine = started;
}, 600_000);

afterAll(async () => {
  for (const s of stores) {
    // An engine of this file's own goes as a whole; a shared one keeps no test data.
    if (!started?.ownDir) await removeBucket(s).catch(() => undefined);
    s.destroy();
  }
  for (const d of dirs) await d.cleanup();
  if (started) await stopEngine(started);
}, 600_000);

async function newDir(): Promise<TmpDir> {
  const d = await tmpDir('larch-os-');
  dirs.push(d);
  return d;
}

async function newStore(tag: string, endpoint?: string, extra: Partial<S3StoreOptions> = {}): Promise<S3Store> {
  const s = storeFor(uniqueBucket(tag), 'repo', endpoint, extra);
  stores.push(s);
  await ensureBucket(s, { publicRead: true });
  return s;
}

function larch(args: string[], env: Record<string, string> = {}) {
  return run(process.execPath, [larchCliPath(), ...args], { env, timeoutMs: 1_800_000 });
}
async function larchOk(args: string[], env: Record<string, string> = {}) {
  const r = await larch(args, env);
  if (r.code !== 0) throw new Error(`larch ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
  return r;
}

/** Every file of a local repo that publish mirrors, as store keys. */
async function localKeys(repo: string): Promise<Set<string>> {
  const out = new Set<string>();
  const walk = async (rel: string): Promise<void> => {
    for (const e of await fsp.readdir(path.join(repo, rel), { withFileTypes: true }).catch(() => [])) {
      const r = `${rel}/${e.name}`;
      if (e.isDirectory()) await walk(r);
      else out.add(r);
    }
  };
  for (const d of ['objects', 'deltas', 'delta-indexes', 'refs/heads']) await walk(d);
  return out;
}

let commits = 0;
/** Commit with ostree; each commit is a minute newer than the one before (pulls refuse downgrades). */
async function commitTree(repo: string, tree: string, branch: string, subject: string): Promise<string> {
  const ts = new Date(Date.UTC(2026, 0, 1) + ++commits * 60_000).toISOString().replace(/\.\d+Z$/, 'Z');
  const r = await ostreeOk(['commit', `--repo=${repo}`, '-b', branch, `--tree=dir=${tree}`, '-s', subject, `--timestamp=${ts}`]);
  return r.stdout.trim();
}

/**
 * Wait until the store's own clock (the Last-Modified it gives a probe object) has reached
 * `since` (ms): what is written afterwards is stamped at or after it, however fast this machine.
 */
async function waitForStoreClock(store: S3Store, since: number): Promise<void> {
  const key = 'larch-test-clock-probe';
  try {
    for (;;) {
      await store.put(key, new Uint8Array([1]), { contentType: 'application/octet-stream', cacheControl: 'no-store', length: 1 });
      const h = await store.head(key);
      if (h !== null && h.lastModified.getTime() >= since) return;
      await new Promise((r) => setTimeout(r, 250));
    }
  } finally {
    await store.deleteMany([key]);
  }
}

/** Whether an ostree pull into `repo` has opened its transaction (a staging directory in tmp/). */
async function pullStaging(repo: string): Promise<boolean> {
  const names = await fsp.readdir(path.join(repo, 'tmp')).catch(() => [] as string[]);
  return names.some((n) => n.startsWith('staging-'));
}

async function pulledCheckoutEquals(kind: 'ostree' | 'larch', repo: string, commit: string, source: string, out: string): Promise<void> {
  if (kind === 'ostree') await ostreeOk(['checkout', `--repo=${repo}`, '-U', commit, out]);
  else await larchOk(['checkout', `--repo=${repo}`, '-U', commit, out]);
  expect(await compareTrees(source, out)).toEqual([]);
}

s3Describe('publish a Debian-sized tree, pull it back with ostree and larch (objects, then a delta)', () => {
  let d: TmpDir;
  let store: S3Store;
  let url: string;
  let files: string[];
  let v1: string;
  let v2: string;
  const repo = (): string => d.join('repo');

  it('publishes a 5,000-file commit: every file, with cache headers and content types', async () => {
    d = await newDir();
    store = await newStore('big');
    url = publicUrl(store, engine.endpoint);
    files = makeDebianLikeTree(d.join('tree'), 5000, 7);
    expect(files.length).toBeGreaterThanOrEqual(5000);
    await ostreeOk(['init', `--repo=${repo()}`, '--mode=archive']);
    v1 = await commitTree(repo(), d.join('tree'), 'debian/stable', 'v1');
    await ostreeOk(['summary', '-u', `--repo=${repo()}`]);
    const local = await localKeys(repo());
    const r = await larchOk(['publish', `--repo=${repo()}`, '--json', `s3://${store.bucket}/repo`]);
    const done = JSON.parse(r.stdout.trim().split('\n').pop()!);
    expect(done.event).toBe('done');
    // Everything local (objects, refs) plus config and summary, nothing else.
    expect(new Set(done.uploaded)).toEqual(new Set([...local, 'config', 'summary']));
    expect(done.byClass.object).toBeGreaterThan(5000);
    const listed = new Set<string>();
    for await (const o of store.list('')) listed.add(o.key);
    expect(listed).toEqual(new Set(done.uploaded));
    // Anonymous HTTP, as a client sees it.
    const filez = [...local].find((k) => k.endsWith('.filez'))!;
    const h1 = await fetch(`${url}/${filez}`, { method: 'HEAD' });
    expect(h1.status).toBe(200);
    expect(h1.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    expect(h1.headers.get('content-type')).toBe('application/octet-stream');
    const h2 = await fetch(`${url}/refs/heads/debian/stable`);
    expect(h2.headers.get('cache-control')).toBe('public, max-age=60');
    expect(h2.headers.get('content-type')).toMatch(/^text\/plain/);
    expect((await h2.text()).trim()).toBe(v1);
    expect((await fetch(`${url}/objects/00/nope.filez`)).status).toBe(404);
    // A rerun uploads nothing.
    const again = JSON.parse((await larchOk(['publish', `--repo=${repo()}`, '--json', `s3://${store.bucket}/repo`])).stdout.trim().split('\n').pop()!);
    expect(again.uploaded).toEqual([]);
  }, 1_800_000);

  it('ostree pull and larch pull from the bucket URL: fsck clean, checkouts identical', async () => {
    // bare-user: libostree applies static deltas only to non-archive repos.
    await ostreeOk(['init', `--repo=${d.join('o')}`, '--mode=bare-user']);
    await ostreeOk(['remote', 'add', `--repo=${d.join('o')}`, '--no-gpg-verify', 'bucket', url]);
    await ostreeOk(['pull', `--repo=${d.join('o')}`, 'bucket', 'debian/stable']);
    await ostreeOk(['fsck', `--repo=${d.join('o')}`]);
    await pulledCheckoutEquals('ostree', d.join('o'), v1, d.join('tree'), d.join('co-o1'));

    await larchOk(['init', `--repo=${d.join('l')}`, '--mode=bare-user']);
    await larchOk(['remote', 'add', `--repo=${d.join('l')}`, '--no-gpg-verify', 'bucket', url]);
    await larchOk(['pull', `--repo=${d.join('l')}`, 'bucket', 'debian/stable']);
    await ostreeOk(['fsck', `--repo=${d.join('l')}`]);
    await pulledCheckoutEquals('larch', d.join('l'), v1, d.join('tree'), d.join('co-l1'));
  }, 1_800_000);

  it('a second publish after changing 1% of the files uploads only the new objects (and the delta)', async () => {
    const before = await localKeys(repo());
    changeFiles(d.join('tree'), files, Math.ceil(files.length / 100), 99);
    v2 = await commitTree(repo(), d.join('tree'), 'debian/stable', 'v2-longer');
    await larchOk(['static-delta', 'generate', `--repo=${repo()}`, `--from=${v1}`, `--to=${v2}`]);
    await ostreeOk(['summary', '-u', `--repo=${repo()}`]);
    const after = await localKeys(repo());
    const added = [...after].filter((k) => !before.has(k));
    const r = await larchOk(['publish', `--repo=${repo()}`, '--json', `s3://${store.bucket}/repo`]);
    const done = JSON.parse(r.stdout.trim().split('\n').pop()!);
    // Exactly the new objects and delta files, the moved ref and the new summary.
    expect(new Set(done.uploaded)).toEqual(new Set([...added, 'refs/heads/debian/stable', 'summary']));
    const newFilez = added.filter((k) => k.endsWith('.filez')).length;
    expect(newFilez).toBeGreaterThanOrEqual(45);
    expect(newFilez).toBeLessThanOrEqual(51);
    expect(done.byClass.object).toBe(added.filter((k) => k.startsWith('objects/') && !k.endsWith('.commit')).length);
    expect(done.byClass.commit).toBe(1);
    expect(done.byClass['delta-superblock']).toBe(1);
    expect((await checkBucketConsistent(store)).problems).toEqual([]);
  }, 1_800_000);

  it('ostree and larch pull the update through the static delta: fsck clean, checkouts identical', async () => {
    const o = await ostreeOk(['pull', `--repo=${d.join('o')}`, 'bucket', 'debian/stable']);
    expect(o.stdout + o.stderr).toMatch(/\d+ delta parts/);
    await ostreeOk(['fsck', `--repo=${d.join('o')}`]);
    expect((await ostreeOk(['rev-parse', `--repo=${d.join('o')}`, 'bucket:debian/stable'])).stdout.trim()).toBe(v2);
    await pulledCheckoutEquals('ostree', d.join('o'), v2, d.join('tree'), d.join('co-o2'));

    const l = await larchOk(['pull', `--repo=${d.join('l')}`, '--json', 'bucket', 'debian/stable']);
    expect(l.stdout).toMatch(/"phase":"deltas"/);
    await ostreeOk(['fsck', `--repo=${d.join('l')}`]);
    await pulledCheckoutEquals('larch', d.join('l'), v2, d.join('tree'), d.join('co-l2'));
  }, 1_800_000);
});

s3Describe('SIGKILL during publish', () => {
  it('at 20+ points spread over the run, leaves a bucket whose summary names only existing objects; a rerun completes', async () => {
    const d = await newDir();
    const store = await newStore('kill');
    const proxy = await startProxy(engine.endpoint);
    try {
      const files = makeDebianLikeTree(d.join('tree'), 700, 3);
      const repo = d.join('repo');
      await ostreeOk(['init', `--repo=${repo}`, '--mode=archive']);
      const v1 = await commitTree(repo, d.join('tree'), 'main', 'v1');
      await ostreeOk(['summary', '-u', `--repo=${repo}`]);
      await publishRepo(repo, store);
      changeFiles(d.join('tree'), files, 400, 5);
      const v2 = await commitTree(repo, d.join('tree'), 'main', 'v2-longer');
      await larchOk(['static-delta', 'generate', `--repo=${repo}`, `--from=${v1}`, `--to=${v2}`]);
      await ostreeOk(['summary', '-u', `--repo=${repo}`]);
      const dry = JSON.parse((await larchOk(['publish', `--repo=${repo}`, '--dry-run', '--json', `--endpoint=${proxy.endpoint}`, `s3://${store.bucket}/repo`])).stdout.trim().split('\n').pop()!);
      const total: number = dry.uploaded.length;
      expect(total).toBeGreaterThan(400);
      const step = Math.floor(total / 24);

      let puts = 0;
      let nextKill = step;
      let kills = 0;
      let child: ReturnType<typeof spawn> | null = null;
      const killedAt: number[] = [];
      proxy.onRequest = (method) => {
        if (method !== 'PUT') return;
        puts++;
        if (puts >= nextKill && child && child.exitCode === null) {
          child.kill('SIGKILL');
          killedAt.push(puts);
          kills++;
          nextKill += step;
        }
      };
      let completed = false;
      for (let attempt = 0; attempt < 80 && !completed; attempt++) {
        child = spawn(process.execPath, [larchCliPath(), 'publish', `--repo=${repo}`, '--concurrency=4', `--endpoint=${proxy.endpoint}`, `s3://${store.bucket}/repo`], { stdio: ['ignore', 'pipe', 'pipe'] });
        let stderr = '';
        child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
        const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((r) => child!.on('close', (c, s) => r([c, s])));
        if (signal === 'SIGKILL') {
          const { problems, commits } = await checkBucketConsistent(store);
          expect(problems).toEqual([]);
          expect(commits.every((c) => c === v1 || c === v2)).toBe(true);
        } else {
          expect(stderr).toBe('');
          expect(code).toBe(0);
          completed = true;
        }
      }
      expect(completed).toBe(true);
      expect(kills).toBeGreaterThanOrEqual(20);
      // The kill points cover the run from its first PUTs to its last.
      expect(killedAt[0]).toBeLessThan(total / 10);
      expect(killedAt[killedAt.length - 1]).toBeGreaterThan(total * 0.9);
      const { problems, commits } = await checkBucketConsistent(store);
      expect(problems).toEqual([]);
      expect(commits).toEqual([v2]);
      // Nothing is left to upload, and the real ostree pulls the result.
      const after = await publishRepo(repo, store);
      expect(after.uploaded).toEqual([]);
      await ostreeOk(['init', `--repo=${d.join('o')}`, '--mode=archive']);
      await ostreeOk(['remote', 'add', `--repo=${d.join('o')}`, '--no-gpg-verify', 'bucket', publicUrl(store, engine.endpoint)]);
      await ostreeOk(['pull', `--repo=${d.join('o')}`, 'bucket', 'main']);
      await ostreeOk(['fsck', `--repo=${d.join('o')}`]);
      await pulledCheckoutEquals('ostree', d.join('o'), v2, d.join('tree'), d.join('co'));
    } finally {
      await proxy.close();
    }
  }, 1_800_000);
});

s3Describe('pruneStore', () => {
  it('deletes exactly the unreachable objects older than the grace period while a pull runs', async () => {
    const d = await newDir();
    const store = await newStore('prune');
    const repo = d.join('repo');
    await ostreeOk(['init', `--repo=${repo}`, '--mode=archive']);
    makeDebianLikeTree(d.join('a'), 1500, 11);
    makeDebianLikeTree(d.join('b'), 300, 12);
    makeDebianLikeTree(d.join('c'), 300, 13);
    const a = await commitTree(repo, d.join('a'), 'a', 'A');
    const s1 = await localKeys(repo);
    const b = await commitTree(repo, d.join('b'), 'b', 'B');
    const s2 = await localKeys(repo);
    await ostreeOk(['summary', '-u', `--repo=${repo}`]);
    await publishRepo(repo, store);
    const bOnly = [...s2].filter((k) => !s1.has(k) && k.startsWith('objects/'));
    // Drop ref b: B's objects become unreachable (and old).
    await ostreeOk(['refs', `--repo=${repo}`, '--delete', 'b']);
    await ostreeOk(['summary', '-u', `--repo=${repo}`]);
    expect((await publishRepo(repo, store)).deletedRefs).toEqual(['refs/heads/b']);
    // C's objects must be stamped 3 s or more after B's newest (S3 times step by a second), so
    // a grace period can fall between them: wait for the store's clock to get there.
    const stamped = new Map<string, number>();
    for await (const o of store.list('objects/')) stamped.set(o.key, o.lastModified.getTime());
    await waitForStoreClock(store, Math.max(...bOnly.map((k) => stamped.get(k)!)) + 3000);
    // C: published, then unreferenced at once: unreachable but young.
    const c = await commitTree(repo, d.join('c'), 'c', 'C');
    const s3 = await localKeys(repo);
    await ostreeOk(['summary', '-u', `--repo=${repo}`]);
    await publishRepo(repo, store);
    await ostreeOk(['refs', `--repo=${repo}`, '--delete', 'c']);
    await ostreeOk(['summary', '-u', `--repo=${repo}`]);
    await publishRepo(repo, store);
    const cOnly = [...s3].filter((k) => !s2.has(k) && k.startsWith('objects/'));
    expect(bOnly.length).toBeGreaterThan(300);
    expect(cOnly.length).toBeGreaterThan(300);
    expect(b).not.toBe(c);

    const listed = new Map<string, Date>();
    for await (const o of store.list('objects/')) listed.set(o.key, o.lastModified);
    const bNewest = Math.max(...bOnly.map((k) => listed.get(k)!.getTime()));
    const cOldest = Math.min(...cOnly.map((k) => listed.get(k)!.getTime()));
    expect(cOldest - bNewest).toBeGreaterThanOrEqual(3000);
    const now = new Date();
    const graceSeconds = (now.getTime() - (bNewest + cOldest) / 2) / 1000;

    const dry = await pruneStore(store, { graceSeconds, dryRun: true, now });
    expect(new Set(dry.deleted.map((x) => x.key))).toEqual(new Set(bOnly));
    expect(dry.bytesFreed).toBe(dry.deleted.reduce((s, x) => s + x.size, 0));
    expect(dry.keptYoung).toBe(cOnly.length);
    let count = 0;
    for await (const _ of store.list('objects/')) count++;
    expect(count).toBe(listed.size); // the dry run deleted nothing

    // A pull of A runs while the prune deletes.
    await ostreeOk(['init', `--repo=${d.join('o')}`, '--mode=archive']);
    await ostreeOk(['remote', 'add', `--repo=${d.join('o')}`, '--no-gpg-verify', 'bucket', publicUrl(store, engine.endpoint)]);
    const pull = ostreeOk(['pull', `--repo=${d.join('o')}`, 'bucket', 'a']);
    // Prune once the pull is under way (its transaction is open), or over if it was that quick.
    let pulled = false;
    void pull.then(
      () => (pulled = true),
      () => (pulled = true),
    );
    while (!pulled && !(await pullStaging(d.join('o')))) await new Promise((r) => setTimeout(r, 20));
    const res = await pruneStore(store, { graceSeconds, now });
    await pull;
    expect(new Set(res.deleted.map((x) => x.key))).toEqual(new Set(bOnly));
    expect(res.commits).toBe(1);
    const remaining = new Set<string>();
    for await (const o of store.list('objects/')) remaining.add(o.key);
    for (const k of bOnly) expect(remaining.has(k)).toBe(false);
    for (const k of cOnly) expect(remaining.has(k)).toBe(true);
    for (const k of s1) if (k.startsWith('objects/')) expect(remaining.has(k)).toBe(true);
    await ostreeOk(['fsck', `--repo=${d.join('o')}`]);
    await pulledCheckoutEquals('ostree', d.join('o'), a, d.join('a'), d.join('co'));
    // With a zero grace period the young unreachable objects go too; A stays pullable.
    const cli = await larchOk(['publish', '--prune', '--grace=0', `s3://${store.bucket}/repo`]);
    expect(cli.stdout).toMatch(new RegExp(`^Deleted ${cOnly.length} objects`));
    expect((await checkBucketConsistent(store)).problems).toEqual([]);
  }, 1_800_000);
});

s3Describe('injected S3 failures (a fault-injecting proxy in front of radosgw)', () => {
  let d: TmpDir;
  let store: S3Store;
  let repo: string;
  let files: string[];
  let v2: string;

  beforeAll(async () => {
    d = await newDir();
    store = await newStore('fault');
    repo = d.join('repo');
    files = makeDebianLikeTree(d.join('tree'), 400, 21);
    await ostreeOk(['init', `--repo=${repo}`, '--mode=archive']);
    await commitTree(repo, d.join('tree'), 'main', 'v1');
    await ostreeOk(['summary', '-u', `--repo=${repo}`]);
    await publishRepo(repo, store);
  }, 1_800_000);

  it('transient 500s, 503 SlowDown and dropped connections are retried; the publish completes', async () => {
    const proxy = await startProxy(engine.endpoint);
    try {
      changeFiles(d.join('tree'), files, 100, 8);
      v2 = await commitTree(repo, d.join('tree'), 'main', 'v2-longer');
      await ostreeOk(['summary', '-u', `--repo=${repo}`]);
      const seen = new Map<string, number>();
      const actions = ['500', 'slowdown', 'drop'] as const;
      proxy.decide = (method, key) => {
        const id = `${method} ${key}`;
        const n = (seen.get(id) ?? 0) + 1;
        seen.set(id, n);
        let h = 0;
        for (const ch of id) h = (h * 31 + ch.charCodeAt(0)) >>> 0;
        // About one request in four fails once or twice, whatever its kind (PUT, GET, LIST, DELETE).
        return h % 4 === 0 && n <= 1 + (h % 2) ? actions[h % 3] : 'pass';
      };
      const r = await larch(['publish', `--repo=${repo}`, `--endpoint=${proxy.endpoint}`, `s3://${store.bucket}/repo`]);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(proxy.injected).toBeGreaterThan(20);
      const { problems, commits } = await checkBucketConsistent(store);
      expect(problems).toEqual([]);
      expect(commits).toEqual([v2]);
      await ostreeOk(['init', `--repo=${d.join('o')}`, '--mode=archive']);
      await ostreeOk(['remote', 'add', `--repo=${d.join('o')}`, '--no-gpg-verify', 'bucket', publicUrl(store, engine.endpoint)]);
      await ostreeOk(['pull', `--repo=${d.join('o')}`, 'bucket', 'main']);
      await ostreeOk(['fsck', `--repo=${d.join('o')}`]);
    } finally {
      await proxy.close();
    }
  }, 1_800_000);

  for (const [fault, pattern] of [
    ['slowdown', /SlowDown \(503\)/],
    ['500', /InternalError \(500\)/],
    ['drop', /(socket hang up|ECONNRESET|premature|aborted|Networking|TimeoutError)/i],
  ] as const) {
    it(`a key that keeps failing (${fault}) fails the publish with one line naming it; the summary names only existing objects`, async () => {
      const proxy = await startProxy(engine.endpoint);
      try {
        const before = await localKeys(repo);
        changeFiles(d.join('tree'), files, 20, fault.length);
        const v3 = await commitTree(repo, d.join('tree'), 'main', `v3-${fault}`);
        await ostreeOk(['summary', '-u', `--repo=${repo}`]);
        const newObjects = [...(await localKeys(repo))].filter((k) => !before.has(k) && k.endsWith('.filez')).sort();
        const victim = newObjects[0];
        proxy.decide = (method, key) => (method === 'PUT' && key.endsWith(victim) ? fault : 'pass');
        const r = await larch(['publish', `--repo=${repo}`, `--endpoint=${proxy.endpoint}`, `s3://${store.bucket}/repo`]);
        expect(r.code).toBe(1);
        const lines = r.stderr.trimEnd().split('\n');
        expect(lines).toHaveLength(1);
        expect(lines[0]).toContain(`error: PUT s3://${store.bucket}/repo/${victim}: `);
        expect(lines[0]).toMatch(pattern);
        expect(lines[0]).toMatch(/after 6 attempts/);
        const { problems, commits } = await checkBucketConsistent(store);
        expect(problems).toEqual([]);
        expect(commits).not.toContain(v3);
        // Without the fault, a rerun completes.
        proxy.decide = () => 'pass';
        await larchOk(['publish', `--repo=${repo}`, `--endpoint=${proxy.endpoint}`, `s3://${store.bucket}/repo`]);
        expect((await checkBucketConsistent(store)).commits).toEqual([v3]);
      } finally {
        await proxy.close();
      }
    }, 1_800_000);
  }
});

s3Describe('multipart uploads', () => {
  const fileBody = (file: string): RangedBody => ({ open: (range) => createReadStream(file, range) });
  const sha256 = async (s: NodeJS.ReadableStream): Promise<string> => {
    const h = createHash('sha256');
    for await (const c of s) h.update(c as Buffer);
    return h.digest('hex');
  };
  const pending = async (store: S3Store): Promise<number> =>
    ((await store.client.send(new ListMultipartUploadsCommand({ Bucket: store.bucket }))).Uploads ?? []).length;

  it('sends a file above the threshold in parts, each checked by its MD5, a failed part retried alone', async () => {
    const d = await newDir();
    const proxy = await startProxy(engine.endpoint);
    try {
      const direct = await newStore('multipart', undefined, { multipartThreshold: MIN_PART_SIZE, partSize: MIN_PART_SIZE });
      const store = storeFor(direct.bucket, 'repo', proxy.endpoint, { multipartThreshold: MIN_PART_SIZE, partSize: MIN_PART_SIZE });
      const file = d.join('big');
      const size = 2 * MIN_PART_SIZE + 12_345;
      await fsp.writeFile(file, randomBytes(size));
      // The SDK prints nothing of its own when a request fails (the error is ours to report).
      const warn = vi.spyOn(console, 'warn');
      // The second part's first attempt fails with a 500.
      let puts = 0;
      proxy.decide = (method, key) => (method === 'PUT' && key.endsWith('/repo/objects/ab/big') && ++puts === 2 ? '500' : 'pass');
      const md5 = createHash('md5').update(await fsp.readFile(file)).digest('hex');
      const res = await store.put('objects/ab/big', fileBody(file), { contentType: 'application/octet-stream', cacheControl: 'no-cache', length: size, md5 });
      expect(res.etag).toMatch(/^[0-9a-f]{32}-3$/);
      expect(proxy.injected).toBe(1);
      expect(puts).toBe(4); // three parts, one of them twice
      const head = await store.head('objects/ab/big');
      expect(head).toMatchObject({ size, etag: res.etag });
      expect(await store.localEtag(fileBody(file), size)).toBe(res.etag);
      expect(await sha256(await store.get('objects/ab/big'))).toBe(await sha256(createReadStream(file)));
      expect(await pending(store)).toBe(0);

      // A file that changes between the MD5 pass and the upload of a part: the store refuses that
      // part, the upload is aborted, and no object and no parts are left.
      const changing: RangedBody = {
        open: (range) => {
          const s = createReadStream(file, range);
          if (range?.start !== MIN_PART_SIZE) return s;
          return s.map((c: Buffer) => {
            const d = Buffer.from(c);
            d[0] ^= 1;
            return d;
          });
        },
      };
      await expect(store.put('objects/ab/changed', changing, { contentType: 'application/octet-stream', cacheControl: 'no-cache', length: size })).rejects.toThrow(/^PUT s3:\/\/.*objects\/ab\/changed: BadDigest/);
      expect(await store.head('objects/ab/changed')).toBeNull();
      expect(await pending(store)).toBe(0);
      expect(warn).not.toHaveBeenCalled();
      warn.mockRestore();
      store.destroy();
    } finally {
      await proxy.close();
    }
  }, 1_800_000);

  it('publish sends a large delta part in parts, and compares it by its multipart ETag when its delta changes', async () => {
    const d = await newDir();
    const store = await newStore('multipart-publish', undefined, { multipartThreshold: MIN_PART_SIZE, partSize: MIN_PART_SIZE });
    const repo = d.join('repo');
    await fsp.mkdir(d.join('tree'));
    await fsp.writeFile(d.join('tree', 'blob'), randomBytes(2 * MIN_PART_SIZE));
    await larchOk(['init', `--repo=${repo}`, '--mode=archive']);
    const commit = (await larchOk(['commit', `--repo=${repo}`, '-b', 'main', '-s', 'one', `--tree=dir=${d.join('tree')}`])).stdout.trim();
    await larchOk(['static-delta', 'generate', `--repo=${repo}`, '--empty', `--to=${commit}`, '--min-fallback-size=0', '--max-chunk-size=64']);
    await larchOk(['summary', '-u', `--repo=${repo}`]);
    const first = await publishRepo(repo, store);
    const parts = first.uploaded.filter((k) => k.startsWith('deltas/') && /\/0$/.test(k));
    expect(parts.length).toBe(1);
    const part = await store.head(parts[0]);
    expect(part?.etag).toMatch(/^[0-9a-f]{32}-\d+$/);
    expect((await store.head(`objects/${commit.slice(0, 2)}/${commit.slice(2)}.commit`))?.etag).toMatch(/^[0-9a-f]{32}$/);
    // The stored superblock differs from the local one: publish compares the delta's parts by
    // content, and the multipart-tagged part is found to be the same.
    const sbKey = parts[0].replace(/0$/, 'superblock');
    await store.put(sbKey, Buffer.from('stale'), { contentType: 'application/octet-stream', cacheControl: 'no-cache', length: 5 });
    const second = await publishRepo(repo, store);
    expect(second.uploaded).toContain(sbKey);
    expect(second.uploaded).not.toContain(parts[0]);
    // ostree pulls through the delta from the bucket.
    const o = d.join('o');
    await ostreeOk(['init', `--repo=${o}`, '--mode=bare-user']);
    await ostreeOk(['remote', 'add', `--repo=${o}`, '--no-gpg-verify', 'bucket', publicUrl(store, engine.endpoint)]);
    await ostreeOk(['pull', `--repo=${o}`, 'bucket', 'main']);
    await ostreeOk(['fsck', `--repo=${o}`]);
    await ostreeOk(['checkout', `--repo=${o}`, '-U', 'main', d.join('co')]);
    expect(await compareTrees(d.join('tree'), d.join('co'))).toEqual([]);
  }, 1_800_000);
});
