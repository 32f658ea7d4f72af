/**
 * Validation of option values with zod. Each schema turns a raw command-line string into the
 * value a package expects, or fails with ostree's wording for the same mistake, so the error a
 * user sees is the one they would grep for.
 */
import { z } from 'zod';
import type { RepoMode } from '@larch/core-store';
import { UsageError } from './context.js';
import { parseTimestamp, TimestampParseError } from './timestamp.js';

/** Run a schema on one option value; the first issue (or `message`) becomes a UsageError. */
export function parseOption<T>(schema: z.ZodType<T>, value: unknown, message?: string): T {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  throw new UsageError(message ?? r.error.issues[0]?.message ?? 'Invalid argument');
}

/** A decimal integer, as GLib's option parser reads `--owner-uid=N`, `--depth=N`. */
export function integer(optionName: string, opts: { min?: number; max?: number } = {}): z.ZodType<number> {
  const min = opts.min ?? Number.MIN_SAFE_INTEGER;
  const max = opts.max ?? Number.MAX_SAFE_INTEGER;
  return z.string().transform((s, ctx) => {
    const t = s.trim();
    if (!/^[-+]?\d+$/.test(t)) {
      ctx.addIssue({ code: 'custom', message: `Cannot parse integer value “${s}” for ${optionName}` });
      return z.NEVER;
    }
    const n = Number(t);
    if (!Number.isSafeInteger(n) || n < min || n > max) {
      ctx.addIssue({ code: 'custom', message: `Integer value “${s}” for ${optionName} out of range` });
      return z.NEVER;
    }
    return n;
  });
}

/** uid/gid: 0 .. 2^32-1 */
export const uidGid = (name: string): z.ZodType<number> => integer(name, { min: 0, max: 0xffffffff });

const MODES: Record<string, RepoMode> = {
  bare: 'bare',
  'bare-user': 'bare-user',
  'bare-user-only': 'bare-user-only',
  archive: 'archive',
  'archive-z2': 'archive',
};

/** `--mode`: the four repository modes, `archive-z2` accepted as the old name of `archive`. */
export const repoMode: z.ZodType<RepoMode> = z.string().transform((s, ctx) => {
  const m = Object.hasOwn(MODES, s) ? MODES[s] : undefined;
  if (m === undefined) {
    ctx.addIssue({ code: 'custom', message: `Invalid mode '${s}' in repository configuration` });
    return z.NEVER;
  }
  return m;
});

/** `KEY=VALUE` as in `--add-metadata-string`; the key must be non-empty. */
export const keyValue: z.ZodType<[string, string]> = z.string().transform((s, ctx) => {
  const eq = s.indexOf('=');
  if (eq < 0) {
    ctx.addIssue({ code: 'custom', message: `Missing '=' in KEY=VALUE metadata '${s}'` });
    return z.NEVER;
  }
  if (eq === 0) {
    ctx.addIssue({ code: 'custom', message: `Empty key in KEY=VALUE metadata '${s}'` });
    return z.NEVER;
  }
  return [s.slice(0, eq), s.slice(eq + 1)] as [string, string];
});

/** A date argument (see timestamp.ts for the accepted forms), as seconds since the epoch. */
export const timestamp: z.ZodType<bigint> = z.string().transform((s, ctx) => {
  try {
    return parseTimestamp(s);
  } catch (e) {
    ctx.addIssue({ code: 'custom', message: e instanceof TimestampParseError ? e.message : `Could not parse '${s}'` });
    return z.NEVER;
  }
});

/** A full 64-hex checksum. */
export const checksum: z.ZodType<string> = z
  .string()
  .regex(/^[0-9a-f]{64}$/, { message: 'Invalid checksum' });

/** Collector for repeatable options (commander's `(value, previous)` callback). */
export function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}
