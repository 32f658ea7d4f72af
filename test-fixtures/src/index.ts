/**
 * @larch/test-fixtures — builders and runners shared by Larch's test suites:
 * the ostree and larch CLI wrappers, declarative and named fixture trees,
 * tree comparison, sentinels, raw/hostile object writers and damage helpers.
 * Golden objects made by the real ostree live in ../golden (see REGENERATE.md).
 */
export { tmpDir, withTmpDir, tmpDirs, type TmpDir } from './tmp.js';
export {
  run,
  runOk,
  ostree,
  ostreeOk,
  hasOstree,
  requireOstree,
  interopMode,
  interopDescribe,
  larch,
  larchOk,
  larchCliPath,
  hasLarch,
  CommandFailedError,
  type RunOptions,
  type RunResult,
} from './run.js';
export {
  makeTree,
  writeSeededFile,
  SeededBytes,
  type TreeSpec,
  type TreeEntry,
  type FileEntry,
  type DirEntry,
  type SymlinkEntry,
  type HardlinkEntry,
} from './tree.js';
export {
  FIXTURE_KINDS,
  ALL_FIXTURE_KINDS,
  LARGE_FILE_SIZE,
  LARGE_FILE_SEED,
  fixtureSpec,
  canonicalSpec,
  makeFixtureTree,
  type FixtureKind,
  type FixtureOptions,
} from './fixtures.js';
export { compareTrees, formatDifferences, sha256File, type TreeDifference, type CompareOptions, type EntryKind } from './compare.js';
export { makeSentinel, type Sentinel } from './sentinel.js';
export {
  sha256Hex,
  checksumBytes,
  encodeDirTree,
  encodeDirMeta,
  encodeCommit,
  encodeFileHeader,
  encodeArchiveFile,
  encodeTombstone,
  contentChecksum,
  repoModeOf,
  rawObjectPath,
  writeRawObject,
  writeRawFile,
  writeHostileTree,
  writeHostileCommit,
  setRawRef,
  readRawRef,
  type RawChecksum,
  type RawXattr,
  type RawFileMeta,
  type RawDirTree,
  type RawDirMeta,
  type RawCommit,
  type RepoModeName,
  type HostileFile,
  type HostileDir,
} from './hostile.js';
export { listRawObjects, flipByte, truncateObject, deleteObjectFile, type RawObjectEntry } from './corrupt.js';
export { goldenDir, goldenPath } from './golden.js';
