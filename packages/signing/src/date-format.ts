/**
 * Dates as OSTree prints them: through GLib's g_date_time_format() and g_print(). OSTree 2022.7
 * shows GPG signature dates (and signature/key expiry dates) with `%c` in local time, so what a
 * user sees depends on the locale, and scripts that compare `ostree show` output see that too.
 *
 * What GLib does (2.74, the version ostree 2022.7 ships with; unchanged since), checked against
 * the real `ostree show`:
 *  - `%c` expands the locale's D_T_FMT (`nl_langinfo`): `%a %b %e %H:%M:%S %Y` in C, POSIX and
 *    C.UTF-8; `%a %d %b %Y %r %Z` in en_US.UTF-8; `%a %d %b %Y %T %Z` in de_DE.UTF-8. Day and
 *    month names, AM/PM strings and the nested `%r`/`%x`/`%X` layouts come from LC_TIME.
 *  - `%e`, `%k` and `%l` pad a single digit with U+2007 FIGURE SPACE in every locale (strftime
 *    pads with a plain space; GLib never does). `%p` is upper-cased, `%P` lower-cased; `%O` picks
 *    the alternative digits of LC_CTYPE and the standalone month names; `%E` is not supported,
 *    so the whole format fails and OSTree prints `(null)`.
 *  - g_date_time_format() returns UTF-8. g_print() converts it to the charset of LC_CTYPE (or of
 *    $CHARSET), replacing every character that charset lacks with `?`. In the C locale the
 *    figure space therefore prints as `?`: `Sat Mar ?7 18:32:20 2020`; in C.UTF-8 it prints
 *    as U+2007; in en_US.UTF-8 `%c` has no `%e` at all: `Sat 07 Mar 2020 06:32:20 PM UTC`.
 *
 * The locale facts are data ({@link TimeLocale}): this module never reads the environment. An
 * application builds a TimeLocale from its environment (the CLI asks the system's `locale`
 * program) and passes it in; the default is the C.UTF-8 locale.
 *
 * Differences: where a locale has no AM/PM strings, GLib falls back to its own translation of
 * "AM"/"PM" for the LC_MESSAGES language; Larch uses `AM`/`PM` (of glibc's locales only ms_MY's
 * `%c` reaches that fallback, and its translation is `AM`/`PM`). And Larch writes UTF-8 only,
 * so for a non-UTF-8 LC_CTYPE every non-ASCII character becomes `?`. That is exact for C/POSIX (ASCII); a legacy 8-bit locale such as
 * en_US.ISO-8859-1 would print its own bytes for characters it has.
 */

/** The facts about a locale that GLib's `%c` and g_print() depend on. */
export interface TimeLocale {
  /** D_T_FMT, what `%c` expands to: `%a %b %e %H:%M:%S %Y` in the C locale. */
  readonly dateTimeFormat: string;
  /** D_FMT (`%x`). */
  readonly dateFormat: string;
  /** T_FMT (`%X`). */
  readonly timeFormat: string;
  /** T_FMT_AMPM (`%r`). */
  readonly timeFormatAmPm: string;
  /** ABDAY_1..7: abbreviated day names, Sunday first (`%a`). */
  readonly abbreviatedDays: readonly string[];
  /** DAY_1..7: full day names, Sunday first (`%A`). */
  readonly days: readonly string[];
  /** ABMON_1..12 (`%b`, `%h`). */
  readonly abbreviatedMonths: readonly string[];
  /** MON_1..12 (`%B`). */
  readonly months: readonly string[];
  /** The standalone forms (`%Ob`, `%OB`); the plain names when absent. */
  readonly abbreviatedAltMonths?: readonly string[];
  readonly altMonths?: readonly string[];
  /** AM_STR and PM_STR; empty strings fall back to `AM`/`PM` as in GLib. */
  readonly amPm: readonly [string, string];
  /** LC_CTYPE's output digits 0..9 for `%O` (absent: ASCII digits). */
  readonly altDigits?: readonly string[];
  /** Whether output is UTF-8 (LC_CTYPE's charset, or $CHARSET); otherwise non-ASCII prints as `?`. */
  readonly utf8: boolean;
  /**
   * The time zone abbreviation (`%Z`) of local time at `date` (`CET`, `EST`, `UTC`). Absent:
   * the short name Node's Intl gives (`UTC`, `EST`, `GMT+1`), which may differ from tzdata's.
   */
  readonly zoneAbbreviation?: (date: Date) => string;
}

const C_NAMES = {
  dateTimeFormat: '%a %b %e %H:%M:%S %Y',
  dateFormat: '%m/%d/%y',
  timeFormat: '%H:%M:%S',
  timeFormatAmPm: '%I:%M:%S %p',
  abbreviatedDays: ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'],
  days: ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'],
  abbreviatedMonths: ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'],
  months: ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December'],
  amPm: ['AM', 'PM'] as const,
};

/** The C (POSIX) locale: ASCII output, so `%e`'s figure space prints as `?`. */
export const C_TIME_LOCALE: TimeLocale = Object.freeze({ ...C_NAMES, utf8: false });

/** The C.UTF-8 locale: C's names and layouts, UTF-8 output (the figure space is kept). */
export const C_UTF8_TIME_LOCALE: TimeLocale = Object.freeze({ ...C_NAMES, utf8: true });

/** Options of the formatting functions. */
export interface DateFormatOptions {
  /** Format in UTC (`%Z` is `UTC`) instead of local time (Node's TZ, as GLib's). */
  utc?: boolean;
}

const FIGURE_SPACE = '\u2007';
const ASCII_DIGITS = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'];
const DAY_MS = 86_400_000;

interface Fields {
  year: number;
  month: number; // 1..12
  day: number; // 1..31
  hour: number;
  minute: number;
  second: number;
  ms: number;
  weekday: number; // 0 = Sunday
  offsetSeconds: number;
}

function fieldsOf(date: Date, utc: boolean): Fields {
  if (utc) {
    return {
      year: date.getUTCFullYear(),
      month: date.getUTCMonth() + 1,
      day: date.getUTCDate(),
      hour: date.getUTCHours(),
      minute: date.getUTCMinutes(),
      second: date.getUTCSeconds(),
      ms: date.getUTCMilliseconds(),
      weekday: date.getUTCDay(),
      offsetSeconds: 0,
    };
  }
  return {
    year: date.getFullYear(),
    month: date.getMonth() + 1,
    day: date.getDate(),
    hour: date.getHours(),
    minute: date.getMinutes(),
    second: date.getSeconds(),
    ms: date.getMilliseconds(),
    weekday: date.getDay(),
    offsetSeconds: localOffsetSeconds(date),
  };
}

/**
 * The local zone's offset at `date` to the second: the local fields read as UTC, minus the
 * instant (getTimezoneOffset() drops the seconds of local-mean-time offsets like +00:53:28).
 */
function localOffsetSeconds(date: Date): number {
  const asUtc = new Date(0);
  asUtc.setUTCFullYear(date.getFullYear(), date.getMonth(), date.getDate());
  asUtc.setUTCHours(date.getHours(), date.getMinutes(), date.getSeconds(), date.getMilliseconds());
  return Math.round((asUtc.getTime() - date.getTime()) / 1000);
}

/** Milliseconds of a civil date at UTC midnight (years 0..99 taken literally). */
function civilMs(year: number, month: number, day: number): number {
  const d = new Date(0);
  d.setUTCFullYear(year, month - 1, day);
  return d.getTime();
}

function dayOfYear(f: Fields): number {
  return Math.round((civilMs(f.year, f.month, f.day) - civilMs(f.year, 1, 1)) / DAY_MS) + 1;
}

/** ISO 8601 week number and week-numbering year (g_date_time_get_week_of_year / _numbering_year). */
function isoWeek(f: Fields): { week: number; year: number } {
  const isoDay = ((f.weekday + 6) % 7) + 1; // Monday = 1 .. Sunday = 7
  const thursday = civilMs(f.year, f.month, f.day) + (4 - isoDay) * DAY_MS;
  const year = new Date(thursday).getUTCFullYear();
  return { week: Math.floor((thursday - civilMs(year, 1, 1)) / DAY_MS / 7) + 1, year };
}

/** GLib's format_number(): `pad` null or '' means none; '0' pads with the (alternative) zero. */
function formatNumber(n: number, pad: string | null, width: number, digits: readonly string[]): string {
  const parts = String(Math.abs(Math.trunc(n)))
    .split('')
    .map((c) => digits[c.charCodeAt(0) - 48]);
  if (pad !== null && pad !== '') {
    const p = pad === '0' ? digits[0] : pad;
    while (parts.length < width) parts.unshift(p);
  }
  return parts.join('');
}

/** GLib's format_z(): `+hhmm`, `+hh:mm`, `+hh:mm:ss`, or (three colons) only as precise as needed. */
function formatZone(offset: number, colons: number): string | null {
  const sign = offset >= 0 ? '+' : '-';
  const a = Math.abs(offset);
  const p2 = (n: number): string => String(n).padStart(2, '0');
  const h = Math.floor(a / 3600);
  const m = Math.floor(a / 60) % 60;
  const s = a % 60;
  switch (colons) {
    case 0:
      return `${sign}${p2(h)}${p2(m)}`;
    case 1:
      return `${sign}${p2(h)}:${p2(m)}`;
    case 2:
      return `${sign}${p2(h)}:${p2(m)}:${p2(s)}`;
    case 3:
      return `${sign}${p2(h)}${m !== 0 || s !== 0 ? `:${p2(m)}` : ''}${s !== 0 ? `:${p2(s)}` : ''}`;
    default:
      return null;
  }
}

function intlZoneName(date: Date): string {
  try {
    const part = new Intl.DateTimeFormat('en-US', { timeZoneName: 'short' }).formatToParts(date).find((p) => p.type === 'timeZoneName');
    if (part !== undefined) return part.value;
  } catch {
    /* no Intl time zone support: fall through */
  }
  return 'UTC';
}

function expand(date: Date, format: string, locale: TimeLocale, utc: boolean, depth: number): string | null {
  // A locale whose D_T_FMT contained %c would loop in GLib; stop instead.
  if (depth > 4) return null;
  const f = fieldsOf(date, utc);
  // GLib's dates span years 1 to 9999 (a local time past 9999-12-31 is no date at all).
  if (f.year < 1 || f.year > 9999) return null;
  const altDigits = locale.altDigits !== undefined && locale.altDigits.length === 10 ? locale.altDigits : ASCII_DIGITS;
  const chars = Array.from(format);
  let out = '';
  let i = 0;
  while (i < chars.length) {
    const ch = chars[i++];
    if (ch !== '%') {
      out += ch;
      continue;
    }
    if (i >= chars.length) break; // a trailing '%' is dropped
    let alt = false;
    let pad: string | null = null;
    let padSet = false;
    let colons = 0;
    const p = (dflt: string | null): string | null => (padSet ? pad : dflt);
    const digits = (): readonly string[] => (alt ? altDigits : ASCII_DIGITS);
    const name = (s: string | undefined): string | null => (s === undefined || s === '' ? null : s);
    let piece: string | null = null;
    for (;;) {
      const c = chars[i++];
      if (c === undefined) return out;
      if (c === 'O') {
        alt = true;
        continue;
      }
      if (c === '-' || c === '_' || c === '0') {
        padSet = true;
        pad = c === '-' ? '' : c === '_' ? ' ' : '0';
        continue;
      }
      if (c === ':') {
        // Colons are only allowed before 'z'.
        const next = chars[i];
        if (next !== undefined && next !== 'z' && next !== ':') return null;
        colons++;
        continue;
      }
      switch (c) {
        case 'a':
          piece = name(locale.abbreviatedDays[f.weekday]);
          break;
        case 'A':
          piece = name(locale.days[f.weekday]);
          break;
        case 'b':
        case 'h':
          piece = name((alt ? (locale.abbreviatedAltMonths ?? locale.abbreviatedMonths) : locale.abbreviatedMonths)[f.month - 1]);
          break;
        case 'B':
          piece = name((alt ? (locale.altMonths ?? locale.months) : locale.months)[f.month - 1]);
          break;
        case 'c':
          piece = locale.dateTimeFormat === '' ? null : expand(date, locale.dateTimeFormat, locale, utc, depth + 1);
          break;
        case 'x':
          piece = locale.dateFormat === '' ? null : expand(date, locale.dateFormat, locale, utc, depth + 1);
          break;
        case 'X':
          piece = locale.timeFormat === '' ? null : expand(date, locale.timeFormat, locale, utc, depth + 1);
          break;
        case 'r':
          piece = locale.timeFormatAmPm === '' ? null : expand(date, locale.timeFormatAmPm, locale, utc, depth + 1);
          break;
        case 'C':
          piece = formatNumber(Math.floor(f.year / 100), p('0'), 2, digits());
          break;
        case 'd':
          piece = formatNumber(f.day, p('0'), 2, digits());
          break;
        case 'e':
          piece = formatNumber(f.day, p(FIGURE_SPACE), 2, digits());
          break;
        case 'f':
          piece = String(f.ms * 1000).padStart(6, '0');
          break;
        case 'F':
          piece = `${f.year}-${String(f.month).padStart(2, '0')}-${String(f.day).padStart(2, '0')}`;
          break;
        case 'g':
          piece = formatNumber(isoWeek(f).year % 100, p('0'), 2, digits());
          break;
        case 'G':
          piece = formatNumber(isoWeek(f).year, p(null), 0, digits());
          break;
        case 'H':
          piece = formatNumber(f.hour, p('0'), 2, digits());
          break;
        case 'I':
          piece = formatNumber(((f.hour + 11) % 12) + 1, p('0'), 2, digits());
          break;
        case 'j':
          piece = formatNumber(dayOfYear(f), p('0'), 3, digits());
          break;
        case 'k':
          piece = formatNumber(f.hour, p(FIGURE_SPACE), 2, digits());
          break;
        case 'l':
          piece = formatNumber(((f.hour + 11) % 12) + 1, p(FIGURE_SPACE), 2, digits());
          break;
        case 'm':
          piece = formatNumber(f.month, p('0'), 2, digits());
          break;
        case 'M':
          piece = formatNumber(f.minute, p('0'), 2, digits());
          break;
        case 'n':
          piece = '\n';
          break;
        case 'p':
        case 'P': {
          const s = locale.amPm[f.hour < 12 ? 0 : 1];
          const v = s === undefined || s === '' ? (f.hour < 12 ? 'AM' : 'PM') : s;
          piece = c === 'p' ? v.toUpperCase() : v.toLowerCase();
          break;
        }
        case 'R':
          piece = `${String(f.hour).padStart(2, '0')}:${String(f.minute).padStart(2, '0')}`;
          break;
        case 's':
          piece = String(Math.floor(date.getTime() / 1000));
          break;
        case 'S':
          piece = formatNumber(f.second, p('0'), 2, digits());
          break;
        case 't':
          piece = '\t';
          break;
        case 'T':
          piece = `${String(f.hour).padStart(2, '0')}:${String(f.minute).padStart(2, '0')}:${String(f.second).padStart(2, '0')}`;
          break;
        case 'u':
          piece = formatNumber(((f.weekday + 6) % 7) + 1, null, 0, digits());
          break;
        case 'V':
          piece = formatNumber(isoWeek(f).week, p('0'), 2, digits());
          break;
        case 'w':
          piece = formatNumber(f.weekday, null, 0, digits());
          break;
        case 'y':
          piece = formatNumber(f.year % 100, p('0'), 2, digits());
          break;
        case 'Y':
          piece = formatNumber(f.year, null, 0, digits());
          break;
        case 'z':
          piece = formatZone(f.offsetSeconds, colons);
          break;
        case 'Z':
          piece = utc ? 'UTC' : (locale.zoneAbbreviation ?? intlZoneName)(date);
          break;
        case '%':
          piece = '%';
          break;
        default:
          // Unknown conversions (%E, %D, %U, ...) make g_date_time_format() fail.
          return null;
      }
      break;
    }
    if (piece === null) return null;
    out += piece;
  }
  return out;
}

/**
 * g_date_time_format(): `date` rendered with `format` in `locale`, as UTF-8 (before the output
 * conversion, see {@link encodeForLocale}); null where GLib returns NULL (an unsupported
 * conversion such as `%E`, an empty locale string). Local time is Node's (the TZ variable, as
 * in GLib); `options.utc` formats in UTC. Pure apart from `locale.zoneAbbreviation`.
 */
export function formatGDateTime(date: Date, format: string, locale: TimeLocale = C_UTF8_TIME_LOCALE, options: DateFormatOptions = {}): string | null {
  if (Number.isNaN(date.getTime())) return null;
  return expand(date, format, locale, options.utc === true, 0);
}

/**
 * What g_print() makes of UTF-8 `text` in `locale`: unchanged when the output charset is UTF-8,
 * otherwise each non-ASCII character becomes `?` (GLib's conversion fallback). Pure.
 */
export function encodeForLocale(text: string, locale: TimeLocale): string {
  if (locale.utf8) return text;
  let out = '';
  for (const ch of text) out += ch.charCodeAt(0) < 0x80 ? ch : '?';
  return out;
}

/**
 * A date as OSTree prints `%c` (signature dates, expiry dates): the locale's preferred layout,
 * converted for output; `(null)` where GLib cannot format it, as OSTree then prints. Local time
 * unless `options.utc`. Pure apart from `locale.zoneAbbreviation`.
 */
export function formatLocaleDateTime(date: Date, locale: TimeLocale = C_UTF8_TIME_LOCALE, options: DateFormatOptions = {}): string {
  return encodeForLocale(formatGDateTime(date, '%c', locale, options) ?? '(null)', locale);
}
