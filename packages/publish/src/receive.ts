/**
 * Server side of an object upload: read the records of an upload body (wire.ts), verify each
 * object against its name and stage it into the repository, publishing every verified object
 * when the body ends — or when it breaks off, so a killed push keeps what was fully received.
 *
 * Verification reuses core-store: content objects go through `ReceiveWorkers.stage` (inflate
 * bounded by the declared size, hash of header + payload, compare, then write to `tmp/`), and
 * large files and symlinks through `Repo.writeFile` with `expectedChecksum` (hash while
 * writing to `tmp/`, refuse on mismatch). Metadata is hashed and parsed with core-store's
 * strict parsers before `Repo.writeMetadata` stages it. Nothing reaches `objects/` unverified;
 * publication is `WriteBatch.commit()` (tmp/ + syncfs + link into place).
 *
 * Locking: the repository's shared lock for the whole request (as an OSTree transaction), so
 * prune (exclusive) never runs in the middle of an upload.
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createInflateRaw } from 'node:zlib';
import {
  LarchError,
  MAX_ARCHIVE_HEADER_SIZE,
  MAX_METADATA_SIZE,
  parseArchiveHeaderVariant,
  parseCommit,
  parseDirMeta,
  parseDirTree,
  type ReceiveWorkers,
  type Repo,
  type WriteBatch,
} from '@larch/core-store';
import { UploadReader, type UploadType } from './wire.js';

/** Objects kept in memory for the worker path when their upload is at most this big. */
const SMALL_UPLOAD_MAX = 256 * 1024;
/** Verifications in flight per request. */
const IN_FLIGHT = 32;

/** Limits on one upload request. */
export interface ReceiveLimits {
  /** Objects per request (default 10,000). */
  maxObjects: number;
  /** Declared uncompressed size of one content object (default 16 GiB). */
  maxFileSize: number;
}

/** What one upload request did. */
export interface ReceiveResult {
  /** Objects verified and stored by this request. */
  stored: number;
  /** Objects skipped because the repository already had them. */
  present: number;
  /** Body bytes read. */
  bytes: number;
}

function corrupt(type: string, checksum: string, detail: string, cause?: unknown): LarchError {
  return new LarchError('OBJECT_CORRUPTED', `Corrupted ${type} object ${checksum}: ${detail}`, { type, checksum }, cause !== undefined ? { cause } : undefined);
}

async function gather(chunks: AsyncIterable<Buffer>, limit: number): Promise<{ parts: Buffer[]; size: number; rest: AsyncIterator<Buffer> | null }> {
  const it = chunks[Symbol.asyncIterator]();
  const parts: Buffer[] = [];
  let size = 0;
  for (;;) {
    const r = await it.next();
    if (r.done) return { parts, size, rest: null };
    parts.push(r.value);
    size += r.value.length;
    if (size > limit) return { parts, size, rest: it };
  }
}

async function verifyMetadataRecord(repo: Repo, batch: WriteBatch, type: Exclude<UploadType, 'file'>, checksum: string, chunks: AsyncIterable<Buffer>): Promise<void> {
  const { parts, size, rest } = await gather(chunks, MAX_METADATA_SIZE);
  if (rest !== null) throw new LarchError('LIMIT_EXCEEDED', `Metadata object ${checksum}.${type} exceeds the limit of ${MAX_METADATA_SIZE} bytes`, { type, checksum });
  const bytes = Buffer.concat(parts, size);
  const actual = createHash('sha256').update(bytes).digest('hex');
  if (actual !== checksum) throw new LarchError('OBJECT_CORRUPTED', `Corrupted ${type} object; checksum expected='${checksum}' actual='${actual}'`, { type, checksum, actual });
  const u8 = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  try {
    if (type === 'commit') parseCommit(u8);
    else if (type === 'dirtree') parseDirTree(u8);
    else parseDirMeta(u8);
  } catch (e) {
    throw corrupt(type, checksum, (e as Error).message, e);
  }
  await repo.writeMetadata(type, u8, batch);
}

async function* concatSource(first: Buffer[], rest: AsyncIterator<Buffer> | null): AsyncIterable<Buffer> {
  for (const p of first) yield p;
  if (rest === null) return;
  for (;;) {
    const r = await rest.next();
    if (r.done) return;
    yield r.value;
  }
}

/** Stream a `.filez` through inflate into `Repo.writeFile` with the expected checksum. */
async function streamFile(repo: Repo, batch: WriteBatch, checksum: string, src: AsyncIterable<Buffer>, maxSize: number): Promise<void> {
  const it = src[Symbol.asyncIterator]();
  let head = Buffer.alloc(0);
  let ended = false;
  const need = async (n: number): Promise<void> => {
    while (head.length < n && !ended) {
      const r = await it.next();
      if (r.done) ended = true;
      else head = Buffer.concat([head, r.value]);
    }
    if (head.length < n) throw corrupt('file', checksum, 'truncated header');
  };
  await need(8);
  const len = head.readUInt32BE(0);
  if (len === 0 || len > MAX_ARCHIVE_HEADER_SIZE) throw corrupt('file', checksum, `invalid header length ${len}`);
  await need(8 + len);
  let header;
  try {
    header = parseArchiveHeaderVariant(new Uint8Array(head.buffer, head.byteOffset + 8, len));
  } catch (e) {
    throw corrupt('file', checksum, (e as Error).message, e);
  }
  if (header.size > maxSize) {
    throw new LarchError('LIMIT_EXCEEDED', `File object ${checksum} declares ${header.size} bytes, exceeding the limit of ${maxSize}`, { checksum, limit: maxSize });
  }
  const payloadStart = head.subarray(8 + len);
  const payload = (async function* (): AsyncIterable<Buffer> {
    if (payloadStart.length > 0) yield payloadStart;
    if (ended) return;
    for (;;) {
      const r = await it.next();
      if (r.done) return;
      yield r.value;
    }
  })();
  const isLink = (header.meta.mode & 0o170000) === 0o120000;
  if (isLink) {
    for await (const _ of payload) void _;
    await repo.writeFile(header.meta, { bytes: new Uint8Array(0) }, { expectedChecksum: checksum, batch });
    return;
  }
  const inflater = createInflateRaw();
  const source = Readable.from(payload);
  const piped = pipeline(source, inflater).catch((e: unknown) => {
    inflater.destroy(e as Error);
  });
  try {
    await repo.writeFile(header.meta, { stream: inflater, size: header.size }, { expectedChecksum: checksum, batch });
  } catch (e) {
    if (e instanceof LarchError) throw e;
    throw corrupt('file', checksum, (e as Error).message, e);
  } finally {
    source.destroy();
    await piped;
  }
}

/**
 * Read an upload body from `body` into `repo`. Objects the repository already has are read
 * and dropped. Every object that verified is published before this returns or throws (a
 * broken-off body keeps its complete objects); an object that fails verification is never
 * stored and the error (OBJECT_CORRUPTED, LIMIT_EXCEEDED, INVALID_ARGUMENT) is thrown after the
 * good ones are published. `onStored` is called once per stored object.
 */
export async function receiveObjects(
  repo: Repo,
  workers: ReceiveWorkers,
  body: AsyncIterable<Uint8Array>,
  limits: ReceiveLimits,
  onStored?: (type: UploadType, checksum: string) => void,
): Promise<ReceiveResult> {
  return repo.withLock('shared', async () => {
    const reader = new UploadReader(body);
    const batch = repo.beginBatch();
    const result: ReceiveResult = { stored: 0, present: 0, bytes: 0 };
    const inFlight = new Set<Promise<void>>();
    let failure: unknown = null;
    const track = (p: Promise<void>): void => {
      const q = p.then(
        () => {
          inFlight.delete(q);
        },
        (e: unknown) => {
          inFlight.delete(q);
          failure ??= e;
        },
      );
      inFlight.add(q);
    };
    let count = 0;
    try {
      for (;;) {
        if (failure !== null) break;
        const rec = await reader.next();
        if (rec === null) break;
        if (++count > limits.maxObjects) throw new LarchError('LIMIT_EXCEEDED', `Upload holds more than ${limits.maxObjects} objects`, { limit: limits.maxObjects });
        const { type, checksum } = rec;
        if (repo.hasObjectSync(type, checksum)) {
          await reader.skip();
          result.present++;
          continue;
        }
        const stored = (): void => {
          result.stored++;
          onStored?.(type, checksum);
        };
        if (type !== 'file') {
          await verifyMetadataRecord(repo, batch, type, checksum, reader.chunks());
          stored();
          continue;
        }
        const { parts, size, rest } = await gather(reader.chunks(), SMALL_UPLOAD_MAX);
        if (rest === null) {
          const whole = Buffer.concat(parts, size);
          // The worker declines symlinks and large declared sizes before taking the bytes.
          track(
            workers.stage(checksum, whole, batch, limits.maxFileSize).then(async (n) => {
              if (n === null) await streamFile(repo, batch, checksum, concatSource([whole], null), limits.maxFileSize);
              stored();
            }),
          );
          while (inFlight.size >= IN_FLIGHT) await Promise.race(inFlight);
        } else {
          await streamFile(repo, batch, checksum, concatSource(parts, rest), limits.maxFileSize);
          stored();
        }
      }
    } catch (e) {
      failure ??= e;
    }
    while (inFlight.size > 0) await Promise.race(inFlight);
    result.bytes = reader.bytes;
    try {
      await batch.commit();
    } catch (e) {
      await batch.abort().catch(() => undefined);
      throw e;
    }
    if (failure !== null) throw failure;
    return result;
  });
}
