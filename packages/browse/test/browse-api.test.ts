import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Database } from '@larch/db';
import { assertSafeTarget, sendApiError, TokenStore } from '@larch/publish';
import { tmpDir, type TmpDir } from '@larch/test-fixtures';
import { createBrowseApi } from '../src/index.js';
import type { DeltasResponse, DiffResponse, LogResponse, RefsResponse, ReposResponse, TreeResponse } from '../src/index.js';
import { makeBrowseFixture, type BrowseFixture } from './fixture.js';

let tmp: TmpDir;
let fx: BrowseFixture;
let server: Server;
let base: string;
let db: Database;
const tok: Record<string, string> = {};

beforeAll(async () => {
  tmp = await tmpDir('larch-browse-api-');
  fx = await makeBrowseFixture(tmp.path);
  db = Database.open(':memory:');
  const tokens = new TokenStore(db);
  tok.read = tokens.create({ repo: 'os', rights: ['read'] }).token;
  tok.all = tokens.create({ repo: '*', rights: ['admin'] }).token;
  tok.other = tokens.create({ repo: 'other', rights: ['read'] }).token;
  tok.push = tokens.create({ repo: 'os', rights: ['push'] }).token;
  tok.apps = tokens.create({ repo: 'os', refPrefix: 'apps/', rights: ['read'] }).token;
  tok.os = tokens.create({ repo: 'os', refPrefix: 'os/', rights: ['read'] }).token;
  tok.expired = tokens.create({ repo: 'os', rights: ['read'], expiresAt: new Date(Date.now() - 1000) }).token;
  const api = createBrowseApi({ repos: [{ name: 'os', path: fx.repo.path }, { name: 'other', path: fx.repo.path }], tokens });
  // As larch-server does: the raw target is checked before the URL (which resolves dot segments) is built.
  server = createServer((req, res) => {
    try {
      assertSafeTarget(req.url ?? '/');
    } catch (e) {
      sendApiError(res, e);
      return;
    }
    const url = new URL(req.url ?? '/', 'http://localhost');
    api(req, res, url).then((mine) => {
      if (!mine) {
        res.writeHead(418);
        res.end('not mine');
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await new Promise((r) => server.close(r));
  db.close();
  await tmp.cleanup();
});

/** A raw GET, so that the target reaches the server byte for byte (fetch would normalise `..`). */
function get(target: string, token?: string, method = 'GET'): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const u = new URL(base);
    const req = request({ host: u.hostname, port: u.port, path: target, method, headers: token ? { authorization: `Bearer ${token}` } : {} }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let body: unknown = text;
        try {
          body = JSON.parse(text);
        } catch {
          /* not JSON */
        }
        resolve({ status: res.statusCode ?? 0, body });
      });
    });
    req.on('error', reject);
    req.end();
  });
}

describe('createBrowseApi', () => {
  it('lists the repositories the token can read', async () => {
    const all = await get('/api/v1/repos', tok.all);
    expect(all.status).toBe(200);
    expect((all.body as ReposResponse).repos).toEqual([
      { name: 'os', mode: 'archive' },
      { name: 'other', mode: 'archive' },
    ]);
    expect((await get('/api/v1/repos', tok.read)).body.repos.map((r: { name: string }) => r.name)).toEqual(['os']);
  });

  it('answers refs, log, tree, diff and deltas with the repository data', async () => {
    const refs = (await get('/api/v1/repos/os/refs', tok.read)).body as RefsResponse;
    expect(refs.refs.map((r) => [r.ref, r.commit, r.version])).toEqual([['os/main', fx.commits[2], '1.2']]);
    const log = (await get('/api/v1/repos/os/log/os/main?limit=2', tok.read)).body as LogResponse;
    expect(log.commits.map((c) => c.checksum)).toEqual([fx.commits[2], fx.commits[1]]);
    expect(log.truncated).toBe(true);
    const commit = (await get(`/api/v1/repos/os/commits/${fx.commits[0]}`, tok.read)).body;
    expect(commit).toEqual({ checksum: fx.commits[0], parent: null, timestamp: '2023-11-14T22:13:20.000Z', subject: 'First release', body: 'The base system.', version: '1.0' });
    const tree = (await get(`/api/v1/repos/os/commits/${fx.commits[1]}/tree?path=/usr/share/doc`, tok.read)).body as TreeResponse;
    expect(tree.entries.map((e) => [e.name, e.type, e.size])).toEqual([['readme', 'file', 9]]);
    const diff = (await get(`/api/v1/repos/os/commits/${fx.commits[2]}/diff`, tok.read)).body as DiffResponse;
    expect(diff.parent).toBe(fx.commits[1]);
    expect(diff.changes).toContainEqual({ path: '/usr/lib/libold.so', kind: 'removed' });
    const deltas = (await get('/api/v1/repos/os/deltas', tok.read)).body as DeltasResponse;
    expect(deltas.deltas.map((d) => d.from)).toEqual([null, fx.commits[1]]);
    expect(deltas.deltas.every((d) => typeof d.fullBytes === 'number' && d.deltaBytes > 0)).toBe(true);
  });

  it('refuses requests without a valid token or right with 401/403', async () => {
    expect((await get('/api/v1/repos/os/refs')).status).toBe(401);
    expect((await get('/api/v1/repos/os/refs', 'larch_bogus')).status).toBe(401);
    const expired = await get('/api/v1/repos/os/refs', tok.expired);
    expect(expired.status).toBe(401);
    expect(expired.body.error.code).toBe('token-expired');
    expect((await get('/api/v1/repos/os/refs', tok.other)).status).toBe(403);
    expect((await get('/api/v1/repos/os/refs', tok.push)).status).toBe(403);
    expect((await get('/api/v1/repos', undefined)).status).toBe(401);
  });

  it('limits a ref-prefix token to its refs', async () => {
    expect((await get('/api/v1/repos/os/refs', tok.apps)).body.refs).toEqual([]);
    expect((await get('/api/v1/repos/os/deltas', tok.apps)).body.deltas).toEqual([]);
    expect((await get('/api/v1/repos/os/log/os/main', tok.apps)).status).toBe(403);
    // Commits by checksum: only those in the history of the token's refs.
    for (const c of fx.commits) {
      for (const tail of ['', '/tree', '/diff']) {
        const hidden = await get(`/api/v1/repos/os/commits/${c}${tail}`, tok.apps);
        expect(hidden.status).toBe(404);
        expect(hidden.body.error.code).toBe('object-not-found');
        expect((await get(`/api/v1/repos/os/commits/${c}${tail}`, tok.os)).status).toBe(200);
      }
    }
  });

  it('validates ids, queries and paths', async () => {
    const bad = await get('/api/v1/repos/os/commits/XYZ/tree', tok.read);
    expect(bad.status).toBe(400);
    expect(bad.body.error.code).toBe('invalid-checksum');
    expect((await get(`/api/v1/repos/os/commits/${fx.commits[0].toUpperCase()}/diff`, tok.read)).status).toBe(400);
    expect((await get('/api/v1/repos/os/log/os/main?limit=0', tok.read)).body.error.code).toBe('invalid-query');
    expect((await get('/api/v1/repos/os/log/os/main?limit=5&limit=6', tok.read)).body.error.code).toBe('invalid-query');
    expect((await get('/api/v1/repos/os/refs?x=1', tok.read)).status).toBe(400);
    expect((await get('/api/v1/repos/os/refs?__proto__=1', tok.read)).status).toBe(400);
    expect((await get(`/api/v1/repos/os/commits/${fx.commits[0]}/tree?path=${'a'.repeat(5000)}`, tok.read)).body.error.code).toBe('invalid-query');
    expect((await get('/api/v1/repos/os/log/os/-bad', tok.read)).body.error.code).toBe('invalid-ref');
    const trav = await get(`/api/v1/repos/os/commits/${fx.commits[0]}/tree?path=/usr/../../etc`, tok.read);
    expect(trav.status).toBe(400);
    expect(trav.body.error.code).toBe('invalid-path');
    expect((await get('/api/v1/repos/os/log/os/%2e%2e/x', tok.read)).status).toBe(400);
    expect((await get('/api/v1/repos/os/log/os%2fmain', tok.read)).status).toBe(400);
  });

  it('answers 404 for what is absent', async () => {
    const none = '0'.repeat(64);
    expect((await get(`/api/v1/repos/os/commits/${none}/tree`, tok.read)).body.error.code).toBe('object-not-found');
    expect((await get('/api/v1/repos/os/log/os/none', tok.read)).body.error.code).toBe('ref-not-found');
    expect((await get(`/api/v1/repos/os/commits/${fx.commits[0]}/tree?path=/nope`, tok.read)).body.error.code).toBe('path-not-found');
    expect((await get('/api/v1/repos/nope/refs', tok.all)).body.error.code).toBe('repo-not-found');
  });

  it('answers only GET and HEAD, and leaves other paths to other handlers', async () => {
    expect((await get('/api/v1/repos/os/refs', tok.read, 'DELETE')).status).toBe(405);
    expect((await get('/api/v1/repos/os/refs', tok.read, 'HEAD')).status).toBe(200);
    expect((await get('/api/v1/repos/os/rollouts', tok.read)).status).toBe(418);
    expect((await get('/api/v1/repos/b@d/rollouts', tok.read)).status).toBe(418);
    expect((await get('/api/v1/health', tok.read)).status).toBe(418);
  });

  it('refuses an encoded traversal in the tree path', async () => {
    const r = await get(`/api/v1/repos/os/commits/${fx.commits[0]}/tree?path=${encodeURIComponent('../../outside')}`, tok.read);
    expect(r.status).toBe(400);
    expect(r.body.error.code).toBe('invalid-path');
  });
});
