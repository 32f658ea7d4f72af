/**
 * Shared test support: run the built `larch-server` as a child process on 127.0.0.1:0 and read
 * its URL from stdout, build repositories with the real ostree and with core-store, and pull
 * with the real ostree.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { request } from 'node:http';
import { connect } from 'node:net';
import { fileURLToPath } from 'node:url';
import { Repo, commitTree, generateSummary } from '@larch/core-store';
import { compareTrees, formatDifferences, ostreeOk } from '@larch/test-fixtures';

/** The built entry point. */
export const SERVER_MAIN = fileURLToPath(new URL('../dist/main.js', import.meta.url));
/** The sample tree shipped with test-fixtures. */
export const SAMPLE_TREE = fileURLToPath(new URL('../../../test-fixtures/sample-os', import.meta.url));

export interface ServerProcess {
  proc: ChildProcess;
  pid: number;
  /** Base URLs in the order printed. */
  urls: string[];
  url: string;
  stdout(): string;
  stderr(): string;
  /** Send a signal and wait for exit; resolves with the exit code (null when killed by a signal). */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  exited: Promise<number | null>;
}

/**
 * Start `larch-server args…` (or `wrapper… node dist/main.js args…`) and wait for `count`
 * "Serving … at URL" lines.
 */
export async function startServerProcess(args: string[], opts: { count?: number; wrapper?: string[]; env?: Record<string, string> } = {}): Promise<ServerProcess> {
  const count = opts.count ?? 1;
  const cmd = opts.wrapper ? [...opts.wrapper, process.execPath, SERVER_MAIN, ...args] : [process.execPath, SERVER_MAIN, ...args];
  const proc = spawn(cmd[0], cmd.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...opts.env } });
  let out = '';
  let err = '';
  proc.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  const urls = await new Promise<string[]>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`larch-server did not start: ${err}`)), 60_000);
    const check = (): void => {
      const found = [...out.matchAll(/^Serving (.+) at (http:\/\/\S+)$/gm)].map((m) => m[2]);
      if (found.length >= count) {
        clearTimeout(timer);
        resolve(found);
      }
    };
    proc.stdout!.on('data', check);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`larch-server exited with ${code}: ${err}`));
    });
  });
  // Under a wrapper (strace), the server is the wrapper's child: signal and measure that one.
  let pid = proc.pid!;
  if (opts.wrapper) {
    const children = (await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8')).trim().split(/\s+/);
    pid = Number(children[0]);
  }
  return {
    proc,
    pid,
    urls,
    url: urls[0],
    stdout: () => out,
    stderr: () => err,
    exited,
    async stop(signal = 'SIGTERM') {
      if (proc.exitCode === null && proc.signalCode === null) process.kill(pid, signal);
      return exited;
    },
  };
}

export interface HttpResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** One request with node:http; the path is sent exactly as given. */
export function httpGet(url: string, path: string, opts: { method?: string; headers?: Record<string, string> } = {}): Promise<HttpResult> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = request({ host: u.hostname, port: u.port, path, method: opts.method ?? 'GET', headers: opts.headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** Send raw bytes (the last request should say `Connection: close`) and return everything the server answered until it closed. */
export function rawRequest(url: string, raw: string): Promise<string> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const s = connect(Number(u.port), u.hostname, () => s.write(raw));
    const chunks: Buffer[] = [];
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('end', () => resolve(Buffer.concat(chunks).toString('latin1')));
    s.on('error', reject);
  });
}

/** `ostree init` (archive) + commit `tree` on `branch` + `summary -u`. Returns the commit. */
export async function makeOstreeRepo(repo: string, tree: string, branch: string): Promise<string> {
  await ostreeOk(['init', `--repo=${repo}`, '--mode=archive']);
  const r = await ostreeOk(['commit', `--repo=${repo}`, `--branch=${branch}`, '--subject=test', `--tree=dir=${tree}`, '--timestamp=2024-01-01T00:00:00Z']);
  await ostreeOk(['summary', '-u', `--repo=${repo}`]);
  return r.stdout.trim();
}

/** The same through @larch/core-store. */
export async function makeLarchRepo(repo: string, tree: string, branch: string): Promise<string> {
  const r = await Repo.init({ path: repo, mode: 'archive' });
  const { commit } = await commitTree(r, { tree, branch, subject: 'test', timestamp: 1_704_067_200n });
  await generateSummary(r);
  return commit;
}

/**
 * Real `ostree pull` of `ref` from `url` into a new repository of `mode`, then `ostree fsck`
 * and a checkout compared with `tree`. Returns the pulled commit.
 */
export async function ostreePullAndCheck(dest: string, mode: 'archive' | 'bare-user', url: string, ref: string, tree: string | null): Promise<string> {
  await ostreeOk(['init', `--repo=${dest}`, `--mode=${mode}`]);
  await ostreeOk(['remote', 'add', `--repo=${dest}`, '--no-gpg-verify', 'origin', url]);
  await ostreeOk(['pull', `--repo=${dest}`, 'origin', ref], { timeoutMs: 300_000 });
  await ostreeOk(['fsck', `--repo=${dest}`]);
  const commit = (await ostreeOk(['rev-parse', `--repo=${dest}`, `origin:${ref}`])).stdout.trim();
  if (tree !== null) {
    const out = `${dest}.checkout`;
    await ostreeOk(['checkout', `--repo=${dest}`, '-U', commit, out]);
    const diffs = await compareTrees(tree, out, { rootMode: false });
    if (diffs.length > 0) throw new Error(`checkout of ${ref} differs from ${tree}:\n${formatDifferences(diffs)}`);
  }
  return commit;
}

/** VmRSS of a process in KiB, from /proc. */
export async function rssKiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const m = /^VmRSS:\s+(\d+) kB/m.exec(status);
  if (!m) throw new Error(`no VmRSS for ${pid}`);
  return Number(m[1]);
}
