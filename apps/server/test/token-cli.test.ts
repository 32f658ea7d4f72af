import { PassThrough } from 'node:stream';
import { join } from 'node:path';
import { Database } from '@larch/db';
import { TokenStore } from '@larch/publish';
import { tmpDir, type TmpDir } from '@larch/test-fixtures';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runServerCli } from '../src/index.js';

async function run(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (d: Buffer) => (out += d.toString()));
  stderr.on('data', (d: Buffer) => (err += d.toString()));
  const code = await runServerCli(argv, { stdout, stderr });
  return { code, stdout: out, stderr: err };
}

describe('larch-server token', () => {
  let dir: TmpDir;
  let db: string;
  beforeAll(async () => {
    dir = await tmpDir('larch-token-cli-');
    db = join(dir.path, 'state', 'larch-server.db');
  });
  afterAll(async () => {
    await dir.cleanup();
  });

  it('creates, lists and revokes tokens; the token is printed once and only its hash is stored', async () => {
    const created = await run(['token', 'create', `--database=${db}`, '--repo=os', '--ref-prefix=exampleos/', '--rights=push,publish', '--expires=30d', '--label=ci']);
    expect(created.code, created.stderr).toBe(0);
    const token = created.stdout.trim();
    expect(token).toMatch(/^larch_[A-Za-z0-9_-]{43}$/);
    expect(created.stderr).toMatch(/^Created token [0-9a-f]{12} \(repo os, rights push,publish, refs exampleos\/\*, expires \d{4}-.*\); it is shown only once:\n$/);

    const json = await run(['token', 'create', `--database=${db}`, '--repo=*', '--rights=checkin', '--device=dev-1', '--json']);
    const rec = JSON.parse(json.stdout) as { id: string; token: string; repo: string; deviceId: string; expiresAt: string | null };
    expect(rec).toMatchObject({ repo: '*', deviceId: 'dev-1', expiresAt: null });

    const list = await run(['token', 'list', `--database=${db}`, '--json']);
    const tokens = (JSON.parse(list.stdout) as { tokens: Array<{ id: string; label: string }> }).tokens;
    expect(tokens.map((t) => t.label)).toEqual(['ci', '']);
    expect(list.stdout).not.toContain(token);
    const text = await run(['token', 'list', `--database=${db}`]);
    expect(text.stdout).toContain('"ci"');

    // The stored token authorizes; after revoke it does not.
    const d = Database.open(db);
    const store = new TokenStore(d);
    const req = { headers: { authorization: `Bearer ${token}` } } as never;
    expect(store.authorize(req, { repo: 'os', right: 'push', ref: 'exampleos/a' }).label).toBe('ci');
    d.close();
    const revoke = await run(['token', 'revoke', `--database=${db}`, tokens[0].id]);
    expect(revoke).toMatchObject({ code: 0, stdout: `Revoked token ${tokens[0].id}\n` });
    expect((await run(['token', 'revoke', `--database=${db}`, tokens[0].id])).code).toBe(1);
    const d2 = Database.open(db);
    expect(() => new TokenStore(d2).authorize(req, { repo: 'os', right: 'push' })).toThrow(/Unknown or revoked token/);
    d2.close();
  });

  it('refuses bad arguments with exit status 2', async () => {
    for (const argv of [
      ['token'],
      ['token', 'create', `--database=${db}`, '--repo=os'],
      ['token', 'create', `--database=${db}`, '--repo=os', '--rights=push,fly'],
      ['token', 'create', `--database=${db}`, '--repo=../os', '--rights=push'],
      ['token', 'create', `--database=${db}`, '--repo=os', '--rights=push', '--expires=soon'],
      ['token', 'create', '--repo=os', '--rights=push'],
      ['token', 'frobnicate', `--database=${db}`],
      ['token', 'list', `--database=${db}`, '--bogus'],
    ]) {
      const r = await run(argv);
      expect(r.code, argv.join(' ')).toBe(2);
      expect(r.stdout, argv.join(' ')).toBe('');
    }
  });
});
