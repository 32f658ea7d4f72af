/**
 * Health checks in greenboot's shape: executable files in `DIR/required.d/` and `DIR/wanted.d/`,
 * run one at a time in byte order of their names, each under a time limit (SIGKILL of its process
 * group when exceeded). Exit status 0 passes; anything else, a timeout, or a failure to start
 * fails. A failed required check fails the boot; a failed wanted check only warns.
 *
 * Checks get `LARCH_BOOTED_COMMIT`, `LARCH_BOOTED_ROOT` (the booted deployment's directory) and
 * `LARCH_SYSROOT` in their environment, so one check script can inspect the deployment it runs on.
 */
import { spawn } from 'node:child_process';
import { accessSync, constants as C, readdirSync, statSync } from 'node:fs';
import path from 'node:path';

export interface CheckResult {
  kind: 'required' | 'wanted';
  name: string;
  ok: boolean;
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  ms: number;
  /** Last bytes of stderr+stdout, for the log. */
  output: string;
}

export interface HealthReport {
  ok: boolean;
  results: CheckResult[];
}

function listChecks(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  return names
    .sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)))
    .map((n) => path.join(dir, n))
    .filter((p) => {
      try {
        if (!statSync(p).isFile()) return false;
        accessSync(p, C.X_OK);
        return true;
      } catch {
        return false;
      }
    });
}

function runOne(file: string, timeoutMs: number, env: Record<string, string>): Promise<Omit<CheckResult, 'kind' | 'name'>> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    let out = '';
    let timedOut = false;
    const child = spawn(file, [], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    const keep = (b: Buffer): void => {
      out = (out + b.toString('utf8')).slice(-2000);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
    }, timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      resolve({ ok: false, exitCode: null, signal: null, timedOut, ms: Date.now() - t0, output: e.message });
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ ok: code === 0 && !timedOut, exitCode: code, signal, timedOut, ms: Date.now() - t0, output: out.trim() });
    });
  });
}

/**
 * Run every check of `dir` (required first, then wanted). `deadline` (epoch ms) caps each check's
 * time limit, so the whole run ends by the confirmation deadline. Never throws for a failing
 * check; the report says which failed.
 */
export async function runHealthChecks(dir: string, opts: { checkTimeoutMs: number; deadline?: number; env?: Record<string, string> }): Promise<HealthReport> {
  const results: CheckResult[] = [];
  for (const kind of ['required', 'wanted'] as const) {
    for (const file of listChecks(path.join(dir, `${kind}.d`))) {
      const left = opts.deadline !== undefined ? Math.max(0, opts.deadline - Date.now()) : Number.POSITIVE_INFINITY;
      const limit = Math.min(opts.checkTimeoutMs, left);
      const r = limit <= 0 ? { ok: false, exitCode: null, signal: null, timedOut: true, ms: 0, output: 'confirmation deadline passed' } : await runOne(file, limit, opts.env ?? {});
      results.push({ kind, name: path.basename(file), ...r });
    }
  }
  return { ok: results.every((r) => r.ok || r.kind === 'wanted'), results };
}
