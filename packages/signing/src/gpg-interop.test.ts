// Interop with the real GnuPG (tag: interop). Keys are generated in a throwaway GNUPGHOME.
// In CI (CI=true) a missing gpg fails these tests; locally they are skipped.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as openpgp from 'openpgp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  GpgProgramSigner,
  GpgVerifier,
  OpenPgpSigner,
  loadGpgHomedirKeyring,
  loadGpgKeyring,
  parseGpgKeyring,
} from './index.js';

const haveGpg = spawnSync('gpg', ['--version'], { encoding: 'utf8' }).status === 0;
const inCI = process.env.CI === 'true';
const interop = haveGpg || inCI ? it : it.skip;

let home = '';
let keyId = '';
const data = new TextEncoder().encode('commit object bytes\0with a NUL and \xff high bytes');

function gpg(args: string[], input?: Uint8Array): { status: number | null; stdout: Buffer; stderr: string } {
  if (!haveGpg) throw new Error('gpg is required for interop tests (CI=true) but was not found in PATH');
  const r = spawnSync('gpg', ['--homedir', home, '--batch', '--no-tty', ...args], { input });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr.toString() };
}

beforeAll(() => {
  home = mkdtempSync(join(tmpdir(), 'larch-gnupg-'));
  if (!haveGpg) return;
  const g = gpg(['--passphrase', '', '--quick-gen-key', 'Test <t@example.com>', 'ed25519', 'sign', 'never']);
  if (g.status !== 0) throw new Error(g.stderr);
  const list = gpg(['--list-keys', '--with-colons']).stdout.toString();
  keyId = /^pub:[^:]*:[^:]*:[^:]*:([0-9A-F]{16}):/m.exec(list)![1];
});

afterAll(() => {
  if (haveGpg) spawnSync('gpgconf', ['--homedir', home, '--kill', 'gpg-agent']);
  rmSync(home, { recursive: true, force: true });
});

describe('gpg interop', () => {
  interop('GpgProgramSigner output verifies with OpenPGP.js against the exported key and the homedir keybox', async () => {
    const sig = await new GpgProgramSigner({ homedir: home, keyId }).sign(data);
    expect(sig[0] & 0x80).toBe(0x80); // binary packet, not armor
    const exported = join(home, 'export.gpg');
    writeFileSync(exported, gpg(['--export', keyId]).stdout);
    for (const ring of [await loadGpgKeyring(exported), await loadGpgHomedirKeyring(home)]) {
      const [r] = await new GpgVerifier(ring).verify(data, [sig]);
      expect(r).toMatchObject({ valid: true, keyId, revoked: false, expired: false });
      const [bad] = await new GpgVerifier(ring).verify(data.subarray(1), [sig]);
      expect(bad.valid).toBe(false);
    }
  });

  interop('OpenPgpSigner signatures are accepted by gpg --verify, and tampered data is not', async () => {
    const armoredSecret = gpg(['--pinentry-mode', 'loopback', '--passphrase', '', '--export-secret-keys', '--armor', keyId]).stdout.toString();
    const signer = await OpenPgpSigner.fromArmored(armoredSecret);
    expect(signer.keyId).toBe(keyId);
    const sig = await signer.sign(data);
    const sigPath = join(home, 'data.sig');
    const dataPath = join(home, 'data');
    writeFileSync(sigPath, sig);
    writeFileSync(dataPath, data);
    const ok = gpg(['--verify', sigPath, dataPath]);
    expect(ok.status, ok.stderr).toBe(0);
    expect(ok.stderr).toMatch(/Good signature/);
    writeFileSync(dataPath, Buffer.concat([Buffer.from(data), Buffer.from('x')]));
    expect(gpg(['--verify', sigPath, dataPath]).status).not.toBe(0);
  });

  interop('OpenPGP.js-generated v4 keys (legacy EdDSA and RSA) sign for gpg, after import', async () => {
    const ecc = await openpgp.generateKey({ type: 'ecc', curve: 'ed25519Legacy', userIDs: [{ name: 'JS', email: 'js@example.com' }], format: 'armored' });
    const rsa = await openpgp.generateKey({ type: 'rsa', rsaBits: 2048, userIDs: [{ name: 'JS RSA', email: 'rsa@example.com' }], format: 'armored' });
    for (const [name, k] of [['ecc', ecc], ['rsa', rsa]] as const) {
      const imp = gpg(['--import'], Buffer.from(k.publicKey));
      expect(imp.status, imp.stderr).toBe(0);
      const sig = await (await OpenPgpSigner.fromArmored(k.privateKey)).sign(data);
      writeFileSync(join(home, `${name}.sig`), sig);
      writeFileSync(join(home, `${name}.data`), data);
      const v = gpg(['--verify', join(home, `${name}.sig`), join(home, `${name}.data`)]);
      expect(v.status, v.stderr).toBe(0);
      expect(readFileSync(join(home, `${name}.sig`)).length).toBe(sig.length);
    }
    // and the whole homedir keyring (three keys now) still parses
    expect((await loadGpgHomedirKeyring(home)).keys.length).toBeGreaterThanOrEqual(3);
  });

  interop('GpgProgramSigner reports GPG_FAILED for an unknown key with gpg stderr', async () => {
    await expect(new GpgProgramSigner({ homedir: home, keyId: 'DEADBEEFDEADBEEF' }).sign(data)).rejects.toMatchObject({ code: 'GPG_FAILED' });
    await expect(new GpgProgramSigner({ homedir: home, keyId, gpgPath: '/nonexistent/gpg' }).sign(data)).rejects.toMatchObject({ code: 'GPG_FAILED' });
    expect(() => new GpgProgramSigner({ homedir: home, keyId: '--armor' })).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID' }));
  });

  interop('GpgProgramSigner passes a passphrase through a pipe for a protected key', async () => {
    const g = gpg(['--pinentry-mode', 'loopback', '--passphrase', 'hunter2', '--quick-gen-key', 'Prot <p@example.com>', 'ed25519', 'sign', 'never']);
    expect(g.status, g.stderr).toBe(0);
    const list = gpg(['--list-keys', '--with-colons', 'p@example.com']).stdout.toString();
    const prot = /^pub:[^:]*:[^:]*:[^:]*:([0-9A-F]{16}):/m.exec(list)![1];
    // Drop the passphrase the agent cached during key generation, so signing really needs it.
    spawnSync('gpgconf', ['--homedir', home, '--reload', 'gpg-agent']);
    await expect(new GpgProgramSigner({ homedir: home, keyId: prot, passphrase: 'wrong' }).sign(data)).rejects.toMatchObject({ code: 'GPG_FAILED' });
    const sig = await new GpgProgramSigner({ homedir: home, keyId: prot, passphrase: 'hunter2' }).sign(data);
    const ring = await parseGpgKeyring(new Uint8Array(gpg(['--export', prot]).stdout));
    const [r] = await new GpgVerifier(ring).verify(data, [sig]);
    expect(r).toMatchObject({ valid: true, keyId: prot });
  });
});
