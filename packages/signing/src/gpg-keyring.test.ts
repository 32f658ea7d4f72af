import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as openpgp from 'openpgp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadGpgKeyring, loadRemoteGpgKeyring, parseGpgKeyring } from './index.js';

const tmp = mkdtempSync(join(tmpdir(), 'larch-signing-keyring-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

let keys: Array<{ armored: string; binary: Uint8Array; fpr: string }> = [];
beforeAll(async () => {
  keys = await Promise.all(
    ['a', 'b', 'c'].map(async (n) => {
      const { publicKey } = await openpgp.generateKey({ type: 'ecc', curve: 'ed25519Legacy', userIDs: [{ name: n }], format: 'object' });
      return { armored: publicKey.armor(), binary: publicKey.write(), fpr: publicKey.getFingerprint().toUpperCase() };
    }),
  );
});

/** A minimal GnuPG keybox: header blob (type 1, "KBXf") + one OpenPGP blob per key. */
function keybox(blocks: Uint8Array[]): Uint8Array {
  const parts: Buffer[] = [];
  const header = Buffer.alloc(32);
  header.writeUInt32BE(32, 0);
  header[4] = 1;
  header[5] = 1;
  header.write('KBXf', 8, 'latin1');
  parts.push(header);
  for (const b of blocks) {
    const head = Buffer.alloc(20);
    head.writeUInt32BE(20 + b.length, 0);
    head[4] = 2;
    head[5] = 1;
    head.writeUInt32BE(20, 8);
    head.writeUInt32BE(b.length, 12);
    parts.push(head, Buffer.from(b));
  }
  return new Uint8Array(Buffer.concat(parts));
}

describe('keyrings', () => {
  it('parses binary keyrings (concatenated keys), armored files with several blocks, and keyboxes', async () => {
    const bin = new Uint8Array(Buffer.concat([Buffer.from(keys[0].binary), Buffer.from(keys[1].binary)]));
    expect((await parseGpgKeyring(bin)).fingerprints()).toEqual([keys[0].fpr, keys[1].fpr]);
    const armored = Buffer.from(`comment line\n${keys[1].armored}\n${keys[2].armored}`);
    expect((await parseGpgKeyring(armored)).fingerprints()).toEqual([keys[1].fpr, keys[2].fpr]);
    expect((await parseGpgKeyring(keybox([keys[2].binary, keys[0].binary]))).fingerprints()).toEqual([keys[2].fpr, keys[0].fpr]);
  });

  it('rejects garbage, empty input and corrupted keyboxes with KEY_INVALID', async () => {
    await expect(parseGpgKeyring(Uint8Array.from([1, 2, 3, 4]))).rejects.toMatchObject({ code: 'KEY_INVALID' });
    await expect(parseGpgKeyring(new Uint8Array(0))).rejects.toMatchObject({ code: 'KEY_INVALID' });
    const kbx = keybox([keys[0].binary]);
    const lying = Buffer.from(kbx);
    lying.writeUInt32BE(0xffff, 32 + 12); // keyblock length past the blob
    await expect(parseGpgKeyring(lying)).rejects.toMatchObject({ code: 'KEY_INVALID' });
    await expect(parseGpgKeyring(kbx.subarray(0, kbx.length - 5))).rejects.toMatchObject({ code: 'KEY_INVALID' });
  });

  it('reads a keyring directory: *.gpg files only, without trustdb.gpg', async () => {
    const d = join(tmp, 'trusted.gpg.d');
    mkdirSync(d);
    writeFileSync(join(d, 'b.gpg'), keys[1].binary);
    writeFileSync(join(d, 'a.gpg'), keys[0].armored);
    writeFileSync(join(d, 'c.asc'), keys[2].armored);
    writeFileSync(join(d, 'trustdb.gpg'), 'not a keyring');
    expect((await loadGpgKeyring(d)).fingerprints()).toEqual([keys[0].fpr, keys[1].fpr]);
    await expect(loadGpgKeyring(join(tmp, 'missing'))).rejects.toMatchObject({ code: 'KEY_NOT_FOUND' });
  });

  it('finds a remote keyring in OSTree order, adds gpgkeypath, and uses the global dir only without an own keyring', async () => {
    const repo = join(tmp, 'repo');
    const etc = join(tmp, 'remotes.d');
    const global = join(tmp, 'global.d');
    mkdirSync(repo);
    mkdirSync(etc);
    mkdirSync(global);
    writeFileSync(join(global, 'g.gpg'), keys[2].binary);
    writeFileSync(join(etc, 'origin.trustedkeys.gpg'), keys[1].binary);
    const extra = join(tmp, 'extra.gpg');
    writeFileSync(extra, keys[0].binary);
    const base = { repoPath: repo, remote: 'origin', etcRemotesDir: etc, globalDir: global };
    expect((await loadRemoteGpgKeyring(base)).fingerprints()).toEqual([keys[1].fpr]);
    writeFileSync(join(repo, 'origin.trustedkeys.gpg'), keys[0].binary);
    expect((await loadRemoteGpgKeyring({ ...base, gpgkeypath: [extra] })).fingerprints()).toEqual([keys[0].fpr]);
    // The global keys come before the gpgkeypath ones, as OSTree hands them to gpg.
    expect((await loadRemoteGpgKeyring({ ...base, remote: 'other', gpgkeypath: [extra] })).fingerprints()).toEqual([keys[2].fpr, keys[0].fpr]);
    await expect(loadRemoteGpgKeyring({ ...base, remote: '../x' })).rejects.toMatchObject({ code: 'CONFIG_INVALID' });
  });
});
