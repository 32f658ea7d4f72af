import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tmpDir, type TmpDir } from '@larch/test-fixtures';
import { SAMPLE_TREE, httpGet, makeLarchRepo, rawRequest, startServerProcess, type ServerProcess } from './support.js';

const hasStrace = spawnSync('strace', ['-V'], { stdio: 'ignore' }).status === 0;

let tmp: TmpDir;
let server: ServerProcess;
let repo: string;
let outside: string;
let commit: string;
const secret = `LARCH-SENTINEL-${randomBytes(12).toString('hex')}`;
const tmpSecret = `LARCH-TMP-SECRET-${randomBytes(12).toString('hex')}`;
const fakeObject = `objects/ab/${'c'.repeat(62)}.commit`;

beforeAll(async () => {
  tmp = await tmpDir('larch-server-safety-');
  outside = tmp.join('outside');
  await mkdir(outside);
  await writeFile(join(outside, 'sentinel'), `${secret}\n`);
  spawnSync('mkfifo', [join(outside, 'fifo')]);
  repo = tmp.join('repo');
  commit = await makeLarchRepo(repo, SAMPLE_TREE, 'main');
  // Hostile content inside the served repository.
  await symlink('../../../outside/sentinel', join(repo, 'refs/heads/evil'));
  await symlink(join(outside, 'sentinel'), join(repo, 'refs/heads/evil-abs'));
  await symlink(join(outside, 'fifo'), join(repo, 'refs/heads/fifo'));
  await mkdir(join(repo, 'objects/ab'), { recursive: true });
  await symlink('../../../outside/sentinel', join(repo, fakeObject));
  await symlink('../../outside', join(repo, 'extensions/evil'));
  await writeFile(join(repo, 'tmp/secret'), `${tmpSecret}\n`);
  await symlink('../../tmp/secret', join(repo, 'refs/heads/totmp'));
  await symlink('main', join(repo, 'refs/heads/alias'));
  server = await startServerProcess([`--repo=${repo}`, '--port=0', `--access-log=${tmp.join('access.log')}`], {
    wrapper: hasStrace ? ['strace', '-f', '-qq', '-e', 'trace=open,openat,openat2,creat', '-o', tmp.join('trace')] : undefined,
  });
});

afterAll(async () => {
  await server?.stop();
  await tmp?.cleanup();
});

const rawTargets = (): string[] => [
  '/../outside/sentinel',
  '/../../../../../../etc/passwd',
  '/%2e%2e/outside/sentinel',
  '/%2E%2E/%2E%2E/outside/sentinel',
  '/objects/../../outside/sentinel',
  '/objects/%2F..',
  '/objects/%2F..%2F..%2Foutside%2Fsentinel',
  '/refs/heads/..%2f..%2f..%2foutside%2fsentinel',
  '/refs/heads/..%5c..%5c..%5coutside%5csentinel',
  '/refs\\heads\\..\\..\\..\\outside\\sentinel',
  '/refs/heads/main%00.txt',
  '//etc/passwd',
  '/./config/../../outside/sentinel',
  `${outside}/sentinel`,
  '/refs/heads/evil',
  '/refs/heads/evil-abs',
  '/refs/heads/fifo',
  `/${fakeObject}`,
  '/extensions/evil/sentinel',
  '/refs/heads/totmp',
  '/tmp/secret',
  '/state/',
  '/refs/heads/main.lock',
  '/origin.trustedkeys.gpg',
];

describe('larch-server path safety', () => {
  it('answers every traversal attempt with 400 or 404 and never the sentinel', async () => {
    for (const target of rawTargets()) {
      const res = await rawRequest(server.url, `GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(res)?.[1]);
      expect([400, 404], `${target} → ${res.split('\r\n')[0]}`).toContain(status);
      expect(res).not.toContain(secret);
      expect(res).not.toContain(tmpSecret);
      expect(res).not.toMatch(/root:x:0/);
    }
  });

  it('does not follow a symlink swapped in for an object it has cached', async () => {
    const p = `objects/${commit.slice(0, 2)}/${'d'.repeat(62)}.dirmeta`;
    await writeFile(join(repo, p), 'cached object');
    expect((await httpGet(server.url, `/${p}`)).body.toString()).toBe('cached object');
    await rm(join(repo, p));
    await symlink(join(outside, 'sentinel'), join(repo, p));
    const r = await httpGet(server.url, `/${p}`);
    expect(r.status).toBe(404);
    expect(r.body.toString()).not.toContain(secret);
  });

  it('refuses absolute-form targets', async () => {
    const res = await rawRequest(server.url, `GET http://127.0.0.1/../outside/sentinel HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    expect(res).toMatch(/^HTTP\/1\.1 40[04]/);
  });

  it('still follows a ref alias that stays inside the repository', async () => {
    const r = await httpGet(server.url, '/refs/heads/alias');
    expect(r.status).toBe(200);
    expect(r.body.toString()).toBe(`${commit}\n`);
  });

  it('logs every refused request', async () => {
    // The log is written in batches: wait until the refused requests are all in it.
    const wanted = ['/refs/heads/evil', '/refs/heads/fifo', '/%2e%2e/outside/sentinel'];
    let lines: Array<{ status: number; path: string }> = [];
    for (;;) {
      const text = await readFile(tmp.join('access.log'), 'utf8').catch(() => '');
      lines = text.split('\n').filter((l) => l.endsWith('}')).map((l) => JSON.parse(l) as { status: number; path: string });
      if (wanted.every((t) => lines.some((x) => x.path === t))) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    for (const t of ['/refs/heads/evil', '/refs/heads/fifo', '/%2e%2e/outside/sentinel']) {
      const l = lines.find((x) => x.path === t);
      expect(l, t).toBeDefined();
      expect([400, 404]).toContain(l!.status);
    }
  });

  it.skipIf(!hasStrace)('never opens anything outside the repository (strace)', async () => {
    await server.stop('SIGTERM');
    const trace = await readFile(tmp.join('trace'), 'utf8');
    // The trace is live: the alias request opened the ref it points to.
    expect(trace).toContain(join(repo, 'refs/heads/main'));
    const opened = trace.split('\n').filter((l) => l.includes(outside) || l.includes(join(repo, 'tmp/secret')));
    expect(opened).toEqual([]);
  });
});
