// A repository's remote keyrings through the repository: imports and deletes take the
// repository's exclusive lock themselves, remote names cannot leave the repository, and the key
// sets `show`, `remote gpg-list-keys` and `admin status` verify with come from one call.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as openpgp from 'openpgp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deleteRemoteGpgKeyring, importRemoteGpgKeys, repoGpgKeyring, type KeyringRepo } from './index.js';

const tmp = mkdtempSync(join(tmpdir(), 'larch-repo-keyrings-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const T2020 = new Date('2020-01-01T00:00:00Z');
let alice: Uint8Array;
let bob: Uint8Array;
let aliceFp: string;

beforeAll(async () => {
  const gen = async (name: string) =>
    (await openpgp.generateKey({ type: 'ecc', curve: 'ed25519Legacy', userIDs: [{ name }], date: T2020, format: 'object' })).privateKey.toPublic();
  const a = await gen('Alice');
  const b = await gen('Bob');
  alice = a.write();
  bob = b.write();
  aliceFp = a.getFingerprint().toUpperCase();
});

/** A repository directory whose lock records what was done while it was held. */
class TestRepo implements KeyringRepo {
  readonly held: string[] = [];
  private holding: string | null = null;
  constructor(readonly path: string) {
    mkdirSync(path, { recursive: true });
  }
  async withLock<T>(kind: 'shared' | 'exclusive', fn: () => Promise<T>): Promise<T> {
    if (this.holding !== null) throw new Error('lock already held');
    this.holding = kind;
    try {
      return await fn();
    } finally {
      this.held.push(kind);
      this.holding = null;
    }
  }
  /** The lock kind held right now, for checks made inside the lock. */
  get current(): string | null {
    return this.holding;
  }
}

let n = 0;
const fresh = (): TestRepo => new TestRepo(join(tmp, `r${n++}`, 'repo'));

describe('importRemoteGpgKeys', () => {
  it('writes REPO/REMOTE.trustedkeys.gpg holding the exclusive lock, and counts only new keys', async () => {
    const repo = fresh();
    const r = await importRemoteGpgKeys(repo, 'origin', [{ bytes: alice, name: 'alice.gpg' }]);
    expect(r).toEqual({ imported: 1, path: join(repo.path, 'origin.trustedkeys.gpg') });
    expect(repo.held).toEqual(['exclusive']);
    const again = await importRemoteGpgKeys(repo, 'origin', [{ bytes: alice, name: 'alice.gpg' }, { bytes: bob, name: 'bob.gpg' }]);
    expect(again.imported).toBe(1);
    expect((await repoGpgKeyring(repo, { remote: 'origin', global: 'never' })).keys).toHaveLength(2);
  });

  it('takes only the requested key ids, and names one it cannot find', async () => {
    const repo = fresh();
    const both = [{ bytes: alice, name: 'a' }, { bytes: bob, name: 'b' }];
    expect((await importRemoteGpgKeys(repo, 'origin', both, [aliceFp.slice(-16)])).imported).toBe(1);
    await expect(importRemoteGpgKeys(repo, 'origin', both, ['0123456789ABCDEF'])).rejects.toMatchObject({ code: 'KEY_NOT_FOUND', message: 'Key 0123456789ABCDEF not found in the given keyrings' });
  });

  it.each(['../evil', 'a/b', '..', '.', ''])('refuses the remote name %j and writes nothing outside the repository', async (name) => {
    const repo = fresh();
    await expect(importRemoteGpgKeys(repo, name, [{ bytes: alice, name: 'a' }])).rejects.toMatchObject({ code: 'CONFIG_INVALID' });
    expect(existsSync(join(repo.path, '..', 'evil.trustedkeys.gpg'))).toBe(false);
  });

  it('refuses junk key bytes without touching an existing keyring', async () => {
    const repo = fresh();
    await importRemoteGpgKeys(repo, 'origin', [{ bytes: alice, name: 'a' }]);
    const before = readFileSync(join(repo.path, 'origin.trustedkeys.gpg'));
    await expect(importRemoteGpgKeys(repo, 'origin', [{ bytes: Buffer.from('not a key\n'), name: 'junk.gpg' }])).rejects.toMatchObject({ code: 'KEY_INVALID' });
    expect(readFileSync(join(repo.path, 'origin.trustedkeys.gpg'))).toEqual(before);
  });
});

describe('deleteRemoteGpgKeyring', () => {
  it('removes the keyring holding the exclusive lock; a second delete finds none', async () => {
    const repo = fresh();
    await importRemoteGpgKeys(repo, 'origin', [{ bytes: alice, name: 'a' }]);
    expect(await deleteRemoteGpgKeyring(repo, 'origin')).toBe(true);
    expect(existsSync(join(repo.path, 'origin.trustedkeys.gpg'))).toBe(false);
    expect(await deleteRemoteGpgKeyring(repo, 'origin')).toBe(false);
    expect(repo.held).toEqual(['exclusive', 'exclusive', 'exclusive']);
  });

  it('refuses a remote name with / or .., leaving the file it would name', async () => {
    const repo = fresh();
    const outside = join(repo.path, '..', 'victim.trustedkeys.gpg');
    writeFileSync(outside, 'keep me');
    await expect(deleteRemoteGpgKeyring(repo, '../victim')).rejects.toMatchObject({ code: 'CONFIG_INVALID', message: 'Invalid remote name ../victim' });
    await expect(deleteRemoteGpgKeyring(repo, '..')).rejects.toMatchObject({ code: 'CONFIG_INVALID' });
    expect(readFileSync(outside, 'utf8')).toBe('keep me');
  });
});

describe('repoGpgKeyring', () => {
  it('without a remote: every keyring of the repository (junk .gpg files skipped) plus the global directory', async () => {
    const repo = fresh();
    const global = join(tmp, `global${n++}`);
    mkdirSync(global);
    writeFileSync(join(global, 'bob.gpg'), bob);
    await importRemoteGpgKeys(repo, 'origin', [{ bytes: alice, name: 'a' }]);
    writeFileSync(join(repo.path, 'junk.gpg'), 'not a keyring');
    const ring = await repoGpgKeyring(repo, { globalDir: global });
    expect(ring.keys.map((k) => k.getUserIDs()[0]).sort()).toEqual(['Alice', 'Bob']);
    expect(repo.held).toEqual(['exclusive']); // reading takes no lock
  });

  it('with a remote: its keyring and gpgkeypath (as the config holds it); the global directory only as a fallback unless never', async () => {
    const repo = fresh();
    const global = join(tmp, `global${n++}`);
    mkdirSync(global);
    writeFileSync(join(global, 'bob.gpg'), bob);
    const extra = join(tmp, `extra${n++}.gpg`);
    writeFileSync(extra, alice);
    const none = { globalDir: global, remote: 'origin' };
    expect((await repoGpgKeyring(repo, none)).keys.map((k) => k.getUserIDs()[0])).toEqual(['Bob']);
    expect((await repoGpgKeyring(repo, { ...none, global: 'never' })).keys).toHaveLength(0);
    expect((await repoGpgKeyring(repo, { ...none, global: 'never', gpgkeypath: `${extra};${extra}` })).keys.map((k) => k.getUserIDs()[0])).toEqual(['Alice']);
    await importRemoteGpgKeys(repo, 'origin', [{ bytes: alice, name: 'a' }]);
    expect((await repoGpgKeyring(repo, none)).keys.map((k) => k.getUserIDs()[0])).toEqual(['Alice']);
  });

  it('refuses a hostile remote name, a gpgkeypath with both separators, and never without a remote', async () => {
    const repo = fresh();
    await expect(repoGpgKeyring(repo, { remote: '../x' })).rejects.toMatchObject({ code: 'CONFIG_INVALID' });
    await expect(repoGpgKeyring(repo, { remote: 'o', gpgkeypath: 'a;b,c' })).rejects.toMatchObject({ code: 'CONFIG_INVALID' });
    await expect(repoGpgKeyring(repo, { global: 'never' })).rejects.toMatchObject({ code: 'CONFIG_INVALID' });
  });
});
