/**
 * The update state machine of one device:
 *
 *   idle → check → pull → preflight → stage → reboot → confirm → idle
 *                                                  ↘ rollback → reboot → confirm(fallback) → idle
 *
 * Why this shape: every phase is persisted (state.ts) *before* its side effects, and each phase
 * is idempotent against what is on disk, so an agent killed anywhere repeats at most one phase on
 * restart: `check` only reads; `pull` resumes (objects already verified stay in the repository);
 * `preflight` only reads; `stage` first looks whether the target is already the default
 * deployment (the sysroot switches boot configurations with one rename, so it is either there or
 * not); `reboot` compares boot ids (a new one proves a reboot, even after a failed command);
 * `confirm` counts boots by boot id, so restarts within one boot are not boots; `rollback` marks
 * the commit bad before touching the sysroot and only reorders when the target is still the default.
 * Each transition is one JSON line on the log.
 *
 * Check-ins (POST of the `checkInSchema` payload to `checkInUrl`) happen at the end of every
 * cycle and right after a rollback marked a commit bad, before the reboot into the fallback, so
 * the server learns of the failure even when that reboot is real. They are time-limited and
 * their failures are only logged: reporting never holds up or fails an update.
 *
 * Staging uses a plain `deploy` of the target as the new default, keeping the booted deployment
 * as the rollback: the sysroot package's `stage: true` needs a booted system and leaves the
 * switch to a shutdown service that does not exist here, while a plain deploy gives the same
 * on-disk result the moment it returns, atomically. On a booted sysroot this needs root, as
 * `ostree admin deploy` does.
 */
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, readSync, writeFileSync } from 'node:fs';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import path from 'node:path';
import { LarchError, Repo, readSummary, summaryRefTimestamp, type SummaryRef } from '@larch/core-store';
import { addRemote, FileFetcher, getRemote, isRetryable, joinUrl, pull, UndiciFetcher, verificationPolicy, type Fetcher, type FetchOptions, type FetchResponse, type PullProgress } from '@larch/http-pull';
import * as native from '@larch/native';
import { createPullVerifier } from '@larch/signing';
import { deploy, markBootGood, rollback as sysrootRollback, setDefault, Sysroot, sysrootStatus, deploymentName, trialBootState, type Deployment, type SysrootStatus } from '@larch/sysroot';
import { inMaintenanceWindow, msUntilWindow, type AgentConfig } from './config.js';
import { meteredFetcher, readBody } from './fetcher.js';
import { runHealthChecks, type HealthReport } from './health.js';
import { assertSpace, computeSpaceNeeds, freeBytes } from './preflight.js';
import { checkInPayload, checkInUrlFor, serveMetrics, type CheckInPayload, type HealthResult } from './report.js';
import { inRollout, rolloutBucket, rolloutPercent } from './rollout.js';
import { readState, writeState, type AgentState, type Phase } from './state.js';

/** One log record; written as one JSON line. */
export type LogRecord = Record<string, unknown> & { event: string };
export type LogSink = (rec: LogRecord) => void;

export interface AgentOptions {
  /** Where log records go (default: one JSON line each on stdout). */
  log?: LogSink;
  /** Transport override (tests); default undici for http(s), files for file://. */
  fetcher?: Fetcher;
  /** Clock (epoch ms). */
  now?: () => number;
}

/** How a cycle ended. */
export interface CycleResult {
  phase: Phase;
  /** The reboot command ran and returned (a real reboot never gets here). */
  rebooted: boolean;
  /** The agent waits (backoff or maintenance window) until this time (epoch ms). */
  waitUntil: number | null;
}

type StepResult = { kind: 'continue' } | { kind: 'idle' } | { kind: 'wait'; until: number } | { kind: 'rebooted' };

const MAX_SUMMARY = 64 * 1024 * 1024;
/** The most of `failedTrialsFile` read (about 15,000 commits). */
const MAX_FAILED_TRIALS = 1024 * 1024;

function jsonLine(rec: LogRecord): void {
  process.stdout.write(`${JSON.stringify(rec)}\n`);
}

function errInfo(e: unknown): { code: string; message: string } {
  if (e instanceof LarchError) return { code: e.code, message: e.message };
  const err = e as { code?: unknown; name?: unknown; message?: unknown };
  const code = typeof err?.code === 'string' ? err.code : typeof err?.name === 'string' ? err.name : 'ERROR';
  return { code, message: typeof err?.message === 'string' ? err.message : String(e) };
}

class BaseFetcher implements Fetcher {
  private http: UndiciFetcher | null = null;
  private readonly file = new FileFetcher();
  constructor(private readonly socketTimeoutMs: number) {}
  get(url: string, opts: FetchOptions): Promise<FetchResponse> {
    if (url.startsWith('file:')) return this.file.get(url, opts);
    this.http ??= new UndiciFetcher({ socketTimeoutMs: this.socketTimeoutMs, userAgent: 'larch-agent' });
    return this.http.get(url, opts);
  }
  async close(): Promise<void> {
    await this.http?.close();
    this.http = null;
  }
}

/** The device id: `config.deviceId`, else the first line of the machine-id file. */
export function resolveDeviceId(config: AgentConfig): string {
  if (config.deviceId) return config.deviceId;
  let id = '';
  try {
    id = readFileSync(config.machineIdFile, 'utf8').trim();
  } catch (e) {
    throw new LarchError('BAD_CONFIG', `No deviceId configured and cannot read ${config.machineIdFile}: ${(e as Error).message}`, { path: config.machineIdFile }, { cause: e });
  }
  if (!id) throw new LarchError('BAD_CONFIG', `No deviceId configured and ${config.machineIdFile} is empty`, { path: config.machineIdFile });
  return id;
}

/** Status of a device as `larch-agent status --json` prints it. */
export interface AgentStatus {
  deviceId: string;
  ref: string;
  remote: string;
  state: AgentState;
  sysroot: SysrootStatus | null;
  sysrootError?: string;
}

/** Read-only status (no lock): the persisted state and the sysroot's deployments. */
export async function agentStatus(config: AgentConfig): Promise<AgentStatus> {
  const state = readState(config.stateDir);
  let sysroot: SysrootStatus | null = null;
  let sysrootError: string | undefined;
  try {
    sysroot = await sysrootStatus(config.sysroot, config.bootedRoot !== undefined ? { bootedRoot: config.bootedRoot } : {});
  } catch (e) {
    sysrootError = errInfo(e).message;
  }
  return { deviceId: resolveDeviceId(config), ref: config.ref, remote: config.remote.name, state, sysroot, ...(sysrootError ? { sysrootError } : {}) };
}

/**
 * One agent over one sysroot. `Agent.open` takes an exclusive flock on `STATE_DIR/agent.lock`
 * (a second agent on the same state fails at once with EXISTS); `close()` releases it.
 */
export class Agent {
  state: AgentState;
  readonly deviceId: string;
  private readonly log: LogSink;
  private readonly now: () => number;
  private readonly baseFetcher: Fetcher;
  private readonly ownsFetcher: boolean;
  private lockFd: number | null;
  private abort = new AbortController();
  /** The health checks of the last confirmation run by this process, for check-ins. */
  private lastHealth: HealthResult[] | undefined;

  private constructor(readonly config: AgentConfig, opts: AgentOptions, lockFd: number) {
    this.lockFd = lockFd;
    this.log = opts.log ?? jsonLine;
    this.now = opts.now ?? Date.now;
    this.ownsFetcher = opts.fetcher === undefined;
    this.baseFetcher = opts.fetcher ?? new BaseFetcher(config.timeouts.noProgressSeconds * 1000);
    this.deviceId = resolveDeviceId(config);
    this.state = readState(config.stateDir);
  }

  static open(config: AgentConfig, opts: AgentOptions = {}): Agent {
    mkdirSync(config.stateDir, { recursive: true, mode: 0o700 });
    const lockPath = path.join(config.stateDir, 'agent.lock');
    const fd = openSync(lockPath, 'a', 0o600);
    if (!native.flock(fd, 'ex', { nonblocking: true })) {
      closeSync(fd);
      throw new LarchError('EXISTS', `Another larch-agent is running on ${config.stateDir} (${lockPath} is locked)`, { path: lockPath });
    }
    try {
      return new Agent(config, opts, fd);
    } catch (e) {
      closeSync(fd);
      throw e;
    }
  }

  /** Stop a running cycle (aborts a pull) and release the lock. */
  async close(): Promise<void> {
    this.abort.abort(new LarchError('ABORTED', 'larch-agent is stopping'));
    if (this.ownsFetcher) await this.baseFetcher.close?.();
    if (this.lockFd !== null) {
      closeSync(this.lockFd);
      this.lockFd = null;
    }
  }

  private emit(event: string, detail: Record<string, unknown> = {}): void {
    this.log({ time: new Date(this.now()).toISOString(), event, deviceId: this.deviceId, phase: this.state.phase, ...detail });
  }

  private save(): void {
    writeState(this.config.stateDir, this.state);
  }

  /** Persist the new phase, then log the transition. */
  private go(to: Phase, detail: Record<string, unknown> = {}): void {
    const from = this.state.phase;
    this.state.phase = to;
    this.save();
    this.log({ time: new Date(this.now()).toISOString(), event: 'transition', deviceId: this.deviceId, from, to, ...detail });
  }

  private fail(phase: string, e: unknown, detail: Record<string, unknown> = {}): void {
    const info = errInfo(e);
    this.state.counters.failures += 1;
    this.state.lastError = { phase, ...info, at: this.now() };
    this.save();
    this.emit('error', { failedPhase: phase, code: info.code, message: info.message, ...(e instanceof LarchError ? { data: e.data } : {}), ...detail });
  }

  private finish(detail: Record<string, unknown> = {}): StepResult {
    this.state.target = null;
    this.state.previous = null;
    this.state.expectBoot = null;
    this.state.rebootBootId = null;
    this.state.confirmBootId = null;
    this.state.bootCount = 0;
    this.state.fallbackBoots = 0;
    this.state.confirmStartedAt = null;
    this.state.pullAttempts = 0;
    this.state.nextAttemptAt = null;
    this.go('idle', detail);
    return { kind: 'idle' };
  }

  private sysrootOpts(): { bootedRoot?: string } {
    return this.config.bootedRoot !== undefined ? { bootedRoot: this.config.bootedRoot } : {};
  }

  private loadSysroot(): Promise<Sysroot> {
    return Sysroot.open(this.config.sysroot, this.sysrootOpts());
  }

  private bootId(): string {
    try {
      return readFileSync(this.config.bootIdFile, 'utf8').trim();
    } catch {
      return '';
    }
  }

  private windowOpen(): boolean {
    return inMaintenanceWindow(this.config.maintenanceWindows, new Date(this.now()));
  }

  private windowWait(reason: string): StepResult {
    const until = this.now() + Math.max(1000, msUntilWindow(this.config.maintenanceWindows, new Date(this.now())));
    this.emit('waiting', { reason, until: new Date(until).toISOString() });
    return { kind: 'wait', until };
  }

  private stateroot(sr: Sysroot): string {
    const s = this.config.stateroot ?? sr.booted?.stateroot ?? sr.deployments[0]?.stateroot;
    if (!s) throw new LarchError('BAD_CONFIG', 'Not currently booted into an OSTree system and no stateroot configured', {});
    return s;
  }

  /** The deployment the device runs (booted, else the default one). */
  private current(sr: Sysroot): Deployment | null {
    return sr.booted ?? sr.deployments.find((d) => !d.staged) ?? null;
  }

  private async openRepo(): Promise<Repo> {
    const repo = await Repo.open(this.config.repo);
    const r = this.config.remote;
    if (r.url !== undefined) {
      const set: Array<[string, string]> = Object.entries(r.options);
      await addRemote(repo, { name: r.name, url: r.url, gpgVerify: r.gpgVerify, set, ifNotExists: true });
      return Repo.open(this.config.repo);
    }
    return repo;
  }

  private fetcher(onBytes: (n: number) => void = () => undefined): Fetcher {
    return meteredFetcher(this.baseFetcher, {
      bandwidthLimit: this.config.bandwidthLimit,
      onBytes: (n) => {
        this.state.counters.bytesFetched += n;
        onBytes(n);
      },
    });
  }

  /**
   * Run one cycle: from idle, a check (and, when an update is found, everything up to the
   * reboot); from any other phase, resume where the persisted state says. Returns when the
   * machine is idle again, must wait (backoff, maintenance window), or the reboot command
   * returned. Never throws for update failures (they are logged and counted); throws only when
   * the state cannot be persisted.
   * Locks: the agent lock is held already (open); the pull takes the repository's shared lock,
   * deploy / set-default take the sysroot lock (through @larch/sysroot). Crash: see the file
   * comment; a restart repeats at most the phase that was running. `signal` stops the cycle.
   */
  async runOnce(signal?: AbortSignal): Promise<CycleResult> {
    const onAbort = (): void => this.abort.abort(new LarchError('ABORTED', 'larch-agent is stopping'));
    if (signal?.aborted) onAbort();
    signal?.addEventListener('abort', onAbort, { once: true });
    if (this.state.phase === 'idle') {
      this.state.counters.checks += 1;
      this.state.lastCheckAt = this.now();
      this.go('check');
    } else {
      this.emit('resume');
    }
    let result: CycleResult = { phase: this.state.phase, rebooted: false, waitUntil: null };
    for (;;) {
      if (this.abort.signal.aborted) break;
      const r = await this.step();
      if (r.kind === 'continue') continue;
      result = { phase: this.state.phase, rebooted: r.kind === 'rebooted', waitUntil: r.kind === 'wait' ? r.until : null };
      break;
    }
    await this.checkIn();
    signal?.removeEventListener('abort', onAbort);
    return result;
  }

  private async step(): Promise<StepResult> {
    switch (this.state.phase) {
      case 'idle':
        return { kind: 'idle' };
      case 'check':
        return this.check();
      case 'pull':
        return this.pullStep();
      case 'preflight':
        return this.preflight();
      case 'stage':
        return this.stage();
      case 'reboot':
        return this.reboot();
      case 'confirm':
        return this.confirm();
      case 'rollback':
        return this.rollback();
    }
  }

  /**
   * Take the commits the boot loader gave up on (`failedTrialsFile`) as bad commits, report them,
   * and when the default deployment is one of them while another is booted (GRUB fell back and
   * keeps booting the previous entry), make the booted deployment the default again (the sysroot's
   * larch-grub backend then ends the fallback in grubenv). Lines that are not a commit are ignored
   * (logged once each cycle). Never throws: a failure is logged.
   */
  private async takeFailedTrials(): Promise<void> {
    const file = this.config.failedTrialsFile;
    let text: string;
    try {
      const fd = openSync(file, 'r');
      try {
        const buf = Buffer.alloc(MAX_FAILED_TRIALS);
        const n = readSync(fd, buf, 0, buf.length, 0);
        text = buf.subarray(0, n).toString('latin1');
      } finally {
        closeSync(fd);
      }
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') this.emit('error', { failedPhase: 'failed-trials', code: 'IO_ERROR', message: `Cannot read failedTrialsFile ${file}: ${(e as Error).message}` });
      return;
    }
    const commits: string[] = [];
    let ignored = 0;
    for (const line of text.split('\n')) {
      const l = line.trim();
      if (l === '') continue;
      if (/^[0-9a-f]{64}$/.test(l)) commits.push(l);
      else ignored += 1;
    }
    if (ignored > 0) this.emit('failed-trials-ignored', { file, lines: ignored });
    const fresh = commits.filter((c) => !this.state.badCommits.includes(c));
    for (const c of fresh) {
      this.state.badCommits.push(c);
      this.save();
      this.emit('marked-bad', { commit: c, source: 'failed-trial' });
    }
    try {
      const sr = await this.loadSysroot();
      const def = sr.deployments.find((d) => !d.staged);
      if (def && sr.booted && commits.includes(def.csum) && def.csum !== sr.booted.csum) {
        const i = sr.deployments.filter((d) => !d.staged).findIndex((d) => sr.isBooted(d));
        if (i > 0) {
          await setDefault(this.config.sysroot, i);
          this.emit('rolled-back-default', { commit: def.csum, default: deploymentName(sr.booted), source: 'failed-trial' });
        }
      }
    } catch (e) {
      this.fail('check', e);
    }
    if (fresh.length > 0) await this.checkIn('marked-bad');
  }

  private async check(): Promise<StepResult> {
    await this.takeFailedTrials();
    try {
      if (this.config.metered && !this.windowOpen()) {
        this.emit('deferred', { reason: 'metered connection outside maintenance windows' });
        return this.finish({ result: 'deferred' });
      }
      const sr = await this.loadSysroot();
      const repo = await this.openRepo();
      const name = this.config.remote.name;
      const rc = getRemote(repo, name);
      const f = this.fetcher();
      const signal = AbortSignal.any([this.abort.signal, AbortSignal.timeout(this.config.timeouts.requestSeconds * 1000)]);
      const summaryUrl = joinUrl(rc.url, 'summary');
      const res = await f.get(summaryUrl, { maxBytes: MAX_SUMMARY, signal });
      if (res.status !== 200) {
        await res.dump();
        throw new LarchError('IO_ERROR', `Fetching summary: Server returned HTTP ${res.status} for ${summaryUrl}`, { status: res.status, reason: 'http-status' });
      }
      const bytes = await readBody(res, MAX_SUMMARY, 'summary', summaryUrl);
      const policy = verificationPolicy(rc);
      if (policy.summary.length > 0) {
        const sigUrl = joinUrl(rc.url, 'summary.sig');
        const sres = await f.get(sigUrl, { maxBytes: MAX_SUMMARY, signal });
        let sig: Uint8Array | null = null;
        if (sres.status === 200) sig = await readBody(sres, MAX_SUMMARY, 'summary.sig', sigUrl);
        else await sres.dump();
        await createPullVerifier({ repoPath: this.config.repo }).verifySummary(bytes, sig, { remote: name, config: rc, required: policy.summary });
      }
      const summary = readSummary(bytes);
      const sref: SummaryRef | undefined = summary.refs.find((r) => r.name === this.config.ref);
      if (!sref) throw new LarchError('REF_NOT_FOUND', `No such branch '${this.config.ref}' in repository summary of remote ${name}`, { ref: this.config.ref, remote: name });
      const commit = sref.checksum;
      const cur = this.current(sr);
      if (cur && cur.csum === commit) return this.finish({ result: 'up-to-date', commit });
      if (this.state.badCommits.includes(commit)) {
        this.emit('skip-bad', { commit });
        return this.finish({ result: 'skip-bad', commit });
      }
      const ts = summaryRefTimestamp(sref);
      if (cur && ts !== null && !this.config.allowDowngrade) {
        const curCommit = await repo.readCommit(cur.csum).catch(() => null);
        if (curCommit && ts <= curCommit.timestamp) {
          throw new LarchError(
            'INVALID_ARGUMENT',
            `Upgrade target revision '${commit}' with timestamp '${new Date(Number(ts) * 1000).toISOString()}' is chronologically older than current revision '${cur.csum}' with timestamp '${new Date(Number(curCommit.timestamp) * 1000).toISOString()}'; use --allow-downgrade to permit`,
            { reason: 'downgrade', commit, current: cur.csum },
          );
        }
      }
      const percent = rolloutPercent(summary.metadata, this.config.ref);
      const bucket = rolloutBucket(this.deviceId, commit);
      if (!inRollout(this.deviceId, commit, percent)) {
        this.emit('rollout-skip', { commit, percent, bucket });
        return this.finish({ result: 'rollout-skip', commit });
      }
      const v = sref.metadata.find(([k]) => k === 'ostree.commit.version')?.[1];
      this.state.target = { commit, ref: this.config.ref, version: v && typeof v.value === 'string' ? v.value : null, timestamp: ts === null ? null : Number(ts) };
      this.state.previous = cur ? { commit: cur.csum, deployment: deploymentName(cur) } : null;
      this.state.pullAttempts = 0;
      this.state.nextAttemptAt = null;
      this.go('pull', { commit, percent, bucket, previous: this.state.previous?.commit ?? null });
      return { kind: 'continue' };
    } catch (e) {
      this.fail('check', e);
      return this.finish({ result: 'check-failed' });
    }
  }

  private async pullStep(): Promise<StepResult> {
    const target = this.state.target!;
    if (this.state.nextAttemptAt !== null && this.now() < this.state.nextAttemptAt) {
      this.emit('waiting', { reason: 'backoff', until: new Date(this.state.nextAttemptAt).toISOString() });
      return { kind: 'wait', until: this.state.nextAttemptAt };
    }
    if (this.config.metered && !this.windowOpen()) return this.windowWait('metered connection outside maintenance windows');
    const noProgressMs = this.config.timeouts.noProgressSeconds * 1000;
    const ac = new AbortController();
    const onStop = (): void => ac.abort(this.abort.signal.reason);
    this.abort.signal.addEventListener('abort', onStop, { once: true });
    let last = Date.now();
    let received = 0;
    let latest: PullProgress | null = null;
    // One progress line a second: bytes received so far (counted on the wire), objects and ETA
    // from the pull once its totals are exact.
    const progressTimer = setInterval(() => {
      this.emit('progress', {
        bytesReceived: received,
        objectsDone: latest?.objectsDone ?? 0,
        objectsTotal: latest && !latest.estimating ? latest.objectsTotal : null,
        bytesPerSecond: latest?.bytesPerSecond ?? null,
        etaSeconds: latest && !latest.estimating ? latest.etaSeconds : null,
      });
    }, 1000);
    const watchdog = setInterval(() => {
      if (Date.now() - last > noProgressMs) {
        ac.abort(new LarchError('ABORTED', `No progress for ${this.config.timeouts.noProgressSeconds} s while pulling ${target.commit}; giving up for now`, { reason: 'no-progress' }));
      }
    }, Math.min(1000, Math.max(50, noProgressMs / 4)));
    const t0 = Date.now();
    try {
      const repo = await this.openRepo();
      // The check above already refused downgrades against the running commit; the pull's own
      // check compares with the local remote ref, which may point at a commit rolled back as bad.
      const local = await repo.resolveRef(`${this.config.remote.name}:${this.config.ref}`).catch(() => null);
      const overBad = local !== null && this.state.badCommits.includes(local);
      const res = await pull({
        repo,
        remote: this.config.remote.name,
        refs: [this.config.ref],
        fetcher: this.fetcher((n) => {
          last = Date.now();
          received += n;
        }),
        verifier: createPullVerifier({ repoPath: this.config.repo }),
        allowDowngrade: this.config.allowDowngrade || overBad,
        signal: ac.signal,
        onProgress: (p) => {
          latest = p;
        },
        limits: { stallTimeoutMs: noProgressMs, requestTimeoutMs: this.config.timeouts.requestSeconds * 1000, retries: 2 },
      });
      const got = res.refs[0]?.checksum;
      this.emit('pulled', { commit: got, bytes: received, ms: Date.now() - t0 });
      this.state.pullAttempts = 0;
      this.state.nextAttemptAt = null;
      if (got !== target.commit) {
        this.go('check', { reason: 'the ref moved on the remote', commit: got });
        return { kind: 'continue' };
      }
      this.go('preflight', { commit: target.commit });
      return { kind: 'continue' };
    } catch (e) {
      const reason = ac.signal.aborted ? ac.signal.reason : e;
      if (this.abort.signal.aborted) {
        this.save();
        return { kind: 'idle' };
      }
      const retryable = isRetryable(e) || ac.signal.aborted || (e instanceof LarchError && (e.code === 'IO_ERROR' || e.code === 'ABORTED'));
      if (!retryable) {
        this.fail('pull', e);
        return this.finish({ result: 'pull-failed' });
      }
      this.state.pullAttempts += 1;
      const base = this.config.backoff.initialSeconds * 2 ** (this.state.pullAttempts - 1);
      const delay = Math.min(this.config.backoff.maxSeconds, base) * 1000 * (0.75 + Math.random() * 0.25);
      this.state.nextAttemptAt = this.now() + Math.round(delay);
      this.fail('pull', reason, { attempt: this.state.pullAttempts, bytes: received, retryInMs: Math.round(delay) });
      return { kind: 'wait', until: this.state.nextAttemptAt };
    } finally {
      clearInterval(watchdog);
      clearInterval(progressTimer);
      this.abort.signal.removeEventListener('abort', onStop);
    }
  }

  private async preflight(): Promise<StepResult> {
    const target = this.state.target!;
    try {
      const sr = await this.loadSysroot();
      const repo = await Repo.open(this.config.repo);
      const stateroot = this.stateroot(sr);
      const needs = await computeSpaceNeeds(repo, target.commit, this.config.sysroot, stateroot);
      const diskFree = this.config.space?.diskFreeBytes ?? freeBytes(this.config.sysroot);
      const bootFree = this.config.space?.bootFreeBytes ?? freeBytes(path.join(this.config.sysroot, 'boot'));
      assertSpace({ ...needs, diskFree, bootFree, reserve: this.config.reserveBytes });
      this.go('stage', { commit: target.commit, diskNeeded: needs.disk, bootNeeded: needs.boot, diskFree, bootFree });
      return { kind: 'continue' };
    } catch (e) {
      this.fail('preflight', e);
      return this.finish({ result: 'preflight-refused', commit: target.commit });
    }
  }

  private async stage(): Promise<StepResult> {
    const target = this.state.target!;
    try {
      const sr = await this.loadSysroot();
      const first = sr.deployments[0];
      if (first && first.csum === target.commit && !sr.isBooted(first) && !first.staged) {
        this.emit('already-staged', { deployment: deploymentName(first) });
      } else {
        const originFile = path.join(this.config.stateDir, 'origin.tmp');
        writeFileSync(originFile, `[origin]\nrefspec=${this.config.remote.name}:${this.config.ref}\n`);
        const r = await deploy(this.config.sysroot, { stateroot: this.stateroot(sr), refspec: target.commit, originFile }, this.sysrootOpts());
        this.emit('deployed', { deployment: deploymentName(r.deployment) });
      }
      this.state.expectBoot = 'target';
      this.state.rebootBootId = null;
      this.go('reboot', { commit: target.commit, expect: 'target' });
      return { kind: 'continue' };
    } catch (e) {
      this.fail('stage', e);
      return this.finish({ result: 'stage-failed', commit: target.commit });
    }
  }

  private async reboot(): Promise<StepResult> {
    const cur = this.bootId();
    if (this.state.rebootBootId !== null && cur !== this.state.rebootBootId) {
      // A new boot: the reboot happened.
      this.state.rebootBootId = null;
      this.state.nextAttemptAt = null;
      this.go('confirm', { expect: this.state.expectBoot, bootId: cur });
      return { kind: 'continue' };
    }
    if (this.state.nextAttemptAt !== null && this.now() < this.state.nextAttemptAt) {
      // Issued in this boot: give the machine time to go down (or, after a failed command, back off).
      const failed = this.state.lastError?.phase === 'reboot' && this.state.lastError.at >= this.state.nextAttemptAt - this.config.timeouts.rebootSeconds * 1000;
      this.emit('waiting', { reason: failed ? 'backoff' : 'reboot pending', until: new Date(this.state.nextAttemptAt).toISOString() });
      return { kind: 'wait', until: this.state.nextAttemptAt };
    }
    if (!this.windowOpen()) return this.windowWait('outside maintenance windows');
    this.state.rebootBootId = cur;
    this.state.nextAttemptAt = this.now() + this.config.timeouts.rebootSeconds * 1000;
    this.save();
    const argv = this.config.rebootCommand;
    this.emit('reboot', { argv, expect: this.state.expectBoot });
    const r = await runCommand(argv, this.config.timeouts.rebootSeconds * 1000);
    if (!r.ok) {
      this.fail('reboot', new LarchError('IO_ERROR', `Reboot command ${JSON.stringify(argv)} failed: ${r.detail}`, { argv, exitCode: r.code }));
      return { kind: 'wait', until: this.state.nextAttemptAt };
    }
    // Still running: the machine is going down (or the command only scheduled it). Until
    // nextAttemptAt, a restart in this same boot waits instead of rebooting again.
    this.save();
    return { kind: 'rebooted' };
  }

  private async confirm(): Promise<StepResult> {
    const target = this.state.target!;
    const hc = this.config.healthChecks;
    const sr = await this.loadSysroot();
    const booted = sr.booted;
    const cur = this.bootId();
    if (this.state.expectBoot === 'previous') {
      const prev = this.state.previous;
      if (booted && prev && booted.csum === prev.commit) {
        const report = await runHealthChecks(hc.dir, { checkTimeoutMs: hc.checkTimeoutSeconds * 1000, env: this.checkEnv(sr, booted) });
        this.keepHealth(report);
        for (const r of report.results.filter((x) => !x.ok)) this.emit(r.kind === 'wanted' ? 'health-warning' : 'health-failed', { check: r.name, kind: r.kind, exitCode: r.exitCode, timedOut: r.timedOut, output: r.output });
        if (!report.ok) {
          this.state.degraded = true;
          this.fail('confirm', new LarchError('INVALID_ARGUMENT', `The fallback deployment ${prev.deployment} failed its required health checks too; not rebooting again`, { reason: 'fallback-unhealthy' }));
          return this.finish({ result: 'degraded', commit: target.commit });
        }
        this.state.degraded = false;
        return this.finish({ result: 'rolled-back', commit: target.commit, booted: prev.commit });
      }
      // The fallback did not come up: count it, and stop before looping forever.
      if (this.state.confirmBootId !== cur) {
        this.state.confirmBootId = cur;
        this.state.fallbackBoots += 1;
        this.save();
      }
      if (this.state.fallbackBoots >= hc.maxBootAttempts) {
        this.state.degraded = true;
        this.fail('confirm', new LarchError('INVALID_ARGUMENT', `The fallback deployment did not boot after ${this.state.fallbackBoots} attempts; giving up`, { reason: 'fallback-failed' }));
        return this.finish({ result: 'degraded', commit: target.commit });
      }
      this.go('rollback', { reason: 'the fallback did not boot', fallbackBoots: this.state.fallbackBoots });
      return { kind: 'continue' };
    }

    if (!booted || booted.csum !== target.commit) {
      // The boot loader fell back on its own: the update never came up.
      this.markBad(target.commit);
      this.fail('confirm', new LarchError('INVALID_ARGUMENT', `The update ${target.commit} did not boot (booted: ${booted ? booted.csum : 'none'})`, { reason: 'not-booted' }));
      if (sr.deployments[0]?.csum === target.commit) await this.restoreDefault();
      return this.finish({ result: 'boot-failed', commit: target.commit });
    }
    if (this.state.confirmBootId !== cur) {
      this.state.confirmBootId = cur;
      this.state.bootCount += 1;
      this.state.confirmStartedAt = this.now();
      this.save();
      this.emit('boot-counted', { commit: target.commit, bootCount: this.state.bootCount });
    }
    if (this.state.bootCount > hc.maxBootAttempts) {
      this.go('rollback', { reason: `booted ${this.state.bootCount} times without confirmation` });
      return { kind: 'continue' };
    }
    const deadline = (this.state.confirmStartedAt ?? this.now()) + hc.confirmTimeoutSeconds * 1000;
    if (this.now() >= deadline) {
      this.go('rollback', { reason: `not confirmed within ${hc.confirmTimeoutSeconds} s` });
      return { kind: 'continue' };
    }
    const report = await runHealthChecks(hc.dir, { checkTimeoutMs: hc.checkTimeoutSeconds * 1000, deadline, env: this.checkEnv(sr, booted) });
    this.keepHealth(report);
    for (const r of report.results) {
      if (!r.ok) this.emit(r.kind === 'wanted' ? 'health-warning' : 'health-failed', { check: r.name, kind: r.kind, exitCode: r.exitCode, timedOut: r.timedOut, output: r.output });
    }
    if (!report.ok) {
      const failed = report.results.filter((r) => !r.ok && r.kind === 'required').map((r) => r.name);
      this.fail('confirm', new LarchError('INVALID_ARGUMENT', `Required health check failed on ${target.commit}: ${failed.join(', ')}`, { reason: 'health-check', checks: failed }));
      this.go('rollback', { reason: 'required health check failed', checks: failed });
      return { kind: 'continue' };
    }
    // The boot loader's trial of this deployment (the sysroot's larch-grub backend started it with
    // the deploy) ends here: marked good, GRUB keeps booting it.
    try {
      if (sr.deployments.find((d) => !d.staged)?.csum === booted.csum && trialBootState(sr.path).pending) {
        markBootGood(sr.path);
        this.emit('trial-marked-good', { commit: booted.csum });
      }
    } catch (e) {
      this.fail('confirm', e);
    }
    this.state.counters.updates += 1;
    this.state.lastUpdateAt = this.now();
    this.state.lastError = null;
    this.state.degraded = false;
    return this.finish({ result: 'confirmed', commit: target.commit, checks: report.results.length, warnings: report.results.filter((r) => !r.ok).length });
  }

  private keepHealth(report: HealthReport): void {
    this.lastHealth = report.results.map((r) => ({ name: r.name, kind: r.kind, ok: r.ok }));
  }

  private checkEnv(sr: Sysroot, booted: Deployment): Record<string, string> {
    return { LARCH_BOOTED_COMMIT: booted.csum, LARCH_BOOTED_ROOT: sr.deploymentDir(booted), LARCH_SYSROOT: sr.path };
  }

  private markBad(commit: string): void {
    if (!this.state.badCommits.includes(commit)) {
      this.state.badCommits.push(commit);
      this.save();
      this.emit('marked-bad', { commit });
    }
  }

  /** Make the previous deployment the default again, if the target still is. Idempotent. */
  private async restoreDefault(): Promise<boolean> {
    const target = this.state.target!;
    const sr = await this.loadSysroot();
    if (sr.deployments[0]?.csum !== target.commit) return false;
    const prev = this.state.previous;
    const i = prev ? sr.deployments.findIndex((d) => deploymentName(d) === prev.deployment) : -1;
    if (i > 0) await setDefault(this.config.sysroot, i);
    else await sysrootRollback(this.config.sysroot);
    return true;
  }

  private async rollback(): Promise<StepResult> {
    const target = this.state.target!;
    this.markBad(target.commit);
    try {
      if (await this.restoreDefault()) {
        this.state.counters.rollbacks += 1;
        this.emit('rolled-back-default', { commit: target.commit, default: this.state.previous?.deployment ?? null });
      }
    } catch (e) {
      this.fail('rollback', e);
      this.state.degraded = true;
      return this.finish({ result: 'rollback-failed', commit: target.commit });
    }
    // Tell the server before the reboot into the fallback: a real reboot never returns here.
    await this.checkIn('marked-bad');
    this.state.expectBoot = 'previous';
    this.state.rebootBootId = null;
    this.state.nextAttemptAt = null;
    this.go('reboot', { expect: 'previous' });
    return { kind: 'continue' };
  }

  /** The check-in token: `checkInToken`, else the first line of `checkInTokenFile`, else none. */
  private checkInToken(): string | null {
    if (this.config.checkInToken !== undefined) return this.config.checkInToken;
    const file = this.config.checkInTokenFile;
    if (file === undefined) return null;
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      throw new LarchError('BAD_CONFIG', `Cannot read checkInTokenFile ${file}: ${(e as Error).message}`, { path: file }, { cause: e });
    }
    const token = text.split('\n')[0].trim();
    if (!token) throw new LarchError('BAD_CONFIG', `checkInTokenFile ${file} is empty`, { path: file });
    return token;
  }

  /**
   * Report to the server: build the payload, log it, and POST it to `checkInUrl` (when set) with
   * the bearer token, within `timeouts.checkInSeconds`. Never throws: a failure is logged in the
   * `check-in` event (`sent: false`, `error`), the state is not touched.
   */
  private async checkIn(reason: 'cycle' | 'marked-bad' = 'cycle'): Promise<void> {
    let booted: CheckInPayload['booted'] = null;
    try {
      const sr = await this.loadSysroot();
      const cur = this.current(sr);
      if (cur) {
        const repo = await sr.repo();
        const c = await repo.readCommit(cur.csum).catch(() => null);
        const v = c?.metadata.find(([k]) => k === 'version')?.[1];
        booted = { commit: cur.csum, deployment: deploymentName(cur), version: v && typeof v.value === 'string' ? v.value : null };
      }
    } catch {
      booted = null;
    }
    const payload = checkInPayload(this.deviceId, this.config.ref, this.state, booted, new Date(this.now()), this.lastHealth);
    if (this.config.checkInUrl === undefined) {
      this.emit('check-in', { url: null, sent: false, reason, payload });
      return;
    }
    const url = checkInUrlFor(this.config.checkInUrl, this.deviceId);
    const t0 = Date.now();
    try {
      const token = this.checkInToken();
      const signal = AbortSignal.any([this.abort.signal, AbortSignal.timeout(this.config.timeouts.checkInSeconds * 1000)]);
      const res = await postJson(url, payload, token, signal);
      if (res.status < 200 || res.status >= 300) {
        throw new LarchError('IO_ERROR', `Check-in to ${url}: Server returned HTTP ${res.status}${res.message ? `: ${res.message}` : ''}`, { status: res.status, reason: 'http-status' });
      }
      this.emit('check-in', { url, sent: true, status: res.status, ms: Date.now() - t0, reason, payload });
    } catch (e) {
      const info = errInfo(e);
      this.emit('check-in', { url, sent: false, ms: Date.now() - t0, reason, error: info, payload });
    }
  }

  /**
   * Run until `signal` aborts: a cycle now, then one per interval (+ jitter), sooner when a
   * backoff or window ends. After the reboot command returns (a simulated or failed reboot), the
   * next cycle resumes from the persisted state as a restarted agent would. Serves metrics when
   * `metricsPort` is set.
   */
  async runDaemon(signal: AbortSignal): Promise<void> {
    const metrics = this.config.metricsPort !== undefined ? await serveMetrics(this.config.metricsPort, () => this.state) : null;
    if (metrics) this.emit('metrics', { address: `127.0.0.1:${metrics.port}`, port: metrics.port });
    try {
      while (!signal.aborted) {
        const r = await this.runOnce(signal);
        if (signal.aborted) break;
        let ms: number;
        if (r.rebooted) ms = 0;
        else if (r.waitUntil !== null) ms = Math.max(0, r.waitUntil - this.now());
        else {
          const s = this.config.schedule;
          ms = (s.intervalSeconds + Math.random() * s.jitterSeconds) * 1000;
          this.emit('sleep', { nextCheck: new Date(this.now() + ms).toISOString() });
        }
        await sleep(ms, signal);
      }
    } finally {
      await metrics?.close();
    }
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, Math.min(ms, 2 ** 31 - 1));
    function done(): void {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

/**
 * POST `body` as JSON (no keep-alive: a device checks in rarely, and an idle socket must not keep
 * a `run --once` process alive). Resolves with the status and, for an error answer, the server's
 * one-line message (`{"error":{"message"}}`, read up to 4 KiB). Rejects on network errors and
 * when `signal` aborts (the whole exchange, body included).
 */
function postJson(url: string, body: unknown, token: string | null, signal: AbortSignal): Promise<{ status: number; message: string | null }> {
  const data = Buffer.from(JSON.stringify(body), 'utf8');
  const u = new URL(url);
  const headers: Record<string, string | number> = { 'content-type': 'application/json', 'content-length': data.length, 'user-agent': 'larch-agent', connection: 'close' };
  if (token !== null) headers.authorization = `Bearer ${token}`;
  const send = u.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const req = send(u, { method: 'POST', headers, signal, agent: false }, (res: IncomingMessage) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (b: Buffer) => {
        if (size < 4096) chunks.push(b);
        size += b.length;
      });
      let ended = false;
      res.on('error', reject);
      res.on('close', () => {
        if (!ended) reject(signal.aborted ? signal.reason : new LarchError('IO_ERROR', `Check-in to ${url}: connection closed before the end of the answer`, { reason: 'closed' }));
      });
      res.on('end', () => {
        ended = true;
        const status = res.statusCode ?? 0;
        let message: string | null = null;
        if (status >= 300) {
          const text = Buffer.concat(chunks).subarray(0, 4096).toString('utf8');
          try {
            const m = (JSON.parse(text) as { error?: { message?: unknown } }).error?.message;
            message = typeof m === 'string' ? m : null;
          } catch {
            message = text.split('\n')[0].slice(0, 200) || null;
          }
        }
        resolve({ status, message });
      });
    });
    req.on('error', (e) => reject(signal.aborted ? signal.reason : e));
    req.end(data);
  });
}

/** Run argv with a time limit; stdout/stderr are passed through to stderr. */
function runCommand(argv: string[], timeoutMs: number): Promise<{ ok: boolean; code: number | null; detail: string }> {
  return new Promise((resolve) => {
    const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 2, 2] });
    const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (e) => {
      clearTimeout(t);
      resolve({ ok: false, code: null, detail: e.message });
    });
    child.on('close', (code, sig) => {
      clearTimeout(t);
      resolve({ ok: code === 0, code, detail: sig ? `killed by ${sig}` : `exit status ${code}` });
    });
  });
}


