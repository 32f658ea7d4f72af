/**
 * The agent's configuration: one zod schema, loaded from TOML (`.toml`) or JSON (anything else).
 *
 * Why zod with defaults in the schema: the schema is the single place that says what a field
 * means and what it defaults to, so `resolveConfig({ ref, remote: { url } })` is a complete
 * configuration and an unknown key (a typo) is an error instead of a silently ignored setting.
 * Every default here is repeated in the README's sample configuration.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse as parseToml } from 'smol-toml';
import { z } from 'zod';
import { LarchError } from '@larch/core-store';

const HHMM = /^([01][0-9]|2[0-3]):[0-5][0-9]$/;
const DAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] as const;

/** A maintenance window: days of the week and a UTC time range (end may wrap past midnight). */
export const windowSchema = z
  .object({
    /** Days the window opens (default: every day). */
    days: z.array(z.enum(DAYS)).min(1).default([...DAYS]),
    /** Start, `HH:MM` UTC (inclusive). */
    start: z.string().regex(HHMM, 'expected HH:MM'),
    /** End, `HH:MM` UTC (exclusive); before `start` means the window crosses midnight. */
    end: z.string().regex(HHMM, 'expected HH:MM'),
  })
  .strict();
export type MaintenanceWindow = z.infer<typeof windowSchema>;

const nonNeg = z.number().int().nonnegative();
const positive = z.number().positive();

export const configSchema = z
  .object({
    /** The sysroot to manage (default `/`). */
    sysroot: z.string().min(1).default('/'),
    /** The stateroot (`--os`) to deploy into (default: the booted deployment's). */
    stateroot: z.string().min(1).optional(),
    /** The system repository (default `SYSROOT/ostree/repo`). */
    repo: z.string().min(1).optional(),
    remote: z
      .object({
        /** Remote name in the repository's config (default `origin`). */
        name: z.string().min(1).default('origin'),
        /** URL; when set and the remote does not exist yet, it is added (`ostree remote add`). */
        url: z.string().url().optional(),
        /** `gpg-verify` for a remote the agent adds (default true, as `ostree remote add`). */
        gpgVerify: z.boolean().default(true),
        /** Extra `KEY=VALUE` options for a remote the agent adds (`sign-verify`, `gpg-verify-summary`, ...). */
        options: z.record(z.string(), z.string()).default({}),
      })
      .strict()
      .default({ name: 'origin', gpgVerify: true, options: {} }),
    /** The ref to follow on the remote (required). */
    ref: z.string().min(1),
    schedule: z
      .object({
        /** Time between checks (default 3600 s). */
        intervalSeconds: positive.default(3600),
        /** A random 0..jitter added to each interval, so a fleet does not check in lockstep (default 300 s). */
        jitterSeconds: z.number().nonnegative().default(300),
      })
      .strict()
      .default({ intervalSeconds: 3600, jitterSeconds: 300 }),
    /** When the reboot into an update may happen (default: none listed = any time). */
    maintenanceWindows: z.array(windowSchema).default([]),
    /** Download limit in bytes per second, 0 = unlimited (default 0). */
    bandwidthLimit: nonNeg.default(0),
    /** Metered connection: download only inside a maintenance window too (default false). */
    metered: z.boolean().default(false),
    /**
     * The reboot command, argv form (default `["systemctl", "reboot", "--no-block"]`). It should
     * return once the reboot is under way: a command that waits for it (plain `systemctl reboot`)
     * is killed when the shutdown stops the agent's service, which then counts as a failed reboot.
     */
    rebootCommand: z.array(z.string()).min(1).default(['systemctl', 'reboot', '--no-block']),
    healthChecks: z
      .object({
        /** Directory holding `required.d/` and `wanted.d/` (default `/etc/larch/health.d`). */
        dir: z.string().min(1).default('/etc/larch/health.d'),
        /** Time one check may run before it counts as failed (default 60 s). */
        checkTimeoutSeconds: positive.default(60),
        /** Time from boot to confirmation before the update is rolled back (default 900 s). */
        confirmTimeoutSeconds: positive.default(900),
        /** Boots of an unconfirmed deployment (or of the fallback) before giving up on it (default 3). */
        maxBootAttempts: z.number().int().positive().default(3),
      })
      .strict()
      .default({ dir: '/etc/larch/health.d', checkTimeoutSeconds: 60, confirmTimeoutSeconds: 900, maxBootAttempts: 3 }),
    timeouts: z
      .object({
        /** Abort a pull after this long without receiving a byte (default 60 s). */
        noProgressSeconds: positive.default(60),
        /** Whole-request limit of one HTTP request (default 600 s). */
        requestSeconds: positive.default(600),
        /** The reboot command's time limit (default 300 s). */
        rebootSeconds: positive.default(300),
        /** Time limit of one check-in request, whole (default 10 s); a check-in never holds up an update longer. */
        checkInSeconds: positive.default(10),
      })
      .strict()
      .default({ noProgressSeconds: 60, requestSeconds: 600, rebootSeconds: 300, checkInSeconds: 10 }),
    backoff: z
      .object({
        /** First retry delay after a failed pull (default 30 s), doubled per failure. */
        initialSeconds: z.number().nonnegative().default(30),
        /** Cap of the retry delay (default 3600 s). */
        maxSeconds: z.number().nonnegative().default(3600),
      })
      .strict()
      .default({ initialSeconds: 30, maxSeconds: 3600 }),
    /** Where the agent keeps `state.json` and its lock (default `/var/lib/larch-agent`). */
    stateDir: z.string().min(1).default('/var/lib/larch-agent'),
    /** Stable device id (default: the contents of `machineIdFile`). */
    deviceId: z.string().min(1).optional(),
    /** Where the device id comes from when `deviceId` is not set (default `/etc/machine-id`). */
    machineIdFile: z.string().min(1).default('/etc/machine-id'),
    /**
     * Check-in endpoint, e.g. `https://updates.example.com/api/v1/repos/os/devices/{deviceId}/check-in`
     * (`{deviceId}` is replaced by the URL-encoded device id). Unset: the payload is only logged (default none).
     */
    checkInUrl: z.string().url().optional(),
    /** Bearer token sent with check-ins (a `checkin` token bound to this device). Prefer `checkInTokenFile`. */
    checkInToken: z.string().min(1).optional(),
    /** File holding the check-in token (first line; read at each check-in, so it can be rotated). */
    checkInTokenFile: z.string().min(1).optional(),
    /** Prometheus metrics on 127.0.0.1:PORT (`/metrics`); 0 picks a free port; unset = off (default off). */
    metricsPort: z.number().int().min(0).max(65535).optional(),
    /** The running system's root, to find the booted deployment (default: OSTree's detection, `/` with `/run/ostree-booted`). */
    bootedRoot: z.string().min(1).optional(),
    /** A file whose content changes on every boot (default `/proc/sys/kernel/random/boot_id`). */
    bootIdFile: z.string().min(1).default('/proc/sys/kernel/random/boot_id'),
    /**
     * Commits the boot loader gave up on (one 64-hex commit a line; written by the booted system's
     * boot check after GRUB fell back from a trial boot, docs/BOOT.md). The agent takes each as a
     * bad commit: never deployed again, reported to the server (default `/var/lib/larch/failed-trials`).
     */
    failedTrialsFile: z.string().min(1).default('/var/lib/larch/failed-trials'),
    /** Accept an update older than the booted commit (default false). */
    allowDowngrade: z.boolean().default(false),
    /** Space to keep free on top of what an update needs, on the sysroot and /boot (default 0 bytes). */
    reserveBytes: nonNeg.default(0),
    /** Testing only: free bytes to assume instead of statfs(2). */
    space: z
      .object({ diskFreeBytes: nonNeg.optional(), bootFreeBytes: nonNeg.optional() })
      .strict()
      .optional(),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.checkInToken !== undefined && c.checkInTokenFile !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['checkInTokenFile'], message: 'set either checkInToken or checkInTokenFile, not both' });
    }
  });

export type AgentConfigInput = z.input<typeof configSchema>;
export type AgentConfig = z.output<typeof configSchema> & { repo: string };

/**
 * Validate a configuration object and fill in every default. Throws `BAD_CONFIG` naming the
 * first invalid field. Pure.
 */
export function resolveConfig(input: unknown, source = 'configuration'): AgentConfig {
  const r = configSchema.safeParse(input);
  if (!r.success) {
    const issue = r.error.issues[0];
    const where = issue?.path.length ? issue.path.join('.') : '(root)';
    throw new LarchError('BAD_CONFIG', `Invalid ${source}: ${where}: ${issue?.message ?? 'invalid'}`, { field: where, source });
  }
  const c = r.data;
  return { ...c, repo: c.repo ?? path.join(c.sysroot, 'ostree/repo') };
}

/**
 * Read and validate a configuration file: TOML when the name ends in `.toml`, JSON otherwise.
 * Relative paths inside are kept as written (resolved against the working directory). No locks.
 */
export function loadConfig(file: string): AgentConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new LarchError('BAD_CONFIG', `Cannot read configuration ${file}: ${(e as Error).message}`, { path: file }, { cause: e });
  }
  let raw: unknown;
  try {
    raw = file.endsWith('.toml') ? parseToml(text) : JSON.parse(text);
  } catch (e) {
    throw new LarchError('BAD_CONFIG', `Cannot parse configuration ${file}: ${(e as Error).message.split('\n')[0]}`, { path: file }, { cause: e });
  }
  return resolveConfig(raw, `configuration ${file}`);
}

/** Whether `now` falls in one of the windows (none listed: always). Times are UTC. Pure. */
export function inMaintenanceWindow(windows: MaintenanceWindow[], now: Date): boolean {
  if (windows.length === 0) return true;
  const minutes = now.getUTCHours() * 60 + now.getUTCMinutes();
  const day = now.getUTCDay();
  const toMin = (s: string): number => Number(s.slice(0, 2)) * 60 + Number(s.slice(3, 5));
  return windows.some((w) => {
    const s = toMin(w.start);
    const e = toMin(w.end);
    const days = new Set(w.days.map((d) => DAYS.indexOf(d)));
    if (s <= e) return days.has(day) && minutes >= s && minutes < e;
    // Crosses midnight: the part after midnight belongs to the previous day's window.
    if (minutes >= s) return days.has(day);
    return minutes < e && days.has((day + 6) % 7);
  });
}

/** Milliseconds until the next window opens (0 when inside one), scanning minute by minute over a week. Pure. */
export function msUntilWindow(windows: MaintenanceWindow[], now: Date): number {
  if (inMaintenanceWindow(windows, now)) return 0;
  const start = Math.floor(now.getTime() / 60_000) * 60_000;
  for (let m = 1; m <= 8 * 24 * 60; m++) {
    const t = new Date(start + m * 60_000);
    if (inMaintenanceWindow(windows, t)) return t.getTime() - now.getTime();
  }
  return Number.POSITIVE_INFINITY;
}
