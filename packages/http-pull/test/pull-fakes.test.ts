/**
 * Pull logic against fake fetchers (no network, no ostree): retry rules, limits that do not
 * trust the server, the verification policy, the remote mode check, progress, and that the
 * verifier sees the exact bytes. The source repo is written by core-store.
 */
import { promises as fsp } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deflateRawSync } from 'node:zlib';
import { LarchError, Repo, commitTree, generateSummary, serializeArchiveHeader } from '@larch/core-store';
import { makeTree, tmpDir, type TmpDir } from '@larch/test-fixtures';
import {
  FileFetcher,
  TransportError,
  addRemote,
  pull,
  type FetchOptions,
  type FetchResponse,
  type Fetcher,
  type PullProgress,
  type PullVerifier,
} from '../src/index.js';

/** Serves the source repo through FileFetcher, with per-call hooks. */
class HookedFetcher implements Fetcher {
  calls: string[] = [];
  private readonly inner = new FileFetcher();
  constructor(private readonly hook: (url: string, n: number) => Promise<FetchResponse | null> | FetchResponse | null = () => null) {}
  async get(url: string, opts: FetchOptions): Promise<FetchResponse> {
    this.calls.push(url);
    const n = this.calls.filter((u) => u === url).length;
    const r = await this.hook(url, n);
    return r ?? this.inner.get(url, opts);
  }
}

function response(status: number, body: Uint8Array = new Uint8Array(0), headers: Record<string, string> = {}): FetchResponse {
  return {
    status,
    headers,
    body: (async function* () {
      if (body.length) yield body;
    })(),
    dump: async () => undefined,
  };
}

const FAST = { retries: 3, retryBaseDelayMs: 1, retryMaxDelayMs: 2 };

describe('pull with fake fetchers', () => {
  let tmp: TmpDir;
  let srcUrl: string;
  let src: Repo;
  let commit: string;
  let n = 0;

  async function dest(modeOrOpts: 'archive' | 'bare-user' | { gpgVerify?: boolean; set?: Array<[string, string]> } = {}): Promise<Repo> {
    const mode = typeof modeOrOpts === 'string' ? modeOrOpts : 'archive';
    const opts = typeof modeOrOpts === 'string' ? {} : modeOrOpts;
    const repo = await Repo.init({ path: tmp.join(`dest${n++}`), mode });
    await addRemote(repo, { name: 'origin', url: srcUrl, gpgVerify: opts.gpgVerify ?? false, ...(opts.set ? { set: opts.set } : {}) });
    return repo;
  }

  beforeAll(async () => {
    tmp = await tmpDir('larch-pullfake-');
    await makeTree(tmp.join('tree'), { 'a.txt': 'hello\n', 'd/b.txt': 'b\n', 'd/e/c.bin': { type: 'file', generate: { size: 70_000, seed: 3 } }, l: { type: 'symlink', target: 'a.txt' } });
    src = await Repo.init({ path: tmp.join('src'), mode: 'archive' });
    commit = (await commitTree(src, { tree: tmp.join('tree'), branch: 'main', subject: 's', timestamp: 1_700_000_000n })).commit;
    await generateSummary(src);
    srcUrl = pathToFileURL(src.path).toString() + '/';
  });
  afterAll(async () => {
    await tmp?.cleanup();
  });

  it('pulls over file:// with the default fetcher', async () => {
    const repo = await dest();
    const r = await pull({ repo, remote: 'origin', refs: ['main'] });
    expect(r.refs[0].checksum).toBe(commit);
    await repo.verifyFile((await repo.readDirTree((await repo.readCommit(commit)).rootTree)).files[0].checksum);
  });

  it('retries HTTP 500, 408 and transport errors, then succeeds', async () => {
    const repo = await dest();
    const f = new HookedFetcher((url, k) => {
      if (url.endsWith('.filez') && k === 1) return response(500);
      if (url.endsWith('.dirtree') && k === 1) return response(408);
      if (url.endsWith('.dirmeta') && k === 1) throw new TransportError('connection reset');
      return null;
    });
    const r = await pull({ repo, remote: 'origin', refs: ['main'], fetcher: f, limits: FAST });
    expect(r.progress.retries).toBeGreaterThanOrEqual(3);
    expect(await repo.resolveRef('origin:main')).toBe(commit);
  });

  it('gives up after the configured retries and does not retry 403 or 404', async () => {
    const repo = await dest();
    const always500 = new HookedFetcher((url) => (url.endsWith('.dirtree') ? response(500) : null));
    const e = (await pull({ repo, remote: 'origin', refs: ['main'], fetcher: always500, limits: FAST }).catch((x: unknown) => x)) as LarchError;
    expect(e.code).toBe('IO_ERROR');
    expect(e.message).toMatch(/^Fetching [0-9a-f]{64}\.dirtree: Server returned HTTP 500 for file:\/\//);
    const dirtreeCalls = always500.calls.filter((u) => u.endsWith('.dirtree'));
    expect(dirtreeCalls).toHaveLength(4); // 1 + 3 retries

    const forbidden = new HookedFetcher((url) => (url.endsWith('.dirtree') ? response(403) : null));
    const e2 = (await pull({ repo, remote: 'origin', refs: ['main'], fetcher: forbidden, limits: FAST }).catch((x: unknown) => x)) as LarchError;
    expect(e2.data.status).toBe(403);
    expect(forbidden.calls.filter((u) => u.endsWith('.dirtree'))).toHaveLength(1);
    expect(await repo.resolveRef('origin:main')).toBeNull();
  });

  it('enforces sizes on the bytes received, not on what the server claims', async () => {
    const repo = await dest();
    const big = new Uint8Array(5000).fill(7);
    // The summary says the commit is N bytes; the server sends more while claiming less.
    const f = new HookedFetcher((url) => (url.endsWith('.commit') ? response(200, big, { 'content-length': '10' }) : null));
    const e = (await pull({ repo, remote: 'origin', refs: ['main'], fetcher: f, limits: FAST }).catch((x: unknown) => x)) as LarchError;
    expect(e.code).toBe('LIMIT_EXCEEDED');
    expect(e.message).toContain(`Fetching ${commit}.commit`);
    // A Content-Length above the limit is refused before reading the body.
    const f2 = new HookedFetcher((url) => (url.endsWith('.dirtree') ? response(200, new Uint8Array(1), { 'content-length': String(200 * 1024 * 1024) }) : null));
    const e2 = (await pull({ repo, remote: 'origin', refs: ['main'], fetcher: f2, limits: FAST }).catch((x: unknown) => x)) as LarchError;
    expect(e2.code).toBe('LIMIT_EXCEEDED');
    expect(e2.data.observed).toBe(200 * 1024 * 1024);
  });

  it('verifies small content objects on the in-memory path too (flipped byte, short body)', async () => {
    const repo = await dest('bare-user');
    const small = async (url: string): Promise<Buffer | null> => {
      if (!url.endsWith('.filez')) return null;
      const b = await fsp.readFile(new URL(url));
      return b.length < 1000 ? b : null;
    };
    const flip = new HookedFetcher(async (url) => {
      const b = await small(url);
      if (b === null) return null;
      const c = Buffer.from(b);
      c[c.length - 1] ^= 0x10;
      return response(200, c, { 'content-length': String(c.length) });
    });
    const e = (await pull({ repo, remote: 'origin', refs: ['main'], fetcher: flip, limits: FAST }).catch((x: unknown) => x)) as LarchError;
    expect(e.code).toBe('OBJECT_CORRUPTED');
    expect(e.message).toMatch(/^Fetching [0-9a-f]{64}\.filez: Corrupted file object/);
    const short = new HookedFetcher(async (url) => {
      const b = await small(url);
      return b === null ? null : response(200, b.subarray(0, b.length - 3), { 'content-length': String(b.length - 3) });
    });
    const e2 = (await pull({ repo, remote: 'origin', refs: ['main'], fetcher: short, limits: FAST }).catch((x: unknown) => x)) as LarchError;
    expect(e2.code).toBe('OBJECT_CORRUPTED');
    expect(await repo.resolveRef('origin:main')).toBeNull();
    // Nothing corrupted was stored: a clean pull then completes and every object verifies.
    await pull({ repo, remote: 'origin', refs: ['main'] });
    const root = await repo.readDirTree((await repo.readCommit(commit)).rootTree);
    for (const f of root.files) await repo.verifyFile(f.checksum);
  });

  it('refuses a content object whose declared size exceeds the content limit, before inflating it', async () => {
    const repo = await dest('bare-user');
    // A tiny download that declares (and would inflate to) 1 GB.
    const bomb = Buffer.concat([
      serializeArchiveHeader({ meta: { uid: 0, gid: 0, mode: 0o100644, symlinkTarget: '', xattrs: [] }, size: 1_000_000_000 }),
      deflateRawSync(Buffer.alloc(1_000_000)),
    ]);
    const f = new HookedFetcher((url) => (url.endsWith('.filez') ? response(200, bomb, { 'content-length': String(bomb.length) }) : null));
    const e = (await pull({ repo, remote: 'origin', refs: ['main'], fetcher: f, limits: { ...FAST, maxContentSize: 50_000_000 } }).catch((x: unknown) => x)) as LarchError;
    expect(e.code).toBe('LIMIT_EXCEEDED');
    expect(e.data.observed).toBe(1_000_000_000);
    expect(e.message).toMatch(/^Fetching [0-9a-f]{64}\.filez: File object [0-9a-f]{64} declares 1000000000 bytes, exceeding the limit of 50000000 for file:/);
  });

  it('a stalled response hits the stall timeout, bounded by the retries', async () => {
    const repo = await dest();
    const f = new HookedFetcher((url) => {
      if (!url.endsWith('.filez')) return null;
      return {
        status: 200,
        headers: {},
        body: (async function* () {
          yield new Uint8Array([0, 0, 0]);
          await new Promise(() => undefined); // never resolves
        })(),
        dump: async () => undefined,
      };
    });
    // The body never moves again: without the stall timer this pull would not end at all.
    const e = (await pull({ repo, remote: 'origin', refs: ['main'], fetcher: f, limits: { ...FAST, retries: 1, stallTimeoutMs: 150 } }).catch((x: unknown) => x)) as LarchError;
    expect(e.data.reason).toBe('stalled');
  });

  it('refuses to pull when gpg-verify is on (the default) and no verifier is given', async () => {
    const repo = await dest({ gpgVerify: true });
    const f = new HookedFetcher();
    await expect(pull({ repo, remote: 'origin', refs: ['main'], fetcher: f })).rejects.toMatchObject({ code: 'BAD_CONFIG', data: { required: ['gpg-verify'] } });
    expect(f.calls).toEqual([]);
    const repo2 = await dest({ set: [['sign-verify-summary', 'ed25519']] });
    await expect(pull({ repo: repo2, remote: 'origin', refs: ['main'], fetcher: f })).rejects.toThrow(/sign-verify-summary/);
  });

  it('hands the exact commit and summary bytes to the verifier, and stops when it throws', async () => {
    const repo = await dest({ gpgVerify: true, set: [['gpg-verify-summary', 'true']] });
    const seen: { commit?: Uint8Array; summary?: Uint8Array; sig?: Uint8Array | null } = {};
    const verifier: PullVerifier = {
      verifyCommit(bytes) {
        seen.commit = bytes;
      },
      verifySummary(bytes, sig) {
        seen.summary = bytes;
        seen.sig = sig;
      },
    };
    await pull({ repo, remote: 'origin', refs: ['main'], verifier });
    expect(Buffer.compare(Buffer.from(seen.commit!), await fsp.readFile(src.objectPath('commit', commit)))).toBe(0);
    expect(Buffer.compare(Buffer.from(seen.summary!), await fsp.readFile(src.path + '/summary'))).toBe(0);
    expect(seen.sig).toBeNull();

    const repo2 = await dest({ gpgVerify: true });
    const refusing: PullVerifier = {
      verifyCommit() {
        throw new LarchError('BAD_CONFIG', 'GPG verification enabled, but no signatures found (use gpg-verify=false in remote config to disable)');
      },
      verifySummary() {},
    };
    await expect(pull({ repo: repo2, remote: 'origin', refs: ['main'], verifier: refusing })).rejects.toThrow(/no signatures found/);
    expect(await repo2.hasObject('commit', commit)).toBe(false);
    expect(await repo2.resolveRef('origin:main')).toBeNull();
  });

  it("refuses a remote whose config says it is not an archive repo (Can't pull from archives with mode)", async () => {
    const repo = await dest();
    const f = new HookedFetcher((url) => (url.endsWith('/config') ? response(200, new TextEncoder().encode('[core]\nrepo_version=1\nmode=bare\n')) : null));
    await expect(pull({ repo, remote: 'origin', refs: ['main'], fetcher: f })).rejects.toMatchObject({ code: 'BAD_MODE', message: `Can't pull from archives with mode "bare"` });
  });

  it('reports progress: estimating first, then exact object totals and a finished ETA', async () => {
    const repo = await dest();
    const events: PullProgress[] = [];
    await pull({ repo, remote: 'origin', refs: ['main'], onProgress: (p) => events.push(p) });
    expect(events.some((p) => p.estimating && p.objectsTotal === null && p.etaSeconds === null)).toBe(true);
    const last = events[events.length - 1];
    expect(last).toMatchObject({ phase: 'done', estimating: false, etaSeconds: 0 });
    // commit + 3 dirtrees (root, d, d/e) + 1 dirmeta (shared) + 4 content objects
    expect(last.objectsTotal).toBe(9);
    expect(last.objectsDone).toBe(9);
    expect(last.bytesDone).toBeGreaterThan(0);
  });

  it('an AbortSignal that is already aborted stops before any request', async () => {
    const repo = await dest();
    const f = new HookedFetcher();
    const ac = new AbortController();
    ac.abort(new Error('stop'));
    await expect(pull({ repo, remote: 'origin', refs: ['main'], fetcher: f, signal: ac.signal })).rejects.toMatchObject({ code: 'ABORTED' });
  });

  it('checks ref bindings and, when the remote has a collection id, collection bindings', async () => {
    // The source commit is bound to `main` (commitTree adds ostree.ref-binding) and has no collection binding.
    const repo = await dest();
    await pull({ repo, remote: 'origin', commits: [commit] });
    const repo2 = await dest({ set: [['collection-id', 'org.example.Os']] });
    await expect(pull({ repo: repo2, remote: 'origin', refs: ['main'] })).rejects.toThrow(/Expected commit metadata to have collection ID binding information/);
    expect(await repo2.hasObject('commit', commit)).toBe(false);
    // A summary ref that points at a commit bound to another ref is refused.
    await src.setRef('other', commit);
    await generateSummary(src);
    try {
      const repo3 = await dest();
      await expect(pull({ repo: repo3, remote: 'origin', refs: ['other'] })).rejects.toThrow(`Commit ${commit}: Commit has no requested ref ‘other’ in ref binding metadata (‘main’)`);
      expect(await repo3.resolveRef('origin:other')).toBeNull();
    } finally {
      await src.setRef('other', null);
      await generateSummary(src);
    }
  });

  it('rejects bad options as programming errors', async () => {
    const repo = await dest();
    await expect(pull({ repo, remote: 'origin', refs: ['main'], depth: -2 })).rejects.toThrow(TypeError);
    await expect(pull({ repo, remote: 'nope', refs: ['main'] })).rejects.toMatchObject({ code: 'REF_NOT_FOUND', message: 'Remote "nope" not found' });
    await expect(pull({ repo, remote: 'origin', refs: ['../x'] })).rejects.toMatchObject({ code: 'INVALID_REF' });
  });
});
