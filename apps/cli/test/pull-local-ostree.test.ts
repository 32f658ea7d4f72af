/**
 * `larch pull-local` side by side with `ostree pull-local` (2022.7): the closing line ("imported"),
 * hardlinks between archive repositories on one filesystem, `--untrusted`, a corrupted source
 * (refused by `--untrusted` in ostree's words; copied as ostree's default does by a source the
 * user owns; pull-local-trust.test.ts has the ownership rule), and a remote URL with an unknown scheme.
 * Also `remote summary` through the remote's `proxy` key, against a proxy served here.
 */
import { spawn } from 'node:child_process';
import { cpSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, request as httpRequest, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { larch, larchAsync, makeSpecTree, ok, ostree, requireOstree, RUN_INTEROP, scratch, type RunResult } from './helpers.js';

/** Every `.filez` of a repository, relative to it. */
function filez(repo: string): string[] {
  const out: string[] = [];
  for (const d of readdirSync(join(repo, 'objects'))) {
    for (const f of readdirSync(join(repo, 'objects', d))) if (f.endsWith('.filez')) out.push(join('objects', d, f));
  }
  return out.sort();
}

describe.skipIf(!RUN_INTEROP)('pull-local as ostree (interop)', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let src: string;
  let n = 0;
  const fresh = (mode: string): { o: string; l: string } => {
    n++;
    const o = join(dir, `o${n}`);
    const l = join(dir, `l${n}`);
    ok(ostree(['init', `--repo=${o}`, `--mode=${mode}`]));
    ok(larch(['init', `--repo=${l}`, `--mode=${mode}`]));
    return { o, l };
  };
  /** Run the same pull-local with each tool into its own repository. */
  const both = (r: { o: string; l: string }, args: string[], larchArgs: string[] = args): { o: RunResult; l: RunResult } => ({
    o: ostree(['pull-local', `--repo=${r.o}`, ...args]),
    l: larch(['pull-local', `--repo=${r.l}`, ...larchArgs]),
  });

  beforeAll(async () => {
    requireOstree();
    ({ dir, cleanup } = await scratch('larch-pull-local-'));
    const tree = join(dir, 'tree');
    await makeSpecTree(tree);
    for (let i = 0; i < 5; i++) writeFileSync(join(tree, `f${i}`), `file ${i}\n`.repeat(i * 1000 + 1));
    src = join(dir, 'src');
    ok(ostree(['init', `--repo=${src}`, '--mode=archive']));
    ok(ostree(['commit', `--repo=${src}`, '-b', 'main', `--tree=dir=${tree}`, '-s', 'x', '--timestamp=2020-01-01T00:00:00Z']));
  });
  afterAll(async () => {
    await cleanup?.();
  });

  it('archive to archive: the same closing line, and every .filez hardlinked to the source', () => {
    const r = fresh('archive');
    const { o, l } = both(r, [src, 'main']);
    expect(o.code).toBe(0);
    expect(l.code).toBe(0);
    expect(l.stdout).toBe(o.stdout);
    expect(l.stdout).toMatch(/^\d+ metadata, \d+ content objects imported; 0 bytes content written\n$/);
    const objects = filez(src);
    expect(objects.length).toBeGreaterThan(5);
    for (const f of objects) {
      expect(statSync(join(r.o, f)).ino).toBe(statSync(join(src, f)).ino);
      expect(statSync(join(r.l, f)).ino, `${f} hardlinked`).toBe(statSync(join(src, f)).ino);
    }
    ok(larch(['fsck', `--repo=${r.l}`]));
  });

  it('archive to bare-user and --untrusted: the same closing line (content is written), metadata hardlinked', () => {
    const rev = ok(ostree(['rev-parse', `--repo=${src}`, 'main'])).trim();
    const commit = join('objects', rev.slice(0, 2), `${rev.slice(2)}.commit`);
    for (const args of [[src, 'main'], ['--untrusted', src, 'main']]) {
      const r = fresh('bare-user');
      const { o, l } = both(r, args);
      expect(o.code).toBe(0);
      expect(l.code).toBe(0);
      expect(l.stdout).toBe(o.stdout);
      expect(l.stdout).toMatch(/content objects imported; [1-9][\d.]*\s(bytes|kB) content written\n$/);
      expect(statSync(join(r.o, commit)).ino).toBe(statSync(join(src, commit)).ino);
      expect(statSync(join(r.l, commit)).ino, 'commit hardlinked').toBe(statSync(join(src, commit)).ino);
      ok(larch(['fsck', `--repo=${r.l}`]));
    }
  });

  it('a corrupted commit: refused as by ostree --untrusted; copied as ostree does by default (and with --trust-source)', () => {
    const bad = join(dir, 'bad-commit');
    cpSync(src, bad, { recursive: true });
    const rev = ok(ostree(['rev-parse', `--repo=${bad}`, 'main'])).trim();
    const corrupt = rev.split('').reverse().join('');
    mkdirSync(join(bad, 'objects', corrupt.slice(0, 2)), { recursive: true });
    renameSync(join(bad, 'objects', rev.slice(0, 2), `${rev.slice(2)}.commit`), join(bad, 'objects', corrupt.slice(0, 2), `${corrupt.slice(2)}.commit`));
    writeFileSync(join(bad, 'refs/heads/main'), `${corrupt}\n`);

    // ostree's words (which the suite greps), in larch's one line naming the file at fault.
    const words = `Corrupted commit object; checksum expected='${corrupt}' actual='${rev}'`;
    {
      const r = fresh('bare-user');
      const { o, l } = both(r, ['--untrusted', bad, 'main']);
      expect(o.code).toBe(1);
      expect(o.stderr).toBe(`error: fsck ${corrupt}.commit: ${words}\n`);
      expect(l.code).toBe(1);
      expect(l.stderr).toMatch(/^error: [^\n]*\n$/);
      expect(l.stderr).toContain(`${corrupt}.commit: ${words} for file://`);
      expect(existsSync(join(r.l, 'refs/heads/main'))).toBe(false);
    }

    for (const larchArgs of [[bad, 'main'], ['--trust-source', bad, 'main']]) {
      const r = fresh('bare-user');
      const { o, l } = both(r, [bad, 'main'], larchArgs);
      expect(o.code).toBe(0);
      expect(l.code).toBe(0);
      expect(l.stdout).toBe(o.stdout);
      expect(readFileSync(join(r.l, 'refs/heads/main'), 'utf8')).toBe(`${corrupt}\n`);
      // Both copied the corruption; fsck finds it in both.
      expect(ostree(['fsck', `--repo=${r.o}`]).code).toBe(1);
      expect(larch(['fsck', `--repo=${r.l}`]).code).toBe(1);
    }
  });

  it('a content object that is another one: refused as by ostree --untrusted, nothing of it linked', () => {
    const bad = join(dir, 'bad-content');
    cpSync(src, bad, { recursive: true });
    const [victim, other] = filez(bad);
    cpSync(join(bad, other), join(bad, victim));
    const name = (f: string): string => f.replace(/^objects\/(..)\/(.*)\.filez$/, '$1$2');
    const words = `Corrupted file object; checksum expected='${name(victim)}' actual='${name(other)}'`;
    const r = fresh('archive');
    const { o, l } = both(r, ['--untrusted', bad, 'main']);
    expect(o.code).toBe(1);
    expect(o.stderr).toBe(`error: fsck content object ${name(victim)}: ${words}\n`);
    expect(l.code).toBe(1);
    expect(l.stderr).toMatch(/^error: [^\n]*\n$/);
    expect(l.stderr).toContain(`${name(victim)}.file: ${words} for file://`);
    expect(existsSync(join(r.l, victim))).toBe(false);
    expect(readdirSync(join(r.l, 'tmp')).filter((f) => f.startsWith('larch-'))).toEqual([]);
  });

  it('--untrusted, a symlink or trailing bytes in the source objects: copied and checked, never linked', () => {
    const odd = join(dir, 'odd');
    cpSync(src, odd, { recursive: true });
    const [linked, padded] = filez(odd);
    // One object is a symlink to a file outside the repository (with the right bytes), one has
    // junk after its deflate stream.
    const outside = join(dir, 'outside.filez');
    renameSync(join(odd, linked), outside);
    symlinkSync(outside, join(odd, linked));
    const original = readFileSync(join(odd, padded));
    writeFileSync(join(odd, padded), Buffer.concat([original, Buffer.from('junk after the stream')]));
    const r = fresh('archive');
    ok(larch(['pull-local', `--repo=${r.l}`, '--untrusted', odd, 'main']));
    const l = lstatSync(join(r.l, linked));
    expect(l.isFile()).toBe(true);
    expect(l.ino).not.toBe(statSync(outside).ino);
    expect(statSync(join(r.l, padded)).ino).not.toBe(statSync(join(odd, padded)).ino);
    expect(readFileSync(join(r.l, padded))).toEqual(original);
    ok(larch(['fsck', `--repo=${r.l}`]));
  });

  it('--untrusted with --trust-source is a usage error', () => {
    const r = fresh('archive');
    const l = larch(['pull-local', `--repo=${r.l}`, '--untrusted', '--trust-source', src, 'main']);
    expect(l.code).toBe(1);
    expect(l.stderr).toMatch(/^error: --untrusted and --trust-source cannot be combined$/m);
  });

  it('a remote URL with an unknown scheme: remote add takes it, pull refuses it in the same words', () => {
    const r = fresh('archive');
    ok(ostree(['remote', 'add', `--repo=${r.o}`, 'broken', 'badscheme://something']));
    ok(larch(['remote', 'add', `--repo=${r.l}`, 'broken', 'badscheme://something']));
    const o = ostree(['pull', `--repo=${r.o}`, 'broken', 'main']);
    const l = larch(['pull', `--repo=${r.l}`, 'broken', 'main']);
    expect(o.code).toBe(1);
    expect(l.code).toBe(1);
    expect(o.stderr).toBe('error: Invalid URI scheme in badscheme://something\n');
    expect(l.stderr).toBe(o.stderr);
  });
});

/** Run ostree without blocking this process's event loop (the proxy below runs in it). */
function ostreeAsync(args: string[]): Promise<RunResult> {
  return new Promise((resolveRun, reject) => {
    const child = spawn('ostree', args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, TZ: 'UTC', LC_ALL: 'C.UTF-8' } });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolveRun({ code: code ?? -1, stdout, stderr }));
  });
}

describe.skipIf(!RUN_INTEROP)('remote summary through the remote proxy key (interop)', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let files: Server;
  let proxy: Server;
  const proxied: string[] = [];

  const listen = (s: Server): Promise<number> => new Promise((res) => s.listen(0, '127.0.0.1', () => res((s.address() as AddressInfo).port)));

  beforeAll(async () => {
    requireOstree();
    ({ dir, cleanup } = await scratch('larch-remote-summary-proxy-'));
    const tree = join(dir, 'tree');
    await makeSpecTree(tree);
    const served = join(dir, 'served');
    ok(ostree(['init', `--repo=${served}`, '--mode=archive']));
    ok(ostree(['commit', `--repo=${served}`, '-b', 'main', `--tree=dir=${tree}`, '-s', 'x', '--timestamp=2020-01-01T00:00:00Z']));
    ok(ostree(['summary', '-u', `--repo=${served}`]));
    // The repository's files, whatever host was asked for.
    files = createServer((req, res) => {
      const path = join(served, new URL(req.url ?? '/', 'http://x').pathname);
      if (!path.startsWith(served) || !existsSync(path) || !statSync(path).isFile()) {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { 'content-length': statSync(path).size }).end(readFileSync(path));
    });
    const filesPort = await listen(files);
    // A forward proxy: absolute-form requests and CONNECT tunnels both end at `files`.
    proxy = createServer((req, res) => {
      proxied.push(req.url ?? '');
      const u = new URL(req.url ?? '/', 'http://x');
      const up = httpRequest({ host: '127.0.0.1', port: filesPort, path: u.pathname, method: req.method, headers: req.headers }, (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers);
        r.pipe(res);
      });
      up.on('error', () => res.writeHead(502).end());
      req.pipe(up);
    });
    proxy.on('connect', (req, socket, head) => {
      proxied.push(`CONNECT ${req.url ?? ''}`);
      const up = connect(filesPort, '127.0.0.1', () => {
        socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
        up.write(head);
        up.pipe(socket);
        socket.pipe(up);
      });
      up.on('error', () => socket.destroy());
      socket.on('error', () => up.destroy());
    });
    const proxyPort = await listen(proxy);
    for (const tool of ['o', 'l']) {
      const repo = join(dir, tool);
      ok(ostree(['init', `--repo=${repo}`, '--mode=archive']));
      // A host that does not resolve: only the proxy can reach it.
      ok(ostree(['remote', 'add', `--repo=${repo}`, '--no-gpg-verify', `--set=proxy=http://127.0.0.1:${proxyPort}`, 'origin', 'http://larch-test-repo.invalid/']));
    }
  });
  afterAll(async () => {
    await new Promise<void>((r) => (files ? files.close(() => r()) : r()));
    await new Promise<void>((r) => (proxy ? proxy.close(() => r()) : r()));
    await cleanup?.();
  });

  it('remote summary and remote refs go through the proxy, as with ostree', async () => {
    for (const verb of [['summary'], ['refs']]) {
      proxied.length = 0;
      const o = await ostreeAsync(['remote', ...verb, `--repo=${join(dir, 'o')}`, 'origin']);
      expect(o.code, o.stderr).toBe(0);
      expect(proxied.length).toBeGreaterThan(0);
      proxied.length = 0;
      const l = await larchAsync(['remote', ...verb, `--repo=${join(dir, 'l')}`, 'origin']);
      expect(l.code, l.stderr).toBe(0);
      expect(proxied.length).toBeGreaterThan(0);
      expect(l.stdout).toBe(o.stdout);
    }
  });
});
