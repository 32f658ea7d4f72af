import { chmod, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { compareTrees, formatDifferences } from './compare.js';
import { makeFixtureTree } from './fixtures.js';
import { tmpDirs } from './tmp.js';
import { makeTree } from './tree.js';

const tmp = tmpDirs();
afterAll(tmp.cleanupAll);

async function pair() {
  const d = await tmp.make();
  await makeFixtureTree(d.join('a'), 'mixed');
  await makeFixtureTree(d.join('b'), 'mixed');
  return d;
}

describe('compareTrees', () => {
  it('finds a changed byte of content with the same size', async () => {
    const d = await pair();
    await writeFile(d.join('b/small/hello.txt'), 'hellO\n');
    expect(await compareTrees(d.join('a'), d.join('b'))).toEqual([
      expect.objectContaining({ path: 'small/hello.txt', what: 'content' }),
    ]);
  });

  it('finds a mode difference, and masks it when asked', async () => {
    const d = await pair();
    await chmod(d.join('b/modes/setuid-04755'), 0o755);
    expect(await compareTrees(d.join('a'), d.join('b'))).toEqual([
      { path: 'modes/setuid-04755', what: 'mode', a: '04755', b: '0755' },
    ]);
    expect(await compareTrees(d.join('a'), d.join('b'), { fileModeMask: 0o1777 })).toEqual([]);
  });

  it('finds symlink target, type and presence differences', async () => {
    const d = await pair();
    await unlink(d.join('b/symlinks/relative'));
    await symlink('elsewhere', d.join('b/symlinks/relative'));
    await rm(d.join('b/nested/empty-dir'), { recursive: true });
    await writeFile(d.join('b/nested/empty-dir'), '');
    await writeFile(d.join('b/extra'), 'x');
    await unlink(d.join('b/odd/-rf'));
    const diffs = await compareTrees(d.join('a'), d.join('b'));
    expect(diffs).toEqual(
      expect.arrayContaining([
        { path: 'symlinks/relative', what: 'symlink-target', a: 'target.txt', b: 'elsewhere' },
        { path: 'nested/empty-dir', what: 'type', a: 'dir', b: 'file' },
        { path: 'extra', what: 'only-in-b' },
        { path: 'odd/-rf', what: 'only-in-a' },
      ]),
    );
    expect(diffs).toHaveLength(4);
    expect(formatDifferences(diffs)).toContain('only-in-b "extra"');
  });

  it('compares the root mode unless told not to', async () => {
    const d = await tmp.make();
    await makeTree(d.join('a'), { f: 'x' });
    await makeTree(d.join('b'), { f: 'x' }, { rootMode: 0o700 });
    expect(await compareTrees(d.join('a'), d.join('b'))).toEqual([{ path: '', what: 'mode', a: '0755', b: '0700' }]);
    expect(await compareTrees(d.join('a'), d.join('b'), { rootMode: false })).toEqual([]);
  });

  it('compares owners only when asked', async () => {
    const d = await tmp.make();
    await makeTree(d.join('a'), { f: 'x' });
    await makeTree(d.join('b'), { f: { type: 'file', content: 'x', uid: 1234, gid: 4321 } });
    expect(await compareTrees(d.join('a'), d.join('b'))).toEqual([]);
    expect(await compareTrees(d.join('a'), d.join('b'), { owners: true })).toEqual([
      { path: 'f', what: 'uid', a: '0', b: '1234' },
      { path: 'f', what: 'gid', a: '0', b: '4321' },
    ]);
  });
});
