/**
 * `larch pull` against a hostile server (node:http on 127.0.0.1) that answers one file with a
 * chunked body (no Content-Length) larger than the pull accepts, endless or finite: the commit
 * (its limit is the size the summary gives), a ref (4 KiB), the remote config (1 MiB) and the
 * summary (10 MiB, ostree 2022.7's metadata limit), all at the CLI's default limits. Each run must exit with status 1 and one
 * `error:` line naming the file and the limit in OSTree's words, within 10 s of the server having
 * sent the limit, and leave the local ref where it was.
 */
import { spawn } from 'node:child_process';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HostileServer, type HostileRule } from '../../../packages/http-pull/test/hostile-server.js';
import { CLI, larch, makeSpecTree, ok, ostree, RUN_INTEROP, scratch } from './helpers.js';

const GIVE_UP_MS = 10_000;
const MiB = 1024 * 1024;

interface Exited {
  code: number | null;
  signal: string | null;
  stderr: string;
  /** performance.now() at exit. */
  exitedAt: number;
}

/** Start `larch ARGS`; `exited` is set when it exits. */
function larchTimed(args: string[]): { done: Promise<Exited>; exited: () => Exited | null; kill: () => void } {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, LC_ALL: 'C.UTF-8' } });
  let stderr = '';
  let exited: Exited | null = null;
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const done = new Promise<Exited>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => {
      exited = { code, signal, stderr, exitedAt: performance.now() };
      resolve(exited);
    });
  });
  return { done, exited: () => exited, kill: () => child.kill('SIGKILL') };
}

describe.skipIf(!RUN_INTEROP)('larch pull against oversized chunked bodies', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let remote: string;
  let c1: string;
  let c2: string;
  let server: HostileServer;
  let seq = 0;

  beforeAll(async () => {
    ({ dir, cleanup } = await scratch('larch-cli-hostile-'));
    const tree = await makeSpecTree(join(dir, 'tree'));
    remote = join(dir, 'remote');
    ok(ostree(['init', `--repo=${remote}`, '--mode=archive']));
    c1 = ok(ostree(['commit', `--repo=${remote}`, '-b', 'main', '--timestamp=2024-01-01 00:00:00 +0000', tree])).trim();
    c2 = ok(ostree(['commit', `--repo=${remote}`, '-b', 'main', '--timestamp=2024-01-02 00:00:00 +0000', '--add-metadata-string=version=2', tree])).trim();
    ok(ostree(['summary', '-u', `--repo=${remote}`]));
    server = await HostileServer.start(remote);
  });
  afterAll(async () => {
    await server?.stop();
    await cleanup?.();
  });

  const commitPath = (): string => `/objects/${c2.slice(0, 2)}/${c2.slice(2)}.commit`;
  const cases: Array<{ name: string; object: () => string; path: () => string; limit: () => number; missing?: string }> = [
    { name: 'the commit', object: () => `${c2}.commit`, path: commitPath, limit: () => statSync(join(remote, commitPath())).size },
    { name: 'a ref', object: () => 'refs/heads/main', path: () => '/refs/heads/main', limit: () => 4096, missing: '/summary' },
    { name: 'the remote config', object: () => 'config', path: () => '/config', limit: () => MiB },
    { name: 'the summary', object: () => 'summary', path: () => '/summary', limit: () => 10 * MiB },
  ];

  for (const c of cases) {
    for (const kind of ['endless', 'finite'] as const) {
      it(`${c.name}, ${kind}: exit 1, one error line, in time, the ref unmoved`, async () => {
        // A local repo whose h:main points at the first commit, pulled while the server behaves.
        server.rule = null;
        server.missing.clear();
        const repo = join(dir, `local-${++seq}`);
        ok(larch(['init', `--repo=${repo}`, '--mode=archive']));
        ok(larch(['remote', 'add', `--repo=${repo}`, '--no-gpg-verify', 'h', server.url]));
        const pulled = await larchTimed(['pull', `--repo=${repo}`, 'h', c1]).done;
        expect(pulled.code, pulled.stderr).toBe(0);
        ok(larch(['refs', `--repo=${repo}`, '--create=h:main', c1]));

        const path = c.path();
        const limit = c.limit();
        if (c.missing) server.missing.add(c.missing);
        server.resetCounters();
        const rule: HostileRule = { match: (p) => p === path, kind, limit };
        server.rule = rule;
        const run = larchTimed(['pull', `--repo=${repo}`, 'h', 'main']);
        // Wait for the exit, or until 10 s after the server sent the limit (then it is killed).
        await server.waitFor(() => run.exited() !== null || (server.overLimit[0]?.limitAt ?? Infinity) < performance.now() - GIVE_UP_MS, 'larch pull to exit', 600_000);
        const done = run.exited();
        if (done === null) run.kill();
        expect(done, 'larch pull was still running 10 s after the server sent the limit').not.toBeNull();
        expect(done!.signal).toBeNull();
        expect(done!.code).toBe(1);
        const lines = done!.stderr.split('\n').filter((l) => l !== '');
        expect(lines).toEqual([`error: Fetching ${c.object()}: exceeded maximum size of ${limit} bytes for ${server.url.replace(/\/$/, '')}${path}`]);
        expect(server.overLimit).toHaveLength(1);
        expect(done!.exitedAt - server.overLimit[0].limitAt!).toBeLessThan(GIVE_UP_MS);
        expect(ok(larch(['rev-parse', `--repo=${repo}`, 'h:main'])).trim()).toBe(c1);
      });
    }
  }
});
