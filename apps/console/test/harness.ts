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
import { fileURLToPath } from 'node:url';
import { makeBrowseFixture, type BrowseFixture } from '../../../packages/browse/test/fixture.js';
import { consoleDir } from '../node/index.js';

type ServerModule = typeof import('../../server/src/index.js');

const SERVER_DIST = fileURLToPath(new URL('../../server/dist/index.js', import.meta.url));

/** The repository of the fixture: the browse package's three-commit repo with both deltas. */
export { makeBrowseFixture as makeConsoleRepo };
export type ConsoleFixture = BrowseFixture;

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
