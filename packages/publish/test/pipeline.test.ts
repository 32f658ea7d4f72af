import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Repo, readSummary } from '@larch/core-store';
import { Database } from '@larch/db';
import { ED25519_SIGNATURES_KEY, Ed25519Verifier, decodeDetachedMetadata, generateEd25519Key, verifyDetached } from '@larch/signing';
import { hasOstree, ostreeOk, tmpDir, type TmpDir } from '@larch/test-fixtures';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MAGIC, OBJECTS_MEDIA_TYPE, Publisher, PublishStore, pushRef, recordHeader } from '../src/index.js';
import { bearer, commitTo, smallTree, startTestServer, type TestServer } from './support.js';

const REF = 'os/main';

describe('publish pipeline', () => {
  let dir: TmpDir;
  let srv: TestServer | undefined;
  beforeEach(async () => {
    dir = await tmpDir('larch-pipeline-');
  });
  afterEach(async () => {
    await srv?.close();
    srv = undefined;
    await dir.cleanup();
  });

  it('signs the commit and the summary with ed25519 and prunes by depth', async () => {
    const key = generateEd25519Key();
    const keyFile = join(dir.path, 'ed25519.secret');
    await writeFile(keyFile, `${key.base64}\n`);
    const served = await Repo.init({ path: join(dir.path, 'served'), mode: 'archive' });
    srv = await startTestServer(served.path, { ed25519: { secretKeyFile: keyFile }, deltas: { fromLast: 1, fromScratch: true, concurrency: 1 }, prune: { keepDepth: 0 } });
    const { token } = srv.tokens.create({ repo: 'os', rights: ['push', 'publish'] });
    const local = join(dir.path, 'local');
    const commits: string[] = [];
    for (const v of [1, 2, 3]) {
      await smallTree(join(dir.path, `t${v}`), v);
      commits.push((await commitTo(local, 'bare-user', join(dir.path, `t${v}`), REF, `c${v}`)).commit);
      const r = await pushRef({ repoPath: local, serverUrl: srv.url, repo: 'os', ref: REF, token });
      expect(r.job.state).toBe('succeeded');
      expect(r.job.deltas).toEqual(v === 1 ? [commits[0]] : [`${commits[v - 2]}-${commits[v - 1]}`, commits[v - 1]]);
    }
    const verifier = new Ed25519Verifier({ trusted: [key.publicKey] });
    const head = commits[2];
    const data = await served.readMetadata('commit', head);
    const dict = (await served.readCommitMeta(head))!;
    expect(dict.map(([k]) => k)).toEqual([ED25519_SIGNATURES_KEY]);
    expect((await verifyDetached({ data, dict, policy: { verifiers: [verifier] } })).valid).toBe(true);
    const summary = await readFile(join(served.path, 'summary'));
    const sig = decodeDetachedMetadata(await readFile(join(served.path, 'summary.sig')));
    expect((await verifyDetached({ data: summary, dict: sig, policy: { verifiers: [verifier] } })).valid).toBe(true);
    expect(readSummary(summary).refs[0].checksum).toBe(head);
    // keepDepth 0: only the head commit of the ref remains after the third publish.
    expect(served.hasObjectSync('commit', commits[0])).toBe(false);
    expect(served.hasObjectSync('commit', commits[1])).toBe(false);
    const last = srv.publisher.store.jobs('os')[0];
    expect(last.pruned).toBeGreaterThan(0);
    expect(last.step).toBe('done');

  });

  it('mirrors each publish to a published store in reader-safe order, and the real ostree pulls from it', async () => {
    const served = await Repo.init({ path: join(dir.path, 'served'), mode: 'archive' });
    const mirror = join(dir.path, 'mirror');
    srv = await startTestServer(served.path, { deltas: { fromLast: 1, concurrency: 1 }, mirror: { to: `file://${mirror}` } });
    const { token } = srv.tokens.create({ repo: 'os', rights: ['push', 'publish'] });
    const local = join(dir.path, 'local');
    const commits: string[] = [];
    for (const v of [1, 2]) {
      await smallTree(join(dir.path, `t${v}`), v);
      commits.push((await commitTo(local, 'bare-user', join(dir.path, `t${v}`), REF, `c${v}`)).commit);
      const r = await pushRef({ repoPath: local, serverUrl: srv.url, repo: 'os', ref: REF, token });
      expect(r.job.state).toBe('succeeded');
      expect(srv.publisher.store.jobs('os')[0].step).toBe('done');
      // The mirror's summary and ref name the new commit, and it holds the commit object.
      expect(readSummary(await readFile(join(mirror, 'summary'))).refs[0].checksum).toBe(commits[v - 1]);
      expect((await readFile(join(mirror, 'refs/heads', REF), 'utf8')).trim()).toBe(commits[v - 1]);
      expect(await readFile(join(mirror, 'objects', commits[v - 1].slice(0, 2), `${commits[v - 1].slice(2)}.commit`))).toEqual(Buffer.from(await served.readMetadata('commit', commits[v - 1])));
    }
    if (!hasOstree()) return;
    const client = join(dir.path, 'client');
    await ostreeOk(['init', `--repo=${client}`, '--mode=bare-user']);
    await ostreeOk(['remote', 'add', `--repo=${client}`, '--no-gpg-verify', 'origin', `file://${mirror}`]);
    await ostreeOk(['pull', `--repo=${client}`, 'origin', REF]);
    expect((await ostreeOk(['rev-parse', `--repo=${client}`, REF])).stdout.trim()).toBe(commits[1]);
    await ostreeOk(['fsck', `--repo=${client}`]);
  });

  it('does not prune objects of a push whose ref update is still to come', async () => {
    const served = await Repo.init({ path: join(dir.path, 'served'), mode: 'archive' });
    srv = await startTestServer(served.path, { prune: { keepDepth: 0 }, deltas: { fromLast: 0 } });
    const { token } = srv.tokens.create({ repo: 'os', rights: ['push', 'publish'] });
    const pushOnly = srv.tokens.create({ repo: 'os', rights: ['push'] }).token;
    const local = join(dir.path, 'local');
    await smallTree(join(dir.path, 't1'), 1);
    await commitTo(local, 'bare-user', join(dir.path, 't1'), REF, 'c1');
    await pushRef({ repoPath: local, serverUrl: srv.url, repo: 'os', ref: REF, token });
    // A second client uploads its objects but has not asked for its ref yet (no publish right).
    await smallTree(join(dir.path, 'o'), 7);
    const other = await commitTo(join(dir.path, 'other'), 'archive', join(dir.path, 'o'), 'os/next', 'next');
    await expect(pushRef({ repoPath: other.repo.path, serverUrl: srv.url, repo: 'os', ref: 'os/next', token: pushOnly })).rejects.toMatchObject({ status: 403 });
    expect(served.hasObjectSync('commit', other.commit)).toBe(true);
    await smallTree(join(dir.path, 't2'), 2);
    await commitTo(local, 'bare-user', join(dir.path, 't2'), REF, 'c2');
    const r = await pushRef({ repoPath: local, serverUrl: srv.url, repo: 'os', ref: REF, token });
    expect(r.job.pruned).toBeNull();
    expect(r.job.warnings).toEqual([expect.stringMatching(/^Prune postponed: \d+ received objects await their ref update$/)]);
    expect(served.hasObjectSync('commit', other.commit)).toBe(true);
    // Once that push completes, the next publish prunes again.
    expect((await pushRef({ repoPath: other.repo.path, serverUrl: srv.url, repo: 'os', ref: 'os/next', token })).objectsSent).toBe(0);
    await smallTree(join(dir.path, 't3'), 3);
    await commitTo(local, 'bare-user', join(dir.path, 't3'), REF, 'c3');
    expect((await pushRef({ repoPath: local, serverUrl: srv.url, repo: 'os', ref: REF, token })).job.pruned).toBeGreaterThan(0);
  });

  it('refuses to publish a commit to a ref it is not bound to', async () => {
    const served = await Repo.init({ path: join(dir.path, 'served'), mode: 'archive' });
    srv = await startTestServer(served.path);
    const { token } = srv.tokens.create({ repo: 'os', rights: ['push', 'publish'] });
    const local = join(dir.path, 'local');
    await smallTree(join(dir.path, 't1'), 1);
    const { commit } = await commitTo(local, 'bare-user', join(dir.path, 't1'), REF, 'c1');
    await expect(pushRef({ repoPath: local, serverUrl: srv.url, repo: 'os', ref: 'os/other', commit, token })).rejects.toMatchObject({ status: 409, apiCode: 'ref-binding-mismatch' });
    expect(await served.resolveRef('os/other').catch(() => null)).toBeNull();
    expect((await pushRef({ repoPath: local, serverUrl: srv.url, repo: 'os', ref: REF, commit, token })).objectsSent).toBe(0);
    expect(await served.resolveRef(REF)).toBe(commit);
  });

  it('marks jobs a previous process left running as failed', async () => {
    const served = await Repo.init({ path: join(dir.path, 'served'), mode: 'archive' });
    const db = Database.open(':memory:');
    const store = new PublishStore(db);
    const job = store.createJob({ repo: 'os', ref: REF, commit: 'a'.repeat(64), tokenId: null });
    store.step(job.id, 'deltas');
    const p = await Publisher.open({ db, repos: [{ name: 'os', path: served.path }] });
    expect(p.job('os', job.id)).toMatchObject({ state: 'failed', step: 'deltas', error: 'Interrupted by a server restart; push again' });
    await p.close();
    db.close();
  });

  it('refuses malformed upload bodies and stores nothing', async () => {
    const served = await Repo.init({ path: join(dir.path, 'served'), mode: 'archive' });
    srv = await startTestServer(served.path);
    const { token } = srv.tokens.create({ repo: 'os', rights: ['push'] });
    const post = (body: Buffer, type = OBJECTS_MEDIA_TYPE) => fetch(`${srv!.url}api/v1/repos/os/objects`, { method: 'POST', headers: { ...bearer(token), 'content-type': type }, body });
    const wrongType = await post(Buffer.concat([MAGIC, Buffer.alloc(1)]), 'application/json');
    expect([wrongType.status, ((await wrongType.json()) as { error: { code: string } }).error.code]).toEqual([400, 'invalid-content-type']);
    expect((await post(Buffer.from('NOTMAGIC'))).status).toBe(400);
    // A record that never ends.
    expect((await post(Buffer.concat([MAGIC, recordHeader('dirmeta', 'b'.repeat(64)), Buffer.from([0, 0, 0, 5, 1, 2])]))).status).toBe(400);
    // A chunk above the limit.
    expect((await post(Buffer.concat([MAGIC, recordHeader('dirmeta', 'b'.repeat(64)), Buffer.from([0x7f, 0xff, 0xff, 0xff])]))).status).toBe(400);
    // An empty body of the right shape is fine.
    const empty = await post(Buffer.concat([MAGIC, Buffer.alloc(1)]));
    expect(await empty.json()).toEqual({ stored: 0, present: 0, bytes: 9 });
    const q = await fetch(`${srv.url}api/v1/repos/os/objects/missing`, { method: 'POST', headers: { ...bearer(token), 'content-type': 'application/json' }, body: JSON.stringify({ objects: ['../../etc/passwd'] }) });
    expect(q.status).toBe(400);
    expect(srv.publisher.stats('os').objectsStored).toBe(0);
  });
});
