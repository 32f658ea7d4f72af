import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Repo } from './repo.js';
import { serializeCommit } from './objects/commit.js';
import { setRefAlias } from './repo-refs.js';
import { assertRefDirs, listRefAliases } from './repo-aliases.js';
import { singleCommit } from './repo-single-commit.js';

const HAVE_OSTREE = spawnSync('ostree', ['--version']).status === 0;
const interop = HAVE_OSTREE || process.env.CI === 'true' ? it : it.skip;
const TREE = '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d';
const META = '446a0ef11b7cc167f3b603e585c7eeeeb675faa412d5ec73f62988eb0b6c5488';

let dir: string;
let n = 0;
async function freshRepo(): Promise<Repo> {
  return Repo.init({ path: join(dir, `repo${n++}`), mode: 'archive' });
}
function commitOf(repo: Repo, subject: string): Promise<string> {
  return repo.writeMetadata('commit', serializeCommit({ metadata: [], parent: null, subject, body: '', timestamp: 1577836800n, rootTree: TREE, rootMeta: META }));
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'larch-aliases-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('listRefAliases', () => {
  it('lists the alias links of refs/heads by name, targets relative to refs/heads, and skips plain refs', async () => {
    const repo = await freshRepo();
    const c = await commitOf(repo, 'one');
    await repo.setRef('main', c);
    await repo.setRef('a/b', c);
    await setRefAlias(repo, 'stable', 'main');
    mkdirSync(join(repo.path, 'refs/heads/sub'));
    symlinkSync('../a/b', join(repo.path, 'refs/heads/sub/al'));
    expect([...(await listRefAliases(repo)).entries()]).toEqual([
      ['stable', 'main'],
      ['sub/al', 'a/b'],
    ]);
  });

  interop('agrees with ostree refs --alias on links ostree made', async () => {
    const repo = await freshRepo();
    await repo.setRef('main', await commitOf(repo, 'one'));
    execFileSync('ostree', ['refs', `--repo=${repo.path}`, '--create=al', '--alias', 'main']);
    const theirs = execFileSync('ostree', ['refs', `--repo=${repo.path}`, '--alias'], { encoding: 'utf8' });
    const ours = [...(await listRefAliases(repo)).entries()].map(([a, t]) => `${a} -> ${t}\n`).join('');
    expect(ours).toBe(theirs);
  });

  it('refuses a symlinked ref pointing outside refs/, naming it, without reading the target', async () => {
    const repo = await freshRepo();
    await repo.setRef('main', await commitOf(repo, 'one'));
    const secret = join(dir, 'secret');
    writeFileSync(secret, `${'a'.repeat(64)}\n`);
    symlinkSync(`../../../${'secret'}`, join(repo.path, 'refs/heads/evil'));
    await expect(listRefAliases(repo)).rejects.toMatchObject({ code: 'INVALID_REF', message: 'Ref alias evil points outside refs/' });
  });

  it('returns nothing for a repository without aliases', async () => {
    const repo = await freshRepo();
    expect((await listRefAliases(repo)).size).toBe(0);
  });
});

describe('assertRefDirs', () => {
  it('passes on a fresh repository and names the missing directory in ostree\'s words', async () => {
    const repo = await freshRepo();
    await assertRefDirs(repo);
    rmSync(join(repo.path, 'refs/remotes'), { recursive: true });
    await expect(assertRefDirs(repo)).rejects.toMatchObject({ code: 'IO_ERROR', message: 'Listing refs: opendir(refs/remotes): No such file or directory' });
  });
});

describe('singleCommit', () => {
  it('is the only commit; none and two are errors in ostree\'s words', async () => {
    const repo = await freshRepo();
    await expect(singleCommit(repo)).rejects.toMatchObject({ code: 'REF_NOT_FOUND', message: 'No commit objects found' });
    const c = await commitOf(repo, 'one');
    expect(await singleCommit(repo)).toBe(c);
    await commitOf(repo, 'two');
    await expect(singleCommit(repo)).rejects.toMatchObject({ code: 'AMBIGUOUS_REF', message: 'Multiple commit objects found' });
  });

  it('ignores junk in objects/ (stray files, a non-hex fan-out directory, a misnamed commit)', async () => {
    const repo = await freshRepo();
    const c = await commitOf(repo, 'one');
    mkdirSync(join(repo.path, 'objects/zz'));
    writeFileSync(join(repo.path, 'objects/zz', `${'b'.repeat(62)}.commit`), '');
    writeFileSync(join(repo.path, 'objects/ab'), 'not a directory');
    mkdirSync(join(repo.path, 'objects/cd'));
    writeFileSync(join(repo.path, 'objects/cd', 'short.commit'), '');
    expect(await singleCommit(repo)).toBe(c);
  });

  interop('agrees with ostree rev-parse --single', async () => {
    const repo = await freshRepo();
    const c = await commitOf(repo, 'one');
    expect(execFileSync('ostree', ['rev-parse', `--repo=${repo.path}`, '--single'], { encoding: 'utf8' })).toBe(`${c}\n`);
    expect(await singleCommit(repo)).toBe(c);
  });
});
