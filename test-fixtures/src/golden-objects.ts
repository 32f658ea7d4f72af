/**
 * Readers for the golden files: each object of golden/objects with its name
 * split into checksum and type, and the archive/bare-user content objects
 * decoded into metadata and content (independently of core-store, so the
 * golden files can check core-store and not the other way round).
 */
import { readFileSync, readdirSync } from 'node:fs';
import { inflateRawSync } from 'node:zlib';
import { bswap32, bswap64, decode } from '@larch/gvariant';
import { goldenPath } from './golden.js';
import type { RawFileMeta, RawXattr } from './hostile.js';

export interface GoldenObject {
  checksum: string;
  /** The file extension: commit, dirtree, dirmeta, commitmeta, tombstone-commit, filez. */
  ext: string;
  bytes: Uint8Array;
}

/** Every object in golden/objects (sorted by file name). */
export function goldenObjects(): GoldenObject[] {
  const dir = goldenPath('objects');
  return readdirSync(dir)
    .sort()
    .map((name) => {
      const m = /^([0-9a-f]{64})\.([a-z-]+)$/.exec(name);
      if (!m) throw new Error(`unexpected golden object name ${name}`);
      return { checksum: m[1], ext: m[2], bytes: new Uint8Array(readFileSync(`${dir}/${name}`)) };
    });
}

const dec = new TextDecoder();

function xattrsOf(list: Array<[Uint8Array, Uint8Array]>): RawXattr[] {
  return list.map(([n, v]) => ({ name: dec.decode(n.subarray(0, n.length - 1)), value: v }));
}

/** Splits a `.filez` object into its header fields and inflated content. */
export function decodeArchiveFile(bytes: Uint8Array): { size: bigint; meta: RawFileMeta; header: Uint8Array; content: Uint8Array } {
  const len = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(0, false);
  const header = bytes.subarray(0, 8 + len);
  const [size, uid, gid, mode, , target, xattrs] = decode<[bigint, number, number, number, number, string, Array<[Uint8Array, Uint8Array]>]>(
    '(tuuuusa(ayay))',
    bytes.subarray(8, 8 + len),
  );
  const meta: RawFileMeta = { uid: bswap32(uid), gid: bswap32(gid), mode: bswap32(mode), symlinkTarget: target, xattrs: xattrsOf(xattrs) };
  const rest = bytes.subarray(8 + len);
  const content = rest.length === 0 ? new Uint8Array(0) : new Uint8Array(inflateRawSync(rest));
  return { size: bswap64(size), meta, header, content };
}

/** Metadata of a bare-user object from its `user.ostreemeta` value and stored bytes. */
export function decodeBareUserFile(stored: Uint8Array, ostreemeta: Uint8Array): { meta: RawFileMeta; content: Uint8Array } {
  const [uid, gid, mode, xattrs] = decode<[number, number, number, Array<[Uint8Array, Uint8Array]>]>('(uuua(ayay))', ostreemeta);
  const m = bswap32(mode);
  const isLink = (m & 0o170000) === 0o120000;
  const meta: RawFileMeta = {
    uid: bswap32(uid),
    gid: bswap32(gid),
    mode: m,
    symlinkTarget: isLink ? dec.decode(stored.subarray(0, stored.length - 1)) : '',
    xattrs: xattrsOf(xattrs),
  };
  return { meta, content: isLink ? new Uint8Array(0) : stored };
}
