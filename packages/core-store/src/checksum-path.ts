/**
 * `ostree checksum PATH`: the checksum PATH would have as an object of a repository — a regular
 * file or symlink as a content object (its header: uid, gid, mode, xattrs, symlink target; then
 * the bytes), a directory as a dirmeta object. Streams the file; follows no symlink.
 */
import { createReadStream, promises as fsp } from 'node:fs';
import { createHash } from 'node:crypto';
import { resolve } from 'node:path';
import { LarchError } from './errors.js';
import { readXattrs } from './objects/content-io.js';
import { serializeDirMeta } from './objects/dirmeta.js';
import { contentHasher } from './objects/file-header.js';
import { S_IFMT, S_IFREG, S_IFLNK, S_IFDIR, type Checksum, type FileMeta } from './types.js';

export interface ChecksumPathOptions {
  /** `--ignore-xattrs`: leave extended attributes out. */
  ignoreXattrs?: boolean;
}

/** Checksum of the file, symlink or directory at `path`. Errors: OBJECT_MISSING, UNSUPPORTED_FILE. */
export async function checksumPath(path: string, opts: ChecksumPathOptions = {}): Promise<Checksum> {
  const st = await fsp.lstat(path).catch((e: NodeJS.ErrnoException) => {
    throw new LarchError(e.code === 'ENOENT' ? 'OBJECT_MISSING' : 'IO_ERROR', `Error when getting information for file “${resolve(path)}”: ${e.code === 'ENOENT' ? 'No such file or directory' : e.message}`, { path });
  });
  const xattrs = opts.ignoreXattrs ? [] : readXattrs(path);
  const type = st.mode & S_IFMT;
  if (type === S_IFDIR) {
    return createHash('sha256').update(serializeDirMeta({ uid: st.uid, gid: st.gid, mode: st.mode, xattrs })).digest('hex');
  }
  if (type !== S_IFREG && type !== S_IFLNK) throw new LarchError('UNSUPPORTED_FILE', `Unsupported file type for ${path}: mode ${st.mode.toString(8)}`, { path });
  const meta: FileMeta = { uid: st.uid, gid: st.gid, mode: st.mode, symlinkTarget: type === S_IFLNK ? await fsp.readlink(path) : '', xattrs };
  const h = contentHasher(meta);
  if (type === S_IFREG) for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}
