/**
 * `remote refs` and `remote summary` side by side with the real ostree, over HTTP from OSTree's
 * own test server serving a repository the real ostree made (refs, a version, a static delta,
 * a collection ID and a collection map): the listing, the summary text, `--raw`, a GPG-signed
 * summary with `gpg-verify-summary`, and the errors for a missing summary, a server error and
 * an unreachable server.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmod, cp, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOneErrorLine, larch, ok, ostree, requireOstree, RUN_INTEROP, scratch } from './helpers.js';
import { expectSame, runBoth, startTrivialHttpd, type Places } from './remote-compare.js';

const describeInterop = RUN_INTEROP ? describe : describe.skip;
const GPG_HOME = '/usr/libexec/installed-tests/libostree/gpghome';
const GPG_KEY = '7FCA23D8472CDAFA';
const FAILING_SERVER = `
const s = require('node:http').createServer((q, r) => { r.statusCode = 500; r.end('no'); });
s.listen(0, '127.0.0.1', () => process.stdout.write(s.address().port + '\\n'));
`;

let dir: string;
let cleanup: () => Promise<void>;
let httpd: { url: string; stop: () => void } | null = null;
let failing: ChildProcess | null = null;
let failingUrl = '';
let n = 0;

beforeAll(async () => {
  if (!RUN_INTEROP) return;
  requireOstree();
  ({ dir, cleanup } = await scratch('larch-remote-summary-'));
  const srv = join(dir, 'srv');
  const tree = join(dir, 'tree');
  await mkdir(tree, { recursive: true });
  await mkdir(srv, { recursive: true });
  await writeFile(join(tree, 'f'), 'hello\n');
  // A repository with a collection ID, a collection map, a version, a delta; and a signed copy.
  const repo = join(srv, 'repo');
  ok(ostree(['init', `--repo=${repo}`, '--mode=archive', '--collection-id=org.example.Main']));
  ok(ostree(['commit', `--repo=${repo}`, '-b', 'main', '-s', 'one', '--add-metadata-string=version=1.0', '--timestamp=2020-01-01 00:00:00 +0000', tree]));
  await writeFile(join(tree, 'g'), 'two\n');
  ok(ostree(['commit', `--repo=${repo}`, '-b', 'main', '-s', 'two', '--add-metadata-string=version=2.0', '--timestamp=2020-01-02 00:00:00 +0000', tree]));
  ok(ostree(['commit', `--repo=${repo}`, '-b', 'other/branch', '-s', 'o', '--timestamp=2020-01-03 00:00:00 +0000', tree]));
  ok(ostree(['refs', `--repo=${repo}`, '--collections', '--create=org.example.Other:mirrored', 'main']));
  ok(ostree(['static-delta', 'generate', `--repo=${repo}`, 'main']));
  ok(ostree(['summary', `--repo=${repo}`, '-u']));
  const gpgHome = join(dir, 'gpghome');
  await cp(GPG_HOME, gpgHome, { recursive: true });
  await chmod(gpgHome, 0o700);
  const signed = join(srv, 'signed');
  await cp(repo, signed, { recursive: true });
  // gpg starts an agent that outlives it and would hold captured output pipes open: no capture,
  // and the agent is stopped right after.
  const sign = spawnSync('ostree', ['summary', `--repo=${signed}`, '-u', `--gpg-sign=${GPG_KEY}`, `--gpg-homedir=${gpgHome}`], { stdio: 'ignore' });
  spawnSync('gpgconf', ['--homedir', gpgHome, '--kill', 'gpg-agent'], { stdio: 'ignore' });
  if (sign.status !== 0) throw new Error(`ostree summary --gpg-sign failed with status ${sign.status}`);
  httpd = await startTrivialHttpd(srv, join(dir, 'port'));
  // A server that answers every request with HTTP 500, in a process of its own: the tools run
  // synchronously, so a server in this process could never answer them.
  failing = spawn(process.execPath, ['-e', FAILING_SERVER], { stdio: ['ignore', 'pipe', 'ignore'] });
  const port = await new Promise<string>((res, rej) => {
    failing!.stdout!.setEncoding('utf8').once('data', (d: string) => res(d.trim()));
    failing!.once('exit', (code) => rej(new Error(`the HTTP 500 server exited with status ${code}`)));
  });
  failingUrl = `http://127.0.0.1:${port}/repo`;
});
afterAll(async () => {
  httpd?.stop();
  failing?.kill();
  await cleanup?.();
});

function repos(): Places {
  const i = n++;
  const places = { R: { ostree: join(dir, `o${i}`), larch: join(dir, `l${i}`) } };
  ok(ostree(['init', `--repo=${places.R.ostree}`, '--mode=archive']));
  ok(ostree(['init', `--repo=${places.R.larch}`, '--mode=archive']));
  return places;
}

describeInterop('remote refs and summary (against ostree)', () => {
  it('lists the remote refs and prints the summary, --raw included', () => {
    const p = repos();
    expectSame(['remote', 'add', '--repo={R}', '--no-gpg-verify', 'origin', `${httpd!.url}/repo`], p);
    expect(expectSame(['remote', 'refs', '--repo={R}', 'origin'], p).stdout).toBe('origin:main\norigin:ostree-metadata\norigin:other/branch\n');
    const summary = expectSame(['remote', 'summary', '--repo={R}', 'origin'], p).stdout;
    expect(summary).toContain('* (org.example.Main, main)\n    Latest Commit (');
    expect(summary).toContain('    Version (ostree.commit.version): 2.0\n');
    expect(summary).toContain('* (org.example.Other, mirrored)\n');
    expect(summary).toContain('Collection Map (ostree.summary.collection-map): (printed above)\n');
    expect(summary).toMatch(/^Static Deltas \(ostree\.static-deltas\): \{'[0-9a-f]{64}-[0-9a-f]{64}': <\[byte 0x/m);
    expect(expectSame(['remote', 'summary', '--raw', '--repo={R}', 'origin'], p).stdout).toMatch(/^\(\[\('main', \(uint64 /);
  });

  it('verifies a GPG-signed summary and prints its signatures', () => {
    const p = repos();
    expectSame(['remote', 'add', '--repo={R}', '--set=gpg-verify=false', '--set=gpg-verify-summary=true', `--gpg-import=${GPG_HOME}/key1.asc`, 'signed', `${httpd!.url}/signed`], p);
    const out = expectSame(['remote', 'summary', '--repo={R}', 'signed'], p).stdout;
    expect(out).toContain('\nGPG: Verification enabled, found 1 signature:\n\n  Signature made ');
    expect(out).toContain('  Good signature from "Ostree Tester <test@test.com>"\n');
    expectSame(['remote', 'refs', '--repo={R}', 'signed'], p);
    // No key: both refuse (ostree's gpgme text spans lines; Larch puts it on one).
    expectSame(['remote', 'add', '--repo={R}', '--set=gpg-verify-summary=true', 'nokey', `${httpd!.url}/signed`], p);
    const r = runBoth(['remote', 'refs', '--repo={R}', 'nokey'], p);
    expect([r.ostree.code, r.larch.code, r.larch.stdout]).toEqual([1, 1, '']);
    expect(r.larch.stderr).toMatch(/^error: Signature made .* using RSA key ID 7FCA23D8472CDAFA; Can't check signature: public key not found\n$/);
    // Unsigned summary, signatures required.
    expectSame(['remote', 'add', '--repo={R}', '--set=gpg-verify-summary=true', 'unsigned', `${httpd!.url}/repo`], p);
    expect(expectSame(['remote', 'summary', '--repo={R}', 'unsigned'], p).error).toBe(
      'error: GPG verification enabled, but no summary signatures found (use gpg-verify-summary=false in remote config to disable)',
    );
  });

  it('fails as ostree does without a summary, a URL, a server or a good answer', () => {
    const p = repos();
    expectSame(['remote', 'add', '--repo={R}', '--no-gpg-verify', 'nosummary', `${httpd!.url}/nothing-here`], p);
    expect(expectSame(['remote', 'refs', '--repo={R}', 'nosummary'], p).error).toBe('error: Remote refs not available; server has no summary file');
    expect(expectSame(['remote', 'summary', '--repo={R}', 'nosummary'], p).error).toBe('error: Remote server has no summary file');
    expectSame(['remote', 'add', '--repo={R}', '--custom-backend=ostree-rs-ext', 'fromcontainer'], p);
    expect(expectSame(['remote', 'refs', '--repo={R}', 'fromcontainer'], p).error).toBe('error: No "url" option in remote "fromcontainer"');
    expect(expectSame(['remote', 'refs', '--repo={R}', 'nosuch'], p).error).toBe('error: Remote "nosuch" not found');
    expectSame(['remote', 'add', '--repo={R}', '--no-gpg-verify', 'down', 'http://127.0.0.1:1/repo'], p);
    expect(expectSame(['remote', 'summary', '--repo={R}', 'down'], p).error).toBe("error: While fetching http://127.0.0.1:1/repo/summary.sig: [7] Couldn't connect to server");
    expectSame(['remote', 'add', '--repo={R}', '--no-gpg-verify', 'broken', failingUrl], p);
    expect(expectSame(['remote', 'refs', '--repo={R}', 'broken'], p).error).toBe('error: Server returned HTTP 500');
    expect(expectSame(['remote', 'refs', '--repo={R}', `--cache-dir=${join(dir, 'no-such-dir')}`, 'nosummary'], p).error).toBe(
      `error: opendir(${join(dir, 'no-such-dir')}): No such file or directory`,
    );
    expect(expectSame(['remote', 'summary', '--repo={R}'], p).error).toBe('error: NAME must be specified');
    // Larch does not fetch through a metalink (ostree does): it says so.
    ok(larch(['remote', 'add', `--repo=${p.R!.larch}`, 'ml', `metalink=${httpd!.url}/metalink.xml`]));
    expect(expectOneErrorLine(larch(['remote', 'refs', `--repo=${p.R!.larch}`, 'ml']))).toBe(
      `Remote "ml" is a metalink remote (metalink=${httpd!.url}/metalink.xml), which larch does not fetch from`,
    );
  });
});
