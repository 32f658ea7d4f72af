/**
 * `pull-local --disable-fsync`, `--per-object-fsync`, `--disable-verify-bindings` and
 * `pull --disable-fsync`, side by side with the real ostree: the same exit status and output,
 * the same refusal of a commit whose ref binding does not list the requested ref (and its
 * acceptance with --disable-verify-bindings), and, traced with strace, no fsync, fdatasync or
 * syncfs of anything but stdout and stderr when fsync is disabled (and some without it). The
 * repository's config file is left as it was.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createReadStream, promises as fsp } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, larch, ok, ostree, RUN_INTEROP, requireOstree, scratch, type RunResult } from './helpers.js';

type Tool = 'larch' | 'ostree';
const TOOLS: Tool[] = ['larch', 'ostree'];
const HAVE_STRACE = spawnSync('strace', ['-V']).status === 0;

let dir: string;
let cleanup: () => Promise<void>;
let src: string;
let commit: string;
let server: http.Server;
let url: string;
let n = 0;

const run = (tool: Tool, args: string[]): RunResult => (tool === 'larch' ? larch(args) : ostree(args));

beforeAll(async () => {
  ({ dir, cleanup } = await scratch('larch-cli-pull-local-options-'));
  if (!RUN_INTEROP) return;
  requireOstree();
  const tree = join(dir, 'tree');
  await fsp.mkdir(join(tree, 'sub'), { recursive: true });
  await fsp.writeFile(join(tree, 'a'), 'hello\n');
  await fsp.writeFile(join(tree, 'sub/b'), 'world\n');
  src = join(dir, 'src');
  ok(ostree(['init', `--repo=${src}`, '--mode=archive']));
  // `main` points at a commit bound to `other` only.
  commit = ok(ostree(['commit', `--repo=${src}`, '-b', 'other', `--tree=dir=${tree}`])).trim();
  ok(ostree(['refs', `--repo=${src}`, `--create=main`, commit]));
  server = http.createServer(async (req, res) => {
    const path = join(src, decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname));
    try {
      const st = await fsp.stat(path);
      if (!st.isFile()) return void res.writeHead(404).end();
      res.writeHead(200, { 'content-length': String(st.size) });
      createReadStream(path).pipe(res);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});
afterAll(async () => {
  if (server) await new Promise<void>((r) => server.close(() => r()));
  await cleanup();
});

function fresh(tool: Tool): string {
  const repo = join(dir, `dest-${tool}-${n++}`);
  ok(ostree(['init', `--repo=${repo}`, '--mode=archive']));
  ok(ostree(['remote', 'add', `--repo=${repo}`, '--no-gpg-verify', 'origin', url]));
  return repo;
}

/** Run under strace (asynchronously: the HTTP server runs in this process); counts syncs of files other than stdout/stderr. */
async function traced(tool: Tool, args: string[]): Promise<{ code: number; stdout: string; syncs: number }> {
  const log = join(dir, `strace-${n++}.txt`);
  const cmd = tool === 'larch' ? [process.execPath, CLI] : ['ostree'];
  const child = spawn('strace', ['-f', '-qq', '-e', 'trace=fsync,fdatasync,syncfs', '-o', log, ...cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  child.stdout.on('data', (b: Buffer) => (stdout += b.toString('utf8')));
  const code = await new Promise<number>((r) => child.on('close', (c) => r(c ?? -1)));
  const lines = (await fsp.readFile(log, 'utf8')).split('\n');
  const syncs = lines.filter((l) => /\b(fsync|fdatasync|syncfs)\((\d+)/.test(l) && !/\b(fsync|fdatasync|syncfs)\((1|2)\)/.test(l)).length;
  return { code, stdout, syncs };
}

describe.runIf(RUN_INTEROP)('pull-local and pull options as ostree', () => {
  it('--disable-verify-bindings accepts a commit not bound to the requested ref', () => {
    const plain = TOOLS.map((t) => run(t, [`--repo=${fresh(t)}`, 'pull-local', src, 'main']));
    expect(plain[0]).toEqual(plain[1]);
    expect(plain[0].code).toBe(1);
    expect(plain[0].stderr).toBe(`error: Commit ${commit}: Commit has no requested ref ‘main’ in ref binding metadata (‘other’)\n`);
    for (const t of TOOLS) {
      const repo = fresh(t);
      const r = run(t, [`--repo=${repo}`, 'pull-local', '--disable-verify-bindings', src, 'main']);
      expect({ tool: t, code: r.code, stdout: r.stdout, stderr: r.stderr }).toEqual({ tool: t, code: 0, stdout: '4 metadata, 2 content objects imported; 0 bytes content written\n', stderr: '' });
      expect(ok(ostree(['rev-parse', `--repo=${repo}`, 'main'])).trim()).toBe(commit);
      ok(ostree(['fsck', `--repo=${repo}`]));
    }
  });

  it('--per-object-fsync is accepted', () => {
    const rs = TOOLS.map((t) => {
      const repo = fresh(t);
      const r = run(t, [`--repo=${repo}`, 'pull-local', '--per-object-fsync', src, 'other']);
      ok(ostree(['fsck', `--repo=${repo}`]));
      return r;
    });
    expect(rs[0]).toEqual(rs[1]);
    expect(rs[0].code).toBe(0);
  });

  it.runIf(HAVE_STRACE)('pull-local --disable-fsync and pull --disable-fsync sync nothing; the config is unchanged', async () => {
    for (const t of TOOLS) {
      for (const [verb, source] of [['pull-local', src], ['pull', 'origin']]) {
        const base = fresh(t);
        const synced = await traced(t, [`--repo=${base}`, verb, source, 'other']);
        expect({ tool: t, verb, code: synced.code }).toEqual({ tool: t, verb, code: 0 });
        expect(synced.syncs, `${t} ${verb} without --disable-fsync`).toBeGreaterThan(0);

        const repo = fresh(t);
        const config = await fsp.readFile(join(repo, 'config'), 'utf8');
        const r = await traced(t, [`--repo=${repo}`, verb, '--disable-fsync', source, 'other']);
        expect({ tool: t, verb, code: r.code, syncs: r.syncs }).toEqual({ tool: t, verb, code: 0, syncs: 0 });
        if (verb === 'pull-local') expect(r.stdout).toBe('4 metadata, 2 content objects imported; 0 bytes content written\n');
        expect(await fsp.readFile(join(repo, 'config'), 'utf8')).toBe(config);
        expect(ok(ostree(['rev-parse', `--repo=${repo}`, verb === 'pull' ? 'origin:other' : 'other'])).trim()).toBe(commit);
        ok(ostree(['fsck', `--repo=${repo}`]));
      }
    }
  });
});
