/**
 * @larch/core-store: an OSTree-compatible content-addressed repository.
 * See README.md for an example and spec/repo-format.md for the on-disk format.
 */
export * from './types.js';
export { LarchError, fileChecksumMismatch, isLarchError, type LarchErrorCode } from './errors.js';
export { KeyFile } from './config.js';
export {
  validateName,
  validateChecksum,
  validateRefName,
  validateRemoteName,
  validateCollectionId,
  isChecksum,
} from './validate.js';
export {
  parseCommit,
  serializeCommit,
  commitRefBindings,
  contentChecksumOfCommit,
  COMMIT_TYPE,
  MAX_METADATA_SIZE,
} from './objects/commit.js';
export { parseDirTree, serializeDirTree, compareNames, MAX_DIRTREE_ENTRIES } from './objects/dirtree.js';
export { parseDirMeta, serializeDirMeta } from './objects/dirmeta.js';
export {
  fileHeader,
  contentChecksumOf,
  contentHasher,
  serializeFileHeaderVariant,
  parseFileHeaderVariant,
  validateFileMode,
  MAX_SYMLINK_TARGET,
} from './objects/file-header.js';
export {
  serializeArchiveHeader,
  serializeArchiveHeaderVariant,
  parseArchiveHeaderVariant,
  archiveHeaderLength,
  MAX_ARCHIVE_HEADER_SIZE,
  type ArchiveHeader,
} from './objects/archive-header.js';
export { serializeUserMeta, parseUserMeta, bareUserStoredMode, USER_META_XATTR } from './objects/user-meta.js';
export { serializeXattrs, parseXattrs, sortXattrs } from './objects/xattrs.js';
export { serializeTombstone, parseTombstone } from './objects/tombstone.js';
export { serializeCommitMeta, parseCommitMeta } from './objects/commitmeta.js';
export { readXattrs, writeAllSync } from './objects/content-io.js';
export { Repo, WriteBatch, StagedFileWriter, modeConfigString, DEFAULT_ZLIB_LEVEL, type ContentSource, type OpenedContent } from './repo.js';
export { parseRefspec, formatRefspec, setRefAlias, type ParsedRefspec, type RefKind } from './repo-refs.js';
export { listRefAliases, assertRefDirs } from './repo-aliases.js';
export { singleCommit } from './repo-single-commit.js';
export { DEFAULT_LOCK_TIMEOUT_SECS, type LockKind, type LockHandle } from './repo-lock.js';
export { StagingDir, STAGING_PREFIX, bootId, type CleanupTmpOptions } from './repo-staging.js';
export { commitTree, defaultCommitTimestamp, SMALL_FILE_MAX, DEFAULT_COMMIT_CONCURRENCY, type CommitTreeOptions, type CommitTreeResult } from './repo-commit.js';
// Part B modules (traverse, checkout, fsck, prune, summary, diff, log, ls) are exported below, one line each.
export { traverseCommit, objectKey, readTree, readMeta, type ObjectRef } from './repo-traverse.js';
export { checkout, type CheckoutOptions, type CheckoutStats } from './repo-checkout.js';
export { fsck, type FsckOptions, type FsckReport, type FsckError, type FsckErrorCode } from './repo-fsck.js';
export { prune, type PruneOptions, type PruneResult } from './repo-prune.js';
export { generateSummary, readSummary, summaryRefTimestamp, listDeltaDirs, SUMMARY_TYPE, type Summary, type SummaryRef, type GenerateSummaryOptions, type DeltaDir } from './repo-summary.js';
export { diffCommits, diffTrees, type DiffEntry, type DiffSide, type DiffTreesOptions } from './repo-diff.js';
export { log, type LogEntry } from './repo-log.js';
export { ls, lsStream, formatLsEntry, type LsEntry, type LsOptions } from './repo-ls.js';
export { lsEntryXattrs } from './ls-xattrs.js';
export { validatePathComponent, splitSafePath, assertNoSymlinkInLeadingPath, openBeneath, sanitize } from './fs-safety.js';
export { ReceiveWorkers, RECEIVE_MAX_INFLATED } from './receive-workers.js';
export { checksumPath, type ChecksumPathOptions } from './checksum-path.js';
export { exportArchive, streamSink, TAR_RECORD_SIZE, type ExportOptions, type ExportResult, type TarSink } from './repo-export.js';
export {
  OBJECTS_DIR,
  DELTAS_DIR,
  DELTA_INDEXES_DIR,
  REFS_HEADS_DIR,
  REFS_REMOTES_DIR,
  REFS_MIRRORS_DIR,
  MODIFIED_BASE64_CLASS,
  MODIFIED_BASE64_LENGTH,
  objectSuffix,
  objectRelPath,
  modifiedBase64,
  checksumFromModifiedBase64,
  deltaName,
  deltaRelDir,
  deltaRelPath,
  parseDeltaDirName,
  deltaIndexRelPath,
  parseDeltaIndexName,
  type ObjectSuffix,
} from './layout.js';
export {
  signCommit,
  verifyCommitSignatures,
  deleteCommitSignatures,
  updateCommitMeta,
  signSummary,
  verifySummarySignatures,
  deleteSummarySignatures,
  readSummaryFile,
  readSummarySignatures,
  signaturesOf,
  MAX_SIGNATURES_PER_KEY,
  type RepoSigner,
  type RepoVerifier,
  type SignatureCheck,
  type SignOptions,
  type SignatureSelector,
  type DeleteSignaturesOptions,
  type DetachedDict,
} from './repo-sign.js';
