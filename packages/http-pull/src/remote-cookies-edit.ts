/**
 * Editing a remote's cookie jar `REPO/NAME.cookies.txt` as ostree's CLI edits it
 * (`ostree remote add-cookie|delete-cookie|list-cookies`, `ot-remote-cookie-util.c`); pulls send
 * its cookies (remote-cookies.ts, which reads the jar as curl does).
 *
 *   add:    appends `DOMAIN<TAB>TRUE|FALSE<TAB>PATH<TAB>FALSE<TAB>EXPIRES<TAB>NAME<TAB>VALUE`, TRUE
 *           when DOMAIN starts with `.`, EXPIRES 25 years from now; the jar is created (0644)
 *   delete: rewrites the jar (0600) without the cookies matching domain, path and name, then
 *           fails with `Cookie not found in jar` when none did (the jar is rewritten, or created
 *           empty, anyway, as ostree)
 *   list:   the cookies of the jar, as ostree's CLI reads them
 *
 * Lines are read as ostree's CLI reads them (its `sscanf("%ms\t%ms\t%ms\t%ms\t%llu\t%ms\t%ms")`):
 * seven whitespace-separated words, the fifth an unsigned number; other lines are not cookies,
 * and delete drops them, as ostree does.
 *
 * Hostile input, where this differs from ostree on purpose: the remote name must be a valid
 * remote name (ostree builds the file name from it unchecked, so `../x` writes outside the
 * repository); a field holding whitespace or a control character, or a name or value holding
 * `;` (a name also `=`), is refused (ostree would write a line it cannot read back, or one that
 * splits into two cookies); list reads the repository's jar (ostree 2022.7 opens the file name
 * relative to the working directory); a jar that is not UTF-8 is refused, as ostree refuses it.
 *
 * Locking: none, as ostree. An add is one O_APPEND write; a delete is tmp + fsync + rename, so a
 * crash leaves the old jar or the new one, and an add racing a delete may be lost.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, openSync, writeSync } from 'node:fs';
import { readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { LarchError, validateRemoteName, type Repo } from '@larch/core-store';
import { cookieJarName } from './remote-cookies.js';

/** One cookie of a jar as ostree's CLI reads it. */
export interface EditableCookie {
  domain: string;
  /** The include-subdomains field as written (`TRUE`/`FALSE`). */
  flag: string;
  path: string;
  /** The secure field as written (`TRUE`/`FALSE`). */
  secure: string;
  /** Expiry in unix seconds as `strtoull` reads it (a negative number wraps, a huge one saturates). */
  expiration: bigint;
  name: string;
  value: string;
}

/** A cookie to add. */
export interface NewCookie {
  domain: string;
  path: string;
  name: string;
  value: string;
}

interface JarLine extends EditableCookie {
  line: string;
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

function jarPath(repo: Repo, remote: string): string {
  validateRemoteName(remote);
  return join(repo.path, cookieJarName(remote));
}

/** The jar's cookie lines (none when it does not exist); ostree requires the file to be UTF-8. */
async function readJar(path: string): Promise<JarLine[]> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new LarchError('IO_ERROR', `${path}: ${(e as Error).message}`, { path }, { cause: e });
  }
  const text = new TextDecoder('utf-8', { fatal: false }).decode(bytes);
  if (!Buffer.from(text, 'utf8').equals(bytes)) throw new LarchError('INVALID_ARGUMENT', 'Invalid UTF-8', { path });
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
  throw new LarchError('INVALID_ARGUMENT', `Invalid cookie ${what} '${shown}': it must be non-empty and hold no whitespace or control characters${also ? ` and no ${also}` : ''}`, { field: what });
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

/**
 * Append a cookie to remote `remote`'s jar in `repo`, expiring 25 years after `now`. Throws
 * INVALID_REF for a bad remote name, INVALID_ARGUMENT for a field that could not be read back
 * or would split a Cookie header, IO_ERROR. No lock (one O_APPEND write).
 */
export async function addRemoteCookie(repo: Repo, remote: string, c: NewCookie, now: Date = new Date()): Promise<void> {
  const path = jarPath(repo, remote);
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
    throw new LarchError('IO_ERROR', `open(${cookieJarName(remote)}): ${(e as Error).message}`, { path }, { cause: e });
  }
  try {
    const buf = Buffer.from(line, 'utf8');
    for (let off = 0; off < buf.length; ) off += writeSync(fd, buf, off);
  } catch (e) {
    throw new LarchError('IO_ERROR', `write: ${(e as Error).message}`, { path }, { cause: e });
  } finally {
    closeSync(fd);
  }
}

/**
 * Remove the cookies of remote `remote`'s jar matching `domain`, `path` and `name`; the jar is
 * rewritten (tmp + fsync + rename, mode 0600) either way. Throws INVALID_ARGUMENT `Cookie not
 * found in jar` when none matched, INVALID_REF for a bad remote name, IO_ERROR. No lock.
 */
export async function deleteRemoteCookie(repo: Repo, remote: string, cookie: Omit<NewCookie, 'value'>): Promise<void> {
  const path = jarPath(repo, remote);
  const lines = await readJar(path);
  const kept = lines.filter((l) => !(l.domain === cookie.domain && l.path === cookie.path && l.name === cookie.name));
  const tmp = join(repo.path, `.${cookieJarName(remote)}.${randomBytes(6).toString('hex')}.tmp`);
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
    throw new LarchError('IO_ERROR', `Writing ${cookieJarName(remote)}: ${(e as Error).message}`, { path }, { cause: e });
  }
  if (kept.length === lines.length) throw new LarchError('INVALID_ARGUMENT', 'Cookie not found in jar', { remote, ...cookie });
}

/**
 * The cookies of remote `remote`'s jar in `repo`, in file order (none when there is no jar).
 * Throws INVALID_REF for a bad remote name, INVALID_ARGUMENT for a jar that is not UTF-8,
 * IO_ERROR. Reads only; no lock.
 */
export async function listRemoteCookies(repo: Repo, remote: string): Promise<EditableCookie[]> {
  return (await readJar(jarPath(repo, remote))).map(({ line: _line, ...c }) => c);
}
