/**
 * The tree listing and the diff against the real `ostree ls -C` and `ostree diff` on the same
 * repository: same entries, types, permission bits, owners, sizes, checksums and symlink targets.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { interopDescribe, ostreeOk, tmpDir, type TmpDir } from '@larch/test-fixtures';
import { diffToParent, listTree } from '../src/browse-read.js';
import type { TreeEntry } from '../src/browse-types.js';
import { makeBrowseFixture, type BrowseFixture } from './fixture.js';

let tmp: TmpDir;
let fx: BrowseFixture;

/** One `ostree ls -C` line as the fields a TreeEntry carries. */
function parseLs(line: string): { name: string; type: TreeEntry['type']; perms: string; uid: number; gid: number; size: number; checksum: string; target: string | null } {
  const m = /^([d\-l])(\d{5}) (\d+) (\d+) +(\d+) ([0-9a-f]{64})(?: [0-9a-f]{64})? (\S+?)(?: -> (.*))?$/.exec(line);
  if (!m) throw new Error(`unexpected ostree ls line: ${line}`);
  const type = m[1] === 'd' ? 'dir' : m[1] === 'l' ? 'symlink' : 'file';
  return { name: m[7].split('/').pop()!, type, perms: m[2], uid: Number(m[3]), gid: Number(m[4]), size: Number(m[5]), checksum: m[6], target: m[8] ?? null };
}

interopDescribe(describe)('browse against the real ostree', () => {
  beforeAll(async () => {
    tmp = await tmpDir('larch-browse-interop-');
    fx = await makeBrowseFixture(tmp.path, { deltas: false });
  });
  afterAll(async () => {
    await tmp?.cleanup();
  });

  it('lists every directory of every commit as ostree ls -C does', async () => {
    for (const commit of fx.commits) {
      const dirs = ['/'];
      while (dirs.length > 0) {
        const dir = dirs.shift()!;
        const ours = await listTree(fx.repo, commit, dir);
        const out = await ostreeOk(['ls', `--repo=${fx.repo.path}`, '-C', commit, dir]);
        // The first line is the directory itself.
        const theirs = out.stdout.trim().split('\n').slice(1).map(parseLs);
        const key = (e: { name: string }) => e.name;
        expect(ours.entries.map(key).sort()).toEqual(theirs.map(key).sort());
        for (const e of ours.entries) {
          const t = theirs.find((x) => x.name === e.name)!;
          expect({ type: e.type, perms: (e.mode & 0o7777).toString(8).padStart(5, '0'), uid: e.uid, gid: e.gid, size: e.size ?? 0, checksum: e.checksum, target: e.target }).toEqual({
            type: t.type,
            perms: t.perms,
            uid: t.uid,
            gid: t.gid,
            size: t.size,
            checksum: t.checksum,
            target: t.target,
          });
          if (e.type === 'dir') dirs.push(dir === '/' ? `/${e.name}` : `${dir}/${e.name}`);
        }
      }
    }
  });

  it('reports the changes ostree diff reports against the parent', async () => {
    const letter = { modified: 'M', removed: 'D', added: 'A' } as const;
    for (const commit of fx.commits.slice(1)) {
      const ours = await diffToParent(fx.repo, commit);
      const out = await ostreeOk(['diff', `--repo=${fx.repo.path}`, ours.parent!, commit]);
      const theirs = out.stdout.trim().split('\n').map((l) => l.trim().replace(/\s+/, ' '));
      expect(ours.changes.map((c) => `${letter[c.kind]} ${c.path}`)).toEqual(theirs);
    }
  });
});
