/**
 * `--depth`, `--mirror`, `--commit-metadata-only` and `--subpath` against a repository written by
 * the real `ostree` and served by `python3 -m http.server` (interop).
 */
import { promises as fsp } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Repo } from '@larch/core-store';
import { Variant, encode } from '@larch/gvariant';
import { interopDescribe, ostree, requireOstree, tmpDir, type TmpDir } from '@larch/test-fixtures';
import { addRemote, pull } from '../src/index.js';
import { makeOstreeRemote, objectRequests, startPythonServer, type PythonServer } from './helpers.js';

const describeInterop = interopDescribe(describe);

describeInterop('pull options (interop)', () => {
  let tmp: TmpDir;
  let server: PythonServer;
  let remote: Awaited<ReturnType<typeof makeOstreeRemote>>;
  let n = 0;

  async function fresh(mode: 'archive' | 'bare-user' = 'archive'): Promise<Repo> {
    const repo = await Repo.init({ path: tmp.join(`d${n++}`), mode });
    await addRemote(repo, { name: 'origin', url: server.url, gpgVerify: false });
    return repo;
  }

  async function fsckOk(repo: Repo): Promise<string> {
    const r = await ostree(['fsck', `--repo=${repo.path}`]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    return r.stdout;
  }

  beforeAll(async () => {
    requireOstree();
    tmp = await tmpDir('larch-pullopts-');
    remote = await makeOstreeRemote(tmp);
    server = await startPythonServer(remote.repo);
  });
  afterAll(async () => {
    await server?.stop();
    await tmp?.cleanup();
  });

  it('depth 0 fetches only the tip; ostree log reports the missing history', async () => {
    const repo = await fresh();
    await pull({ repo, remote: 'origin', refs: ['main'] });
    await server.drain();
    expect(await repo.hasObject('commit', remote.commits[2])).toBe(true);
    expect(await repo.hasObject('commit', remote.commits[1])).toBe(false);
    const log = await ostree(['log', `--repo=${repo.path}`, 'origin:main']);
    expect(log.stdout).toContain('<< History beyond this commit not fetched >>');
    await fsckOk(repo);
  });

  it('depth 1 fetches the parent with its tree, complete (not partial)', async () => {
    const repo = await fresh('bare-user');
    await server.drain();
    server.requests.length = 0;
    const r = await pull({ repo, remote: 'origin', refs: ['main'], depth: 1 });
    await server.drain();
    expect(await repo.hasObject('commit', remote.commits[1])).toBe(true);
    expect(await repo.isCommitPartial(remote.commits[1])).toBe(false);
    expect(await repo.hasObject('commit', remote.commits[0])).toBe(false);
    expect(r.commits.sort()).toEqual([remote.commits[1], remote.commits[2]].sort());
    // The parent's commitmeta is asked for too, as ostree does.
    expect(server.requests).toContain(`/objects/${remote.commits[1].slice(0, 2)}/${remote.commits[1].slice(2)}.commitmeta`);
    const out = await fsckOk(repo);
    expect(out).toContain('Verifying content integrity of 2 commit objects');
  });

  it('depth -1 fetches the whole history', async () => {
    const repo = await fresh();
    await pull({ repo, remote: 'origin', refs: ['main'], depth: -1 });
    await server.drain();
    for (const c of remote.commits) expect(await repo.hasObject('commit', c)).toBe(true);
    expect(await fsckOk(repo)).toContain('Verifying content integrity of 3 commit objects');
  });

  it('mirror pulls every ref into refs/heads and copies the summary byte for byte', async () => {
    const repo = await fresh();
    await server.drain();
    server.requests.length = 0;
    const r = await pull({ repo, remote: 'origin', mirror: true });
    await server.drain();
    expect(server.requests.slice(0, 2)).toEqual(['/summary.sig', '/summary']);
    expect(r.refs.map((x) => x.refspec).sort()).toEqual(['main', 'other']);
    expect(await repo.resolveRef('main')).toBe(remote.commits[2]);
    expect(await repo.resolveRef('other')).toBe(remote.other);
    expect((await repo.listRefs({ kind: 'remotes' })).size).toBe(0);
    const ours = await fsp.readFile(repo.path + '/summary');
    const theirs = await fsp.readFile(remote.repo + '/summary');
    expect(Buffer.compare(ours, theirs)).toBe(0);
    await expect(fsp.access(repo.path + '/summary.sig')).rejects.toThrow();
    await fsckOk(repo);
  });

  it('mirror copies summary.sig too when the remote has one', async () => {
    const sigBytes = encode('a{sv}', [['ostree.test', new Variant('s', 'not a real signature')]]);
    await fsp.writeFile(remote.repo + '/summary.sig', sigBytes);
    try {
      const repo = await fresh();
      await pull({ repo, remote: 'origin', mirror: true });
      await server.drain();
      expect(Buffer.compare(await fsp.readFile(repo.path + '/summary.sig'), Buffer.from(sigBytes))).toBe(0);
      expect(Buffer.compare(await fsp.readFile(repo.path + '/summary'), await fsp.readFile(remote.repo + '/summary'))).toBe(0);
    } finally {
      await fsp.rm(remote.repo + '/summary.sig');
    }
  });

  it('commit-metadata-only stores the commit, marks it partial and fetches no tree', async () => {
    const repo = await fresh('bare-user');
    await server.drain();
    server.requests.length = 0;
    const r = await pull({ repo, remote: 'origin', refs: ['main'], commitMetadataOnly: true });
    await server.drain();
    expect(r.partialCommits).toEqual([remote.commits[2]]);
    expect(await repo.isCommitPartial(remote.commits[2])).toBe(true);
    expect(await repo.resolveRef('origin:main')).toBe(remote.commits[2]);
    const objs = objectRequests(server.requests);
    expect(objs.every((p) => p.endsWith('.commit') || p.endsWith('.commitmeta'))).toBe(true);
    expect(await fsckOk(repo)).toContain('1 partial commits not verified');

    // A later full pull completes the same commit and clears the marker.
    await pull({ repo, remote: 'origin', refs: ['main'] });
    await server.drain();
    expect(await repo.isCommitPartial(remote.commits[2])).toBe(false);
    expect(await fsckOk(repo)).not.toContain('partial');
  });

  it('subpath fetches only that directory and leaves the commit partial', async () => {
    const repo = await fresh();
    await server.drain();
    server.requests.length = 0;
    const r = await pull({ repo, remote: 'origin', refs: ['main'], subpath: '/sub' });
    await server.drain();
    expect(r.partialCommits).toEqual([remote.commits[2]]);
    const src = await Repo.open(remote.repo);
    const commit = await src.readCommit(remote.commits[2]);
    const root = await src.readDirTree(commit.rootTree);
    const sub = root.dirs.find((d) => d.name === 'sub')!;
    const subTree = await src.readDirTree(sub.treeChecksum);
    const deeper = await src.readDirTree(subTree.dirs.find((d) => d.name === 'deeper')!.treeChecksum);
    // The leaf under /sub is here, the big blob elsewhere is not.
    for (const f of deeper.files) expect(await repo.hasObject('file', f.checksum)).toBe(true);
    const rootFiles = root.files.map((f) => f.checksum);
    for (const c of rootFiles) expect(await repo.hasObject('file', c)).toBe(false);
    await fsckOk(repo);
  });

  it('pulls two refs at once and a bare commit checksum without writing a ref for it', async () => {
    const repo = await fresh();
    const r = await pull({ repo, remote: 'origin', refs: ['main', 'other'], commits: [remote.commits[0]] });
    await server.drain();
    expect(r.refs.map((x) => x.refspec).sort()).toEqual(['origin:main', 'origin:other']);
    expect(await repo.hasObject('commit', remote.commits[0])).toBe(true);
    expect(await repo.isCommitPartial(remote.commits[0])).toBe(false);
    expect(await fsckOk(repo)).toContain('Verifying content integrity of 3 commit objects');
  });

  it('an unknown ref fails with the summary wording and writes nothing', async () => {
    const repo = await fresh();
    await expect(pull({ repo, remote: 'origin', refs: ['nope'] })).rejects.toMatchObject({ code: 'REF_NOT_FOUND', message: "No such branch 'nope' in repository summary" });
    expect((await repo.listRefs({ kind: 'all' })).size).toBe(0);
  });
});
