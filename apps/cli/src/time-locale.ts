/**
 * The user's locale, as ostree sees it, for the dates it prints with GLib's `%c` (signature dates
 * in `show`). ostree calls setlocale(LC_ALL, ""): each category comes from LC_ALL, else LC_<CAT>,
 * else LANG, else C; and if any category names a locale the system lacks, the whole call fails
 * and everything stays C. GLib then takes `%c`'s layout and the names from LC_TIME and converts
 * its output to LC_CTYPE's charset ($CHARSET overrides it).
 *
 * Node has no nl_langinfo(), so the facts come from the system's `locale` program, which reads
 * the same compiled locale data (LOCPATH included) with the same rules; it only runs when the
 * environment names a locale other than C/POSIX, and at most once per command. `%Z` (used by
 * en_US, de_DE, …) comes from `date +%Z`, which reads the same tzdata as GLib. Without those
 * programs the C locale and Node's zone names are used.
 */
import { spawnSync } from 'node:child_process';
import { C_TIME_LOCALE, type TimeLocale } from '@larch/signing';
import { keywords, localeName, unquote, type Env } from './locale-env.js';

const CATEGORIES = ['LC_CTYPE', 'LC_NUMERIC', 'LC_TIME', 'LC_COLLATE', 'LC_MONETARY', 'LC_MESSAGES', 'LC_PAPER', 'LC_NAME', 'LC_ADDRESS', 'LC_TELEPHONE', 'LC_MEASUREMENT', 'LC_IDENTIFICATION'];

const OUTDIGITS = Array.from({ length: 10 }, (_, i) => `ctype-outdigit${i}_mb`);
const KEYWORDS = ['LC_TIME', 'charmap', ...OUTDIGITS];

/** $CHARSET overrides every category's charset in GLib: UTF-8 when it contains "UTF-8". */
function charsetOverride(env: Env): boolean | undefined {
  const c = env.CHARSET;
  return c === undefined || c === '' ? undefined : c.includes('UTF-8');
}

/** Decode a value `locale` printed in the charset `label` (latin1 when Node does not know it). */
function decode(bytes: Buffer, label: string): string {
  try {
    return new TextDecoder(label).decode(bytes);
  } catch {
    return bytes.toString('latin1');
  }
}

/** A list value, `"a;b;c"` or `"a";"b";"c"`, as the raw bytes of each item; null for another shape. */
function items(raw: Buffer | undefined): Buffer[] | null {
  const inner = unquote(raw);
  if (inner === null) return null;
  const s = inner.toString('latin1');
  const list = s.includes('";"') ? s.split('";"') : s.split(';');
  return list.map((x) => Buffer.from(x, 'latin1'));
}

/** `date +%Z` for one instant, with the caller's TZ; null when it cannot be run. */
function tzdataAbbreviation(env: Env, date: Date): string | null {
  const r = spawnSync('date', [`--date=@${Math.floor(date.getTime() / 1000)}`, '+%Z'], { env: { ...env, LC_ALL: 'C' }, encoding: 'utf8', timeout: 10_000 });
  if (r.error || r.status !== 0) return null;
  const z = r.stdout.trim();
  return z === '' ? null : z;
}

function zoneAbbreviations(env: Env): (date: Date) => string {
  const seen = new Map<number, string>();
  return (date) => {
    const key = Math.floor(date.getTime() / 1000);
    let z = seen.get(key);
    if (z === undefined) {
      z = tzdataAbbreviation(env, date) ?? new Intl.DateTimeFormat('en-US', { timeZoneName: 'short' }).formatToParts(date).find((p) => p.type === 'timeZoneName')?.value ?? 'UTC';
      seen.set(key, z);
    }
    return z;
  };
}

function cLocale(env: Env): TimeLocale {
  const utf8 = charsetOverride(env) ?? false;
  return { ...C_TIME_LOCALE, utf8, zoneAbbreviation: zoneAbbreviations(env) };
}

/**
 * The TimeLocale ostree would use in the environment `env`. Runs `locale -k` (and later
 * `date +%Z`) when a category names a locale other than C/POSIX; never throws.
 */
export function timeLocaleFromEnv(env: Env = process.env): TimeLocale {
  const names = CATEGORIES.map((c) => localeName(env, c));
  if (names.every((n) => n === 'C' || n === 'POSIX')) return cLocale(env);
  const r = spawnSync('locale', ['-k', ...KEYWORDS], { env, timeout: 10_000 });
  // A category the system lacks makes setlocale(LC_ALL, "") fail: ostree then runs in C.
  if (r.error || r.status !== 0 || r.stderr.toString('utf8').includes('Cannot set')) return cLocale(env);
  const kw = keywords(r.stdout);
  const timeCharset = unquote(kw.get('time-codeset'))?.toString('latin1') ?? 'UTF-8';
  const ctypeCharset = unquote(kw.get('charmap'))?.toString('latin1') ?? 'ANSI_X3.4-1968';
  const text = (k: string, charset = timeCharset): string | undefined => {
    const v = unquote(kw.get(k));
    return v === null ? undefined : decode(v, charset);
  };
  const list = (k: string, n: number): string[] | undefined => {
    const l = items(kw.get(k));
    return l === null || l.length !== n ? undefined : l.map((b) => decode(b, timeCharset));
  };
  const c = C_TIME_LOCALE;
  const amPm = list('am_pm', 2);
  const digits = OUTDIGITS.map((k) => text(k, ctypeCharset) ?? '');
  return {
    dateTimeFormat: text('d_t_fmt') ?? c.dateTimeFormat,
    dateFormat: text('d_fmt') ?? c.dateFormat,
    timeFormat: text('t_fmt') ?? c.timeFormat,
    timeFormatAmPm: text('t_fmt_ampm') ?? c.timeFormatAmPm,
    abbreviatedDays: list('abday', 7) ?? c.abbreviatedDays,
    days: list('day', 7) ?? c.days,
    abbreviatedMonths: list('abmon', 12) ?? c.abbreviatedMonths,
    months: list('mon', 12) ?? c.months,
    abbreviatedAltMonths: list('ab_alt_mon', 12) ?? list('abmon', 12) ?? c.abbreviatedMonths,
    altMonths: list('alt_mon', 12) ?? list('mon', 12) ?? c.months,
    amPm: amPm !== undefined ? [amPm[0], amPm[1]] : c.amPm,
    ...(digits.every((d) => d !== '') ? { altDigits: digits } : {}),
    utf8: charsetOverride(env) ?? ctypeCharset.toUpperCase().replace(/[^A-Z0-9]/g, '') === 'UTF8',
    zoneAbbreviation: zoneAbbreviations(env),
  };
}
