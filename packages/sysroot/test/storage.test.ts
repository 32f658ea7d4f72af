/**
 * Storage: deployments share file content with the repository and with each other through
 * hardlinks, so a second deployment of a commit differing in 1% of its files costs at most 2%
 * more disk. Disk use = the sum of st_blocks over the unique inodes under the sysroot.
 */
import { lstatSync, mkdirSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tmpDir, type TmpDir, type TreeSpec } from '@larch/test-fixtures';
import { deploy, initFs, osInit, Sysroot } from '../src/index.js';
import { commitOs, removeSysroot } from './helpers.js';

function diskUsage(root: string): { bytes: number; inodes: number } {
  const seen = new Set<string>();
  let blocks = 0;
  const walk = (p: string): void => {
    const st = lstatSync(p);
    const key = `${st.dev}:${st.ino}`;
    if (!seen.has(key)) {
      seen.add(key);
      blocks += st.blocks;
    }
    if (st.isDirectory()) for (const n of readdirSync(p)) walk(path.join(p, n));
  };
  walk(root);
  return { bytes: blocks * 512, inodes: seen.size };
}

const FILES = 1000;
const SIZE = 32 * 1024;

function payload(changed: Set<number>): TreeSpec {
  const spec: TreeSpec = {};
  for (let i = 0; i < FILES; i++) {
    spec[`usr/share/data/d${i % 20}/f${i}`] = { type: 'file', generate: { size: SIZE, seed: changed.has(i) ? 100_000 + i : i + 1 } };
  }
  return spec;
}

describe('storage cost of a second deployment', () => {
  let work: TmpDir;
  let root = '';
  beforeAll(async () => {
    work = await tmpDir('larch-sysroot-storage-');
  });
  afterAll(async () => {
    if (root) await removeSysroot(root);
    await work?.cleanup();
  });

  it('1% of files changed costs at most 2% more disk', async () => {
    process.env.OSTREE_SYSROOT_DEBUG = 'mutable-deployments';
    try {
      root = work.join('sysroot');
      mkdirSync(root);
      await initFs(root);
      await osInit(root, 'testos');
      const repo = path.join(root, 'ostree/repo');
      await commitOs(work.path, repo, { version: '1', extra: payload(new Set()) });
      await deploy(root, { stateroot: 'testos', refspec: 'testos/main' });
      const before = diskUsage(root);
      const changed = new Set(Array.from({ length: FILES / 100 }, (_, k) => k * 100 + 7));
      await commitOs(work.path, repo, { version: '2', extra: payload(changed) });
      await deploy(root, { stateroot: 'testos', refspec: 'testos/main' });
      const sr = await Sysroot.open(root);
      expect(sr.deployments.length).toBe(2);
      const after = diskUsage(root);
      const growth = (after.bytes - before.bytes) / before.bytes;
      console.info(`storage: ${before.bytes} → ${after.bytes} bytes (+${(growth * 100).toFixed(2)}%)`);
      expect(before.bytes).toBeGreaterThan(FILES * SIZE);
      expect(growth, `before ${before.bytes} after ${after.bytes}`).toBeLessThanOrEqual(0.02);
      // the unchanged files of both deployments are one inode
      const [a, b] = sr.deployments.map((d) => sr.deploymentDir(d));
      expect(lstatSync(path.join(a, 'usr/share/data/d1/f1')).ino).toBe(lstatSync(path.join(b, 'usr/share/data/d1/f1')).ino);
      expect(lstatSync(path.join(a, 'usr/share/data/d7/f7')).ino).not.toBe(lstatSync(path.join(b, 'usr/share/data/d7/f7')).ino);
    } finally {
      delete process.env.OSTREE_SYSROOT_DEBUG;
    }
  }, 300_000);
});
