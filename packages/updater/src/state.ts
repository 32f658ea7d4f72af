/**
 * The agent's persistent state (`STATE_DIR/state.json`): the phase of the update state machine
 * and everything needed to resume it after a crash or a reboot, plus counters for reporting.
 *
 * Why one small JSON file written by temp + fsync + rename (+ fsync of the directory): a reader
 * (including the agent after SIGKILL) sees the old or the new state, never a torn one, and every
 * phase is written *before* its side effects start, so a restart repeats the phase; each phase
 * is idempotent against the sysroot and the repository (see agent.ts).
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { LarchError } from '@larch/core-store';

export const PHASES = ['idle', 'check', 'pull', 'preflight', 'stage', 'reboot', 'confirm', 'rollback'] as const;
export type Phase = (typeof PHASES)[number];

const targetSchema = z.object({
  commit: z.string().regex(/^[0-9a-f]{64}$/),
  ref: z.string(),
  version: z.string().nullable(),
  /** Commit timestamp from the summary, epoch seconds. */
  timestamp: z.number().nullable(),
});
export type Target = z.infer<typeof targetSchema>;

export const stateSchema = z.object({
  version: z.literal(1),
  phase: z.enum(PHASES),
  /** The update being applied (null when idle). */
  target: targetSchema.nullable(),
  /** The deployment booted when the update started: the fallback. */
  previous: z.object({ commit: z.string(), deployment: z.string() }).nullable(),
  /** What the pending reboot must boot: the target, or the previous deployment after a rollback. */
  expectBoot: z.enum(['target', 'previous']).nullable(),
  /** Boot id when the reboot command was issued (a different one proves a reboot). */
  rebootBootId: z.string().nullable(),
  /** Boot id of the boot whose confirmation is running (boot counting). */
  confirmBootId: z.string().nullable(),
  /** Boots of the target without confirmation. */
  bootCount: z.number().int(),
  /** Boots that should have been the fallback. */
  fallbackBoots: z.number().int(),
  /** When the current confirmation window began (epoch ms). */
  confirmStartedAt: z.number().nullable(),
  pullAttempts: z.number().int(),
  /** Earliest time of the next pull attempt after a failure (epoch ms). */
  nextAttemptAt: z.number().nullable(),
  /** Commits rolled back once; never taken again. */
  badCommits: z.array(z.string()),
  /** The device could not reach a healthy deployment (the fallback failed its checks too). */
  degraded: z.boolean(),
  lastCheckAt: z.number().nullable(),
  lastUpdateAt: z.number().nullable(),
  lastError: z.object({ phase: z.string(), code: z.string(), message: z.string(), at: z.number() }).nullable(),
  counters: z.object({
    checks: z.number().int(),
    bytesFetched: z.number(),
    failures: z.number().int(),
    updates: z.number().int(),
    rollbacks: z.number().int(),
  }),
});
export type AgentState = z.infer<typeof stateSchema>;

export function initialState(): AgentState {
  return {
    version: 1,
    phase: 'idle',
    target: null,
    previous: null,
    expectBoot: null,
    rebootBootId: null,
    confirmBootId: null,
    bootCount: 0,
    fallbackBoots: 0,
    confirmStartedAt: null,
    pullAttempts: 0,
    nextAttemptAt: null,
    badCommits: [],
    degraded: false,
    lastCheckAt: null,
    lastUpdateAt: null,
    lastError: null,
    counters: { checks: 0, bytesFetched: 0, failures: 0, updates: 0, rollbacks: 0 },
  };
}

export function statePath(stateDir: string): string {
  return path.join(stateDir, 'state.json');
}

/** Read the state (initial state when absent). Throws `OBJECT_CORRUPTED` for an invalid file. No locks. */
export function readState(stateDir: string): AgentState {
  const file = statePath(stateDir);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return initialState();
    throw new LarchError('IO_ERROR', `Reading ${file}: ${(e as Error).message}`, { path: file }, { cause: e });
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new LarchError('OBJECT_CORRUPTED', `Invalid agent state ${file}: ${(e as Error).message}`, { path: file }, { cause: e });
  }
  const r = stateSchema.safeParse(raw);
  if (!r.success) throw new LarchError('OBJECT_CORRUPTED', `Invalid agent state ${file}: ${r.error.issues[0]?.path.join('.')}: ${r.error.issues[0]?.message}`, { path: file });
  return r.data;
}

/**
 * Write the state durably: temp file, fsync, rename over `state.json`, fsync of the directory.
 * Crash: the old or the new state survives. Callers serialize writes (one agent per state dir).
 */
export function writeState(stateDir: string, state: AgentState): void {
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const file = statePath(stateDir);
  const tmp = `${file}.tmp`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeSync(fd, `${JSON.stringify(state, null, 2)}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
  const dfd = openSync(stateDir, 'r');
  try {
    fsyncSync(dfd);
  } finally {
    closeSync(dfd);
  }
}
