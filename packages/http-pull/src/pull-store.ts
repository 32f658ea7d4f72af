/**
 * Verify-then-store for pulled objects (spec pull-and-signing.md 4). Nothing enters the store
 * before its checksum is proven:
 * - metadata: sha256 of the received bytes must equal the name, then the bytes are parsed with
 *   core-store's strict parsers (normal form, names, 32-byte checksums, directory modes);
 * - content: the `.filez` header is parsed and re-serialized to the canonical file header, the
 *   payload is inflated and hashed as it streams, and the result must equal the name. Archive
 *   destinations keep the received `.filez` bytes (written to `tmp/` while hashing) up to the
 *   end of the deflate stream (of the header, for a symlink); bare modes store the inflated
 *   payload through `Repo.writeFile` with `expectedChecksum`.
 * - bytes after the end of the deflate stream are ignored, as OSTree ignores them (it parses the
 *   received object and writes it anew, checked with ostree 2022.7), and never stored: the
 *   object in the repository is exactly header + deflate stream. Reading stops at the first
 *   chunk that arrives after the stream ended, so a server cannot make a pull download (or
 *   store) junk up to the content size limit.
 * Staged files are added to a `WriteBatch` (published together: one syncfs, then link(2) into
 * `objects/`, which never replaces an existing object); a failure removes the staged file.
 */
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createInflateRaw, inflateRawSync } from 'node:zlib';
import {
  LarchError,
  contentHasher,
  fileChecksumMismatch,
  parseArchiveHeaderVariant,
  parseCommit,
  parseCommitMeta,
  parseDirMeta,
  parseDirTree,
  MAX_ARCHIVE_HEADER_SIZE,
  RECEIVE_MAX_INFLATED,
  S_IFLNK,
  S_IFMT,
  type ArchiveHeader,
  type Commit,
  type DirMeta,
  type DirTree,
  type FileMeta,
  type Repo,
  type WriteBatch,
  type ReceiveWorkers,
} from '@larch/core-store';

/** Content-addressed metadata object types. */
export type MetadataType = 'commit' | 'dirtree' | 'dirmeta';

/** Check a metadata object's bytes against its name and parse it (throws OBJECT_CORRUPTED). */
export function verifyMetadata(type: 'commit', checksum: string, bytes: Uint8Array): Commit;
export function verifyMetadata(type: 'dirtree', checksum: string, bytes: Uint8Array): DirTree;
export function verifyMetadata(type: 'dirmeta', checksum: string, bytes: Uint8Array): DirMeta;
export function verifyMetadata(type: MetadataType, checksum: string, bytes: Uint8Array): Commit | DirTree | DirMeta;
export function verifyMetadata(type: MetadataType, checksum: string, bytes: Uint8Array): Commit | DirTree | DirMeta {
  const actual = createHash('sha256').update(bytes).digest('hex');
  if (actual !== checksum) {
    throw new LarchError('OBJECT_CORRUPTED', `Corrupted ${type} object; checksum expected='${checksum}' actual='${actual}'`, { type, checksum, actual });
  }
  try {
    if (type === 'commit') return parseCommit(bytes);
    if (type === 'dirtree') return parseDirTree(bytes);
    return parseDirMeta(bytes);
  } catch (e) {
    // A structural fault (a bad name in a dirtree, …) is named as ostree names it: `X.dirtree: Invalid / in filename ../afile`.
    const detail = e instanceof LarchError && typeof e.data.detail === 'string' ? e.data.detail : null;
    const message = detail !== null ? `${checksum}.${type}: ${detail}` : `Corrupted ${type} object ${checksum}: ${(e as Error).message}`;
    throw new LarchError('OBJECT_CORRUPTED', message, { type, checksum }, { cause: e });
  }
}

/** Validate detached metadata (`a{sv}`, normal form); it is not content-addressed. */
export function verifyCommitMeta(checksum: string, bytes: Uint8Array): void {
  try {
    parseCommitMeta(bytes);
  } catch (e) {
    throw new LarchError('OBJECT_CORRUPTED', `Corrupted commitmeta object ${checksum}: ${(e as Error).message}`, { type: 'commitmeta', checksum }, { cause: e });
  }
}

/** Stage verified metadata bytes into `batch` (no-op when the object is already stored). */
export function stageMetadata(repo: Repo, batch: WriteBatch, type: MetadataType, checksum: string, bytes: Uint8Array): void {
  if (repo.hasObjectSync(type, checksum)) return;
  const tmp = repo.newTmpPath('pull');
  repo.writeTmpSync(tmp, bytes, 0o644);
  batch.add(tmp, type, checksum);
}

/** Read exactly-sized prefixes from a chunk stream, then hand over the rest. */
class ChunkReader {
  private buf: Buffer = Buffer.alloc(0);
  private readonly it: AsyncIterator<Uint8Array>;
  private ended = false;
  constructor(src: AsyncIterable<Uint8Array>) {
    this.it = src[Symbol.asyncIterator]();
  }

  async readExactly(n: number, what: string): Promise<Buffer> {
    while (this.buf.length < n && !this.ended) {
      const r = await this.it.next();
      if (r.done) this.ended = true;
      else this.buf = this.buf.length === 0 ? Buffer.from(r.value) : Buffer.concat([this.buf, r.value]);
    }
    if (this.buf.length < n) throw new LarchError('OBJECT_CORRUPTED', `Truncated ${what}: ${this.buf.length} of ${n} bytes`, {});
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return out;
  }

  async *rest(): AsyncIterable<Buffer> {
    if (this.buf.length > 0) {
      const b = this.buf;
      this.buf = Buffer.alloc(0);
      yield b;
    }
    if (this.ended) return;
    for (;;) {
      const r = await this.it.next();
      if (r.done) return;
      yield Buffer.from(r.value.buffer, r.value.byteOffset, r.value.byteLength);
    }
  }
}

/** Parse the `.filez` prefix (BE32 length, 4 reserved bytes, header variant). */
async function readArchiveHeader(reader: ChunkReader, checksum: string): Promise<{ header: ArchiveHeader; raw: Buffer }> {
  const prefix = await reader.readExactly(8, `${checksum}.filez header`);
  const len = prefix.readUInt32BE(0);
  if (len === 0 || len > MAX_ARCHIVE_HEADER_SIZE) {
    throw new LarchError('OBJECT_CORRUPTED', `Corrupted file object ${checksum}: invalid header length ${len}`, { checksum });
  }
  const v = await reader.readExactly(len, `${checksum}.filez header`);
  let header: ArchiveHeader;
  try {
    header = parseArchiveHeaderVariant(new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
  } catch (e) {
    throw new LarchError('OBJECT_CORRUPTED', `Corrupted file object ${checksum}: ${(e as Error).message}`, { checksum }, { cause: e });
  }
  return { header, raw: Buffer.concat([prefix, v]) };
}

function tooLarge(checksum: string, size: number, limit: number): LarchError {
  return new LarchError('LIMIT_EXCEEDED', `File object ${checksum} declares ${size} bytes, exceeding the limit of ${limit}`, { checksum, limit, observed: size });
}


/**
 * Output chunk of the streaming inflate of larger objects. zlib's default (16 KiB) costs one
 * callback, one hash update and, for non-archive repos, one write through the thread pool per
 * 16 KiB; 256 KiB cuts those sixteenfold for the same bounded memory per object.
 */
const INFLATE_CHUNK = 256 * 1024;

/** Objects whose download is at most this size are verified in memory (see stageSmallFilez). */
export const SMALL_FILEZ_MAX = 256 * 1024;
/** ...and only when their declared uncompressed size is at most this. */
const SMALL_INFLATED_MAX = 4 * 1024 * 1024;

/** What staging a content object did. */
export interface StagedContent {
  /** Bytes written to disk (the `.filez` bytes kept, in an archive repository). */
  written: number;
  /** The file's uncompressed size, 0 for a symlink (ostree's "content written" adds these). */
  size: number;
}

/**
 * Verify a `.filez` stream and stage it into `batch` in the repo's mode. Returns the bytes
 * written to disk and the file's size. Throws OBJECT_CORRUPTED on any mismatch, with nothing staged.
 * `sizeHint` (the Content-Length, untrusted) only selects the in-memory path for small objects;
 * the bytes actually received are what is checked.
 */
export async function stageFilez(
  repo: Repo,
  batch: WriteBatch,
  checksum: string,
  body: AsyncIterable<Uint8Array>,
  sizeHint: number | null = null,
  maxSize: number = Number.MAX_SAFE_INTEGER,
  workers: ReceiveWorkers | null = null,
): Promise<StagedContent> {
  if (sizeHint !== null && sizeHint <= SMALL_FILEZ_MAX) {
    const parts: Buffer[] = [];
    let n = 0;
    for await (const c of body) {
      n += c.length;
      if (n > SMALL_FILEZ_MAX) throw new LarchError('LIMIT_EXCEEDED', `Corrupted file object ${checksum}: more than the announced ${sizeHint} bytes`, { checksum, limit: SMALL_FILEZ_MAX });
      parts.push(Buffer.from(c.buffer, c.byteOffset, c.byteLength));
    }
    const whole = Buffer.concat(parts, n);
    if (workers !== null) {
      // Verified and written on a worker thread (the bytes are handed over); the workers
      // decline symlinks and large declared sizes before taking the bytes. Into an archive repo
      // a worker writes the bytes it is given, so it gets the object up to the end of its
      // deflate stream (see the top of this file), found here by one more inflate: for a small
      // object that costs microseconds, far less than the file creation left to the worker.
      const end = repo.mode === 'archive' ? deflateEnd(whole) : null;
      // The header's first field is the size (the workers take regular files only); read
      // before the bytes are handed over.
      const size = whole.length >= 16 ? Number(whole.readBigUInt64BE(8)) : 0;
      const done = await workers.stage(checksum, end === null ? whole : whole.subarray(0, end), batch, maxSize);
      if (done !== null) return { written: done, size };
    }
    const small = stageSmallFilez(repo, batch, checksum, whole, maxSize);
    if (small !== null) return small;
    return stageFilez(repo, batch, checksum, (async function* () {
      yield whole;
    })(), null, maxSize);
  }
  const reader = new ChunkReader(body);
  const { header, raw } = await readArchiveHeader(reader, checksum);
  // The declared size is checked before inflating: a small download must not expand into more
  // than the content limit on disk.
  if (header.size > maxSize) throw tooLarge(checksum, header.size, maxSize);
  const meta = header.meta;
  const isLink = (meta.mode & S_IFMT) === S_IFLNK;
  if (repo.mode !== 'archive') {
    // A symlink is its header: whatever follows is not read (the transfer releases the body).
    if (isLink) return repo.writeFile(meta, { bytes: new Uint8Array(0) }, { expectedChecksum: checksum, batch }).then(() => ({ written: 0, size: 0 }));
    const inflater = createInflateRaw({ chunkSize: INFLATE_CHUNK });
    const src = Readable.from(untilInflated(reader.rest(), inflater));
    const piped = pipeline(src, inflater).catch((e: unknown) => {
      inflater.destroy(e as Error);
    });
    try {
      await repo.writeFile(meta, { stream: inflater, size: header.size }, { expectedChecksum: checksum, batch });
    } finally {
      src.destroy();
      await piped;
    }
    return { written: header.size, size: header.size };
  }
  // Archive: keep the received bytes, verified through inflate + hash before publishing.
  const tmp = repo.newTmpPath('pull');
  const fh = await fsp.open(tmp, 'wx', 0o644);
  let written = 0;
  try {
    await fh.write(raw);
    written += raw.length;
    const hash = contentHasher(meta);
    // A symlink is its header: whatever follows is neither read nor kept.
    if (!isLink) {
      let inflated = 0;
      const inflater = createInflateRaw({ chunkSize: INFLATE_CHUNK });
      const tee = async function* (): AsyncIterable<Buffer> {
        for await (const chunk of untilInflated(reader.rest(), inflater)) {
          await fh.write(chunk);
          written += chunk.length;
          yield chunk;
        }
      };
      const sink = new Writable({
        write(chunk: Buffer, _enc, cb): void {
          inflated += chunk.length;
          if (inflated > header.size) {
            cb(new LarchError('OBJECT_CORRUPTED', `Corrupted file object ${checksum}: more data than the declared size ${header.size}`, { checksum }));
            return;
          }
          hash.update(chunk);
          cb();
        },
      });
      await pipeline(Readable.from(tee()), inflater, sink);
      if (inflated !== header.size) {
        throw new LarchError('OBJECT_CORRUPTED', `Corrupted file object ${checksum}: got ${inflated} bytes, declared size ${header.size}`, { checksum });
      }
      // zlib counts the input it consumed, which ends with the deflate stream: cut what followed.
      const kept = raw.length + inflater.bytesWritten;
      if (written > kept) {
        await fh.truncate(kept);
        written = kept;
      }
    }
    const actual = hash.digest('hex');
    if (actual !== checksum) throw fileChecksumMismatch(checksum, actual);
    await fh.close();
  } catch (e) {
    await fh.close().catch(() => undefined);
    await fsp.rm(tmp, { force: true });
    throw e;
  }
  batch.add(tmp, 'file', checksum);
  return { written, size: isLink ? 0 : header.size };
}

/**
 * The fast path for small objects, which are most objects of an OS tree: header parse, one
 * synchronous inflate bounded by the declared size, hash, and (archive) one synchronous write of
 * the received bytes into `tmp/`. Per-object stream and thread-pool overhead dominated pulls of
 * many small files. Returns null when the object does not qualify (then it is streamed).
 */
function stageSmallFilez(repo: Repo, batch: WriteBatch, checksum: string, whole: Buffer, maxSize: number): StagedContent | null {
  if (whole.length < 8) throw new LarchError('OBJECT_CORRUPTED', `Corrupted file object ${checksum}: truncated header`, { checksum });
  const len = whole.readUInt32BE(0);
  if (len === 0 || len > whole.length - 8) throw new LarchError('OBJECT_CORRUPTED', `Corrupted file object ${checksum}: invalid header length ${len}`, { checksum });
  let header: ArchiveHeader;
  try {
    header = parseArchiveHeaderVariant(new Uint8Array(whole.buffer, whole.byteOffset + 8, len));
  } catch (e) {
    throw new LarchError('OBJECT_CORRUPTED', `Corrupted file object ${checksum}: ${(e as Error).message}`, { checksum }, { cause: e });
  }
  if (header.size > maxSize) throw tooLarge(checksum, header.size, maxSize);
  if (header.size > SMALL_INFLATED_MAX) return null;
  const meta = header.meta;
  const isLink = (meta.mode & S_IFMT) === S_IFLNK;
  let payload: Buffer = Buffer.alloc(0);
  // The stored object ends with the deflate stream (the header, for a symlink): see the top of this file.
  let end = 8 + len;
  if (!isLink) {
    try {
      const r = inflateRawSync(whole.subarray(8 + len), { maxOutputLength: Math.max(1, header.size), info: true }) as unknown as { buffer: Buffer; engine: { bytesWritten: number } };
      payload = r.buffer;
      end += r.engine.bytesWritten;
    } catch (e) {
      const msg = (e as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE' ? `more data than the declared size ${header.size}` : (e as Error).message;
      throw new LarchError('OBJECT_CORRUPTED', `Corrupted file object ${checksum}: ${msg}`, { checksum }, { cause: e });
    }
    if (payload.length !== header.size) {
      throw new LarchError('OBJECT_CORRUPTED', `Corrupted file object ${checksum}: got ${payload.length} bytes, declared size ${header.size}`, { checksum });
    }
  }
  const actual = contentHasher(meta).update(payload).digest('hex');
  if (actual !== checksum) throw fileChecksumMismatch(checksum, actual);
  if (repo.mode === 'archive') {
    // Synchronous on purpose: creating a small file costs tens of microseconds, less than the
    // three thread-pool round trips of an asynchronous open/write/close.
    const kept = whole.subarray(0, end);
    const tmp = repo.newTmpPath('pull');
    repo.writeTmpSync(tmp, kept, 0o644);
    batch.add(tmp, 'file', checksum);
    return { written: kept.length, size: payload.length };
  }
  // Verified above from these exact bytes: staged synchronously, published by the batch.
  repo.stageVerifiedFileSync(meta, payload, checksum, batch);
  return { written: payload.length, size: payload.length };
}

/**
 * Where the deflate stream of a whole `.filez` ends (header length prefix, header, stream), or
 * null when that cannot be told (a malformed object, or one inflating past what the receive
 * workers take): the object is then handed over whole and judged by the usual checks.
 */
function deflateEnd(whole: Buffer): number | null {
  if (whole.length < 8) return null;
  const at = 8 + whole.readUInt32BE(0);
  if (at >= whole.length) return null;
  try {
    const r = inflateRawSync(whole.subarray(at), { maxOutputLength: RECEIVE_MAX_INFLATED, info: true }) as unknown as { engine: { bytesWritten: number } };
    return at + r.engine.bytesWritten;
  } catch {
    return null;
  }
}

/**
 * The chunks of `src` until the deflate stream fed to `inflater` has ended: a chunk that arrives
 * after its end is junk (not yielded; reading stops). A body that ends right with the stream is
 * read to its end, so its connection can be reused.
 */
async function* untilInflated(src: AsyncIterable<Buffer>, inflater: NodeJS.ReadableStream): AsyncIterable<Buffer> {
  let ended = false;
  const onEnd = (): void => {
    ended = true;
  };
  inflater.once('end', onEnd);
  try {
    for await (const chunk of src) {
      if (ended) return;
      yield chunk;
    }
  } finally {
    inflater.removeListener('end', onEnd);
  }
}

/** Stage a content object given as plain metadata + payload stream (pull-local from a bare repo). */
export async function stagePlain(repo: Repo, batch: WriteBatch, checksum: string, meta: FileMeta, size: number, stream: NodeJS.ReadableStream): Promise<StagedContent> {
  const isLink = (meta.mode & S_IFMT) === S_IFLNK;
  await repo.writeFile(meta, isLink ? { bytes: new Uint8Array(0) } : { stream, size }, { expectedChecksum: checksum, batch });
  return { written: size, size: isLink ? 0 : size };
}
