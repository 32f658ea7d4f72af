import { describe, expect, it } from 'vitest';
import { classifyRepoPath, parsePrefix, resolveTarget, splitTarget, type Mount } from '../src/request-path.js';
import { parseRange } from '../src/serve-file.js';

const ROOT: Mount = { prefix: [], root: '/srv/repo' };
const OS: Mount = { prefix: ['os'], root: '/srv/os' };
const OBJ = `objects/ab/${'c'.repeat(62)}`;

describe('splitTarget', () => {
  it('decodes percent-encoded segments', () => {
    expect(splitTarget('/refs/heads/a%2Db')).toEqual(['refs', 'heads', 'a-b']);
  });
  it.each([
    '/../etc/passwd',
    '/%2e%2e/etc/passwd',
    '/%2E%2E/x',
    '/objects/../../etc/passwd',
    '/objects/%2F..',
    '/objects/%2f%2e%2e%2fconfig',
    '/refs/heads/..%5c..%5cx',
    '/refs\\heads\\x',
    '/a%00b',
    '/./config',
    '//config',
    'config',
    'http://example.com/config',
    '/%zz',
  ])('refuses %s', (t) => {
    expect(Array.isArray(splitTarget(t))).toBe(false);
  });
});

describe('classifyRepoPath', () => {
  it.each([
    ['config', 'config'],
    ['summary', 'summary'],
    ['summary.sig', 'summary-sig'],
    [`${OBJ}.commit`, 'object'],
    [`${OBJ}.filez`, 'object'],
    [`${OBJ}.dirtree`, 'object'],
    [`${OBJ}.dirmeta`, 'object'],
    [`${OBJ}.commitmeta`, 'commitmeta'],
    ['refs/heads/exampleos/x86_64/stable', 'ref'],
    ['refs/remotes/origin/main', 'ref'],
    ['refs/mirrors/org.example.Os/main', 'ref'],
    ['deltas/Wq/39jwpAbc_d-Uj39_x/superblock', 'delta'],
    ['deltas/Wq/39jwpAbc/0', 'delta'],
    ['delta-indexes/Wq/39jwpAbc.index', 'delta-index'],
    ['extensions/rpmostree/x', 'extension'],
  ])('serves %s as %s', (p, kind) => {
    expect(classifyRepoPath(p.split('/'))).toBe(kind);
  });
  it.each([
    'tmp/cache/summaries/origin',
    'state/x.commitpartial',
    'origin.trustedkeys.gpg',
    'refs/heads/main.lock',
    'refs/heads',
    'refs/tags/x',
    'objects/ab',
    `objects/AB/${'c'.repeat(62)}.commit`,
    `objects/ab/${'c'.repeat(61)}.commit`,
    `${OBJ}.file`,
    `${OBJ}.payload-link`,
    'deltas/Wq/x/1/extra',
    'config/x',
    'extensions',
    '.lock',
    'objects/ab/',
  ])('refuses %s', (p) => {
    expect(classifyRepoPath(p.split('/'))).toBeNull();
  });
});

describe('resolveTarget', () => {
  it('picks the longest matching prefix', () => {
    const r = resolveTarget('/os/config', [OS, ROOT]);
    expect(r.ok && r.mount).toBe(OS);
  });
  it('answers 400 for traversal and 404 for unpublished files', () => {
    expect(resolveTarget('/os/../config', [OS, ROOT])).toMatchObject({ ok: false, status: 400 });
    expect(resolveTarget('/tmp/x', [ROOT])).toMatchObject({ ok: false, status: 404 });
    expect(resolveTarget('/config', [OS])).toMatchObject({ ok: false, status: 404 });
  });
});

describe('parsePrefix', () => {
  it('accepts / and named prefixes', () => {
    expect(parsePrefix('/')).toEqual([]);
    expect(parsePrefix('/os/stable/')).toEqual(['os', 'stable']);
  });
  it('rejects dot segments and encodings', () => {
    expect(() => parsePrefix('/os/..')).toThrow(RangeError);
    expect(() => parsePrefix('/o%73')).toThrow(RangeError);
  });
});

describe('parseRange', () => {
  it('parses the three single-range forms', () => {
    expect(parseRange('bytes=0-9', 100)).toEqual({ start: 0, end: 9 });
    expect(parseRange('bytes=90-', 100)).toEqual({ start: 90, end: 99 });
    expect(parseRange('bytes=-10', 100)).toEqual({ start: 90, end: 99 });
    expect(parseRange('bytes=50-1000', 100)).toEqual({ start: 50, end: 99 });
  });
  it('reports unsatisfiable ranges and ignores others', () => {
    expect(parseRange('bytes=100-', 100)).toBe('unsatisfiable');
    expect(parseRange('bytes=-0', 100)).toBe('unsatisfiable');
    expect(parseRange('bytes=0-1,5-6', 100)).toBeNull();
    expect(parseRange('items=0-1', 100)).toBeNull();
    expect(parseRange('bytes=9-1', 100)).toBeNull();
  });
});
