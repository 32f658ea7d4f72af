import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { deflateRawSync } from 'node:zlib';
import { Repo, fsck, readSummary, serializeArchiveHeader, traverseCommit } from '@larch/core-store';
import { tmpDir, type TmpDir } from '@larch/test-fixtures';
import { rolloutPercent } from '@larch/updater';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ApiError, MAGIC, OBJECTS_MEDIA_TYPE, chunkFrames, pushRef, recordHeader } from '../src/index.js';
import { bearer, commitTo, objectFiles, smallTree, startTestServer, type TestServer } from './support.js';

const REF = 'exampleos/x86_64/stable';

function uploadBody(records: Array<{ type: 'file' | 'dirtree' | 'dirmeta' | 'commit'; checksum: string; bytes: Uint8Array }>): Buffer {
  const parts: Buffer[] = [MAGIC];
  for (const r of records) {
    parts.push(recordHeader(r.type, r.checksum), ...chunkFrames(r.bytes), Buffer.alloc(4));
  }
  parts.push(Buffer.alloc(1));
  return Buffer.concat(parts);
}

async function keys(repo: Repo, commit: string): Promise<Set<string>> {
  const m = await traverseCommit(repo, commit, { depth: 0 });
  return new Set([...m.keys()].filter((k) => !k.endsWith('.commitmeta')));
}

describe('push and publish', () => {
  let dir: TmpDir;
  let srv: TestServer;
  let serverRepo: Repo;
  beforeEach(async () => {
    dir = await tmpDir('larch-push-');
    serverRepo = await Repo.init({ path: join(dir.path, 'server'), mode: 'archive' });
    srv = await startTestServer(serverRepo.path, { deltas: { fromLast: 2, concurrency: 1 } });
  });
  afterEach(async () => {
    await srv.close();
    await dir.cleanup();
  });

  it('uploads only what the server lacks, moves the ref, writes deltas and the summary', async () => {
    const { token } = srv.tokens.create({ repo: 'os', rights: ['push', 'publish'], refPrefix: 'exampleos/' });
    const local = join(dir.path, 'local');
    await smallTree(join(dir.path, 't1'), 1);
    const c1 = await commitTo(local, 'bare-user', join(dir.path, 't1'), REF, 'one');
    const r1 = await pushRef({ repoPath: local, serverUrl: srv.url, repo: 'os', ref: REF, token });
    expect(r1.commit).toBe(c1.commit);
    expect(r1.objectsSent).toBe(r1.objectsTotal);
    expect(r1.job.state).toBe('succeeded');
    expect(srv.publisher.stats('os').objectsStored).toBe(r1.objectsTotal);
    expect(await serverRepo.resolveRef(REF)).toBe(c1.commit);
    expect((await fsck(serverRepo)).errors ?? []).toEqual([]);
    const summary = readSummary(await readFile(join(serverRepo.path, 'summary')));
    expect(summary.refs.map((r) => [r.name, r.checksum])).toEqual([[REF, c1.commit]]);

    // The same push again sends nothing.
    const again = await pushRef({ repoPath: local, serverUrl: srv.url, repo: 'os', ref: REF, token });
    expect(again.objectsMissing).toBe(0);
    expect(again.objectsSent).toBe(0);

    // A child commit: exactly the new objects go over the wire, and a delta from the parent is made.
    await smallTree(join(dir.path, 't2'), 2);
    const c2 = await commitTo(local, 'bare-user', join(dir.path, 't2'), REF, 'two');
    const before = srv.publisher.stats('os').objectsStored;
    const old = await keys(c1.repo, c1.commit);
    const expected = [...(await keys(c2.repo, c2.commit))].filter((k) => !old.has(k));
    const r2 = await pushRef({ repoPath: local, serverUrl: srv.url, repo: 'os', ref: REF, token, batchBytes: 1024 });
    expect(r2.objectsSent).toBe(expected.length);
    expect(srv.publisher.stats('os').objectsStored - before).toBe(expected.length);
    expect(r2.uploadRequests).toBeGreaterThan(1);
    expect(r2.job.deltas).toEqual([`${c1.commit}-${c2.commit}`]);
    expect(await serverRepo.resolveRef(REF)).toBe(c2.commit);
    const s2 = readSummary(await readFile(join(serverRepo.path, 'summary')));
    expect(s2.refs[0].checksum).toBe(c2.commit);
    expect(JSON.stringify(s2.metadata.map(([k]) => k))).toContain('ostree.static-deltas');
    expect((await fsck(serverRepo)).errors ?? []).toEqual([]);

    // Jobs are listed newest first, and each can be read back.
    const jobs = (await (await fetch(`${srv.url}api/v1/repos/os/jobs?limit=2`, { headers: bearer(token) })).json()) as { jobs: Array<{ id: number; commit: string; state: string }> };
    expect(jobs.jobs.map((j) => [j.commit, j.state])).toEqual([[c2.commit, 'succeeded'], [c1.commit, 'succeeded']]);
    const one = (await (await fetch(`${srv.url}api/v1/repos/os/jobs/${jobs.jobs[0].id}`, { headers: bearer(token) })).json()) as { job: { previous: string } };
    expect(one.job.previous).toBe(c1.commit);
    expect((await fetch(`${srv.url}api/v1/repos/os/jobs?limit=0`, { headers: bearer(token) })).status).toBe(400);
    expect((await fetch(`${srv.url}api/v1/repos/os/jobs/999`, { headers: bearer(token) })).status).toBe(404);
    expect((await fetch(`${srv.url}api/v1/repos/os/jobs/x1`, { headers: bearer(token) })).status).toBe(404);
  });

  it('pushes from an archive repository too', async () => {
    const { token } = srv.tokens.create({ repo: 'os', rights: ['push', 'publish'] });
    const local = join(dir.path, 'local-archive');
    await smallTree(join(dir.path, 't1'), 3);
    const c1 = await commitTo(local, 'archive', join(dir.path, 't1'), REF, 'one');
    const r = await pushRef({ repoPath: local, serverUrl: srv.url, repo: 'os', ref: REF, token });
    expect(r.objectsSent).toBe(r.objectsTotal);
    expect(await serverRepo.resolveRef(REF)).toBe(c1.commit);
    expect(await objectFiles(serverRepo.path)).toEqual(await objectFiles(local));
  });

  it('refuses bad tokens and changes nothing', async () => {
    const local = join(dir.path, 'local');
    await smallTree(join(dir.path, 't1'), 1);
    const c1 = await commitTo(local, 'bare-user', join(dir.path, 't1'), REF, 'one');
    const expired = srv.tokens.create({ repo: 'os', rights: ['push', 'publish'], expiresAt: new Date(Date.now() - 1000) }).token;
    const otherRepo = srv.tokens.create({ repo: 'other', rights: ['push', 'publish'] }).token;
    const otherPrefix = srv.tokens.create({ repo: 'os', rights: ['push', 'publish'], refPrefix: 'otheros/' }).token;
    const pushOnly = srv.tokens.create({ repo: 'os', rights: ['push'] }).token;
    const objectsBefore = await objectFiles(serverRepo.path);
    const jobsBefore = srv.db.all('SELECT * FROM publish_jobs');
    const cases: Array<[string | undefined, number, string]> = [
      [undefined, 401, 'unauthorized'],
      ['larch_not-a-token', 401, 'invalid-token'],
      [expired, 401, 'token-expired'],
      [otherRepo, 403, 'forbidden'],
    ];
    for (const [token, status, code] of cases) {
      // Every endpoint refuses: the missing query, an upload, the ref update.
      const h = token === undefined ? {} : bearer(token);
      const q = await fetch(`${srv.url}api/v1/repos/os/objects/missing`, { method: 'POST', headers: { ...h, 'content-type': 'application/json' }, body: JSON.stringify({ objects: [`${c1.commit}.commit`] }) });
      expect([q.status, ((await q.json()) as { error: { code: string } }).error.code]).toEqual([status, code]);
      const bytes = await c1.repo.readMetadata('commit', c1.commit);
      const u = await fetch(`${srv.url}api/v1/repos/os/objects`, { method: 'POST', headers: { ...h, 'content-type': OBJECTS_MEDIA_TYPE }, body: uploadBody([{ type: 'commit', checksum: c1.commit, bytes }]) });
      expect(u.status).toBe(status);
      const r = await fetch(`${srv.url}api/v1/repos/os/refs/${REF}`, { method: 'POST', headers: { ...h, 'content-type': 'application/json' }, body: JSON.stringify({ commit: c1.commit }) });
      expect(r.status).toBe(status);
    }
    // Right repo, wrong prefix: uploads are allowed (objects are not ref-scoped) but the ref update is not.
    await expect(pushRef({ repoPath: local, serverUrl: srv.url, repo: 'os', ref: REF, token: otherPrefix })).rejects.toMatchObject({ status: 403, apiCode: 'forbidden' });
    await expect(pushRef({ repoPath: local, serverUrl: srv.url, repo: 'os', ref: REF, token: pushOnly })).rejects.toMatchObject({ status: 403 });
    expect(await serverRepo.resolveRef(REF).catch(() => null)).toBeNull();
    expect(srv.db.all('SELECT * FROM publish_jobs')).toEqual(jobsBefore);
    // The refused upload attempts stored nothing.
    expect(objectsBefore).toEqual([]);
  });

  it('refuses objects whose bytes do not match their checksum, and incomplete commits', async () => {
    const { token } = srv.tokens.create({ repo: 'os', rights: ['push', 'publish'] });
    const local = join(dir.path, 'local');
    await smallTree(join(dir.path, 't1'), 1);
    const c1 = await commitTo(local, 'bare-user', join(dir.path, 't1'), REF, 'one');
    const h = { ...bearer(token), 'content-type': OBJECTS_MEDIA_TYPE };
    const commitBytes = await c1.repo.readMetadata('commit', c1.commit);
    const wrong = Buffer.from(commitBytes);
    wrong[wrong.length - 1] ^= 1;
    const bad = await fetch(`${srv.url}api/v1/repos/os/objects`, { method: 'POST', headers: h, body: uploadBody([{ type: 'commit', checksum: c1.commit, bytes: wrong }]) });
    expect(bad.status).toBe(422);
    expect(((await bad.json()) as { error: { code: string; message: string } }).error.message).toContain(`checksum expected='${c1.commit}'`);
    expect(await objectFiles(serverRepo.path)).toEqual([]);

    // A content object whose payload was altered: refused by its content checksum.
    const objects = await traverseCommit(c1.repo, c1.commit, { depth: 0 });
    const file = [...objects.values()].find((o) => o.type === 'file')!;
    const f = await c1.repo.openFile(file.checksum);
    const chunks: Buffer[] = [];
    for await (const c of f.open() as AsyncIterable<Buffer>) chunks.push(c);
    const payload = Buffer.concat(chunks);
    const altered = Buffer.concat([payload, Buffer.from('x')]);
    const filez = Buffer.concat([serializeArchiveHeader({ meta: f.meta, size: altered.length }), deflateRawSync(altered)]);
    const badFile = await fetch(`${srv.url}api/v1/repos/os/objects`, { method: 'POST', headers: h, body: uploadBody([{ type: 'file', checksum: file.checksum, bytes: filez }]) });
    expect(badFile.status).toBe(422);
    expect(await objectFiles(serverRepo.path)).toEqual([]);
    // The same object with its real bytes is accepted.
    const good = Buffer.concat([serializeArchiveHeader({ meta: f.meta, size: payload.length }), deflateRawSync(payload)]);
    const ok = await fetch(`${srv.url}api/v1/repos/os/objects`, { method: 'POST', headers: h, body: uploadBody([{ type: 'file', checksum: file.checksum, bytes: good }, { type: 'commit', checksum: c1.commit, bytes: commitBytes }]) });
    expect(ok.status).toBe(200);
    expect(await ok.json()).toMatchObject({ stored: 2, present: 0 });

    // The commit is there, its tree is not: the ref does not move.
    const r = await fetch(`${srv.url}api/v1/repos/os/refs/${REF}`, { method: 'POST', headers: { ...bearer(token), 'content-type': 'application/json' }, body: JSON.stringify({ commit: c1.commit }) });
    expect(r.status).toBe(409);
    const body = (await r.json()) as { error: { code: string; missing: string } };
    expect(body.error.code).toBe('incomplete-commit');
    expect(body.error.missing).toMatch(/^[0-9a-f]{64}\.(dirtree|dirmeta|file)$/);
    expect(await serverRepo.resolveRef(REF).catch(() => null)).toBeNull();
    expect(srv.db.all('SELECT * FROM publish_jobs')).toEqual([]);
  });

  it('refuses traversal and malformed paths', async () => {
    const { token } = srv.tokens.create({ repo: 'os', rights: ['admin'] });
    for (const p of ['api/v1/repos/os/refs/a%2F..%2Fb', 'api/v1/repos/..%2Fos/rollouts', 'api/v1/repos/os/rollouts/%2e%2e', 'api/v1/repos/os/jobs/..']) {
      const r = await fetch(`${srv.url}${p}`, { headers: bearer(token) });
      expect([400, 404], p).toContain(r.status);
    }
  });

  it('publishes rollout changes in the summary', async () => {
    const { token } = srv.tokens.create({ repo: 'os', rights: ['push', 'publish'] });
    const admin = srv.tokens.create({ repo: 'os', rights: ['admin'] }).token;
    const reader = srv.tokens.create({ repo: 'os', rights: ['read'] }).token;
    const local = join(dir.path, 'local');
    await smallTree(join(dir.path, 't1'), 1);
    await commitTo(local, 'bare-user', join(dir.path, 't1'), REF, 'one');
    await pushRef({ repoPath: local, serverUrl: srv.url, repo: 'os', ref: REF, token });
    const meta = async () => readSummary(await readFile(join(serverRepo.path, 'summary'))).metadata;
    expect(rolloutPercent(await meta(), REF)).toBe(100);

    const list = await fetch(`${srv.url}api/v1/repos/os/rollouts`, { headers: bearer(reader) });
    expect(await list.json()).toEqual({ rollouts: [{ ref: REF, percent: 100, paused: false, reason: null, updatedAt: null }] });
    const put = (t: string, body: unknown) =>
      fetch(`${srv.url}api/v1/repos/os/rollouts/${REF}`, { method: 'PUT', headers: { ...bearer(t), 'content-type': 'application/json' }, body: JSON.stringify(body) });
    expect((await put(reader, { percent: 5 })).status).toBe(403);
    expect((await put(admin, { percent: 101 })).status).toBe(400);
    expect((await put(admin, { percent: 5.5 })).status).toBe(400);
    const r = await put(admin, { percent: 25 });
    expect(r.status).toBe(200);
    expect(await r.json()).toMatchObject({ ref: REF, percent: 25, paused: false });
    expect(rolloutPercent(await meta(), REF)).toBe(25);
    await put(admin, { paused: true, reason: 'bad canary' });
    expect(rolloutPercent(await meta(), REF)).toBe(0);
    const entry = await srv.publisher.setRollout('os', REF, { paused: false });
    expect(entry).toMatchObject({ percent: 25, paused: false, reason: 'bad canary' });
    expect(rolloutPercent(await meta(), REF)).toBe(25);
    expect((await put(admin, { percent: 50 })).status).toBe(200);
    expect((await fetch(`${srv.url}api/v1/repos/os/rollouts/no/such/ref`, { method: 'PUT', headers: { ...bearer(admin), 'content-type': 'application/json' }, body: '{"percent":1}' })).status).toBe(404);
    await expect(srv.publisher.setRollout('os', 'no/such', { percent: 3 })).rejects.toBeInstanceOf(ApiError);
  });
});
