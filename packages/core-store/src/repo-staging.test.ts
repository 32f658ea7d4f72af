import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { flock } from '@larch/native';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Repo } from './repo.js';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function freshRepo(): Promise<Repo> {
  const d = mkdtempSync(join(tmpdir(), 'larch-staging-'));
  dirs.push(d);
  return Repo.init({ path: join(d, 'repo'), mode: 'bare-user' });
}

/** Hold `tmp/<name>-lock` as another writer would; returns the release. */
function hold(repo: Repo, name: string): () => void {
  const fd = openSync(join(repo.tmpPath, `${name}-lock`), 'a+');
  expect(flock(fd, 'ex', { nonblocking: true })).toBe(true);
  return () => closeSync(fd);
}

function deadDir(repo: Repo, name: string, files = 3): void {
  mkdirSync(join(repo.tmpPath, name));
  for (let i = 0; i < files; i++) writeFileSync(join(repo.tmpPath, name, `larch-obj-${i}`), 'x');
}

describe('staging directories', () => {
  let saved: string | undefined;
  beforeEach(() => {
    saved = process.env.OSTREE_BOOTID;
    process.env.OSTREE_BOOTID = 'thisboot';
  });
  afterEach(() => {
    if (saved === undefined) delete process.env.OSTREE_BOOTID;
    else process.env.OSTREE_BOOTID = saved;
  });

  it('allocates a locked staging-<BOOTID>-XXXXXX directory, a different one while it is held', async () => {
    const repo = await freshRepo();
    const a = await repo.allocateStagingDir();
    expect(basename(a.path)).toMatch(/^staging-thisboot-[A-Za-z0-9]{6}$/);
    expect(a.newTmpPath('obj').startsWith(`${a.path}/larch-obj-`)).toBe(true);
    const b = await repo.allocateStagingDir();
    expect(b.path).not.toBe(a.path);
    expect(b.reused).toBe(false);
    // Held: nobody may take it over or remove it.
    expect(await repo.cleanupTmp({ allBoots: true })).toBe(0);
    await a.remove();
    await b.remove();
    expect(readdirSync(repo.tmpPath)).toEqual(['cache']);
  });

  it("takes over and empties a dead writer's directory of this boot; cleanup keeps it, prune's removes it", async () => {
    const repo = await freshRepo();
    deadDir(repo, 'staging-thisboot-AAAAAA');
    writeFileSync(join(repo.tmpPath, 'staging-thisboot-AAAAAA-lock'), '');
    expect(await repo.cleanupTmp()).toBe(0);
    const s = await repo.allocateStagingDir();
    expect(s.reused).toBe(true);
    expect(basename(s.path)).toBe('staging-thisboot-AAAAAA');
    expect(readdirSync(s.path)).toEqual([]);
    await s.remove();
    deadDir(repo, 'staging-thisboot-BBBBBB');
    expect(await repo.cleanupTmp({ allBoots: true })).toBe(1);
    expect(readdirSync(repo.tmpPath)).toEqual(['cache']);
  });

  it('removes unlocked directories of other boots, never a locked one', async () => {
    const repo = await freshRepo();
    deadDir(repo, 'staging-otherboot-AAAAAA');
    deadDir(repo, 'staging-otherboot-BBBBBB');
    const release = hold(repo, 'staging-otherboot-BBBBBB');
    try {
      expect(await repo.cleanupTmp()).toBe(1);
      expect(await repo.cleanupTmp({ allBoots: true, now: Date.now() + 30 * 86400 * 1000 })).toBe(0);
      expect(readdirSync(join(repo.tmpPath, 'staging-otherboot-BBBBBB'))).toHaveLength(3);
      // Nor is it taken over: it is of another boot, and held.
      const s = await repo.allocateStagingDir();
      expect(s.reused).toBe(false);
      await s.remove();
    } finally {
      release();
    }
    expect(existsSync(join(repo.tmpPath, 'staging-otherboot-AAAAAA'))).toBe(false);
    expect(existsSync(join(repo.tmpPath, 'staging-otherboot-AAAAAA-lock'))).toBe(false);
    expect(await repo.cleanupTmp()).toBe(1);
    expect(readdirSync(repo.tmpPath)).toEqual(['cache']);
  });

  it('withStagingDir sends newTmpPath into its directory for the length of the call, then removes it', async () => {
    const repo = await freshRepo();
    expect(repo.newTmpPath('x').startsWith(`${repo.tmpPath}/larch-x-`)).toBe(true);
    const other = await freshRepo();
    let seen = '';
    const out = await repo.withStagingDir(async (stage) => {
      await new Promise((r) => setImmediate(r));
      const p = repo.newTmpPath('pull');
      expect(p.startsWith(`${stage.path}/larch-pull-`)).toBe(true);
      // Another repository is not affected.
      expect(other.newTmpPath('x').startsWith(`${other.tmpPath}/larch-x-`)).toBe(true);
      writeFileSync(p, 'staged');
      seen = stage.path;
      return 42;
    });
    expect(out).toBe(42);
    expect(existsSync(seen)).toBe(false);
    expect(readdirSync(repo.tmpPath)).toEqual(['cache']);
    // An aborted transaction keeps its directory, unlocked (ostree's abort), for the next
    // transaction of this boot to take over.
    let aborted = '';
    await expect(repo.withStagingDir(async (stage) => {
      aborted = basename(stage.path);
      writeFileSync(repo.newTmpPath(), 'x');
      throw new Error('boom');
    })).rejects.toThrow('boom');
    expect(readdirSync(repo.tmpPath).sort()).toEqual(['cache', aborted]);
    expect(readdirSync(join(repo.tmpPath, aborted))).toHaveLength(1);
    await repo.withStagingDir(async (stage) => {
      expect(basename(stage.path)).toBe(aborted);
      expect(readdirSync(stage.path)).toEqual([]);
    });
    expect(readdirSync(repo.tmpPath)).toEqual(['cache']);
  });

  it("judges a staging directory's lock file by its lock, not its age; keeps entries from the future", async () => {
    const repo = await freshRepo();
    deadDir(repo, 'staging-thisboot-AAAAAA');
    const lock = join(repo.tmpPath, 'staging-thisboot-AAAAAA-lock');
    writeFileSync(lock, '');
    utimesSync(lock, 0, 0);
    const future = join(repo.tmpPath, 'from-the-future');
    writeFileSync(future, '');
    const later = new Date(Date.now() + 10 * 86400 * 1000);
    utimesSync(future, later, later);
    const release = hold(repo, 'staging-thisboot-AAAAAA');
    try {
      expect(await repo.cleanupTmp({ now: Date.now() + 2 * 86400 * 1000 })).toBe(0);
      expect(readdirSync(repo.tmpPath).sort()).toEqual(['cache', 'from-the-future', 'staging-thisboot-AAAAAA', 'staging-thisboot-AAAAAA-lock']);
    } finally {
      release();
    }
    // Unlocked, the directory of this boot stays for a later transaction, and its lock file goes
    // with the lock cleanup took and released, as ostree's does.
    expect(await repo.cleanupTmp({ now: Date.now() + 2 * 86400 * 1000 })).toBe(0);
    expect(readdirSync(repo.tmpPath).sort()).toEqual(['cache', 'from-the-future', 'staging-thisboot-AAAAAA']);
  });
});
