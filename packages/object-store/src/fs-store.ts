/**
 * FsStore: a published repo in a local directory, as a web server (nginx, larch-server) serves it.
 * Puts go to a temporary file in the target directory that is fsynced and renamed over the key,
 * so a reader (or a crash) sees the old or the new object, never part of one.
 */
import { createHash, randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { LarchError } from '@larch/core-store';
import { openBody, type ByteRange, type PublishedStore, type PutBody, type PutOptions, type PutResult, type StoredObject } from './store.js';
import { checkKey, classify, isImmutable } from './keys.js';

const SMALL_MUTABLE = 1 << 20;

const TMP_PREFIX = '.larch-put-';

function fsError(e: unknown, op: string, key: string): LarchError {
  if (e instanceof LarchError) return e;
  const err = e as NodeJS.ErrnoException;
  return new LarchError('IO_ERROR', `${op} ${key}: ${err?.message ?? String(e)}`, { key, errno: err?.code }, { cause: e });
}

/** A published repo in a directory. Keys map to files below `root`. */
export class FsStore implements PublishedStore {
  readonly root: string;
  readonly location: string;

  constructor(root: string) {
    this.root = path.resolve(root);
    this.location = this.root;
  }

  private file(key: string): string {
    checkKey(key);
    return path.join(this.root, ...key.split('/'));
  }

  async get(key: string, range?: ByteRange): Promise<Readable> {
    const file = this.file(key);
    const fh = await fsp.open(file, 'r').catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') throw new LarchError('OBJECT_MISSING', `No such object: ${key}`, { key });
      throw fsError(e, 'GET', key);
    });
    return fh.createReadStream({ autoClose: true, start: range?.start, end: range?.end }) as unknown as Readable;
  }

  async getBytes(key: string, maxBytes: number): Promise<Uint8Array | null> {
    const file = this.file(key);
    try {
      const st = await fsp.stat(file);
      if (st.size > maxBytes) throw new LarchError('LIMIT_EXCEEDED', `Object ${key} is ${st.size} bytes, more than ${maxBytes}`, { key });
      return await fsp.readFile(file);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw fsError(e, 'GET', key);
    }
  }

  async head(key: string): Promise<StoredObject | null> {
    try {
      const st = await fsp.stat(this.file(key));
      if (!st.isFile()) return null;
      return { key, size: st.size, etag: null, lastModified: st.mtime };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw fsError(e, 'HEAD', key);
    }
  }

  /** Atomic put: temporary file in the same directory, fsync, rename. Returns the MD5 of what was written. */
  async put(key: string, body: PutBody, opts: PutOptions): Promise<PutResult> {
    const file = this.file(key);
    const dir = path.dirname(file);
    const tmp = path.join(dir, `${TMP_PREFIX}${randomBytes(6).toString('hex')}`);
    try {
      await fsp.mkdir(dir, { recursive: true });
      const md5 = createHash('md5');
      let length = 0;
      const fh = await fsp.open(tmp, 'wx', 0o644);
      try {
        const source = openBody(body);
        for await (const chunk of source) {
          const buf = chunk as Buffer;
          md5.update(buf);
          length += buf.length;
          await fh.write(buf);
        }
        await fh.sync();
      } finally {
        await fh.close();
      }
      const etag = md5.digest('hex');
      if (length !== opts.length) throw new LarchError('OBJECT_CORRUPTED', `PUT ${key}: wrote ${length} bytes, expected ${opts.length}`, { key });
      if (opts.md5 !== undefined && opts.md5 !== etag) throw new LarchError('OBJECT_CORRUPTED', `PUT ${key}: BadDigest: MD5 ${etag}, expected ${opts.md5}`, { key });
      await fsp.rename(tmp, file);
      return { etag };
    } catch (e) {
      await fsp.rm(tmp, { force: true });
      throw fsError(e, 'PUT', key);
    }
  }

  async *list(prefix: string): AsyncIterable<StoredObject> {
    // Walk only the directory the prefix lies in, then filter by the full prefix.
    const slash = prefix.lastIndexOf('/');
    const base = slash < 0 ? '' : prefix.slice(0, slash + 1);
    const out: StoredObject[] = [];
    const walk = async (rel: string): Promise<void> => {
      let ents;
      try {
        ents = await fsp.readdir(path.join(this.root, ...rel.split('/').filter(Boolean)), { withFileTypes: true });
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT' || (e as NodeJS.ErrnoException).code === 'ENOTDIR') return;
        throw fsError(e, 'LIST', rel);
      }
      for (const ent of ents) {
        const key = rel + ent.name;
        if (ent.isDirectory()) {
          if (prefix.startsWith(key + '/') || (key + '/').startsWith(prefix) || key.startsWith(prefix)) await walk(key + '/');
        } else if (ent.isFile() && key.startsWith(prefix) && !ent.name.startsWith(TMP_PREFIX)) {
          const file = path.join(this.root, ...key.split('/'));
          const st = await fsp.stat(file);
          // Small mutable files (refs, summary, config, …) get their MD5, so publish can tell
          // whether they changed; immutable objects are compared by name and size alone.
          const etag = !isImmutable(classify(key)) && st.size <= SMALL_MUTABLE ? createHash('md5').update(await fsp.readFile(file)).digest('hex') : null;
          out.push({ key, size: st.size, etag, lastModified: st.mtime });
        }
      }
    };
    await walk(base);
    out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    yield* out;
  }

  async deleteMany(keys: readonly string[]): Promise<void> {
    for (const key of keys) {
      try {
        await fsp.rm(this.file(key), { force: true });
      } catch (e) {
        throw fsError(e, 'DELETE', key);
      }
    }
  }
}
