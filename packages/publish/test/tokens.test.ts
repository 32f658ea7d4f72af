import type { IncomingMessage } from 'node:http';
import { Database } from '@larch/db';
import { describe, expect, it } from 'vitest';
import { ApiError, TokenStore, assertSafeTarget, parseExpiry, parseRepoPath } from '../src/index.js';

function req(token?: string): IncomingMessage {
  return { headers: token === undefined ? {} : { authorization: `Bearer ${token}` } } as unknown as IncomingMessage;
}

function status(fn: () => unknown): [number, string] {
  try {
    fn();
  } catch (e) {
    if (e instanceof ApiError) return [e.status, e.apiCode];
    throw e;
  }
  return [200, 'ok'];
}

describe('TokenStore', () => {
  it('stores only the hash and authorizes by scope', () => {
    const db = Database.open(':memory:');
    const store = new TokenStore(db);
    const { token, record } = store.create({ repo: 'os', refPrefix: 'exampleos/', rights: ['push', 'publish'], label: 'ci' });
    expect(token).toMatch(/^larch_[A-Za-z0-9_-]{43}$/);
    const raw = JSON.stringify(db.all('SELECT * FROM publish_tokens'));
    expect(raw).not.toContain(token);
    expect(record.rights).toEqual(['push', 'publish']);

    expect(store.authorize(req(token), { repo: 'os', right: 'push', ref: 'exampleos/x86_64/stable' }).id).toBe(record.id);
    expect(status(() => store.authorize(req(), { repo: 'os', right: 'push' }))).toEqual([401, 'unauthorized']);
    expect(status(() => store.authorize(req('larch_nope'), { repo: 'os', right: 'push' }))).toEqual([401, 'invalid-token']);
    expect(status(() => store.authorize(req(token), { repo: 'other', right: 'push' }))).toEqual([403, 'forbidden']);
    expect(status(() => store.authorize(req(token), { repo: 'os', right: 'admin' }))).toEqual([403, 'forbidden']);
    expect(status(() => store.authorize(req(token), { repo: 'os', right: 'push', ref: 'otheros/main' }))).toEqual([403, 'forbidden']);

    expect(store.list().map((r) => r.id)).toEqual([record.id]);
    expect(store.revoke(record.id)).toBe(true);
    expect(store.revoke(record.id)).toBe(false);
    expect(store.list()).toEqual([]);
    expect(status(() => store.authorize(req(token), { repo: 'os', right: 'push' }))).toEqual([401, 'invalid-token']);
  });

  it('refuses expired tokens, binds device tokens, lets admin do everything', () => {
    let now = new Date('2026-01-01T00:00:00Z');
    const store = new TokenStore(Database.open(':memory:'), () => now);
    const { token } = store.create({ repo: '*', rights: ['read'], expiresAt: parseExpiry('1h', now) });
    expect(status(() => store.authorize(req(token), { repo: 'any', right: 'read' }))).toEqual([200, 'ok']);
    now = new Date('2026-01-01T01:00:01Z');
    expect(status(() => store.authorize(req(token), { repo: 'any', right: 'read' }))).toEqual([401, 'token-expired']);

    const dev = store.create({ repo: 'os', rights: ['checkin'], deviceId: 'dev-1' }).token;
    expect(status(() => store.authorize(req(dev), { repo: 'os', right: 'checkin', deviceId: 'dev-1' }))).toEqual([200, 'ok']);
    expect(status(() => store.authorize(req(dev), { repo: 'os', right: 'checkin', deviceId: 'dev-2' }))).toEqual([403, 'forbidden']);
    const admin = store.create({ repo: 'os', rights: ['admin'] }).token;
    expect(status(() => store.authorize(req(admin), { repo: 'os', right: 'publish', ref: 'a/b' }))).toEqual([200, 'ok']);
    expect(() => store.create({ repo: '../x', rights: ['read'] })).toThrow();
    expect(() => store.create({ repo: 'os', rights: [] })).toThrow();
  });
});

describe('paths', () => {
  it('parses repo paths and refuses traversal', () => {
    expect(parseRepoPath(new URL('http://h/api/v1/repos/os/refs/a/b'))).toEqual({ repo: 'os', rest: ['refs', 'a', 'b'] });
    expect(parseRepoPath(new URL('http://h/api/v1/other'))).toBeNull();
    expect(parseRepoPath(new URL('http://h/api/v1/repos/'))).toBeNull();
    expect(status(() => parseRepoPath(new URL('http://h/api/v1/repos/os/refs/a%2Fb')))).toEqual([400, 'invalid-path']);
    expect(status(() => parseRepoPath(new URL('http://h/api/v1/repos/-x/refs')))).toEqual([400, 'invalid-repo']);
    for (const t of ['/api/v1/repos/os/../x', '/api/v1/repos/os/%2e%2e/x', '/api/v1/repos/os/%2E%2e', '/api/v1/repos//os', '/api/v1/repos/os/a%5cb', '/api/v1/repos/os/a%00']) {
      expect(status(() => assertSafeTarget(t)), t).toEqual([400, 'invalid-path']);
    }
    expect(status(() => assertSafeTarget('/api/v1/repos/os/refs/a/b?x=..'))).toEqual([200, 'ok']);
  });
});
