import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, mkdirSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Repo } from './repo.js';
import { serializeCommit } from './objects/commit.js';
import { setRefAlias, parseRefspec } from './repo-refs.js';

const HAVE_OSTREE = spawnSync('ostree', ['--version']).status === 0;
const interop = HAVE_OSTREE || process.env.CI === 'true' ? it : it.skip;
const ostree = (...args: string[]) => execFileSync('ostree', args, { encoding: 'utf8' });
const TREE = '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d';
const META = '446a0ef11b7cc167f3b603e585c7eeeeb675faa412d5ec73f62988eb0b6c5488';

let dir: string;
let repo: Repo;
let c1: string;
let c2: string;
let c3: string;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'larch-refs-'));
  repo = await Repo.init({ path: join(dir, 'repo'), mode: 'archive' });
  const mk = (parent: string | null, subject: string) =>
    repo.writeMetadata('commit', serializeCommit({ metadata: [], parent, subject, body: '', timestamp: 1577836800n, rootTree: TREE, rootMeta: META }));
  c1 = await mk(null, 'one');
  c2 = await mk(c1, 'two');
  c3 = await mk(c2, 'three');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('refs', () => {
  it('writes a ref as 64 hex + newline, atomically, and deletes it', async () => {
    await repo.setRef('main', c3);
    expect(readFileSync(join(repo.path, 'refs/heads/main'), 'utf8')).toBe(`${c3}\n`);
    expect(await repo.resolveRef('main')).toBe(c3);
    await repo.setRef('a/b/c', c1);
    expect(await repo.resolveRef('a/b/c')).toBe(c1);
    await repo.setRef('a/b/c', null);
    expect(await repo.resolveRef('a/b/c')).toBeNull();
    await repo.setRef('a/b/c', null); // deleting a missing ref is a no-op
    expect(readdirSync(repo.tmpPath).filter((f) => f.startsWith('larch-'))).toEqual([]);
  });

  it('validates names and refuses a ref that is a prefix of another', async () => {
    await expect(repo.setRef('-bad', c1)).rejects.toMatchObject({ code: 'INVALID_REF' });
    await expect(repo.setRef('a//b', c1)).rejects.toMatchObject({ code: 'INVALID_REF' });
    await expect(repo.setRef('main', 'xyz')).rejects.toMatchObject({ code: 'INVALID_CHECKSUM' });
    await expect(repo.setRef('main/sub', c1)).rejects.toMatchObject({ code: 'INVALID_REF' });
  });

  it('remotes, mirrors and aliases; listRefs keys as ostree prints them', async () => {
    await repo.setRef('origin:os/stable', c2);
    await repo.setRef('(org.example.Os, os/stable)', c1);
    await setRefAlias(repo, 'al', 'main');
    expect(await repo.resolveRef('origin:os/stable')).toBe(c2);
    expect(await repo.resolveRef('(org.example.Os, os/stable)')).toBe(c1);
    expect(await repo.resolveRef('al')).toBe(c3);
    expect([...(await repo.listRefs()).keys()]).toEqual(['al', 'main', 'origin:os/stable']);
    expect([...(await repo.listRefs({ kind: 'heads' })).keys()]).toEqual(['al', 'main']);
    expect([...(await repo.listRefs({ kind: 'remotes' })).entries()]).toEqual([['origin:os/stable', c2]]);
    expect([...(await repo.listRefs({ remote: 'origin' })).keys()]).toEqual(['origin:os/stable']);
    expect([...(await repo.listRefs({ kind: 'mirrors' })).keys()]).toEqual(['(org.example.Os, os/stable)']);
    expect((await repo.listRefs({ kind: 'all' })).size).toBe(4);
    expect([...(await repo.listRefs({ kind: 'all', prefix: 'os/' })).keys()]).toEqual(['(org.example.Os, os/stable)', 'origin:os/stable']);
    // a plain name falls back to remotes, like ostree rev-parse
    expect(await repo.resolveRef('os/stable')).toBe(c2);
    expect(await repo.resolveRef('origin/os/stable')).toBe(c2);
    expect(parseRefspec('origin:x')).toEqual({ kind: 'remotes', scope: 'origin', name: 'x' });
  });

  it('refuses alias symlinks that leave refs/', async () => {
    symlinkSync('../../../config', join(repo.path, 'refs/heads/evil'));
    await expect(repo.resolveRef('evil')).rejects.toMatchObject({ code: 'INVALID_REF' });
    rmSync(join(repo.path, 'refs/heads/evil'));
  });

  interop('ostree reads the refs we wrote', async () => {
    expect(ostree('refs', `--repo=${repo.path}`).trim().split('\n').sort()).toEqual([...(await repo.listRefs()).keys()]);
    expect(ostree('rev-parse', `--repo=${repo.path}`, 'origin:os/stable').trim()).toBe(c2);
    expect(ostree('rev-parse', `--repo=${repo.path}`, 'al').trim()).toBe(c3);
    expect(ostree('refs', `--repo=${repo.path}`, 'origin:').trim()).toBe('origin:os/stable');
  });
});

describe('revParse', () => {
  it('full checksums, refs, parents with repeated ^', async () => {
    expect(await repo.revParse(c2)).toBe(c2);
    expect(await repo.revParse('main')).toBe(c3);
    expect(await repo.revParse('main^')).toBe(c2);
    expect(await repo.revParse('main^^')).toBe(c1);
    expect(await repo.revParse(`${c3}^^`)).toBe(c1);
    expect(await repo.revParse('origin:os/stable^')).toBe(c1);
    await expect(repo.revParse('main^^^')).rejects.toThrow(`Commit ${c1} has no parent`);
  });

  it('unique prefixes win over refs; ambiguity and absence are reported', async () => {
    expect(await repo.revParse(c1.slice(0, 10))).toBe(c1);
    // A ref named like a prefix still resolves to the commit, as ostree does.
    await repo.setRef(c2.slice(0, 6), c1);
    expect(await repo.revParse(c2.slice(0, 6))).toBe(c2);
    await repo.setRef(c2.slice(0, 6), null);
    await expect(repo.revParse('nosuch')).rejects.toMatchObject({ code: 'REF_NOT_FOUND', message: "Refspec 'nosuch' not found" });
    await expect(repo.revParse('origin:nosuch')).rejects.toMatchObject({ code: 'REF_NOT_FOUND', message: "Refspec 'origin:nosuch' not found" });
    // two fake commit files sharing a prefix
    const a = 'ee' + '0'.repeat(62);
    const b = 'ee' + '1'.repeat(62);
    mkdirSync(join(repo.path, 'objects/ee'), { recursive: true });
    writeFileSync(join(repo.path, 'objects/ee', a.slice(2) + '.commit'), '');
    writeFileSync(join(repo.path, 'objects/ee', b.slice(2) + '.commit'), '');
    await expect(repo.revParse('ee')).rejects.toMatchObject({ code: 'AMBIGUOUS_REF' });
    expect(await repo.revParse('ee1')).toBe(b);
  });

  interop('agrees with ostree rev-parse', async () => {
    for (const spec of ['main', 'main^', 'al^^', c1.slice(0, 8), 'origin:os/stable']) {
      expect(await repo.revParse(spec)).toBe(ostree('rev-parse', `--repo=${repo.path}`, spec).trim());
    }
  });
});
