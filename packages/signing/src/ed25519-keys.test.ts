import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  Ed25519Signer,
  generateEd25519Key,
  keySourcesFromSpecs,
  loadEd25519Verifier,
  parseEd25519KeyLines,
  parseKeySpec,
  readEd25519KeyDir,
  readEd25519KeyFile,
  readEd25519SecretKeys,
} from './index.js';

const tmp = mkdtempSync(join(tmpdir(), 'larch-signing-keys-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const data = new TextEncoder().encode('summary bytes');

describe('ed25519 key files', () => {
  it('parses one base64 key per line, skipping blank lines and reporting bad ones', () => {
    const a = generateEd25519Key();
    const b = generateEd25519Key();
    const text = `${a.publicKey.base64}\n\n  ${b.publicKey.base64}  \nnot-a-key\n${a.base64}\n`;
    const r = parseEd25519KeyLines(text, 'public', 'keys.pub');
    expect(r.keys.map((k) => k.base64)).toEqual([a.publicKey.base64, b.publicKey.base64]);
    expect(r.skipped.map((s) => s.line)).toEqual([4, 5]); // garbage; a 64-byte secret key is not a public key
    expect(r.skipped[0].source).toBe('keys.pub');
  });

  it('reads secret keys from a --keys-file and signs with them', async () => {
    const a = generateEd25519Key();
    const p = join(tmp, 'secret.keys');
    writeFileSync(p, `${a.base64}\n`);
    const [k] = await readEd25519SecretKeys(p);
    expect(k.publicKey.base64).toBe(a.publicKey.base64);
  });

  it('fails for a missing file or a file without a valid key', async () => {
    await expect(readEd25519KeyFile(join(tmp, 'nope'), 'public')).rejects.toMatchObject({ code: 'KEY_NOT_FOUND' });
    const p = join(tmp, 'empty.pub');
    writeFileSync(p, '\n\ngarbage\n');
    await expect(readEd25519KeyFile(p, 'public')).rejects.toMatchObject({ code: 'KEY_INVALID' });
  });

  it('reads every file of a key directory', async () => {
    const d = join(tmp, 'trusted.d');
    mkdirSync(d);
    const [a, b] = [generateEd25519Key(), generateEd25519Key()];
    writeFileSync(join(d, 'one'), `${a.publicKey.base64}\n`);
    writeFileSync(join(d, 'two.pub'), `${b.publicKey.base64}\n`);
    mkdirSync(join(d, 'subdir'));
    const r = await readEd25519KeyDir(d);
    expect(r.keys.map((k) => k.base64)).toEqual([a.publicKey.base64, b.publicKey.base64]);
    expect((await readEd25519KeyDir(join(tmp, 'absent'))).keys).toEqual([]);
  });
});

describe('loadEd25519Verifier', () => {
  it('uses the well-known trusted.ed25519(.d) locations when nothing is configured, and their revocation lists', async () => {
    const root = join(tmp, 'etc-ostree');
    mkdirSync(join(root, 'trusted.ed25519.d'), { recursive: true });
    mkdirSync(join(root, 'revoked.ed25519.d'), { recursive: true });
    const [good, bad, dirKey] = [generateEd25519Key(), generateEd25519Key(), generateEd25519Key()];
    writeFileSync(join(root, 'trusted.ed25519'), `${good.publicKey.base64}\n${bad.publicKey.base64}\n`);
    writeFileSync(join(root, 'trusted.ed25519.d', 'vendor'), `${dirKey.publicKey.base64}\n`);
    writeFileSync(join(root, 'revoked.ed25519.d', 'old'), `${bad.publicKey.base64}\n`);
    const v = await loadEd25519Verifier({ keysDirs: [root] });
    const sigs = await Promise.all([good, bad, dirKey].map((k) => new Ed25519Signer(k).sign(data)));
    const r = await v.verify(data, sigs);
    expect(r.map((x) => [x.valid, x.revoked])).toEqual([
      [true, false],
      [false, true],
      [true, false],
    ]);
  });

  it('uses only configured keys (inline:, file:) when given, plus revoked-key files', async () => {
    const root = join(tmp, 'etc2');
    mkdirSync(root, { recursive: true });
    const [sys, inl, fil] = [generateEd25519Key(), generateEd25519Key(), generateEd25519Key()];
    writeFileSync(join(root, 'trusted.ed25519'), `${sys.publicKey.base64}\n`);
    const kf = join(tmp, 'remote.pub');
    writeFileSync(kf, `${fil.publicKey.base64}\n`);
    const rf = join(tmp, 'revoked.pub');
    writeFileSync(rf, `${fil.publicKey.base64}\n`);
    const specs = [parseKeySpec(`inline:${inl.publicKey.base64}`), parseKeySpec(`file:${kf}`)];
    expect(specs[1]).toEqual({ kind: 'file', path: kf });
    const v = await loadEd25519Verifier({ ...keySourcesFromSpecs(specs), keysDirs: [root] });
    const r = await v.verify(data, await Promise.all([sys, inl, fil].map((k) => new Ed25519Signer(k).sign(data))));
    expect(r.map((x) => x.valid)).toEqual([false, true, true]);
    const v2 = await loadEd25519Verifier({ ...keySourcesFromSpecs(specs), revokedFiles: [rf], keysDirs: [root] });
    const r2 = await v2.verify(data, [await new Ed25519Signer(fil).sign(data)]);
    expect(r2[0]).toMatchObject({ valid: false, revoked: true });
  });

  it('validates its options and key specs', async () => {
    expect(() => parseKeySpec('http://x')).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID' }));
    await expect(loadEd25519Verifier({ files: [''] })).rejects.toMatchObject({ code: 'CONFIG_INVALID' });
    await expect(loadEd25519Verifier({ inline: ['AAAA'] })).rejects.toMatchObject({ code: 'KEY_INVALID' });
    await expect(loadEd25519Verifier({ keysDirs: [join(tmp, 'nothing-here')] })).rejects.toMatchObject({ code: 'KEY_NOT_FOUND' });
  });
});
