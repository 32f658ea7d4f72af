/**
 * What `larch pull` prints, and the errors OSTree's own tests grep, compared side by side with the
 * real `ostree pull` against one real HTTP server: the closing statistics line, the 10 MiB
 * metadata limit (`exceeded maximum`), a body that breaks off (`Transferred a partial file`, and
 * resuming with Range), `--dry-run`, `--http-header`, `--untrusted`, `--per-object-fsync`, and the
 * ref-binding check (`--mirror` included) with `--disable-verify-bindings`.
 */
import { spawnSync } from 'node:child_process';
import { createReadStream, promises as fsp } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOneErrorLine, larch, larchAsync, ostreeAsync, makeSpecTree, ok, ostree, RUN_INTEROP, scratch, twoCommitRepo, type RunResult } from './helpers.js';

type Tool = 'larch' | 'ostree';
const run = (tool: Tool, args: string[]): Promise<RunResult> => (tool === 'larch' ? larchAsync(args) : ostreeAsync(args));
const TOOLS: Tool[] = RUN_INTEROP ? ['larch', 'ostree'] : ['larch'];

/** How the server below misbehaves, changed by each test. */
interface Quirks {
  /** Answer 403 unless this header has this value (ostree trivial-httpd's `--expected-header`). */
  expectHeader: [string, string] | null;
  /**
   * Send only the first half of every object under `/objects/` asked for without a Range, then
   * close the connection (trivial-httpd's `--force-range-requests`); Range requests are served.
   */
  halfBodies: boolean;
}

/** A static file server of `root` with the quirks above. */
async function serve(root: string, quirks: Quirks): Promise<{ url: string; stop(): Promise<void> }> {
  const server = http.createServer(async (req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    if (quirks.expectHeader !== null && req.headers[quirks.expectHeader[0].toLowerCase()] !== quirks.expectHeader[1]) {
      return void res.writeHead(403).end();
    }
    let size: number;
    try {
      const st = await fsp.stat(join(root, path));
      if (!st.isFile()) return void res.writeHead(404).end();
      size = st.size;
    } catch {
      return void res.writeHead(404).end();
    }
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    if (range) {
      const start = Number(range[1]);
      if (start >= size) return void res.writeHead(416).end();
      res.writeHead(206, { 'content-length': String(size - start), 'content-range': `bytes ${start}-${size - 1}/${size}` });
      return void createReadStream(join(root, path), { start }).pipe(res);
    }
    if (quirks.halfBodies && path.includes('/objects/') && size > 1) {
      res.writeHead(200, { 'content-length': String(size), connection: 'close' });
      const half = Math.floor(size / 2);
      createReadStream(join(root, path), { end: half - 1 })
        .on('end', () => res.socket?.destroy())
        .pipe(res, { end: false });
      return;
    }
    res.writeHead(200, { 'content-length': String(size) });
    createReadStream(join(root, path)).pipe(res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}`,
    stop: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

let dir: string;
let cleanup: () => Promise<void>;
let url: string;
let stop: () => Promise<void>;
const quirks: Quirks = { expectHeader: null, halfBodies: false };
let n = 0;
/** Served repositories: `plain` (one commit on main, no summary), `deltas` (c1 → c2 on test with a delta and a summary), `bound` (main points to a commit bound to `other` only), `big` (main's commit replaced by 11 MiB). */
let deltas: { c1: string; c2: string };

/** A fresh repository of `mode` with remote `origin` at `path` on the server, made by `tool`. */
function client(tool: Tool, path: string, mode = 'archive'): string {
  const repo = join(dir, `client-${tool}-${n++}`);
  const cmd = tool === 'larch' ? larch : ostree;
  ok(cmd(['init', `--repo=${repo}`, `--mode=${mode}`]));
  ok(cmd(['remote', 'add', `--repo=${repo}`, '--no-gpg-verify', 'origin', `${url}/${path}`]));
  return repo;
}

/** The closing line with its seconds left out (the one figure that depends on the machine). */
const steady = (out: string): string => out.replace(/ in \d+ seconds/, ' in S seconds');

beforeAll(async () => {
  ({ dir, cleanup } = await scratch('larch-pull-wording-'));
  const srv = join(dir, 'srv');
  await fsp.mkdir(srv);
  const tree = await makeSpecTree(join(dir, 'tree'));
  for (const name of ['plain', 'bound', 'big']) ok(larch(['init', `--repo=${join(srv, name)}`, '--mode=archive']));
  ok(larch(['commit', `--repo=${join(srv, 'plain')}`, '-b', 'main', '-s', 'plain', `--tree=dir=${tree}`]));
  ok(larch(['commit', `--repo=${join(srv, 'bound')}`, '-b', 'other', '--bind-ref=other', '-s', 'bound', `--tree=dir=${tree}`]));
  ok(larch(['refs', `--repo=${join(srv, 'bound')}`, 'other', '--create=main']));
  ok(larch(['summary', `--repo=${join(srv, 'bound')}`, '-u']));
  const big = ok(larch(['commit', `--repo=${join(srv, 'big')}`, '-b', 'main', '-s', 'big', `--tree=dir=${tree}`])).trim();
  await fsp.writeFile(join(srv, 'big', 'objects', big.slice(0, 2), `${big.slice(2)}.commit`), Buffer.alloc(11 * 1024 * 1024));
  const two = await twoCommitRepo(join(dir, 'two'));
  await fsp.rename(two.repo, join(srv, 'deltas'));
  ok(larch(['static-delta', 'generate', `--repo=${join(srv, 'deltas')}`, `--from=${two.c1}`, `--to=${two.c2}`]));
  ok(larch(['summary', `--repo=${join(srv, 'deltas')}`, '-u']));
  deltas = { c1: two.c1, c2: two.c2 };
  // `suid`: main holds a setuid file (mode 04644, set by --statoverride).
  ok(larch(['init', `--repo=${join(srv, 'suid')}`, '--mode=archive']));
  await fsp.writeFile(join(dir, 'statoverride'), '2048 /some-setuid\n');
  await fsp.writeFile(join(tree, 'some-setuid'), 'asetuid\n');
  ok(larch(['commit', `--repo=${join(srv, 'suid')}`, '-b', 'main', '-s', 'suid', `--statoverride=${join(dir, 'statoverride')}`, `--tree=dir=${tree}`]));
  ({ url, stop } = await serve(srv, quirks));
}, 120_000);

afterAll(async () => {
  await stop?.();
  await cleanup?.();
});

describe('pull: what it prints and the errors scripts grep, side by side with ostree', () => {
  it('ends with ostree\'s closing line: metadata and content fetched, bytes transferred, content written', async () => {
    const lines: Record<string, string[]> = {};
    for (const tool of TOOLS) {
      const repo = client(tool, 'plain');
      const first = await run(tool, [`--repo=${repo}`, 'pull', 'origin', 'main']);
      expect(first.code, first.stderr).toBe(0);
      // OSTree's pull-test.sh greps these two.
      expect(first.stdout).toMatch(/[1-9][0-9]* metadata, [1-9][0-9]* content objects fetched; [1-9][0-9]*.*written/);
      const again = await run(tool, [`--repo=${repo}`, 'pull', 'origin:main']);
      expect(again.code, again.stderr).toBe(0);
      expect(again.stdout).not.toMatch(/[1-9][0-9]* content objects fetched/);
      lines[tool] = [steady(first.stdout), again.stdout];
    }
    if (RUN_INTEROP) expect(lines.larch).toEqual(lines.ostree);
    expect(lines.larch[1]).toBe('1 metadata, 0 content objects fetched; 0 bytes content written\n');
  });

  it('refuses a metadata object over 10 MiB (ostree 2022.7) with "exceeded maximum"', async () => {
    for (const tool of TOOLS) {
      const repo = client(tool, 'big', 'bare-user');
      const r = await run(tool, [`--repo=${repo}`, 'pull', 'origin', 'main']);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/exceeded maximum size of 10485760 bytes/);
      if (tool === 'larch') expectOneErrorLine(r);
    }
  });

  it('a body that breaks off: "Transferred a partial file" when no retry is left, resumed with Range otherwise', async () => {
    quirks.halfBodies = true;
    try {
      for (const tool of TOOLS) {
        const repo = client(tool, 'plain');
        const r = await run(tool, [`--repo=${repo}`, 'pull', '--network-retries=0', 'origin', 'main']);
        expect(r.code).toBe(1);
        expect(r.stderr).toMatch(/error:.*Transferred a partial file/);
        // OSTree's test-pull-resume: pull again until it succeeds, each failure in that wording
        // (larch resumes within one pull; ostree resumes against its own test server, not this one).
        if (tool === 'ostree') continue;
        let last: RunResult | null = null;
        for (let i = 0; i < 40 && last?.code !== 0; i++) {
          last = await run(tool, [`--repo=${repo}`, 'pull', 'origin', 'main']);
          if (last.code !== 0) expect(last.stderr).toMatch(/error:.*(Download incomplete|Transferred a partial file)/);
        }
        expect(last?.code, `${tool}: ${last?.stderr}`).toBe(0);
        ok(await run(tool, [`--repo=${repo}`, 'fsck']));
      }
    } finally {
      quirks.halfBodies = false;
    }
  });

  it('--dry-run --require-static-deltas prints the delta\'s size and writes nothing; --dry-run alone is refused', async () => {
    const out: Record<string, string> = {};
    for (const tool of TOOLS) {
      const repo = client(tool, 'deltas', 'bare-user');
      ok(await run(tool, [`--repo=${repo}`, 'pull', 'origin', `test@${deltas.c1}`]));
      const r = await run(tool, [`--repo=${repo}`, 'pull', '--dry-run', '--require-static-deltas', 'origin', 'test']);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/^Delta update: 0\/1 parts, 0 bytes\/\d+(\.\d)? (bytes|kB), \d+(\.\d)? (bytes|kB) total uncompressed\n$/);
      out[tool] = r.stdout;
      expect(ok(await run(tool, ['rev-parse', `--repo=${repo}`, 'origin:test'])).trim()).toBe(deltas.c1);
      expect((await run(tool, ['show', `--repo=${repo}`, deltas.c2])).code).toBe(1);
      const bad = await run(tool, [`--repo=${repo}`, 'pull', '--dry-run', 'origin', 'test']);
      expect(bad.code).toBe(1);
      expect(bad.stderr).toBe('error: --dry-run requires --require-static-deltas\n');
    }
    if (RUN_INTEROP) expect(out.larch).toBe(out.ostree);
  });

  it('--require-static-deltas into an archive repository is refused, as ostree refuses it', async () => {
    for (const tool of TOOLS) {
      const repo = client(tool, 'deltas', 'archive');
      const r = await run(tool, [`--repo=${repo}`, 'pull', '--require-static-deltas', 'origin', 'test']);
      expect(r.code).toBe(1);
      expect(r.stderr).toBe("error: Can't use static deltas in an archive repo\n");
    }
  });

  it('--http-header=NAME=VALUE goes with every request; a header without "=" is refused', async () => {
    quirks.expectHeader = ['X-Larch-Test', 'yes'];
    try {
      for (const tool of TOOLS) {
        const repo = client(tool, 'plain');
        const without = await run(tool, [`--repo=${repo}`, 'pull', 'origin', 'main']);
        expect(without.code).toBe(1);
        expect(without.stderr).toMatch(/Server returned HTTP 403/);
        const bad = await run(tool, [`--repo=${repo}`, 'pull', '--http-header=X-Larch-Test', 'origin', 'main']);
        expect(bad.code).toBe(1);
        expect(bad.stderr).toBe("error: Missing '=' in --http-header\n");
        const r = await run(tool, [`--repo=${repo}`, 'pull', '--http-header=X-Larch-Test=yes', 'origin', 'main']);
        expect(r.code, r.stderr).toBe(0);
        expect(r.stdout).toMatch(/content objects fetched/);
      }
    } finally {
      quirks.expectHeader = null;
    }
  });

  it('accepts --untrusted and --per-object-fsync (objects are always verified and made durable)', async () => {
    for (const tool of TOOLS) {
      const repo = client(tool, 'plain', 'bare-user');
      const r = await run(tool, [`--repo=${repo}`, 'pull', '--untrusted', '--per-object-fsync', 'origin', 'main']);
      expect(r.code, r.stderr).toBe(0);
      ok(await run(tool, [`--repo=${repo}`, 'fsck']));
    }
  });

  it.runIf(RUN_INTEROP)('a dirtree with a ../ name is refused as "X.dirtree: Invalid / in filename ../afile", as ostree', async () => {
    // ostree's own hostile repository, from its test suite (Debian ostree-tests).
    spawnSync('tar', ['xf', '/usr/libexec/installed-tests/libostree/ostree-path-traverse.tar.gz', '-C', join(dir, 'srv')]);
    const tree = 'ae9a5d2701a02740aa2ee317ba53b13e3efb0f29609cd4896e1bafeee4caddb5';
    for (const tool of TOOLS) {
      const repo = client(tool, 'ostree-path-traverse/repo');
      const r = await run(tool, [`--repo=${repo}`, 'pull', 'origin', 'pathtraverse-test']);
      expect(r.code, tool).toBe(1);
      expect(r.stderr).toContain(`${tree}.dirtree: Invalid / in filename ../afile`);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
    }
  });

  it('--bareuseronly-files refuses a setuid file, unpacking and mirroring, in ostree\'s words; safe trees pass', async () => {
    for (const tool of TOOLS) {
      for (const flag of [[], ['--mirror']]) {
        const repo = client(tool, 'suid', 'bare-user-only');
        const r = await run(tool, [`--repo=${repo}`, 'pull', ...flag, '--bareuseronly-files', 'origin', 'main']);
        expect(r.code, `${tool} ${flag.join(' ')}`).toBe(1);
        expect(r.stderr).toMatch(/Content object [0-9a-f]{64}: invalid mode 0104644 with bits 04000/);
        expect(r.stderr.trim().split('\n')).toHaveLength(1);
      }
      const safe = client(tool, 'plain', 'bare-user-only');
      expect((await run(tool, [`--repo=${safe}`, 'pull', '--bareuseronly-files', 'origin', 'main'])).code).toBe(0);
    }
  });

  it('checks the commit\'s ref binding, with --mirror too, in ostree\'s wording; --disable-verify-bindings skips it', async () => {
    const errs: Record<string, string[]> = {};
    for (const tool of TOOLS) {
      errs[tool] = [];
      for (const args of [['origin', 'main'], ['--mirror', 'origin', 'main']]) {
        const repo = client(tool, 'bound');
        const r = await run(tool, [`--repo=${repo}`, 'pull', ...args]);
        expect(r.code).toBe(1);
        expect(r.stderr).toMatch(/^error: Commit [0-9a-f]{64}: Commit has no requested ref ‘main’ in ref binding metadata \(‘other’/);
        errs[tool].push(r.stderr);
        expect((await run(tool, ['rev-parse', `--repo=${repo}`, args[0] === '--mirror' ? 'main' : 'origin:main'])).code).toBe(1);
      }
      const repo = client(tool, 'bound');
      const r = await run(tool, [`--repo=${repo}`, 'pull', '--disable-verify-bindings', 'origin', 'main']);
      expect(r.code, r.stderr).toBe(0);
    }
    if (RUN_INTEROP) expect(errs.larch).toEqual(errs.ostree);
  });
});
