/**
 * OpenPGP signatures in OSTree's layout (spec/pull-and-signing.md 6.1, 6.2): each element of
 * `ostree.gpgsigs` is one binary detached signature (class 0x00) over the exact object bytes.
 *
 * Verification runs in-process with OpenPGP.js against a `GpgKeyring`; no gpg, no trustdb:
 * every key in the remote's keyring is trusted, as in OSTree. Each signature is checked
 * cryptographically as of its own creation time (so a later expiry does not hide which key made
 * it), and then the key's state *now* decides: a revoked or expired key (or signing subkey), or
 * an expired signature, makes the signature invalid, as gpgme reports it to OSTree.
 *
 * Signing has two engines: `GpgProgramSigner` runs `gpg --detach-sign` against a GnuPG home
 * directory (what OSTree does through gpgme; the data goes through stdin and the signature
 * comes back on stdout, the passphrase, if any, through a pipe, never a file), and
 * `OpenPgpSigner` signs in-process from an armored secret key. Only v4 keys with
 * GnuPG-2.2-compatible algorithms (RSA, legacy EdDSA) are accepted for signing, because the
 * reference `ostree`'s gpg rejects RFC 9580 Ed25519 and v6 keys.
 */

import { spawn } from 'node:child_process';
import * as openpgp from 'openpgp';
import { z } from 'zod';
import { GPG_SIGNATURES_KEY } from './detached-metadata.js';
import { SigningError, sanitize } from './errors.js';
import { gpgLookupKeyring, type GpgKeyring } from './gpg-keyring.js';
import { parseUserId } from './gpg-user-id.js';
import type { SignatureReport, Signer, Verifier, VerifyOptions } from './sign.js';

/** Largest signature we accept from `gpg` (a detached signature is well under 2 KiB). */
export const MAX_GPG_SIGNATURE_SIZE = 64 * 1024;
/** Most signature packets taken from one `ostree.gpgsigs` element (gpg writes one per key used). */
export const MAX_PACKETS_PER_SIGNATURE = 16;
/** How much of gpg's stderr we keep for an error message. */
const MAX_STDERR = 16 * 1024;

function hex(b: Uint8Array): string {
  return Buffer.from(b).toString('hex').toUpperCase();
}

/** GnuPG's names for OpenPGP public-key algorithm ids (RFC 4880 9.1, RFC 9580 9.1). */
const ALGORITHM_NAMES: Record<number, string> = { 1: 'RSA', 2: 'RSA', 3: 'RSA', 16: 'ELG', 17: 'DSA', 19: 'ECDSA', 22: 'EdDSA', 27: 'EdDSA', 28: 'EdDSA' };

function classify(message: string): { revoked: boolean; expired: boolean } {
  return { revoked: /revoked/i.test(message), expired: /expired/i.test(message) };
}

/** Verifies `ostree.gpgsigs` signatures against a keyring with OpenPGP.js. */
export class GpgVerifier implements Verifier {
  readonly scheme = 'gpg' as const;
  readonly metadataKey = GPG_SIGNATURES_KEY;

  constructor(readonly keyring: GpgKeyring) {}

  async verify(data: Uint8Array, signatures: readonly Uint8Array[], options: VerifyOptions = {}): Promise<SignatureReport[]> {
    const now = options.now ?? new Date();
    const reports: SignatureReport[] = [];
    for (const blob of signatures) {
      if (options.signal?.aborted) throw new SigningError('ABORTED', 'GPG verification aborted', {}, { cause: options.signal.reason });
      let parsed: openpgp.Signature;
      try {
        parsed = await openpgp.readSignature({ binarySignature: blob });
      } catch (e) {
        reports.push({
          scheme: 'gpg', keyId: null, valid: false, expired: false, revoked: false, timestamp: null, keysTried: [],
          reason: `Malformed OpenPGP signature: ${sanitize((e as Error).message)}`,
        });
        continue;
      }
      if (parsed.packets.length > MAX_PACKETS_PER_SIGNATURE) {
        reports.push({
          scheme: 'gpg', keyId: null, valid: false, expired: false, revoked: false, timestamp: null, keysTried: [],
          reason: `Too many signature packets in one signature: ${parsed.packets.length} (limit ${MAX_PACKETS_PER_SIGNATURE})`,
        });
        continue;
      }
      for (const pkt of parsed.packets) reports.push(await this.verifyPacket(data, pkt, now));
    }
    return reports;
  }

  private async verifyPacket(data: Uint8Array, pkt: openpgp.SignaturePacket, now: Date): Promise<SignatureReport> {
    let keyId = pkt.issuerKeyID.toHex().toUpperCase();
    if (/^0+$/.test(keyId) && pkt.issuerFingerprint) keyId = hex(pkt.issuerFingerprint).slice(-16);
    const timestamp = pkt.created ?? null;
    const algo = pkt.publicKeyAlgorithm as number | null;
    const sigExpires = finiteDate(pkt.getExpirationTime());
    const sigExpired = sigExpires !== null && sigExpires.getTime() <= now.getTime();
    const report: SignatureReport = {
      scheme: 'gpg', keyId, fingerprint: null, userId: null, userName: null, userEmail: null, valid: false, reason: null,
      algorithm: algo === null ? null : (ALGORITHM_NAMES[algo] ?? null), primaryKeyId: null,
      expired: sigExpired, revoked: false, keyExpired: false, sigExpired, signatureExpires: sigExpires, keyExpires: null, primaryKeyExpires: null,
      timestamp, keysTried: [],
    };
    const candidates = this.keyring.findByKeyId(keyId);
    if (candidates.length === 0) {
      report.keysTried = this.keyring.fingerprints();
      report.reason = "Can't check signature: public key not found";
      return report;
    }
    const list = new openpgp.PacketList<openpgp.SignaturePacket>();
    list.push(pkt);
    const single = new openpgp.Signature(list);
    for (const key of candidates) {
      report.keysTried.push(key.getFingerprint().toUpperCase());
      report.fingerprint = key.getFingerprint().toUpperCase();
      const uid = await primaryUserId(key);
      const parts = parseUserId(uid ?? '');
      report.userId = uid;
      report.userName = uid === null ? null : parts.name;
      report.userEmail = uid === null ? null : parts.email;
      const primary = key.getKeyID().toHex().toUpperCase();
      report.primaryKeyId = primary === keyId ? null : primary;
      // The key's state now, as gpg reports it: a revoked primary key revokes its subkeys, an
      // expired one expires them.
      const state = await keyStateAt(key, pkt.issuerKeyID, now);
      report.revoked = state.revoked;
      report.keyExpired = state.expired;
      report.expired = state.expired || sigExpired;
      report.keyExpires = state.signingKeyExpires;
      report.primaryKeyExpires = state.primaryExpires;
      const cryptoError = await checkSignature(data, pkt, key);
      const problems: string[] = [...state.problems];
      if (cryptoError !== null) problems.push(cryptoError);
      if (sigExpired) problems.push('Signature is expired');
      if (timestamp && timestamp.getTime() > now.getTime() + 5 * 60 * 1000) problems.push('Signature creation time is in the future');
      if (problems.length === 0) {
        report.valid = true;
        report.reason = null;
        return report;
      }
      report.reason = cryptoError !== null && !report.revoked && !report.expired ? `BAD signature: ${sanitize(cryptoError)}` : sanitize(problems.join('; '));
    }
    return report;
  }
}

/**
 * Check a signature packet over `data` cryptographically against the key that made it (which
 * must be allowed to sign: a signing-capable, cross-certified subkey or primary key), with no
 * time limit; the key's state now is judged separately, as gpg judges a signature by the key as
 * it is now (GnuPG replaces a self-signature when the expiry changes, so the key may have no
 * self-signature from the time the signature was made). Returns null when it holds, else why not.
 */
async function checkSignature(data: Uint8Array, pkt: openpgp.SignaturePacket, key: openpgp.PublicKey): Promise<string | null> {
  const { binary, text } = openpgp.enums.signature;
  if (pkt.signatureType !== binary && pkt.signatureType !== text) return `Not a signature over data (type ${pkt.signatureType})`;
  const signingKey = key.getKeys(pkt.issuerKeyID)[0];
  if (signingKey === undefined) return 'Signature was not issued by the given public key';
  try {
    // The literal-data packet a binary message of `data` consists of (what the hash covers).
    const literal = (await openpgp.createMessage({ binary: data })).packets[0];
    await pkt.verify(signingKey.keyPacket, pkt.signatureType, literal, null as unknown as Date, true);
  } catch (e) {
    return (e as Error).message;
  }
  try {
    await key.getSigningKey(pkt.issuerKeyID, null);
  } catch (e) {
    const msg = (e as Error).message;
    // Revocation and expiry are the key's state, reported from keyStateAt.
    if (!classify(msg).revoked && !classify(msg).expired) return msg;
  }
  return null;
}

/** A Date for a finite time, null for Infinity / null / an invalid date. */
function finiteDate(d: Date | number | null | undefined): Date | null {
  return d instanceof Date && Number.isFinite(d.getTime()) ? d : null;
}

/** The user id gpgme names a key by: the primary one, else the first. */
async function primaryUserId(key: openpgp.PublicKey): Promise<string | null> {
  try {
    const p = await key.getPrimaryUser();
    if (p.user.userID) return p.user.userID.userID;
  } catch {
    // Revoked or expired self-signatures: fall back to the first user id, as gpg lists it.
  }
  return key.users.find((u) => u.userID !== null)?.userID?.userID ?? null;
}

/**
 * What gpg says about a key at `now`: revoked (the primary key or the signing subkey), expired
 * (either), the expiry times, and the problems as OpenPGP.js words them.
 */
async function keyStateAt(key: openpgp.PublicKey, signingKeyId: openpgp.KeyID, now: Date): Promise<{
  revoked: boolean; expired: boolean; primaryExpires: Date | null; signingKeyExpires: Date | null; problems: string[];
}> {
  const problems: string[] = [];
  const primaryExpires = finiteDate(await key.getExpirationTime().catch(() => null));
  let revoked = false;
  let expired = primaryExpires !== null && primaryExpires.getTime() <= now.getTime();
  try {
    await key.verifyPrimaryKey(now);
  } catch (e) {
    const msg = (e as Error).message;
    problems.push(msg);
    revoked ||= classify(msg).revoked;
    expired ||= classify(msg).expired;
  }
  let signingKeyExpires = primaryExpires;
  const sub = key.getKeyID().equals(signingKeyId) ? undefined : key.getSubkeys(signingKeyId)[0];
  if (sub) {
    signingKeyExpires = finiteDate(await sub.getExpirationTime(now).catch(() => null));
    if (signingKeyExpires !== null && signingKeyExpires.getTime() <= now.getTime()) expired = true;
    try {
      await sub.verify(now);
    } catch (e) {
      const msg = (e as Error).message;
      problems.push(msg);
      revoked ||= classify(msg).revoked;
      expired ||= classify(msg).expired;
    }
  }
  if (expired && !problems.some((p) => classify(p).expired)) problems.push('Key is expired');
  // gpg reports an expired key as expired even when it is also revoked (EXPKEYSIG before
  // REVKEYSIG), so OSTree then prints "BAD signature", not "Key revoked".
  return { revoked: revoked && !expired, expired, primaryExpires, signingKeyExpires, problems };
}

const gpgProgramOptionsSchema = z.object({
  homedir: z.string().min(1),
  keyId: z.string().min(1).regex(/^[^-\0\n][^\0\n]*$/, 'key id must not start with - or contain NUL/newline'),
  gpgPath: z.string().min(1).optional(),
  passphrase: z.string().optional(),
});

export interface GpgProgramSignerOptions {
  /** GnuPG home directory (`--gpg-homedir`). */
  homedir: string;
  /** Key to sign with: key id, fingerprint or user id, as `gpg --local-user` takes it. */
  keyId: string;
  /** The gpg program; default `gpg` from PATH. */
  gpgPath?: string;
  /** Passphrase for a protected key, handed to gpg through a pipe (loopback pinentry). */
  passphrase?: string;
}

/**
 * Signs with a key in a GnuPG home directory by running
 * `gpg --homedir H --batch --detach-sign --local-user KEYID` (binary output), like
 * `ostree gpg-sign --gpg-homedir=H`. gpg may start a gpg-agent for that home directory, which
 * keeps running afterwards, as it does for OSTree. Errors are GPG_FAILED with gpg's stderr.
 */
export class GpgProgramSigner implements Signer {
  readonly scheme = 'gpg' as const;
  readonly metadataKey = GPG_SIGNATURES_KEY;
  readonly keyId: string;
  /** The GnuPG home directory the key is in (its public keyring names the key). */
  readonly homedir: string;
  private readonly options: GpgProgramSignerOptions;

  constructor(options: GpgProgramSignerOptions) {
    const r = gpgProgramOptionsSchema.safeParse(options);
    if (!r.success) throw new SigningError('CONFIG_INVALID', `Invalid gpg signer options: ${r.error.issues.map((i) => i.message).join('; ')}`, { issues: r.error.issues });
    this.options = r.data;
    this.keyId = r.data.keyId;
    this.homedir = r.data.homedir;
  }

  /**
   * Index of a signature in `signatures` made by this key, or -1: the key is recognised through
   * its GnuPG home's keyring and the global keyrings, as `ostree gpg-sign` looks it up before
   * refusing to sign twice. `data` is unused (the issuer is in each packet).
   */
  async findOwnSignature(_data: Uint8Array, signatures: readonly Uint8Array[]): Promise<number> {
    if (signatures.length === 0) return -1;
    return findGpgSignatureByKey(signatures, await gpgLookupKeyring(this.homedir), this.keyId);
  }

  sign(data: Uint8Array, options: { signal?: AbortSignal } = {}): Promise<Uint8Array> {
    const o = this.options;
    const args = ['--homedir', o.homedir, '--batch', '--no-tty', '--detach-sign', '--local-user', o.keyId];
    if (o.passphrase !== undefined) args.push('--pinentry-mode', 'loopback', '--passphrase-fd', '3');
    const program = o.gpgPath ?? 'gpg';
    return new Promise<Uint8Array>((resolve, reject) => {
      const child = spawn(program, args, {
        stdio: ['pipe', 'pipe', 'pipe', o.passphrase !== undefined ? 'pipe' : 'ignore'],
        signal: options.signal,
      });
      const out: Buffer[] = [];
      let outLen = 0;
      let err = '';
      let failed: SigningError | null = null;
      child.stdout!.on('data', (c: Buffer) => {
        outLen += c.length;
        if (outLen > MAX_GPG_SIGNATURE_SIZE) {
          failed ??= new SigningError('GPG_FAILED', `gpg produced more than ${MAX_GPG_SIGNATURE_SIZE} bytes of signature`, { keyId: o.keyId });
          child.kill();
        } else out.push(c);
      });
      child.stderr!.on('data', (c: Buffer) => {
        if (err.length < MAX_STDERR) err += c.toString('utf8');
      });
      child.on('error', (e: NodeJS.ErrnoException) => {
        if (e.name === 'AbortError') failed ??= new SigningError('ABORTED', 'gpg signing aborted', {}, { cause: e });
        else failed ??= new SigningError('GPG_FAILED', `Failed to run ${sanitize(program)}: ${e.message}`, { program, errno: e.code }, { cause: e });
      });
      // A closed stdin (gpg exited early) surfaces as EPIPE; the exit status carries the real error.
      child.stdin!.on('error', () => {});
      if (o.passphrase !== undefined) {
        const fd3 = child.stdio[3] as NodeJS.WritableStream & { on(ev: 'error', f: () => void): void };
        fd3.on('error', () => {});
        fd3.end(`${o.passphrase}\n`);
      }
      child.stdin!.end(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
      child.on('close', (code) => {
        if (failed) return reject(failed);
        if (code !== 0) {
          return reject(new SigningError('GPG_FAILED', `gpg --detach-sign --local-user ${sanitize(o.keyId)} failed (exit ${code}): ${sanitize(err.trim().replace(/\s*\n\s*/g, '; '), 500)}`, { keyId: o.keyId, exitCode: code, stderr: sanitize(err, 2000) }));
        }
        const sig = new Uint8Array(Buffer.concat(out));
        openpgp.readSignature({ binarySignature: sig }).then(
          () => resolve(sig),
          (e: Error) => reject(new SigningError('GPG_FAILED', `gpg did not produce a binary OpenPGP signature: ${sanitize(e.message)}`, { keyId: o.keyId }, { cause: e })),
        );
      });
    });
  }
}

/** Key algorithms GnuPG 2.2 verifies (legacy EdDSA, RSA, DSA, ECDSA). */
const GNUPG22_ALGORITHMS = new Set(['rsaSign', 'rsaEncryptSign', 'eddsaLegacy', 'ecdsa', 'dsa']);

/**
 * Signs in-process with OpenPGP.js from an armored (or binary) secret key; no gpg needed.
 * Build with `OpenPgpSigner.fromArmored`. Refuses v6 keys and RFC 9580 Ed25519/Ed448 keys
 * (KEY_INVALID), whose signatures the reference `ostree` cannot verify.
 */
export class OpenPgpSigner implements Signer {
  readonly scheme = 'gpg' as const;
  readonly metadataKey = GPG_SIGNATURES_KEY;
  readonly keyId: string;

  private constructor(
    private readonly key: openpgp.PrivateKey,
    private readonly signingKeyId: openpgp.KeyID | undefined,
    private readonly clock: () => Date,
  ) {
    this.keyId = (signingKeyId ?? key.getKeyID()).toHex().toUpperCase();
  }

  /** The public part of the signing key (to recognise signatures it made). */
  get publicKey(): openpgp.PublicKey {
    return this.key.toPublic();
  }

  /**
   * Index of a signature in `signatures` made by this key, or -1 (its own public key, plus the
   * global keyrings, name it), as {@link GpgProgramSigner.findOwnSignature}.
   */
  async findOwnSignature(_data: Uint8Array, signatures: readonly Uint8Array[]): Promise<number> {
    if (signatures.length === 0) return -1;
    return findGpgSignatureByKey(signatures, await gpgLookupKeyring(undefined, [this.publicKey]), this.keyId);
  }

  /**
   * Load a secret key. `passphrase` decrypts a protected key; `keyId` picks a signing subkey
   * (default: OpenPGP.js's choice of the newest valid signing key). `now` sets signature times.
   */
  static async fromArmored(armoredKey: string | Uint8Array, options: { passphrase?: string; keyId?: string; now?: () => Date } = {}): Promise<OpenPgpSigner> {
    let key: openpgp.PrivateKey;
    try {
      key = typeof armoredKey === 'string' ? await openpgp.readPrivateKey({ armoredKey }) : await openpgp.readPrivateKey({ binaryKey: armoredKey });
    } catch (e) {
      throw new SigningError('KEY_INVALID', `Invalid OpenPGP secret key: ${sanitize((e as Error).message)}`, {}, { cause: e });
    }
    if (key.keyPacket.version !== 4) throw new SigningError('KEY_INVALID', `OpenPGP key ${key.getKeyID().toHex().toUpperCase()} is a v${key.keyPacket.version} key; only v4 keys interoperate with GnuPG 2.2`, { version: key.keyPacket.version });
    if (!key.isDecrypted()) {
      if (options.passphrase === undefined) throw new SigningError('KEY_INVALID', `OpenPGP key ${key.getKeyID().toHex().toUpperCase()} is protected; a passphrase is needed`, {});
      try {
        key = await openpgp.decryptKey({ privateKey: key, passphrase: options.passphrase });
      } catch (e) {
        throw new SigningError('KEY_INVALID', `Cannot unlock OpenPGP key ${key.getKeyID().toHex().toUpperCase()}: ${sanitize((e as Error).message)}`, {}, { cause: e });
      }
    }
    let signingKeyId: openpgp.KeyID | undefined;
    const now = options.now ?? (() => new Date());
    let wanted: openpgp.KeyID | undefined;
    if (options.keyId !== undefined) {
      const id = options.keyId.toLowerCase().replace(/^0x/, '').slice(-16);
      wanted = key.getKeys().find((k) => k.getKeyID().toHex() === id)?.getKeyID();
      if (wanted === undefined) {
        throw new SigningError('KEY_NOT_FOUND', `No key ${sanitize(options.keyId, 60)} in OpenPGP key ${key.getKeyID().toHex().toUpperCase()}`, { keyId: options.keyId });
      }
    }
    try {
      const signingKey = await key.getSigningKey(wanted, now());
      signingKeyId = signingKey.getKeyID();
      const algo = signingKey.getAlgorithmInfo().algorithm;
      if (!GNUPG22_ALGORITHMS.has(algo)) throw new SigningError('KEY_INVALID', `OpenPGP key algorithm ${algo} is not verifiable by GnuPG 2.2; use RSA or legacy EdDSA (ed25519Legacy)`, { algorithm: algo });
    } catch (e) {
      if (e instanceof SigningError) throw e;
      const msg = (e as Error).message;
      throw new SigningError(classify(msg).revoked ? 'KEY_REVOKED' : classify(msg).expired ? 'KEY_EXPIRED' : 'KEY_INVALID', `OpenPGP key ${key.getKeyID().toHex().toUpperCase()} cannot sign: ${sanitize(msg)}`, {}, { cause: e });
    }
    return new OpenPgpSigner(key, signingKeyId, now);
  }

  async sign(data: Uint8Array): Promise<Uint8Array> {
    try {
      return await openpgp.sign({
        message: await openpgp.createMessage({ binary: data }),
        signingKeys: this.key,
        signingKeyIDs: this.signingKeyId ? [this.signingKeyId] : undefined,
        detached: true,
        format: 'binary',
        date: this.clock(),
      });
    } catch (e) {
      throw new SigningError('GPG_FAILED', `OpenPGP signing with key ${this.keyId} failed: ${sanitize((e as Error).message)}`, { keyId: this.keyId }, { cause: e });
    }
  }
}

/** The long key ids (upper-case hex) of the keys that made each packet of one `ostree.gpgsigs` element; [] when it does not parse. */
async function issuersOf(blob: Uint8Array): Promise<string[]> {
  try {
    const sig = await openpgp.readSignature({ binarySignature: blob });
    return sig.packets.slice(0, MAX_PACKETS_PER_SIGNATURE).map((p) => {
      const id = p.issuerKeyID.toHex().toUpperCase();
      return /^0+$/.test(id) && p.issuerFingerprint ? hex(p.issuerFingerprint).slice(-16) : id;
    });
  } catch {
    return [];
  }
}

/**
 * The index of the first element of `signatures` (an `ostree.gpgsigs` array) made by the key
 * `wanted` names, as `ostree_gpg_verify_result_lookup`: `wanted` (key id, fingerprint or user id)
 * is resolved in `keyring`, and a signature matches when it was made by that key or any of its
 * subkeys (no cryptographic check: this finds signatures, it does not trust them). Indexes in
 * `skip` are passed over. -1 when there is none, or when `wanted` is not in the keyring.
 */
export async function findGpgSignatureByKey(signatures: readonly Uint8Array[], keyring: GpgKeyring, wanted: string, skip: ReadonlySet<number> = new Set()): Promise<number> {
  const key = keyring.find(wanted);
  if (key === null) return -1;
  const ids = new Set(key.getKeys().map((k) => k.getKeyID().toHex().toUpperCase()));
  for (let i = 0; i < signatures.length; i++) {
    if (skip.has(i)) continue;
    if ((await issuersOf(signatures[i])).some((id) => ids.has(id))) return i;
  }
  return -1;
}
