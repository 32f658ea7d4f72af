import { generateKeyPairSync, sign as edSign, verify as edVerify, type KeyObject } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Repo } from '@larch/core-store';
import { Variant } from '@larch/gvariant';
import { tmpDir, type TmpDir } from '@larch/test-fixtures';
import {
  applyOffline,
  decodeSuperblock,
  deltaRelDir,
  encodeSignedSuperblock,
  generateDelta,
  MAX_SUPERBLOCK_SIGNATURES,
  signSuperblock,
  verifyDelta,
  verifySuperblock,
  type SuperblockSigner,
  type SuperblockVerifier,
} from '../src/index.js';
import { makeVersions, type Versions } from './helpers.js';

/** ed25519 through node:crypto, shaped as the package's signer and verifier. */
function ed25519(): { signer: SuperblockSigner; verifier: SuperblockVerifier; publicKey: KeyObject } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return {
    publicKey,
    signer: { metadataKey: 'ostree.sign.ed25519', sign: async (d) => edSign(null, d, privateKey) },
    verifier: {
      metadataKey: 'ostree.sign.ed25519',
      verify: async (d, sigs) => sigs.map((s) => ({ valid: s.length === 64 && edVerify(null, d, publicKey, s), reason: 'no trusted key matches' })),
    },
  };
}

let tmp: TmpDir;
let v: Versions;

beforeAll(async () => {
  tmp = await tmpDir('larch-delta-sign-');
  v = await makeVersions(tmp.path);
});
afterAll(async () => {
  await tmp.cleanup();
});

async function withV1(name: string, verifyDeltas: boolean): Promise<Repo> {
  const repo = await Repo.init({ path: join(tmp.path, name), mode: 'bare-user' });
  await generateDelta(v.repo, { from: null, to: v.v1, minFallbackSize: 0 });
  await applyOffline(repo, join(v.repo.path, deltaRelDir(null, v.v1)));
  if (verifyDeltas) {
    const cfg = join(repo.path, 'config');
    await fsp.writeFile(cfg, (await fsp.readFile(cfg, 'utf8')).replace('[core]\n', '[core]\nsign-verify-deltas=true\n'));
  }
  return Repo.open(repo.path);
}

describe('signed superblocks', () => {
  it('generate signs; the signature covers the plain superblock; apply-offline enforces sign-verify-deltas', async () => {
    const a = ed25519();
    const b = ed25519();
    const stats = await generateDelta(v.repo, { from: v.v1, to: v.v2, minFallbackSize: 0, signers: [a.signer, b.signer] });
    const dir = join(v.repo.path, deltaRelDir(v.v1, v.v2));
    const file = await fsp.readFile(join(dir, 'superblock'));
    expect(file.subarray(0, 8).toString('latin1')).toBe('OSTSGNDT');
    const sb = decodeSuperblock(file);
    expect(sb.signed).toBe(true);
    // Both signatures under one key, in signer order.
    expect(sb.signatures.map(([k, s]) => [k, (s.value as Uint8Array[]).length])).toEqual([['ostree.sign.ed25519', 2]]);
    expect(stats.size).toBeGreaterThan(file.length);
    expect(await verifyDelta(v.repo, `${v.v1}-${v.v2}`, a.verifier)).toMatchObject({ valid: true, signatures: 2 });
    expect(await verifyDelta(v.repo, dir, b.verifier)).toMatchObject({ valid: true });
    expect((await verifyDelta(v.repo, dir, ed25519().verifier)).valid).toBe(false);

    // The signatures are over the plain superblock inside the wrapper; a damaged one does not hold.
    const sigs = sb.signatures[0][1].value as Uint8Array[];
    expect(edVerify(null, sb.signedData!, a.publicKey, sigs[0])).toBe(true);
    expect(Buffer.from(sb.signedData!).subarray(0, 8).toString('latin1')).not.toBe('OSTSGNDT');
    const damaged = sigs.map((s) => {
      const c = Buffer.from(s);
      c[0] ^= 1;
      return c;
    });
    const tampered = encodeSignedSuperblock(sb.signedData!, [['ostree.sign.ed25519', new Variant('aay', damaged)]]);
    await expect(verifySuperblock(decodeSuperblock(tampered), a.verifier)).resolves.toMatchObject({ valid: false });

    const free = await withV1('free', false);
    await applyOffline(free, dir);
    expect(await free.hasObject('commit', v.v2)).toBe(true);
    const strict = await withV1('strict', true);
    await expect(applyOffline(strict, dir)).rejects.toThrow(/^Key is mandatory to check delta signature$/);
    await expect(applyOffline(strict, dir, { verifier: ed25519().verifier })).rejects.toThrow(/^Delta signature verification failed$/);
    expect(await strict.hasObject('commit', v.v2)).toBe(false);
    await applyOffline(strict, dir, { verifier: b.verifier });
    expect(await strict.hasObject('commit', v.v2)).toBe(true);
  });

  it('an unsigned delta: verify refuses it, apply-offline applies it even under the policy (as ostree does)', async () => {
    await generateDelta(v.repo, { from: v.v1, to: v.v2, minFallbackSize: 0 });
    const dir = join(v.repo.path, deltaRelDir(v.v1, v.v2));
    await expect(verifyDelta(v.repo, dir, ed25519().verifier)).rejects.toThrow(/^no signatures in static-delta$/);
    const strict = await withV1('strict-unsigned', true);
    await applyOffline(strict, dir, { verifier: ed25519().verifier });
    expect(await strict.hasObject('commit', v.v2)).toBe(true);
  });

  it('refuses a wrapper without the verifier key, with too many signatures, or around a signed superblock', async () => {
    await generateDelta(v.repo, { from: v.v1, to: v.v2, minFallbackSize: 0 });
    const plain = await fsp.readFile(join(v.repo.path, deltaRelDir(v.v1, v.v2), 'superblock'));
    const dummy: SuperblockSigner = { metadataKey: 'ostree.sign.dummy', sign: async () => new TextEncoder().encode('k') };
    const signed = await signSuperblock(plain, [dummy]);
    await expect(verifySuperblock(decodeSuperblock(signed), ed25519().verifier)).rejects.toThrow(/^no signature for 'ostree.sign.ed25519' in static-delta superblock$/);
    await expect(signSuperblock(signed, [dummy])).rejects.toThrow(/already signed/);
    await expect(signSuperblock(plain, [])).rejects.toThrow(/No key/);
    const many = encodeSignedSuperblock(plain, [['ostree.sign.ed25519', new Variant('aay', Array.from({ length: MAX_SUPERBLOCK_SIGNATURES + 1 }, () => new Uint8Array(64)))]]);
    await expect(verifySuperblock(decodeSuperblock(many), ed25519().verifier)).rejects.toThrow(/more than 256/);
  });
});
