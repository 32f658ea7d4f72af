/**
 * The fleet's records: every device's last check-in, failure events and automatic pauses, kept
 * in memory and written behind to the database.
 *
 * Why memory first: a check-in must be answered in well under a millisecond of work, hundreds of
 * times a second, and each SQLite commit costs fsyncs (~1 ms idle, hundreds of ms on a busy disk).
 * So the last state of every device lives in a Map (loaded from `fleet_devices` at start), a
 * check-in replaces it there and marks it dirty, and `flush()` writes every dirty device and
 * queued event in one transaction (the caller's timer runs it once a second). For a database
 * file the transaction runs on a writer thread (@larch/db's DatabaseWriter), so its fsyncs never
 * stall the event loop that answers check-ins; an in-memory database is written inline. Dirty
 * devices coalesce (a device checking in twice between flushes is written once), so the queue is
 * bounded by the number of devices; past `maxPending` entries `put()` refuses until a flush
 * succeeds.
 *
 * Crash: what was flushed survives (SQLite's transaction); at most the last interval of
 * check-ins is lost, and devices repeat their state at their next check-in. Automatic pauses are
 * written at once, not behind, because they must happen only once per commit.
 */
import { DatabaseWriter, type Database, type SqlValue } from '@larch/db';
import { batchStatements, fromRow, INSERT_EVENT, MIGRATIONS, type AutoPauseRecord, type DeviceRecord, type DeviceRow, type EventRow, type FleetEvent, type FleetEventKind } from './records.js';

export type { AutoPauseRecord, DeviceRecord, FleetEvent, FleetEventKind } from './records.js';

function key(repo: string, deviceId: string): string {
  return `${repo}\u0000${deviceId}`;
}

/** Options of {@link FleetStore}. */
export interface FleetStoreOptions {
  /** Dirty devices + queued events past which `put()` refuses (default 10 000). */
  maxPending?: number;
  /** Write on a worker thread (default: yes for a database file, no for `:memory:`). */
  writerThread?: boolean;
}

/** The write queue is full: writes are failing. */
export class QueueFullError extends Error {
  constructor(pending: number) {
    super(`${pending} device records are waiting to be written`);
    this.name = 'QueueFullError';
  }
}

/**
 * Device records in memory over the `fleet_*` tables of `db`. One instance per database (the
 * process that owns the file); not safe against another writer of these tables.
 */
export class FleetStore {
  private readonly byRepo = new Map<string, Map<string, DeviceRecord>>();
  private dirty = new Map<string, DeviceRecord>();
  private events: FleetEvent[] = [];
  private readonly pauses = new Map<string, AutoPauseRecord>();
  private readonly maxPending: number;
  private readonly writer: DatabaseWriter | null;
  /** The flush in progress (flushes run one at a time, in order). */
  private flushing: Promise<number> | null = null;

  /** Creates or upgrades the tables (migration component `fleet`) and loads every device. */
  constructor(
    private readonly db: Database,
    opts: FleetStoreOptions = {},
  ) {
    this.maxPending = opts.maxPending ?? 10_000;
    db.migrate('fleet', MIGRATIONS);
    this.writer = (opts.writerThread ?? db.path !== ':memory:') ? DatabaseWriter.open(db.path) : null;
    for (const r of db.all<DeviceRow>('SELECT * FROM fleet_devices')) this.repoMap(r.repo).set(r.device_id, fromRow(r));
    for (const p of db.all<{ repo: string; ref: string; commit_id: string; reason: string; time: string }>('SELECT * FROM fleet_auto_pauses')) {
      this.pauses.set(`${p.repo}\u0000${p.ref}\u0000${p.commit_id}`, { repo: p.repo, ref: p.ref, commit: p.commit_id, reason: p.reason, time: p.time });
    }
  }

  private repoMap(repo: string): Map<string, DeviceRecord> {
    let m = this.byRepo.get(repo);
    if (!m) {
      m = new Map();
      this.byRepo.set(repo, m);
    }
    return m;
  }

  /** The device's last record, or undefined. */
  device(repo: string, deviceId: string): DeviceRecord | undefined {
    return this.byRepo.get(repo)?.get(deviceId);
  }

  /** Every device of `repo` (live view: do not keep across awaits). */
  devices(repo: string): Iterable<DeviceRecord> {
    return this.byRepo.get(repo)?.values() ?? [];
  }

  /** Dirty devices and queued events. */
  get pending(): number {
    return this.dirty.size + this.events.length;
  }

  /**
   * Replace a device's record (memory now, database at the next flush) and queue `events`.
   * Throws QueueFullError (and changes nothing) when `maxPending` would be passed.
   */
  put(rec: DeviceRecord, events: FleetEvent[] = []): void {
    const k = key(rec.repo, rec.deviceId);
    const grows = (this.dirty.has(k) ? 0 : 1) + events.length;
    if (grows > 0 && this.pending + grows > this.maxPending) throw new QueueFullError(this.pending);
    this.repoMap(rec.repo).set(rec.deviceId, rec);
    this.dirty.set(k, rec);
    for (const e of events) this.events.push(e);
  }

  /** Queue an event on its own (dropped, returning false, when the queue is full). */
  addEvent(e: FleetEvent): boolean {
    if (this.pending + 1 > this.maxPending) return false;
    this.events.push(e);
    return true;
  }

  /** Run `statements` in one transaction: on the writer thread, or inline for an in-memory database. */
  private async write(statements: Array<[string, SqlValue[]]>): Promise<void> {
    if (this.writer) return this.writer.batch(statements);
    this.db.transaction(() => {
      for (const [sql, params] of statements) this.db.run(sql, params);
    });
  }

  /**
   * Write every dirty device and queued event in one transaction; resolves with the number of
   * rows written once committed. Flushes run one after another. On failure the batch is queued
   * again (under anything newer) and the promise rejects.
   */
  flush(): Promise<number> {
    const run = async (): Promise<number> => {
      if (this.dirty.size === 0 && this.events.length === 0) return 0;
      const devices = this.dirty;
      const events = this.events;
      this.dirty = new Map();
      this.events = [];
      try {
        await this.write(batchStatements([...devices.values()], events));
      } catch (err) {
        for (const [k, d] of devices) if (!this.dirty.has(k)) this.dirty.set(k, d);
        this.events = events.concat(this.events);
        throw err;
      }
      return devices.size + events.length;
    };
    const p = (this.flushing ?? Promise.resolve(0)).catch(() => 0).then(run);
    this.flushing = p;
    void p.finally(() => {
      if (this.flushing === p) this.flushing = null;
    }).catch(() => undefined);
    return p;
  }

  /** Events of `repo`, newest first (flushes first so the answer is complete). */
  async listEvents(repo: string, opts: { limit: number; deviceId?: string; ref?: string }): Promise<FleetEvent[]> {
    await this.flush();
    const where = ['repo = $repo'];
    const params: Record<string, string | number> = { $repo: repo, $limit: opts.limit };
    if (opts.deviceId !== undefined) {
      where.push('device_id = $device');
      params.$device = opts.deviceId;
    }
    if (opts.ref !== undefined) {
      where.push('ref = $ref');
      params.$ref = opts.ref;
    }
    return this.db.all<EventRow>(`SELECT * FROM fleet_events WHERE ${where.join(' AND ')} ORDER BY id DESC LIMIT $limit`, params).map((r) => ({
      id: r.id,
      time: r.time,
      repo: r.repo,
      deviceId: r.device_id,
      ref: r.ref,
      commit: r.commit_id,
      kind: r.kind as FleetEventKind,
      message: r.message,
    }));
  }

  /** The automatic pause of (repo, ref, commit), if one was made. */
  autoPause(repo: string, ref: string, commit: string): AutoPauseRecord | undefined {
    return this.pauses.get(`${repo}\u0000${ref}\u0000${commit}`);
  }

  /** Record an automatic pause, durably and at once (with its event). */
  async recordAutoPause(p: AutoPauseRecord): Promise<void> {
    await this.write([
      ['INSERT INTO fleet_auto_pauses (repo, ref, commit_id, reason, time) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING', [p.repo, p.ref, p.commit, p.reason, p.time]],
      [INSERT_EVENT, [p.time, p.repo, null, p.ref, p.commit, 'auto-pause', p.reason]],
    ]);
    this.pauses.set(`${p.repo}\u0000${p.ref}\u0000${p.commit}`, p);
  }

  /** Flush, then stop the writer thread. */
  async close(): Promise<void> {
    try {
      await this.flush();
    } finally {
      await this.writer?.close();
    }
  }
}
