/**
 * Date arguments (`commit --timestamp`, `prune --keep-younger-than`).
 *
 * ostree 2022.7 parses these with gnulib's parse_datetime (the parser behind `date -d`), not
 * with GLib. We accept the subset that scripts use in practice, checked against the real CLI:
 *   `@SECONDS` (may be negative), `now`, `today`, `yesterday`, `tomorrow`,
 *   `YYYY-MM-DD` (or `October 25 1985`, `Oct 25, 1985`, `25 October 1985`), optionally followed by `T` or a space and `HH:MM[:SS[.fraction]]`,
 *   optionally followed by a zone: `Z`, `UTC`, `GMT`, `+HH`, `+HHMM`, `+HH:MM` (with or
 *   without a space before it).
 * A date without a zone is local time, as in ostree (set TZ=UTC for reproducible commits).
 * Fractions of a second are dropped, as ostree does. Anything else is rejected with ostree's
 * wording: `Could not parse 'TEXT'`.
 */

const DAY = 86_400n;

const DATE_RE =
  /^(\d{4})-(\d{1,2})-(\d{1,2})(?:[T ](\d{1,2}):(\d{2})(?::(\d{2})(?:[.,]\d+)?)?)?\s*(Z|UTC|GMT|[+-]\d{2}(?::?\d{2})?)?$/i;

const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];

/** A month named in English, full or abbreviated (`October`, `Oct`, `Sept`): its number, or 0. */
function monthNumber(word: string): number {
  const w = word.toLowerCase().replace(/\.$/, '');
  const i = MONTHS.findIndex((m) => w === m || (w.length >= 3 && m.startsWith(w.slice(0, 3)) && fullMonth(m).startsWith(w)));
  return i + 1;
}

function fullMonth(abbrev: string): string {
  return ['january', 'february', 'march', 'april', 'may', 'june', 'july', 'august', 'september', 'october', 'november', 'december'][MONTHS.indexOf(abbrev)];
}

/**
 * `October 25 1985`, `Oct 25, 1985`, `25 October 1985` (each optionally followed by a time and a
 * zone) as `1985-10-25…`, the calendar forms of parse_datetime that scripts use; anything else as is.
 */
function monthNameToIso(s: string): string {
  const md = /^([a-z]+\.?)\s+(\d{1,2}),?\s+(\d{4})(\s.*)?$/i.exec(s);
  const dm = /^(\d{1,2})\s+([a-z]+\.?),?\s+(\d{4})(\s.*)?$/i.exec(s);
  const [word, day, year, rest] = md ? [md[1], md[2], md[3], md[4]] : dm ? [dm[2], dm[1], dm[3], dm[4]] : [];
  if (word === undefined || day === undefined || year === undefined) return s;
  const month = monthNumber(word);
  if (month === 0) return s;
  return `${year}-${String(month).padStart(2, '0')}-${day.padStart(2, '0')}${rest ?? ''}`;
}

export class TimestampParseError extends Error {
  constructor(readonly text: string) {
    super(`Could not parse '${text}'`);
    this.name = 'TimestampParseError';
  }
}

/** Parse a date argument into seconds since the epoch (UTC). `nowMs` is injectable for tests. */
export function parseTimestamp(text: string, nowMs: number = Date.now()): bigint {
  const s = text.trim();
  const nowSecs = BigInt(Math.floor(nowMs / 1000));
  if (/^@-?\d+$/.test(s)) return BigInt(s.slice(1));
  switch (s.toLowerCase()) {
    case 'now':
    case 'today':
      return nowSecs;
    case 'yesterday':
      return nowSecs - DAY;
    case 'tomorrow':
      return nowSecs + DAY;
  }
  const m = DATE_RE.exec(monthNameToIso(s));
  if (!m) throw new TimestampParseError(text);
  const [, ys, mos, ds, hs, mis, ss, zone] = m;
  const year = Number(ys);
  const month = Number(mos);
  const day = Number(ds);
  const hour = hs === undefined ? 0 : Number(hs);
  const minute = mis === undefined ? 0 : Number(mis);
  const second = ss === undefined ? 0 : Number(ss);
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) throw new TimestampParseError(text);
  if (hour > 23 || minute > 59 || second > 60) throw new TimestampParseError(text);
  let ms: number;
  if (zone === undefined) {
    const d = new Date(0);
    d.setFullYear(year, month - 1, day);
    d.setHours(hour, minute, second, 0);
    ms = d.getTime();
  } else {
    ms = Date.UTC(year, month - 1, day, hour, minute, second) - zoneOffsetMinutes(zone) * 60_000;
    // Date.UTC maps years 0..99 to 1900..1999; undo that for literal four-digit years.
    if (year < 100) {
      const d = new Date(ms);
      d.setUTCFullYear(d.getUTCFullYear() - 1900);
      ms = d.getTime();
    }
  }
  if (!Number.isFinite(ms)) throw new TimestampParseError(text);
  return BigInt(Math.floor(ms / 1000));
}

function daysInMonth(year: number, month: number): number {
  if (month === 2 && isLeap(year)) return 29;
  return new Date(Date.UTC(2001, month, 0)).getUTCDate();
}

function isLeap(y: number): boolean {
  return (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
}

function zoneOffsetMinutes(zone: string): number {
  const z = zone.toUpperCase();
  if (z === 'Z' || z === 'UTC' || z === 'GMT') return 0;
  const sign = z[0] === '-' ? -1 : 1;
  const digits = z.slice(1).replace(':', '');
  const hours = Number(digits.slice(0, 2));
  const minutes = digits.length > 2 ? Number(digits.slice(2)) : 0;
  return sign * (hours * 60 + minutes);
}
