/**
 * The published-repo store: the handful of operations a static OSTree repo needs from wherever it
 * is served from (a local directory behind a web server, or an S3-compatible bucket behind a CDN).
 * Keys are relative to the store's root (the bucket prefix), `/`-separated, never starting with `/`.
 *
 * Why so small: objects are immutable by name and small files are replaced whole, so a store needs
 * no rename, append or locking; every write is a single atomic put of a whole object.
 */
import { Readable } from 'node:stream';

/** One stored object, as a listing or a HEAD reports it. */
export interface StoredObject {
  key: string;
  size: number;
  /** The entity tag without quotes (the hex MD5 for single-part S3 puts); null when the store has none. */
  etag: string | null;
  lastModified: Date;
}

/** What a put needs to know besides the bytes. */
export interface PutOptions {
  contentType: string;
  cacheControl: string;
  /** Exact byte length of the body. */
  length: number;
  /** Hex MD5 of the body, when known: the store checks it (S3 Content-MD5) and reports a mismatch. */
  md5?: string;
}

/** What the store answered to a put. */
export interface PutResult {
  /** Entity tag without quotes, or null when the store gives none. */
  etag: string | null;
}

/**
 * A body that can be reopened at any byte range (a file): a store may send it in parts (S3
 * multipart upload), each part a fresh stream of `[start, end]` (inclusive, as
 * `fs.createReadStream` takes them).
 */
export interface RangedBody {
  open(range?: { start: number; end: number }): Readable;
}

/**
 * A body that can be produced again: a put that is retried opens a fresh stream. A Uint8Array is
 * sent as is; a RangedBody may be sent in parts.
 */
export type PutBody = Uint8Array | (() => Readable) | RangedBody;

/** A fresh stream of the whole body. */
export function openBody(body: PutBody): Readable {
  if (body instanceof Uint8Array) return Readable.from([body]);
  return typeof body === 'function' ? body() : body.open();
}

/** A byte range, inclusive, as in HTTP: `end` omitted = to the end of the object. */
export interface ByteRange {
  start: number;
  end?: number;
}

/**
 * The operations publish and prune use. Implementations: FsStore (a directory) and S3Store.
 * Every method rejects with a LarchError whose message is one line naming the key.
 */
export interface PublishedStore {
  /** Where this store is, for messages: a directory path or `s3://bucket/prefix`. */
  readonly location: string;
  /** A stream of the object's bytes (or of a range of them). OBJECT_MISSING when absent. */
  get(key: string, range?: ByteRange): Promise<Readable>;
  /** The whole object in memory, for small metadata (refs, summary, commits); null when absent; LIMIT_EXCEEDED above maxBytes. */
  getBytes(key: string, maxBytes: number): Promise<Uint8Array | null>;
  /** Size, etag and date of one object; null when absent. */
  head(key: string): Promise<StoredObject | null>;
  /** Store the whole object atomically (readers see the old or the new bytes, never a mix). */
  put(key: string, body: PutBody, opts: PutOptions): Promise<PutResult>;
  /** Every object whose key starts with `prefix`, in key order, paginated underneath. */
  list(prefix: string): AsyncIterable<StoredObject>;
  /** Delete these keys (missing ones are not an error); split into batches of at most 1000. */
  deleteMany(keys: readonly string[]): Promise<void>;
  /**
   * The entity tag this store would give `body` of `size` bytes when it does not give a plain MD5
   * (an S3 multipart upload's), or null when it gives the MD5. Lets publish compare a local file
   * with an object stored in parts.
   */
  localEtag?(body: RangedBody, size: number): Promise<string | null>;
}
