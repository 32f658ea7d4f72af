/**
 * Pulling through a static delta over HTTP (packages/http-pull/src/pull-delta.ts): part-by-part
 * application, progress in parts and bytes, resume at part granularity, bytes on the wire close to
 * the delta's size, refusal of corrupted parts with nothing committed, and deltas made by ostree.
 */
import { createHash } from 'node:crypto';
import { createReadStream, promises as fsp } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Repo, fsck } from '@larch/core-store';
import { deltaRelDir, generateDelta, type DeltaProgress } from '@larch/delta';
import { UndiciFetcher, pullLocal } from '@larch/http-pull';
import { findDelta, pullDelta } from '../../../packages/http-pull/dist/pull-delta.js';
import { larch, larchAsync, ok, ostree, RUN_INTEROP, scratch } from './helpers.js';

let dir: string;
let cleanup: () => Promise<void>;
let src: Repo;
let c1: string;
let c2: string;

function bytes(n: number, seed: number): Buffer {
  const out = Buffer.alloc(n);
  let h = createHash('sha256').update(String(seed)).digest();
  for (let i = 0; i < n; i += 32) {
    h.copy(out, i);
    h = createHash('sha256').update(h).digest();
  }
  return out;
}

interface Server {
  url: string;
  requests: string[];
  bytesSent: number;
  /** Paths whose body gets one byte flipped, or that fail with 500. */
  flip: Set<string>;
  fail: Set<string>;
  stop(): Promise<void>;
}

async function serve(root: string): Promise<Server> {
  const s = { requests: [] as string[], bytesSent: 0, flip: new Set<string>(), fail: new Set<string>() };
  const server = http.createServer(async (req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    s.requests.push(path);
    if (s.fail.has(path)) return void res.writeHead(500).end();
    try {
      const st = await fsp.stat(join(root, path));
      if (!st.isFile()) return void res.writeHead(404).end();
      s.bytesSent += st.size;
      if (s.flip.has(path)) {
        const b = await fsp.readFile(join(root, path));
        b[b.length >> 1] ^= 0x01;
        res.writeHead(200, { 'content-length': String(b.length) }).end(b);
        return;
      }
      res.writeHead(200, { 'content-length': String(st.size) });
      createReadStream(join(root, path)).pipe(res);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}/`,
    get requests() {
      return s.requests;
    },
    get bytesSent() {
      return s.bytesSent;
    },
    flip: s.flip,
    fail: s.fail,
    stop: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
}

let n = 0;
async function withV1(): Promise<Repo> {
  const repo = await Repo.init({ path: join(dir, `dst-${n++}`), mode: 'bare-user' });
  await pullLocal({ repo, src: src.path, refs: [c1] });
  return repo;
}

beforeAll(async () => {
  ({ dir, cleanup } = await scratch('larch-delta-pull-'));
  const t1 = join(dir, 't1');
  const t2 = join(dir, 't2');
  for (const t of [t1, t2]) await fsp.mkdir(join(t, 'usr/lib'), { recursive: true });
  for (let i = 0; i < 4; i++) await fsp.writeFile(join(t1, `usr/lib/blob${i}.bin`), bytes(700_000, i));
  await fsp.writeFile(join(t1, 'readme'), 'one\n');
  // New names: stored whole (not patched), each file fills most of a 1 MB part, so the delta has
  // several parts (ostree's rule: a whole file starts a new part when it would overflow this one).
  for (let i = 0; i < 4; i++) await fsp.writeFile(join(t2, `usr/lib/blob${i}-v2.bin`), bytes(700_000, i + 10));
  await fsp.writeFile(join(t2, 'readme'), 'two\n');
  const repoPath = join(dir, 'src');
  ok(larch(['init', `--repo=${repoPath}`, '--mode=archive']));
  c1 = ok(larch(['commit', `--repo=${repoPath}`, '-b', 'main', '-s', 'one', '--timestamp=@1700000000', `--tree=dir=${t1}`])).trim();
  c2 = ok(larch(['commit', `--repo=${repoPath}`, '-b', 'main', '-s', 'two', '--timestamp=@1700000100', `--tree=dir=${t2}`])).trim();
  src = await Repo.open(repoPath);
  await generateDelta(src, { from: c1, to: c2, minFallbackSize: 0, maxChunkSize: 1 });
});
afterAll(async () => {
  await cleanup();
});

describe('pullDelta over HTTP', () => {
  it('finds the delta in the index, applies every part, reports parts and bytes, moves ~the delta size', async () => {
    const server = await serve(src.path);
    const fetcher = new UndiciFetcher();
    try {
      const repo = await withV1();
      const cand = await findDelta({ repo, fetcher, baseUrl: server.url, to: c2 });
      expect(cand).toMatchObject({ from: c1, to: c2 });
      const before = server.bytesSent;
      const progress: DeltaProgress[] = [];
      const r = await pullDelta({ repo, fetcher, baseUrl: server.url, from: c1, to: c2, superblockSha256: cand!.superblockSha256, onProgress: (p) => progress.push(p) });
      expect(r.partsApplied).toBeGreaterThan(1);
      const last = progress[progress.length - 1];
      expect(last.partsDone).toBe(last.partsTotal);
      expect(last.bytesDone).toBe(last.bytesTotal);
      const deltaSize = (await fsp.readdir(join(src.path, deltaRelDir(c1, c2)))).length > 0
        ? (await Promise.all((await fsp.readdir(join(src.path, deltaRelDir(c1, c2)))).map(async (f) => (await fsp.stat(join(src.path, deltaRelDir(c1, c2), f))).size))).reduce((a, b) => a + b, 0)
        : 0;
      expect(server.bytesSent - before).toBeLessThanOrEqual(deltaSize * 1.05);
      expect(server.requests.filter((p) => p.startsWith('/objects/'))).toEqual([]);
      expect((await fsck(repo)).errors).toEqual([]);
      expect(await repo.hasObject('commit', c2)).toBe(true);
    } finally {
      await fetcher.close?.();
      await server.stop();
    }
  });

  it('a corrupted part is refused with nothing committed; after the fault, the pull resumes skipping applied parts', async () => {
    const server = await serve(src.path);
    const fetcher = new UndiciFetcher();
    try {
      const repo = await withV1();
      const rel = deltaRelDir(c1, c2);
      server.flip.add(`/${rel}/1`);
      await expect(pullDelta({ repo, fetcher, baseUrl: server.url, from: c1, to: c2, retries: 0 })).rejects.toThrow(/Checksum mismatch for static delta part 1/);
      expect(await repo.hasObject('commit', c2)).toBe(false);
      server.flip.clear();
      server.fail.add(`/${rel}/2`);
      await expect(pullDelta({ repo, fetcher, baseUrl: server.url, from: c1, to: c2, retries: 0 })).rejects.toThrow(/HTTP 500/);
      expect(await repo.hasObject('commit', c2)).toBe(false);
      server.fail.clear();
      const start = server.requests.length;
      const r = await pullDelta({ repo, fetcher, baseUrl: server.url, from: c1, to: c2 });
      expect(r.partsSkipped).toBeGreaterThanOrEqual(2); // parts 0 and 1 were applied before
      expect(server.requests.slice(start)).not.toContain(`/${rel}/0`);
      expect((await fsck(repo)).errors).toEqual([]);
    } finally {
      await fetcher.close?.();
      await server.stop();
    }
  });

  it('refuses a superblock whose digest differs from the index', async () => {
    const server = await serve(src.path);
    const fetcher = new UndiciFetcher();
    try {
      const repo = await withV1();
      await expect(pullDelta({ repo, fetcher, baseUrl: server.url, from: c1, to: c2, superblockSha256: '0'.repeat(64) })).rejects.toThrow(/Invalid checksum for static delta/);
    } finally {
      await fetcher.close?.();
      await server.stop();
    }
  });

  it.runIf(RUN_INTEROP)('pulls a delta generated by the real ostree', async () => {
    const osrc = join(dir, 'osrc');
    await fsp.cp(src.path, osrc, { recursive: true });
    await fsp.rm(join(osrc, 'deltas'), { recursive: true, force: true });
    await fsp.rm(join(osrc, 'delta-indexes'), { recursive: true, force: true });
    ok(ostree(['static-delta', 'generate', `--repo=${osrc}`, `--from=${c1}`, `--to=${c2}`, '--min-fallback-size=0']));
    ok(ostree(['summary', '-u', `--repo=${osrc}`]));
    const server = await serve(osrc);
    const fetcher = new UndiciFetcher();
    try {
      const repo = await withV1();
      const cand = await findDelta({ repo, fetcher, baseUrl: server.url, to: c2 });
      expect(cand?.from).toBe(c1);
      await pullDelta({ repo, fetcher, baseUrl: server.url, from: c1, to: c2, superblockSha256: cand!.superblockSha256 });
      expect((await fsck(repo)).errors).toEqual([]);
      expect(ok(ostree(['fsck', `--repo=${repo.path}`]))).toMatch(/no errors found/);
    } finally {
      await fetcher.close?.();
      await server.stop();
    }
  });
});

describe('larch pull uses the deltas a remote offers', () => {
  async function client(server: Server): Promise<Repo> {
    const repo = await withV1();
    ok(larch(['remote', 'add', `--repo=${repo.path}`, '--no-gpg-verify', 'origin', server.url]));
    await repo.setRef('origin:main', c1);
    return repo;
  }
  const deltaBytes = async (): Promise<number> => {
    const d = join(src.path, deltaRelDir(c1, c2));
    return (await Promise.all((await fsp.readdir(d)).map(async (f) => (await fsp.stat(join(d, f))).size))).reduce((a, b) => a + b, 0);
  };

  beforeAll(() => {
    ok(larch(['summary', '-u', `--repo=${src.path}`]));
  });

  it('pulls FROM→TO through the delta listed in the summary: no content objects, about the delta on the wire', async () => {
    const server = await serve(src.path);
    try {
      const repo = await client(server);
      const before = server.bytesSent;
      const out = ok(await larchAsync(['pull', `--repo=${repo.path}`, '--json', 'origin', 'main']));
      const done = JSON.parse(out.trim().split('\n').pop()!) as { event: string; deltas: Array<{ from: string; to: string; partsApplied: number }>; progress: { phase: string; deltaPartsDone: number; deltaPartsTotal: number } };
      expect(done.deltas).toHaveLength(1);
      expect(done.deltas[0]).toMatchObject({ from: c1, to: c2 });
      expect(done.progress.deltaPartsDone).toBe(done.progress.deltaPartsTotal);
      expect(done.progress.deltaPartsTotal).toBeGreaterThan(1);
      const objects = server.requests.filter((p) => p.startsWith('/objects/'));
      expect(objects.every((p) => p.endsWith(`${c2.slice(2)}.commit`) || p.endsWith(`${c2.slice(2)}.commitmeta`))).toBe(true);
      expect(server.bytesSent - before).toBeLessThanOrEqual((await deltaBytes()) * 1.05 + 4096);
      expect(await repo.resolveRef('origin:main')).toBe(c2);
      expect(await repo.isCommitPartial(c2)).toBe(false);
      expect((await fsck(repo)).errors).toEqual([]);
      if (RUN_INTEROP) expect(ok(ostree(['fsck', `--repo=${repo.path}`]))).toMatch(/no errors found/);
    } finally {
      await server.stop();
    }
  });

  it('a delta that fails (corrupt part) falls back to objects and still completes', async () => {
    const server = await serve(src.path);
    try {
      const repo = await client(server);
      server.flip.add(`/${deltaRelDir(c1, c2)}/1`);
      const out = ok(await larchAsync(['pull', `--repo=${repo.path}`, '--json', 'origin', 'main']));
      const done = JSON.parse(out.trim().split('\n').pop()!) as { deltas: unknown[] };
      expect(done.deltas).toEqual([]);
      expect(server.requests.some((p) => p.endsWith('.filez'))).toBe(true);
      expect(await repo.resolveRef('origin:main')).toBe(c2);
      expect((await fsck(repo)).errors).toEqual([]);
    } finally {
      await server.stop();
    }
  });

  it('--disable-static-deltas fetches objects only; with -T a downgrade is refused before any delta is fetched', async () => {
    const server = await serve(src.path);
    try {
      const repo = await client(server);
      ok(await larchAsync(['pull', `--repo=${repo.path}`, '--disable-static-deltas', 'origin', 'main']));
      expect(server.requests.some((p) => p.startsWith('/deltas/') || p.startsWith('/delta-indexes/'))).toBe(false);
      expect(await repo.resolveRef('origin:main')).toBe(c2);

      // The server rolls main back to c1 and offers a c2→c1 delta: with -T refused as a downgrade
      // before any delta is fetched.
      await generateDelta(src, { from: c2, to: c1, minFallbackSize: 0 });
      await src.setRef('main', c1);
      ok(larch(['summary', '-u', `--repo=${src.path}`]));
      try {
        const ahead = await client(server);
        await pullLocal({ repo: ahead, src: src.path, refs: [c2] });
        await ahead.setRef('origin:main', c2);
        const start = server.requests.length;
        const r = await larchAsync(['pull', `--repo=${ahead.path}`, '-T', 'origin', 'main']);
        expect(r.code).toBe(1);
        expect(r.stderr).toMatch(/chronologically older than current revision/);
        expect(server.requests.slice(start).some((p) => p.startsWith('/deltas/'))).toBe(false);
        expect(await ahead.resolveRef('origin:main')).toBe(c2);
      } finally {
        await src.setRef('main', c2);
        ok(larch(['summary', '-u', `--repo=${src.path}`]));
      }
    } finally {
      await server.stop();
    }
  });
});
