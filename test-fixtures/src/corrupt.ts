/**
 * Damage helpers for fsck tests: enumerate a repository's loose objects and
 * flip, truncate or delete one of them in place (no temp file: the point is
 * to leave a damaged object under its valid name).
 */
import { open, readdir, stat, truncate, unlink } from 'node:fs/promises';
import { join } from 'node:path';

export interface RawObjectEntry {
  checksum: string;
  /** The file extension: file, filez, dirtree, dirmeta, commit, commitmeta, tombstone-commit… */
  ext: string;
  /** ObjectType name: 'file' for .file and .filez, else the extension. */
  type: string;
  path: string;
}

/** Every loose object under repo/objects, sorted by checksum then extension. Ignores stray names. */
export async function listRawObjects(repo: string): Promise<RawObjectEntry[]> {
  const out: RawObjectEntry[] = [];
  const root = join(repo, 'objects');
  for (const xx of (await readdir(root)).sort()) {
    if (!/^[0-9a-f]{2}$/.test(xx)) continue;
    for (const name of (await readdir(join(root, xx))).sort()) {
      const m = /^([0-9a-f]{62})\.([a-z-]+)$/.exec(name);
      if (!m) continue;
      const ext = m[2];
      out.push({ checksum: xx + m[1], ext, type: ext === 'filez' ? 'file' : ext, path: join(root, xx, name) });
    }
  }
  return out;
}

/**
 * XORs one byte of `path` with `mask` (default 0x01). `offset` may be
 * negative (from the end); default: the middle byte. Returns the offset used.
 * Fails on an empty file.
 */
export async function flipByte(path: string, offset?: number, mask = 0x01): Promise<number> {
  const { size } = await stat(path);
  if (size === 0) throw new Error(`flipByte: ${path} is empty`);
  let at = offset ?? Math.floor(size / 2);
  if (at < 0) at += size;
  if (at < 0 || at >= size) throw new Error(`flipByte: offset ${offset} outside ${path} (${size} bytes)`);
  const fh = await open(path, 'r+');
  try {
    const b = Buffer.alloc(1);
    await fh.read(b, 0, 1, at);
    b[0] ^= mask;
    await fh.write(b, 0, 1, at);
  } finally {
    await fh.close();
  }
  return at;
}

/** Cuts `path` to `length` bytes (default: half its size). Returns the new length. */
export async function truncateObject(path: string, length?: number): Promise<number> {
  const { size } = await stat(path);
  const to = length ?? Math.floor(size / 2);
  await truncate(path, to);
  return to;
}

/** Deletes one object file. */
export async function deleteObjectFile(path: string): Promise<void> {
  await unlink(path);
}
