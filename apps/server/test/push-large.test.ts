/**
 * `larch push` of a Debian-sized tree (more than 5,000 files) to larch-server: interrupted by
 * SIGKILL halfway and resumed without resending, then a child commit that sends only the
 * changed objects — counted by the client (its --json result) and by the server (the
 * publisher's upload counters and the object files on disk).
 */
import { spawn } from 'node:child_process';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Repo, commitTree, fsck, traverseCommit } from '@larch/core-store';
import { larchCliPath, tmpDir, type TmpDir } from '@larch/test-fixtures';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openApiStack, startServer, type ApiStack, type RunningServer } from '../src/index.js';
import { removeFile, writeDebianTree } from './debian-tree.js';

const REF = 'debian/bookworm/x86_64';

async function countObjects(repoPath: string): Promise<number> {
  let n = 0;
  for (const d of await readdir(join(repoPath, 'objects'))) n += (await readdir(join(repoPath, 'objects', d))).length;
  return n;
}

async function objectKeys(repo: Repo, commit: string): Promise<Set<string>> {
  return new Set([...(await traverseCommit(repo, commit, { depth: 0 })).keys()].filter((k) => !k.endsWith('.commitmeta')));
}

interface PushRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  lines: Array<Record<string, unknown>>;
  stderr: string;
}

function larchPush(args: string[], killWhen?: () => boolean): Promise<PushRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [larchCliPath(), 'push', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    let timer: NodeJS.Timeout | undefined;
    if (killWhen) {
      timer = setInterval(() => {
        if (killWhen()) {
          clearInterval(timer);
          child.kill('SIGKILL');
        }
      }, 5);
    }
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (timer) clearInterval(timer);
      const lines = out
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      resolve({ code, signal, lines, stderr: err });
    });
  });
}

describe('larch push of a Debian-sized tree', () => {
  let dir: TmpDir;
  let stack: ApiStack;
  let server: RunningServer;
  let serverRepo: Repo;
  let local: Repo;
  let token: string;

  beforeAll(async () => {
    dir = await tmpDir('larch-push-large-');
    serverRepo = await Repo.init({ path: join(dir.path, 'server'), mode: 'archive' });
    local = await Repo.init({ path: join(dir.path, 'local'), mode: 'bare-user' });
    stack = await openApiStack({
      database: join(dir.path, 'state', 'larch-server.db'),
      repos: [{ prefix: '/', path: serverRepo.path, name: 'debian', publish: { deltas: { fromLast: 1, concurrency: 1 } } }],
    });
    server = await startServer({ repos: [{ prefix: '/', path: serverRepo.path }], port: 0, api: stack.api });
    token = stack.tokens.create({ repo: 'debian', refPrefix: 'debian/', rights: ['push', 'publish'], label: 'ci' }).token;
  }, 120_000);

  afterAll(async () => {
    await server?.shutdown(1000);
    await stack?.close();
    await dir?.cleanup();
  });

  it('resumes a killed push without resending, then sends only the changed objects of a child commit', async () => {
    const t1 = join(dir.path, 't1');
    await mkdir(t1);
    const files = await writeDebianTree(t1, 250);
    expect(files).toBeGreaterThanOrEqual(5000);
    const c1 = (await commitTree(local, { tree: t1, branch: REF, subject: 'bookworm 1', timestamp: 1_700_000_000n })).commit;
    const total1 = (await objectKeys(local, c1)).size;
    expect(total1).toBeGreaterThan(5000);

    // First push, killed once about 40 % of the objects are stored on the server.
    const args = [`--repo=${local.path}`, '--server-repo=debian', '--batch-bytes=65536', '--json', server.url, REF];
    const stats = () => stack.publisher.stats('debian');
    const killed = await larchPush([`--token=${token}`, ...args], () => stats().objectsStored >= total1 * 0.4);
    expect(killed.signal).toBe('SIGKILL');
    // Let the server finish the requests the kill broke off (it keeps their verified objects).
    let settled = -1;
    for (let i = 0; i < 100; i++) {
      await new Promise((r) => setTimeout(r, 100));
      const n = await countObjects(serverRepo.path);
      if (n === settled) break;
      settled = n;
    }
    const kept = await countObjects(serverRepo.path);
    expect(kept).toBeGreaterThanOrEqual(Math.floor(total1 * 0.4));
    expect(kept).toBeLessThan(total1);
    expect(await serverRepo.resolveRef(REF).catch(() => null)).toBeNull();

    // The re-run sends exactly what is still missing; the server receives no object twice.
    const before = stats();
    const rerun = await new Promise<PushRun>((resolve, reject) => {
      const child = spawn(process.execPath, [larchCliPath(), 'push', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LARCH_TOKEN: token } });
      let out = '';
      let err = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
      child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
      child.on('error', reject);
      child.on('exit', (code, signal) =>
        resolve({ code, signal, stderr: err, lines: out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>) }),
      );
    });
    expect(rerun.code, rerun.stderr).toBe(0);
    const result = rerun.lines.find((l) => l.event === 'result') as { objectsTotal: number; objectsMissing: number; objectsSent: number; job: { state: string } };
    expect(result.objectsTotal).toBe(total1);
    expect(result.objectsMissing).toBe(total1 - kept);
    expect(result.objectsSent).toBe(total1 - kept);
    expect(stats().objectsStored - before.objectsStored).toBe(total1 - kept);
    expect(stats().objectsPresent - before.objectsPresent).toBe(0);
    expect(result.job.state).toBe('succeeded');
    expect(await serverRepo.resolveRef(REF)).toBe(c1);
    expect(await countObjects(serverRepo.path)).toBe(total1);

    // A child commit: some packages updated, a few files added and removed.
    const t2 = join(dir.path, 't2');
    await mkdir(t2);
    await writeDebianTree(t2, 250, { version: 1, changed: (i) => i % 10 === 0 || i === -1 });
    await writeFile(join(t2, 'etc/new-config'), 'added\n');
    await mkdir(join(t2, 'usr/share/doc/newpkg'));
    await writeFile(join(t2, 'usr/share/doc/newpkg/copyright'), 'new package\n');
    for (const f of ['usr/share/man/man1/pkg0003.1.gz', 'usr/share/locale/de/LC_MESSAGES/pkg0004.mo']) await removeFile(t2, f);
    const c2 = (await commitTree(local, { tree: t2, branch: REF, subject: 'bookworm 2', timestamp: 1_700_086_400n })).commit;
    const old = await objectKeys(local, c1);
    const changed = [...(await objectKeys(local, c2))].filter((k) => !old.has(k));
    expect(changed.length).toBeGreaterThan(20);
    expect(changed.length).toBeLessThan(200);

    const b2 = stats();
    const second = await larchPush([`--token=${token}`, ...args]);
    expect(second.code, second.stderr).toBe(0);
    const r2 = second.lines.find((l) => l.event === 'result') as { objectsTotal: number; objectsSent: number; job: { state: string; deltas: string[] } };
    expect(r2.objectsSent).toBe(changed.length);
    expect(stats().objectsStored - b2.objectsStored).toBe(changed.length);
    expect(stats().objectsPresent - b2.objectsPresent).toBe(0);
    expect(await countObjects(serverRepo.path)).toBe(total1 + changed.length);
    expect(r2.job.state).toBe('succeeded');
    expect(r2.job.deltas).toEqual([`${c1}-${c2}`]);
    expect(await serverRepo.resolveRef(REF)).toBe(c2);
    const report = await fsck(serverRepo);
    expect(report.errors).toEqual([]);
    expect(report.commits).toBe(2);
  }, 600_000);
});
