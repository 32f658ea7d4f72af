/**
 * The server the console tests drive, and its fixture.
 *
 * Fixture: an archive repository `os` with ref `os/main` of three commits (1.0, 1.1, 1.2), static
 * deltas scratch→1.2 and 1.1→1.2, a rollout of 50% ("canary"), and three devices that checked in
 * through the fleet's check-in endpoint.
 *
 * Server: larch-server itself (`startServer` with the API stack of `openApiStack` and the built
 * console at /console/), with the repository mounted at /os/, where agents read its summary.
 * @larch/server depends on @larch/console (for `consoleDir()`), so the console cannot declare the
 * dependency back without a cycle; the tests load the built server from apps/server/dist, which
 * exists whenever the workspace is built (`pnpm turbo run build --filter=@larch/server...`).
 */
import { existsSync } from 'node:fs';
import { mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { commitTree, Repo, type Checksum } from '@larch/core-store';
import { generateDelta } from '@larch/delta';
import { Variant } from '@larch/gvariant';
import { consoleDir } from '../node/index.js';

type ServerModule = typeof import('../../server/src/index.js');

const SERVER_DIST = fileURLToPath(new URL('../../server/dist/index.js', import.meta.url));

export interface ConsoleFixture {
  repo: Repo;
  commits: [Checksum, Checksum, Checksum];
}

/** A symbol table of `n` lines, a stand-in for a library that changes a little between releases. */
function symbols(n: number, changed: number[] = []): string {
  const lines: string[] = [];
  for (let i = 0; i < n; i++) {
    const addr = ((i * 2654435761) >>> 0) ^ (changed.includes(i) ? 0xffff : 0);
    lines.push(`sym_${String(i).padStart(5, '0')} = 0x${addr.toString(16).padStart(8, '0')}`);
  }
  return `${lines.join('\n')}\n`;
}

async function put(root: string, rel: string, content: string): Promise<void> {
  await mkdir(join(root, rel, '..'), { recursive: true });
  await writeFile(join(root, rel), content);
}

/** The repository of the fixture (see the file comment). */
export async function makeConsoleRepo(dir: string): Promise<ConsoleFixture> {
  const repo = await Repo.init({ path: join(dir, 'repo'), mode: 'archive' });
  const tree = join(dir, 'tree');
  await put(tree, 'etc/os-release', 'NAME=Larch\nVERSION=1.0\n');
  await put(tree, 'usr/bin/hello', '#!/bin/sh\necho hello\n');
  await put(tree, 'usr/lib/libsym.so', symbols(6000));
  await put(tree, 'usr/lib/libold.so', 'old library '.repeat(4000));
  await symlink('usr/bin', join(tree, 'bin'));
  const meta = (v: string): Array<[string, Variant]> => [['version', new Variant('s', v)]];
  const c1 = await commitTree(repo, { tree, branch: 'os/main', subject: 'First release', body: 'The base system.', timestamp: 1_700_000_000n, metadata: meta('1.0') });
  await put(tree, 'etc/os-release', 'NAME=Larch\nVERSION=1.1\n');
  await put(tree, 'usr/share/doc/readme', 'Read me.\n');
  const c2 = await commitTree(repo, { tree, branch: 'os/main', subject: 'Add documentation', timestamp: 1_700_086_400n, metadata: meta('1.1') });
  await rm(join(tree, 'usr/lib/libold.so'));
  await put(tree, 'usr/bin/hello', '#!/bin/sh\necho hello, world\n');
  await put(tree, 'usr/lib/libsym.so', symbols(6000, [10, 2000, 4000]));
  const c3 = await commitTree(repo, { tree, branch: 'os/main', subject: 'Drop the old library', timestamp: 1_700_172_800n, metadata: meta('1.2') });
  await generateDelta(repo, { from: null, to: c3.commit, minFallbackSize: 0 });
  await generateDelta(repo, { from: c2.commit, to: c3.commit, minFallbackSize: 0 });
  return { repo, commits: [c1.commit, c2.commit, c3.commit] };
}

export interface ConsoleServer {
  url: string;
  /** URL of the repository as served (`${url}os/`). */
  repoUrl: string;
  adminToken: string;
  readToken: string;
  /** Post a check-in for `deviceId` (fields over a default idle report of os/main). */
  checkIn(deviceId: string, body: Record<string, unknown>): Promise<void>;
  close(): Promise<void>;
}

/** Start larch-server on a free loopback port, with the fixture's rollout and devices. */
export async function startConsoleServer(fx: ConsoleFixture): Promise<ConsoleServer> {
  if (!existsSync(SERVER_DIST)) throw new Error(`larch-server is not built (${SERVER_DIST}): run pnpm turbo run build --filter=@larch/server...`);
  const { openApiStack, startServer } = (await import(SERVER_DIST)) as ServerModule;
  const repos = [{ prefix: '/os/', path: fx.repo.path, name: 'os' }];
  const stack = await openApiStack({ database: ':memory:', repos });
  const running = await startServer({ repos, port: 0, api: stack.api, consoleDir: consoleDir() });
  const url = running.url;
  const adminToken = stack.tokens.create({ label: 'console admin', repo: 'os', rights: ['admin'] }).token;
  const readToken = stack.tokens.create({ label: 'console viewer', repo: 'os', rights: ['read'] }).token;

  await stack.publisher.setRollout('os', 'os/main', { percent: 50, reason: 'canary' });
  const [c1, c2, c3] = fx.commits;
  const checkIn = async (deviceId: string, body: Record<string, unknown>): Promise<void> => {
    const r = await fetch(`${url}api/v1/repos/os/devices/${deviceId}/check-in`, {
      method: 'POST',
      headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        deviceId,
        time: new Date().toISOString(),
        degraded: false,
        ref: 'os/main',
        badCommits: [],
        lastError: null,
        counters: { checks: 1, bytesFetched: 0, failures: 0, updates: 0, rollbacks: 0 },
        ...body,
      }),
    });
    if (r.status !== 204) throw new Error(`check-in of ${deviceId}: ${r.status} ${await r.text()}`);
  };
  await checkIn('edge-001', {
    phase: 'idle',
    booted: { commit: c3, deployment: 'larch-os.0', version: '1.2' },
    target: null,
    health: [{ name: 'boot-ok', kind: 'required', ok: true }],
  });
  await checkIn('edge-002', {
    phase: 'stage',
    booted: { commit: c2, deployment: 'larch-os.0', version: '1.1' },
    target: { commit: c3, version: '1.2' },
    health: [{ name: 'boot-ok', kind: 'required', ok: true }, { name: 'network', kind: 'wanted', ok: false }],
  });
  await checkIn('edge-003', {
    phase: 'rollback',
    degraded: true,
    booted: { commit: c1, deployment: 'larch-os.1', version: '1.0' },
    target: { commit: c3, version: '1.2' },
    badCommits: [c3],
    lastError: { phase: 'confirm', code: 'HEALTH_CHECK_FAILED', message: 'required check app-starts failed' },
    health: [{ name: 'app-starts', kind: 'required', ok: false }],
  });
  await stack.fleet.flush();

  return {
    url,
    repoUrl: `${url}os/`,
    adminToken,
    readToken,
    checkIn,
    async close() {
      await running.shutdown(2000);
      await stack.close();
    },
  };
}
