/**
 * Shared test setup: source repositories written by the real `ostree`, a plain static server
 * (`python3 -m http.server`) and a fault-injecting node:http server over the same files, both
 * on 127.0.0.1 with ephemeral ports, each recording the paths it was asked for.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { makeFixtureTree, makeTree, ostreeOk, type TmpDir } from '@larch/test-fixtures';

/** A served directory and the request paths it saw. */
export interface TestServer {
  url: string;
  /** Request paths (URL path, decoded) in arrival order. */
  requests: string[];
  stop(): Promise<void>;
}

/** A server whose request log arrives late (from another process): `drain` waits for it. */
export interface PythonServer extends TestServer {
  /** Resolve once every request answered so far is in `requests`. */
  drain(): Promise<void>;
}

/** `python3 -m http.server` on an ephemeral port, serving `dir`; the access log is parsed from stderr. */
export async function startPythonServer(dir: string): Promise<PythonServer> {
  const child: ChildProcess = spawn('python3', ['-u', '-m', 'http.server', '0', '--bind', '127.0.0.1', '--directory', dir], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const requests: string[] = [];
  let errBuf = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (d: string) => {
    errBuf += d;
    let nl: number;
    while ((nl = errBuf.indexOf('\n')) >= 0) {
      const line = errBuf.slice(0, nl);
      errBuf = errBuf.slice(nl + 1);
      const m = /"GET (\S+) HTTP\/[\d.]+"/.exec(line);
      if (m) requests.push(decodeURIComponent(m[1]));
    }
  });
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`python http.server did not start: ${out}`)), 120_000);
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (d: string) => {
      out += d;
      const m = /port (\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`python http.server exited with ${code}: ${out}`));
    });
  });
  let marks = 0;
  return {
    url: `http://127.0.0.1:${port}/`,
    requests,
    // http.server logs a request before it answers it, so once a marker request is answered and
    // its log line has come in, so have those of every request answered before it.
    drain: async () => {
      const mark = `/.larch-test-drain-${++marks}`;
      await new Promise<void>((resolve, reject) => {
        http.get(`http://127.0.0.1:${port}${mark}`, { agent: false }, (res) => res.resume().on('end', resolve)).on('error', reject);
      });
      while (!requests.includes(mark)) await new Promise((r) => setTimeout(r, 10));
      requests.splice(requests.indexOf(mark), 1);
    },
    stop: async () => {
      if (child.exitCode !== null) return;
      const gone = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await gone;
    },
  };
}

export type Fault = 'flip' | 'truncate' | 'truncate-once' | 'stall' | 404 | 500;

/** A static server over `dir` that can corrupt chosen paths. Set `faults` at any time. */
export interface FaultServer extends TestServer {
  faults: Map<string, Fault>;
  /** The Range header of each request (parallel to `requests`). */
  ranges: Array<string | undefined>;
  /** Body bytes sent per path. */
  sent: Map<string, number>;
}

export async function startFaultServer(dir: string): Promise<FaultServer> {
  const requests: string[] = [];
  const ranges: Array<string | undefined> = [];
  const sent = new Map<string, number>();
  const faults = new Map<string, Fault>();
  const server = http.createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    requests.push(path);
    ranges.push(req.headers.range);
    let fault = faults.get(path);
    if (fault === 'truncate-once') {
      faults.delete(path);
      fault = 'truncate';
    }
    if (fault === 404 || fault === 500) {
      res.writeHead(fault, { 'content-type': 'text/plain' });
      res.end(`fault ${fault}\n`);
      return;
    }
    const file = join(dir, path);
    if (path.includes('..')) {
      res.writeHead(400);
      res.end();
      return;
    }
    fsp
      .readFile(file)
      .then((whole) => {
        // Range support (bytes=N- and bytes=N-M), as static servers have.
        let data = whole;
        let status = 200;
        const headers: Record<string, string | number> = {};
        const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
        if (m && Number(m[1]) < whole.length) {
          const end = m[2] === '' ? whole.length - 1 : Math.min(Number(m[2]), whole.length - 1);
          data = whole.subarray(Number(m[1]), end + 1);
          status = 206;
          headers['content-range'] = `bytes ${m[1]}-${end}/${whole.length}`;
        }
        const count = (n: number): void => {
          sent.set(path, (sent.get(path) ?? 0) + n);
        };
        if (fault === 'flip') {
          const copy = Buffer.from(data);
          copy[copy.length - 2] ^= 0x01;
          res.writeHead(200, { 'content-length': copy.length });
          res.end(copy);
          count(copy.length);
        } else if (fault === 'truncate' || fault === 'stall') {
          res.writeHead(status, { ...headers, 'content-length': data.length });
          res.write(data.subarray(0, Math.floor(data.length / 2)));
          count(Math.floor(data.length / 2));
          if (fault === 'truncate') setTimeout(() => res.destroy(), 20);
          // 'stall': never finish; the socket stays open until the server stops.
        } else {
          res.writeHead(status, { ...headers, 'content-length': data.length });
          res.end(data);
          count(data.length);
        }
      })
      .catch(() => {
        res.writeHead(404);
        res.end();
      });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/`,
    requests,
    ranges,
    sent,
    faults,
    stop: async () => {
      server.closeAllConnections();
      await new Promise((r) => server.close(() => r(undefined)));
    },
  };
}

/** The source tree committed by the tests: the canonical `mixed` fixture plus a 300 kB file. */
export async function makeSourceTree(dir: string): Promise<void> {
  await makeFixtureTree(dir, 'mixed', { canonical: true });
  await makeTree(dir, { 'big/blob.bin': { type: 'file', generate: { size: 300_000, seed: 7 } }, 'sub/deeper/leaf.txt': 'leaf\n' });
}

/** An archive repo written by the real ostree: `main` with three commits, `other` with one; summary updated. */
export async function makeOstreeRemote(tmp: TmpDir): Promise<{ repo: string; tree: string; commits: string[]; other: string }> {
  const repo = tmp.join('remote');
  const tree = tmp.join('tree');
  await makeSourceTree(tree);
  await ostreeOk(['init', `--repo=${repo}`, '--mode=archive']);
  const commits: string[] = [];
  for (let i = 1; i <= 3; i++) {
    await fsp.writeFile(join(tree, 'version.txt'), `v${i}\n`);
    const c = (await ostreeOk(['commit', `--repo=${repo}`, '-b', 'main', `--subject=v${i}`, `--timestamp=2024-01-0${i} 00:00:00 +0000`, tree])).stdout.trim();
    commits.push(c);
  }
  const otherTree = tmp.join('other-tree');
  await makeTree(otherTree, { 'o.txt': 'other\n', 'sub/deeper/leaf.txt': 'leaf\n' });
  const other = (await ostreeOk(['commit', `--repo=${repo}`, '-b', 'other', '--timestamp=2024-02-01 00:00:00 +0000', otherTree])).stdout.trim();
  await ostreeOk(['summary', '-u', `--repo=${repo}`]);
  return { repo, tree, commits, other };
}

/** `ostree checkout -U REF` of `repo` into `dest`. */
export async function ostreeCheckout(repo: string, ref: string, dest: string): Promise<void> {
  await ostreeOk(['checkout', `--repo=${repo}`, '-U', ref, dest]);
}

/** Object request paths (`objects/...`) of a request log. */
export function objectRequests(requests: string[]): string[] {
  return requests.filter((p) => p.startsWith('/objects/'));
}

/** Every `objects/XX/REST.EXT` of a repo, as request paths. */
export async function repoObjectPaths(repo: string): Promise<Set<string>> {
  const out = new Set<string>();
  for (const d of await fsp.readdir(join(repo, 'objects'))) {
    for (const f of await fsp.readdir(join(repo, 'objects', d))) out.add(`/objects/${d}/${f}`);
  }
  return out;
}
