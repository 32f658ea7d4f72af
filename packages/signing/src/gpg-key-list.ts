/**
 * The trusted keys of a keyring as `ostree remote gpg-list-keys` shows them
 * (`ostree_repo_remote_get_gpg_keys` + `ot_dump_gpg_key`): per key, the primary key and each
 * subkey with fingerprint, creation and expiry time and the revoked / expired state gpg gives
 * them now, and each user id with its Web Key Directory update URLs.
 *
 * gpg's view of a key is reproduced, not OpenPGP.js's: a revoked primary key makes its subkeys
 * and user ids revoked too, and a revoked key is not also reported expired. Pure apart from the
 * signature checks OpenPGP.js runs on the keys' self-signatures.
 */

import type * as openpgp from 'openpgp';
import { sanitize } from './errors.js';
import type { GpgKeyring } from './gpg-keyring.js';
import { mailboxOfUserId, parseUserId, wkdUrls } from './gpg-user-id.js';
import { C_UTF8_TIME_LOCALE, formatLocaleDateTime, type TimeLocale } from './date-format.js';

/** One primary key or subkey (the `a{sv}` OSTree builds for each gpgme subkey). */
export interface GpgSubkeyInfo {
  /** Upper-case hex. */
  fingerprint: string;
  created: Date;
  /** Null: never expires. */
  expires: Date | null;
  revoked: boolean;
  expired: boolean;
  invalid: boolean;
}

/** One user id. */
export interface GpgUserIdInfo {
  uid: string;
  name: string;
  comment: string;
  email: string;
  revoked: boolean;
  invalid: boolean;
  /** WKD URLs of the user id's mail address (null when it names none). */
  advancedUrl: string | null;
  directUrl: string | null;
}

/** One key: `subkeys[0]` is the primary key. */
export interface GpgKeyInfo {
  subkeys: GpgSubkeyInfo[];
  uids: GpgUserIdInfo[];
}

function finiteDate(d: Date | number | null | undefined): Date | null {
  return d instanceof Date && Number.isFinite(d.getTime()) ? d : null;
}

async function rejects(p: Promise<unknown>, what: RegExp): Promise<boolean> {
  try {
    await p;
    return false;
  } catch (e) {
    return what.test((e as Error).message);
  }
}

async function describeKey(key: openpgp.PublicKey, now: Date): Promise<GpgKeyInfo> {
  const at = now.getTime();
  const revoked = await key.isRevoked(undefined, undefined, now).catch(() => false);
  const primaryExpires = finiteDate(await key.getExpirationTime().catch(() => null));
  const subkeys: GpgSubkeyInfo[] = [
    {
      fingerprint: key.getFingerprint().toUpperCase(),
      created: key.getCreationTime(),
      expires: primaryExpires,
      revoked,
      expired: !revoked && primaryExpires !== null && primaryExpires.getTime() <= at,
      invalid: false,
    },
  ];
  for (const sub of key.getSubkeys()) {
    const subRevoked = revoked || (await rejects(sub.verify(now), /revoked/i));
    const expires = finiteDate(await sub.getExpirationTime(now).catch(() => null));
    subkeys.push({
      fingerprint: sub.getFingerprint().toUpperCase(),
      created: sub.getCreationTime(),
      expires,
      revoked: subRevoked,
      expired: !subRevoked && expires !== null && expires.getTime() <= at,
      invalid: false,
    });
  }
  const uids: GpgUserIdInfo[] = [];
  for (const user of key.users) {
    if (user.userID === null) continue; // photo ids are not listed
    const uid = user.userID.userID;
    const parts = parseUserId(uid);
    const address = mailboxOfUserId(uid);
    const urls = address !== null ? wkdUrls(address) : null;
    const uidRevoked = revoked || (await rejects(user.verify(now), /revoked/i));
    uids.push({ uid, ...parts, revoked: uidRevoked, invalid: false, advancedUrl: urls?.advanced ?? null, directUrl: urls?.direct ?? null });
  }
  return { subkeys, uids };
}

/**
 * Describe every key of `keyring`, in keyring order, with its state at `now` (default: the
 * current time). Never throws for a key with odd or missing self-signatures: what cannot be
 * established is reported as not revoked and never expiring.
 */
export async function describeGpgKeys(keyring: GpgKeyring, now: Date = new Date()): Promise<GpgKeyInfo[]> {
  const out: GpgKeyInfo[] = [];
  for (const k of keyring.keys) out.push(await describeKey(k, now));
  return out;
}

/**
 * `ostree remote gpg-list-keys`'s text for the keys:
 *
 *   Key: FPR[ (revoked)][ (invalid)]
 *     Created: DATE
 *     Expires|Expired: DATE                 (only with an expiry)
 *     UID: USER-ID[ (revoked)][ (invalid)]
 *     Advanced update URL: URL              (empty when the user id has no address)
 *     Direct update URL: URL
 *     Subkey: FPR[ (revoked)][ (invalid)]
 *       Created: DATE
 *       Expires|Expired: DATE
 *
 * Dates are GLib's `%c` in local time and `options.timeLocale` (C.UTF-8 when absent). Pure.
 */
export function gpgKeyListText(keys: readonly GpgKeyInfo[], options: { timeLocale?: TimeLocale } = {}): string {
  const locale = options.timeLocale ?? C_UTF8_TIME_LOCALE;
  const date = (d: Date): string => formatLocaleDateTime(d, locale);
  const flags = (revoked: boolean, invalid: boolean): string => `${revoked ? ' (revoked)' : ''}${invalid ? ' (invalid)' : ''}`;
  const lines: string[] = [];
  const subkeyLines = (k: GpgSubkeyInfo, primary: boolean): void => {
    const indent = primary ? '  ' : '    ';
    lines.push(`${primary ? 'Key' : '  Subkey'}: ${k.fingerprint}${flags(k.revoked, k.invalid)}`);
    lines.push(`${indent}Created: ${date(k.created)}`);
    if (k.expires !== null) lines.push(`${indent}${k.expired ? 'Expired' : 'Expires'}: ${date(k.expires)}`);
  };
  for (const key of keys) {
    subkeyLines(key.subkeys[0], true);
    for (const u of key.uids) {
      lines.push(`  UID: ${sanitize(u.uid, 1000)}${flags(u.revoked, u.invalid)}`);
      lines.push(`  Advanced update URL: ${u.advancedUrl === null ? '' : sanitize(u.advancedUrl, 1000)}`);
      lines.push(`  Direct update URL: ${u.directUrl === null ? '' : sanitize(u.directUrl, 1000)}`);
    }
    for (const s of key.subkeys.slice(1)) subkeyLines(s, false);
  }
  return lines.map((l) => `${l}\n`).join('');
}
