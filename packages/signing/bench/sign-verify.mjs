// Signing and verification throughput of @larch/signing (not a test).
// Run after building: `node packages/signing/bench/sign-verify.mjs [seconds-per-case]`.
// Prints ops/s for ed25519 (node:crypto and @noble/curves engines, plus the strict wrapper)
// and OpenPGP (OpenPGP.js in-process; `gpg --detach-sign` through the program signer when gpg exists).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as openpgp from 'openpgp';
import {
  Ed25519Verifier,
  GpgProgramSigner,
  GpgVerifier,
  OpenPgpSigner,
  ed25519Sign,
  ed25519Verify,
  generateEd25519Key,
  parseGpgKeyring,
} from '../dist/index.js';

const seconds = Number(process.argv[2] ?? 1);
const data = new Uint8Array(512).fill(0x5a); // about the size of a .commit object

async function measure(name, fn) {
  for (let i = 0; i < 3; i++) await fn(); // warm-up
  const end = performance.now() + seconds * 1000;
  let n = 0;
  const start = performance.now();
  while (performance.now() < end) {
    await fn();
    n++;
  }
  const ops = n / ((performance.now() - start) / 1000);
  console.log(`${name.padEnd(44)} ${ops.toFixed(0).padStart(8)} ops/s`);
  return ops;
}

console.log(`node ${process.version}, ${data.length}-byte message, ${seconds}s per case`);

const sk = generateEd25519Key();
const sig = ed25519Sign(sk, data);
await measure('ed25519 sign (node:crypto)', () => ed25519Sign(sk, data, 'node'));
await measure('ed25519 sign (@noble/curves)', () => ed25519Sign(sk, data, 'noble'));
await measure('ed25519 verify strict (node:crypto)', () => {
  if (!ed25519Verify(sk.publicKey, data, sig, 'node')) throw new Error('verify failed');
});
await measure('ed25519 verify strict (@noble/curves)', () => {
  if (!ed25519Verify(sk.publicKey, data, sig, 'noble')) throw new Error('verify failed');
});
const edVerifier = new Ed25519Verifier({ trusted: [sk.publicKey] });
await measure('Ed25519Verifier.verify (1 sig, 1 key)', async () => {
  if (!(await edVerifier.verify(data, [sig]))[0].valid) throw new Error('verify failed');
});

const { privateKey, publicKey } = await openpgp.generateKey({ type: 'ecc', curve: 'ed25519Legacy', userIDs: [{ name: 'Bench' }], format: 'armored' });
const pgpSigner = await OpenPgpSigner.fromArmored(privateKey);
const pgpSig = await pgpSigner.sign(data);
const pgpVerifier = new GpgVerifier(await parseGpgKeyring(Buffer.from(publicKey)));
await measure('OpenPGP sign (OpenPGP.js, EdDSA legacy)', () => pgpSigner.sign(data));
await measure('OpenPGP verify (OpenPGP.js, EdDSA legacy)', async () => {
  if (!(await pgpVerifier.verify(data, [pgpSig]))[0].valid) throw new Error('verify failed');
});

const rsa = await openpgp.generateKey({ type: 'rsa', rsaBits: 3072, userIDs: [{ name: 'Bench RSA' }], format: 'armored' });
const rsaSigner = await OpenPgpSigner.fromArmored(rsa.privateKey);
const rsaSig = await rsaSigner.sign(data);
const rsaVerifier = new GpgVerifier(await parseGpgKeyring(Buffer.from(rsa.publicKey)));
await measure('OpenPGP sign (OpenPGP.js, RSA 3072)', () => rsaSigner.sign(data));
await measure('OpenPGP verify (OpenPGP.js, RSA 3072)', async () => {
  if (!(await rsaVerifier.verify(data, [rsaSig]))[0].valid) throw new Error('verify failed');
});

if (spawnSync('gpg', ['--version']).status === 0) {
  const home = mkdtempSync(join(tmpdir(), 'larch-bench-gnupg-'));
  try {
    spawnSync('gpg', ['--homedir', home, '--batch', '--passphrase', '', '--quick-gen-key', 'Bench <b@example.com>', 'ed25519', 'sign', 'never']);
    const signer = new GpgProgramSigner({ homedir: home, keyId: 'b@example.com' });
    await measure('OpenPGP sign (gpg program, EdDSA)', () => signer.sign(data));
  } finally {
    spawnSync('gpgconf', ['--homedir', home, '--kill', 'gpg-agent']);
    rmSync(home, { recursive: true, force: true });
  }
} else {
  console.log('gpg not found: skipping the gpg program signer');
}
