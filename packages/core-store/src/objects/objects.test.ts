import { describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { Variant } from '@larch/gvariant';
import { S_IFDIR, S_IFLNK, S_IFREG, type FileMeta } from '../types.js';
import { contentChecksumOf, fileHeader, parseFileHeaderVariant, serializeFileHeaderVariant } from './file-header.js';
import { archiveHeaderLength, parseArchiveHeaderVariant, serializeArchiveHeader } from './archive-header.js';
import { parseDirMeta, serializeDirMeta } from './dirmeta.js';
import { parseDirTree, serializeDirTree } from './dirtree.js';
import { parseCommit, serializeCommit } from './commit.js';
import { parseCommitMeta, serializeCommitMeta } from './commitmeta.js';
import { parseTombstone, serializeTombstone } from './tombstone.js';
import { parseXattrs, serializeXattrs } from './xattrs.js';
import { parseUserMeta, serializeUserMeta, bareUserStoredMode } from './user-meta.js';
import { LarchError } from '../errors.js';

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const hx = (b: Uint8Array) => Buffer.from(b).toString('hex');
const un = (s: string) => new Uint8Array(Buffer.from(s.replace(/[\s|]/g, ''), 'hex'));
const reg = (mode = 0o644, xattrs: FileMeta['xattrs'] = []): FileMeta => ({ uid: 0, gid: 0, mode: S_IFREG | mode, symlinkTarget: '', xattrs });
const enc = new TextEncoder();

const HELLO = '44f778e59f0a4748d6b0c90a47347212a231c4ad1e8f7ea5c5dffc7749153a6b';
const EMPTY = 'cc700d46f407c6c5ab2d5dde474366a928b7398277e61162e7f8ec06f469f07e';
const LINK = 'f66efa496a72379413c44593de510dc344beb045294f1a543da87b2b6118db35';
const DIRMETA = '446a0ef11b7cc167f3b603e585c7eeeeb675faa412d5ec73f62988eb0b6c5488';

describe('content checksums (repo-format.md section 2 vectors)', () => {
  it('regular 0644 "hello\\n"', () => {
    expect(contentChecksumOf(reg(), enc.encode('hello\n'))).toBe(HELLO);
    expect(hx(fileHeader(reg()))).toBe('00000012' + '00000000' + '0000000000000000000081a400000000' + '0011');
  });
  it('regular 0644 empty', () => {
    expect(contentChecksumOf(reg())).toBe(EMPTY);
  });
  it('symlink to hello.txt', () => {
    const m: FileMeta = { uid: 0, gid: 0, mode: S_IFLNK | 0o777, symlinkTarget: 'hello.txt', xattrs: [] };
    expect(contentChecksumOf(m)).toBe(LINK);
    expect(hx(fileHeader(m))).toBe('0000001b00000000' + '000000000000000000000a1ff00000000'.slice(1) + '68656c6c6f2e74787400' + '1a');
  });
  it('xattrs are sorted whatever the input order', () => {
    const x = [
      { name: 'user.b', value: enc.encode('2') },
      { name: 'user.a', value: enc.encode('1') },
    ];
    expect(contentChecksumOf(reg(0o644, x), enc.encode('x'))).toBe('2574b4a04f7b5364089d4e26ba0ceefd058d8fe982f729605ecb964aaac65ca1');
  });
  it('xattr array bytes match gvariant.md 5.5', () => {
    expect(hx(serializeXattrs([{ name: 'user.a', value: enc.encode('1') }]))).toBe('757365722e61003107' + '09');
    const back = parseXattrs(un('757365722e6100310709'), 0, 10);
    expect(back[0].name).toBe('user.a');
    expect(hx(back[0].value)).toBe('31');
  });
  it('header variant round-trips and rejects non-normal and bad modes', () => {
    const m = reg(0o4755, [{ name: 'security.x', value: new Uint8Array([0, 1]) }]);
    const v = serializeFileHeaderVariant(m);
    expect(parseFileHeaderVariant(v)).toEqual({ ...m, xattrs: [{ name: 'security.x', value: new Uint8Array([0, 1]) }] });
    const bad = Uint8Array.from(v);
    bad[11] = 0; // mode 0100000|... -> clear low byte keeps it valid; instead break the type bits
    bad[9] = 0x20; // S_IFCHR
    expect(() => parseFileHeaderVariant(bad)).toThrow(LarchError);
    expect(() => parseFileHeaderVariant(v.subarray(0, v.length - 1))).toThrow(LarchError);
    expect(() => serializeFileHeaderVariant({ ...m, mode: S_IFREG | 0o200000 | 0o644 })).toThrow(/outside 07777/);
  });
  it('rejects unsorted or duplicate xattrs on read', () => {
    const a = serializeXattrs([{ name: 'user.a', value: enc.encode('1') }]).subarray(0, 9);
    const b = serializeXattrs([{ name: 'user.b', value: enc.encode('2') }]).subarray(0, 9);
    // hand-build [b, a] array: elements then offsets 9, 18
    const arr = new Uint8Array(20);
    arr.set(b, 0);
    arr.set(a, 9);
    arr[18] = 9;
    arr[19] = 18;
    expect(() => parseXattrs(arr, 0, 20)).toThrow(/sorted/);
  });
});

describe('archive header (repo-format.md 4.1)', () => {
  it('matches the confirmed bytes for hello', () => {
    const h = serializeArchiveHeader({ meta: reg(), size: 6 });
    expect(hx(h)).toBe('0000001a00000000' + '0000000000000006' + '000000000000000000081a400000000'.padStart(32, '0') + '0019');
    const len = archiveHeaderLength(h, h.length + 8);
    expect(len).toBe(0x1a);
    expect(parseArchiveHeaderVariant(h.subarray(8))).toEqual({ meta: reg(), size: 6 });
  });
  it('bounds the header length', () => {
    const h = serializeArchiveHeader({ meta: reg(), size: 6 });
    expect(() => archiveHeaderLength(h, 20)).toThrow(/exceeds size/);
    expect(() => archiveHeaderLength(un('0000000000000000'), 100)).toThrow(/zero/);
    expect(() => archiveHeaderLength(un('ffffffff00000000'), 2 ** 40)).toThrow(/exceeds limit/);
  });
  it('rejects a symlink with a size', () => {
    const m: FileMeta = { uid: 0, gid: 0, mode: S_IFLNK | 0o777, symlinkTarget: 't', xattrs: [] };
    const h = serializeArchiveHeader({ meta: m, size: 0 });
    const bad = Uint8Array.from(h.subarray(8));
    bad[7] = 1;
    expect(() => parseArchiveHeaderVariant(bad)).toThrow(/size/);
  });
});

describe('dirmeta / dirtree (gvariant.md 5.1, 5.2; repo-format.md 3.1)', () => {
  it('dirmeta 0:0 040755', () => {
    const b = serializeDirMeta({ uid: 0, gid: 0, mode: S_IFDIR | 0o755, xattrs: [] });
    expect(hx(b)).toBe('00000000000000000000' + '41ed');
    expect(sha(b)).toBe(DIRMETA);
    expect(parseDirMeta(b).mode).toBe(S_IFDIR | 0o755);
    expect(() => parseDirMeta(un('000000000000000000008 1a4'.replace(' ', '')))).toThrow(LarchError);
  });
  it('dirtree for sub/ with one empty file', () => {
    const b = serializeDirTree({ files: [{ name: 'empty', checksum: EMPTY }], dirs: [] });
    expect(b.length).toBe(41);
    expect(hx(b)).toBe('656d70747900' + EMPTY + '06' + '27' + '28');
    expect(sha(b)).toBe('81ea3e94a64fcb26ef505be1e7fa22c9fc2289eb87053f0e2eae1daf7a1e3257');
    expect(parseDirTree(b)).toEqual({ files: [{ name: 'empty', checksum: EMPTY }], dirs: [] });
  });
  it('empty dirtree', () => {
    const b = serializeDirTree({ files: [], dirs: [] });
    expect(hx(b)).toBe('00');
    expect(sha(b)).toBe('6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d');
  });
  it('root tree of the spec example and sorting by bytes', () => {
    const sub = sha(serializeDirTree({ files: [{ name: 'empty', checksum: EMPTY }], dirs: [] }));
    const root = serializeDirTree({
      files: [
        { name: 'link', checksum: LINK },
        { name: 'hello.txt', checksum: HELLO },
      ],
      dirs: [{ name: 'sub', treeChecksum: sub, metaChecksum: DIRMETA }],
    });
    expect(sha(root)).toBe('71bb55e6c5c63ed91c8cdb1e7637389c9490c5b6badb64485e36dac1a42fa17c');
    const t = parseDirTree(root);
    expect(t.files.map((f) => f.name)).toEqual(['hello.txt', 'link']);
    expect(t.dirs[0]).toEqual({ name: 'sub', treeChecksum: sub, metaChecksum: DIRMETA });
    // byte order: 'B' (0x42) < 'a' (0x61) and U+FFFD (ef bf bd) < U+1F600 (f0 ...)
    const t2 = parseDirTree(serializeDirTree({ files: [{ name: '😀', checksum: EMPTY }, { name: '\uFFFD', checksum: EMPTY }, { name: 'a', checksum: EMPTY }, { name: 'B', checksum: EMPTY }], dirs: [] }));
    expect(t2.files.map((f) => f.name)).toEqual(['B', 'a', '\uFFFD', '😀']);
  });
  it('rejects bad names, duplicates, short checksums and unsorted entries', () => {
    expect(() => serializeDirTree({ files: [{ name: '..', checksum: EMPTY }], dirs: [] })).toThrow(LarchError);
    expect(() => serializeDirTree({ files: [{ name: 'a/b', checksum: EMPTY }], dirs: [] })).toThrow(/Invalid \//);
    expect(() => serializeDirTree({ files: [{ name: 'x', checksum: EMPTY }], dirs: [{ name: 'x', treeChecksum: EMPTY, metaChecksum: EMPTY }] })).toThrow(/Duplicate/);
    // entry "a" with a 31-byte checksum: 2 + 31 + 1 offset
    const e = new Uint8Array([0x61, 0, ...new Array(31).fill(7), 2]);
    const arr = new Uint8Array([...e, e.length]);
    const tree = new Uint8Array([...arr, arr.length]);
    expect(() => parseDirTree(tree)).toThrow(/length 31 expected 32/);
    // unsorted: b then a
    const one = (n: string) => serializeDirTree({ files: [{ name: n, checksum: EMPTY }], dirs: [] }).subarray(0, 35);
    const two = new Uint8Array([...one('b'), ...one('a'), 35, 70]);
    expect(() => parseDirTree(new Uint8Array([...two, two.length]))).toThrow(/sorted/);
    // '.' entry crafted past the writer
    const dotEntry = Uint8Array.from(one('x'));
    dotEntry[0] = 0x2e; // 'x' -> '.'
    const dot = new Uint8Array([...dotEntry, 35]);
    expect(() => parseDirTree(new Uint8Array([...dot, dot.length]))).toThrow(LarchError);
  });
  it('every single-byte mutation either parses to a re-serializable value or throws LarchError', () => {
    const b = serializeDirTree({ files: [{ name: 'hello', checksum: HELLO }], dirs: [{ name: 'd', treeChecksum: EMPTY, metaChecksum: DIRMETA }] });
    for (let i = 0; i < b.length; i++) {
      for (const v of [0, 1, 0x2f, 0xff, b[i] ^ 0x80]) {
        const m = Uint8Array.from(b);
        m[i] = v;
        try {
          const t = parseDirTree(m);
          expect(hx(serializeDirTree(t))).toBe(hx(m));
        } catch (e) {
          expect(e).toBeInstanceOf(LarchError);
        }
      }
    }
  });
});

describe('commit (gvariant.md 5.6)', () => {
  const spec = {
    metadata: [
      ['version', new Variant('s', '1.0')],
      ['ostree.ref-binding', new Variant('as', ['test'])],
    ] as Array<[string, Variant]>,
    parent: null,
    subject: 'subj',
    body: 'body',
    timestamp: 1577836800n,
    rootTree: '71bb55e6c5c63ed91c8cdb1e7637389c9490c5b6badb64485e36dac1a42fa17c',
    rootMeta: DIRMETA,
  };
  it('serializes to commit 523dfdfd… and parses back', () => {
    const b = serializeCommit(spec);
    expect(b.length).toBe(142);
    expect(sha(b)).toBe('523dfdfd32c67bb444a4ea88a9ed9c0757147265835f891b5eee72895668366d');
    const c = parseCommit(b);
    expect(c.timestamp).toBe(1577836800n);
    expect(c.subject).toBe('subj');
    expect(c.parent).toBeNull();
    expect(c.rootTree).toBe(spec.rootTree);
    expect(c.metadata.map(([k]) => k)).toEqual(['version', 'ostree.ref-binding']);
    const withParent = parseCommit(serializeCommit({ ...spec, parent: HELLO }));
    expect(withParent.parent).toBe(HELLO);
  });
  it('rejects a commit with a short root checksum or non-normal bytes', () => {
    const b = serializeCommit(spec);
    expect(() => parseCommit(b.subarray(0, 141))).toThrow(LarchError);
    const m = Uint8Array.from(b);
    m[0x3e] = 1; // padding byte before the timestamp
    expect(() => parseCommit(m)).toThrow(LarchError);
  });
});

describe('commitmeta, tombstone, user.ostreemeta', () => {
  it('commitmeta matches the confirmed bytes (repo-format.md 6)', () => {
    const b = serializeCommitMeta([['ostree.sign.dummy', new Variant('aay', [enc.encode('abc')])]]);
    expect(hx(b)).toBe('6f73747265652e7369676e2e64756d6d7900' + '000000000000' + '61626303' + '00616179' + '12' + '21');
    expect(parseCommitMeta(b)[0][0]).toBe('ostree.sign.dummy');
  });
  it('tombstone matches the confirmed bytes (repo-format.md 7)', () => {
    const b = serializeTombstone(HELLO);
    expect(hx(b)).toBe('636f6d6d69740000' + Buffer.from(HELLO).toString('hex') + '00' + '00617979'.slice(0, 6) + '07' + '4d');
    expect(parseTombstone(b)).toBe(HELLO);
  });
  it('user.ostreemeta (repo-format.md 4.3)', () => {
    expect(hx(serializeUserMeta(reg()))).toBe('00000000000000000000' + '81a4');
    const l: FileMeta = { uid: 0, gid: 0, mode: S_IFLNK | 0o777, symlinkTarget: 'x', xattrs: [] };
    expect(hx(serializeUserMeta(l))).toBe('0000000000000000' + '0000a1ff');
    expect(parseUserMeta(un('000003e8000003e800008180'))).toEqual({ uid: 1000, gid: 1000, mode: S_IFREG | 0o600, xattrs: [] });
    expect(bareUserStoredMode(S_IFREG | 0o4755)).toBe(S_IFREG | 0o755);
    expect(bareUserStoredMode(S_IFREG | 0o777)).toBe(S_IFREG | 0o775);
    expect(bareUserStoredMode(S_IFREG | 0o600)).toBe(S_IFREG | 0o600);
    expect(bareUserStoredMode(S_IFREG | 0o200)).toBe(S_IFREG | 0o600);
  });
});
