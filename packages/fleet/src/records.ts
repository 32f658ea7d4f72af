/**
 * The fleet's rows: record types, the `fleet_*` schema, and the one function that writes a batch
 * of device records and events, shared by the main thread (inline writes, loading) and the
 * write-behind thread (flush-worker.ts), so both write exactly the same rows.
 */
import type { SqlValue } from '@larch/db';
import type { CheckInPayload, HealthResult } from '@larch/updater/report';

/** What the server knows of one device: its last check-in. */
export interface DeviceRecord {
  repo: string;
  deviceId: string;
  ref: string;
  phase: CheckInPayload['phase'];
  degraded: boolean;
  booted: { commit: string; version: string | null } | null;
  target: { commit: string; version: string | null } | null;
  badCommits: string[];
  lastError: { phase: string; code: string; message: string } | null;
  health: HealthResult[];
  counters: CheckInPayload['counters'];
  /** The device's own clock at the check-in (ISO 8601). */
  reportedAt: string;
  /** The server's clock when the check-in arrived (ISO 8601). */
  lastSeen: string;
}

/** Kinds of fleet events. */
export type FleetEventKind = 'bad-commit' | 'error' | 'degraded' | 'auto-pause' | 'auto-pause-failed';

/** A recorded event: a device failure, or a pause the fleet made. */
export interface FleetEvent {
  id?: number;
  time: string;
  repo: string;
  deviceId: string | null;
  ref: string;
  commit: string | null;
  kind: FleetEventKind;
  message: string;
}

/** An automatic pause, recorded once per (repo, ref, commit). */
export interface AutoPauseRecord {
  repo: string;
  ref: string;
  commit: string;
  reason: string;
  time: string;
}

export const MIGRATIONS: readonly string[] = [
  `CREATE TABLE fleet_devices (
     repo TEXT NOT NULL,
     device_id TEXT NOT NULL,
     ref TEXT NOT NULL,
     phase TEXT NOT NULL,
     degraded INTEGER NOT NULL,
     booted_commit TEXT,
     booted_version TEXT,
     target_commit TEXT,
     target_version TEXT,
     bad_commits TEXT NOT NULL,
     last_error TEXT,
     health TEXT NOT NULL,
     counters TEXT NOT NULL,
     reported_at TEXT NOT NULL,
     last_seen TEXT NOT NULL,
     PRIMARY KEY (repo, device_id)
   );
   CREATE INDEX fleet_devices_ref ON fleet_devices (repo, ref);
   CREATE TABLE fleet_events (
     id INTEGER PRIMARY KEY AUTOINCREMENT,
     time TEXT NOT NULL,
     repo TEXT NOT NULL,
     device_id TEXT,
     ref TEXT NOT NULL,
     commit_id TEXT,
     kind TEXT NOT NULL,
     message TEXT NOT NULL
   );
   CREATE INDEX fleet_events_repo ON fleet_events (repo, id);
   CREATE TABLE fleet_auto_pauses (
     repo TEXT NOT NULL,
     ref TEXT NOT NULL,
     commit_id TEXT NOT NULL,
     reason TEXT NOT NULL,
     time TEXT NOT NULL,
     PRIMARY KEY (repo, ref, commit_id)
   );`,
];

export interface DeviceRow {
  repo: string;
  device_id: string;
  ref: string;
  phase: string;
  degraded: number;
  booted_commit: string | null;
  booted_version: string | null;
  target_commit: string | null;
  target_version: string | null;
  bad_commits: string;
  last_error: string | null;
  health: string;
  counters: string;
  reported_at: string;
  last_seen: string;
}

export interface EventRow {
  id: number;
  time: string;
  repo: string;
  device_id: string | null;
  ref: string;
  commit_id: string | null;
  kind: string;
  message: string;
}

const UPSERT = `INSERT INTO fleet_devices (repo, device_id, ref, phase, degraded, booted_commit, booted_version, target_commit, target_version, bad_commits, last_error, health, counters, reported_at, last_seen)
  VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
  ON CONFLICT (repo, device_id) DO UPDATE SET ref = excluded.ref, phase = excluded.phase, degraded = excluded.degraded,
    booted_commit = excluded.booted_commit, booted_version = excluded.booted_version, target_commit = excluded.target_commit,
    target_version = excluded.target_version, bad_commits = excluded.bad_commits, last_error = excluded.last_error,
    health = excluded.health, counters = excluded.counters, reported_at = excluded.reported_at, last_seen = excluded.last_seen`;

export const INSERT_EVENT = 'INSERT INTO fleet_events (time, repo, device_id, ref, commit_id, kind, message) VALUES (?, ?, ?, ?, ?, ?, ?)';

export function fromRow(r: DeviceRow): DeviceRecord {
  return {
    repo: r.repo,
    deviceId: r.device_id,
    ref: r.ref,
    phase: r.phase as DeviceRecord['phase'],
    degraded: r.degraded !== 0,
    booted: r.booted_commit === null ? null : { commit: r.booted_commit, version: r.booted_version },
    target: r.target_commit === null ? null : { commit: r.target_commit, version: r.target_version },
    badCommits: JSON.parse(r.bad_commits) as string[],
    lastError: r.last_error === null ? null : (JSON.parse(r.last_error) as DeviceRecord['lastError']),
    health: JSON.parse(r.health) as HealthResult[],
    counters: JSON.parse(r.counters) as DeviceRecord['counters'],
    reportedAt: r.reported_at,
    lastSeen: r.last_seen,
  };
}

/** Rows kept in `fleet_events` (older ones are deleted as new ones arrive). */
export const MAX_EVENTS = 100_000;

/** The statements that write `devices` (upserts) and `events` (inserts), to run in one transaction. */
export function batchStatements(devices: readonly DeviceRecord[], events: readonly FleetEvent[]): Array<[string, SqlValue[]]> {
  const out: Array<[string, SqlValue[]]> = [];
  for (const d of devices) {
    out.push([
      UPSERT,
      [
        d.repo,
        d.deviceId,
        d.ref,
        d.phase,
        d.degraded ? 1 : 0,
        d.booted?.commit ?? null,
        d.booted?.version ?? null,
        d.target?.commit ?? null,
        d.target?.version ?? null,
        JSON.stringify(d.badCommits),
        d.lastError === null ? null : JSON.stringify(d.lastError),
        JSON.stringify(d.health),
        JSON.stringify(d.counters),
        d.reportedAt,
        d.lastSeen,
      ],
    ]);
  }
  for (const e of events) out.push([INSERT_EVENT, [e.time, e.repo, e.deviceId, e.ref, e.commit, e.kind, e.message]]);
  // The event log keeps the newest MAX_EVENTS rows.
  if (events.length > 0) out.push(['DELETE FROM fleet_events WHERE id <= (SELECT max(id) FROM fleet_events) - ?', [MAX_EVENTS]]);
  return out;
}
