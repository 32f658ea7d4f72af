/**
 * @larch/delta: OSTree static deltas (spec static-deltas.md) — generate them in OSTree's own
 * format, inspect, delete and index them, and apply them offline or from a fetched source.
 * See README.md for an example.
 */
export { mb64, mb64Decode, deltaRelDir, deltaName, parseDeltaName, parseDeltaDirName, deltaIndexRelPath } from './names.js';
export {
  SUPERBLOCK_TYPE,
  PART_BODY_TYPE,
  COMPRESSION_NONE,
  COMPRESSION_XZ,
  encodeSuperblock,
  encodeSignedSuperblock,
  decodeSuperblock,
  encodePartBody,
  encodePartBodyChunks,
  decodePartBody,
  encodeObjectList,
  decodeObjectList,
  inlinePartBytes,
  inlinePartVariant,
  superblockFigures,
  type Superblock,
  type SuperblockFigures,
  type PartHeader,
  type PartBody,
  type FallbackEntry,
  type DeltaObject,
} from './format.js';
export { ByteSink, ChunkSink, OpReader, OP_NAMES } from './ops.js';
export { bsdiff, bspatch, suffixArray } from './bsdiff.js';
export { chunks as rollsumChunks, rollsumMatches, ostreeRollsumStats, ostreeTakesRollsum, type Chunk, type Match, type OstreeRollsumStats } from './rollsum.js';
export { xzCompress, xzDecompressBounded, XZ_MEMLIMIT } from './xz.js';
export { applySuperblock, type ApplyOptions, type ApplyResult, type DeltaProgress } from './apply.js';
export {
  unpackPart,
  verifyPart,
  partComplete,
  partBodyLimit,
  checkDeclaredSizes,
  maxStoredPartSize,
  superblockCommitMeta,
  MAX_PART_BODY,
  type PartSource,
} from './part-reader.js';
export { generateDelta, type GenerateEvent, type GenerateOptions, type GenerateStats } from './generate.js';
export {
  listDeltas,
  readDelta,
  showDelta,
  deleteDelta,
  reindexDeltas,
  parseDeltaIndex,
  applyOffline,
  listDeltaIndexes,
  verifyDelta,
  directoryPartSource,
  readBounded,
  MAX_SUPERBLOCK_SIZE,
  type DeltaEntry,
  type DeltaDescription,
  type PartDescription,
} from './manage.js';
export { pullLocalDeltas, type LocalDeltaTarget, type LocalDeltaPullOptions, type LocalDeltaPulled } from './local-pull.js';
export {
  signSuperblock,
  verifySuperblock,
  checkSuperblockPolicy,
  signVerifyDeltas,
  MAX_SUPERBLOCK_SIGNATURES,
  type SuperblockSigner,
  type SuperblockVerifier,
  type SuperblockVerification,
} from './sign.js';
export { refreshSummary, reindexDeltasLocked, hasDelta, type RefreshSummaryOptions } from './summary-refresh.js';
