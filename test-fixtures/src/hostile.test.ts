import { readFile, readlink, stat } from 'node:fs/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { deleteObjectFile, flipByte, listRawObjects, truncateObject } from './corrupt.js';
import { contentChecksum, readRawRef, repoModeOf, writeHostileCommit, writeRawFile } from './hostile.js';
import { interopDescribe, ostree, ostreeOk, requireOstree } from './run.js';
import { tmpDirs } from './tmp.js';

const tmp = tmpDirs();
afterAll(tmp.cleanupAll);
const describeInterop = interopDescribe(describe);

describe('contentChecksum', () => {
  it('matches the spec vectors', () => {
    expect(contentChecksum({ mode: 0o100644 }, new TextEncoder().encode('hello\n'))).toBe(
      '44f778e59f0a4748d6b0c90a47347212a231c4ad1e8f7ea5c5dffc7749153a6b',
    );
    expect(contentChecksum({ symlinkTarget: 'hello.txt' })).toBe('f66efa496a72379413c44593de510dc344beb045294f1a543da87b2b6118db35');
    expect(
      contentChecksum({ mode: 0o100644, xattrs: [{ name: 'user.a', value: '1' }, { name: 'user.b', value: '2' }] }, new TextEncoder().encode('x')),
    ).toBe('2574b4a04f7b5364089d4e26ba0ceefd058d8fe982f729605ecb964aaac65ca1');
  });
});

for (const mode of ['archive', 'bare-user', 'bare-user-only', 'bare'] as const) {
  describeInterop(`raw writers in a ${mode} repo (interop)`, () => {
    it('write a well-formed commit that ostree fsck accepts and checks out', async () => {
      requireOstree();
      const d = await tmp.make();
      const repo = d.join('repo');
      await ostreeOk(['init', `--repo=${repo}`, `--mode=${mode}`]);
      expect(repoModeOf(repo)).toBe(mode);
      const { commit } = await writeHostileCommit(
        repo,
        {
          files: [
            { name: 'b.txt', content: 'bee\n', mode: 0o100755 },
            { name: 'a.txt', content: 'ay\n' },
            { name: 'link', symlink: 'a.txt' },
          ],
          dirs: [{ name: 'sub', tree: { files: [{ name: 'inner', content: 'in\n' }] } }],
        },
        { ref: 'raw' },
      );
      expect(await readRawRef(repo, 'raw')).toBe(commit);
      expect((await ostreeOk(['fsck', `--repo=${repo}`])).stdout).toMatch(/no errors found/);
      await ostreeOk(['checkout', `--repo=${repo}`, 'raw', d.join('co')]);
      expect(await readFile(d.join('co/sub/inner'), 'utf8')).toBe('in\n');
      expect(await readlink(d.join('co/link'))).toBe('a.txt');
      expect((await stat(d.join('co/b.txt'))).mode & 0o7777).toBe(0o755);
    });
  });
}

describeInterop('raw writers bypass validation (interop)', () => {
  it('a ".." entry is written as given, and ostree fsck rejects it', async () => {
    requireOstree();
    const d = await tmp.make();
    const repo = d.join('repo');
    await ostreeOk(['init', `--repo=${repo}`, '--mode=archive']);
    await writeHostileCommit(repo, { files: [{ name: '..', content: 'x' }] }, { ref: 'bad' });
    const r = await ostree(['fsck', `--repo=${repo}`]);
    expect(r.code).not.toBe(0);
  });
});

describe('damage helpers', () => {
  it('list, flip, truncate and delete loose objects', async () => {
    const d = await tmp.make();
    const repo = d.join('repo');
    const { writeFile, mkdir } = await import('node:fs/promises');
    await mkdir(`${repo}/objects`, { recursive: true });
    await writeFile(`${repo}/config`, '[core]\nrepo_version=1\nmode=archive-z2\n');
    const csum = await writeRawFile(repo, { mode: 0o100644 }, 'some content here\n');
    await writeFile(`${repo}/objects/stray`, 'ignored');
    const list = await listRawObjects(repo);
    expect(list).toEqual([{ checksum: csum, ext: 'filez', type: 'file', path: `${repo}/objects/${csum.slice(0, 2)}/${csum.slice(2)}.filez` }]);
    const before = await readFile(list[0].path);
    const at = await flipByte(list[0].path, -1, 0xff);
    const after = await readFile(list[0].path);
    expect(at).toBe(before.length - 1);
    expect(after[at]).toBe(before[at] ^ 0xff);
    expect(after.subarray(0, at).equals(before.subarray(0, at))).toBe(true);
    expect(await truncateObject(list[0].path, 3)).toBe(3);
    expect((await stat(list[0].path)).size).toBe(3);
    await deleteObjectFile(list[0].path);
    expect(await listRawObjects(repo)).toEqual([]);
  });
});
