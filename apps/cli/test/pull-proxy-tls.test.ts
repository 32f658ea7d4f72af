/**
 * `larch pull` through proxies and over TLS, side by side with `ostree pull`, against real
 * servers: nginx (plain HTTP, HTTPS with a CA made here by openssl, HTTPS requiring a client
 * certificate, HTTPS with a certificate for another name) and tinyproxy. Each server runs from
 * its own config in a scratch dir on free ports, as `nobody` when the tests run as root, and is
 * stopped afterwards. The remote keys under test are `proxy`, `tls-permissive`, `tls-ca-path`,
 * `tls-client-cert-path` and `tls-client-key-path`, and the `http_proxy`/`no_proxy` variables.
 *
 * Needs ostree, nginx, tinyproxy and openssl: skipped without them, failed without them in CI.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmod, chown, mkdir, readFile, writeFile } from 'node:fs/promises';
import { createServer, connect } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOneErrorLine, IN_CI, larchAsync, makeSpecTree, ok, ostree, scratch, type RunResult } from './helpers.js';

const TOOLS = ['ostree', 'nginx', 'tinyproxy', 'openssl'];
/** Where Debian puts nginx and tinyproxy (not on a non-root user's PATH). */
const SBIN = ['/usr/sbin', '/usr/bin', '/sbin', '/bin'];

function which(tool: string): string | null {
  for (const d of [...(process.env.PATH ?? '').split(':'), ...SBIN]) {
    if (d !== '' && spawnSync('test', ['-x', join(d, tool)]).status === 0) return join(d, tool);
  }
  return null;
}
const FOUND = Object.fromEntries(TOOLS.map((t) => [t, which(t)]));
const MISSING = TOOLS.filter((t) => FOUND[t] === null);
const RUN = MISSING.length === 0 || IN_CI;

/** uid/gid of `nobody` when we are root (servers then run unprivileged), else nothing. */
function serverUser(): { uid: number; gid: number } | null {
  if (process.getuid?.() !== 0) return null;
  const uid = Number(spawnSync('id', ['-u', 'nobody'], { encoding: 'utf8' }).stdout.trim());
  const gid = Number(spawnSync('id', ['-g', 'nobody'], { encoding: 'utf8' }).stdout.trim());
  return Number.isInteger(uid) && Number.isInteger(gid) && uid > 0 ? { uid, gid } : null;
}

/** A port nothing listens on right now. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => (a !== null && typeof a === 'object' ? resolve(a.port) : reject(new Error('no port'))));
    });
  });
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const c = connect(port, '127.0.0.1');
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
}

/** Start a server and wait until every port accepts connections (or the server exits). */
async function startServer(cmd: string, args: string[], ports: number[], logFile: string): Promise<ChildProcess> {
  const user = serverUser();
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...(user ?? {}) });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  let exited = false;
  child.on('exit', () => (exited = true));
  for (;;) {
    if (exited) throw new Error(`${cmd} exited at start: ${out}${await readFile(logFile, 'utf8').catch(() => '')}`);
    const up = await Promise.all(ports.map(accepts));
    if (up.every(Boolean)) return child;
    await new Promise((r) => setTimeout(r, 50));
  }
}

function stopServer(child: ChildProcess | undefined): Promise<void> {
  if (child === undefined || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
  });
}

function openssl(args: string[], cwd: string): void {
  const r = spawnSync('openssl', args, { cwd, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.stderr}`);
}

/** Both tools' results for one remote, pulled into a fresh repo each. */
interface Side {
  ours: RunResult;
  theirs: RunResult;
}

describe.skipIf(!RUN)('pull through proxies and over TLS, against ostree', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let commit: string;
  let pki: string;
  let nginx: ChildProcess | undefined;
  let proxy: ChildProcess | undefined;
  let proxyLog: string;
  const port = { http: 0, https: 0, clientAuth: 0, wrongName: 0, proxy: 0, dead: 0 };
  let seq = 0;

  beforeAll(async () => {
    if (MISSING.length > 0) throw new Error(`these tests need ${MISSING.join(', ')} (CI=true): apt-get install -y ostree nginx-light tinyproxy openssl`);
    ({ dir, cleanup } = await scratch('larch-cli-proxytls-'));
    await chmod(dir, 0o755); // the servers may run as nobody
    const tree = await makeSpecTree(join(dir, 'tree'));
    const remote = join(dir, 'remote');
    ok(ostree(['init', `--repo=${remote}`, '--mode=archive']));
    commit = ok(ostree(['commit', `--repo=${remote}`, '-b', 'main', '--timestamp=2024-01-01 00:00:00 +0000', tree])).trim();
    ok(ostree(['summary', '-u', `--repo=${remote}`]));

    // A CA, a server certificate for 127.0.0.1 and localhost, one for another name, and a client certificate.
    pki = join(dir, 'pki');
    await mkdir(pki);
    openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=Larch test CA'], pki);
    const leaf = async (name: string, cn: string, ext: string | null): Promise<void> => {
      openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`], pki);
      const extArgs: string[] = [];
      if (ext !== null) {
        await writeFile(join(pki, `${name}.ext`), `${ext}\n`);
        extArgs.push('-extfile', `${name}.ext`);
      }
      openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.pem`, '-days', '2', ...extArgs], pki);
    };
    await leaf('server', 'localhost', 'subjectAltName=IP:127.0.0.1,DNS:localhost');
    await leaf('other', 'other.example', 'subjectAltName=DNS:other.example');
    await leaf('client', 'larch client', null);
    await chmod(pki, 0o755);
    for (const f of ['ca.pem', 'server.pem', 'server.key', 'other.pem', 'other.key', 'client.pem', 'client.key']) await chmod(join(pki, f), 0o644);

    for (const k of Object.keys(port) as Array<keyof typeof port>) port[k] = await freePort();
    // The dead proxy: port 1 (tcpmux), which nothing on a test machine listens on. A free ephemeral
    // port could be taken by another test file's server while this one runs.
    port.dead = 1;
    const user = serverUser();

    // nginx, with its own prefix (pid, logs, temp dirs) in the scratch dir.
    const ng = join(dir, 'nginx');
    await mkdir(ng);
    if (user) await chown(ng, user.uid, user.gid);
    const tlsServer = (p: number, cert: string, extra = ''): string =>
      `server { listen 127.0.0.1:${p} ssl; ssl_certificate ${pki}/${cert}.pem; ssl_certificate_key ${pki}/${cert}.key; root ${remote}; ${extra} }`;
    await writeFile(
      join(ng, 'nginx.conf'),
      [
        'daemon off;',
        'worker_processes 1;',
        `pid ${ng}/nginx.pid;`,
        `error_log ${ng}/error.log info;`,
        'events { worker_connections 64; }',
        'http {',
        `  access_log ${ng}/access.log;`,
        ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `  ${t}_temp_path ${ng}/${t};`),
        `  server { listen 127.0.0.1:${port.http}; root ${remote}; }`,
        `  ${tlsServer(port.https, 'server')}`,
        `  ${tlsServer(port.clientAuth, 'server', `ssl_client_certificate ${pki}/ca.pem; ssl_verify_client on;`)}`,
        `  ${tlsServer(port.wrongName, 'other')}`,
        '}',
        '',
      ].join('\n'),
    );
    nginx = await startServer(FOUND.nginx!, ['-p', ng, '-c', join(ng, 'nginx.conf')], [port.http, port.https, port.clientAuth, port.wrongName], join(ng, 'error.log'));

    // tinyproxy in the foreground, logging every request.
    const tp = join(dir, 'tinyproxy');
    await mkdir(tp);
    if (user) await chown(tp, user.uid, user.gid);
    proxyLog = join(tp, 'tinyproxy.log');
    await writeFile(
      join(tp, 'tinyproxy.conf'),
      [`Port ${port.proxy}`, 'Listen 127.0.0.1', 'Timeout 60', `LogFile "${proxyLog}"`, 'LogLevel Info', `PidFile "${tp}/tinyproxy.pid"`, 'MaxClients 20', 'Allow 127.0.0.1', ''].join('\n'),
    );
    proxy = await startServer(FOUND.tinyproxy!, ['-d', '-c', join(tp, 'tinyproxy.conf')], [port.proxy], proxyLog);
  }, 120_000);

  afterAll(async () => {
    await Promise.all([stopServer(nginx), stopServer(proxy)]);
    await cleanup?.();
  });

  /**
   * Add remote `r` with URL and `--set` keys to a fresh repo of each tool, pull `main` with both,
   * and return both results (`env` applies to both pulls).
   */
  async function pullBoth(url: string, set: string[], env: Record<string, string | undefined> = {}): Promise<Side> {
    const n = ++seq;
    const mine = join(dir, `ours-${n}`);
    const theirs = join(dir, `theirs-${n}`);
    ok(ostree(['init', `--repo=${mine}`, '--mode=archive']));
    ok(ostree(['init', `--repo=${theirs}`, '--mode=archive']));
    const add = (repo: string): string[] => ['remote', 'add', `--repo=${repo}`, '--no-gpg-verify', ...set.map((s) => `--set=${s}`), 'r', url];
    ok(await larchAsync(add(mine)));
    ok(ostree(add(theirs)));
    const full = { http_proxy: undefined, https_proxy: undefined, HTTPS_PROXY: undefined, all_proxy: undefined, ALL_PROXY: undefined, no_proxy: undefined, NO_PROXY: undefined, ...env };
    const [ours, theirsRun] = await Promise.all([larchAsync(['pull', `--repo=${mine}`, 'r', 'main'], { env: full }), Promise.resolve(ostree(['pull', `--repo=${theirs}`, 'r', 'main'], { env: full }))]);
    if (ours.code === 0) expect(ok(await larchAsync(['rev-parse', `--repo=${mine}`, 'r:main'])).trim()).toBe(commit);
    if (theirsRun.code === 0) expect(ok(ostree(['rev-parse', `--repo=${theirs}`, 'r:main'])).trim()).toBe(commit);
    return { ours, theirs: theirsRun };
  }

  /** Both fail with exit 1 and one error line each; returns larch's line. */
  function bothFail(s: Side): string {
    expectOneErrorLine(s.theirs);
    return expectOneErrorLine(s.ours);
  }

  function bothSucceed(s: Side): void {
    ok(s.theirs);
    ok(s.ours);
  }

  const local = (p: number, scheme = 'http'): string => `${scheme}://127.0.0.1:${p}/`;

  it('a dead proxy in the remote fails the pull, as in ostree', async () => {
    const line = bothFail(await pullBoth(local(port.http), [`proxy=http://127.0.0.1:${port.dead}`]));
    expect(line).toContain(`proxy http://127.0.0.1:${port.dead}/`);
    // Written without a scheme it is still an HTTP proxy.
    bothFail(await pullBoth(local(port.http), [`proxy=127.0.0.1:${port.dead}`]));
  }, 120_000);

  it('a dead proxy in http_proxy fails the pull; no_proxy lets it go direct', async () => {
    const dead = `http://127.0.0.1:${port.dead}`;
    bothFail(await pullBoth(local(port.http), [], { http_proxy: dead }));
    // HTTP_PROXY is not read (libcurl ignores it), and https_proxy is for https:// URLs only.
    bothSucceed(await pullBoth(local(port.http), [], { HTTP_PROXY: dead, https_proxy: dead }));
    bothSucceed(await pullBoth(local(port.http), [], { http_proxy: dead, no_proxy: 'example.com,127.0.0.1' }));
    // no_proxy also overrides the remote's own proxy key.
    bothSucceed(await pullBoth(local(port.http), [`proxy=${dead}`], { no_proxy: '*' }));
  }, 120_000);

  it('a pull through a live tinyproxy succeeds, and the proxy logs its requests', async () => {
    const before = (await readFile(proxyLog, 'utf8')).length;
    bothSucceed(await pullBoth(local(port.http), [`proxy=http://127.0.0.1:${port.proxy}`]));
    const log = (await readFile(proxyLog, 'utf8')).slice(before);
    const objects = `/objects/${commit.slice(0, 2)}/${commit.slice(2)}.commit`;
    // One request per tool, at least, for the commit object.
    expect(log.split(`GET http://127.0.0.1:${port.http}${objects}`).length - 1).toBeGreaterThanOrEqual(2);
    // https:// goes through the proxy too, in a CONNECT tunnel, and the TLS keys still apply.
    const before2 = (await readFile(proxyLog, 'utf8')).length;
    bothSucceed(await pullBoth(local(port.https, 'https'), [`tls-ca-path=${pki}/ca.pem`], { https_proxy: `http://127.0.0.1:${port.proxy}` }));
    expect((await readFile(proxyLog, 'utf8')).slice(before2)).toContain(`CONNECT 127.0.0.1:${port.https}`);
  }, 120_000);

  it('HTTPS with an unknown CA fails; tls-ca-path or tls-permissive=true make it succeed', async () => {
    const line = bothFail(await pullBoth(local(port.https, 'https'), []));
    expect(line).toMatch(/certificate/i);
    bothSucceed(await pullBoth(local(port.https, 'https'), [`tls-ca-path=${pki}/ca.pem`]));
    bothSucceed(await pullBoth(local(port.https, 'https'), ['tls-permissive=true']));
    // tls-permissive accepts any CA, not any name (libcurl still checks the name).
    expect(bothFail(await pullBoth(local(port.wrongName, 'https'), ['tls-permissive=true']))).toMatch(/certificate/i);
    expect(bothFail(await pullBoth(local(port.wrongName, 'https'), [`tls-ca-path=${pki}/ca.pem`]))).toMatch(/certificate/i);
  }, 120_000);

  it('a server requiring a client certificate: refused without one, served with tls-client-cert-path and -key-path', async () => {
    const ca = `tls-ca-path=${pki}/ca.pem`;
    expect(bothFail(await pullBoth(local(port.clientAuth, 'https'), [ca]))).toContain('HTTP 400');
    bothSucceed(await pullBoth(local(port.clientAuth, 'https'), [ca, `tls-client-cert-path=${pki}/client.pem`, `tls-client-key-path=${pki}/client.key`]));
    // One without the other is refused before any request, in ostree's words.
    const s = await pullBoth(local(port.clientAuth, 'https'), [ca, `tls-client-cert-path=${pki}/client.pem`]);
    expect(bothFail(s)).toBe(expectOneErrorLine(s.theirs));
  }, 120_000);

  it('bad TLS settings fail with one line naming them', async () => {
    const missing = join(pki, 'missing.pem');
    expect(bothFail(await pullBoth(local(port.https, 'https'), [`tls-ca-path=${missing}`]))).toContain(missing);
    const s = await pullBoth(local(port.https, 'https'), ['tls-permissive=maybe']);
    expect(bothFail(s)).toBe(expectOneErrorLine(s.theirs));
    // A key file that is not a key.
    expect(
      bothFail(await pullBoth(local(port.clientAuth, 'https'), [`tls-ca-path=${pki}/ca.pem`, `tls-client-cert-path=${pki}/client.pem`, `tls-client-key-path=${pki}/ca.pem`])),
    ).toContain('tls-client-key-path');
  }, 120_000);
});
