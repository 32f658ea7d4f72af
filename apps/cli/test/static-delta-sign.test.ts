/**
 * Signed static deltas: `static-delta generate --sign`, `verify`, `apply-offline KEY…` with the repo
 * policy `[core] sign-verify-deltas`, and `indexes`, side by side with the real ostree. Debian's
 * ostree has no ed25519 engine, so ed25519 deltas are checked by ostree for format (show, apply
 * without keys, the key-mandatory policy) and signatures are exchanged both ways with ostree's
 * test-only `dummy` engine.
 */
import { generateKeyPairSync } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOneErrorLine, larch, ok, ostree, RUN_INTEROP, requireOstree, scratch, twoCommitRepo } from './helpers.js';

let dir: string;
let cleanup: () => Promise<void>;
let repo: string;
let c1: string;
let c2: string;

/** A fresh ed25519 key pair in ostree's base64 forms (secret: seed ‖ public). */
function keyPair(): { secret: string; pub: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const seed = privateKey.export({ format: 'der', type: 'pkcs8' }).subarray(-32);
  const pub = publicKey.export({ format: 'der', type: 'spki' }).subarray(-32);
  return { secret: Buffer.concat([seed, pub]).toString('base64'), pub: pub.toString('base64') };
}

const DUMMY = { OSTREE_DUMMY_SIGN_ENABLED: '1' };

beforeAll(async () => {
  ({ dir, cleanup } = await scratch('larch-cli-delta-sign-'));
  ({ repo, c1, c2 } = await twoCommitRepo(dir));
});
afterAll(async () => {
  await cleanup();
});

/** A bare-user repo holding c1 (the FROM of the c1→c2 delta), optionally demanding signed-delta checks. */
function target(name: string, verifyDeltas: boolean): string {
  const dst = join(dir, name);
  ok(larch(['init', `--repo=${dst}`, '--mode=bare-user']));
  ok(larch(['pull-local', `--repo=${dst}`, repo, c1]));
  if (verifyDeltas) ok(larch(['config', `--repo=${dst}`, 'set', 'core.sign-verify-deltas', 'true']));
  return dst;
}

describe('larch static-delta signatures', () => {
  it('signs with ed25519; verify and apply-offline enforce the key and the repo policy', async () => {
    const { deltaRelDir } = await import('@larch/delta');
    const k = keyPair();
    const other = keyPair();
    ok(larch(['static-delta', 'generate', `--repo=${repo}`, `--from=${c1}`, `--to=${c2}`, `--sign=${k.secret}`]));
    const name = `${c1}-${c2}`;
    expect(ok(larch(['static-delta', 'show', `--repo=${repo}`, name]))).toContain('\nSigned: yes\n');
    expect(ok(larch(['static-delta', 'verify', `--repo=${repo}`, name, k.pub]))).toBe('Verification OK\n');
    // A secret key is reduced to its public half; a keys file works as the KEY arguments do.
    expect(ok(larch(['static-delta', 'verify', `--repo=${repo}`, join(repo, deltaRelDir(c1, c2), 'superblock'), k.secret]))).toBe('Verification OK\n');
    const keysFile = join(dir, 'trusted.ed25519');
    await fsp.writeFile(keysFile, `${other.pub}\n${k.pub}\n`);
    expect(ok(larch(['static-delta', 'verify', `--repo=${repo}`, `--keys-file=${keysFile}`, name]))).toBe('Verification OK\n');
    const bad = larch(['static-delta', 'verify', `--repo=${repo}`, name, other.pub]);
    expect(bad.stdout).toBe('Verification fails\n');
    expect(expectOneErrorLine(bad)).toBe(`ed25519: Signature couldn't be verified with: key '${Buffer.from(other.pub, 'base64').toString('hex')}'`);

    const delta = join(repo, deltaRelDir(c1, c2));
    // Without the policy a signed delta applies without a key; with it, only with the right key.
    ok(larch(['static-delta', 'apply-offline', `--repo=${target('free', false)}`, delta]));
    const strict = target('strict', true);
    expect(expectOneErrorLine(larch(['static-delta', 'apply-offline', `--repo=${strict}`, delta]))).toBe('Key is mandatory to check delta signature');
    expect(expectOneErrorLine(larch(['static-delta', 'apply-offline', `--repo=${strict}`, delta, other.pub]))).toBe('Delta signature verification failed');
    expect(larch(['show', `--repo=${strict}`, c2]).code).not.toBe(0); // nothing was written
    ok(larch(['static-delta', 'apply-offline', `--repo=${strict}`, delta, k.pub]));
    expect(ok(larch(['fsck', `--repo=${strict}`]))).toMatch(/no errors/i);
    ok(larch(['static-delta', 'delete', `--repo=${repo}`, name]));
  });

  it('refuses an unknown signature type and an unsigned delta with one line', () => {
    ok(larch(['static-delta', 'generate', `--repo=${repo}`, `--from=${c1}`, `--to=${c2}`]));
    const unsigned = larch(['static-delta', 'verify', `--repo=${repo}`, `${c1}-${c2}`, keyPair().pub]);
    expect(unsigned.stdout).toBe('Verification fails\n');
    expect(expectOneErrorLine(unsigned)).toBe('no signatures in static-delta');
    expect(expectOneErrorLine(larch(['static-delta', 'generate', `--repo=${repo}`, `--to=${c2}`, '--sign=x', '--sign-type=rsa']))).toBe('Signing type rsa is not supported');
    expect(expectOneErrorLine(larch(['static-delta', 'apply-offline', `--repo=${repo}`, '--sign-type=rsa', join(dir, 'nowhere')]))).toBe('Signing type rsa is not supported');
    expect(expectOneErrorLine(larch(['static-delta', 'generate', `--repo=${repo}`, `--to=${c2}`, '--sign=abc', '--sign-type=dummy']))).toBe('dummy signature type is only for ostree testing');
    ok(larch(['static-delta', 'delete', `--repo=${repo}`, `${c1}-${c2}`]));
  });
});

describe.runIf(RUN_INTEROP)('signed static deltas with the real ostree', () => {
  beforeAll(() => requireOstree());

  it('ostree shows and applies a larch ed25519-signed delta, and enforces sign-verify-deltas on it', async () => {
    const { deltaRelDir } = await import('@larch/delta');
    ok(larch(['static-delta', 'generate', `--repo=${repo}`, `--from=${c1}`, `--to=${c2}`, `--sign=${keyPair().secret}`]));
    expect(ok(ostree(['static-delta', 'show', `--repo=${repo}`, `${c1}-${c2}`]))).toContain('\nSigned: yes\n');
    const dst = join(dir, 'ostree-ed');
    ok(ostree(['init', `--repo=${dst}`, '--mode=bare-user']));
    ok(ostree(['pull-local', `--repo=${dst}`, repo, c1]));
    ok(ostree(['config', `--repo=${dst}`, 'set', 'core.sign-verify-deltas', 'true']));
    const refused = ostree(['static-delta', 'apply-offline', `--repo=${dst}`, join(repo, deltaRelDir(c1, c2))]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain('Key is mandatory to check delta signature');
    ok(ostree(['config', `--repo=${dst}`, 'set', 'core.sign-verify-deltas', 'false']));
    ok(ostree(['static-delta', 'apply-offline', `--repo=${dst}`, join(repo, deltaRelDir(c1, c2))]));
    expect(ok(ostree(['fsck', `--repo=${dst}`]))).toMatch(/no errors/);
    ok(larch(['static-delta', 'delete', `--repo=${repo}`, `${c1}-${c2}`]));
  });

  it('dummy signatures both ways: ostree verifies larch deltas, larch verifies and applies ostree deltas; the wrappers are byte-identical', async () => {
    const { deltaRelDir, decodeSuperblock, encodeSignedSuperblock } = await import('@larch/delta');
    const key = 'larch-test-key';
    // Larch signs, ostree verifies.
    ok(larch(['static-delta', 'generate', `--repo=${repo}`, `--from=${c1}`, `--to=${c2}`, `--sign=${key}`, '--sign-type=dummy'], { env: DUMMY }));
    expect(ok(ostree(['static-delta', 'verify', `--repo=${repo}`, '--sign-type=dummy', `${c1}-${c2}`, key], { env: DUMMY }))).toBe('Verification OK\n');
    expect(ostree(['static-delta', 'verify', `--repo=${repo}`, '--sign-type=dummy', `${c1}-${c2}`, 'another'], { env: DUMMY }).stdout).toBe('Verification fails\n');

    // ostree signs, larch verifies and applies under the policy.
    const src = join(dir, 'ostree-src');
    ok(ostree(['init', `--repo=${src}`, '--mode=archive']));
    ok(ostree(['pull-local', `--repo=${src}`, repo, c1, c2]));
    ok(ostree(['static-delta', 'generate', `--repo=${src}`, `--from=${c1}`, `--to=${c2}`, `--sign=${key}`, '--sign-type=dummy'], { env: DUMMY }));
    expect(ok(larch(['static-delta', 'verify', `--repo=${src}`, '--sign-type=dummy', `${c1}-${c2}`, key], { env: DUMMY }))).toBe('Verification OK\n');
    const wrong = larch(['static-delta', 'verify', `--repo=${src}`, '--sign-type=dummy', `${c1}-${c2}`, 'another'], { env: DUMMY });
    expect(wrong.stdout).toBe('Verification fails\n');
    expect(expectOneErrorLine(wrong)).toBe('signature: dummy: incorrect signatures found: 1');
    const strict = target('strict-dummy', true);
    const delta = join(src, deltaRelDir(c1, c2));
    expect(expectOneErrorLine(larch(['static-delta', 'apply-offline', `--repo=${strict}`, '--sign-type=dummy', delta, 'another'], { env: DUMMY }))).toBe('Delta signature verification failed');
    ok(larch(['static-delta', 'apply-offline', `--repo=${strict}`, '--sign-type=dummy', delta, key], { env: DUMMY }));
    expect(ok(ostree(['fsck', `--repo=${strict}`]))).toMatch(/no errors/);

    // ostree's wrapper, rebuilt by larch around the same plain superblock, is the same bytes.
    const theirs = await fsp.readFile(join(delta, 'superblock'));
    const sb = decodeSuperblock(theirs);
    expect(sb.signed).toBe(true);
    expect(Buffer.from(encodeSignedSuperblock(sb.signedData!, sb.signatures))).toEqual(theirs);
    ok(larch(['static-delta', 'delete', `--repo=${repo}`, `${c1}-${c2}`]));
  });

  it('indexes lists what ostree lists', () => {
    ok(larch(['static-delta', 'generate', `--repo=${repo}`, `--from=${c1}`, `--to=${c2}`]));
    ok(larch(['static-delta', 'generate', `--repo=${repo}`, '--empty', `--to=${c1}`]));
    const sorted = (s: string): string[] => s.trim().split('\n').sort();
    expect(sorted(ok(larch(['static-delta', 'indexes', `--repo=${repo}`])))).toEqual(sorted(ok(ostree(['static-delta', 'indexes', `--repo=${repo}`]))));
    expect(sorted(ok(larch(['static-delta', 'indexes', `--repo=${repo}`])))).toEqual([c1, c2].sort());
    const empty = join(dir, 'no-indexes');
    ok(larch(['init', `--repo=${empty}`, '--mode=archive']));
    expect(ok(larch(['static-delta', 'indexes', `--repo=${empty}`]))).toBe(ok(ostree(['static-delta', 'indexes', `--repo=${empty}`])));
  });
});
