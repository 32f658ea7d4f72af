import { chmod, writeFile, appendFile, symlink } from 'node:fs/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { makeSentinel } from './sentinel.js';
import { tmpDirs } from './tmp.js';

const tmp = tmpDirs();
afterAll(tmp.cleanupAll);

describe('makeSentinel', () => {
  it('is untouched right after creation', async () => {
    const d = await tmp.make();
    const s = await makeSentinel(d.join('outside'));
    await expect(s.assertUntouched()).resolves.toBeUndefined();
  });

  it('detects a write through a symlink', async () => {
    const d = await tmp.make();
    const s = await makeSentinel(d.join('outside'));
    await symlink(s.path, d.join('link'));
    await appendFile(d.join('link'), 'pwned');
    await expect(s.assertUntouched()).rejects.toThrow(/was touched/);
  });

  it('detects a mode change and a new file next to it', async () => {
    const d = await tmp.make();
    const s1 = await makeSentinel(d.join('o1'));
    await chmod(s1.path, 0o600);
    expect((await s1.changes()).join('\n')).toMatch(/type and mode/);
    const s2 = await makeSentinel(d.join('o2'));
    await writeFile(d.join('o2/dropped'), 'x');
    expect((await s2.changes()).join('\n')).toMatch(/directory listing/);
  });

  it('ignores the allowed names in its directory', async () => {
    const d = await tmp.make();
    const s = await makeSentinel(d.join('o'), { allow: ['dest'] });
    await writeFile(d.join('o/dest'), 'x');
    expect(await s.changes()).toEqual([]);
    await writeFile(d.join('o/other'), 'x');
    expect(await s.changes()).toHaveLength(1);
  });
});
