/**
 * S3Store: a published repo in an S3-compatible bucket (AWS S3, Ceph radosgw, and the like),
 * through @aws-sdk/client-s3 with the settings such stores need: path-style addressing and
 * checksums only when an operation requires them (stream bodies are then sent with
 * UNSIGNED-PAYLOAD instead of aws-chunked trailers, which older stores answer with 411).
 *
 * Retries are ours, not the SDK's (maxAttempts 1): a retried put must reopen its body stream, and
 * one place decides what is transient (5xx, SlowDown, throttling, dropped or refused connections)
 * and backs off exponentially with jitter. Every request goes through one semaphore, so the
 * number in flight never exceeds `concurrency` whoever calls. Failures are one line naming the
 * operation, the key and the S3 error.
 */
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import {
  S3Client,
  GetObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
  CreateMultipartUploadCommand,
  UploadPartCommand,
  CompleteMultipartUploadCommand,
  AbortMultipartUploadCommand,
  ListObjectsV2Command,
  DeleteObjectsCommand,
  CreateBucketCommand,
  PutBucketPolicyCommand,
  HeadBucketCommand,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { LarchError } from '@larch/core-store';
import type { ByteRange, PublishedStore, PutBody, PutOptions, PutResult, RangedBody, StoredObject } from './store.js';
import { checkKey } from './keys.js';

export interface S3StoreOptions {
  bucket: string;
  /** Key prefix inside the bucket, without leading or trailing slash ('' = the bucket root). */
  prefix?: string;
  /** e.g. http://127.0.0.1:7480; default: $S3_ENDPOINT, $AWS_ENDPOINT_URL, else AWS. */
  endpoint?: string;
  /** Default: $AWS_REGION, $AWS_DEFAULT_REGION, else us-east-1. */
  region?: string;
  /** Default: from the AWS environment ($AWS_ACCESS_KEY_ID / $AWS_SECRET_ACCESS_KEY, profiles, …). */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** Requests in flight at most (default 16). */
  concurrency?: number;
  /** Attempts per request, the first included (default 6). */
  maxAttempts?: number;
  /** First backoff in ms, doubled per attempt, with full jitter (default 200); capped at maxBackoffMs (default 10 000). */
  baseBackoffMs?: number;
  maxBackoffMs?: number;
  /** Per-request timeout in ms (default 120 000). */
  requestTimeoutMs?: number;
  /**
   * Bodies that can be reopened at a range (files) larger than this are sent as a multipart
   * upload (default 64 MiB; at most 5 GiB, what S3 takes in one PUT). A failed part is retried alone.
   */
  multipartThreshold?: number;
  /** Size of each part but the last (default 16 MiB; at least 5 MiB, and raised so that no object needs more than 10 000 parts). */
  partSize?: number;
  /** Called before each retry (for progress displays and tests). */
  onRetry?: (info: { op: string; key: string; attempt: number; error: string; delayMs: number }) => void;
}

/** Parse `s3://BUCKET/PREFIX` into bucket and prefix. */
export function parseS3Url(url: string): { bucket: string; prefix: string } {
  const m = /^s3:\/\/([^/]+)\/?(.*)$/.exec(url);
  if (!m || !/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(m[1])) {
    throw new LarchError('INVALID_ARGUMENT', `Invalid S3 URL ${JSON.stringify(url)}: expected s3://BUCKET/PREFIX`, { url });
  }
  return { bucket: m[1], prefix: m[2].replace(/^\/+|\/+$/g, '') };
}

/** A counting semaphore. */
class Limiter {
  private active = 0;
  private readonly waiting: Array<() => void> = [];
  constructor(private readonly max: number) {}
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active >= this.max) await new Promise<void>((r) => this.waiting.push(r));
    else this.active++;
    try {
      return await fn();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.active--;
    }
  }
}

interface SdkError {
  name?: string;
  code?: string;
  message?: string;
  Code?: string;
  $metadata?: { httpStatusCode?: number };
  $retryable?: unknown;
}

const RETRYABLE_NAMES = new Set([
  'SlowDown',
  'ServiceUnavailable',
  'InternalError',
  'RequestTimeout',
  'RequestTimeoutException',
  'Throttling',
  'ThrottlingException',
  'TooManyRequestsException',
  'RequestLimitExceeded',
  'TimeoutError',
  'NetworkingError',
]);
const RETRYABLE_ERRNOS = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'EAI_AGAIN', 'ENOTFOUND', 'ECONNABORTED', 'EHOSTUNREACH', 'ENETUNREACH', 'UND_ERR_SOCKET']);

function statusOf(e: unknown): number | undefined {
  return (e as SdkError)?.$metadata?.httpStatusCode;
}

/** Whether an SDK or network failure is worth another attempt. */
export function isTransient(e: unknown): boolean {
  const err = e as SdkError;
  const status = statusOf(e);
  if (status !== undefined && (status >= 500 || status === 429)) return true;
  if (err?.name && RETRYABLE_NAMES.has(err.name)) return true;
  if (err?.code && RETRYABLE_ERRNOS.has(err.code)) return true;
  const msg = String(err?.message ?? '');
  // A connection dropped mid-response surfaces as a parse or "socket hang up" error.
  return /socket hang up|ECONNRESET|EPIPE|ECONNREFUSED|premature close|aborted|Unexpected end|non-whitespace before first tag|Deserialization error/i.test(msg);
}

/** "SlowDown (503): Please reduce your request rate." from an SDK error. */
export function describeS3Error(e: unknown): string {
  const err = e as SdkError;
  const status = statusOf(e);
  const name = err?.name && err.name !== 'Error' ? err.name : (err?.code ?? 'Error');
  const msg = String(err?.message ?? e).split('\n')[0];
  const detail = msg && msg !== name && msg !== 'UnknownError' ? `: ${msg}` : '';
  return `${name}${status !== undefined ? ` (${status})` : ''}${detail}`;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const quiet = (): void => undefined;
const QUIET_LOGGER = { trace: quiet, debug: quiet, info: quiet, warn: quiet, error: quiet };

/** S3's bounds on multipart uploads: parts of at least 5 MiB (but the last), at most 10 000 parts. */
export const MIN_PART_SIZE = 5 * 1024 * 1024;
export const MAX_PARTS = 10_000;
/** The largest object one PUT may carry on AWS S3. */
const MAX_PUT_SIZE = 5 * 1024 ** 3;
/** Parts of one object in flight at once (the store's semaphore still bounds the total). */
const PART_CONCURRENCY = 4;

function isRanged(body: PutBody): body is RangedBody {
  return !(body instanceof Uint8Array) && typeof body !== 'function';
}

/**
 * The MD5 of the whole body and of each `partSize` slice, in one pass. The body must hold exactly
 * `size` bytes.
 */
async function partDigests(body: RangedBody, size: number, partSize: number, what: string): Promise<{ md5: string; parts: Buffer[] }> {
  const whole = createHash('md5');
  const parts: Buffer[] = [];
  let part = createHash('md5');
  let inPart = 0;
  let total = 0;
  for await (const chunk of body.open()) {
    let buf = chunk as Buffer;
    whole.update(buf);
    total += buf.length;
    while (buf.length > 0) {
      const take = Math.min(buf.length, partSize - inPart);
      part.update(buf.subarray(0, take));
      inPart += take;
      buf = buf.subarray(take);
      if (inPart === partSize) {
        parts.push(part.digest());
        part = createHash('md5');
        inPart = 0;
      }
    }
  }
  if (inPart > 0) parts.push(part.digest());
  if (total !== size) throw new LarchError('IO_ERROR', `${what}: read ${total} bytes, expected ${size} (the file changed while publishing)`, { size, read: total });
  return { md5: whole.digest('hex'), parts };
}

/** A multipart upload's entity tag: the MD5 of the parts' MD5s, then "-" and the number of parts. */
export function multipartEtag(partMd5s: readonly Uint8Array[]): string {
  const h = createHash('md5');
  for (const d of partMd5s) h.update(d);
  return `${h.digest('hex')}-${partMd5s.length}`;
}

/** A published repo in an S3 bucket (under an optional key prefix). */
export class S3Store implements PublishedStore {
  readonly client: S3Client;
  readonly bucket: string;
  readonly prefix: string;
  readonly location: string;
  private readonly limiter: Limiter;
  private readonly maxAttempts: number;
  private readonly baseBackoffMs: number;
  private readonly maxBackoffMs: number;
  private readonly onRetry: S3StoreOptions['onRetry'];
  private readonly multipartThreshold: number;
  private readonly partSize: number;
  /** Requests sent, by operation (attempts included), for statistics and tests. */
  readonly requests = { GET: 0, HEAD: 0, PUT: 0, LIST: 0, DELETE: 0 };

  constructor(opts: S3StoreOptions) {
    this.bucket = opts.bucket;
    this.prefix = (opts.prefix ?? '').replace(/^\/+|\/+$/g, '');
    this.location = `s3://${this.bucket}/${this.prefix}`;
    const concurrency = Math.max(1, opts.concurrency ?? 16);
    this.limiter = new Limiter(concurrency);
    this.maxAttempts = Math.max(1, opts.maxAttempts ?? 6);
    this.baseBackoffMs = opts.baseBackoffMs ?? 200;
    this.maxBackoffMs = opts.maxBackoffMs ?? 10_000;
    this.onRetry = opts.onRetry;
    this.multipartThreshold = Math.min(MAX_PUT_SIZE, Math.max(MIN_PART_SIZE, opts.multipartThreshold ?? 64 * 1024 * 1024));
    this.partSize = Math.max(MIN_PART_SIZE, opts.partSize ?? 16 * 1024 * 1024);
    const endpoint = opts.endpoint ?? process.env.S3_ENDPOINT ?? process.env.AWS_ENDPOINT_URL;
    const config: S3ClientConfig = {
      region: opts.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? 'us-east-1',
      forcePathStyle: true,
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      maxAttempts: 1,
      // Failures are ours to report (one line, after our retries): the SDK would otherwise print
      // a warning of its own to stderr whenever a request with a stream body fails.
      logger: QUIET_LOGGER,
      requestHandler: {
        httpAgent: new HttpAgent({ keepAlive: true, maxSockets: concurrency }),
        httpsAgent: new HttpsAgent({ keepAlive: true, maxSockets: concurrency }),
        connectionTimeout: 10_000,
        requestTimeout: opts.requestTimeoutMs ?? 120_000,
      },
    };
    if (endpoint) config.endpoint = endpoint;
    if (opts.credentials) config.credentials = opts.credentials;
    this.client = new S3Client(config);
  }

  /** The full S3 key of a store key. */
  fullKey(key: string): string {
    return this.prefix === '' ? key : `${this.prefix}/${key}`;
  }

  /** s3://bucket/full-key, for messages. */
  urlOf(key: string): string {
    return `s3://${this.bucket}/${this.fullKey(key)}`;
  }

  private storeKey(full: string): string {
    return this.prefix === '' ? full : full.slice(this.prefix.length + 1);
  }

  /**
   * Run one request with the semaphore held, retrying transient failures with backoff. `attempt`
   * must build everything it sends afresh (a new body stream per attempt).
   */
  private async call<T>(op: keyof S3Store['requests'], key: string, attempt: () => Promise<T>, passThrough?: (e: unknown) => boolean): Promise<T> {
    for (let n = 1; ; n++) {
      try {
        this.requests[op]++;
        return await this.limiter.run(attempt);
      } catch (e) {
        if (passThrough?.(e)) throw e;
        if (n >= this.maxAttempts || !isTransient(e)) {
          const tries = n > 1 ? ` (after ${n} attempts)` : '';
          throw new LarchError('IO_ERROR', `${op} ${this.urlOf(key)}: ${describeS3Error(e)}${tries}`, {
            op,
            key,
            bucket: this.bucket,
            s3Code: (e as SdkError)?.name,
            status: statusOf(e),
            attempts: n,
          }, { cause: e });
        }
        const delayMs = Math.floor(Math.random() * Math.min(this.maxBackoffMs, this.baseBackoffMs * 2 ** (n - 1)));
        this.onRetry?.({ op, key, attempt: n, error: describeS3Error(e), delayMs });
        await sleep(delayMs);
      }
    }
  }

  private static isNotFound(e: unknown): boolean {
    const name = (e as SdkError)?.name;
    return name === 'NoSuchKey' || name === 'NotFound' || statusOf(e) === 404;
  }

  async get(key: string, range?: ByteRange): Promise<Readable> {
    checkKey(key);
    const res = await this.call('GET', key, () =>
      this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.fullKey(key), Range: range ? `bytes=${range.start}-${range.end ?? ''}` : undefined })),
      S3Store.isNotFound,
    ).catch((e) => {
      if (S3Store.isNotFound(e)) throw new LarchError('OBJECT_MISSING', `No such object: ${this.fullKey(key)} in bucket ${this.bucket}`, { key });
      throw e;
    });
    return res.Body as Readable;
  }

  async getBytes(key: string, maxBytes: number): Promise<Uint8Array | null> {
    checkKey(key);
    try {
      // The body is read inside the retried attempt, so a connection dropped mid-body is retried too.
      return await this.call('GET', key, async () => {
        const res = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.fullKey(key) }));
        if (res.ContentLength !== undefined && res.ContentLength > maxBytes) {
          (res.Body as Readable).destroy();
          throw new LarchError('LIMIT_EXCEEDED', `Object ${this.fullKey(key)} is ${res.ContentLength} bytes, more than ${maxBytes}`, { key });
        }
        const chunks: Buffer[] = [];
        let total = 0;
        for await (const c of res.Body as Readable) {
          total += (c as Buffer).length;
          if (total > maxBytes) {
            (res.Body as Readable).destroy();
            throw new LarchError('LIMIT_EXCEEDED', `Object ${this.fullKey(key)} is more than ${maxBytes} bytes`, { key });
          }
          chunks.push(c as Buffer);
        }
        if (res.ContentLength !== undefined && total !== res.ContentLength) throw Object.assign(new Error(`premature close: ${total} of ${res.ContentLength} bytes`), { name: 'NetworkingError' });
        return Buffer.concat(chunks);
      }, (e) => S3Store.isNotFound(e) || e instanceof LarchError);
    } catch (e) {
      if (S3Store.isNotFound(e)) return null;
      throw e;
    }
  }

  async head(key: string): Promise<StoredObject | null> {
    checkKey(key);
    try {
      const res = await this.call('HEAD', key, () => this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.fullKey(key) })), S3Store.isNotFound);
      return { key, size: res.ContentLength ?? 0, etag: unquote(res.ETag), lastModified: res.LastModified ?? new Date(0) };
    } catch (e) {
      if (S3Store.isNotFound(e)) return null;
      throw e;
    }
  }

  /**
   * PutObject with Content-Length (and Content-MD5 when `opts.md5` is given, so the store rejects
   * damaged bytes). The returned ETag is the store's MD5 of what it stored (single-part puts).
   * A RangedBody above the multipart threshold goes up as a multipart upload instead.
   */
  async put(key: string, body: PutBody, opts: PutOptions): Promise<PutResult> {
    checkKey(key);
    if (isRanged(body) && opts.length > this.multipartThreshold) return this.putMultipart(key, body, opts);
    const res = await this.call('PUT', key, () =>
      this.client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: this.fullKey(key),
          Body: body instanceof Uint8Array ? body : typeof body === 'function' ? body() : body.open(),
          ContentLength: opts.length,
          ContentType: opts.contentType,
          CacheControl: opts.cacheControl,
          ...(opts.md5 !== undefined ? { ContentMD5: Buffer.from(opts.md5, 'hex').toString('base64') } : {}),
        }),
      ),
    );
    return { etag: unquote(res.ETag) };
  }

  /** The size of each part for an object of `size` bytes. */
  private partSizeFor(size: number): number {
    return Math.max(this.partSize, Math.ceil(size / MAX_PARTS));
  }

  /** The multipart entity tag this store gives `body` (null when it would be a single PUT: its MD5). */
  async localEtag(body: RangedBody, size: number): Promise<string | null> {
    if (size <= this.multipartThreshold) return null;
    return multipartEtag((await partDigests(body, size, this.partSizeFor(size), 'Computing the ETag of a local file')).parts);
  }

  /**
   * A multipart upload: the MD5 of every part is computed first (one read of the body), each part
   * is sent with its Content-MD5 (the store refuses damaged bytes) and retried alone, and the
   * object appears whole when the upload completes. A failed upload is aborted so that its parts
   * do not linger in the bucket.
   */
  private async putMultipart(key: string, body: RangedBody, opts: PutOptions): Promise<PutResult> {
    const size = opts.length;
    const partSize = this.partSizeFor(size);
    const { md5, parts } = await partDigests(body, size, partSize, `PUT ${this.urlOf(key)}`);
    if (opts.md5 !== undefined && opts.md5 !== md5) {
      throw new LarchError('OBJECT_CORRUPTED', `PUT ${this.urlOf(key)}: BadDigest: MD5 ${md5}, expected ${opts.md5}`, { key });
    }
    const Bucket = this.bucket;
    const Key = this.fullKey(key);
    const created = await this.call('PUT', key, () =>
      this.client.send(new CreateMultipartUploadCommand({ Bucket, Key, ContentType: opts.contentType, CacheControl: opts.cacheControl })),
    );
    const UploadId = created.UploadId;
    if (UploadId === undefined) throw new LarchError('IO_ERROR', `PUT ${this.urlOf(key)}: the store started a multipart upload without an UploadId`, { key });
    try {
      let next = 0;
      let failed = false;
      const sendParts = async (): Promise<void> => {
        while (!failed && next < parts.length) {
          const i = next++;
          const start = i * partSize;
          const end = Math.min(size, start + partSize) - 1;
          const res = await this.call('PUT', key, () =>
            this.client.send(
              new UploadPartCommand({
                Bucket,
                Key,
                UploadId,
                PartNumber: i + 1,
                Body: body.open({ start, end }),
                ContentLength: end - start + 1,
                ContentMD5: parts[i].toString('base64'),
              }),
            ),
          );
          const etag = unquote(res.ETag);
          if (etag !== null && /^[0-9a-f]{32}$/.test(etag) && etag !== parts[i].toString('hex')) {
            throw new LarchError('OBJECT_CORRUPTED', `PUT ${this.urlOf(key)}: part ${i + 1} stored with ETag ${etag}, expected its MD5 ${parts[i].toString('hex')}`, { key, part: i + 1 });
          }
        }
      };
      // The first failure stops the other senders; all of them have stopped before the abort.
      const sent = await Promise.allSettled(
        Array.from({ length: Math.min(PART_CONCURRENCY, parts.length) }, () =>
          sendParts().catch((e: unknown) => {
            failed = true;
            throw e;
          }),
        ),
      );
      const failure = sent.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failure) throw failure.reason;
      const done = await this.call('PUT', key, () =>
        this.client.send(
          new CompleteMultipartUploadCommand({
            Bucket,
            Key,
            UploadId,
            MultipartUpload: { Parts: parts.map((d, i) => ({ PartNumber: i + 1, ETag: `"${d.toString('hex')}"` })) },
          }),
        ),
      );
      const expected = multipartEtag(parts);
      const etag = unquote(done.ETag);
      if (etag !== null && /^[0-9a-f]{32}-\d+$/.test(etag) && etag !== expected) {
        throw new LarchError('OBJECT_CORRUPTED', `PUT ${this.urlOf(key)}: stored ETag ${etag}, expected ${expected} for its ${parts.length} parts`, { key });
      }
      return { etag: etag ?? expected };
    } catch (e) {
      await this.call('DELETE', key, () => this.client.send(new AbortMultipartUploadCommand({ Bucket, Key, UploadId }))).catch(() => undefined);
      throw e;
    }
  }

  async *list(prefix: string): AsyncIterable<StoredObject> {
    let token: string | undefined;
    const full = this.fullKey(prefix);
    const listPrefix = this.prefix === '' ? prefix : prefix === '' ? `${this.prefix}/` : full;
    do {
      const page = await this.call('LIST', prefix, () =>
        this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: listPrefix, ContinuationToken: token, MaxKeys: 1000 })),
      );
      for (const o of page.Contents ?? []) {
        if (o.Key === undefined) continue;
        yield { key: this.storeKey(o.Key), size: o.Size ?? 0, etag: unquote(o.ETag), lastModified: o.LastModified ?? new Date(0) };
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  async deleteMany(keys: readonly string[]): Promise<void> {
    for (let i = 0; i < keys.length; i += 1000) {
      const batch = keys.slice(i, i + 1000);
      batch.forEach(checkKey);
      const res = await this.call('DELETE', batch[0], () =>
        this.client.send(new DeleteObjectsCommand({ Bucket: this.bucket, Delete: { Objects: batch.map((k) => ({ Key: this.fullKey(k) })), Quiet: true } })),
      );
      const failed = res.Errors?.[0];
      if (failed) {
        throw new LarchError('IO_ERROR', `DELETE s3://${this.bucket}/${failed.Key}: ${failed.Code ?? 'Error'}: ${failed.Message ?? ''}`.trim(), { key: failed.Key, s3Code: failed.Code });
      }
    }
  }

  /** Close the client's sockets. */
  destroy(): void {
    this.client.destroy();
  }
}

function unquote(etag: string | undefined): string | null {
  if (!etag) return null;
  return etag.replace(/^W\//, '').replace(/^"|"$/g, '');
}

/**
 * The bucket policy that makes a bucket an anonymous OSTree remote: anyone may GET objects and
 * list the bucket (so a missing key is a 404, as OSTree expects for optional files, not a 403).
 */
export function publicReadPolicy(bucket: string): string {
  return JSON.stringify({
    Version: '2012-10-17',
    Statement: [
      { Sid: 'PublicReadObjects', Effect: 'Allow', Principal: '*', Action: ['s3:GetObject'], Resource: [`arn:aws:s3:::${bucket}/*`] },
      { Sid: 'PublicListBucket', Effect: 'Allow', Principal: '*', Action: ['s3:ListBucket'], Resource: [`arn:aws:s3:::${bucket}`] },
    ],
  });
}

/**
 * Create the store's bucket when it does not exist and, with `publicRead`, attach
 * publicReadPolicy. Idempotent. Meant for tests, demos and first-time setup; production buckets
 * are usually made by their owner's own tooling.
 */
export async function ensureBucket(store: S3Store, opts: { publicRead?: boolean } = {}): Promise<void> {
  const exists = await store.client.send(new HeadBucketCommand({ Bucket: store.bucket })).then(
    () => true,
    (e) => {
      if (statusOf(e) === 404 || (e as SdkError).name === 'NotFound' || (e as SdkError).name === 'NoSuchBucket') return false;
      throw new LarchError('IO_ERROR', `HEAD bucket ${store.bucket}: ${describeS3Error(e)}`, { bucket: store.bucket }, { cause: e });
    },
  );
  if (!exists) {
    await store.client.send(new CreateBucketCommand({ Bucket: store.bucket })).catch((e) => {
      if ((e as SdkError).name === 'BucketAlreadyOwnedByYou') return;
      throw new LarchError('IO_ERROR', `CreateBucket ${store.bucket}: ${describeS3Error(e)}`, { bucket: store.bucket }, { cause: e });
    });
  }
  if (opts.publicRead) {
    await store.client.send(new PutBucketPolicyCommand({ Bucket: store.bucket, Policy: publicReadPolicy(store.bucket) })).catch((e) => {
      throw new LarchError('IO_ERROR', `PutBucketPolicy ${store.bucket}: ${describeS3Error(e)}`, { bucket: store.bucket }, { cause: e });
    });
  }
}

/** The public HTTP URL of the store's root, path-style (what `ostree remote add` takes). */
export function publicUrl(store: S3Store, endpoint: string): string {
  return `${endpoint.replace(/\/+$/, '')}/${store.bucket}${store.prefix ? `/${store.prefix}` : ''}`;
}
