/**
 * refreshSummary: delta indexes, then the summary, then its signature, as `ostree summary -u`.
 */
import { generateKeyPairSync, sign as edSign, verify as edVerify } from 'node:crypto';
import { existsSync, promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readSummary, verifySummarySignatures, type RepoSigner } from '@larch/core-store';
import { Variant } from '@larch/gvariant';
import { tmpDir, type TmpDir } from '@larch/test-fixtures';
import { generateDelta, hasDelta, listDeltaIndexes, refreshSummary } from '../src/index.js';
import { makeVersions, type Versions } from './helpers.js';

let tmp: TmpDir;
let v: Versions;

beforeAll(async () => {
  tmp = await tmpDir('larch-summary-refresh-');
  v = await makeVersions(tmp.path, 'archive', { bigSize: 50_000 });
});
afterAll(async () => {
  await tmp.cleanup();
});

describe('refreshSummary', () => {
  it('indexes a delta made without its index, lists it in the new summary and signs the new bytes', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    const signer: RepoSigner = { metadataKey: 'ostree.sign.ed25519', keyId: 'k', sign: async (d) => new Uint8Array(edSign(null, d, privateKey)) };
    await generateDelta(v.repo, { from: v.v1, to: v.v2, updateIndex: false });
    expect(await hasDelta(v.repo, v.v1, v.v2)).toBe(true);
    expect(await hasDelta(v.repo, null, v.v2)).toBe(false);
    expect(await listDeltaIndexes(v.repo)).toEqual([]);

    const bytes = await refreshSummary(v.repo, { signers: [signer], additionalMetadata: [['org.example.extra', new Variant('s', 'x')]], now: 1_700_000_000n });

    expect(await listDeltaIndexes(v.repo)).toEqual([v.v2]);
    expect(Buffer.from(await fsp.readFile(join(v.repo.path, 'summary')))).toEqual(Buffer.from(bytes));
    const summary = readSummary(bytes);
    const deltas = summary.metadata.find(([k]) => k === 'ostree.static-deltas')?.[1];
    expect((deltas?.value as Array<[string, Variant]>).map(([n]) => n)).toEqual([`${v.v1}-${v.v2}`]);
    expect(summary.metadata.find(([k]) => k === 'org.example.extra')?.[1].value).toBe('x');
    const verifier = { metadataKey: 'ostree.sign.ed25519', verify: async (d: Uint8Array, sigs: readonly Uint8Array[]) => sigs.map((s) => ({ valid: edVerify(null, d, publicKey, s) })) };
    expect((await verifySummarySignatures(v.repo, [verifier])).valid).toBe(true);

    // Without signers the refreshed summary is unsigned: the old summary.sig does not survive.
    await refreshSummary(v.repo);
    expect(existsSync(join(v.repo.path, 'summary.sig'))).toBe(false);
  });
});
