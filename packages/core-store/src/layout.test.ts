import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  checksumFromModifiedBase64,
  deltaIndexRelPath,
  deltaName,
  deltaRelDir,
  deltaRelPath,
  modifiedBase64,
  objectRelPath,
  objectSuffix,
  parseDeltaDirName,
  parseDeltaIndexName,
  refRelPath,
  refsKindDir,
} from './layout.js';

const HAVE_OSTREE = spawnSync('ostree', ['--version']).status === 0;
const interop = HAVE_OSTREE || process.env.CI === 'true' ? it : it.skip;

// 0xff bytes are all ones: base64 "/" in every position but the last, the case the `_` is for.
const ALL_ONES = 'f'.repeat(64);
const A = '0123456789abcdef'.repeat(4);

describe('layout', () => {
  it('writes OSTree modified base64: no padding, / as _, and decodes it back', () => {
    expect(modifiedBase64(ALL_ONES)).toBe(`${'_'.repeat(42)}8`);
    expect(modifiedBase64(A)).toBe(Buffer.from(A, 'hex').toString('base64').replace(/=$/, '').replace(/\//g, '_'));
    expect(modifiedBase64(A)).toHaveLength(43);
    expect(checksumFromModifiedBase64(modifiedBase64(ALL_ONES))).toBe(ALL_ONES);
    expect(checksumFromModifiedBase64(modifiedBase64(A))).toBe(A);
  });

  it('refuses names OSTree never writes: padded, with / or other characters, wrong length', () => {
    const good = modifiedBase64(A);
    expect(checksumFromModifiedBase64(`${good}=`)).toBeNull();
    expect(checksumFromModifiedBase64(good.replace(/_/g, '/').replace(/^./, '/'))).toBeNull();
    expect(checksumFromModifiedBase64(`${good.slice(0, 20)}.${good.slice(21)}`)).toBeNull();
    expect(checksumFromModifiedBase64(`${good.slice(0, 20)} ${good.slice(21)}`)).toBeNull();
    expect(checksumFromModifiedBase64(good.slice(1))).toBeNull();
    expect(checksumFromModifiedBase64(`${good}A`)).toBeNull();
    expect(checksumFromModifiedBase64('')).toBeNull();
    expect(parseDeltaDirName('..', good.slice(2))).toBeNull();
    expect(parseDeltaDirName(good.slice(0, 2), `${good.slice(2)}-`)).toBeNull();
    expect(parseDeltaIndexName(good.slice(0, 2), `${good.slice(2)}.idx`)).toBeNull();
  });

  it('builds object, delta and delta index paths only from checksums', () => {
    expect(objectRelPath(A, objectSuffix('file', 'archive'))).toBe(`objects/01/${A.slice(2)}.filez`);
    expect(objectRelPath(A, objectSuffix('file', 'bare'))).toBe(`objects/01/${A.slice(2)}.file`);
    expect(objectRelPath(A, objectSuffix('commit', 'archive'))).toBe(`objects/01/${A.slice(2)}.commit`);
    expect(deltaRelPath(ALL_ONES, A, 0)).toBe(`deltas/__/${'_'.repeat(40)}8-${modifiedBase64(A)}/0`);
    expect(deltaName(null, A)).toBe(A);
    for (const bad of ['../../etc/passwd', A.toUpperCase(), A.slice(1), `${A.slice(1)}/`]) {
      expect(() => objectRelPath(bad, 'commit')).toThrow();
      expect(() => deltaRelDir(null, bad)).toThrow();
      expect(() => deltaRelDir(bad, A)).toThrow();
      expect(() => deltaIndexRelPath(bad)).toThrow();
    }
    expect(() => deltaRelPath(null, A, -1)).toThrow(RangeError);
    expect(() => deltaRelPath(null, A, 1.5)).toThrow(RangeError);
  });

  it('builds ref paths of the three kinds, validated as refspecs are', () => {
    expect(refsKindDir('heads')).toBe('refs/heads');
    expect(refsKindDir('remotes')).toBe('refs/remotes');
    expect(refsKindDir('mirrors')).toBe('refs/mirrors');
    expect(refRelPath('heads', null, 'exampleos/x86_64/stable')).toBe('refs/heads/exampleos/x86_64/stable');
    expect(refRelPath('remotes', 'origin', 'main')).toBe('refs/remotes/origin/main');
    expect(refRelPath('mirrors', 'org.example.Os', 'main')).toBe('refs/mirrors/org.example.Os/main');
    for (const bad of ['../main', 'a/../../b', '/main', 'main/', '', 'a//b', '.hidden/..']) {
      expect(() => refRelPath('heads', null, bad), bad).toThrow(expect.objectContaining({ code: 'INVALID_REF' }));
      expect(() => refRelPath('remotes', 'origin', bad), bad).toThrow(expect.objectContaining({ code: 'INVALID_REF' }));
    }
    for (const bad of ['..', 'a/b', '', 'x y']) expect(() => refRelPath('remotes', bad, 'main'), bad).toThrow(expect.objectContaining({ code: 'INVALID_REF' }));
    for (const bad of ['..', 'a/b', 'org..x', '']) expect(() => refRelPath('mirrors', bad, 'main'), bad).toThrow(expect.objectContaining({ code: 'INVALID_REF' }));
    expect(() => refRelPath('heads', 'origin', 'main')).toThrow(RangeError);
    expect(() => refRelPath('remotes', null, 'main')).toThrow(RangeError);
    expect(() => refsKindDir('tags' as 'heads')).toThrow(RangeError);
  });

  describe('against the real ostree', () => {
    let dir: string;
    beforeAll(() => {
      dir = mkdtempSync(join(tmpdir(), 'larch-layout-'));
    });
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    interop('names the delta directories, delta indexes and objects ostree writes', () => {
      const repo = join(dir, 'repo');
      const ostree = (...args: string[]): string => execFileSync('ostree', [`--repo=${repo}`, ...args], { encoding: 'utf8' }).trim();
      ostree('init', '--mode=archive');
      const tree = join(dir, 'tree');
      mkdirSync(tree);
      // Commit until FROM and TO between them put a `_` (a `/` in base64) in the delta's
      // directory name, so the substitution is checked against ostree too (each commit has
      // about an even chance).
      const commits: string[] = [];
      for (let i = 0; i < 40; i++) {
        writeFileSync(join(tree, 'f'), `content ${i}\n`);
        commits.push(ostree('commit', '--branch=main', `--subject=${i}`, `--tree=dir=${tree}`));
        const n = commits.length;
        if (n >= 2 && /_/.test(modifiedBase64(commits[n - 2]) + modifiedBase64(commits[n - 1]))) break;
      }
      const to = commits[commits.length - 1];
      const from = commits[commits.length - 2];
      expect(modifiedBase64(from) + modifiedBase64(to)).toMatch(/_/);
      ostree('static-delta', 'generate', `--from=${from}`, `--to=${to}`);
      ostree('static-delta', 'generate', '--empty', `--to=${to}`);
      ostree('static-delta', 'reindex');

      const written: string[] = [];
      for (const pre of readdirSync(join(repo, 'deltas'))) for (const rest of readdirSync(join(repo, 'deltas', pre))) written.push(`deltas/${pre}/${rest}`);
      expect(written.sort()).toEqual([deltaRelDir(from, to), deltaRelDir(null, to)].sort());
      expect(existsSync(join(repo, deltaRelPath(from, to, 'superblock')))).toBe(true);
      expect(existsSync(join(repo, deltaRelPath(null, to, 0)))).toBe(true);
      const decoded = written.map((w) => {
        const [, pre, rest] = w.split('/');
        return parseDeltaDirName(pre, rest);
      });
      expect(decoded).toContainEqual({ from, to });
      expect(decoded).toContainEqual({ from: null, to });
      // ostree's own listing names the same deltas.
      expect(ostree('static-delta', 'list').split('\n').sort()).toEqual([deltaName(from, to), deltaName(null, to)].sort());

      const indexes: string[] = [];
      for (const pre of readdirSync(join(repo, 'delta-indexes'))) for (const f of readdirSync(join(repo, 'delta-indexes', pre))) indexes.push(`delta-indexes/${pre}/${f}`);
      expect(indexes).toEqual([deltaIndexRelPath(to)]);
      const [, ipre, ifile] = indexes[0].split('/');
      expect(parseDeltaIndexName(ipre, ifile)).toBe(to);

      for (const c of commits) expect(existsSync(join(repo, objectRelPath(c, objectSuffix('commit', 'archive'))))).toBe(true);
    });
    interop('names the ref files ostree writes', () => {
      const repo = join(dir, 'refs-repo');
      const ostree = (...args: string[]): string => execFileSync('ostree', [`--repo=${repo}`, ...args], { encoding: 'utf8' }).trim();
      ostree('init', '--mode=archive', '--collection-id=org.example.Os');
      const tree = join(dir, 'refs-tree');
      mkdirSync(tree);
      writeFileSync(join(tree, 'f'), 'x\n');
      const c = ostree('commit', '--branch=os/stable', `--tree=dir=${tree}`);
      ostree('refs', '--create=origin:os/testing', c);
      ostree('refs', '--collections', '--create=org.other.Os:os/beta', c);
      const files: string[] = [];
      const walk = (rel: string): void => {
        for (const e of readdirSync(join(repo, rel), { withFileTypes: true })) {
          if (e.isDirectory()) walk(`${rel}/${e.name}`);
          else files.push(`${rel}/${e.name}`);
        }
      };
      walk('refs');
      expect(files.sort()).toEqual([refRelPath('heads', null, 'os/stable'), refRelPath('mirrors', 'org.other.Os', 'os/beta'), refRelPath('remotes', 'origin', 'os/testing')].sort());
    });
  });
});
