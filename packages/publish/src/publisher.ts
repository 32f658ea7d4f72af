/**
 * The publisher: receives pushed objects, runs the publish pipeline, and keeps rollouts.
 *
 * Pipeline (one job at a time per repository, each job a row of `publish_jobs`):
 *   verify   the commit and everything it names is present (objects were verified on receipt)
 *   sign     append the configured signatures to the commit's detached metadata
 *   ref      move the ref
 *   deltas   static deltas to the new commit from the ref's last N commits (and from scratch)
 *   summary  regenerate `summary` (with `larch.rollout`) and sign it into `summary.sig`
 *   prune    by the configured policy
 * Why this order keeps readers safe: clients find commits through the summary, so objects are
 * complete before the ref moves, deltas are complete before the summary names them, and the
 * summary is replaced atomically (its signature follows it, as with `ostree summary -u`).
 *
 * Concurrency: jobs and rollout changes of one repository are serialised on one promise chain
 * (summary writes never interleave); uploads run concurrently with them under the repository's
 * shared lock. Signing, the summary refresh and prune take the exclusive lock. Objects received for a push whose ref has not
 * moved yet are unreachable, so a prune would delete them: the publisher remembers what it
 * stored until a published commit covers it, and skips the prune step while such objects are
 * younger than {@link PENDING_GRACE_MS} (the next publish prunes).
 *
 * Crash behaviour: every file write is atomic (tmp + rename, or core-store batches); a job that
 * was running when the process died is marked failed at the next start, and pushing again
 * re-runs it (every step is idempotent).
 */
import {
  LarchError,
  ReceiveWorkers,
  commitRefBindings,
  prune,
  signCommit,
  traverseCommit,
  validateChecksum,
  validateRefName,
  Repo,
  type Checksum,
} from '@larch/core-store';
import type { Database } from '@larch/db';
import { deltaName, generateDelta, hasDelta, refreshSummary } from '@larch/delta';
import { Variant } from '@larch/gvariant';
import type { Signer } from '@larch/signing';
import { ApiError } from './api-error.js';
import { DEFAULT_DELTAS_FROM_LAST, loadSigners, type PublishConfig } from './config.js';
import { isRepoName } from './http.js';
import { receiveObjects, type ReceiveResult } from './receive.js';
import { PublishStore, type PublishJob, type RolloutEntry } from './store.js';
import type { UploadType } from './wire.js';

/** How long received objects not yet part of a published commit hold off pruning (1 h). */
export const PENDING_GRACE_MS = 3_600_000;
/** Received objects remembered per repository at most (more: prune waits for the grace period). */
const PENDING_MAX = 200_000;

/** The summary metadata key agents read rollout percentages from. */
export const ROLLOUT_KEY = 'larch.rollout';

/** One repository the publisher manages. */
export interface PublishRepoOptions {
  /** API name (`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`). */
  name: string;
  /** Repository directory (archive mode for serving over HTTP). */
  path: string;
  publish?: PublishConfig;
}

/** Options of {@link Publisher.open}. */
export interface PublisherOptions {
  db: Database;
  repos: PublishRepoOptions[];
  /** Clock (tests). */
  now?: () => Date;
  /** Receive worker threads per repository (default 2). */
  receiveThreads?: number;
  /** Called with one line per finished job (for the server's stderr). */
  log?: (line: string) => void;
}

/** Upload counters of one repository since the publisher opened. */
export interface UploadStats {
  /** Upload requests answered. */
  uploads: number;
  /** Objects verified and stored. */
  objectsStored: number;
  /** Objects sent although the repository had them. */
  objectsPresent: number;
  /** Body bytes received. */
  bytesReceived: number;
  /** Missing-object queries answered, and checksums asked about. */
  missingQueries: number;
  objectsQueried: number;
}

/** Changes of {@link Publisher.setRollout}; absent fields keep their value. */
export interface RolloutChange {
  percent?: number;
  paused?: boolean;
  reason?: string | null;
}

interface RepoState {
  name: string;
  repo: Repo;
  config: PublishConfig;
  signers: Signer[];
  workers: ReceiveWorkers | null;
  chain: Promise<void>;
  stats: UploadStats;
  /** Objects stored by uploads and not yet covered by a published commit → when received. */
  pending: Map<string, number>;
  /** Set when `pending` overflowed: no prune before this time. */
  pendingOverflowUntil: number;
}

function errorText(e: unknown): string {
  // eslint-disable-next-line no-control-regex
  return (e instanceof Error ? e.message : String(e)).replace(/[\x00-\x1f\x7f]+/g, ' ').slice(0, 1000);
}

/**
 * The publishing side of larch-server for a set of repositories. Create with
 * {@link Publisher.open}; {@link close} waits for running jobs and stops the receive workers.
 */
export class Publisher {
  private readonly repos = new Map<string, RepoState>();
  private readonly waiting = new Map<number, Promise<PublishJob>>();
  readonly store: PublishStore;
  private closed = false;

  private constructor(
    readonly db: Database,
    private readonly opts: PublisherOptions,
  ) {
    this.store = new PublishStore(db, opts.now);
  }

  /**
   * Open every repository, load the signing keys of each publish config, create or migrate the
   * tables, and mark jobs a previous process left unfinished as failed. Throws on a bad
   * repository name, a duplicate name, a missing repository or an unreadable key.
   */
  static async open(opts: PublisherOptions): Promise<Publisher> {
    const p = new Publisher(opts.db, opts);
    for (const r of opts.repos) {
      if (!isRepoName(r.name)) throw new LarchError('INVALID_NAME', `Invalid repository name ${JSON.stringify(r.name)}`, { name: r.name });
      if (p.repos.has(r.name)) throw new LarchError('INVALID_ARGUMENT', `Duplicate repository name ${r.name}`, { name: r.name });
      const repo = await Repo.open(r.path);
      const signers = await loadSigners(r.publish);
      p.repos.set(r.name, {
        name: r.name,
        repo,
        config: r.publish ?? {},
        signers,
        workers: null,
        chain: Promise.resolve(),
        stats: { uploads: 0, objectsStored: 0, objectsPresent: 0, bytesReceived: 0, missingQueries: 0, objectsQueried: 0 },
        pending: new Map(),
        pendingOverflowUntil: 0,
      });
    }
    p.store.failInterrupted();
    return p;
  }

  /** Names of the repositories, in configuration order. */
  get repoNames(): string[] {
    return [...this.repos.keys()];
  }

  /** The opened repository of a name (404 ApiError when unknown). */
  repo(name: string): Repo {
    return this.state(name).repo;
  }

  private state(name: string): RepoState {
    const s = this.repos.get(name);
    if (s === undefined) throw new ApiError(404, 'repo-not-found', `No repository named ${name}`);
    return s;
  }

  /** Upload counters of a repository. */
  stats(name: string): UploadStats {
    return { ...this.state(name).stats };
  }

  /** The commit a ref of a repository points to, or null (also for an unknown repository). */
  async refCommit(name: string, ref: string): Promise<string | null> {
    const s = this.repos.get(name);
    if (s === undefined) return null;
    try {
      return await s.repo.resolveRef(ref);
    } catch (e) {
      if (e instanceof LarchError && (e.code === 'REF_NOT_FOUND' || e.code === 'INVALID_REF')) return null;
      throw e;
    }
  }

  /** Which of `objects` (`CHECKSUM.TYPE` keys) the repository lacks, in the order given. */
  missing(name: string, objects: readonly string[]): string[] {
    const s = this.state(name);
    s.stats.missingQueries++;
    s.stats.objectsQueried += objects.length;
    const out: string[] = [];
    for (const key of objects) {
      const dot = key.indexOf('.');
      const checksum = key.slice(0, dot);
      const type = key.slice(dot + 1) as UploadType;
      validateChecksum(checksum);
      if (!s.repo.hasObjectSync(type, checksum)) out.push(key);
    }
    return out;
  }

  /**
   * Receive an upload body (wire.ts format) into a repository. See receive.ts for the
   * guarantees; counts go to {@link stats}.
   */
  async receive(name: string, body: AsyncIterable<Uint8Array>): Promise<ReceiveResult> {
    const s = this.state(name);
    if (this.closed) throw new ApiError(503, 'closing', 'Server is shutting down');
    s.workers ??= new ReceiveWorkers(s.repo, this.opts.receiveThreads ?? 2);
    let result: ReceiveResult | undefined;
    try {
      result = await receiveObjects(s.repo, s.workers, body, { maxObjects: 10_000, maxFileSize: s.config.maxFileSize ?? 16 * 1024 ** 3 }, (type, checksum) => {
        s.stats.objectsStored++;
        if (s.pending.size < PENDING_MAX) s.pending.set(`${checksum}.${type}`, this.now());
        else s.pendingOverflowUntil = this.now() + PENDING_GRACE_MS;
      });
      return result;
    } finally {
      s.stats.uploads++;
      if (result) {
        s.stats.objectsPresent += result.present;
        s.stats.bytesReceived += result.bytes;
      }
    }
  }

  /**
   * The first object of `commit` that the repository lacks (`CHECKSUM.TYPE`), or null when the
   * commit is complete. Reads and checksum-verifies the commit and every dirtree; checks the
   * presence of dirmeta and content objects (they were verified when received). No lock.
   */
  async firstMissing(name: string, commit: Checksum): Promise<string | null> {
    const repo = this.state(name).repo;
    validateChecksum(commit);
    if (!repo.hasObjectSync('commit', commit)) return `${commit}.commit`;
    let objects;
    try {
      objects = await traverseCommit(repo, commit, { depth: 0 });
    } catch (e) {
      if (e instanceof LarchError && e.code === 'OBJECT_MISSING') {
        const d = e.data as { type?: string; checksum?: string };
        return d.checksum !== undefined && d.type !== undefined ? `${d.checksum}.${d.type}` : 'unknown';
      }
      throw e;
    }
    for (const o of objects.values()) {
      if (o.type === 'commitmeta') continue;
      if (!repo.hasObjectSync(o.type, o.checksum)) return `${o.checksum}.${o.type}`;
    }
    const pending = this.state(name).pending;
    if (pending.size > 0) for (const k of objects.keys()) pending.delete(k);
    return null;
  }

  private now(): number {
    return this.opts.now ? this.opts.now().getTime() : Date.now();
  }

  /** Whether uploads not yet published are recent enough to hold off pruning. */
  private pushesInProgress(s: RepoState): number {
    const now = this.now();
    for (const [k, t] of s.pending) if (now - t > PENDING_GRACE_MS) s.pending.delete(k);
    return s.pending.size + (now < s.pendingOverflowUntil ? 1 : 0);
  }

  /**
   * Queue a publish of `commit` to `ref`. Refuses (ApiError 409 `incomplete-commit`, naming the
   * first missing object in `missing`) when the commit is not complete, so a ref never moves to
   * an incomplete commit. Returns the queued job; {@link waitForJob} follows it.
   */
  async requestPublish(name: string, ref: string, commit: Checksum, tokenId: string | null = null): Promise<PublishJob> {
    const s = this.state(name);
    if (this.closed) throw new ApiError(503, 'closing', 'Server is shutting down');
    validateRefName(ref);
    validateChecksum(commit);
    const missing = await this.firstMissing(name, commit);
    if (missing !== null) {
      throw new ApiError(409, 'incomplete-commit', `Commit ${commit} is incomplete: object ${missing} is missing`, { missing });
    }
    // OSTree clients refuse a commit bound to other refs than the one they pull (verify-bindings).
    const bindings = commitRefBindings(await s.repo.readCommit(commit));
    if (bindings.length > 0 && !bindings.includes(ref)) {
      throw new ApiError(409, 'ref-binding-mismatch', `Commit ${commit} is bound to ${bindings.map((b) => `'${b}'`).join(', ')}, not to '${ref}'`);
    }
    const job = this.store.createJob({ repo: name, ref, commit, tokenId });
    const done = this.enqueue(s, () => this.runJob(s, job.id));
    this.waiting.set(
      job.id,
      done.then(() => {
        this.waiting.delete(job.id);
        return this.store.job(job.id)!;
      }),
    );
    return job;
  }

  /** A job of a repository, or undefined. */
  job(name: string, id: number): PublishJob | undefined {
    const j = this.store.job(id);
    return j !== undefined && j.repo === name ? j : undefined;
  }

  /** Resolve with the job once it has finished (at once when it already has). */
  async waitForJob(id: number): Promise<PublishJob> {
    const w = this.waiting.get(id);
    if (w) return w;
    const j = this.store.job(id);
    if (j === undefined) throw new ApiError(404, 'job-not-found', `No publish job ${id}`);
    return j;
  }

  private enqueue(s: RepoState, fn: () => Promise<void>): Promise<void> {
    const run = s.chain.then(fn);
    s.chain = run.catch(() => undefined);
    return run;
  }

  private async runJob(s: RepoState, id: number): Promise<void> {
    const job = this.store.job(id)!;
    const repo = s.repo;
    const deltas: string[] = [];
    const warnings: string[] = [];
    let pruned: number | null = null;
    try {
      this.store.step(id, 'verify');
      const missing = await this.firstMissing(s.name, job.commit);
      if (missing !== null) throw new LarchError('OBJECT_MISSING', `Commit ${job.commit} is incomplete: object ${missing} is missing`, { missing });
      const previous = await this.refCommit(s.name, job.ref);
      this.store.setPrevious(id, previous);

      if (s.signers.length > 0 && previous !== job.commit) {
        this.store.step(id, 'sign');
        // A key that already signed the commit (published before under another ref) signs again, as before.
        await signCommit(repo, job.commit, s.signers, { alreadySigned: 'append' });
      }

      this.store.step(id, 'ref');
      await repo.withLock('shared', () => repo.setRef(job.ref, job.commit));

      // A delta that cannot be made is a warning, not a failure: the ref has moved, and the
      // summary must follow it; clients fetch objects instead.
      this.store.step(id, 'deltas');
      for (const from of await this.deltaSources(s, job.commit, previous)) {
        if (await hasDelta(repo, from, job.commit)) continue;
        try {
          await generateDelta(repo, {
            from,
            to: job.commit,
            ...(s.config.deltas?.concurrency !== undefined ? { concurrency: s.config.deltas.concurrency } : {}),
            ...(s.config.deltas?.maxChunkSize !== undefined ? { maxChunkSize: s.config.deltas.maxChunkSize } : {}),
          });
          deltas.push(deltaName(from, job.commit));
        } catch (e) {
          warnings.push(`Static delta ${deltaName(from, job.commit)} not generated: ${errorText(e)}`);
        }
      }

      this.store.step(id, 'summary');
      await this.writeSummary(s);

      let held = 0;
      if (s.config.prune) {
        this.store.step(id, 'prune');
        held = this.pushesInProgress(s);
        if (held === 0) pruned = (await prune(repo, { refsOnly: true, depth: s.config.prune.keepDepth })).deleted;
        else warnings.push(`Prune postponed: ${held} received objects await their ref update`);
      }
      if (s.config.mirror) {
        this.store.step(id, 'mirror');
        warnings.push(...(await this.mirror(s, s.config.mirror)));
      }
      this.store.finish(id, { error: null, deltas, pruned, warnings });
      const extra = [pruned !== null ? `${pruned} objects pruned` : '', ...warnings].filter((x) => x !== '');
      this.opts.log?.(`publish ${s.name} ${job.ref} ${job.commit}: done (${deltas.length} deltas${extra.length ? `; ${extra.join('; ')}` : ''})`);
    } catch (e) {
      this.store.finish(id, { error: errorText(e), deltas, pruned, warnings });
      this.opts.log?.(`publish ${s.name} ${job.ref} ${job.commit}: failed: ${errorText(e)}`);
    }
  }

  /**
   * Mirror the repository to its published store (objects, then deltas, refs, summary and its
   * signature, each only when missing or changed there), then prune the store when configured.
   * A failure fails the job (the local publish stands; the next job mirrors again). Returns
   * warnings. The S3 client is loaded only when a repository mirrors.
   */
  private async mirror(s: RepoState, cfg: NonNullable<PublishConfig['mirror']>): Promise<string[]> {
    const os = await import('@larch/object-store');
    const opened = os.openStore(cfg.to, {
      ...(cfg.endpoint !== undefined ? { endpoint: cfg.endpoint } : {}),
      ...(cfg.region !== undefined ? { region: cfg.region } : {}),
      ...(cfg.concurrency !== undefined ? { concurrency: cfg.concurrency } : {}),
    });
    try {
      const r = await os.publishRepo(s.repo.path, opened.store, { deleteStaleRefs: true });
      this.opts.log?.(`mirror ${s.name} to ${cfg.to}: ${r.uploaded} files uploaded (${r.uploadedBytes} bytes)`);
      if (cfg.pruneGraceSeconds === undefined) return [];
      const p = await os.pruneStore(opened.store, { graceSeconds: cfg.pruneGraceSeconds });
      return p.keptYoung > 0 ? [`Mirror prune kept ${p.keptYoung} unreachable objects younger than ${cfg.pruneGraceSeconds} s`] : [];
    } finally {
      opened.close();
    }
  }

  /** Delta sources for a new commit: the ref's previous commit, then the parent chain. */
  private async deltaSources(s: RepoState, commit: Checksum, previous: Checksum | null): Promise<Array<Checksum | null>> {
    const n = s.config.deltas?.fromLast ?? DEFAULT_DELTAS_FROM_LAST;
    const out: Array<Checksum | null> = [];
    const add = (c: Checksum | null): void => {
      if (c !== commit && !out.includes(c)) out.push(c);
    };
    if (n > 0 && previous !== null && s.repo.hasObjectSync('commit', previous)) add(previous);
    let cur = (await s.repo.readCommit(commit)).parent;
    while (cur !== null && out.length < n && s.repo.hasObjectSync('commit', cur)) {
      add(cur);
      cur = (await s.repo.readCommit(cur)).parent;
    }
    const picked = out.slice(0, n);
    if (s.config.deltas?.fromScratch) picked.push(null);
    return picked;
  }

  /**
   * Regenerate the summary with `larch.rollout` and sign it. Exclusive lock for the summary
   * (refs cannot move meanwhile); the signature is written after the summary, atomically.
   */
  private async writeSummary(s: RepoState): Promise<void> {
    const repo = s.repo;
    const rollout: Array<[string, Variant]> = [];
    const heads = await repo.listRefs({ kind: 'heads' });
    for (const e of this.store.rollouts(s.name).values()) if (heads.has(e.ref)) rollout.push([e.ref, new Variant('u', e.paused ? 0 : e.percent)]);
    await refreshSummary(repo, {
      ...(rollout.length > 0 ? { additionalMetadata: [[ROLLOUT_KEY, new Variant('a{sv}', rollout)]] } : {}),
      signers: s.signers,
    });
  }

  /** Every branch of a repository with its rollout (default 100 %, not paused), sorted by ref. */
  async rollouts(name: string): Promise<RolloutEntry[]> {
    const s = this.state(name);
    const stored = this.store.rollouts(name);
    const refs = await s.repo.listRefs({ kind: 'heads' });
    return [...refs.keys()].sort().map((ref) => stored.get(ref) ?? { ref, percent: 100, paused: false, reason: null, updatedAt: null });
  }

  /**
   * Change a ref's rollout and publish it: the summary is regenerated (and signed) with the
   * new `larch.rollout` before this resolves. Serialised with the repository's publish jobs.
   * Throws ApiError 404 when the ref does not exist, 400 for a percentage outside 0..100.
   */
  async setRollout(name: string, ref: string, change: RolloutChange): Promise<RolloutEntry> {
    const s = this.state(name);
    validateRefName(ref);
    if (change.percent !== undefined && (!Number.isInteger(change.percent) || change.percent < 0 || change.percent > 100)) {
      throw new ApiError(400, 'invalid-body', `Rollout percent must be an integer from 0 to 100, not ${change.percent}`);
    }
    let entry: RolloutEntry | undefined;
    await this.enqueue(s, async () => {
      if ((await this.refCommit(name, ref)) === null) throw new ApiError(404, 'ref-not-found', `Refspec '${ref}' not found in repository ${name}`);
      const old = this.store.rollouts(name).get(ref);
      entry = this.store.putRollout(name, {
        ref,
        percent: change.percent ?? old?.percent ?? 100,
        paused: change.paused ?? old?.paused ?? false,
        reason: change.reason !== undefined ? change.reason : (old?.reason ?? null),
      });
      await this.writeSummary(s);
    });
    return entry!;
  }

  /** Wait for queued jobs and rollout changes, then stop the receive workers. */
  async close(): Promise<void> {
    this.closed = true;
    for (const s of this.repos.values()) {
      await s.chain;
      await s.workers?.close();
      s.workers = null;
    }
  }
}
