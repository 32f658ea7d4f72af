/**
 * Two `larch commit` processes on one repo at the same time, on different
 * branches, with mostly the same content (so they race to write the same
 * objects), must both succeed, and both fsck implementations must accept
 * the result with each branch at its commit.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { writeFile } from 'node:fs/promises';
import {
  interopDescribe,
  larch,
  larchOk,
  makeFixtureTree,
  makeTree,
  ostreeOk,
  requireOstree,
  tmpDirs,
} from '@larch/test-fixtures';
import { COMMIT_ARGS, initLarch, type Mode } from './helpers.js';

const describeInterop = interopDescribe(describe);
const tmp = tmpDirs('larch-concurrent-');
afterAll(tmp.cleanupAll);

async function sharedTree(path: string, own: string): Promise<void> {
  await makeFixtureTree(path, 'mixed');
  // ~6 MiB of content common to both trees, plus one file each of their own
  const spec: Record<string, { type: 'file'; generate: { size: number; seed: number } }> = {};
  for (let i = 0; i < 24; i++) spec[`bulk/${i}.bin`] = { type: 'file', generate: { size: 256 * 1024, seed: 1000 + i } };
  await makeTree(`${path}/extra`, spec);
  await writeFile(`${path}/own.txt`, `${own}\n`);
}

for (const mode of ['archive', 'bare-user'] as Mode[]) {
  describeInterop(`interop: concurrent larch commits (${mode})`, () => {
    it('both succeed, both branches point at their commits, and both fscks pass', async () => {
      requireOstree();
      const d = await tmp.make();
      const repo = d.join('repo');
      await initLarch(repo, mode);
      await sharedTree(d.join('a'), 'a');
      await sharedTree(d.join('b'), 'b');
      const commit = (tree: string, branch: string) =>
        larch(['commit', `--repo=${repo}`, '-b', branch, ...COMMIT_ARGS, `--tree=dir=${tree}`]);
      const [ra, rb] = await Promise.all([commit(d.join('a'), 'branch-a'), commit(d.join('b'), 'branch-b')]);
      expect([ra.code, rb.code], `${ra.stderr}\n${rb.stderr}`).toEqual([0, 0]);
      const [ca, cb] = [ra.stdout.trim(), rb.stdout.trim()];
      expect(ca).toMatch(/^[0-9a-f]{64}$/);
      expect(cb).toMatch(/^[0-9a-f]{64}$/);
      expect(ca).not.toBe(cb);
      expect((await ostreeOk(['rev-parse', `--repo=${repo}`, 'branch-a'])).stdout.trim()).toBe(ca);
      expect((await ostreeOk(['rev-parse', `--repo=${repo}`, 'branch-b'])).stdout.trim()).toBe(cb);
      await larchOk(['fsck', `--repo=${repo}`]);
      expect((await ostreeOk(['fsck', `--repo=${repo}`])).stdout).toMatch(/2 commits completed successfully|no errors found/);
    });
  });
}
