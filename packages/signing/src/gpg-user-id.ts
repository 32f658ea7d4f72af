/**
 * OpenPGP user ids as gpgme presents them to OSTree: the parts of `Name (Comment) <email>`
 * (what `Good signature from "NAME <EMAIL>"` prints) and the mail address a user id names (what
 * the Web Key Directory URLs of `ostree remote gpg-list-keys` are built from). Pure functions.
 */

import { createHash } from 'node:crypto';

/** The parts of a user id. Missing parts are ''. */
export interface UserIdParts {
  name: string;
  comment: string;
  email: string;
}

/**
 * Split a user id the way gpgme does: the email is the text inside the first `<…>`, the comment
 * the text inside the first `(…)` outside of it, the name what comes before either (surrounding
 * blanks dropped). `Test Key 1` has the name `Test Key 1` and no email, so OSTree prints it as
 * `"Test Key 1 <>"`.
 */
export function parseUserId(uid: string): UserIdParts {
  let name: string | null = null;
  let email: string | null = null;
  let comment: string | null = null;
  let inName = false;
  let inEmail = 0;
  let inComment = 0;
  let start = 0;
  for (let i = 0; i < uid.length; i++) {
    const c = uid[i];
    if (inEmail > 0) {
      if (c === '<') inEmail++;
      else if (c === '>' && --inEmail === 0 && email === null) email = uid.slice(start, i);
    } else if (inComment > 0) {
      if (c === '(') inComment++;
      else if (c === ')' && --inComment === 0 && comment === null) comment = uid.slice(start, i);
    } else if (c === '<' || c === '(') {
      if (inName && name === null) name = uid.slice(start, i);
      inName = false;
      if (c === '<') inEmail = 1;
      else inComment = 1;
      start = i + 1;
    } else if (!inName && c !== ' ' && c !== '\t' && name === null) {
      inName = true;
      start = i;
    }
  }
  if (inName && name === null) name = uid.slice(start);
  return { name: (name ?? '').replace(/[ \t]+$/, ''), comment: comment ?? '', email: email ?? '' };
}

const DOMAIN_CHARS = /^[0-9A-Za-z_.-]$/;
const LOCAL_EXTRA = "!#$%&'*+/=?^`{|}~";

/** GnuPG's check of an addr-spec: one `@`, not at either end, no `..`, no trailing `.`, plain characters. */
function isValidMailbox(s: string): boolean {
  if (s.split('@').length !== 2 || s.startsWith('@') || s.endsWith('@') || s.endsWith('.') || s.includes('..')) return false;
  let atSeen = false;
  for (const c of s) {
    if (c.charCodeAt(0) >= 0x80) continue; // only ASCII is checked
    if (c === '@') atSeen = true;
    else if (!DOMAIN_CHARS.test(c) && (atSeen || !LOCAL_EXTRA.includes(c))) return false;
  }
  return true;
}

/**
 * The mail address a user id names, as gpgme's `uid->address`: the text inside `<…>` when the
 * user id has it, else the whole user id when it is itself an address; lower-cased. Null when
 * it names no valid address (`Test Key 1`, `Name <>`).
 */
export function mailboxOfUserId(uid: string): string | null {
  const open = uid.indexOf('<');
  let candidate: string;
  if (open >= 0) {
    const close = uid.indexOf('>', open + 1);
    if (close < 0) return null;
    candidate = uid.slice(open + 1, close);
  } else {
    candidate = uid;
  }
  return isValidMailbox(candidate) ? asciiLower(candidate) : null;
}

/** ASCII-only lower case (g_ascii_strdown; other characters are kept). */
function asciiLower(s: string): string {
  return s.replace(/[A-Z]/g, (c) => c.toLowerCase());
}

const ZBASE32 = 'ybndrfg8ejkmcpqxot1uwisza345h769';

/** z-base-32 (the Web Key Directory's encoding of the SHA-1 of the local part). */
export function zbase32(bytes: Uint8Array): string {
  let out = '';
  let acc = 0;
  let bits = 0;
  for (const b of bytes) {
    acc = (acc << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out += ZBASE32[(acc >>> (bits - 5)) & 31];
      bits -= 5;
    }
    acc &= (1 << bits) - 1;
  }
  if (bits > 0) out += ZBASE32[(acc << (5 - bits)) & 31];
  return out;
}

/** GLib's g_uri_escape_string (s, NULL, FALSE): everything but ALPHA / DIGIT / `-._~` as %XX of its UTF-8 bytes. */
function uriEscape(s: string): string {
  let out = '';
  for (const b of Buffer.from(s, 'utf8')) {
    const c = String.fromCharCode(b);
    out += /[A-Za-z0-9\-._~]/.test(c) ? c : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/**
 * The OpenPGP Web Key Directory URLs of an address (draft-koch-openpgp-webkey-service), as
 * OSTree prints them: `https://openpgpkey.DOMAIN/.well-known/openpgpkey/domain/hu/HASH?l=LOCAL`
 * (advanced) and `https://DOMAIN/.well-known/openpgpkey/hu/HASH?l=LOCAL` (direct), HASH being
 * the z-base-32 SHA-1 of the lower-cased local part. Null for a string that is not `LOCAL@DOMAIN`.
 */
export function wkdUrls(address: string): { advanced: string; direct: string } | null {
  const parts = address.split('@');
  if (parts.length !== 2) return null;
  const [local, domain] = parts;
  const hash = zbase32(createHash('sha1').update(asciiLower(local), 'utf8').digest());
  const l = uriEscape(local);
  return {
    advanced: `https://openpgpkey.${domain}/.well-known/openpgpkey/${asciiLower(domain)}/hu/${hash}?l=${l}`,
    direct: `https://${domain}/.well-known/openpgpkey/hu/${hash}?l=${l}`,
  };
}
