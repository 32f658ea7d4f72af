/**
 * Remotes in the repo config: the file `addRemote` writes must equal what `ostree remote add`
 * writes for the same arguments (interop), and names, URLs and keys are validated.
 */
import { promises as fsp } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Repo } from '@larch/core-store';
import { interopDescribe, ostreeOk, requireOstree, tmpDir, type TmpDir } from '@larch/test-fixtures';
import { addRemote, deleteRemote, getRemote, listRemotes, remoteUrl } from '../src/index.js';

const describeInterop = interopDescribe(describe);

describe('remote config', () => {
  let tmp: TmpDir;
  let n = 0;
  const fresh = async (): Promise<Repo> => Repo.init({ path: tmp.join(`r${n++}`), mode: 'archive' });

  beforeAll(async () => {
    tmp = await tmpDir('larch-remotes-');
  });
  afterAll(async () => {
    await tmp?.cleanup();
  });

  it('adds, lists, shows and deletes remotes, keeping other config lines', async () => {
    const repo = await fresh();
    await fsp.appendFile(repo.path + '/config', '# keep me\n[custom]\nx=1\n');
    const r = await Repo.open(repo.path);
    await addRemote(r, { name: 'b', url: 'file:///srv/repo' });
    await addRemote(r, { name: 'a', url: 'https://example.com/repo/', branches: ['main', 'x/y'], gpgVerify: false });
    expect(listRemotes(r)).toEqual([
      { name: 'a', url: 'https://example.com/repo/' },
      { name: 'b', url: 'file:///srv/repo' },
    ]);
    expect(remoteUrl(r, 'a')).toBe('https://example.com/repo/');
    expect(getRemote(r, 'a')).toMatchObject({ branches: ['main', 'x/y'], gpgVerify: false, contentUrl: 'https://example.com/repo/' });
    expect(getRemote(r, 'b').gpgVerify).toBe(true);
    const text = await fsp.readFile(r.path + '/config', 'utf8');
    expect(text).toContain('# keep me\n[custom]\nx=1\n');
    expect(await deleteRemote(r, 'b')).toBe(true);
    expect(listRemotes(r).map((x) => x.name)).toEqual(['a']);
    expect((await Repo.open(r.path)).config.hasGroup('remote "b"')).toBe(false);
    expect(await fsp.readFile(r.path + '/config', 'utf8')).toContain('# keep me\n');
    await expect(deleteRemote(r, 'b')).rejects.toMatchObject({ code: 'REF_NOT_FOUND', message: 'Remote "b" not found' });
    expect(await deleteRemote(r, 'b', { ifExists: true })).toBe(false);
  });

  it('refuses duplicates unless ifNotExists', async () => {
    const repo = await fresh();
    await addRemote(repo, { name: 'o', url: 'http://127.0.0.1:1/' });
    await expect(addRemote(repo, { name: 'o', url: 'http://other/' })).rejects.toMatchObject({ code: 'EXISTS' });
    expect(await addRemote(repo, { name: 'o', url: 'http://other/', ifNotExists: true })).toBe(false);
    expect(remoteUrl(repo, 'o')).toBe('http://127.0.0.1:1/');
  });

  it('validates names, URLs and keys', async () => {
    const repo = await fresh();
    await expect(addRemote(repo, { name: 'bad/name', url: 'http://x/' })).rejects.toMatchObject({ code: 'INVALID_REF' });
    await expect(addRemote(repo, { name: 'o', url: 'ftp://x/' })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(addRemote(repo, { name: 'o', url: 'not a url' })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(addRemote(repo, { name: 'o', url: 'http://user:pw@x/' })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(addRemote(repo, { name: 'o', url: 'http://x/', set: [['contenturl', 'gopher://x']] })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(addRemote(repo, { name: 'o', url: 'http://x/', set: [['gpg-verify', 'maybe']] })).rejects.toMatchObject({ code: 'BAD_CONFIG' });
    await expect(addRemote(repo, { name: 'o', url: 'http://x/', set: [['bad key', 'v']] })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    expect(listRemotes(repo)).toEqual([]);
    expect((await Repo.open(repo.path)).config.groups()).toEqual(['core']);
  });

  it('reads sign-verify as a boolean or a list of types', async () => {
    const repo = await fresh();
    await addRemote(repo, { name: 's', url: 'http://x/', set: [['sign-verify', 'true'], ['sign-verify-summary', 'ed25519;spki;']] });
    expect(getRemote(repo, 's')).toMatchObject({ signVerify: ['ed25519'], signVerifySummary: ['ed25519', 'spki'] });
  });
});

describeInterop('remote config matches ostree remote add (interop)', () => {
  let tmp: TmpDir;
  beforeAll(async () => {
    requireOstree();
    tmp = await tmpDir('larch-remotes-x-');
  });
  afterAll(async () => {
    await tmp?.cleanup();
  });

  it('writes the same config text as ostree for --no-gpg-verify, --set and branches', async () => {
    const theirs = tmp.join('theirs');
    await ostreeOk(['init', `--repo=${theirs}`, '--mode=archive']);
    await ostreeOk(['remote', 'add', `--repo=${theirs}`, '--no-gpg-verify', '--set=contenturl=http://c.example/', '--set=tls-permissive=true', 'a', 'http://a.example/repo', 'main', 'other']);
    await ostreeOk(['remote', 'add', `--repo=${theirs}`, 'b', 'file:///srv/repo']);
    const ours = await Repo.init({ path: tmp.join('ours'), mode: 'archive' });
    await addRemote(ours, { name: 'a', url: 'http://a.example/repo', gpgVerify: false, branches: ['main', 'other'], set: [['contenturl', 'http://c.example/'], ['tls-permissive', 'true']] });
    await addRemote(ours, { name: 'b', url: 'file:///srv/repo' });
    expect(await fsp.readFile(ours.path + '/config', 'utf8')).toBe(await fsp.readFile(theirs + '/config', 'utf8'));
    // And ostree reads ours back.
    const shown = await ostreeOk(['remote', 'show-url', `--repo=${ours.path}`, 'a']);
    expect(shown.stdout.trim()).toBe('http://a.example/repo');
    const listed = await ostreeOk(['remote', 'list', `--repo=${ours.path}`]);
    expect(listed.stdout).toBe('a\nb\n');
  });
});
