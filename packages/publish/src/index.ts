/**
 * @larch/publish: the publishing side of larch-server — scoped tokens, push (client and
 * server), the publish pipeline (verify, sign, move the ref, deltas, summary, prune) and
 * rollouts. See README.md for the HTTP API and an example.
 */
export { ApiError, sendJson, sendApiError, toApiError, type ApiStatus } from './api-error.js';
export { parseRepoPath, parseQuery, readJsonBody, readBody, assertSafeTarget, requireMethod, isRepoName, REPO_NAME_RE, DEFAULT_JSON_LIMIT, type ApiHandler } from './http.js';
export { TokenStore, checkScope, hashToken, bearerToken, parseExpiry, RIGHTS, rightSchema, type Right, type TokenRecord, type TokenNeed, type CreateTokenOptions } from './tokens.js';
export { publishConfigSchema, loadSigners, DEFAULT_DELTAS_FROM_LAST, type PublishConfig } from './config.js';
export { Publisher, ROLLOUT_KEY, type PublisherOptions, type PublishRepoOptions, type UploadStats, type RolloutChange } from './publisher.js';
export { PublishStore, type PublishJob, type JobState, type JobStep, type RolloutEntry } from './store.js';
export { createPublishApi, MAX_MISSING_QUERY, DEFAULT_MAX_UPLOAD_BYTES, type PublishApiOptions } from './api.js';
export { pushRef, MISSING_QUERY_BATCH, UPLOAD_MAX_OBJECTS, type PushOptions, type PushProgress, type PushResult } from './client.js';
export { receiveObjects, type ReceiveLimits, type ReceiveResult } from './receive.js';
export { UploadReader, OBJECTS_MEDIA_TYPE, MAGIC, MAX_CHUNK, recordHeader, chunkFrames, isUploadType, type UploadType } from './wire.js';
