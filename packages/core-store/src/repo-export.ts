/**
 * `ostree export`: a commit's tree (or a directory of it) as a GNU tar stream, byte for byte what
 * ostree writes through libarchive's GNU tar writer: entries in dirtree order (a directory, its
 * files and symlinks, then each subdirectory in turn), every mtime the commit's timestamp, no
 * user or group names, `././@LongLink` entries (`L`, `K`) for names and symlink targets longer
 * than 100 bytes, base-256 numbers where octal does not fit, and the two zero blocks at the end.
 * Extended attributes are not written (the GNU format has no place for them, so ostree drops them
 * too). File contents are streamed from the repository, with backpressure.
 */
import { LarchError } from './errors.js';
import type { Repo } from './repo.js';
import { ls } from './repo-ls.js';
import { readMeta, readTree } from './repo-traverse.js';
import { S_IFMT, S_IFLNK, type Checksum } from './types.js';

const BLOCK = 512;
/** libarchive's default record size, to which a stream (not a file) is padded. */
export const TAR_RECORD_SIZE = 10240;

export interface ExportOptions {
  /** `--subpath`: export this directory of the commit (as the archive's root). */
  subpath?: string;
  /** `--prefix`: prepended to every name, as ostree prepends it (`foo` gives `foo/`, `fooa`). */
  prefix?: string;
  /** Pad the end to a multiple of 10240 bytes, as libarchive pads a stream (ostree writing to stdout). */
  padToRecord?: boolean;
  signal?: AbortSignal;
}

export interface ExportResult {
  entries: number;
  /** Bytes written, padding included. */
  bytes: number;
}

/** Where the archive goes: a writer that resolves when the bytes may be followed by more. */
export type TarSink = (chunk: Uint8Array) => Promise<void>;

/** A sink over a Node writable stream that waits for 'drain' when its buffer is full. */
export function streamSink(out: NodeJS.WritableStream): TarSink {
  return (chunk) =>
    new Promise<void>((resolve, reject) => {
      const onError = (e: unknown): void => reject(e);
      out.once('error', onError);
      const ok = out.write(chunk, (e) => {
        if (e) reject(e);
      });
      const done = (): void => {
        out.removeListener('error', onError);
        resolve();
      };
      if (ok) done();
      else out.once('drain', done);
    });
}

/** A number in a header field: octal in `size - 1` digits and a NUL, else base-256 (GNU). */
function putNumber(h: Buffer, off: number, size: number, n: number | bigint): void {
  const v = BigInt(n);
  const digits = size - 1;
  if (v >= 0n && v < 8n ** BigInt(digits)) {
    h.write(v.toString(8).padStart(digits, '0'), off, 'latin1');
    h[off + digits] = 0;
    return;
  }
  let x = v;
  for (let i = size - 1; i >= 0; i--) {
    h[off + i] = Number(x & 0xffn);
    x >>= 8n;
  }
  h[off] |= 0x80;
}

function header(name: Buffer, mode: number, uid: number, gid: number, size: number, mtime: bigint, type: string, linkname: Buffer, names: { uname: string; gname: string }): Buffer {
  const h = Buffer.alloc(BLOCK);
  name.copy(h, 0, 0, Math.min(100, name.length));
  putNumber(h, 100, 8, mode & 0o7777);
  putNumber(h, 108, 8, uid);
  putNumber(h, 116, 8, gid);
  putNumber(h, 124, 12, size);
  putNumber(h, 136, 12, mtime);
  h.fill(0x20, 148, 156);
  h.write(type, 156, 'latin1');
  linkname.copy(h, 157, 0, Math.min(100, linkname.length));
  h.write('ustar  \0', 257, 'latin1');
  h.write(names.uname, 265, 'latin1');
  h.write(names.gname, 297, 'latin1');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  return h;
}

const NO_NAMES = { uname: '', gname: '' };
/** libarchive's GNU writer names its long-name entries' owner root:wheel. */
const LONGLINK_NAMES = { uname: 'root', gname: 'wheel' };
const LONGLINK = Buffer.from('././@LongLink', 'latin1');
const EMPTY = Buffer.alloc(0);

function padding(n: number): Buffer {
  const r = n % BLOCK;
  return r === 0 ? EMPTY : Buffer.alloc(BLOCK - r);
}

/**
 * Write the tree of `commit` (or `opts.subpath` of it) to `sink` as ostree export does. Errors:
 * OBJECT_MISSING (`No such file or directory: /path`), INVALID_ARGUMENT (`Not a directory:
 * /path`; ostree aborts there), OBJECT_CORRUPTED when a stored file is not its recorded size.
 * Locking: none (objects are immutable; the caller holds the commit by name).
 */
export async function exportArchive(repo: Repo, commit: Checksum, sink: TarSink, opts: ExportOptions = {}): Promise<ExportResult> {
  const c = await repo.readCommit(commit);
  const mtime = c.timestamp;
  let rootTree = c.rootTree;
  let rootMeta = c.rootMeta;
  const sub = opts.subpath ?? '/';
  if (sub !== '/' && sub !== '') {
    const abs = `/${sub.replace(/^\/+/, '').replace(/\/+$/, '')}`;
    const [e] = await ls(repo, commit, abs, { directoryOnly: true }).catch((err: unknown) => {
      if (err instanceof LarchError && err.data.reason === 'not-found') {
        throw new LarchError('OBJECT_MISSING', `No such file or directory: ${abs}`, { path: abs });
      }
      throw err;
    });
    if (e === undefined) throw new LarchError('OBJECT_MISSING', `No such file or directory: ${abs}`, { path: abs });
    if (e.type !== 'd' || e.metaChecksum === undefined) throw new LarchError('INVALID_ARGUMENT', `Not a directory: ${abs}`, { path: abs, reason: 'not-a-directory' });
    rootTree = e.checksum;
    rootMeta = e.metaChecksum;
  }
  const prefix = opts.prefix ?? '';
  let bytes = 0;
  let entries = 0;
  const put = async (b: Uint8Array): Promise<void> => {
    if (b.length === 0) return;
    opts.signal?.throwIfAborted();
    await sink(b);
    bytes += b.length;
  };
  const longLink = async (type: 'L' | 'K', value: Buffer, link: Buffer): Promise<void> => {
    const data = Buffer.concat([value, Buffer.alloc(1)]);
    // libarchive leaves the entry's symlink target (its first 100 bytes) in these headers too.
    await put(header(LONGLINK, 0, 0, 0, data.length, 0n, type, link, LONGLINK_NAMES));
    await put(data);
    await put(padding(data.length));
  };
  const entry = async (path: string, mode: number, uid: number, gid: number, size: number, type: string, target = ''): Promise<void> => {
    const name = Buffer.from(path, 'utf8');
    const link = Buffer.from(target, 'utf8');
    if (link.length > 100) await longLink('K', link, link);
    if (name.length > 100) await longLink('L', name, link);
    await put(header(name, mode, uid, gid, size, mtime, type, link, NO_NAMES));
    entries++;
  };
  const nameOf = (rel: string, dir: boolean): string => {
    if (rel === '') return prefix === '' ? './' : prefix.endsWith('/') ? prefix : `${prefix}/`;
    return `${prefix}${rel}${dir ? '/' : ''}`;
  };
  const walk = async (rel: string, tree: Checksum, metaCsum: Checksum): Promise<void> => {
    const meta = await readMeta(repo, metaCsum);
    await entry(nameOf(rel, true), meta.mode, meta.uid, meta.gid, 0, '5');
    const t = await readTree(repo, tree);
    for (const f of t.files) {
      const path = rel === '' ? f.name : `${rel}/${f.name}`;
      const file = await repo.openFile(f.checksum);
      const m = file.meta;
      if ((m.mode & S_IFMT) === S_IFLNK) {
        await entry(nameOf(path, false), m.mode, m.uid, m.gid, 0, '2', m.symlinkTarget);
        continue;
      }
      await entry(nameOf(path, false), m.mode, m.uid, m.gid, file.size, '0');
      let got = 0;
      for await (const chunk of file.open()) {
        const b = chunk as Buffer;
        got += b.length;
        if (got > file.size) break;
        await put(b);
      }
      if (got !== file.size) {
        throw new LarchError('OBJECT_CORRUPTED', `Corrupted file object ${f.checksum}: ${got > file.size ? 'longer' : 'shorter'} than its size ${file.size}`, { checksum: f.checksum });
      }
      await put(padding(file.size));
    }
    for (const d of t.dirs) await walk(rel === '' ? d.name : `${rel}/${d.name}`, d.treeChecksum, d.metaChecksum);
  };
  await walk('', rootTree, rootMeta);
  await put(Buffer.alloc(2 * BLOCK));
  if (opts.padToRecord && bytes % TAR_RECORD_SIZE !== 0) await put(Buffer.alloc(TAR_RECORD_SIZE - (bytes % TAR_RECORD_SIZE)));
  return { entries, bytes };
}
