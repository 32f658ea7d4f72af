/**
 * @larch/browse: the read-only JSON API behind larch-server's web console — repositories, head refs
 * and their history, a commit's tree and its diff to the parent, and static deltas against full
 * size. See README.md for the endpoints and an example.
 */
export { createBrowseApi, MAX_QUERY_PATH, type BrowseApiOptions, type BrowseAuthorizer } from './browse-api.js';
export {
  listHeadRefs,
  resolveHead,
  readLog,
  readCommitInfo,
  listTree,
  diffToParent,
  listStaticDeltas,
  fullCommitBytes,
  isoTime,
  FullSizeCache,
  ReachableCommits,
  REACH_MAX_READS,
  MAX_REFS,
  DEFAULT_LOG_LIMIT,
  MAX_LOG_LIMIT,
  DEFAULT_TREE_LIMIT,
  MAX_TREE_LIMIT,
  MAX_DIFF_CHANGES,
  MAX_DELTAS,
  DELTA_REF_DEPTH,
  DELTA_REF_MAX_READS,
} from './browse-read.js';
export type * from './browse-types.js';
