/**
 * repo-sign.ts: commit and summary signatures written into, verified from and deleted from a
 * repository through structural signers. The unit cases sign with ed25519 from node:crypto; the
 * interop cases sign through `gpg` and let the real `ostree` verify what was written.
 */
import { spawnSync } from 'node:child_process';
import { generateKeyPairSync, sign as edSign, verify as edVerify, type KeyObject } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Variant, encode } from '@larch/gvariant';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LarchError } from './errors.js';
import { Repo } from './repo.js';
import { commitTree } from './repo-commit.js';
import {
  deleteCommitSignatures,
  deleteSummarySignatures,
  readSummaryFile,
  signCommit,
  signSummary,
  signaturesOf,
  verifyCommitSignatures,
  verifySummarySignatures,
  type RepoSigner,
  type RepoVerifier,
} from './repo-sign.js';
import { generateSummary } from './repo-summary.js';

const ED = 'ostree.sign.ed25519';
const GPG = 'ostree.gpgsigs';
const EPOCH = 1577836800n;

/** An ed25519 signer of the structural shape, optionally slow (to overlap two writers). */
function edSigner(key: KeyObject, opts: { delayMs?: number; fail?: boolean; recognisesItself?: boolean } = {}): RepoSigner {
  const s: RepoSigner = {
    metadataKey: ED,
    keyId: 'test-key',
    async sign(data) {
      if (opts.delayMs) await new Promise((r) => setTimeout(r, opts.delayMs));
      if (opts.fail) throw new Error('signer failed');
      return new Uint8Array(edSign(null, data, key));
    },
  };
  if (opts.recognisesItself) s.findOwnSignature = async (data, sigs) => sigs.findIndex((sig) => edVerify(null, data, key, sig));
  return s;
}

function edVerifier(pub: KeyObject): RepoVerifier<{ valid: boolean }> {
  return { metadataKey: ED, verify: async (data, sigs) => sigs.map((sig) => ({ valid: sig.length === 64 && edVerify(null, data, pub, sig) })) };
}

let dir = '';
let n = 0;
const a = generateKeyPairSync('ed25519');
const b = generateKeyPairSync('ed25519');

async function repoWithCommit(): Promise<{ repo: Repo; commit: string }> {
  const tree = join(dir, `tree${++n}`);
  mkdirSync(tree, { recursive: true });
  writeFileSync(join(tree, 'file'), `content ${n}\n`);
  const repo = await Repo.init({ path: join(dir, `repo${n}`), mode: 'archive' });
  const { commit } = await commitTree(repo, { tree, branch: 'main', subject: 's', timestamp: EPOCH });
  return { repo, commit };
}
const metaPath = (repo: Repo, c: string) => join(repo.path, 'objects', c.slice(0, 2), `${c.slice(2)}.commitmeta`);

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'larch-repo-sign-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('signCommit / verifyCommitSignatures / deleteCommitSignatures', () => {
  it('appends one signature per signer and keeps the other keys of the detached metadata', async () => {
    const { repo, commit } = await repoWithCommit();
    await repo.writeCommitMeta(commit, [['custom', new Variant('s', 'kept')]]);
    await signCommit(repo, commit, [edSigner(a.privateKey), edSigner(b.privateKey)]);
    const dict = (await repo.readCommitMeta(commit))!;
    expect(dict.map(([k]) => k)).toEqual(['custom', ED]);
    expect(signaturesOf(dict, ED)).toHaveLength(2);
    const r = await verifyCommitSignatures(repo, commit, [edVerifier(a.publicKey)]);
    expect(r.valid).toBe(true);
    expect(r.signatures.map((s) => s.valid)).toEqual([true, false]);
    expect(r.keys).toEqual([{ metadataKey: ED, found: 2, validCount: 1 }]);
  });

  it('a key that is not trusted verifies nothing', async () => {
    const { repo, commit } = await repoWithCommit();
    await signCommit(repo, commit, [edSigner(a.privateKey)]);
    const other = generateKeyPairSync('ed25519');
    expect((await verifyCommitSignatures(repo, commit, [edVerifier(other.publicKey)])).valid).toBe(false);
  });

  it('refuses a signer whose key already signed (EXISTS, nothing written), and appends when asked', async () => {
    const { repo, commit } = await repoWithCommit();
    const signer = edSigner(a.privateKey, { recognisesItself: true });
    await signCommit(repo, commit, [signer]);
    const before = readFileSync(metaPath(repo, commit));
    const err = await signCommit(repo, commit, [edSigner(b.privateKey), signer]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LarchError);
    expect((err as LarchError).code).toBe('EXISTS');
    expect((err as LarchError).message).toBe('Commit is already signed with GPG key test-key');
    expect(readFileSync(metaPath(repo, commit))).toEqual(before);
    await signCommit(repo, commit, [signer], { alreadySigned: 'append' });
    expect(signaturesOf((await repo.readCommitMeta(commit))!, ED)).toHaveLength(2);
  });

  it('a signer that fails leaves the detached metadata as it was (no partial set of signatures)', async () => {
    const { repo, commit } = await repoWithCommit();
    await signCommit(repo, commit, [edSigner(a.privateKey)]);
    const before = readFileSync(metaPath(repo, commit));
    await expect(signCommit(repo, commit, [edSigner(b.privateKey), edSigner(a.privateKey, { fail: true })])).rejects.toThrow('signer failed');
    expect(readFileSync(metaPath(repo, commit))).toEqual(before);
  });

  it('two writers signing at once both keep their signature (the exclusive lock serialises them)', async () => {
    const { repo, commit } = await repoWithCommit();
    const other = await Repo.open(repo.path);
    await Promise.all([signCommit(repo, commit, [edSigner(a.privateKey, { delayMs: 50 })]), signCommit(other, commit, [edSigner(b.privateKey, { delayMs: 50 })])]);
    const r = await verifyCommitSignatures(repo, commit, [edVerifier(a.publicKey), edVerifier(b.publicKey)]);
    expect(r.keys.map((k) => k.validCount)).toEqual([1, 1]);
  });

  it('deletes the picked signatures only; with nothing picked it writes nothing unless asked', async () => {
    const { repo, commit } = await repoWithCommit();
    expect(await deleteCommitSignatures(repo, commit, ED, () => [0])).toBe(0);
    expect(existsSync(metaPath(repo, commit))).toBe(false);
    expect(await deleteCommitSignatures(repo, commit, ED, () => [], { writeUnchanged: true })).toBe(0);
    expect(await repo.readCommitMeta(commit)).toEqual([]);
    await signCommit(repo, commit, [edSigner(a.privateKey), edSigner(b.privateKey)]);
    const verifier = edVerifier(a.publicKey);
    const removed = await deleteCommitSignatures(repo, commit, ED, async (sigs, data) => (await verifier.verify(data, sigs)).flatMap((r, i) => (r.valid ? [i] : [7, -1])));
    expect(removed).toBe(1);
    const r = await verifyCommitSignatures(repo, commit, [edVerifier(b.publicKey)]);
    expect(r.signatures.map((s) => s.valid)).toEqual([true]);
  });

  it('hostile detached metadata: a signature key of the wrong type is refused by name, too many signatures hit the limit', async () => {
    const { repo, commit } = await repoWithCommit();
    await repo.writeCommitMeta(commit, [[ED, new Variant('s', 'not signatures')]]);
    for (const run of [() => signCommit(repo, commit, [edSigner(a.privateKey)]), () => verifyCommitSignatures(repo, commit, [edVerifier(a.publicKey)])]) {
      const e = await run().catch((x: unknown) => x);
      expect(e).toMatchObject({ code: 'OBJECT_CORRUPTED', message: `Detached metadata key "${ED}" has type "s", expected 'aay'`, data: { key: ED, type: 's' } });
    }
    await repo.writeCommitMeta(commit, [[ED, new Variant('aay', Array.from({ length: 300 }, () => new Uint8Array(64)))]]);
    await expect(verifyCommitSignatures(repo, commit, [edVerifier(a.publicKey)])).rejects.toMatchObject({ code: 'LIMIT_EXCEEDED', data: { limit: 256, observed: 300 } });
  });
});

describe('signSummary / verifySummarySignatures / deleteSummarySignatures', () => {
  it('without a summary: OBJECT_MISSING in ostree\'s words', async () => {
    const { repo } = await repoWithCommit();
    const e = await signSummary(repo, [edSigner(a.privateKey)]).catch((x: unknown) => x);
    expect(e).toMatchObject({ code: 'OBJECT_MISSING', message: 'openat(summary): No such file or directory' });
    await expect(readSummaryFile(repo)).rejects.toMatchObject({ code: 'OBJECT_MISSING' });
  });

  it('signs fresh or appends, verifies, deletes; regenerating the summary drops the stale signature', async () => {
    const { repo } = await repoWithCommit();
    await generateSummary(repo);
    await signSummary(repo, [edSigner(a.privateKey)]);
    await signSummary(repo, [edSigner(b.privateKey)]);
    let r = await verifySummarySignatures(repo, [edVerifier(a.publicKey)]);
    expect(r.valid).toBe(false); // written fresh: only b's signature is left
    await signSummary(repo, [edSigner(a.privateKey)], { append: true });
    r = await verifySummarySignatures(repo, [edVerifier(a.publicKey), edVerifier(b.publicKey)]);
    expect(r.valid).toBe(true);
    expect(r.keys[0].found).toBe(2);
    const va = edVerifier(a.publicKey);
    expect(await deleteSummarySignatures(repo, ED, async (sigs, data) => (await va.verify(data, sigs)).flatMap((x, i) => (x.valid ? [i] : [])))).toBe(1);
    expect((await verifySummarySignatures(repo, [va])).valid).toBe(false);
    await generateSummary(repo);
    expect(existsSync(join(repo.path, 'summary.sig'))).toBe(false);
  });

  it('a garbage summary.sig is refused by name when appending, and left in place', async () => {
    const { repo } = await repoWithCommit();
    await generateSummary(repo);
    writeFileSync(join(repo.path, 'summary.sig'), Buffer.from([1, 2, 3]));
    await expect(signSummary(repo, [edSigner(a.privateKey)], { append: true })).rejects.toMatchObject({ code: 'OBJECT_CORRUPTED', message: expect.stringMatching(/^Invalid summary\.sig: /) });
    expect(readFileSync(join(repo.path, 'summary.sig'))).toEqual(Buffer.from([1, 2, 3]));
  });
});

// ---------------------------------------------------------------- interop with the real ostree

const haveTools = spawnSync('ostree', ['--version']).status === 0 && spawnSync('gpg', ['--version']).status === 0;
if (!haveTools && process.env.CI === 'true') throw new Error('ostree and gpg are required for interop tests');

/** A signer of the structural shape that runs `gpg --detach-sign`, as OSTree signs through gpgme. */
function gpgSigner(home: string, keyId: string): RepoSigner {
  return {
    metadataKey: GPG,
    keyId,
    async sign(data) {
      const r = spawnSync('gpg', ['--homedir', home, '--batch', '--no-tty', '--detach-sign', '--local-user', keyId], { input: data });
      if (r.status !== 0) throw new Error(`gpg failed: ${r.stderr.toString()}`);
      return new Uint8Array(r.stdout);
    },
  };
}

describe.skipIf(!haveTools)('signatures written by repo-sign verify with the real ostree', () => {
  let home = '';
  let keyId = '';
  let pubAsc = '';
  const ok = (cmd: string, ...args: string[]): string => {
    const r = spawnSync(cmd, args, { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr}`);
    return r.stdout;
  };
  beforeAll(() => {
    home = join(dir, 'gnupg');
    mkdirSync(home, { mode: 0o700 });
    ok('gpg', '--homedir', home, '--batch', '--passphrase', '', '--quick-gen-key', 'Larch Test <larch@example.com>', 'ed25519', 'sign', 'never');
    keyId = /^pub:[^:]*:[^:]*:[^:]*:([0-9A-F]{16}):/m.exec(ok('gpg', '--homedir', home, '--list-keys', '--with-colons'))![1];
    pubAsc = join(dir, 'pub.asc');
    writeFileSync(pubAsc, ok('gpg', '--homedir', home, '--armor', '--export', keyId));
  });
  afterAll(() => {
    spawnSync('gpgconf', ['--homedir', home, '--kill', 'gpg-agent']);
  });

  it('ostree show --gpg-verify-remote finds our commit signature good, and ostree pull with gpg-verify-summary accepts our summary.sig', async () => {
    const { repo, commit } = await repoWithCommit();
    await repo.writeCommitMeta(commit, [['custom', new Variant('s', 'kept')]]);
    await signCommit(repo, commit, [gpgSigner(home, keyId)]);
    await generateSummary(repo);
    await signSummary(repo, [gpgSigner(home, keyId)]);
    ok('ostree', 'remote', 'add', `--repo=${repo.path}`, `--gpg-import=${pubAsc}`, 'self', `file://${repo.path}`);
    const shown = ok('ostree', 'show', `--repo=${repo.path}`, '--gpg-verify-remote=self', commit);
    expect(shown).toMatch(/Found 1 signature/);
    expect(shown).toMatch(/Good signature from "Larch Test <larch@example.com>"/);

    const client = join(dir, `client${++n}`);
    ok('ostree', 'init', `--repo=${client}`, '--mode=archive');
    ok('ostree', 'remote', 'add', `--repo=${client}`, '--set=gpg-verify-summary=true', `--gpg-import=${pubAsc}`, 'origin', `file://${repo.path}`);
    const pulled = spawnSync('ostree', ['pull', `--repo=${client}`, 'origin', 'main'], { encoding: 'utf8' });
    expect(pulled.status, pulled.stderr).toBe(0);

    // A summary.sig over other bytes is refused by ostree: the check above is not vacuous.
    writeFileSync(join(repo.path, 'summary.sig'), encode('a{sv}', [[GPG, new Variant('aay', [new Uint8Array(readFileSync(join(repo.path, 'summary.sig')).subarray(0, 8))])]] as never));
    const client2 = join(dir, `client${++n}`);
    ok('ostree', 'init', `--repo=${client2}`, '--mode=archive');
    ok('ostree', 'remote', 'add', `--repo=${client2}`, '--set=gpg-verify-summary=true', `--gpg-import=${pubAsc}`, 'origin', `file://${repo.path}`);
    expect(spawnSync('ostree', ['pull', `--repo=${client2}`, 'origin', 'main'], { encoding: 'utf8' }).status).not.toBe(0);
  });
});
