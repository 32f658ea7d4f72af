/**
 * The publish pipeline against the real OSTree: larch-server (a child process, configured
 * with a GnuPG key made for the test) receives two `larch push`es; the real `ostree pull`, with
 * `gpg-verify=true` and `gpg-verify-summary=true` and the public key imported, takes the second
 * commit through the generated static delta — the server's access log shows the delta
 * requests and no file or tree object requests — and `ostree fsck` is clean. A rollout change then shows up
 * in the summary OSTree reads.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Repo, commitTree } from '@larch/core-store';
import { interopDescribe, larchOk, ostreeOk, tmpDir, type TmpDir } from '@larch/test-fixtures';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SERVER_MAIN, startServerProcess, type ServerProcess } from './support.js';

const REF = 'exampleos/x86_64/stable';

function ok(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout;
}

async function writeTree(root: string, version: number): Promise<void> {
  await mkdir(join(root, 'usr/bin'), { recursive: true });
  await mkdir(join(root, 'usr/lib'), { recursive: true });
  await mkdir(join(root, 'etc'), { recursive: true });
  for (let i = 0; i < 40; i++) await writeFile(join(root, 'usr/lib', `lib${i}.so`), `library ${i} ${i % 8 === 0 ? version : 0}\n`.repeat(200 + i));
  await writeFile(join(root, 'usr/bin/app'), `#!/bin/sh\necho app ${version}\n`, { mode: 0o755 });
  await writeFile(join(root, 'etc/os-release'), `VERSION_ID=${version}\n`);
}

function accessLog(file: string): Array<{ method: string; path: string; status: number }> {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { method: string; path: string; status: number });
}

/** The access log once the server has written everything (its writes are asynchronous). */
async function settledLog(file: string): Promise<Array<{ method: string; path: string; status: number }>> {
  let last = -1;
  for (;;) {
    const entries = accessLog(file);
    if (entries.length === last) return entries;
    last = entries.length;
    await new Promise((r) => setTimeout(r, 300));
  }
}

interopDescribe(describe)('publish with GPG, pulled by the real ostree through a delta', () => {
  let dir: TmpDir;
  let home: string;
  let keyId: string;
  let server: ServerProcess | undefined;

  beforeAll(() => {
    home = '';
  });
  afterAll(async () => {
    await server?.stop();
    if (home !== '') spawnSync('gpgconf', ['--homedir', home, '--kill', 'gpg-agent']);
    await dir?.cleanup();
  });

  it('signs, generates deltas, and serves them to ostree pull with gpg-verify', async () => {
    dir = await tmpDir('larch-publish-interop-');
    home = join(dir.path, 'gnupg');
    mkdirSync(home, { mode: 0o700 });
    ok('gpg', ['--homedir', home, '--batch', '--passphrase', '', '--quick-gen-key', 'Larch Publisher <publish@example.com>', 'ed25519', 'sign', 'never']);
    keyId = /^pub:[^:]*:[^:]*:[^:]*:([0-9A-F]{16}):/m.exec(ok('gpg', ['--homedir', home, '--list-keys', '--with-colons']))![1];
    const pubAsc = join(dir.path, 'pub.asc');
    writeFileSync(pubAsc, ok('gpg', ['--homedir', home, '--armor', '--export', keyId]));

    const serverRepo = await Repo.init({ path: join(dir.path, 'server'), mode: 'archive' });
    const db = join(dir.path, 'state', 'larch-server.db');
    const log = join(dir.path, 'access.log');
    const config = join(dir.path, 'server.json');
    writeFileSync(
      config,
      JSON.stringify({
        port: 0,
        database: db,
        repos: [{ prefix: '/', path: serverRepo.path, name: 'os', publish: { gpg: { homedir: home, keyId }, deltas: { fromLast: 2, concurrency: 1 } } }],
      }),
    );
    const tokenOut = ok(process.execPath, [SERVER_MAIN, 'token', 'create', `--database=${db}`, '--repo=os', '--ref-prefix=exampleos/', '--rights=push,publish', '--label=ci', '--json']);
    const pushToken = (JSON.parse(tokenOut) as { token: string }).token;
    const adminToken = ok(process.execPath, [SERVER_MAIN, 'token', 'create', `--database=${db}`, '--repo=os', '--rights=admin']).trim();
    expect(ok(process.execPath, [SERVER_MAIN, 'token', 'list', `--database=${db}`])).toContain('"ci"');

    server = await startServerProcess([`--config=${config}`, `--access-log=${log}`, '--log-format=json']);
    const url = server.url;

    // First commit.
    const local = await Repo.init({ path: join(dir.path, 'local'), mode: 'bare-user' });
    await writeTree(join(dir.path, 't1'), 1);
    const c1 = (await commitTree(local, { tree: join(dir.path, 't1'), branch: REF, subject: 'one', timestamp: 1_700_000_000n })).commit;
    const push1 = await larchOk(['push', `--repo=${local.path}`, `--token=${pushToken}`, '--server-repo=os', url, REF]);
    expect(push1.stdout).toContain(`${REF} => ${c1}`);
    expect(push1.stdout).toContain('succeeded');

    const client = join(dir.path, 'client');
    await ostreeOk(['init', `--repo=${client}`, '--mode=bare-user']);
    await ostreeOk(['remote', 'add', `--repo=${client}`, '--set=gpg-verify=true', '--set=gpg-verify-summary=true', `--gpg-import=${pubAsc}`, 'origin', url]);
    await ostreeOk(['pull', `--repo=${client}`, 'origin', REF]);
    expect((await ostreeOk(['rev-parse', `--repo=${client}`, `origin:${REF}`])).stdout.trim()).toBe(c1);
    // The commit carries the publisher's signature.
    expect((await ostreeOk(['show', `--repo=${client}`, c1])).stdout).toContain(keyId);

    // Second commit: a delta from the first is generated by the publish job.
    await writeTree(join(dir.path, 't2'), 2);
    const c2 = (await commitTree(local, { tree: join(dir.path, 't2'), branch: REF, subject: 'two', timestamp: 1_700_086_400n })).commit;
    const push2 = await larchOk(['push', `--repo=${local.path}`, '--server-repo=os', '--json', url, REF], { env: { ...process.env, LARCH_TOKEN: pushToken } });
    const result = push2.stdout
      .split('\n')
      .filter((l) => l.includes('"event":"result"'))
      .map((l) => JSON.parse(l) as { job: { deltas: string[]; state: string } })[0];
    expect(result.job.state).toBe('succeeded');
    expect(result.job.deltas).toEqual([`${c1}-${c2}`]);

    // OSTree 2022.7 writes a delta's commit and scans it while the delta part is still being
    // fetched and applied, so a one-step pull races and fetches some of the part's objects loose
    // (it does so with deltas made by `ostree static-delta generate` as well). Fetching the commit
    // first (metadata only: the commit and its signature) removes the race: the pull that
    // follows takes the tree from the delta alone.
    const seen = (await settledLog(log)).length;
    await ostreeOk(['pull', `--repo=${client}`, '--commit-metadata-only', 'origin', REF]);
    const meta = (await settledLog(log)).slice(seen).map((r) => r.path);
    expect(meta.filter((p) => p.startsWith('/objects/')).every((p) => p.endsWith('.commit') || p.endsWith('.commitmeta')), meta.join('\n')).toBe(true);
    const seen2 = (await settledLog(log)).length;
    const pulled = await ostreeOk(['pull', `--repo=${client}`, 'origin', REF]);
    expect(pulled.stdout).toContain('1 delta parts');
    const requests = (await settledLog(log)).slice(seen2);
    const paths = requests.map((r) => r.path);
    expect(paths.some((p) => /^\/deltas\/[^/]+\/[^/]+\/superblock$/.test(p)), paths.join('\n')).toBe(true);
    expect(paths.some((p) => /^\/deltas\/[^/]+\/[^/]+\/\d+$/.test(p)), paths.join('\n')).toBe(true);
    expect(paths.filter((p) => p.startsWith('/objects/')), paths.join('\n')).toEqual([]);
    expect(requests.every((r) => r.status === 200 || r.status === 304), paths.join('\n')).toBe(true);
    expect((await ostreeOk(['rev-parse', `--repo=${client}`, `origin:${REF}`])).stdout.trim()).toBe(c2);
    await ostreeOk(['fsck', `--repo=${client}`]);

    // Rollout: the summary OSTree fetches (and verifies) carries the new percentage.
    const put = await fetch(`${url}api/v1/repos/os/rollouts/${REF}`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ percent: 30 }),
    });
    expect(put.status).toBe(200);
    const view = (await ostreeOk(['summary', '--view', `--repo=${serverRepo.path}`])).stdout;
    expect(view).toMatch(/larch\.rollout: \{'exampleos\/x86_64\/stable': <uint32 30>\}/);
    // The client still verifies the re-signed summary.
    expect((await ostreeOk(['remote', 'refs', `--repo=${client}`, 'origin'])).stdout).toContain(`origin:${REF}`);
  }, 300_000);
});
