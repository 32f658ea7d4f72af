/**
 * What ostree's setlocale(LC_ALL, "") decides, for the facts Larch needs whenever it prints: the
 * locale each category names and LC_CTYPE's charset. Kept apart from the date formatting in
 * time-locale.ts (which needs @larch/signing), so that printing text loads nothing more. Node has
 * no nl_langinfo(): the facts come from the system's `locale` program, which reads the same
 * compiled locale data with the same rules, and it runs only when a category names a locale other
 * than C/POSIX.
 */
import { spawnSync } from 'node:child_process';

export type Env = Record<string, string | undefined>;

/** The locale name setlocale(LC_ALL, "") picks for one category. */
export function localeName(env: Env, category: string): string {
  for (const v of [env.LC_ALL, env[category], env.LANG]) if (v !== undefined && v !== '') return v;
  return 'C';
}

/** The bytes between the quotes of `"value"`; null for another shape. */
export function unquote(raw: Buffer | undefined): Buffer | null {
  if (raw === undefined || raw.length < 2 || raw[0] !== 0x22 || raw[raw.length - 1] !== 0x22) return null;
  return raw.subarray(1, -1);
}

/** Parse `locale -k` output: keyword → raw value bytes. */
export function keywords(stdout: Buffer): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  let start = 0;
  while (start < stdout.length) {
    let end = stdout.indexOf(0x0a, start);
    if (end < 0) end = stdout.length;
    const line = stdout.subarray(start, end);
    const eq = line.indexOf(0x3d);
    if (eq > 0) out.set(line.subarray(0, eq).toString('latin1'), line.subarray(eq + 1));
    start = end + 1;
  }
  return out;
}

/**
 * nl_langinfo(CODESET) after ostree's setlocale(LC_ALL, ""): LC_CTYPE's charset, or the C
 * locale's ANSI_X3.4-1968 when LC_CTYPE is C/POSIX or the system lacks one of the locales named.
 * Runs `locale` only when LC_CTYPE names another locale; never throws.
 */
export function ctypeCharset(env: Env = process.env): string {
  const ascii = 'ANSI_X3.4-1968';
  const ctype = localeName(env, 'LC_CTYPE');
  if (ctype === 'C' || ctype === 'POSIX') return ascii;
  const r = spawnSync('locale', ['-k', 'charmap'], { env, timeout: 10_000 });
  if (r.error || r.status !== 0 || r.stderr.toString('utf8').includes('Cannot set')) return ascii;
  return unquote(keywords(r.stdout).get('charmap'))?.toString('latin1') ?? ascii;
}
