/**
 * Text layouts shared by several verbs, written to match what the real `ostree` 2022.7 prints
 * (scripts parse these): commit dates, summary timestamps, GLib's human-readable sizes, the
 * indented subject/body block, and one-line error messages.
 */
import { asciiJson } from './output-charset.js';

/**
 * `2020-01-01 00:00:00 +0000`: ostree prints commit dates in UTC with this fixed layout
 * (GLib's `%Y-%m-%d %H:%M:%S +0000`, so the year is not padded: `385-07-25 …`). The timestamp
 * is read as a signed 64-bit number, as ostree passes it to GLib.
 */
export function formatCommitDate(ts: bigint): string {
  const d = dateOf(ts);
  if (d === null) return '(invalid)';
  return `${ymd(d)} ${hms(d)} +0000`;
}

/**
 * `2020-09-13T14:26:40+02`: the layout of `ostree summary --view` timestamps, GLib's
 * `%FT%T%:::z` in local time (the TZ variable): the offset only as precise as needed
 * (`+00`, `+05:30`, `-03:30`). Not locale-dependent: every field is numeric.
 */
export function formatSummaryDate(ts: bigint): string {
  const d = dateOf(ts);
  if (d === null) return '(invalid)';
  // The local fields as a UTC date; their distance from the instant is the zone's offset, to the
  // second (getTimezoneOffset() drops the seconds of old local-mean-time offsets like +00:53:28).
  const local = new Date(0);
  local.setUTCFullYear(d.getFullYear(), d.getMonth(), d.getDate());
  local.setUTCHours(d.getHours(), d.getMinutes(), d.getSeconds(), d.getMilliseconds());
  const offset = Math.round((local.getTime() - d.getTime()) / 1000);
  return `${ymd(local)}T${hms(local)}${zoneOffset(offset)}`;
}

/** GLib's `%:::z`: `+hh`, `+hh:mm` or `+hh:mm:ss`, whichever is precise enough. */
function zoneOffset(seconds: number): string {
  const a = Math.abs(seconds);
  const h = Math.floor(a / 3600);
  const m = Math.floor(a / 60) % 60;
  const s = a % 60;
  return `${seconds < 0 ? '-' : '+'}${pad(h)}${m !== 0 || s !== 0 ? `:${pad(m)}` : ''}${s !== 0 ? `:${pad(s)}` : ''}`;
}

/** ISO 8601 in UTC with a `Z`, for --json output. */
export function formatIsoDate(ts: bigint): string | null {
  const d = dateOf(ts);
  return d === null ? null : d.toISOString().replace('.000Z', 'Z');
}

function dateOf(ts: bigint): Date | null {
  // ostree hands the stored guint64 to GLib as a gint64: "negative" timestamps are dates before
  // 1970. GLib stops at years 1 and 9999 (JS dates reach further); keep to GLib's range.
  const secs = BigInt.asIntN(64, ts);
  if (secs < -62135596800n || secs > 253402300799n) return null;
  return new Date(Number(secs) * 1000);
}

function pad(n: number, w = 2): string {
  return String(n).padStart(w, '0');
}

/** GLib's `%Y-%m-%d` (and `%F`): the year is not padded. */
function ymd(d: Date): string {
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`;
}

function hms(d: Date): string {
  return `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
}

const NBSP = '\u00a0';
const SI_UNITS = ['kB', 'MB', 'GB', 'TB', 'PB', 'EB'];

/**
 * GLib's g_format_size() (SI units, one decimal, a no-break space before the unit), which
 * ostree uses in `prune` output: `142 bytes`, `1 byte`, `1.5 MB`, `1000.0 kB`.
 */
export function formatSize(bytes: number | bigint): string {
  const n = typeof bytes === 'bigint' ? bytes : BigInt(Math.max(0, Math.floor(bytes)));
  if (n < 1000n) return n === 1n ? '1 byte' : `${n} bytes`;
  let unit = 1000n;
  let i = 0;
  while (i < SI_UNITS.length - 1 && n >= unit * 1000n) {
    unit *= 1000n;
    i++;
  }
  // GLib divides as doubles and prints with "%.1f": the exact binary value, ties to even.
  // JS toFixed() breaks exact ties upwards instead; those only occur at .x25 and .x75.
  const d = Number(n) / Number(unit);
  let text = d.toFixed(1);
  if (Number.isInteger(d * 4) && !Number.isInteger(d * 2)) {
    const tenthsDown = Math.floor(d * 10);
    text = ((tenthsDown % 2 === 0 ? tenthsDown : tenthsDown + 1) / 10).toFixed(1);
  }
  return `${text}${NBSP}${SI_UNITS[i]}`;
}

/**
 * ostree's indented text block: each line of `text` prefixed by four spaces; a final empty
 * piece after a trailing newline is not printed.
 */
export function indentLines(text: string): string[] {
  const parts = text.split('\n');
  if (parts.length > 0 && parts[parts.length - 1] === '') parts.pop();
  return parts.map((l) => `    ${l}`);
}

/** Make any message safe for one terminal line: no control characters, bounded length. */
export function oneLine(message: string, max = 4096): string {
  // eslint-disable-next-line no-control-regex
  let s = message.replace(/\r?\n/g, ' ').replace(/[\u0000-\u001f\u007f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
  if (s.length > max) s = `${s.slice(0, max)}…`;
  return s;
}

/**
 * Stable JSON for --json output: bigints become numbers when exact, strings otherwise; non-ASCII
 * characters as \u escapes, so the bytes are the same in every locale.
 */
export function toJson(value: unknown): string {
  return `${asciiJson(JSON.stringify(
    value,
    (_k, v: unknown) => {
      if (typeof v === 'bigint') {
        return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString();
      }
      return v;
    },
    2,
  ))}\n`;
}

/** One line of --json event output (no indentation), ASCII as `toJson` is. */
export function jsonLine(value: unknown): string {
  return `${asciiJson(JSON.stringify(JSON.parse(toJson(value))))}\n`;
}
