/**
 * Signature results as OSTree prints them, so a user can grep Larch's output and errors for the
 * same lines: the `Found N signature(s):` block of `ostree show` (gpgme's description of each
 * signature: `Signature made DATE using ALGO key ID KEYID`, `Good signature from "UID"`, …), the
 * `ostree sign --verify` success line, and the errors of a pull that requires signatures
 * (`Commit CSUM: GPG verification enabled, but no signatures found (use gpg-verify=false in
 * remote config to disable)`, `GPG verification enabled, but no summary.sig found …`,
 * `Can't verify commit CSUM: signature: ed25519: commit have no signatures of my type`).
 *
 * OSTree's multi-line gpgme descriptions become one line in errors (parts joined with "; "),
 * because Larch reports every failure on one line.
 */

import { SigningError, sanitize } from './errors.js';
import { parseUserId } from './gpg-user-id.js';
import type { SignatureReport, VerifyResult } from './sign.js';
import { C_UTF8_TIME_LOCALE, formatGDateTime, formatLocaleDateTime, type TimeLocale } from './date-format.js';

/** Options of the functions that print signature dates. */
export interface SignatureTextOptions {
  /**
   * The locale signature dates are printed in, as OSTree prints them through GLib (see
   * date-format.ts): C_UTF8_TIME_LOCALE when absent. The CLI passes the user's locale.
   */
  timeLocale?: TimeLocale;
}

/**
 * GLib's `%c` in the C locale, as g_date_time_format() returns it: `Mon Jan \u20071 00:00:00 2024`
 * (a single-digit day of the month is padded with U+2007 FIGURE SPACE, not a space). `utc`
 * selects UTC (what OSTree's timestamp check prints); otherwise local time (what gpgme's
 * signature dates use). For the text OSTree prints in a given locale use
 * {@link formatLocaleDateTime}. Pure.
 */
export function formatCDate(date: Date, options: { utc?: boolean } = {}): string {
  return formatGDateTime(date, '%c', C_UTF8_TIME_LOCALE, options) ?? '(null)';
}

/** Lowercase hex of bytes (ed25519 keys are shown in hex by `ostree sign`). */
export function hexOf(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

function base64ToHex(b64: string): string {
  return Buffer.from(b64, 'base64').toString('hex');
}

/**
 * The lines OSTree prints for one signature (without indentation), in the layout of
 * `ostree_gpg_verify_result_describe_variant`:
 *
 *   Signature made DATE using ALGO key ID KEYID
 *   Good signature from "NAME <EMAIL>"          (or: Can't check signature: public key not found,
 *                                                Key revoked, Expired signature from "…",
 *                                                BAD signature from "…")
 *   Primary key ID KEYID                         (a subkey made it)
 *   Signature expires|expired DATE               (the signature has an expiry)
 *   Key expires|expired DATE                     (the signing key has an expiry)
 *   Primary key expires|expired DATE             (a subkey made it, and the primary key has an expiry)
 *
 * As in OSTree, the primary key's line says "expired" whenever the signing key is expired.
 * ed25519 reports give OSTree's one-line verification message. Dates are printed as OSTree prints
 * them in `options.timeLocale`. Pure apart from the locale's zone-abbreviation callback.
 */
export function describeSignature(r: SignatureReport, options: SignatureTextOptions = {}): string[] {
  if (r.scheme === 'ed25519') {
    if (r.valid) return [`ed25519: Signature verified successfully with key '${base64ToHex(r.keyId ?? '')}'`];
    if (r.revoked) return [`ed25519: Signature made by revoked key '${base64ToHex(r.keyId ?? '')}'`];
    if (r.keysTried.length === 0) return ['ed25519: no public keys loaded'];
    if (r.keysTried.length > 3) return [`ed25519: Signature couldn't be verified; tried ${r.keysTried.length} keys`];
    return [`ed25519: Signature couldn't be verified with: ${r.keysTried.map((k) => `key '${base64ToHex(k)}'`).join('; ')}`];
  }
  const locale = options.timeLocale ?? C_UTF8_TIME_LOCALE;
  const date = (d: Date): string => formatLocaleDateTime(d, locale);
  const lines = [`Signature made ${date(r.timestamp ?? new Date(0))} using ${r.algorithm ?? '[unknown name]'} key ID ${r.keyId ?? '[unknown]'}`];
  const keyMissing = r.fingerprint === null || r.fingerprint === undefined;
  const parts = r.userId !== null && r.userId !== undefined ? parseUserId(r.userId) : null;
  const name = r.userName ?? parts?.name ?? '[unknown name]';
  const email = r.userEmail ?? parts?.email ?? '[unknown email]';
  const who = `"${sanitize(name, 200)} <${sanitize(email, 200)}>"`;
  const sigExpired = r.sigExpired ?? false;
  const keyExpired = r.keyExpired ?? (r.expired && !sigExpired);
  if (keyMissing) lines.push("Can't check signature: public key not found");
  else if (r.valid) lines.push(`Good signature from ${who}`);
  else if (r.revoked) lines.push('Key revoked');
  else if (sigExpired) lines.push(`Expired signature from ${who}`);
  else lines.push(`BAD signature from ${who}`);
  const bySubkey = !keyMissing && Boolean(r.primaryKeyId);
  if (bySubkey) lines.push(`Primary key ID ${r.primaryKeyId}`);
  const expiry = (what: string, when: Date | null | undefined, expired: boolean): void => {
    if (when) lines.push(`${what} ${expired ? 'expired' : 'expires'} ${date(when)}`);
  };
  expiry('Signature', r.signatureExpires, sigExpired);
  if (!keyMissing) expiry('Key', r.keyExpires, keyExpired);
  if (bySubkey) expiry('Primary key', r.primaryKeyExpires, keyExpired);
  return lines;
}

/**
 * `ostree show`'s block for the GPG signatures of a commit (printed right after the commit's
 * closing blank line): `Found N signature(s):`,
 * then each signature's lines indented by two spaces, separated by blank lines; empty when
 * there are no reports. Pure.
 */
export function signatureBlock(reports: readonly SignatureReport[], heading = 'signature', options: SignatureTextOptions = {}): string {
  if (reports.length === 0) return '';
  const parts = [`Found ${reports.length} ${heading}${reports.length === 1 ? '' : 's'}:\n`];
  for (const r of reports) parts.push(`\n${describeSignature(r, options).map((l) => `  ${l}\n`).join('')}`);
  return parts.join('');
}

/** What was verified, for OSTree's wording of pull errors. */
export type VerifiedObject = { kind: 'commit'; checksum: string } | { kind: 'summary'; hasSigFile: boolean };

/**
 * Throw the error an OSTree pull reports when `result` is not valid; return when it is.
 * GPG commit errors start with `Commit CSUM: ` (summary errors have no prefix), ed25519 ones with
 * `Can't verify commit CSUM: signature: `, as in OSTree 2022.7.
 * Codes as `assertVerified`: SIGNATURE_MISSING, KEY_REVOKED, KEY_EXPIRED, SIGNATURE_INVALID.
 * Signature dates in the message follow `options.timeLocale` (C.UTF-8 when absent).
 */
export function assertPullVerified(result: VerifyResult, what: VerifiedObject, options: SignatureTextOptions = {}): void {
  if (result.valid) return;
  const failed = result.schemes.find((s) => s.validCount === 0)!;
  const reports = result.signatures.filter((r) => r.scheme === failed.scheme);
  // OSTree words GPG and `ostree sign` failures differently: GPG errors start with `Commit CSUM: `,
  // sign-engine errors with `Can't verify commit CSUM: signature: ` (summary errors have no CSUM).
  const gpgPrefix = what.kind === 'commit' ? `Commit ${what.checksum}: ` : '';
  const signPrefix = what.kind === 'commit' ? `Can't verify commit ${what.checksum}: signature: ` : "Can't verify summary: signature: ";
  const prefix = failed.scheme === 'gpg' ? gpgPrefix : signPrefix;
  const data = { object: what.kind === 'commit' ? `${what.checksum}.commit` : 'summary', scheme: failed.scheme, signatures: reports };
  if (failed.found === 0) {
    let msg: string;
    if (failed.scheme === 'gpg') {
      msg =
        gpgPrefix +
        (what.kind === 'summary'
          ? what.hasSigFile
            ? // OSTree's words, its hint at gpg-verify included (the summary's check shares the commit's message).
              'GPG verification enabled, but no signatures found (use gpg-verify=false in remote config to disable)'
            : 'GPG verification enabled, but no summary.sig found (use gpg-verify-summary=false in remote config to disable)'
          : 'GPG verification enabled, but no signatures found (use gpg-verify=false in remote config to disable)');
    } else if (what.kind === 'summary' && !what.hasSigFile) {
      msg = 'Signatures verification enabled, but no summary.sig found (use sign-verify-summary=false in remote config to disable)';
    } else {
      msg = `${signPrefix}${failed.scheme}: ${what.kind} have no signatures of my type`;
    }
    throw new SigningError('SIGNATURE_MISSING', msg, data);
  }
  // As OSTree: every signature's description, the last one first.
  const detail = [...reports].reverse().map((r) => describeSignature(r, options).join('; ')).join('; ');
  const code = reports.some((r) => r.revoked) ? 'KEY_REVOKED' : reports.some((r) => r.expired) ? 'KEY_EXPIRED' : 'SIGNATURE_INVALID';
  throw new SigningError(code, `${prefix}${detail}`, data);
}
