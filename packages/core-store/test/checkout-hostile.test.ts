/**
 * Hostile repositories: dirtrees whose names would escape the checkout destination, encoded
 * directly with the GVariant codec (bypassing our own validating serializers), stored under their
 * real sha256 names and referenced from a commit. Checkout must fail with INVALID_NAME before
 * writing anything, and a sentinel outside the destination must stay untouched.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { encode } from '@larch/gvariant';
import { afterAll, describe, expect, it } from 'vitest';
import { Repo } from '../src/repo.js';
import { checkout } from '../src/repo-checkout.js';
import { ls } from '../src/repo-ls.js';
import { LarchError } from '../src/errors.js';
import { cleanup, tmp } from './helpers.js';

afterAll(cleanup);

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const unhex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'));

async function putRaw(repo: Repo, type: 'dirtree' | 'dirmeta' | 'commit', bytes: Uint8Array): Promise<string> {
  const c = createHash('sha256').update(bytes).digest('hex');
  const p = repo.objectPath(type, c);
  mkdirSync(path.dirname(p), { recursive: true });
  writeFileSync(p, bytes);
  return c;
}

function rawDirTree(files: Array<[string, string]>, dirs: Array<[string, string, string]>): Uint8Array {
  return encode('(a(say)a(sayay))', [files.map(([n, c]) => [n, unhex(c)]), dirs.map(([n, t, m]) => [n, unhex(t), unhex(m)])] as never);
}

async function rawCommit(repo: Repo, tree: string, meta: string): Promise<string> {
  const bytes = encode('(a{sv}aya(say)sstayay)', [[], new Uint8Array(0), [], 'hostile', '', 0n, unhex(tree), unhex(meta)] as never);
  return putRaw(repo, 'commit', bytes);
}

async function setup(): Promise<{ d: string; repo: Repo; file: string; meta: string; emptyTree: string }> {
  const d = tmp();
  const repo = await Repo.init({ path: path.join(d, 'repo'), mode: 'bare-user' });
  const file = await repo.writeFile({ uid: 0, gid: 0, mode: 0o100644, symlinkTarget: '', xattrs: [] }, { bytes: new TextEncoder().encode('pwned\n') });
  const meta = await putRaw(repo, 'dirmeta', encode('(uuua(ayay))', [0, 0, 0xed410000, []] as never)); // 040755 big-endian
  const emptyTree = await putRaw(repo, 'dirtree', rawDirTree([], []));
  mkdirSync(path.join(d, 'outside'));
  writeFileSync(path.join(d, 'outside', 'sentinel'), 'original');
  return { d, repo, file, meta, emptyTree };
}

function listAll(root: string): string[] {
  const out: string[] = [];
  const walk = (rel: string): void => {
    for (const e of readdirSync(path.join(root, rel), { withFileTypes: true })) {
      const r = path.join(rel, e.name);
      out.push(r);
      if (e.isDirectory() && !r.startsWith('repo')) walk(r);
    }
  };
  walk('');
  return out.sort();
}

describe('checkout of hostile dirtrees', () => {
  // NUL cannot occur inside a GVariant string, so it is covered by the fs-safety unit tests.
  const BAD = ['', '.', '..', 'a/b', '../outside/sentinel', 'zzz/../../outside'];
  for (const bad of BAD) {
    for (const where of ['files', 'dirs', 'nested'] as const) {
      it(`rejects the name ${JSON.stringify(bad)} in ${where} before writing anything`, async () => {
        const { d, repo, file, meta, emptyTree } = await setup();
        let tree: string;
        let badTree: string;
        if (where === 'files') badTree = tree = await putRaw(repo, 'dirtree', rawDirTree([['aaa', file], [bad, file]], []));
        else if (where === 'dirs') badTree = tree = await putRaw(repo, 'dirtree', rawDirTree([['aaa', file]], [[bad, emptyTree, meta]]));
        else {
          // A valid top level with the bad name two levels down: phase 1 must still catch it.
          badTree = await putRaw(repo, 'dirtree', rawDirTree([[bad, file]], []));
          const mid = await putRaw(repo, 'dirtree', rawDirTree([['ok', file]], [['inner', badTree, meta]]));
          tree = await putRaw(repo, 'dirtree', rawDirTree([['top', file]], [['mid', mid, meta]]));
        }
        const commit = await rawCommit(repo, tree, meta);
        const before = listAll(d);
        const dest = path.join(d, 'dest');
        let err: unknown;
        for (const opts of [{}, { union: true }, { userMode: true }, { noHardlinks: true }]) {
          err = await checkout(repo, { commit, dest, ...opts }).then(
            () => null,
            (e: unknown) => e,
          );
          expect(err).toBeInstanceOf(LarchError);
          expect((err as LarchError).code).toBe('INVALID_NAME');
          expect((err as LarchError).data.name).toBe(bad);
          expect((err as LarchError).data.dirtree).toBe(badTree);
        }
        expect(existsSync(dest)).toBe(false);
        expect(listAll(d)).toEqual(before);
        expect(readFileSync(path.join(d, 'outside', 'sentinel'), 'utf8')).toBe('original');
      });
    }
  }

  it('a checksum of the wrong length is rejected', async () => {
    const { repo, meta } = await setup();
    const tree = await putRaw(repo, 'dirtree', encode('(a(say)a(sayay))', [[['f', new Uint8Array(31)]], []] as never));
    const commit = await rawCommit(repo, tree, meta);
    await expect(checkout(repo, { commit, dest: path.join(repo.path, '..', 'dest') })).rejects.toBeInstanceOf(LarchError);
    expect(existsSync(path.join(repo.path, '..', 'dest'))).toBe(false);
  });

  it('a dirtree that contains itself is reported as corrupted before anything is written; ls -R says the same', async () => {
    const { d, repo, file, meta } = await setup();
    // Stored under a name that is not its hash (only a corrupted repository can hold one).
    const loop = 'ee'.repeat(32);
    const p = repo.objectPath('dirtree', loop);
    mkdirSync(path.dirname(p), { recursive: true });
    writeFileSync(p, rawDirTree([['f', file]], [['again', loop, meta]]));
    const commit = await rawCommit(repo, loop, meta);
    const dest = path.join(d, 'dest');
    for (const opts of [{}, { userMode: true }, { noHardlinks: true }]) {
      await expect(checkout(repo, { commit, dest, ...opts })).rejects.toMatchObject({ code: 'OBJECT_CORRUPTED', data: { dirtree: loop, name: 'again' } });
      expect(existsSync(dest)).toBe(false);
    }
    await expect(ls(repo, commit, '/', { recursive: true })).rejects.toMatchObject({ code: 'OBJECT_CORRUPTED', data: { dirtree: loop } });
  });

  it('a tree whose paths would pass PATH_MAX is refused before anything is written', async () => {
    const { d, repo, file, meta } = await setup();
    // 1,400 nested directories named "dd": paths of 4,200 bytes and more.
    let tree = await putRaw(repo, 'dirtree', rawDirTree([['f', file]], []));
    for (let i = 0; i < 1400; i++) tree = await putRaw(repo, 'dirtree', rawDirTree([], [['dd', tree, meta]]));
    const commit = await rawCommit(repo, tree, meta);
    const dest = path.join(d, 'dest');
    await expect(checkout(repo, { commit, dest, userMode: true })).rejects.toMatchObject({ code: 'LIMIT_EXCEEDED', data: { limit: 4096 } });
    expect(existsSync(dest)).toBe(false);
    // A subpath short enough is fine.
    const sub = Array<string>(1200).fill('dd').join('/');
    await checkout(repo, { commit, dest, userMode: true, subpath: sub });
    expect(readFileSync(path.join(dest, ...Array<string>(200).fill('dd'), 'f'), 'utf8')).toBe('pwned\n');
  });

  it('the same repository checks out fine with valid names (control)', async () => {
    const { d, repo, file, meta } = await setup();
    const tree = await putRaw(repo, 'dirtree', rawDirTree([['aaa', file]], []));
    const commit = await rawCommit(repo, tree, meta);
    await checkout(repo, { commit, dest: path.join(d, 'dest') });
    expect(readFileSync(path.join(d, 'dest', 'aaa'), 'utf8')).toBe('pwned\n');
    expect(hex(new Uint8Array(0))).toBe('');
  });
});
