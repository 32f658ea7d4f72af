/**
 * `larch pull` options that OSTree's own tests and scripts use, each run against a real HTTP
 * server and compared with the real `ostree pull`: `--url` (another base URL for one pull),
 * `REMOTE REF@CHECKSUM` (that commit for the ref, older ones included) and `--network-retries`.
 */
import { createReadStream, promises as fsp } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOneErrorLine, larch, larchAsync, ostreeAsync, ok, ostree, RUN_INTEROP, scratch, twoCommitRepo, type RunResult } from './helpers.js';

type Tool = 'larch' | 'ostree';
const run = (tool: Tool, args: string[]): Promise<RunResult> => (tool === 'larch' ? larchAsync(args) : ostreeAsync(args));
const TOOLS: Tool[] = RUN_INTEROP ? ['larch', 'ostree'] : ['larch'];

interface Server {
  url: string;
  /** Path → how many more requests for it answer 500 (OSTree's test server's `--random-500s`, made deterministic). */
  failures: Map<string, number>;
  stop(): Promise<void>;
}

/** A static file server of `root`. */
async function serve(root: string): Promise<Server> {
  const failures = new Map<string, number>();
  const server = http.createServer(async (req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    const left = failures.get(path) ?? 0;
    if (left > 0) {
      failures.set(path, left - 1);
      return void res.writeHead(500, 'Internal Server Error').end();
    }
    try {
      const st = await fsp.stat(join(root, path));
      if (!st.isFile()) return void res.writeHead(404).end();
      res.writeHead(200, { 'content-length': String(st.size) });
      createReadStream(join(root, path)).pipe(res);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}`,
    failures,
    stop: () => new Promise<void>((r) => server.close(() => r())),
  };
}

let dir: string;
let cleanup: () => Promise<void>;
let server: Server;
let c1: string;
let c2: string;
let n = 0;

/** A fresh repo with remote `origin` at `url` (gpg-verify off), made by `tool`. */
function client(tool: Tool, url: string): string {
  const repo = join(dir, `client-${tool}-${n++}`);
  const cmd = tool === 'larch' ? larch : ostree;
  ok(cmd(['init', `--repo=${repo}`, '--mode=archive']));
  ok(cmd(['remote', 'add', `--repo=${repo}`, '--no-gpg-verify', 'origin', url]));
  return repo;
}

const revParse = async (tool: Tool, repo: string, ref: string): Promise<string> => ok(await run(tool, [`--repo=${repo}`, 'rev-parse', ref])).trim();

beforeAll(async () => {
  ({ dir, cleanup } = await scratch('larch-pull-options-'));
  const src = await twoCommitRepo(join(dir, 'src'));
  ({ c1, c2 } = src);
  ok(larch(['summary', '-u', `--repo=${src.repo}`]));
  server = await serve(join(dir, 'src'));
});

afterAll(async () => {
  await server?.stop();
  await cleanup?.();
});

describe('pull --url', () => {
  it.each(TOOLS)('%s: pulls from the given URL instead of the remote’s, and fails without it', async (tool) => {
    const repo = client(tool, `${server.url}/gone`);
    const without = await run(tool, [`--repo=${repo}`, 'pull', 'origin', 'test']);
    expect(without.code).toBe(1);
    ok(await run(tool, [`--repo=${repo}`, 'pull', '--depth=-1', `--url=${server.url}/repo`, 'origin', 'test']));
    expect(await revParse(tool, repo, 'origin:test')).toBe(c2);
    expect(await revParse(tool, repo, `${c2}^`)).toBe(c1);
    // The remote's config is unchanged.
    expect(ok(await run(tool, [`--repo=${repo}`, 'remote', 'show-url', 'origin'])).trim()).toBe(`${server.url}/gone`);
  });

  it.each(TOOLS)('%s: a URL that is not absolute is one error line, exit 1', async (tool) => {
    const repo = client(tool, `${server.url}/repo`);
    const r = await run(tool, [`--repo=${repo}`, 'pull', '--url=notaurl', 'origin', 'test']);
    expect(expectOneErrorLine(r)).toContain('URI is not absolute');
  });
});

describe('pull REMOTE REF@CHECKSUM', () => {
  it.each(TOOLS)('%s: pulls that commit and sets the ref to it, older than the ref included', async (tool) => {
    const repo = client(tool, `${server.url}/repo`);
    ok(await run(tool, [`--repo=${repo}`, 'pull', 'origin', `test@${c1}`]));
    expect(await revParse(tool, repo, 'origin:test')).toBe(c1);
    ok(await run(tool, [`--repo=${repo}`, 'pull', 'origin', 'test']));
    expect(await revParse(tool, repo, 'origin:test')).toBe(c2);
    // Back to the parent, as test-admin-pull-deploy-split does: no timestamp check unless -T.
    const checked = await run(tool, [`--repo=${repo}`, 'pull', '-T', 'origin', `test@${c1}`]);
    expect(expectOneErrorLine(checked)).toMatch(new RegExp(`^Upgrade target revision '${c1}' with timestamp .* is chronologically older than current revision '${c2}'`));
    expect(await revParse(tool, repo, 'origin:test')).toBe(c2);
    ok(await run(tool, [`--repo=${repo}`, 'pull', 'origin', `test@${c1}`]));
    expect(await revParse(tool, repo, 'origin:test')).toBe(c1);
    ok(await run(tool, [`--repo=${repo}`, 'fsck']));
  });

  it.each(TOOLS)('%s: a bad checksum after @ is “Invalid rev”, nothing written', async (tool) => {
    const repo = client(tool, `${server.url}/repo`);
    expect(expectOneErrorLine(await run(tool, [`--repo=${repo}`, 'pull', 'origin', 'test@abc']))).toBe('Invalid rev abc');
    expect(expectOneErrorLine(await run(tool, [`--repo=${repo}`, 'pull', 'origin', `test@${c1}@x`]))).toBe('Invalid rev x');
    expect(expectOneErrorLine(await run(tool, [`--repo=${repo}`, 'pull', 'origin', `@${c1}`]))).toMatch(/^Invalid ref name/);
    expect((await run(tool, [`--repo=${repo}`, 'refs'])).stdout).toBe('');
  });
});

describe('pull --network-retries', () => {
  const commitPath = (): string => `/repo/objects/${c1.slice(0, 2)}/${c1.slice(2)}.commit`;

  it.each(TOOLS)('%s: 0 means a single 500 fails the pull, naming HTTP 500', async (tool) => {
    const repo = client(tool, `${server.url}/repo`);
    server.failures.set(commitPath(), 1);
    const r = await run(tool, [`--repo=${repo}`, 'pull', '--network-retries=0', 'origin', `test@${c1}`]);
    server.failures.delete(commitPath());
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/(500.*Internal Server Error)|(HTTP 500)/);
    expect((await run(tool, [`--repo=${repo}`, 'refs'])).stdout).toBe('');
  });

  it.each(TOOLS)('%s: N retries get past N 500s', async (tool) => {
    const repo = client(tool, `${server.url}/repo`);
    server.failures.set(commitPath(), 2);
    const r = await run(tool, [`--repo=${repo}`, 'pull', '--network-retries=2', 'origin', `test@${c1}`]);
    const left = server.failures.get(commitPath());
    server.failures.delete(commitPath());
    ok(r);
    expect(left).toBe(0);
    expect(await revParse(tool, repo, 'origin:test')).toBe(c1);
  });

  it.each(TOOLS)('%s: a value that is not an integer is one error line', async (tool) => {
    const repo = client(tool, `${server.url}/repo`);
    expect(expectOneErrorLine(await run(tool, [`--repo=${repo}`, 'pull', '--network-retries=abc', 'origin', 'test']))).toBe('Cannot parse integer value “abc” for --network-retries');
  });
});
