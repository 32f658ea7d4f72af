import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ED25519_SIGNATURES_KEY } from './detached-metadata.js';
import { generateEd25519Key } from './sign-ed25519.js';
import { GpgProgramSigner } from './sign-gpg.js';
import { buildSigners, ed25519PublicKeyOf, gnupgHome, signerSpecsFromOptions, signersFromOptions } from './signer-options.js';

const dir = mkdtempSync(join(tmpdir(), 'larch-signer-options-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('signerSpecsFromOptions', () => {
  it('maps ostree\'s option shapes, GPG keys first', () => {
    expect(signerSpecsFromOptions({ sign: ['K1'], keysFile: 'F', gpgSign: ['A', 'B'], gpgHomedir: 'H', gpgPassphraseFile: 'P' })).toEqual([
      { type: 'gpg', keyId: 'A', homedir: 'H', passphraseFile: 'P' },
      { type: 'gpg', keyId: 'B', homedir: 'H', passphraseFile: 'P' },
      { type: 'ed25519', key: 'K1' },
      { type: 'ed25519-keys-file', file: 'F' },
    ]);
    // With a secret key file, the KEYIDs pick its (sub)keys; without any, the file's key signs.
    expect(signerSpecsFromOptions({ gpgSecretKeyFile: 'S' })).toEqual([{ type: 'gpg-secret-key-file', file: 'S' }]);
    expect(signerSpecsFromOptions({ gpgSecretKeyFile: 'S', gpgSign: ['A'] })).toEqual([{ type: 'gpg-secret-key-file', file: 'S', keyId: 'A' }]);
  });

  it('refuses a sign type it was not given, and offers dummy only where allowed', () => {
    expect(() => signerSpecsFromOptions({ signType: 'dummy', sign: ['x'] })).toThrow("Unsupported signature type 'dummy'; the supported type is ed25519");
    expect(signerSpecsFromOptions({ signType: 'dummy', sign: ['x'], keysFile: 'ignored' }, { signTypes: ['ed25519', 'dummy'] })).toEqual([{ type: 'dummy', key: 'x' }]);
  });
});

describe('buildSigners', () => {
  it('builds ed25519 signers from inline keys and key files, in order', async () => {
    const k1 = generateEd25519Key();
    const k2 = generateEd25519Key();
    const file = join(dir, 'keys');
    writeFileSync(file, `${Buffer.from(k2.bytes).toString('base64')}\n`);
    const signers = await signersFromOptions({ sign: [Buffer.from(k1.bytes).toString('base64')], keysFile: file });
    expect(signers.map((s) => s.metadataKey)).toEqual([ED25519_SIGNATURES_KEY, ED25519_SIGNATURES_KEY]);
    expect(signers.map((s) => s.keyId)).toEqual([k1.publicKey.base64, k2.publicKey.base64]);
  });

  it('names the bad key (abbreviated) and the unreadable file', async () => {
    await expect(buildSigners([{ type: 'ed25519', key: 'not-a-valid-base64-key' }])).rejects.toMatchObject({ code: 'KEY_INVALID', message: "Invalid KEY 'not-a-…'" });
    const missing = join(dir, 'no-such-passphrase');
    await expect(buildSigners([{ type: 'gpg', keyId: 'A', homedir: dir, passphraseFile: missing }])).rejects.toMatchObject({
      code: 'IO_ERROR',
      message: expect.stringContaining(`Reading passphrase file ${missing}: ENOENT`),
    });
    expect(() => ed25519PublicKeyOf('zz')).toThrow("Invalid KEY 'zz'");
  });

  it('a gpg spec without a home uses $GNUPGHOME, as gpg does', async () => {
    const [s] = await buildSigners([{ type: 'gpg', keyId: 'A' }]);
    expect(s).toBeInstanceOf(GpgProgramSigner);
    expect((s as GpgProgramSigner).homedir).toBe(gnupgHome());
    expect(gnupgHome(undefined, { GNUPGHOME: '/x' })).toBe('/x');
  });
});
