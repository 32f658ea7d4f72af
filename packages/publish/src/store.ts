/**
 * The publisher's tables: `publish_jobs` (one row per ref update, with its pipeline step and
 * outcome) and `publish_rollouts` (per-ref percentage and pause). Synchronous; one process
 * owns the database.
 */
import type { Database } from '@larch/db';

/** Pipeline steps, in order. */
export type JobStep = 'queued' | 'verify' | 'sign' | 'ref' | 'deltas' | 'summary' | 'prune' | 'mirror' | 'done';
/** Job states. */
export type JobState = 'queued' | 'running' | 'succeeded' | 'failed';

/** A publish job as stored and answered by `GET …/jobs/{id}`. */
export interface PublishJob {
  id: number;
  repo: string;
  ref: string;
  commit: string;
  /** The ref's commit before the job moved it (null: new ref or not moved yet). */
  previous: string | null;
  state: JobState;
  step: JobStep;
  error: string | null;
  /** Deltas generated (`FROM-TO` names, `TO` for from-scratch). */
  deltas: string[];
  /** Objects deleted by the prune step (null when it did not run). */
  pruned: number | null;
  /** What did not stop the job but did not happen (a delta that failed, a postponed prune). */
  warnings: string[];
  tokenId: string | null;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
}

/** A ref's rollout, as answered by the rollouts API. */
export interface RolloutEntry {
  ref: string;
  /** Target percentage, 0..100 (what applies once unpaused). */
  percent: number;
  paused: boolean;
  reason: string | null;
  updatedAt: string | null;
}

const MIGRATIONS: readonly string[] = [
  `CREATE TABLE publish_jobs (
     id INTEGER PRIMARY KEY AUTOINCREMENT,
     repo TEXT NOT NULL,
     ref TEXT NOT NULL,
     "commit" TEXT NOT NULL,
     previous TEXT,
     state TEXT NOT NULL,
     step TEXT NOT NULL,
     error TEXT,
     result TEXT,
     token_id TEXT,
     created_at TEXT NOT NULL,
     started_at TEXT,
     finished_at TEXT
   );
   CREATE INDEX publish_jobs_repo ON publish_jobs (repo, id);
   CREATE TABLE publish_rollouts (
     repo TEXT NOT NULL,
     ref TEXT NOT NULL,
     percent INTEGER NOT NULL,
     paused INTEGER NOT NULL,
     reason TEXT,
     updated_at TEXT NOT NULL,
     PRIMARY KEY (repo, ref)
   );`,
];

interface JobRow {
  id: number;
  repo: string;
  ref: string;
  commit: string;
  previous: string | null;
  state: JobState;
  step: JobStep;
  error: string | null;
  result: string | null;
  token_id: string | null;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
}

interface RolloutRow {
  ref: string;
  percent: number;
  paused: number;
  reason: string | null;
  updated_at: string;
}

function jobOf(r: JobRow): PublishJob {
  const result = r.result ? (JSON.parse(r.result) as { deltas?: string[]; pruned?: number | null; warnings?: string[] }) : {};
  return {
    id: Number(r.id),
    repo: r.repo,
    ref: r.ref,
    commit: r.commit,
    previous: r.previous,
    state: r.state,
    step: r.step,
    error: r.error,
    deltas: result.deltas ?? [],
    pruned: result.pruned ?? null,
    warnings: result.warnings ?? [],
    tokenId: r.token_id,
    createdAt: r.created_at,
    startedAt: r.started_at,
    finishedAt: r.finished_at,
  };
}

/** Row access for jobs and rollouts. */
export class PublishStore {
  constructor(
    private readonly db: Database,
    private readonly now: () => Date = () => new Date(),
  ) {
    db.migrate('publish', MIGRATIONS);
  }

  private time(): string {
    return this.now().toISOString();
  }

  /** Insert a queued job and return it. */
  createJob(o: { repo: string; ref: string; commit: string; tokenId: string | null }): PublishJob {
    const { lastInsertRowid } = this.db.run(
      `INSERT INTO publish_jobs (repo, ref, "commit", state, step, token_id, created_at) VALUES ($repo, $ref, $commit, 'queued', 'queued', $token, $t)`,
      { $repo: o.repo, $ref: o.ref, $commit: o.commit, $token: o.tokenId, $t: this.time() },
    );
    return this.job(Number(lastInsertRowid))!;
  }

  /** A job by id, or undefined. */
  job(id: number): PublishJob | undefined {
    const r = this.db.get<JobRow>('SELECT * FROM publish_jobs WHERE id = $id', { $id: id });
    return r ? jobOf(r) : undefined;
  }

  /** The newest jobs of a repository, newest first. */
  jobs(repo: string, limit = 50): PublishJob[] {
    return this.db.all<JobRow>('SELECT * FROM publish_jobs WHERE repo = $repo ORDER BY id DESC LIMIT $n', { $repo: repo, $n: limit }).map(jobOf);
  }

  /** Mark a job running at `step`. */
  step(id: number, step: JobStep): void {
    this.db.run(`UPDATE publish_jobs SET state = 'running', step = $step, started_at = COALESCE(started_at, $t) WHERE id = $id`, { $id: id, $step: step, $t: this.time() });
  }

  /** Record the ref's previous commit. */
  setPrevious(id: number, previous: string | null): void {
    this.db.run('UPDATE publish_jobs SET previous = $p WHERE id = $id', { $id: id, $p: previous });
  }

  /** Finish a job. */
  finish(id: number, outcome: { error: string | null; deltas: string[]; pruned: number | null; warnings?: string[] }): void {
    this.db.run(`UPDATE publish_jobs SET state = $state, step = CASE WHEN $error IS NULL THEN 'done' ELSE step END, error = $error, result = $result, finished_at = $t WHERE id = $id`, {
      $id: id,
      $state: outcome.error === null ? 'succeeded' : 'failed',
      $error: outcome.error,
      $result: JSON.stringify({ deltas: outcome.deltas, pruned: outcome.pruned, warnings: outcome.warnings ?? [] }),
      $t: this.time(),
    });
  }

  /** Fail every job left queued or running by a previous process; returns how many. */
  failInterrupted(): number {
    return this.db.run(`UPDATE publish_jobs SET state = 'failed', error = 'Interrupted by a server restart; push again', finished_at = $t WHERE state IN ('queued', 'running')`, { $t: this.time() }).changes;
  }

  /** Stored rollout rows of a repository. */
  rollouts(repo: string): Map<string, RolloutEntry> {
    const out = new Map<string, RolloutEntry>();
    for (const r of this.db.all<RolloutRow>('SELECT ref, percent, paused, reason, updated_at FROM publish_rollouts WHERE repo = $repo ORDER BY ref', { $repo: repo })) {
      out.set(r.ref, { ref: r.ref, percent: Number(r.percent), paused: Number(r.paused) !== 0, reason: r.reason, updatedAt: r.updated_at });
    }
    return out;
  }

  /** Insert or replace a rollout row; returns the stored entry. */
  putRollout(repo: string, e: { ref: string; percent: number; paused: boolean; reason: string | null }): RolloutEntry {
    const t = this.time();
    this.db.run(
      `INSERT INTO publish_rollouts (repo, ref, percent, paused, reason, updated_at) VALUES ($repo, $ref, $p, $paused, $reason, $t)
       ON CONFLICT (repo, ref) DO UPDATE SET percent = excluded.percent, paused = excluded.paused, reason = excluded.reason, updated_at = excluded.updated_at`,
      { $repo: repo, $ref: e.ref, $p: e.percent, $paused: e.paused ? 1 : 0, $reason: e.reason, $t: t },
    );
    return { ...e, updatedAt: t };
  }
}
