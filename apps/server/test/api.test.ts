/**
 * The server's /api/ and /console/ wiring: raw request targets with traversal are refused
 * before any handler runs, unknown API paths are JSON 404s, the handlers of the publisher, the
 * fleet and the read API all answer on one port next to the static repository, and the console
 * is served with its index.html fallback.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Repo, commitTree } from '@larch/core-store';
import { tmpDir, type TmpDir } from '@larch/test-fixtures';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PassThrough } from 'node:stream';
import { AccessLog, openApiStack, startServer, type ApiStack, type RunningServer } from '../src/index.js';
import { httpGet } from './support.js';

describe('server API wiring', () => {
  let dir: TmpDir;
  let stack: ApiStack;
  let server: RunningServer;
  let read: string;
  let commit: string;

  beforeAll(async () => {
    dir = await tmpDir('larch-server-api-');
    const repo = await Repo.init({ path: join(dir.path, 'repo'), mode: 'archive' });
    await mkdir(join(dir.path, 'tree'));
    await writeFile(join(dir.path, 'tree', 'hello'), 'hello\n');
    commit = (await commitTree(repo, { tree: join(dir.path, 'tree'), branch: 'os/main', subject: 'one', timestamp: 1_700_000_000n })).commit;
    const consoleDir = join(dir.path, 'console');
    await mkdir(join(consoleDir, 'assets'), { recursive: true });
    await writeFile(join(consoleDir, 'index.html'), '<!doctype html><title>console</title>');
    await writeFile(join(consoleDir, 'assets', 'app-1234.js'), 'console.log(1)');
    stack = await openApiStack({ database: join(dir.path, 'db', 'larch.db'), repos: [{ prefix: '/os/', path: repo.path, name: 'os' }] });
    server = await startServer({ repos: [{ prefix: '/os/', path: repo.path }], port: 0, api: stack.api, consoleDir });
    read = stack.tokens.create({ repo: 'os', rights: ['read'] }).token;
  });

  afterAll(async () => {
    await server?.shutdown(1000);
    await stack?.close();
    await dir?.cleanup();
  });

  it('refuses traversal in the raw target before any handler runs', async () => {
    for (const p of ['/api/v1/repos/os/../os/rollouts', '/api/v1/repos/os/%2e%2e/x', '/api/v1/repos/os/%2E%2E/x', '/api/v1/repos//os/rollouts', '/api/v1/repos/os/refs/a%2fb', '/api/v1/repos/os%5c..']) {
      const r = await httpGet(server.url, p, { headers: { authorization: `Bearer ${read}` } });
      expect(r.status, p).toBe(400);
      expect(JSON.parse(r.body.toString()).error.code, p).toMatch(/^invalid-/);
    }
  });

  it('answers unknown API paths with a JSON 404 and every handler on one port', async () => {
    const nope = await httpGet(server.url, '/api/v1/nothing');
    expect(nope.status).toBe(404);
    expect(JSON.parse(nope.body.toString())).toEqual({ error: { code: 'not-found', message: 'No API endpoint GET /api/v1/nothing' } });
    const auth = { headers: { authorization: `Bearer ${read}` } };
    // Publisher.
    const rollouts = await httpGet(server.url, '/api/v1/repos/os/rollouts', auth);
    expect(JSON.parse(rollouts.body.toString())).toEqual({ rollouts: [{ ref: 'os/main', percent: 100, paused: false, reason: null, updatedAt: null }] });
    expect((await httpGet(server.url, '/api/v1/repos/os/rollouts')).status).toBe(401);
    // Read API.
    const refs = await httpGet(server.url, '/api/v1/repos/os/refs', auth);
    expect(refs.status).toBe(200);
    expect(JSON.parse(refs.body.toString()).refs[0]).toMatchObject({ ref: 'os/main', commit });
    for (const list of ['/api/v1/repos', '/api/v1/repos/']) {
      const repos = await httpGet(server.url, list, auth);
      expect(repos.status, list).toBe(200);
      expect(JSON.parse(repos.body.toString())).toEqual({ repos: [{ name: 'os', mode: 'archive' }] });
    }
    // Fleet.
    const devices = await httpGet(server.url, '/api/v1/repos/os/devices', auth);
    expect(devices.status).toBe(200);
    expect(JSON.parse(devices.body.toString())).toEqual({ devices: [] });
    // The static repository is still served, and only GET/HEAD outside /api/.
    expect((await httpGet(server.url, '/os/refs/heads/os/main')).body.toString().trim()).toBe(commit);
    expect((await httpGet(server.url, '/os/config', { method: 'POST' })).status).toBe(405);
  });

  it('serves the console with an index.html fallback', async () => {
    const index = await httpGet(server.url, '/console/');
    expect(index.status).toBe(200);
    expect(index.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(index.body.toString()).toContain('<title>console</title>');
    expect((await httpGet(server.url, '/console/refs/os/main')).body.toString()).toContain('<title>console</title>');
    const asset = await httpGet(server.url, '/console/assets/app-1234.js');
    expect(asset.headers['cache-control']).toContain('immutable');
    expect((await httpGet(server.url, '/console/assets/missing.js')).status).toBe(404);
    expect((await httpGet(server.url, '/console/../os/config')).status).toBe(400);
    expect((await httpGet(server.url, '/console/%2e%2e/os/config')).status).toBe(400);
    expect((await httpGet(server.url, '/console')).status).toBe(308);
  });

  it('logs the size of JSON answers and of JSON errors', async () => {
    const out = new PassThrough();
    const lines: string[] = [];
    out.on('data', (b: Buffer) => lines.push(...b.toString().split('\n').filter(Boolean)));
    const log = AccessLog.toStream(out, 'json');
    const logged = await startServer({ repos: [{ prefix: '/os/', path: join(dir.path, 'repo') }], port: 0, api: stack.api, log });
    try {
      const ok = await httpGet(logged.url, '/api/v1/repos/os/rollouts', { headers: { authorization: `Bearer ${read}` } });
      const denied = await httpGet(logged.url, '/api/v1/repos/os/rollouts');
      await logged.shutdown(1000);
      await log.close();
      const entries = lines.map((l) => JSON.parse(l) as { status: number; bytes: number });
      expect(entries.map((e) => [e.status, e.bytes])).toEqual([
        [200, ok.body.length],
        [401, denied.body.length],
      ]);
      expect(ok.body.length).toBeGreaterThan(0);
    } finally {
      await logged.shutdown(1000);
    }
  });
});
