// GLib's g_date_time_format() and g_print() as OSTree prints dates. The expected strings are what
// GLib 2.74 (ostree 2022.7's) returns for the same instant, format and locale; the CLI's interop
// test (apps/cli/test/show-locale.test.ts) compares whole `show` outputs with the real ostree.
import { afterEach, describe, expect, it } from 'vitest';
import {
  C_TIME_LOCALE,
  C_UTF8_TIME_LOCALE,
  encodeForLocale,
  formatGDateTime,
  formatLocaleDateTime,
  type TimeLocale,
} from './date-format.js';
import { describeSignature, signatureBlock } from './text.js';
import type { SignatureReport } from './sign.js';

/** Sat 2020-03-07 18:32:20 UTC: a day of the month below 10. */
const MAR7 = new Date(1583605940 * 1000);
const FS = '\u2007';

// glibc's en_US and de_DE LC_TIME data (`locale -k LC_TIME`).
const EN_US: TimeLocale = { ...C_UTF8_TIME_LOCALE, dateTimeFormat: '%a %d %b %Y %r %Z', dateFormat: '%m/%d/%Y', timeFormat: '%r' };
const DE_DE: TimeLocale = {
  ...C_UTF8_TIME_LOCALE,
  dateTimeFormat: '%a %d %b %Y %T %Z',
  dateFormat: '%d.%m.%Y',
  timeFormat: '%T',
  timeFormatAmPm: '',
  abbreviatedDays: ['So', 'Mo', 'Di', 'Mi', 'Do', 'Fr', 'Sa'],
  abbreviatedMonths: ['Jan', 'Feb', 'Mär', 'Apr', 'Mai', 'Jun', 'Jul', 'Aug', 'Sep', 'Okt', 'Nov', 'Dez'],
  amPm: ['', ''],
};

const savedTz = process.env.TZ;
function inZone(tz: string): void {
  process.env.TZ = tz; // Node re-reads TZ when it is assigned
}
afterEach(() => {
  if (savedTz === undefined) delete process.env.TZ;
  else process.env.TZ = savedTz;
});

describe('formatGDateTime (GLib g_date_time_format)', () => {
  it("expands %c to the locale's D_T_FMT and pads %e with U+2007, not a space", () => {
    expect(formatGDateTime(MAR7, '%c', C_UTF8_TIME_LOCALE, { utc: true })).toBe(`Sat Mar ${FS}7 18:32:20 2020`);
    expect(formatGDateTime(MAR7, '%c', EN_US, { utc: true })).toBe('Sat 07 Mar 2020 06:32:20 PM UTC');
    expect(formatGDateTime(MAR7, '%c', DE_DE, { utc: true })).toBe('Sa 07 Mär 2020 18:32:20 UTC');
  });

  it('numeric conversions, padding modifiers and zone offsets as GLib 2.74 renders them', () => {
    expect(formatGDateTime(MAR7, '%k|%l|%p|%P|%-e|%_e|%0e|%z|%:z|%::z|%:::z|%j|%V|%G|%g|%u|%w|%C|%y|%s|%f|%F', C_UTF8_TIME_LOCALE, { utc: true })).toBe(
      `18|${FS}6|PM|pm|7| 7|07|+0000|+00:00|+00:00:00|+00|067|10|2020|20|6|6|20|20|1583605940|000000|2020-03-07`,
    );
    expect(formatGDateTime(MAR7, '%Ob|%OB|%Oe|%h|%A|%B|%x|%X|%r|%R|%T|%Z|%%|%n|%t|end%', C_UTF8_TIME_LOCALE, { utc: true })).toBe(
      `Mar|March|${FS}7|Mar|Saturday|March|03/07/20|18:32:20|06:32:20 PM|18:32|18:32:20|UTC|%|\n|\t|end`,
    );
  });

  it('ISO weeks across the year boundary, day of year in a leap year, unpadded early years', () => {
    expect(formatGDateTime(new Date(1609459200_000), '%V %G %g %u %j', C_UTF8_TIME_LOCALE, { utc: true })).toBe('53 2020 20 5 001');
    expect(formatGDateTime(new Date(1230681600_000), '%V %G %j %y', C_UTF8_TIME_LOCALE, { utc: true })).toBe('01 2009 366 08');
    expect(formatGDateTime(new Date(-50000000000_000), '%F %Y %C %j %V', C_UTF8_TIME_LOCALE, { utc: true })).toBe('385-07-25 385 03 206 30');
    expect(formatGDateTime(new Date(-5_000), '%c %s', C_UTF8_TIME_LOCALE, { utc: true })).toBe('Wed Dec 31 23:59:55 1969 -5');
  });

  it('fails, as GLib does, on conversions it does not know and on dates past year 9999', () => {
    for (const f of ['%E', '%Ey', '%D', '%U', '%:a', '%Q']) expect(formatGDateTime(MAR7, f, C_UTF8_TIME_LOCALE, { utc: true }), f).toBeNull();
    expect(formatGDateTime(MAR7, '%c', { ...C_UTF8_TIME_LOCALE, dateTimeFormat: '' }, { utc: true })).toBeNull();
    expect(formatGDateTime(MAR7, '%a', { ...C_UTF8_TIME_LOCALE, abbreviatedDays: ['', '', '', '', '', '', ''] }, { utc: true })).toBeNull();
    inZone('Asia/Kolkata');
    expect(formatGDateTime(new Date(253402300799_000), '%c', C_UTF8_TIME_LOCALE)).toBeNull();
    expect(formatLocaleDateTime(new Date(253402300799_000), C_UTF8_TIME_LOCALE)).toBe('(null)');
    expect(formatGDateTime(new Date(253402300799_000), '%c', C_UTF8_TIME_LOCALE, { utc: true })).toBe('Fri Dec 31 23:59:59 9999');
  });

  it('formats local time in the TZ zone, offsets to the second, %Z from the locale callback', () => {
    inZone('Asia/Kolkata');
    expect(formatGDateTime(MAR7, '%c %z %:::z', C_UTF8_TIME_LOCALE)).toBe(`Sun Mar ${FS}8 00:02:20 2020 +0530 +05:30`);
    inZone('Asia/Tehran');
    // Before 1946 Tehran kept local mean time, +03:25:44.
    expect(formatGDateTime(new Date(-50000000000_000), '%H:%M:%S %z %::z %:::z', C_UTF8_TIME_LOCALE)).toBe('10:32:24 +0325 +03:25:44 +03:25:44');
    inZone('America/St_Johns');
    expect(formatGDateTime(MAR7, '%c %Z', { ...EN_US, zoneAbbreviation: () => 'NST' })).toBe('Sat 07 Mar 2020 03:02:20 PM NST NST');
  });

  it("uses LC_CTYPE's alternative digits for %O", () => {
    const persian = ['۰', '۱', '۲', '۳', '۴', '۵', '۶', '۷', '۸', '۹'];
    expect(formatGDateTime(MAR7, '%Oe|%OH:%OM|%Oy|%e', { ...C_UTF8_TIME_LOCALE, altDigits: persian }, { utc: true })).toBe(`${FS}۷|۱۸:۳۲|۲۰|${FS}7`);
  });
});

describe('formatLocaleDateTime (what g_print writes)', () => {
  it('prints the figure space in UTF-8 locales and `?` for every non-ASCII character otherwise', () => {
    expect(formatLocaleDateTime(MAR7, C_UTF8_TIME_LOCALE, { utc: true })).toBe(`Sat Mar ${FS}7 18:32:20 2020`);
    expect(formatLocaleDateTime(MAR7, C_TIME_LOCALE, { utc: true })).toBe('Sat Mar ?7 18:32:20 2020');
    expect(formatLocaleDateTime(MAR7, { ...DE_DE, utf8: false }, { utc: true })).toBe('Sa 07 M?r 2020 18:32:20 UTC');
    expect(encodeForLocale('a\u{1F600}b\u00e4', C_TIME_LOCALE)).toBe('a?b?');
  });
});

describe('signature dates in the signature block', () => {
  const report: SignatureReport = {
    scheme: 'gpg', keyId: '0123456789ABCDEF', fingerprint: 'F'.repeat(24) + '0123456789ABCDEF', userId: 'A <a@x>', algorithm: 'EdDSA',
    valid: true, expired: false, revoked: false, reason: null, timestamp: MAR7, keysTried: [],
  };

  it('follow the locale passed in; C.UTF-8 by default', () => {
    inZone('UTC');
    expect(describeSignature(report)[0]).toBe(`Signature made Sat Mar ${FS}7 18:32:20 2020 using EdDSA key ID 0123456789ABCDEF`);
    expect(describeSignature(report, { timeLocale: C_TIME_LOCALE })[0]).toBe('Signature made Sat Mar ?7 18:32:20 2020 using EdDSA key ID 0123456789ABCDEF');
    expect(signatureBlock([report], 'signature', { timeLocale: { ...EN_US, zoneAbbreviation: () => 'UTC' } })).toBe(
      'Found 1 signature:\n\n  Signature made Sat 07 Mar 2020 06:32:20 PM UTC using EdDSA key ID 0123456789ABCDEF\n  Good signature from "A <a@x>"\n',
    );
  });
});
