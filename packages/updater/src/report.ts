/**
 * Reporting: the check-in payload (zod schema, so the server side validates the same shape it is
 * sent), Prometheus text metrics, and the local status object behind `larch-agent status --json`.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { z } from 'zod';
import { PHASES, type AgentState } from './state.js';

/** One health check's outcome as reported in a check-in (the details stay in the agent's log). */
export const healthResultSchema = z
  .object({
    name: z.string().min(1).max(255),
    kind: z.enum(['required', 'wanted']),
    ok: z.boolean(),
  })
  .strict();
export type HealthResult = z.infer<typeof healthResultSchema>;

export const checkInSchema = z
  .object({
    deviceId: z.string().min(1),
    /** ISO 8601 time of the report. */
    time: z.string(),
    phase: z.enum(PHASES),
    degraded: z.boolean(),
    ref: z.string(),
    booted: z.object({ commit: z.string(), deployment: z.string(), version: z.string().nullable() }).nullable(),
    target: z.object({ commit: z.string(), version: z.string().nullable() }).nullable(),
    badCommits: z.array(z.string()),
    lastError: z.object({ phase: z.string(), code: z.string(), message: z.string() }).nullable(),
    counters: z.object({ checks: z.number(), bytesFetched: z.number(), failures: z.number(), updates: z.number(), rollbacks: z.number() }),
    /** The health checks of the last confirmation this agent process ran (absent when none ran). */
    health: z.array(healthResultSchema).max(256).optional(),
  })
  .strict();
export type CheckInPayload = z.infer<typeof checkInSchema>;

/** Build and validate a check-in payload (`health` only when given). Pure. */
export function checkInPayload(
  deviceId: string,
  ref: string,
  state: AgentState,
  booted: CheckInPayload['booted'],
  now = new Date(),
  health?: readonly HealthResult[],
): CheckInPayload {
  return checkInSchema.parse({
    deviceId,
    time: now.toISOString(),
    phase: state.phase,
    degraded: state.degraded,
    ref,
    booted,
    target: state.target ? { commit: state.target.commit, version: state.target.version } : null,
    badCommits: state.badCommits,
    lastError: state.lastError ? { phase: state.lastError.phase, code: state.lastError.code, message: state.lastError.message } : null,
    counters: state.counters,
    ...(health !== undefined ? { health: health.map((h) => ({ name: h.name, kind: h.kind, ok: h.ok })) } : {}),
  });
}

/**
 * The check-in URL for a device: `{deviceId}` in the configured URL (also in its percent-encoded
 * form `%7BdeviceId%7D`) is replaced by the URL-encoded device id. Pure.
 */
export function checkInUrlFor(template: string, deviceId: string): string {
  const id = encodeURIComponent(deviceId);
  return template.replaceAll('{deviceId}', id).replace(/%7BdeviceId%7D/gi, id);
}

/** Prometheus text exposition (format 0.0.4) of the agent's state. Pure. */
export function formatMetrics(state: AgentState): string {
  const lines: string[] = [];
  const metric = (name: string, type: string, help: string, samples: Array<[string, number]>): void => {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [labels, v] of samples) lines.push(`${name}${labels} ${v}`);
  };
  metric('larch_agent_state', 'gauge', 'Current phase of the update state machine (1 for the current one).', PHASES.map((p) => [`{state="${p}"}`, state.phase === p ? 1 : 0]));
  metric('larch_agent_degraded', 'gauge', 'Whether neither the update nor the fallback passed its health checks.', [['', state.degraded ? 1 : 0]]);
  metric('larch_agent_last_check_timestamp_seconds', 'gauge', 'Time of the last update check.', [['', state.lastCheckAt === null ? 0 : state.lastCheckAt / 1000]]);
  metric('larch_agent_last_update_timestamp_seconds', 'gauge', 'Time of the last confirmed update.', [['', state.lastUpdateAt === null ? 0 : state.lastUpdateAt / 1000]]);
  metric('larch_agent_checks_total', 'counter', 'Update checks done.', [['', state.counters.checks]]);
  metric('larch_agent_bytes_fetched_total', 'counter', 'Bytes received from the remote.', [['', state.counters.bytesFetched]]);
  metric('larch_agent_failures_total', 'counter', 'Failed checks, pulls, pre-flights, stages and health checks.', [['', state.counters.failures]]);
  metric('larch_agent_updates_total', 'counter', 'Updates confirmed healthy.', [['', state.counters.updates]]);
  metric('larch_agent_rollbacks_total', 'counter', 'Automatic rollbacks.', [['', state.counters.rollbacks]]);
  metric('larch_agent_bad_commits', 'gauge', 'Commits marked bad (never taken again).', [['', state.badCommits.length]]);
  return `${lines.join('\n')}\n`;
}

/**
 * Serve `GET /metrics` on 127.0.0.1:`port` (0 = any free port) with `read()`'s current state.
 * Resolves with the bound port and a close function.
 */
export async function serveMetrics(port: number, read: () => AgentState): Promise<{ port: number; close: () => Promise<void> }> {
  const server: Server = createServer((req, res) => {
    if (req.method === 'GET' && (req.url === '/metrics' || req.url?.startsWith('/metrics?'))) {
      const body = formatMetrics(read());
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8', 'content-length': Buffer.byteLength(body) });
      res.end(body);
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('Not found\n');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  server.unref();
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
