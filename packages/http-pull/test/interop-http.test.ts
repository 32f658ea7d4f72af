/**
 * Interop (tag: interop): a repository written by the real `ostree`, served by a plain static
 * server (`python3 -m http.server`), pulled by Larch into archive and bare-user repositories.
 * `ostree fsck` must accept the result and `ostree checkout` of it must equal the checkout of
 * the source. Fails (does not skip) in CI when ostree is missing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Repo, type RepoMode } from '@larch/core-store';
import { compareTrees, formatDifferences, interopDescribe, ostree, ostreeOk, requireOstree, tmpDir, type TmpDir } from '@larch/test-fixtures';
import { addRemote, pull, type PullProgress } from '../src/index.js';
import { makeOstreeRemote, objectRequests, ostreeCheckout, startPythonServer, type PythonServer } from './helpers.js';

const describeInterop = interopDescribe(describe);

describeInterop('pull from a static server (interop)', () => {
  let tmp: TmpDir;
  let server: PythonServer;
  let remote: Awaited<ReturnType<typeof makeOstreeRemote>>;

  beforeAll(async () => {
    requireOstree();
    tmp = await tmpDir('larch-pull-');
    remote = await makeOstreeRemote(tmp);
    server = await startPythonServer(remote.repo);
    await ostreeCheckout(remote.repo, 'main', tmp.join('expected'));
  });
  afterAll(async () => {
    await server?.stop();
    await tmp?.cleanup();
  });

  // bare stores real ownership, which needs root.
  const modes: RepoMode[] = ['archive', 'bare-user', ...(process.getuid?.() === 0 ? (['bare'] as RepoMode[]) : [])];
  for (const mode of modes) {
    it(`pulls main into a ${mode} repo that ostree fsck accepts and checks out identically`, async () => {
      const dest = tmp.join(`dest-${mode}`);
      const repo = await Repo.init({ path: dest, mode });
      await addRemote(repo, { name: 'origin', url: server.url, gpgVerify: false });
      const events: PullProgress[] = [];
      await server.drain();
      server.requests.length = 0;
      const result = await pull({ repo, remote: 'origin', refs: ['main'], onProgress: (p) => events.push(p) });
      await server.drain();
      expect(result.refs).toEqual([{ ref: 'main', refspec: 'origin:main', checksum: remote.commits[2], previous: null }]);
      expect(await repo.resolveRef('origin:main')).toBe(remote.commits[2]);
      expect(await repo.isCommitPartial(remote.commits[2])).toBe(false);

      // The order OSTree uses (without summary.sig, which is only fetched when it is verified or
      // mirrored): summary, config, then commitmeta before commit.
      expect(server.requests.slice(0, 4)).toEqual([
        '/summary',
        '/config',
        `/objects/${remote.commits[2].slice(0, 2)}/${remote.commits[2].slice(2)}.commitmeta`,
        `/objects/${remote.commits[2].slice(0, 2)}/${remote.commits[2].slice(2)}.commit`,
      ]);
      // Each object requested once.
      const objs = objectRequests(server.requests);
      expect(new Set(objs).size).toBe(objs.length);

      // Progress: estimating first, an exact object total at the end.
      expect(events[0].estimating).toBe(true);
      const last = events[events.length - 1];
      expect(last.phase).toBe('done');
      expect(last.estimating).toBe(false);
      expect(last.objectsTotal).toBe(last.objectsDone);
      expect(last.contentFetched).toBeGreaterThan(10);

      const fsck = await ostree(['fsck', `--repo=${dest}`]);
      expect(fsck.stderr).toBe('');
      expect(fsck.code).toBe(0);
      const out = tmp.join(`out-${mode}`);
      await ostreeCheckout(dest, 'origin:main', out);
      const diffs = await compareTrees(tmp.join('expected'), out);
      expect(formatDifferences(diffs)).toBe('');
    });
  }

  it('makes fewer requests than the real ostree pull for the same commit', async () => {
    const ours = await Repo.init({ path: tmp.join('count-ours'), mode: 'archive' });
    await addRemote(ours, { name: 'origin', url: server.url, gpgVerify: false });
    await server.drain();
    server.requests.length = 0;
    await pull({ repo: ours, remote: 'origin', refs: ['main'] });
    await server.drain();
    const oursCount = server.requests.length;

    await ostreeOk(['init', `--repo=${tmp.join('count-ostree')}`, '--mode=archive']);
    await ostreeOk(['remote', 'add', `--repo=${tmp.join('count-ostree')}`, '--no-gpg-verify', 'origin', server.url]);
    await server.drain();
    server.requests.length = 0;
    await ostreeOk(['pull', `--repo=${tmp.join('count-ostree')}`, '--disable-static-deltas', 'origin', 'main']);
    await server.drain();
    const theirs = server.requests.length;
    expect(oursCount).toBe(theirs - 1); // summary.sig
  });

  it('an up-to-date re-pull only asks for summary, config and the commitmeta', async () => {
    const repo = await Repo.init({ path: tmp.join('again'), mode: 'archive' });
    await addRemote(repo, { name: 'origin', url: server.url, gpgVerify: false });
    await pull({ repo, remote: 'origin', refs: ['main'] });
    await server.drain();
    server.requests.length = 0;
    const r = await pull({ repo, remote: 'origin', refs: ['main'] });
    await server.drain();
    expect(server.requests).toEqual(['/summary', '/config', `/objects/${remote.commits[2].slice(0, 2)}/${remote.commits[2].slice(2)}.commitmeta`]);
    expect(r.refs[0].previous).toBe(remote.commits[2]);
  });

  it('pulls without a summary through refs/heads (as ostree does when the summary is absent)', async () => {
    // A copy of the remote without summary: serve it with a second server.
    const bare = tmp.join('nosummary');
    await ostreeOk(['init', `--repo=${bare}`, '--mode=archive']);
    await ostreeOk(['pull-local', `--repo=${bare}`, remote.repo, 'other']);
    const s2 = await startPythonServer(bare);
    try {
      const repo = await Repo.init({ path: tmp.join('from-nosummary'), mode: 'bare-user' });
      await addRemote(repo, { name: 'o', url: s2.url, gpgVerify: false });
      await pull({ repo, remote: 'o', refs: ['other'] });
      await s2.drain();
      expect(await repo.resolveRef('o:other')).toBe(remote.other);
      expect(s2.requests.slice(0, 2)).toEqual(['/summary', '/refs/heads/other']);
      expect((await ostree(['fsck', `--repo=${tmp.join('from-nosummary')}`])).code).toBe(0);
    } finally {
      await s2.stop();
    }
  });
});
