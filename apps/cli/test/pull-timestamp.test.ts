/**
 * `larch pull` timestamp checks side by side with the real `ostree pull`, over HTTP: without -T a
 * ref follows the remote back to an older commit (a server-side revert); with -T it is refused
 * in ostree's words, `REF@CHECKSUM` included, and the ref does not move;
 * `--timestamp-check-from-rev=REV` refuses commits older than REV. Also as ostree: a pull whose
 * refs are all pinned (`REF@CHECKSUM`) does not need the summary.
 */
import { createReadStream, promises as fsp } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { larch, larchAsync, ok, ostree, ostreeAsync, requireOstree, RUN_INTEROP, scratch, type RunResult } from './helpers.js';

type Tool = 'larch' | 'ostree';
const TOOLS: Tool[] = ['larch', 'ostree'];
// The C locale: GLib's `%c` in the messages follows LC_TIME (Larch prints the C layout here).
const C = { env: { LC_ALL: 'C' } };
/** GLib pads `%c`'s day with U+2007 (`?` once converted to ASCII); Larch with a space. */
const padded = (s: string): string => s.replace(/ [?\u2007](\d) /g, '  $1 ');
const run = (tool: Tool, args: string[]): Promise<RunResult> => (tool === 'larch' ? larchAsync(args, C) : ostreeAsync(args, C));

let dir: string;
let cleanup: () => Promise<void>;
let server: http.Server;
let url: string;
let srv: string;
let files: string;

/** A static file server of `root`. */
async function serve(root: string): Promise<http.Server> {
  const s = http.createServer(async (req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    try {
      const st = await fsp.stat(join(root, path));
      if (!st.isFile()) return void res.writeHead(404).end();
      res.writeHead(200, { 'content-length': String(st.size) });
      createReadStream(join(root, path)).pipe(res);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return s;
}

/** A new commit on the server's `main` (same tree, content changed) with this timestamp; the summary is refreshed. */
async function serverCommit(timestamp: string): Promise<string> {
  await fsp.writeFile(join(files, 'stamp'), timestamp);
  const c = ok(larch(['commit', `--repo=${srv}`, '-b', 'main', `--timestamp=${timestamp}`, '--owner-uid=0', '--owner-gid=0', '--no-xattrs', `--tree=dir=${files}`])).trim();
  ok(larch(['summary', '-u', `--repo=${srv}`]));
  return c;
}

/** One client repository per tool, with `origin` pointing at the server. */
function clients(tag: string): Record<Tool, string> {
  const out = {} as Record<Tool, string>;
  for (const tool of TOOLS) {
    const repo = join(dir, `${tag}-${tool}`);
    const cmd = tool === 'larch' ? larch : ostree;
    ok(cmd(['init', `--repo=${repo}`, '--mode=archive']));
    ok(cmd(['remote', 'add', `--repo=${repo}`, '--no-gpg-verify', 'origin', url]));
    out[tool] = repo;
  }
  return out;
}

/** Run the same pull with both tools; both must agree on the exit status and on stderr. */
async function both(repos: Record<Tool, string>, args: string[]): Promise<RunResult> {
  const [l, o] = [await run('larch', [`--repo=${repos.larch}`, 'pull', ...args]), await run('ostree', [`--repo=${repos.ostree}`, 'pull', ...args])];
  expect({ code: l.code, stderr: l.stderr }).toEqual({ code: o.code, stderr: padded(o.stderr) });
  return l;
}

async function heads(repos: Record<Tool, string>, ref = 'origin:main'): Promise<string> {
  const l = ok(await run('larch', [`--repo=${repos.larch}`, 'rev-parse', ref])).trim();
  expect(ok(await run('ostree', [`--repo=${repos.ostree}`, 'rev-parse', ref])).trim()).toBe(l);
  return l;
}

const older = (target: string, current: string): RegExp =>
  new RegExp(`^error: Upgrade target revision '${target}' with timestamp '[^']+' is chronologically older than current revision '${current}' with timestamp '[^']+'; use --allow-downgrade to permit\\n$`);

beforeAll(async () => {
  requireOstree();
  ({ dir, cleanup } = await scratch('larch-pull-timestamp-'));
  srv = join(dir, 'srv');
  files = join(dir, 'files');
  await fsp.mkdir(files);
  ok(larch(['init', `--repo=${srv}`, '--mode=archive']));
  server = await serve(srv);
  url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});

afterAll(async () => {
  await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  await cleanup?.();
});

describe.runIf(RUN_INTEROP)('pull timestamp checks, as ostree pull', () => {
  it('accepts an older commit without -T; -T refuses it (override included) and leaves the ref', async () => {
    const repos = clients('revert');
    await serverCommit('2020-01-01 00:00:00 +0000');
    const c2 = await serverCommit('2020-01-02 00:00:00 +0000');
    await both(repos, ['origin', 'main']);
    expect(await heads(repos)).toBe(c2);
    await both(repos, ['-T', 'origin', 'main']); // the same commit passes
    // The server reverts main to a commit older than the one the clients have.
    const old = await serverCommit('1985-10-25 00:00:00 +0000');
    expect((await both(repos, ['-T', 'origin', 'main'])).stderr).toMatch(older(old, c2));
    expect(await heads(repos)).toBe(c2);
    expect((await both(repos, ['-T', 'origin', `main@${old}`])).stderr).toMatch(older(old, c2));
    expect(await heads(repos)).toBe(c2);
    expect((await both(repos, ['origin', 'main'])).code).toBe(0);
    expect(await heads(repos)).toBe(old);
  });

  it('--timestamp-check-from-rev=REV refuses a commit older than REV, whatever the ref points to', async () => {
    const repos = clients('from-rev');
    const base = await serverCommit('2021-01-01 00:00:00 +0000');
    await both(repos, ['origin', 'main']);
    const middle = await serverCommit('2021-01-02 00:00:00 +0000');
    const latest = await serverCommit('2021-01-03 00:00:00 +0000');
    await both(repos, ['-T', 'origin', 'main']);
    expect(await heads(repos)).toBe(latest);
    expect((await both(repos, ['-T', 'origin', `main@${middle}`])).stderr).toMatch(older(middle, latest));
    expect((await both(repos, [`--timestamp-check-from-rev=${latest}`, 'origin', `main@${middle}`])).stderr).toMatch(older(middle, latest));
    expect(await heads(repos)).toBe(latest);
    // A rev name works as well as a checksum.
    expect((await both(repos, ['--timestamp-check-from-rev=origin:main', 'origin', `main@${middle}`])).stderr).toMatch(older(middle, latest));
    expect((await both(repos, [`--timestamp-check-from-rev=${base}`, 'origin', `main@${middle}`])).code).toBe(0);
    expect(await heads(repos)).toBe(middle);
    expect((await both(repos, ['--timestamp-check-from-rev=nosuchref', 'origin', 'main'])).stderr).toBe("error: Refspec 'nosuchref' not found\n");
    expect(await heads(repos)).toBe(middle);
  });

  it('a pull whose refs are all pinned does not read the summary; one that resolves a ref does', async () => {
    const repos = clients('pinned');
    const rev = await serverCommit('2022-01-01 00:00:00 +0000');
    await fsp.rename(join(srv, 'summary'), join(srv, 'summary.good'));
    try {
      await fsp.writeFile(join(srv, 'summary'), 'broken\n');
      expect((await both(repos, ['origin', `main@${rev}`])).code).toBe(0);
      expect(await heads(repos)).toBe(rev);
      const l = await run('larch', [`--repo=${repos.larch}`, 'pull', 'origin', 'main']);
      const o = await run('ostree', [`--repo=${repos.ostree}`, 'pull', 'origin', 'main']);
      expect([l.code, o.code]).toEqual([1, 1]);
    } finally {
      await fsp.rename(join(srv, 'summary.good'), join(srv, 'summary'));
    }
  });
});
