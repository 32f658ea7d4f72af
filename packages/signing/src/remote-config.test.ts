import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as openpgp from 'openpgp';
import { afterAll, describe, expect, it } from 'vitest';
import { Ed25519Signer, OpenPgpSigner, generateEd25519Key, parseRemoteSigningConfig, policiesForRemote, signDetached, verifyDetached } from './index.js';

const tmp = mkdtempSync(join(tmpdir(), 'larch-signing-remote-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('parseRemoteSigningConfig', () => {
  it('applies OSTree defaults: gpg-verify on, summary verification off, sign-verify off', () => {
    expect(parseRemoteSigningConfig({ url: 'http://example.com/' })).toEqual({
      gpgVerify: true, gpgVerifySummary: false, gpgKeyPath: [], signVerify: [], signVerifySummary: [], ed25519Key: null, ed25519File: null,
    });
  });

  it('reads booleans, lists and sign types', () => {
    const c = parseRemoteSigningConfig({
      'gpg-verify': 'false', 'gpg-verify-summary': '1', gpgkeypath: '/a.gpg;/b.d;/c.gpg;',
      'sign-verify': 'ed25519;', 'sign-verify-summary': 'true', 'verification-ed25519-key': 'KEY=',
    });
    expect(c).toMatchObject({ gpgVerify: false, gpgVerifySummary: true, gpgKeyPath: ['/a.gpg', '/b.d', '/c.gpg'], signVerify: ['ed25519'], signVerifySummary: ['ed25519'], ed25519Key: 'KEY=' });
  });

  it('splits gpgkeypath on ; or , but refuses both, as OSTree (only when GPG verification reads it)', () => {
    expect(parseRemoteSigningConfig({ gpgkeypath: '/a.asc,/b.d/,' }).gpgKeyPath).toEqual(['/a.asc', '/b.d/']);
    expect(parseRemoteSigningConfig({ gpgkeypath: ',/a.asc' }).gpgKeyPath).toEqual(['', '/a.asc']);
    expect(parseRemoteSigningConfig({ gpgkeypath: '/k.asc' }).gpgKeyPath).toEqual(['/k.asc']);
    expect(() => parseRemoteSigningConfig({ gpgkeypath: '/a,/b;/c' })).toThrow(
      expect.objectContaining({ code: 'CONFIG_INVALID', message: 'key value list contains more than one separator' }),
    );
    expect(parseRemoteSigningConfig({ 'gpg-verify': 'false', gpgkeypath: '/a,/b;/c' }).gpgKeyPath).toEqual([]);
  });

  it('rejects non-boolean values and unknown sign types with CONFIG_INVALID', () => {
    expect(() => parseRemoteSigningConfig({ 'gpg-verify': 'yes' })).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID', message: expect.stringContaining("Key 'gpg-verify'") }));
    expect(() => parseRemoteSigningConfig({ 'sign-verify': 'spki' })).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID', message: expect.stringContaining("Unknown signature type 'spki'") }));
  });
});

describe('policiesForRemote', () => {
  it('builds gpg and ed25519 policies from the remote keyring and inline key', async () => {
    const repo = join(tmp, 'repo');
    mkdirSync(repo);
    const { privateKey, publicKey } = await openpgp.generateKey({ type: 'ecc', curve: 'ed25519Legacy', userIDs: [{ name: 'R' }], format: 'binary' });
    writeFileSync(join(repo, 'origin.trustedkeys.gpg'), publicKey);
    const ed = generateEd25519Key();
    const config = parseRemoteSigningConfig({ 'sign-verify': 'ed25519', 'verification-ed25519-key': ed.publicKey.base64 });
    const p = await policiesForRemote({ config, repoPath: repo, remote: 'origin', etcRemotesDir: join(tmp, 'none'), globalGpgDir: join(tmp, 'none') });
    expect(p.summary).toBeNull();
    expect(p.commit!.verifiers.map((v) => v.scheme)).toEqual(['gpg', 'ed25519']);
    const data = new TextEncoder().encode('commit');
    const gpgOnly = await signDetached({ data, signers: [await OpenPgpSigner.fromArmored(privateKey)] });
    expect((await verifyDetached({ data, dict: gpgOnly, policy: p.commit! })).valid).toBe(false);
    const both = await signDetached({ data, dict: gpgOnly, signers: [new Ed25519Signer(ed)] });
    expect((await verifyDetached({ data, dict: both, policy: p.commit! })).valid).toBe(true);
  });

  it('fails with KEY_NOT_FOUND when gpg-verify is on and the remote has no keyring', async () => {
    const config = parseRemoteSigningConfig({});
    await expect(policiesForRemote({ config, repoPath: join(tmp, 'empty'), remote: 'origin', etcRemotesDir: join(tmp, 'none'), globalGpgDir: join(tmp, 'none') })).rejects.toMatchObject({ code: 'KEY_NOT_FOUND' });
  });
});
