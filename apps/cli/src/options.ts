/**
 * Validation of option values with zod. Each schema turns a raw command-line string into the
 * value a package expects, or fails with ostree's wording for the same mistake, so the error a
 * user sees is the one they would grep for.
 *
 * zod is loaded (synchronously) when the first option value is validated, and each schema is
 * built on first use: zod is about a hundred modules, and verbs that validate nothing, such as
 * `admin deploy`, start that much sooner.
 */
import { createRequire } from 'node:module';
import type { z } from 'zod';
import type { RepoMode } from '@larch/core-store';
import { UsageError } from './context.js';
import { parseTimestamp, TimestampParseError } from './timestamp.js';

let zod: typeof z | undefined;
/** The zod namespace, loaded on first use. */
function Z(): typeof z {
  return (zod ??= (createRequire(import.meta.url)('zod') as { z: typeof z }).z);
}

/** A schema built on first use. */
export interface OptionSchema<T> {
  get(): z.ZodType<T>;
}

function lazy<T>(build: () => z.ZodType<T>): OptionSchema<T> {
  let built: z.ZodType<T> | undefined;
  return { get: () => (built ??= build()) };
}

/** Run a schema on one option value; the first issue (or `message`) becomes a UsageError. */
export function parseOption<T>(schema: OptionSchema<T>, value: unknown, message?: string): T {
  const r = schema.get().safeParse(value);
  if (r.success) return r.data;
  throw new UsageError(message ?? r.error.issues[0]?.message ?? 'Invalid argument');
}

/** A decimal integer, as GLib's option parser reads `--owner-uid=N`, `--depth=N`. */
export function integer(optionName: string, opts: { min?: number; max?: number } = {}): OptionSchema<number> {
  const min = opts.min ?? Number.MIN_SAFE_INTEGER;
  const max = opts.max ?? Number.MAX_SAFE_INTEGER;
  return lazy(() => Z().string().transform((s, ctx) => {
    const t = s.trim();
    if (!/^[-+]?\d+$/.test(t)) {
      ctx.addIssue({ code: 'custom', message: `Cannot parse integer value “${s}” for ${optionName}` });
      return Z().NEVER;
    }
    const n = Number(t);
    if (!Number.isSafeInteger(n) || n < min || n > max) {
      ctx.addIssue({ code: 'custom', message: `Integer value “${s}” for ${optionName} out of range` });
      return Z().NEVER;
    }
    return n;
  }));
}

/** uid/gid: 0 .. 2^32-1 */
export const uidGid = (name: string): OptionSchema<number> => integer(name, { min: 0, max: 0xffffffff });

const MODES: Record<string, RepoMode> = {
  bare: 'bare',
  'bare-user': 'bare-user',
  'bare-user-only': 'bare-user-only',
  archive: 'archive',
  'archive-z2': 'archive',
};

/** `--mode`: the four repository modes, `archive-z2` accepted as the old name of `archive`. */
export const repoMode: OptionSchema<RepoMode> = lazy(() => Z().string().transform((s, ctx) => {
  const m = Object.hasOwn(MODES, s) ? MODES[s] : undefined;
  if (m === undefined) {
    ctx.addIssue({ code: 'custom', message: `Invalid mode '${s}' in repository configuration` });
    return Z().NEVER;
  }
  return m;
}));

/** `KEY=VALUE` as in `--add-metadata-string`; the key must be non-empty. */
export const keyValue: OptionSchema<[string, string]> = lazy(() => Z().string().transform((s, ctx) => {
  const eq = s.indexOf('=');
  if (eq < 0) {
    ctx.addIssue({ code: 'custom', message: `Missing '=' in KEY=VALUE metadata '${s}'` });
    return Z().NEVER;
  }
  if (eq === 0) {
    ctx.addIssue({ code: 'custom', message: `Empty key in KEY=VALUE metadata '${s}'` });
    return Z().NEVER;
  }
  return [s.slice(0, eq), s.slice(eq + 1)] as [string, string];
}));

/** A date argument (see timestamp.ts for the accepted forms), as seconds since the epoch. */
export const timestamp: OptionSchema<bigint> = lazy(() => Z().string().transform((s, ctx) => {
  try {
    return parseTimestamp(s);
  } catch (e) {
    ctx.addIssue({ code: 'custom', message: e instanceof TimestampParseError ? e.message : `Could not parse '${s}'` });
    return Z().NEVER;
  }
}));

/** A full 64-hex checksum. */
export const checksum: OptionSchema<string> = lazy(() => Z()
  .string()
  .regex(/^[0-9a-f]{64}$/, { message: 'Invalid checksum' }));

/** Collector for repeatable options (commander's `(value, previous)` callback). */
export function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}
