/**
 * @larch/updater: the update loop of a Larch device (check, pull, pre-flight, stage, reboot,
 * health-check, confirm or roll back), its configuration, phased rollout and reporting.
 * See README.md.
 */
export { Agent, agentStatus, resolveDeviceId, type AgentOptions, type AgentStatus, type CycleResult, type LogRecord, type LogSink } from './agent.js';
export { configSchema, windowSchema, resolveConfig, loadConfig, inMaintenanceWindow, msUntilWindow, type AgentConfig, type AgentConfigInput, type MaintenanceWindow } from './config.js';
export { PHASES, stateSchema, initialState, readState, writeState, statePath, type AgentState, type Phase, type Target } from './state.js';
export { ROLLOUT_KEY, rolloutBucket, inRollout, rolloutPercent } from './rollout.js';
export { TokenBucket, meteredFetcher, type MeteredFetcherOptions } from './fetcher.js';
export { computeSpaceNeeds, assertSpace, freeBytes, type SpaceNeeds, type SpaceReport } from './preflight.js';
export { runHealthChecks, type CheckResult, type HealthReport } from './health.js';
export { checkInSchema, healthResultSchema, checkInPayload, checkInUrlFor, formatMetrics, serveMetrics, type CheckInPayload, type HealthResult } from './report.js';
