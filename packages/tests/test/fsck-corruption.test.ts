/**
 * `larch fsck` must find every kind of damage in a repo the real ostree
 * wrote: a flipped byte in each object kind, a truncated object and a
 * missing object. It must name the damaged object and exit non-zero. Each
 * case also checks that `ostree fsck` agrees the repo is damaged, so a case
 * that damages nothing cannot pass by accident.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  deleteObjectFile,
  flipByte,
  interopDescribe,
  larch,
  listRawObjects,
  makeFixtureTree,
  ostree,
  requireOstree,
  tmpDirs,
  truncateObject,
  type RawObjectEntry,
  type TmpDir,
} from '@larch/test-fixtures';
import { commitWith, copyRepo, initOstree, type Mode } from './helpers.js';
import { stat } from 'node:fs/promises';

const describeInterop = interopDescribe(describe);
const tmp = tmpDirs('larch-fsck-');
afterAll(tmp.cleanupAll);

type Damage = 'flip' | 'truncate' | 'delete';

async function pick(repo: string, type: string): Promise<RawObjectEntry> {
  const all = (await listRawObjects(repo)).filter((o) => o.type === type);
  if (all.length === 0) throw new Error(`no ${type} object in ${repo}`);
  // the largest one: never an empty file, and for dirtrees the root with most entries
  const sized = await Promise.all(all.map(async (o) => [o, (await stat(o.path)).size] as const));
  sized.sort((a, b) => b[1] - a[1] || a[0].checksum.localeCompare(b[0].checksum));
  return sized[0][0];
}

for (const mode of ['archive', 'bare-user'] as Mode[]) {
  describeInterop(`interop: larch fsck finds damage (${mode})`, () => {
    let dir: TmpDir;
    let template: string;
    let n = 0;
    beforeAll(async () => {
      requireOstree();
      dir = await tmp.make();
      await makeFixtureTree(dir.join('tree'), 'mixed');
      template = dir.join('template');
      await initOstree(template, mode);
      await commitWith('ostree', template, dir.join('tree'), 'main');
    });

    /** A fresh copy of the template with one object damaged (deterministically: same victim, same offset). */
    async function damaged(type: string, damage: Damage): Promise<{ repo: string; victim: RawObjectEntry }> {
      const repo = dir.join(`repo-${n++}`);
      await copyRepo(template, repo);
      const victim = await pick(repo, type);
      if (damage === 'flip') await flipByte(victim.path);
      else if (damage === 'truncate') await truncateObject(victim.path);
      else await deleteObjectFile(victim.path);
      return { repo, victim };
    }

    it('passes on the undamaged repo', async () => {
      const r = await larch(['fsck', `--repo=${template}`]);
      expect(r.code, r.stderr).toBe(0);
    });

    const cases: Array<[string, Damage]> = [
      ['commit', 'flip'],
      ['dirtree', 'flip'],
      ['dirmeta', 'flip'],
      ['file', 'flip'],
      ['file', 'truncate'],
      ['dirtree', 'truncate'],
      ['commit', 'truncate'],
      ['file', 'delete'],
      ['dirtree', 'delete'],
      ['dirmeta', 'delete'],
    ];
    for (const [type, damage] of cases) {
      it(`reports a ${damage === 'flip' ? 'flipped byte in a' : damage === 'truncate' ? 'truncated' : 'missing'} ${type} object by name and exits non-zero`, async () => {
        // ostree fsck marks damaged commits partial, so it checks its own copy
        const { repo, victim } = await damaged(type, damage);
        const control = await damaged(type, damage);
        expect(control.victim.checksum).toBe(victim.checksum);
        const theirs = await ostree(['fsck', `--repo=${control.repo}`]);
        expect(theirs.code, 'ostree fsck must also see this damage').not.toBe(0);
        const r = await larch(['fsck', `--repo=${repo}`]);
        expect(r.code).not.toBe(0);
        expect(r.signal).toBeNull();
        expect(`${r.stdout}\n${r.stderr}`).toContain(victim.checksum);
        expect(r.stderr).not.toMatch(/^\s+at .+:\d+:\d+\)?$/m);
      });
    }
  });
}
