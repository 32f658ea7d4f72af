/**
 * One place that turns a destination string into a store: `s3://BUCKET/PREFIX` (an S3Store; the
 * endpoint and credentials come from the options or the standard AWS environment variables), a
 * `file://` URL or a plain directory path (an FsStore).
 */
import { LarchError } from '@larch/core-store';
import { FsStore } from './fs-store.js';
import { S3Store, parseS3Url } from './s3-store.js';
import type { PublishedStore } from './store.js';

/** Options of {@link openStore}. */
export interface OpenStoreOptions {
  /** S3 endpoint (default: S3_ENDPOINT / AWS_ENDPOINT_URL, else the SDK's). */
  endpoint?: string;
  region?: string;
  /** Requests in flight (S3 only; default 16). */
  concurrency?: number;
}

/** An opened store and how to release it (S3 keeps a connection pool). */
export interface OpenedStore {
  store: PublishedStore;
  /** The S3Store when the destination is a bucket, else null. */
  s3: S3Store | null;
  close(): void;
}

/** Open the store a destination names. Throws INVALID_ARGUMENT for S3 options given with a directory. */
export function openStore(destination: string, opts: OpenStoreOptions = {}): OpenedStore {
  if (destination.startsWith('s3://')) {
    const { bucket, prefix } = parseS3Url(destination);
    const s3 = new S3Store({
      bucket,
      prefix,
      concurrency: opts.concurrency ?? 16,
      ...(opts.endpoint !== undefined ? { endpoint: opts.endpoint } : {}),
      ...(opts.region !== undefined ? { region: opts.region } : {}),
    });
    return { store: s3, s3, close: () => s3.destroy() };
  }
  if (opts.endpoint !== undefined || opts.region !== undefined) {
    throw new LarchError('INVALID_ARGUMENT', `An endpoint or region needs an s3:// destination, not ${JSON.stringify(destination)}`, { destination });
  }
  const dir = destination.startsWith('file://') ? new URL(destination).pathname : destination;
  return { store: new FsStore(dir), s3: null, close: () => undefined };
}
