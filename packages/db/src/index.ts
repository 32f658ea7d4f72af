/**
 * @larch/db: the embedded SQL database of larch-server — SQLite compiled to WebAssembly
 * (node-sqlite3-wasm), file-backed through Node's fs, so it installs with no C toolchain and no
 * prebuilt binary download.
 *
 * Why this shape:
 * - Everything is synchronous. One process owns the file (the WASM build has no shared-memory
 *   locking, so no WAL and no second writer process); callers serialise naturally on the event loop.
 * - Each autocommit write is a journal write plus fsync (~1 ms here). Callers that write often
 *   (device check-ins) batch many writes in one `transaction()`.
 * - Statements are prepared once per SQL text and cached (bounded), because preparing dominates
 *   the cost of small queries; the cache is finalised on close (WASM memory is not garbage-collected).
 * - `migrate()` keeps a per-component schema version, so independent packages can share one file,
 *   each with its own prefixed tables.
 *
 * Crash safety is SQLite's: a transaction is durable once `transaction()` returns (journal mode
 * DELETE, synchronous FULL), and a crash mid-transaction rolls it back on the next open.
 */
import { existsSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { dirname } from 'node:path';
import sqlite from 'node-sqlite3-wasm';

export type SqlValue = number | bigint | string | Uint8Array | null;
/** Positional (`?`) or named (`$name`, `:name`, `@name` — the key includes the sigil) parameters. */
export type SqlParams = SqlValue[] | Record<string, SqlValue>;

/** Result of a write. */
export interface RunResult {
  changes: number;
  lastInsertRowid: number;
}

/** A database error naming the statement at fault. */
export class DatabaseError extends Error {
  readonly sql: string | undefined;
  constructor(message: string, sql?: string, cause?: unknown) {
    super(message, { cause });
    this.name = 'DatabaseError';
    this.sql = sql;
  }
}

/** Prepared statements kept per database. */
const STATEMENT_CACHE_MAX = 256;

type Raw = InstanceType<typeof sqlite.Database>;
type RawStatement = ReturnType<Raw['prepare']>;

function shortSql(sql: string): string {
  const s = sql.replace(/\s+/g, ' ').trim();
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

/** An open SQLite database file. Not safe to open the same file from two processes at once. */
export class Database {
  readonly path: string;
  readonly #raw: Raw;
  readonly #statements = new Map<string, RawStatement>();
  #depth = 0;

  private constructor(path: string, raw: Raw) {
    this.path = path;
    this.#raw = raw;
  }

  /**
   * Open (creating if needed) the database at `path`, or an in-memory one for `':memory:'`.
   * The directory must exist. Sets foreign keys on and a 5 s busy timeout.
   */
  static open(path: string): Database {
    let raw: Raw;
    if (path !== ':memory:' && !existsSync(dirname(path))) {
      throw new DatabaseError(`Opening database ${path}: directory ${dirname(path)} does not exist`);
    }
    try {
      raw = new sqlite.Database(path);
    } catch (e) {
      throw new DatabaseError(`Opening database ${path}: ${(e as Error).message}`, undefined, e);
    }
    const db = new Database(path, raw);
    db.exec('PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000; PRAGMA synchronous = FULL;');
    return db;
  }

  /** Run one or more statements without parameters. */
  exec(sql: string): void {
    try {
      this.#raw.exec(sql);
    } catch (e) {
      throw new DatabaseError(`SQL error in "${shortSql(sql)}": ${(e as Error).message}`, sql, e);
    }
  }

  #statement(sql: string): RawStatement {
    let st = this.#statements.get(sql);
    if (st) {
      // Keep recently used statements at the end (LRU order).
      this.#statements.delete(sql);
      this.#statements.set(sql, st);
      return st;
    }
    try {
      st = this.#raw.prepare(sql);
    } catch (e) {
      throw new DatabaseError(`SQL error in "${shortSql(sql)}": ${(e as Error).message}`, sql, e);
    }
    this.#statements.set(sql, st);
    if (this.#statements.size > STATEMENT_CACHE_MAX) {
      const [oldest, old] = this.#statements.entries().next().value as [string, RawStatement];
      this.#statements.delete(oldest);
      old.finalize();
    }
    return st;
  }

  #call<T>(sql: string, fn: (st: RawStatement) => T): T {
    const st = this.#statement(sql);
    try {
      const result = fn(st);
      // A statement left mid-step (get() stops after the first row) keeps its read lock on the
      // file, which blocks every other connection's writes: reset it now, not at its next use.
      // `_reset` is the driver's own reset (sqlite3_reset + clear_bindings; pinned version).
      (st as unknown as { _reset(): boolean })._reset();
      return result;
    } catch (e) {
      // A statement whose last step failed cannot be reset and reused: drop it.
      this.#statements.delete(sql);
      try {
        st.finalize();
      } catch {
        // Already unusable; nothing more to release.
      }
      throw new DatabaseError(`SQL error in "${shortSql(sql)}": ${(e as Error).message}`, sql, e);
    }
  }

  /** Run one write statement. */
  run(sql: string, params?: SqlParams): RunResult {
    const r = this.#call(sql, (st) => st.run(params));
    return { changes: r.changes, lastInsertRowid: Number(r.lastInsertRowid) };
  }

  /** First row of a query, or undefined. */
  get<T = Record<string, SqlValue>>(sql: string, params?: SqlParams): T | undefined {
    const row = this.#call(sql, (st) => st.get(params));
    return (row ?? undefined) as T | undefined;
  }

  /** All rows of a query. */
  all<T = Record<string, SqlValue>>(sql: string, params?: SqlParams): T[] {
    return this.#call(sql, (st) => st.all(params)) as T[];
  }

  /**
   * Run `fn` in one transaction (BEGIN IMMEDIATE … COMMIT), rolled back if it throws. A call
   * inside another joins the outer transaction. `fn` must be synchronous.
   */
  transaction<T>(fn: () => T): T {
    if (this.#depth > 0) {
      this.#depth++;
      try {
        return fn();
      } finally {
        this.#depth--;
      }
    }
    this.exec('BEGIN IMMEDIATE');
    this.#depth = 1;
    let result: T;
    try {
      result = fn();
      if (result instanceof Promise) throw new DatabaseError('transaction(): the callback must be synchronous');
    } catch (e) {
      this.#depth = 0;
      try {
        this.exec('ROLLBACK');
      } catch {
        // The transaction may already be gone (e.g. a failed COMMIT); nothing more to undo.
      }
      throw e;
    }
    this.#depth = 0;
    this.exec('COMMIT');
    return result;
  }

  /**
   * Bring `component`'s tables up to date: apply `steps[i]` for every i at or above the version
   * recorded for it, all in one transaction, then record `steps.length`. Steps are never edited
   * once released; new ones are appended. A database newer than the code is refused.
   */
  migrate(component: string, steps: readonly string[]): void {
    this.exec('CREATE TABLE IF NOT EXISTS larch_migrations (component TEXT PRIMARY KEY, version INTEGER NOT NULL)');
    this.transaction(() => {
      const row = this.get<{ version: number }>('SELECT version FROM larch_migrations WHERE component = ?', [component]);
      const have = row?.version ?? 0;
      if (have > steps.length) {
        throw new DatabaseError(`Database ${this.path}: schema of ${component} is at version ${have}, newer than this program's ${steps.length}`);
      }
      for (let i = have; i < steps.length; i++) this.exec(steps[i]!);
      if (have !== steps.length) {
        this.run('INSERT INTO larch_migrations (component, version) VALUES (?, ?) ON CONFLICT(component) DO UPDATE SET version = excluded.version', [component, steps.length]);
      }
    });
  }

  /** Whether a transaction is open. */
  get inTransaction(): boolean {
    return this.#raw.inTransaction;
  }

  /** Finalise cached statements and close the file. Safe to call twice. */
  close(): void {
    if (!this.#raw.isOpen) return;
    for (const st of this.#statements.values()) st.finalize();
    this.#statements.clear();
    this.#raw.close();
  }
}

/**
 * Writes to a database file from a worker thread, so that the commits' fsyncs (milliseconds on
 * an idle disk, hundreds on a busy one) never stall the event loop of the process that serves
 * requests. The worker has its own connection: what it commits is visible to a `Database` on the
 * same file once `batch()` resolves. SQLite's file lock orders the two connections, so a
 * `Database` call on the same file can still wait for a commit in progress; keep the other
 * connection's use off the hot path.
 */
export class DatabaseWriter {
  readonly path: string;
  readonly #worker: Worker;
  readonly #waiting = new Map<number, { resolve: () => void; reject: (e: Error) => void }>();
  #next = 1;
  #dead: Error | null = null;
  #closing: Promise<void> | null = null;

  private constructor(path: string) {
    this.path = path;
    this.#worker = new Worker(new URL('./writer-worker.js', import.meta.url), { workerData: { path } });
    this.#worker.on('message', (m: { id: number; error: string | null }) => {
      const w = this.#waiting.get(m.id);
      if (!w) return;
      this.#waiting.delete(m.id);
      if (m.error === null) w.resolve();
      else w.reject(new DatabaseError(m.error));
    });
    const fail = (e: Error): void => {
      this.#dead ??= e;
      for (const w of this.#waiting.values()) w.reject(this.#dead);
      this.#waiting.clear();
    };
    this.#worker.on('error', (e) => fail(new DatabaseError(`Database writer for ${path} failed: ${e.message}`, undefined, e)));
    this.#worker.on('exit', (code) => fail(new DatabaseError(`Database writer for ${path} stopped (exit code ${code})`)));
  }

  /** Start the writer thread for the database file at `path` (a file: not `':memory:'`). */
  static open(path: string): DatabaseWriter {
    if (path === ':memory:') throw new DatabaseError('A database writer needs a database file, not :memory:');
    if (!existsSync(dirname(path))) throw new DatabaseError(`Opening database ${path}: directory ${dirname(path)} does not exist`);
    return new DatabaseWriter(path);
  }

  /**
   * Run `statements` in one transaction on the writer thread. Resolves once committed (durable);
   * rejects with the failing statement's error after a rollback. Batches run in the order given.
   */
  batch(statements: ReadonlyArray<readonly [string, SqlParams?]>): Promise<void> {
    if (this.#dead) return Promise.reject(this.#dead);
    if (this.#closing) return Promise.reject(new DatabaseError(`Database writer for ${this.path} is closed`));
    const id = this.#next++;
    return new Promise<void>((resolve, reject) => {
      this.#waiting.set(id, { resolve, reject });
      this.#worker.postMessage({ id, statements: statements.map(([sql, params]) => [sql, params]) });
    });
  }

  /** Let queued batches finish, then close the connection and stop the thread. Safe to call twice. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      if (this.#dead) return;
      const exited = new Promise<void>((r) => this.#worker.once('exit', () => r()));
      this.#worker.postMessage({ close: true });
      await exited;
    })();
    return this.#closing;
  }
}
