/**
 * @larch/object-store: published OSTree repos on a local directory or on S3-compatible object
 * storage — the store interface, publishing a local archive repo into it, and pruning it.
 */
export type { PublishedStore, StoredObject, PutOptions, PutResult, PutBody, RangedBody, ByteRange } from './store.js';
export { openBody } from './store.js';
export { FsStore } from './fs-store.js';
export { S3Store, parseS3Url, ensureBucket, publicReadPolicy, publicUrl, isTransient, describeS3Error, multipartEtag, MIN_PART_SIZE, MAX_PARTS, type S3StoreOptions } from './s3-store.js';
export { openStore, type OpenStoreOptions, type OpenedStore } from './open-store.js';
export { publishRepo, type PublishOptions, type PublishResult, type PublishProgress } from './publish.js';
export { pruneStore, type PruneStoreOptions, type PruneStoreResult } from './prune.js';
export { classify, cacheControlFor, contentTypeFor, objectKey, deltaDirKey, mb64, summaryDeltaNames, IMMUTABLE, SHORT_LIVED, type KeyClass } from './keys.js';
