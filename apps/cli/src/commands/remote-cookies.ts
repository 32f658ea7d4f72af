/**
 * `larch remote list-cookies NAME`, printed as ostree prints it (`ot-remote-cookie-util.c`): `--`,
 * then `Domain:`, `Path:`, `Name:`, `Secure:`, `Expires: YYYY-MM-DD HH:MM:SS +0000` (when
 * representable), `Value:` for each cookie of the jar. Reading and editing the jar
 * (`add-cookie`, `delete-cookie`) is @larch/http-pull's (remote-cookies-edit.ts).
 */
import type { EditableCookie } from '@larch/http-pull';

const pad = (n: number): string => String(n).padStart(2, '0');

/** `g_date_time_format (g_date_time_new_from_unix_utc (t), "%Y-%m-%d %H:%M:%S +0000")`, or null out of GLib's range. */
function expiresText(expiration: bigint): string | null {
  const t = BigInt.asIntN(64, expiration);
  if (t < -62135596800n || t > 253402300799n) return null;
  const d = new Date(Number(t) * 1000);
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} +0000`;
}

/** The text of `remote list-cookies NAME` for the jar's cookies (empty for none). */
export function cookiesText(cookies: readonly EditableCookie[]): string {
  let out = '';
  for (const c of cookies) {
    out += `--\nDomain: ${c.domain}\nPath: ${c.path}\nName: ${c.name}\nSecure: ${c.secure}\n`;
    const expires = expiresText(c.expiration);
    if (expires !== null) out += `Expires: ${expires}\n`;
    out += `Value: ${c.value}\n`;
  }
  return out;
}
