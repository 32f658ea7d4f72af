import { describe, expect, it } from 'vitest';
import { formatCommitDate, formatSize, formatSummaryDate, indentLines, oneLine } from '../src/format.js';
import { parseTimestamp, TimestampParseError } from '../src/timestamp.js';

describe('parseTimestamp', () => {
  const now = Date.UTC(2026, 0, 2, 3, 4, 5);
  process.env.TZ = 'UTC';

  it.each([
    ['@1600000000', 1600000000n],
    ['@-5', -5n],
    ['2020-01-01 00:00:00 +0000', 1577836800n],
    ['2020-01-01T00:00:00Z', 1577836800n],
    ['2020-01-01T00:00:00+01:00', 1577833200n],
    ['2020-01-01T01:00:00-0130', 1577845800n],
    ['2020-01-01', 1577836800n],
    ['2020-01-01T00:00', 1577836800n],
    ['2020-01-01 00:00:00.75Z', 1577836800n],
    ['2020-01-01 00:00:00 UTC', 1577836800n],
    ['2020-02-29 12:00:00 +0000', 1582977600n],
    // The month-name forms of parse_datetime (values from GNU date -d, which shares its parser).
    ['October 25 1985', 499046400n],
    ['Oct 25, 1985 12:30:00 UTC', 499091400n],
    ['25 October 1985', 499046400n],
    ['Sept 3 2001', 999475200n],
  ])('parses %s as ostree does', (text, secs) => {
    expect(parseTimestamp(text, now)).toBe(secs);
  });

  it('understands now, yesterday, tomorrow relative to the clock', () => {
    const n = BigInt(now / 1000);
    expect(parseTimestamp('now', now)).toBe(n);
    expect(parseTimestamp('yesterday', now)).toBe(n - 86400n);
    expect(parseTimestamp('tomorrow', now)).toBe(n + 86400n);
  });

  it.each(['1600000000', 'bogus', 'Octobre 25 1985', 'October 32 1985', '2020-13-01', '2021-02-29', '2020-01-01T25:00:00Z', '20200101T000000Z', '@', ''])(
    'rejects %j with ostree wording',
    (text) => {
      expect(() => parseTimestamp(text, now)).toThrow(TimestampParseError);
      expect(() => parseTimestamp(text, now)).toThrow(`Could not parse '${text}'`);
    },
  );
});

describe('formatSize (GLib g_format_size)', () => {
  it.each([
    [0, '0 bytes'],
    [1, '1 byte'],
    [142, '142 bytes'],
    [999, '999 bytes'],
    [1000, '1.0\u00a0kB'],
    [1250, '1.2\u00a0kB'],
    [1550, '1.6\u00a0kB'],
    [1750, '1.8\u00a0kB'],
    [999950, '1000.0\u00a0kB'],
    [1000000, '1.0\u00a0MB'],
    [1500494, '1.5\u00a0MB'],
    [1234567890, '1.2\u00a0GB'],
  ])('%d -> %s', (n, text) => {
    expect(formatSize(n)).toBe(text);
  });
});

describe('dates and text blocks', () => {
  it('formats commit dates in UTC with a +0000 suffix', () => {
    expect(formatCommitDate(1577836800n)).toBe('2020-01-01 00:00:00 +0000');
    expect(formatCommitDate(-5n)).toBe('1969-12-31 23:59:55 +0000');
  });

  it('reads the stored uint64 as ostree does (signed) and does not pad the year', () => {
    // `ostree commit --timestamp=@-50000000000` stores 2^64 - 5e10; ostree shows year 385.
    const stored = BigInt.asUintN(64, -50000000000n);
    expect(formatCommitDate(stored)).toBe('385-07-25 07:06:40 +0000');
    expect(formatSummaryDate(stored)).toBe('385-07-25T07:06:40+00');
  });

  it('formats summary dates as ostree summary --view does: local time, offset as precise as needed', () => {
    const saved = process.env.TZ;
    try {
      process.env.TZ = 'UTC';
      expect(formatSummaryDate(1600000000n)).toBe('2020-09-13T12:26:40+00');
      process.env.TZ = 'Asia/Kolkata';
      expect(formatSummaryDate(1600000000n)).toBe('2020-09-13T17:56:40+05:30');
      process.env.TZ = 'America/St_Johns';
      expect(formatSummaryDate(1600000000n)).toBe('2020-09-13T09:56:40-02:30');
      process.env.TZ = 'Europe/Berlin';
      expect(formatSummaryDate(1600000000n)).toBe('2020-09-13T14:26:40+02');
      // Berlin's local mean time before 1893: +00:53:28, to the second.
      expect(formatSummaryDate(BigInt.asUintN(64, -50000000000n))).toBe('385-07-25T08:00:08+00:53:28');
    } finally {
      if (saved === undefined) delete process.env.TZ;
      else process.env.TZ = saved;
    }
  });

  it('indents each line and drops the piece after a trailing newline', () => {
    expect(indentLines('a\nb\n')).toEqual(['    a', '    b']);
    expect(indentLines('\n\nx\n\n')).toEqual(['    ', '    ', '    x', '    ']);
  });

  it('keeps error messages on one line without control characters', () => {
    expect(oneLine('a\nb\u0007c')).toBe('a b\\x07c');
  });
});
