/**
 * `larch push` against a running larch-server (a child process with --database): the token from
 * --token or $LARCH_TOKEN, text and --json output, a second push that sends nothing, and
 * one-line errors for a missing token, a token scoped to another ref prefix, a bad URL.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOneErrorLine, larch, makeChangedTree, makeSpecTree, ok, scratch } from './helpers.js';

const SERVER = resolve(fileURLToPath(new URL('.', import.meta.url)), '../../server/dist/main.js');
const REF = 'exampleos/stable';

function serverCli(args: string[]): string {
  const r = spawnSync(process.execPath, [SERVER, ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`larch-server ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

describe('larch push', () => {
  let s: { dir: string; cleanup: () => Promise<void> };
  let proc: ChildProcess;
  let url: string;
  let token: string;
  let narrow: string;
  const serverRepo = () => join(s.dir, 'server');
  const local = () => join(s.dir, 'local');

  beforeAll(async () => {
    s = await scratch('larch-cli-push-');
    ok(larch(['init', `--repo=${serverRepo()}`, '--mode=archive']));
    ok(larch(['init', `--repo=${local()}`, '--mode=bare-user']));
    const db = join(s.dir, 'larch-server.db');
    token = serverCli(['token', 'create', `--database=${db}`, '--repo=default', '--ref-prefix=exampleos/', '--rights=push,publish']).trim();
    narrow = serverCli(['token', 'create', `--database=${db}`, '--repo=default', '--ref-prefix=otheros/', '--rights=push,publish']).trim();
    proc = spawn(process.execPath, [SERVER, `--repo=${serverRepo()}`, `--database=${db}`, '--port=0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    url = await new Promise<string>((res, rej) => {
      let out = '';
      let err = '';
      proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
      proc.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        const m = /^Serving .* at (http:\/\/\S+)$/m.exec(out);
        if (m) res(m[1]);
      });
      proc.on('exit', (code) => rej(new Error(`larch-server exited ${code}: ${err}`)));
    });
  }, 60_000);

  afterAll(async () => {
    if (proc && proc.exitCode === null) {
      const exited = new Promise((r) => proc.on('exit', r));
      proc.kill('SIGTERM');
      await exited;
    }
    await s?.cleanup();
  });

  it('pushes a commit, prints what it sent, and sends nothing the second time', async () => {
    const tree = await makeSpecTree(join(s.dir, 'tree1'));
    const commit = ok(larch(['commit', `--repo=${local()}`, '-b', REF, '-s', 'one', `--tree=dir=${tree}`])).trim();
    const r = larch(['push', `--repo=${local()}`, url, REF], { env: { LARCH_TOKEN: token } });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^(\\d+) of \\1 objects uploaded .*; ${REF} => ${commit}: publish job \\d+ succeeded\\n$`));
    expect(readFileSync(join(serverRepo(), 'refs/heads', REF), 'utf8').trim()).toBe(commit);

    const again = larch(['push', `--repo=${local()}`, `--token=${token}`, '--json', url, REF]);
    expect(again.code, again.stderr).toBe(0);
    const lines = again.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.every((l) => l.event === 'progress' || l.event === 'result')).toBe(true);
    expect(lines.at(-1)).toMatchObject({ event: 'result', commit, objectsMissing: 0, objectsSent: 0, job: { state: 'succeeded' } });
    expect(JSON.stringify(lines)).not.toContain(token);

    const tree2 = await makeChangedTree(join(s.dir, 'tree2'));
    const c2 = ok(larch(['commit', `--repo=${local()}`, '-b', REF, '-s', 'two', `--tree=dir=${tree2}`])).trim();
    const third = larch(['push', `--repo=${local()}`, `--token=${token}`, '--json', '--batch-bytes=2048', '--concurrency=1', url, REF]);
    expect(third.code, third.stderr).toBe(0);
    const result = JSON.parse(third.stdout.trim().split('\n').at(-1)!) as { commit: string; objectsSent: number; objectsTotal: number; job: { deltas: string[] } };
    expect(result.commit).toBe(c2);
    expect(result.objectsSent).toBeGreaterThan(0);
    expect(result.objectsSent).toBeLessThan(result.objectsTotal);
    expect(result.job.deltas).toEqual([`${commit}-${c2}`]);
  });

  it('fails with one error line', () => {
    expect(expectOneErrorLine(larch(['push', `--repo=${local()}`, url, REF], { env: { LARCH_TOKEN: undefined } }))).toBe('No token: pass --token=TOKEN or set LARCH_TOKEN');
    expect(expectOneErrorLine(larch(['push', `--repo=${local()}`, `--token=${narrow}`, url, REF]))).toMatch(/^Server refused POST \/api\/v1\/repos\/default\/refs\/exampleos\/stable: Token [0-9a-f]+ is limited to refs starting with 'otheros\/'/);
    expect(expectOneErrorLine(larch(['push', `--repo=${local()}`, '--token=larch_bogus', url, REF]))).toContain('Unknown or revoked token');
    expect(expectOneErrorLine(larch(['push', `--repo=${local()}`, `--token=${token}`, 'ftp://example.com/', REF]))).toContain('only http and https');
    expect(expectOneErrorLine(larch(['push', `--repo=${local()}`, `--token=${token}`, '--server-repo=nope', url, REF]))).toContain('No repository named nope');
    expect(expectOneErrorLine(larch(['push', `--repo=${local()}`, `--token=${token}`, url, 'no/such/ref']))).toMatch(/no\/such\/ref/);
  });
});
