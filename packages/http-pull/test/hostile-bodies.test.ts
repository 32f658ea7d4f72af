/**
 * Oversized chunked bodies (no Content-Length, endless or finite) from a real hostile server,
 * for every file a pull reads whole: the commit, its detached metadata, a ref, the remote
 * config, the summary, a delta index; and a content object that is garbage from its first
 * byte. Each pull must reject within 10 s of the server having sent the limit, with one line
 * naming the object, in OSTree's words ("exceeded maximum size of N bytes"); the local ref
 * must not move; the hostile connection must be closed, not parked in the pool; and the pull's
 * fetcher must close.
 */
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LarchError, Repo } from '@larch/core-store';
import { interopDescribe, requireOstree, tmpDir, type TmpDir } from '@larch/test-fixtures';
import { addRemote, findDelta, pull, UndiciFetcher } from '../src/index.js';
import { makeOstreeRemote } from './helpers.js';
import { HostileServer, settleWithin, type HostileRule } from './hostile-server.js';

const describeInterop = interopDescribe(describe);
const MiB = 1024 * 1024;
/** Lowered so the summary and commitmeta cases stay quick (the default is 128 MiB). */
const MAX_METADATA = 2 * MiB;
/** How long after the server sent the limit a pull may take to give up. */
const GIVE_UP_MS = 10_000;

describeInterop('pull against oversized chunked bodies (interop)', () => {
  let tmp: TmpDir;
  let server: HostileServer;
  let remote: Awaited<ReturnType<typeof makeOstreeRemote>>;
  let seq = 0;

  beforeAll(async () => {
    requireOstree();
    tmp = await tmpDir('larch-hostile-');
    remote = await makeOstreeRemote(tmp);
    server = await HostileServer.start(remote.repo);
  });
  afterAll(async () => {
    await server?.stop();
    await tmp?.cleanup();
  });

  const objectPath = (checksum: string, ext: string): string => `/objects/${checksum.slice(0, 2)}/${checksum.slice(2)}.${ext}`;

  /** A repo whose `h:main` points at the first commit, pulled from the server while it behaves. */
  async function localRepo(): Promise<Repo> {
    server.rule = null;
    server.missing.clear();
    const repo = await Repo.init({ path: tmp.join(`local-${++seq}`), mode: 'archive' });
    await addRemote(repo, { name: 'h', url: server.url, gpgVerify: false });
    await pull({ repo, remote: 'h', commits: [remote.commits[0]] });
    await repo.setRef('h:main', remote.commits[0]);
    return repo;
  }

  interface Case {
    name: string;
    object: () => string;
    path: () => string;
    limit: () => number;
    missing?: string[];
  }
  const cases: Case[] = [
    {
      name: 'the commit',
      object: () => `${remote.commits[2]}.commit`,
      path: () => objectPath(remote.commits[2], 'commit'),
      // The summary gives the commit's size, and that is the limit.
      limit: () => statSync(join(remote.repo, objectPath(remote.commits[2], 'commit'))).size,
    },
    { name: 'its detached metadata', object: () => `${remote.commits[2]}.commitmeta`, path: () => objectPath(remote.commits[2], 'commitmeta'), limit: () => MAX_METADATA },
    { name: 'a ref (no summary)', object: () => 'refs/heads/main', path: () => '/refs/heads/main', limit: () => 4096, missing: ['/summary'] },
    { name: 'the remote config', object: () => 'config', path: () => '/config', limit: () => MiB },
    { name: 'the summary', object: () => 'summary', path: () => '/summary', limit: () => MAX_METADATA },
  ];

  for (const c of cases) {
    for (const kind of ['endless', 'finite'] as const) {
      it(`${c.name}, ${kind}: rejects in time with one line, the ref stays, the connection is closed`, async () => {
        const repo = await localRepo();
        const path = c.path();
        const limit = c.limit();
        for (const m of c.missing ?? []) server.missing.add(m);
        server.resetCounters();
        const rule: HostileRule = { match: (p) => p === path, kind, limit };
        server.rule = rule;
        const r = await settleWithin(
          pull({ repo, remote: 'h', refs: ['main'], limits: { maxMetadataSize: MAX_METADATA } }),
          () => server.overLimit[0]?.limitAt ?? null,
          GIVE_UP_MS,
          'pull()',
        );
        expect(r.error).toBeInstanceOf(LarchError);
        const e = r.error as LarchError;
        expect(e.code).toBe('LIMIT_EXCEEDED');
        expect(e.data.object).toBe(c.object());
        expect(e.message).toBe(`Fetching ${c.object()}: exceeded maximum size of ${limit} bytes for ${server.url.replace(/\/$/, '')}${path}`);
        expect(server.overLimit).toHaveLength(1);
        expect(r.settledAt - server.overLimit[0].limitAt!).toBeLessThan(GIVE_UP_MS);
        expect(await repo.resolveRef('h:main')).toBe(remote.commits[0]);
        // The pull closed its own fetcher: no connection is left open.
        await server.waitFor(() => server.openSockets === 0, 'the pull to close its connections');
        expect(server.responses.every((x) => x.closedAt !== null)).toBe(true);
      });
    }
  }

  it('a caller’s fetcher: the oversized response’s connection is discarded, the pool still serves, close() settles', async () => {
    const repo = await localRepo();
    const fetcher = new UndiciFetcher();
    try {
      const path = objectPath(remote.commits[2], 'commit');
      server.resetCounters();
      server.rule = { match: (p) => p === path, kind: 'endless', limit: 1 };
      const r = await settleWithin(pull({ repo, remote: 'h', refs: ['main'], fetcher }), () => server.overLimit[0]?.limitAt ?? null, GIVE_UP_MS, 'pull()');
      expect((r.error as LarchError).code).toBe('LIMIT_EXCEEDED');
      // Closed by the client while the fetcher is still open: destroyed, not returned to the pool.
      await server.waitFor(() => server.responses[0]?.closedAt !== null, 'the oversized response to be closed');
      server.rule = null;
      const ok = await pull({ repo, remote: 'h', refs: ['main'], fetcher });
      expect(ok.refs[0].checksum).toBe(remote.commits[2]);
    } finally {
      const t = performance.now();
      const closed = await settleWithin(fetcher.close(), () => t, GIVE_UP_MS, 'fetcher.close()');
      expect(closed.error).toBeUndefined();
    }
    await server.waitFor(() => server.openSockets === 0, 'the fetcher to close its connections');
  });

  it('a content object that is endless garbage: OBJECT_CORRUPTED at once, connection closed', async () => {
    server.resetCounters();
    const repo = await localRepo();
    // Any .filez of the last commit that the first one does not have.
    const have = new Set(server.requests);
    server.resetCounters();
    server.rule = { match: (p) => p.endsWith('.filez') && !have.has(p), kind: 'endless', limit: 1 };
    const r = await settleWithin(pull({ repo, remote: 'h', refs: ['main'] }), () => server.overLimit[0]?.limitAt ?? null, GIVE_UP_MS, 'pull()');
    const e = r.error as LarchError;
    expect(e).toBeInstanceOf(LarchError);
    expect(e.code).toBe('OBJECT_CORRUPTED');
    expect(e.message).toMatch(/^Fetching [0-9a-f]{64}\.filez: Corrupted file object [0-9a-f]{64}: invalid header length \d+ for http:\/\/\S+\.filez$/);
    expect(await repo.resolveRef('h:main')).toBe(remote.commits[0]);
    await server.waitFor(() => server.openSockets === 0, 'the pull to close its connections');
  });

  it('a delta index: findDelta rejects in time, naming it, and leaves no connection open', async () => {
    const repo = await localRepo();
    const fetcher = new UndiciFetcher();
    try {
      server.resetCounters();
      server.rule = { match: (p) => p.startsWith('/delta-indexes/'), kind: 'endless', limit: 16 * MiB };
      const r = await settleWithin(findDelta({ repo, fetcher, baseUrl: server.url, to: remote.commits[2] }), () => server.overLimit[0]?.limitAt ?? null, GIVE_UP_MS, 'findDelta()');
      const e = r.error as LarchError;
      expect(e).toBeInstanceOf(LarchError);
      expect(e.code).toBe('LIMIT_EXCEEDED');
      expect(e.message).toMatch(/^Fetching delta index of [0-9a-f]{64}: exceeded maximum size of 16777216 bytes for http:\/\/\S+\.index$/);
      await server.waitFor(() => server.responses[0]?.closedAt !== null, 'the oversized response to be closed');
    } finally {
      await fetcher.close();
    }
  });
});
