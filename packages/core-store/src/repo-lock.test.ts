import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Repo } from './repo.js';

let dir: string;
let repo: Repo;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'larch-lock-'));
  repo = await Repo.init({ path: join(dir, 'repo'), mode: 'bare' });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Whether `flock -n` in another process can take the lock now. */
function otherProcessCanLock(kind: '-s' | '-x'): boolean {
  return spawnSync('flock', ['-n', kind, join(repo.path, '.lock'), 'true']).status === 0;
}

describe('repo lock', () => {
  it('uses the .lock file; shared locks coexist, exclusive waits and times out', async () => {
    const a = await repo.lock('shared');
    const b = await repo.lock('shared', { timeoutMs: 0 });
    await expect(repo.lock('exclusive', { timeoutMs: 50 })).rejects.toMatchObject({ code: 'LOCK_TIMEOUT' });
    await a.release();
    await b.release();
    const x = await repo.lock('exclusive', { timeoutMs: 0 });
    await expect(repo.lock('shared', { timeoutMs: 30 })).rejects.toMatchObject({ code: 'LOCK_TIMEOUT' });
    // a waiter gets the lock once it is released
    const waiting = repo.lock('shared', { timeoutMs: 600_000 });
    setTimeout(() => void x.release(), 50);
    const w = await waiting;
    await w.release();
  });

  it('withLock nests: shared in shared is free, exclusive inside shared upgrades then downgrades', async () => {
    await repo.withLock('shared', async () => {
      await repo.withLock('shared', async () => undefined, { timeoutMs: 0 });
      expect(otherProcessCanLock('-s')).toBe(true);
      expect(otherProcessCanLock('-x')).toBe(false);
      await repo.withLock('exclusive', async () => {
        expect(otherProcessCanLock('-s')).toBe(false);
      }, { timeoutMs: 1000 });
      expect(otherProcessCanLock('-s')).toBe(true);
    });
    expect(otherProcessCanLock('-x')).toBe(true);
    const ex = await repo.lock('exclusive', { timeoutMs: 0 });
    await ex.release();
  });

  it('excludes another process holding the lock with flock(1)', async () => {
    const lockFile = join(repo.path, '.lock');
    // The other process holds the lock until its stdin closes, and says when it has it.
    const child = spawn('flock', ['-x', lockFile, 'sh', '-c', 'echo locked; cat >/dev/null'], { stdio: ['pipe', 'pipe', 'inherit'] });
    const exited = new Promise((r) => child.on('exit', r));
    await new Promise<void>((resolve) => child.stdout!.on('data', (b: Buffer) => b.toString().includes('locked') && resolve()));
    await expect(repo.lock('shared', { timeoutMs: 0 })).rejects.toMatchObject({ code: 'LOCK_TIMEOUT' });
    // A waiter gets it only once the other process lets go (the pause only gives a waiter that
    // ignored the other process a chance to show it; nothing depends on its length).
    let released = false;
    const waiting = repo.lock('shared', { timeoutMs: 600_000 }).then((h) => ({ h, afterRelease: released }));
    await new Promise((r) => setTimeout(r, 50));
    released = true;
    child.stdin!.end();
    const { h, afterRelease } = await waiting;
    expect(afterRelease).toBe(true);
    await h.release();
    await exited;
  });

  it('honours core.lock-timeout-secs', async () => {
    repo.config.set('core', 'lock-timeout-secs', 0);
    await repo.saveConfig();
    const r2 = await Repo.open(repo.path);
    expect(r2.lockTimeoutMs).toBe(0);
    const x = await r2.lock('exclusive');
    await expect(r2.lock('exclusive')).rejects.toMatchObject({ code: 'LOCK_TIMEOUT' });
    await x.release();
  });
});
