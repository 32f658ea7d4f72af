/**
 * `larch remote add-cookie|delete-cookie|list-cookies`: a remote's cookie jar
 * `REPO/NAME.cookies.txt`, edited as ostree's CLI edits it (`ot-remote-cookie-util.c`); pulls
 * send its cookies (@larch/http-pull, remote-cookies.ts).
 *
 *   add-cookie NAME DOMAIN PATH COOKIE_NAME VALUE
 *       appends `DOMAIN<TAB>TRUE|FALSE<TAB>PATH<TAB>FALSE<TAB>EXPIRES<TAB>NAME<TAB>VALUE`, TRUE when
 *       DOMAIN starts with `.`, EXPIRES 25 years from now; the file is created (0644) if needed
 *   delete-cookie NAME DOMAIN PATH COOKIE_NAME
 *       rewrites the jar (0600) without the cookies matching all three, then fails with
 *       `Cookie not found in jar` when none did (the jar is rewritten, or created empty, anyway)
 *   list-cookies NAME
 *       `--`, then `Domain:`, `Path:`, `Name:`, `Secure:`, `Expires: YYYY-MM-DD HH:MM:SS +0000`
 *       (when representable), `Value:` for each cookie
 *
 * Lines are read as ostree reads them (its `sscanf("%ms\t%ms\t%ms\t%ms\t%llu\t%ms\t%ms")`): seven
 * whitespace-separated words, the fifth an unsigned number; other lines are not cookies, and
 * delete-cookie drops them, as ostree does.
 *
 * Deliberate differences: the remote name must be a valid remote name (ostree builds the file
 * name from it unchecked, so `../x` writes outside the repository); a field holding whitespace
 * or a control character, or a name or value holding `;`, is refused (ostree would write a line
 * it cannot read back, or one that splits into two cookies); and list-cookies reads the
 * repository's jar (ostree 2022.7 opens the file name relative to the working directory).
 */
import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, openSync, writeSync } from 'node:fs';
import { readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { validateRemoteName } from '@larch/core-store';
import { CommandError } from '../context.js';

/** One jar line as ostree's CLI parses it. */
interface JarLine {
  line: string;
  domain: string;
  flag: string;
  path: string;
  secure: string;
  expiration: bigint;
  name: string;
  value: string;
}

const U64 = 1n << 64n;

function isSpace(c: string | undefined): boolean {
  return c === ' ' || c === '\t' || c === '\n' || c === '\v' || c === '\f' || c === '\r';
}

/** sscanf's `%ms` and `%llu` over one line; null when the seven fields are not all there. */
function scanLine(line: string): JarLine | null {
  let i = 0;
  const skip = (): void => {
    while (i < line.length && isSpace(line[i])) i++;
  };
  const word = (): string | null => {
    skip();
    const s = i;
    while (i < line.length && !isSpace(line[i])) i++;
    return i > s ? line.slice(s, i) : null;
  };
  const number = (): bigint | null => {
    skip();
    let negative = false;
    if (line[i] === '+' || line[i] === '-') negative = line[i++] === '-';
    const s = i;
    while (i < line.length && line[i]! >= '0' && line[i]! <= '9') i++;
    if (i === s) return null;
    let v = BigInt(line.slice(s, i));
    if (v >= U64) v = U64 - 1n; // strtoull saturates
    return negative ? (U64 - v) % U64 : v;
  };
  const domain = word();
  const flag = domain === null ? null : word();
  const path = flag === null ? null : word();
  const secure = path === null ? null : word();
  const expiration = secure === null ? null : number();
  const name = expiration === null ? null : word();
  const value = name === null ? null : word();
  if (value === null) return null;
  return { line, domain: domain!, flag: flag!, path: path!, secure: secure!, expiration: expiration!, name: name!, value };
}

function jarPath(repoPath: string, remote: string): string {
  validateRemoteName(remote);
  return join(repoPath, `${remote}.cookies.txt`);
}

/** The jar's lines (none when it does not exist); ostree requires the file to be UTF-8. */
async function readJar(path: string): Promise<JarLine[]> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new CommandError(`${path}: ${(e as Error).message}`);
  }
  const text = new TextDecoder('utf-8', { fatal: false }).decode(bytes);
  if (!Buffer.from(text, 'utf8').equals(bytes)) throw new CommandError('Invalid UTF-8');
  const out: JarLine[] = [];
  for (const line of text.split('\n')) {
    const l = scanLine(line);
    if (l !== null) out.push(l);
  }
  return out;
}

/** Refuse a field ostree would write but not read back, or that would split a Cookie header. */
function checkField(what: string, value: string, forbidden: string): void {
  // eslint-disable-next-line no-control-regex
  const bad = value === '' || /[\s\x00-\x1f\x7f]/.test(value) || [...forbidden].some((c) => value.includes(c));
  if (!bad) return;
  const also = [...forbidden].map((c) => `'${c}'`).join(', ');
  // eslint-disable-next-line no-control-regex
  const shown = value.replace(/[\x00-\x1f\x7f]/g, '?');
  throw new CommandError(`Invalid cookie ${what} '${shown}': it must be non-empty and hold no whitespace or control characters${also ? ` and no ${also}` : ''}`);
}

/** GLib's g_date_time_add_years: the same month, day and time N years on (29 February → 28th). */
function addYears(d: Date, years: number): Date {
  const y = d.getUTCFullYear() + years;
  const m = d.getUTCMonth();
  let day = d.getUTCDate();
  const lastDay = new Date(Date.UTC(y, m + 1, 0)).getUTCDate();
  if (day > lastDay) day = lastDay;
  return new Date(Date.UTC(y, m, day, d.getUTCHours(), d.getUTCMinutes(), d.getUTCSeconds()));
}

/** Append one cookie to REMOTE's jar (see the top of this file). No lock (one O_APPEND write). */
export function addCookie(repoPath: string, remote: string, c: { domain: string; path: string; name: string; value: string }, now: Date = new Date()): void {
  const path = jarPath(repoPath, remote);
  checkField('domain', c.domain, '');
  checkField('path', c.path, '');
  checkField('name', c.name, ';=');
  checkField('value', c.value, ';');
  const expires = Math.floor(addYears(now, 25).getTime() / 1000);
  const line = `${c.domain}\t${c.domain.startsWith('.') ? 'TRUE' : 'FALSE'}\t${c.path}\tFALSE\t${expires}\t${c.name}\t${c.value}\n`;
  let fd: number;
  try {
    fd = openSync(path, 'a', 0o644);
  } catch (e) {
    throw new CommandError(`open(${remote}.cookies.txt): ${(e as Error).message}`);
  }
  try {
    const buf = Buffer.from(line, 'utf8');
    for (let off = 0; off < buf.length; ) off += writeSync(fd, buf, off);
  } catch (e) {
    throw new CommandError(`write: ${(e as Error).message}`);
  } finally {
    closeSync(fd);
  }
}

/**
 * Remove the cookies of REMOTE's jar matching DOMAIN, PATH and NAME; the jar is rewritten
 * (tmp + fsync + rename, mode 0600) either way. Throws `Cookie not found in jar` when none matched.
 */
export async function deleteCookie(repoPath: string, remote: string, domain: string, cookiePath: string, name: string): Promise<void> {
  const path = jarPath(repoPath, remote);
  const lines = await readJar(path);
  const kept = lines.filter((l) => !(l.domain === domain && l.path === cookiePath && l.name === name));
  const tmp = join(repoPath, `.${remote}.cookies.txt.${randomBytes(6).toString('hex')}.tmp`);
  try {
    const fd = openSync(tmp, 'wx', 0o600);
    try {
      const buf = Buffer.from(kept.map((l) => `${l.line}\n`).join(''), 'utf8');
      for (let off = 0; off < buf.length; ) off += writeSync(fd, buf, off);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw new CommandError(`Writing ${remote}.cookies.txt: ${(e as Error).message}`);
  }
  if (kept.length === lines.length) throw new CommandError('Cookie not found in jar');
}

const pad = (n: number): string => String(n).padStart(2, '0');

/** `g_date_time_format (g_date_time_new_from_unix_utc (t), "%Y-%m-%d %H:%M:%S +0000")`, or null out of GLib's range. */
function expiresText(expiration: bigint): string | null {
  const t = BigInt.asIntN(64, expiration);
  if (t < -62135596800n || t > 253402300799n) return null;
  const d = new Date(Number(t) * 1000);
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} +0000`;
}

/** The text of `remote list-cookies NAME` (empty when there is no jar). Reads only. */
export async function listCookiesText(repoPath: string, remote: string): Promise<string> {
  let out = '';
  for (const l of await readJar(jarPath(repoPath, remote))) {
    out += `--\nDomain: ${l.domain}\nPath: ${l.path}\nName: ${l.name}\nSecure: ${l.secure}\n`;
    const expires = expiresText(l.expiration);
    if (expires !== null) out += `Expires: ${expires}\n`;
    out += `Value: ${l.value}\n`;
  }
  return out;
}
