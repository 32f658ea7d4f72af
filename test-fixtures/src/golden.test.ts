import { readFileSync, readdirSync, statSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Variant, bswap64, decode, decodeNormal, encode, isNormalForm } from '@larch/gvariant';
import { goldenDir, goldenPath } from './golden.js';
import { decodeArchiveFile, decodeBareUserFile, goldenObjects } from './golden-objects.js';
import {
  contentChecksum,
  encodeArchiveFile,
  encodeCommit,
  encodeDirMeta,
  encodeDirTree,
  encodeTombstone,
  sha256Hex,
} from './hostile.js';

const TYPES: Record<string, string> = {
  commit: '(a{sv}aya(say)sstayay)',
  dirtree: '(a(say)a(sayay))',
  dirmeta: '(uuua(ayay))',
  commitmeta: 'a{sv}',
  'tombstone-commit': 'a{sv}',
};
const EXAMPLE_COMMIT = readFileSync(goldenPath('example-commit.txt'), 'utf8').trim();
const objects = goldenObjects();
const metadata = objects.filter((o) => o.ext in TYPES);

function totalSize(dir: string): number {
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = `${dir}/${e.name}`;
    n += e.isDirectory() ? totalSize(p) : statSync(p).size;
  }
  return n;
}

describe('golden files', () => {
  it('hold the spec example commit and every object kind, in under 200 KB', () => {
    expect(EXAMPLE_COMMIT).toBe('523dfdfd32c67bb444a4ea88a9ed9c0757147265835f891b5eee72895668366d');
    expect(new Set(objects.map((o) => o.ext))).toEqual(new Set(['commit', 'dirtree', 'dirmeta', 'commitmeta', 'tombstone-commit', 'filez']));
    expect(totalSize(goldenDir())).toBeLessThan(200 * 1024);
  });
});

describe('golden objects through @larch/gvariant', () => {
  it.each(metadata.map((o) => [`${o.checksum.slice(0, 12)}.${o.ext}`, o] as const))('%s decodes and re-encodes byte for byte', (_, o) => {
    const type = TYPES[o.ext];
    expect(isNormalForm(type, o.bytes)).toBe(true);
    const value = decodeNormal(type, o.bytes);
    expect(Buffer.from(encode(type, value)).equals(Buffer.from(o.bytes))).toBe(true);
  });

  it.each(metadata.filter((o) => ['commit', 'dirtree', 'dirmeta'].includes(o.ext)).map((o) => [`${o.checksum.slice(0, 12)}.${o.ext}`, o] as const))(
    '%s is named by the sha256 of its bytes',
    (_, o) => {
      expect(sha256Hex(o.bytes)).toBe(o.checksum);
    },
  );

  it('the summary round-trips and lists the example commit with its size', () => {
    const bytes = new Uint8Array(readFileSync(goldenPath('summary')));
    const type = '(a(s(taya{sv}))a{sv})';
    const value = decodeNormal<[Array<[string, [bigint, Uint8Array, Array<[string, Variant]>]]>, Array<[string, Variant]>]>(type, bytes);
    expect(Buffer.from(encode(type, value)).equals(Buffer.from(bytes))).toBe(true);
    const [refs, meta] = value;
    expect(refs.map((r) => r[0])).toEqual(['test']);
    expect(refs[0][1][0]).toBe(142n); // commit size, little-endian (not swapped)
    expect(Buffer.from(refs[0][1][1]).toString('hex')).toBe(EXAMPLE_COMMIT);
    const mode = meta.find(([k]) => k === 'ostree.summary.mode')?.[1];
    expect(mode?.value).toBe('archive-z2');
  });

  it('a single flipped byte in the commit breaks its checksum or its normal form', () => {
    const commit = metadata.find((o) => o.ext === 'commit')!;
    const bad = Uint8Array.from(commit.bytes);
    bad[0x30] ^= 0x01;
    expect(sha256Hex(bad) !== commit.checksum || !isNormalForm(TYPES.commit, bad)).toBe(true);
  });
});

describe('raw object builders reproduce the golden bytes', () => {
  it('encodeDirMeta gives the root dirmeta', () => {
    const dm = metadata.find((o) => o.ext === 'dirmeta')!;
    expect(Buffer.from(encodeDirMeta({ uid: 0, gid: 0, mode: 0o40755 })).equals(Buffer.from(dm.bytes))).toBe(true);
  });

  it('encodeDirTree gives every golden dirtree from its decoded entries', () => {
    for (const o of metadata.filter((x) => x.ext === 'dirtree')) {
      const [files, dirs] = decode<[Array<[string, Uint8Array]>, Array<[string, Uint8Array, Uint8Array]>]>(TYPES.dirtree, o.bytes);
      const again = encodeDirTree({
        files: files.map(([name, checksum]) => ({ name, checksum })),
        dirs: dirs.map(([name, treeChecksum, metaChecksum]) => ({ name, treeChecksum, metaChecksum })),
      });
      expect(sha256Hex(again)).toBe(o.checksum);
    }
  });

  it('encodeCommit gives commit 523dfdfd… from the spec fields', () => {
    const bytes = encodeCommit({
      metadata: [
        ['version', new Variant('s', '1.0')],
        ['ostree.ref-binding', new Variant('as', ['test'])],
      ],
      subject: 'subj',
      body: 'body',
      timestamp: 1577836800n,
      rootTree: '71bb55e6c5c63ed91c8cdb1e7637389c9490c5b6badb64485e36dac1a42fa17c',
      rootMeta: '446a0ef11b7cc167f3b603e585c7eeeeb675faa412d5ec73f62988eb0b6c5488',
    });
    expect(sha256Hex(bytes)).toBe(EXAMPLE_COMMIT);
  });

  it('encodeTombstone gives the tombstone ostree prune wrote', () => {
    const t = metadata.find((o) => o.ext === 'tombstone-commit')!;
    expect(readFileSync(goldenPath('tombstone-commit.txt'), 'utf8').trim()).toBe(t.checksum);
    expect(Buffer.from(encodeTombstone(t.checksum)).equals(Buffer.from(t.bytes))).toBe(true);
  });

  it.each(objects.filter((o) => o.ext === 'filez').map((o) => [o.checksum.slice(0, 12), o] as const))(
    'archive object %s: content checksum matches its name and the header is rebuilt exactly',
    (_, o) => {
      const { meta, header, content, size } = decodeArchiveFile(o.bytes);
      expect(contentChecksum(meta, content)).toBe(o.checksum);
      expect(size).toBe(BigInt(meta.symlinkTarget ? 0 : content.length));
      const rebuilt = encodeArchiveFile(meta, content);
      expect(Buffer.from(rebuilt.subarray(0, header.length)).equals(Buffer.from(header))).toBe(true);
      expect(Buffer.from(decodeArchiveFile(rebuilt).content).equals(Buffer.from(content))).toBe(true);
    },
  );

  it('bare-user objects: user.ostreemeta and stored bytes give the same checksums', () => {
    const dir = goldenPath('bare-user');
    const names = readdirSync(dir).filter((n) => n.endsWith('.file'));
    expect(names).toHaveLength(3);
    for (const name of names) {
      const stored = new Uint8Array(readFileSync(`${dir}/${name}`));
      const xattr = new Uint8Array(readFileSync(`${dir}/${name}.ostreemeta`));
      const { meta, content } = decodeBareUserFile(stored, xattr);
      expect(contentChecksum(meta, content)).toBe(name.slice(0, 64));
    }
  });

  it('the commit timestamp is stored big-endian', () => {
    const c = metadata.find((o) => o.ext === 'commit')!;
    const fields = decode<unknown[]>(TYPES.commit, c.bytes);
    expect(bswap64(fields[5] as bigint)).toBe(1577836800n);
  });
});
