/**
 * Decompression bombs in static-delta parts, against real `larch` processes: a part whose xz
 * stream (about 300 KB) inflates to 2 GiB of zeros, applied with `static-delta apply-offline`
 * (stored part, inline part, both xz back ends) and pulled with `larch pull` from a real HTTP
 * server, plus a superblock that declares 2^40 bytes for the part. Each child runs under
 * `/usr/bin/time`, and its peak resident memory must stay under {@link MAX_RSS_KB}: the decoder
 * has to stop at the part's bound instead of inflating the stream (and must not inflate it again
 * to word its error).
 *
 * The bomb is made once per run, streamed from /dev/zero through `xz` into a temp directory
 * (LZMA2 with a 64 MiB dictionary, as `xz -9` writes it, so the decoder needs its 65 MiB).
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, openSync, closeSync, promises as fsp } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeSuperblock, deltaRelDir, encodeSuperblock, inlinePartVariant, type Superblock } from '@larch/delta';
import { CLI, expectOneErrorLine, larch, makeSpecTree, ok, scratch, type RunResult } from './helpers.js';

const BOMB_BYTES = 2 * 1024 * 1024 * 1024;
/** Peak resident memory allowed to a `larch` process handling the bomb (256 MB). */
const MAX_RSS_KB = 256 * 1000;
const TIME = '/usr/bin/time';
const SLOW = 600_000;

let dir: string;
let cleanup: () => Promise<void>;
let srcRepo: string;
let commit: string;
/** The stored bomb part: the byte 'x' and the xz stream. */
let bombPath: string;
let bombSha: string;
let bombSize: number;
let original: Superblock;

function runEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const e: NodeJS.ProcessEnv = { ...process.env, TZ: 'UTC', LC_ALL: 'C.UTF-8', ...extra };
  delete e.OSTREE_REPO;
  delete e.SOURCE_DATE_EPOCH;
  return e;
}

/** Wait for a child to exit; reject unless it exits 0. */
function exited(child: ReturnType<typeof spawn>, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${what} exited with ${code}`))));
  });
}

/** 'x' followed by the xz stream of BOMB_BYTES zeros, written to `path` as it is produced. */
async function makeBomb(path: string): Promise<void> {
  await fsp.writeFile(path, 'x');
  const fd = openSync(path, 'a');
  try {
    const head = spawn('head', ['-c', String(BOMB_BYTES), '/dev/zero'], { stdio: ['ignore', 'pipe', 'inherit'] });
    const xz = spawn('xz', ['--format=xz', '--check=crc64', '--lzma2=preset=0,dict=64MiB', '-T1', '-c'], { stdio: [head.stdout!, fd, 'inherit'] });
    head.stdout!.destroy(); // xz has its own end of the pipe
    await Promise.all([exited(head, 'head'), exited(xz, 'xz')]);
  } finally {
    closeSync(fd);
  }
}

async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const c of createReadStream(path)) h.update(c as Buffer);
  return h.digest('hex');
}

let runs = 0;
/** Run `larch ARGS` under /usr/bin/time; the result carries the child's peak RSS in KB. */
function measured(args: string[], env: Record<string, string> = {}): Promise<RunResult & { maxRssKb: number }> {
  const out = join(dir, `rss-${runs++}`);
  return new Promise((resolve, reject) => {
    const child = spawn(TIME, ['-f', '%M', '-o', out, process.execPath, CLI, ...args], { env: runEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => {
      // GNU time puts "Command exited with non-zero status N" before the format's line.
      fsp.readFile(out, 'utf8').then((t) => {
        const maxRssKb = Number(t.trim().split('\n').pop());
        if (process.env.SHOW_RSS) console.log(`larch ${args[0]} ${args[1]}${env.LARCH_XZ ? ` (LARCH_XZ=${env.LARCH_XZ})` : ''}: exit ${code}, peak RSS ${maxRssKb} KB`);
        resolve({ code: code ?? -1, stdout, stderr, maxRssKb });
      }, reject);
    });
  });
}

/** Write a delta directory holding `sb` and (unless inline) the bomb as part 0. */
async function deltaDir(name: string, sb: Omit<Superblock, 'endianness' | 'signed' | 'signatures' | 'signedData'>, withPart: boolean): Promise<string> {
  const d = join(dir, name);
  await fsp.mkdir(d, { recursive: true });
  if (withPart) await fsp.copyFile(bombPath, join(d, '0'));
  await fsp.writeFile(join(d, 'superblock'), encodeSuperblock(sb));
  return d;
}

/** The generated superblock with part 0 replaced by the bomb (its real checksum and size). */
function bombSuperblock(usize?: number): Omit<Superblock, 'endianness' | 'signed' | 'signatures' | 'signedData'> {
  const p0 = { ...original.parts[0], checksum: bombSha, size: bombSize, usize: usize ?? original.parts[0].usize };
  return { metadata: original.metadata, timestamp: original.timestamp, from: null, to: original.to, commit: original.commit, parts: [p0], fallbacks: [] };
}

async function freshClient(): Promise<string> {
  const p = join(dir, `client-${runs++}`);
  ok(larch(['init', `--repo=${p}`, '--mode=bare-user']));
  return p;
}

async function objectCount(repo: string): Promise<number> {
  let n = 0;
  for (const pre of await fsp.readdir(join(repo, 'objects')).catch(() => [] as string[])) n += (await fsp.readdir(join(repo, 'objects', pre))).length;
  return n;
}

beforeAll(async () => {
  if (!existsSync(TIME)) throw new Error(`${TIME} is required to measure peak memory: apt-get install -y time`);
  ({ dir, cleanup } = await scratch('larch-delta-bomb-'));
  srcRepo = join(dir, 'src');
  ok(larch(['init', `--repo=${srcRepo}`, '--mode=archive']));
  const tree = await makeSpecTree(join(dir, 'tree'));
  commit = ok(larch(['commit', `--repo=${srcRepo}`, '-b', 'main', '-s', 'one', '--timestamp=@1700000000', `--tree=dir=${tree}`])).trim();
  ok(larch(['static-delta', 'generate', `--repo=${srcRepo}`, '--empty', `--to=${commit}`]));
  original = decodeSuperblock(await fsp.readFile(join(srcRepo, deltaRelDir(null, commit), 'superblock')));
  expect(original.parts).toHaveLength(1);
  bombPath = join(dir, 'bomb-part');
  await makeBomb(bombPath);
  bombSha = await sha256File(bombPath);
  bombSize = (await fsp.stat(bombPath)).size;
}, SLOW);
afterAll(async () => {
  await cleanup?.();
});

describe('static-delta apply-offline with a decompression bomb part', () => {
  it('the bomb is small on disk and its header matches it (so only decompression can stop it)', () => {
    expect(bombSize).toBeLessThan(1024 * 1024);
    expect(original.parts[0].usize).toBeLessThan(4096);
  });

  for (const backEnd of ['system', 'native'] as const) {
    it(`refuses a stored bomb part in one line with bounded memory (${backEnd} xz)`, async () => {
      const d = await deltaDir(`stored-${backEnd}`, bombSuperblock(), true);
      const client = await freshClient();
      const r = await measured(['static-delta', 'apply-offline', `--repo=${client}`, d], backEnd === 'native' ? { LARCH_XZ: 'native' } : {});
      expect(expectOneErrorLine(r)).toMatch(/^Static delta part 0 decompresses past its limit of \d+ bytes$/);
      expect(r.maxRssKb).toBeGreaterThan(0);
      expect(r.maxRssKb, `peak RSS ${r.maxRssKb} KB`).toBeLessThanOrEqual(MAX_RSS_KB);
      expect(await objectCount(client)).toBe(0);
    }, SLOW);
  }

  it('refuses an inline bomb part (in the superblock metadata) with bounded memory', async () => {
    const bytes = await fsp.readFile(bombPath);
    const sb = bombSuperblock();
    sb.metadata = [...original.metadata, [`${deltaRelDir(null, commit)}/0`, inlinePartVariant(bytes)]];
    const d = await deltaDir('inline', sb, false);
    const client = await freshClient();
    const r = await measured(['static-delta', 'apply-offline', `--repo=${client}`, d]);
    expect(expectOneErrorLine(r)).toMatch(/^Static delta part 0 decompresses past its limit of \d+ bytes$/);
    expect(r.maxRssKb, `peak RSS ${r.maxRssKb} KB`).toBeLessThanOrEqual(MAX_RSS_KB);
    expect(await objectCount(client)).toBe(0);
  }, SLOW);

  it('refuses a superblock declaring 2^40 uncompressed bytes for a part, naming the part, before inflating it', async () => {
    const d = await deltaDir('huge-usize', bombSuperblock(2 ** 40), true);
    const client = await freshClient();
    const r = await measured(['static-delta', 'apply-offline', `--repo=${client}`, d]);
    expect(expectOneErrorLine(r)).toMatch(/^Static delta part 0 declares 1099511627776 uncompressed bytes, more than the limit of \d+$/);
    expect(r.maxRssKb, `peak RSS ${r.maxRssKb} KB`).toBeLessThanOrEqual(MAX_RSS_KB);
    expect(await objectCount(client)).toBe(0);
  }, SLOW);
});

describe('larch pull from a server whose static delta part is a decompression bomb', () => {
  it('abandons the delta, falls back to objects and completes, with bounded memory', async () => {
    // The served repository's delta becomes the bomb; the summary and delta index follow it.
    const rel = deltaRelDir(null, commit);
    await fsp.copyFile(bombPath, join(srcRepo, rel, '0'));
    await fsp.writeFile(join(srcRepo, rel, 'superblock'), encodeSuperblock(bombSuperblock()));
    ok(larch(['summary', '-u', `--repo=${srcRepo}`]));

    const requests: string[] = [];
    const server = http.createServer((req, res) => {
      const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
      requests.push(path);
      if (path.split('/').includes('..')) return void res.writeHead(400).end();
      fsp.stat(join(srcRepo, path)).then(
        (st) => {
          if (!st.isFile()) return void res.writeHead(404).end();
          res.writeHead(200, { 'content-length': String(st.size) });
          createReadStream(join(srcRepo, path)).pipe(res);
        },
        () => void res.writeHead(404).end(),
      );
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    try {
      const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/`;
      const client = await freshClient();
      ok(larch(['remote', 'add', `--repo=${client}`, '--no-gpg-verify', 'origin', url]));
      const r = await measured(['pull', `--repo=${client}`, 'origin', 'main']);
      if (r.code !== 0) throw new Error(`pull exited ${r.code}: ${r.stderr}`);
      expect(requests).toContain(`/${rel}/0`); // the bomb was fetched and tried
      expect(requests.some((p) => p.endsWith('.filez'))).toBe(true); // then objects
      expect(ok(larch(['rev-parse', `--repo=${client}`, 'origin:main'])).trim()).toBe(commit);
      ok(larch(['fsck', `--repo=${client}`]));
      expect(r.maxRssKb, `peak RSS ${r.maxRssKb} KB`).toBeLessThanOrEqual(MAX_RSS_KB);
    } finally {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    }
  }, SLOW);
});
