/**
 * `createBrowseApi`: the read-only `/api/v1/` endpoints the web console uses (refs, history, trees,
 * diffs, static deltas), as an ApiHandler that larch-server tries after the publish and fleet
 * handlers.
 *
 * Every request needs a bearer token with the right `read` on the repository; a token limited to a
 * ref prefix sees only those refs (listings are filtered, a history of another ref is 403). Path
 * segments arrive decoded and checked by @larch/publish's `parseRepoPath` (no "", ".", "..", "/",
 * control characters); checksums must be 64 lowercase hex, ref names pass core-store's
 * `validateRefName`, queries are validated with zod (unknown and repeated parameters refused), and
 * tree paths go through core-store's `splitSafePath`. Errors answer
 * `{"error":{"code","message"}}` through @larch/publish's `sendApiError`.
 *
 * Only GET and HEAD are answered; another method on one of these paths is 405.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { isChecksum, LarchError, Repo, validateRefName, type Checksum } from '@larch/core-store';
import { ApiError, parseQuery, parseRepoPath, sendApiError, sendJson, type ApiHandler, type TokenRecord, type TokenNeed } from '@larch/publish';
import { z } from 'zod';
import {
  diffToParent,
  FullSizeCache,
  ReachableCommits,
  listHeadRefs,
  listStaticDeltas,
  listTree,
  MAX_LOG_LIMIT,
  MAX_TREE_LIMIT,
  readCommitInfo,
  readLog,
} from './browse-read.js';
import type { ReposResponse } from './browse-types.js';

/** The part of @larch/publish's TokenStore this API uses. */
export interface BrowseAuthorizer {
  authorize(req: IncomingMessage, need: TokenNeed): TokenRecord;
}

/** Options of {@link createBrowseApi}. */
export interface BrowseApiOptions {
  /** The served repositories: `name` as in the URL, `path` the repository directory. */
  repos: ReadonlyArray<{ name: string; path: string }>;
  tokens: BrowseAuthorizer;
}

const REPO_PREFIX = '/api/v1/repos/';
/** First segment after `/api/v1/repos/{repo}/` of the paths this API answers. */
const OWN_HEADS = new Set(['refs', 'log', 'commits', 'deltas']);

/** Longest tree path accepted in `?path=`. */
export const MAX_QUERY_PATH = 4096;

const noQuery = z.object({}).strict();
const logQuery = z.object({ limit: z.coerce.number().int().min(1).max(MAX_LOG_LIMIT).optional() }).strict();
const treeQuery = z
  .object({
    path: z.string().max(MAX_QUERY_PATH).optional(),
    offset: z.coerce.number().int().min(0).max(1_000_000).optional(),
    limit: z.coerce.number().int().min(1).max(MAX_TREE_LIMIT).optional(),
  })
  .strict();

function checksumParam(s: string): Checksum {
  if (!isChecksum(s)) throw new ApiError(400, 'invalid-checksum', `Invalid checksum ${JSON.stringify(s.slice(0, 80))}: expected 64 lowercase hex characters`);
  return s;
}

function refParam(parts: string[]): string {
  const ref = parts.join('/');
  try {
    validateRefName(ref);
  } catch (e) {
    throw new ApiError(400, 'invalid-ref', `Invalid ref name ${JSON.stringify(ref.slice(0, 200))}`, {}, { cause: e });
  }
  return ref;
}

/** Map the read layer's LarchErrors to this API's statuses (404 for what is absent). */
function browseError(e: unknown): unknown {
  if (!(e instanceof LarchError) || e instanceof ApiError) return e;
  const msg = e.message.replace(/[\x00-\x1f\x7f]+/g, ' ').slice(0, 1000);
  switch (e.code) {
    case 'REF_NOT_FOUND':
      return new ApiError(404, 'ref-not-found', msg, {}, { cause: e });
    case 'OBJECT_MISSING':
      return new ApiError(404, 'object-not-found', msg, {}, { cause: e });
    case 'INVALID_NAME':
      return new ApiError(400, 'invalid-path', msg, {}, { cause: e });
    case 'INVALID_ARGUMENT':
      if (e.data.reason === 'not-found') return new ApiError(404, 'path-not-found', msg, {}, { cause: e });
      if (e.data.reason === 'not-a-directory') return new ApiError(400, 'not-a-directory', msg, {}, { cause: e });
      return e;
    case 'OBJECT_CORRUPTED':
      return new ApiError(500, 'object-corrupted', msg, {}, { cause: e });
    default:
      return e;
  }
}

type Route =
  | { kind: 'refs' }
  | { kind: 'log'; ref: string }
  | { kind: 'commit'; commit: Checksum }
  | { kind: 'tree'; commit: Checksum }
  | { kind: 'diff'; commit: Checksum }
  | { kind: 'deltas' };

/** Which endpoint `rest` names, or null when the path is not this API's. Validates ids. */
function route(rest: string[]): Route | null {
  const [head, ...tail] = rest;
  if (head === 'refs' && tail.length === 0) return { kind: 'refs' };
  if (head === 'deltas' && tail.length === 0) return { kind: 'deltas' };
  if (head === 'log' && tail.length > 0) return { kind: 'log', ref: refParam(tail) };
  if (head === 'commits' && tail.length === 1) return { kind: 'commit', commit: checksumParam(tail[0]) };
  if (head === 'commits' && tail.length === 2 && (tail[1] === 'tree' || tail[1] === 'diff')) {
    const commit = checksumParam(tail[0]);
    return tail[1] === 'tree' ? { kind: 'tree', commit } : { kind: 'diff', commit };
  }
  return null;
}

function methodAllowed(req: IncomingMessage, res: ServerResponse): void {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('Allow', 'GET, HEAD');
    throw new ApiError(405, 'method-not-allowed', `Method ${String(req.method).slice(0, 20)} not allowed here (allowed: GET, HEAD)`);
  }
}

/**
 * The read API for the console (contract: `GET /api/v1/repos`, `…/{repo}/refs`,
 * `…/{repo}/log/{ref…}?limit=N`, `…/{repo}/commits/{csum}`, `…/{repo}/commits/{csum}/tree?path=…&offset=…&limit=…`,
 * `…/{repo}/commits/{csum}/diff`, `…/{repo}/deltas`). Resolves false, without touching `res`, for
 * any other path.
 *
 * Locking: none; reads only (see browse-read.ts for why no repository lock is needed). Repositories
 * are opened on first use and kept open. Limits: the listing limits of browse-read.ts; a full-size
 * cache of at most 1024 commits per API instance.
 */
export function createBrowseApi(opts: BrowseApiOptions): ApiHandler {
  const paths = new Map<string, string>();
  for (const r of opts.repos) {
    if (paths.has(r.name)) throw new RangeError(`Duplicate repository name ${JSON.stringify(r.name)}`);
    paths.set(r.name, r.path);
  }
  const opened = new Map<string, Promise<Repo>>();
  const sizes = new FullSizeCache();
  const reach = new ReachableCommits();

  const openRepo = (name: string): Promise<Repo> => {
    let p = opened.get(name);
    if (p === undefined) {
      p = Repo.open(paths.get(name)!);
      opened.set(name, p);
      // A repository that failed to open (not there yet, unreadable) is retried next time.
      p.catch(() => opened.delete(name));
    }
    return p;
  };

  const listRepos = async (req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> => {
    const out: ReposResponse['repos'] = [];
    for (const name of paths.keys()) {
      try {
        opts.tokens.authorize(req, { repo: name, right: 'read' });
      } catch (e) {
        if (e instanceof ApiError && e.status === 403) continue;
        throw e;
      }
      const repo = await openRepo(name);
      out.push({ name, mode: repo.mode });
    }
    parseQuery(url, noQuery);
    sendJson(res, 200, { repos: out } satisfies ReposResponse);
  };

  const answer = async (req: IncomingMessage, res: ServerResponse, url: URL, name: string, r: Route): Promise<void> => {
    const token = opts.tokens.authorize(req, { repo: name, right: 'read', ...(r.kind === 'log' ? { ref: r.ref } : {}) });
    if (!paths.has(name)) throw new ApiError(404, 'repo-not-found', `No repository named ${JSON.stringify(name)}`);
    const repo = await openRepo(name);
    const refPrefix = token.refPrefix === '' ? undefined : token.refPrefix;
    // A ref-scoped token reads a commit only through the history of its refs.
    if (refPrefix !== undefined && (r.kind === 'commit' || r.kind === 'tree' || r.kind === 'diff') && !(await reach.has(repo, refPrefix, r.commit))) {
      throw new ApiError(404, 'object-not-found', `No such metadata object ${r.commit}.commit`);
    }
    switch (r.kind) {
      case 'refs':
        parseQuery(url, noQuery);
        sendJson(res, 200, await listHeadRefs(repo, refPrefix ? { prefix: refPrefix } : {}));
        return;
      case 'log': {
        const q = parseQuery(url, logQuery);
        sendJson(res, 200, await readLog(repo, r.ref, { limit: q.limit }));
        return;
      }
      case 'commit':
        parseQuery(url, noQuery);
        sendJson(res, 200, await readCommitInfo(repo, r.commit));
        return;
      case 'tree': {
        const q = parseQuery(url, treeQuery);
        sendJson(res, 200, await listTree(repo, r.commit, q.path ?? '/', { offset: q.offset, limit: q.limit }));
        return;
      }
      case 'diff':
        parseQuery(url, noQuery);
        sendJson(res, 200, await diffToParent(repo, r.commit));
        return;
      case 'deltas':
        parseQuery(url, noQuery);
        sendJson(res, 200, await listStaticDeltas(repo, { cache: sizes, ...(refPrefix ? { refPrefix } : {}) }));
        return;
    }
  };

  return async (req, res, url) => {
    try {
      const p = url.pathname;
      if (p === '/api/v1/repos' || p === '/api/v1/repos/') {
        methodAllowed(req, res);
        await listRepos(req, res, url);
        return true;
      }
      // Decide ownership from the raw segment after the repository name first, so a path of
      // another handler is never answered here, even when its segments are invalid.
      if (!p.startsWith(REPO_PREFIX) || !OWN_HEADS.has(p.slice(REPO_PREFIX.length).split('/')[1] ?? '')) return false;
      const parsed = parseRepoPath(url);
      if (parsed === null) return false;
      const r = route(parsed.rest);
      if (r === null) return false;
      methodAllowed(req, res);
      await answer(req, res, url, parsed.repo, r);
    } catch (e) {
      sendApiError(res, browseError(e));
    }
    return true;
  };
}
