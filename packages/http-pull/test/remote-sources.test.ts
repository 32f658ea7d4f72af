/**
 * Where remotes live, as OSTree finds them: the repo's config, a remotes config dir
 * (remotes.d, one `NAME.conf` per added remote), and the parent repo (`core.parent`), whose
 * remotes are listed and whose keys a remote inherits. Also `force` (replace), custom-backend
 * and unconfigured remotes, and that files come out byte for byte as `ostree remote add` writes
 * them (real ostree, through `--sysroot`, which is how it is pointed at a remotes.d).
 */
import { existsSync, promises as fsp } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Repo } from '@larch/core-store';
import { interopDescribe, ostreeOk, requireOstree, tmpDir, type TmpDir } from '@larch/test-fixtures';
import { addRemote, deleteRemote, getRemote, listRemotes, remoteUrl } from '../src/index.js';

const describeInterop = interopDescribe(describe);

let tmp: TmpDir;
let n = 0;
beforeAll(async () => {
  tmp = await tmpDir('larch-remote-sources-');
});
afterAll(async () => {
  await tmp?.cleanup();
});

async function fresh(): Promise<Repo> {
  return Repo.init({ path: tmp.join(`r${n++}`), mode: 'archive' });
}

describe('remotes config dir', () => {
  it('adds a system repo remote as DIR/NAME.conf, lists, reads and deletes it there', async () => {
    const repo = await fresh();
    const dir = tmp.join(`d${n++}/etc/ostree/remotes.d`);
    const scope = { remotesConfigDir: dir, system: true };
    await addRemote(repo, { name: 'a', url: 'http://a.example/', branches: ['main'], gpgVerify: false, scope });
    expect(await fsp.readFile(`${dir}/a.conf`, 'utf8')).toBe('[remote "a"]\nurl=http://a.example/\nbranches=main;\ngpg-verify=false\n');
    expect((await fsp.stat(`${dir}/a.conf`)).mode & 0o777).toBe(0o644);
    expect((await Repo.open(repo.path)).config.groups()).toEqual(['core']);
    expect(listRemotes(repo, scope)).toEqual([{ name: 'a', url: 'http://a.example/' }]);
    expect(getRemote(repo, 'a', scope)).toMatchObject({ url: 'http://a.example/', branches: ['main'], gpgVerify: false });
    // Without the scope (not the system repo), the dir is not read.
    expect(listRemotes(repo)).toEqual([]);
    await expect(addRemote(repo, { name: 'a', url: 'http://b.example/', scope })).rejects.toMatchObject({
      code: 'EXISTS',
      message: `Remote configuration for "a" already exists: ${dir}/a.conf`,
    });
    expect(await deleteRemote(repo, 'a', { scope })).toBe(true);
    expect(existsSync(`${dir}/a.conf`)).toBe(false);
  });

  it('follows core.add-remotes-config-dir: true puts any repo\'s new remote in the dir, false keeps a system repo\'s in config', async () => {
    const repo = await fresh();
    const dir = tmp.join(`d${n++}`);
    await addRemote(repo, { name: 'u', url: 'http://u/', scope: { remotesConfigDir: dir, system: false } });
    repo.config.set('core', 'add-remotes-config-dir', 'true');
    await repo.saveConfig();
    await addRemote(repo, { name: 'v', url: 'http://v/', scope: { remotesConfigDir: dir, system: false } });
    expect(await fsp.readdir(dir)).toEqual(['v.conf']);
    repo.config.set('core', 'add-remotes-config-dir', 'false');
    await repo.saveConfig();
    await addRemote(repo, { name: 's', url: 'http://s/', scope: { remotesConfigDir: dir, system: true } });
    expect(await fsp.readdir(dir)).toEqual(['v.conf']);
    expect((await Repo.open(repo.path)).config.groups()).toEqual(['core', 'remote "u"', 'remote "s"']);
  });

  it('refuses a remote defined twice, naming it', async () => {
    const repo = await fresh();
    const dir = tmp.join(`d${n++}`);
    await fsp.mkdir(dir, { recursive: true });
    await fsp.writeFile(`${dir}/x.conf`, '[remote "dup"]\nurl=http://x/\n');
    await addRemote(repo, { name: 'dup', url: 'http://y/' });
    const scope = { remotesConfigDir: dir, system: true };
    expect(() => listRemotes(repo, scope)).toThrow('Multiple specifications found for remote "dup"');
    expect(() => getRemote(repo, 'dup', scope)).toThrow('Multiple specifications found for remote "dup"');
  });

  it('replaces a remote where it is with force: its whole file, or its config group moved to the end', async () => {
    const repo = await fresh();
    const dir = tmp.join(`d${n++}`);
    const scope = { remotesConfigDir: dir, system: true };
    await addRemote(repo, { name: 'f', url: 'http://f/', branches: ['b'], scope });
    await addRemote(repo, { name: 'f', url: 'http://f2/', force: true, scope });
    expect(await fsp.readFile(`${dir}/f.conf`, 'utf8')).toBe('[remote "f"]\nurl=http://f2/\n');
    await addRemote(repo, { name: 'c1', url: 'http://c1/', branches: ['x'] });
    await addRemote(repo, { name: 'c2', url: 'http://c2/' });
    await addRemote(repo, { name: 'c1', url: 'http://c1b/', force: true });
    expect(await fsp.readFile(`${repo.path}/config`, 'utf8')).toBe(
      '[core]\nrepo_version=1\nmode=archive-z2\n\n[remote "c2"]\nurl=http://c2/\n\n[remote "c1"]\nurl=http://c1b/\n',
    );
    await expect(addRemote(repo, { name: 'c1', url: 'http://c/', force: true, ifNotExists: true })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });
});

describe('parent repo remotes', () => {
  it('lists the parent remotes, inherits their keys, and never deletes them', async () => {
    const parent = await fresh();
    const child = await fresh();
    await addRemote(parent, { name: 'p', url: 'http://parent/', branches: ['main'], gpgVerify: false });
    child.config.set('core', 'parent', parent.path);
    await child.saveConfig();
    await addRemote(child, { name: 'own', url: 'http://own/' });
    expect(listRemotes(child)).toEqual([
      { name: 'own', url: 'http://own/' },
      { name: 'p', url: 'http://parent/' },
    ]);
    expect(remoteUrl(child, 'p')).toBe('http://parent/');
    await expect(deleteRemote(child, 'p')).rejects.toMatchObject({ code: 'REF_NOT_FOUND', message: 'Remote "p" not found' });
    // A remote of the same name in the child shadows the parent's keys one by one.
    await addRemote(child, { name: 'p', url: 'http://child/' });
    expect(getRemote(child, 'p')).toMatchObject({ url: 'http://child/', branches: ['main'], gpgVerify: false });
  });

  it('stops at a core.parent cycle instead of following it for ever', async () => {
    const a = await fresh();
    const b = await fresh();
    a.config.set('core', 'parent', b.path);
    await a.saveConfig();
    b.config.set('core', 'parent', a.path);
    await b.saveConfig();
    await addRemote(b, { name: 'fromb', url: 'http://b/' });
    expect(listRemotes(await Repo.open(a.path)).map((r) => r.name)).toEqual(['fromb']);
  });

  it('names a missing parent repo', async () => {
    const child = await fresh();
    child.config.set('core', 'parent', tmp.join('no-such-parent'));
    await child.saveConfig();
    expect(() => listRemotes(child)).toThrow(`While checking parent repository '${tmp.join('no-such-parent')}': opendir(`);
  });
});

describe('remotes that cannot be fetched', () => {
  it('adds a custom-backend remote with or without a URL; fetching it fails in ostree pull words', async () => {
    const repo = await fresh();
    await addRemote(repo, { name: 'cb', url: null, customBackend: 'ostree-rs-ext' });
    await addRemote(repo, { name: 'cb2', url: 'docker://quay.io/examplecorp/foo', customBackend: 'ostree-rs-ext' });
    expect(() => remoteUrl(repo, 'cb')).toThrow('No "url" option in remote "cb"');
    expect(remoteUrl(repo, 'cb2')).toBe('docker://quay.io/examplecorp/foo');
    expect(() => getRemote(repo, 'cb2')).toThrow("Cannot fetch via libostree - remote 'cb2' uses custom backend 'ostree-rs-ext'");
    await addRemote(repo, { name: 'un', url: 'http://x/', set: [['unconfigured-state', 'Subscribe first']] });
    expect(() => getRemote(repo, 'un')).toThrow('remote unconfigured-state: Subscribe first');
  });

  it('takes any URL with checkUrls: false, refusing it only when fetching; a key lookup needs no fetchable URL', async () => {
    const repo = await fresh();
    await expect(addRemote(repo, { name: 'rel', url: 'repo' })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await addRemote(repo, { name: 'rel', url: 'repo', checkUrls: false, gpgVerify: false });
    await addRemote(repo, { name: 'ml', url: 'metalink=http://m/metalink.xml', checkUrls: false });
    expect(repo.config.get('remote "ml"', 'metalink')).toBe('http://m/metalink.xml');
    expect(() => getRemote(repo, 'rel')).toThrow("Invalid URL 'repo'");
    expect(getRemote(repo, 'rel', undefined, { fetchable: false })).toMatchObject({ url: 'repo', gpgVerify: false });
    expect(getRemote(repo, 'ml', undefined, { fetchable: false })).toMatchObject({ url: '', options: { metalink: 'http://m/metalink.xml' } });
  });

  it('takes a collection ID as given, and refuses an invalid one only when fetching', async () => {
    const repo = await fresh();
    await addRemote(repo, { name: 'c', url: 'http://x/', collectionId: 'example-id' });
    expect(repo.config.get('remote "c"', 'collection-id')).toBe('example-id');
    expect(() => getRemote(repo, 'c')).toThrow(/collection/i);
  });
});

describeInterop('remote files equal ostree remote add (interop)', () => {
  beforeAll(() => requireOstree());

  it('writes remotes.d files and config as ostree does (--sysroot), option order and escaping included', async () => {
    const theirs = tmp.join(`sys${n++}`);
    await fsp.mkdir(theirs);
    await ostreeOk(['admin', 'init-fs', theirs]);
    await fsp.mkdir(`${theirs}/sysroot`);
    const args = [
      '--set=k1=a\tb\t',
      '--set=k2=\tlead',
      '--set=k3= lead',
      '--set=k4=x\ny',
      '--set=k5=back\\slash;semi',
      '--no-sign-verify',
      '--contenturl=http://c.example/',
      '--collection-id=org.example.Os',
      'os',
      'http://os.example/repo',
      'main',
      'other',
    ];
    await ostreeOk(['remote', 'add', `--sysroot=${theirs}`, ...args]);
    await ostreeOk(['remote', 'add', `--repo=${theirs}/ostree/repo`, 'plain', 'http://plain/']);
    await ostreeOk(['remote', 'add', `--repo=${theirs}/ostree/repo`, 'gone', 'http://gone/']);
    await ostreeOk(['remote', 'delete', `--repo=${theirs}/ostree/repo`, 'gone']);
    const ours = await fresh();
    const dir = tmp.join(`d${n++}`);
    await addRemote(ours, {
      name: 'os',
      url: 'http://os.example/repo',
      branches: ['main', 'other'],
      contentUrl: 'http://c.example/',
      set: [
        ['k1', 'a\tb\t'],
        ['k2', '\tlead'],
        ['k3', ' lead'],
        ['k4', 'x\ny'],
        ['k5', 'back\\slash;semi'],
      ],
      signVerify: false,
      collectionId: 'org.example.Os',
      scope: { remotesConfigDir: dir, system: true },
    });
    expect(await fsp.readFile(`${dir}/os.conf`, 'utf8')).toBe(await fsp.readFile(`${theirs}/etc/ostree/remotes.d/os.conf`, 'utf8'));
    await addRemote(ours, { name: 'plain', url: 'http://plain/' });
    await addRemote(ours, { name: 'gone', url: 'http://gone/' });
    await deleteRemote(ours, 'gone');
    const strip = (t: string): string => t.replace(/^mode=.*$/m, '').replace(/^repo_version=.*$/m, '');
    expect(strip(await fsp.readFile(`${ours.path}/config`, 'utf8'))).toBe(strip(await fsp.readFile(`${theirs}/ostree/repo/config`, 'utf8')));
  });
});
