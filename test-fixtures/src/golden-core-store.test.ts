/**
 * core-store's object models against the golden objects the real ostree
 * wrote: parse then serialize must give the same bytes, and content
 * checksums computed by core-store must match the object names.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  contentChecksumOf,
  fileHeader,
  parseCommit,
  parseDirMeta,
  parseDirTree,
  serializeCommit,
  serializeDirMeta,
  serializeDirTree,
} from '@larch/core-store';
import { goldenPath } from './golden.js';
import { decodeArchiveFile, goldenObjects } from './golden-objects.js';
import { encodeFileHeader } from './hostile.js';

const objects = goldenObjects();
const EXAMPLE_COMMIT = readFileSync(goldenPath('example-commit.txt'), 'utf8').trim();
const same = (a: Uint8Array, b: Uint8Array): boolean => Buffer.from(a).equals(Buffer.from(b));

describe('core-store models on golden objects', () => {
  it('parseCommit reads the example commit and serializeCommit restores its bytes', () => {
    const o = objects.find((x) => x.ext === 'commit' && x.checksum === EXAMPLE_COMMIT)!;
    const c = parseCommit(o.bytes);
    expect(c.subject).toBe('subj');
    expect(c.body).toBe('body');
    expect(c.timestamp).toBe(1577836800n);
    expect(c.parent).toBeNull();
    expect(c.rootTree).toBe('71bb55e6c5c63ed91c8cdb1e7637389c9490c5b6badb64485e36dac1a42fa17c');
    expect(c.rootMeta).toBe('446a0ef11b7cc167f3b603e585c7eeeeb675faa412d5ec73f62988eb0b6c5488');
    expect(c.metadata.map(([k]) => k)).toEqual(['version', 'ostree.ref-binding']);
    expect(same(serializeCommit(c), o.bytes)).toBe(true);
  });

  it.each(objects.filter((o) => o.ext === 'dirtree').map((o) => [o.checksum.slice(0, 12), o] as const))(
    'dirtree %s round-trips through parseDirTree/serializeDirTree',
    (_, o) => {
      const t = parseDirTree(o.bytes);
      expect(t.files.length + t.dirs.length).toBeGreaterThan(0);
      expect(same(serializeDirTree(t), o.bytes)).toBe(true);
    },
  );

  it('dirmeta round-trips through parseDirMeta/serializeDirMeta', () => {
    const o = objects.find((x) => x.ext === 'dirmeta')!;
    const m = parseDirMeta(o.bytes);
    expect(m).toMatchObject({ uid: 0, gid: 0, mode: 0o40755 });
    expect(same(serializeDirMeta(m), o.bytes)).toBe(true);
  });

  it.each(objects.filter((o) => o.ext === 'filez').map((o) => [o.checksum.slice(0, 12), o] as const))(
    'content object %s: contentChecksumOf and fileHeader agree with the golden object',
    (_, o) => {
      const { meta, content } = decodeArchiveFile(o.bytes);
      const fm = {
        uid: meta.uid ?? 0,
        gid: meta.gid ?? 0,
        mode: meta.mode ?? 0,
        symlinkTarget: meta.symlinkTarget ?? '',
        xattrs: (meta.xattrs ?? []).map((x) => ({ name: x.name, value: typeof x.value === 'string' ? Buffer.from(x.value) : x.value })),
      };
      expect(contentChecksumOf(fm, content)).toBe(o.checksum);
      expect(same(fileHeader(fm), encodeFileHeader(meta))).toBe(true);
    },
  );

  it('parseDirTree rejects a dirtree named ".." that the raw builder can write', async () => {
    const { encodeDirTree } = await import('./hostile.js');
    const bad = encodeDirTree({ files: [{ name: '..', checksum: '00'.repeat(32) }], dirs: [] });
    expect(() => parseDirTree(bad)).toThrow();
  });
});
