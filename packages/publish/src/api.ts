/**
 * HTTP routes of the publisher, under `/api/v1/repos/{repo}/` (see README.md for the full
 * reference):
 *
 *   POST objects/missing        push     {"objects":["CSUM.TYPE",…]} → {"missing":[…]}
 *   POST objects                push     upload body (wire.ts) → {"stored","present","bytes"}
 *   POST refs/{ref…}            publish  {"commit"} → 202 {"job"}; 409 when incomplete
 *   GET  jobs                   read     {"jobs":[…]} (newest 50)
 *   GET  jobs/{id}              read|push|publish → {"job"}
 *   GET  rollouts               read     {"rollouts":[…]}
 *   PUT  rollouts/{ref…}        admin    {"percent"?,"paused"?,"reason"?} → the entry
 *
 * Every other path is left to the next handler (the handler resolves false).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { z } from 'zod';
import { ApiError, sendApiError, sendJson } from './api-error.js';
import { parseQuery, parseRepoPath, readJsonBody, requireMethod, type ApiHandler } from './http.js';
import type { Publisher } from './publisher.js';
import type { Right, TokenRecord, TokenStore } from './tokens.js';
import { OBJECTS_MEDIA_TYPE } from './wire.js';

/** Most checksums per missing-object query. */
export const MAX_MISSING_QUERY = 10_000;
/** Largest upload body (bytes) unless configured otherwise: 2 GiB. */
export const DEFAULT_MAX_UPLOAD_BYTES = 2 * 1024 ** 3;

const checksumRe = /^[0-9a-f]{64}$/;
const missingSchema = z
  .object({ objects: z.array(z.string().regex(/^[0-9a-f]{64}\.(file|dirtree|dirmeta|commit)$/, 'must be CHECKSUM.TYPE (file, dirtree, dirmeta, commit)')).max(MAX_MISSING_QUERY) })
  .strict();
const refUpdateSchema = z.object({ commit: z.string().regex(checksumRe, 'must be a 64-character lowercase hex checksum') }).strict();
const jobsQuerySchema = z.object({ limit: z.coerce.number().int().min(1).max(500).default(50) }).strict();
const rolloutSchema = z
  .object({
    percent: z.number().int().min(0).max(100).optional(),
    paused: z.boolean().optional(),
    reason: z.string().max(500).nullable().optional(),
  })
  .strict();

/** Options of {@link createPublishApi}. */
export interface PublishApiOptions {
  publisher: Publisher;
  tokens: TokenStore;
  /** Largest upload body in bytes (default 2 GiB). */
  maxUploadBytes?: number;
}

function authorizeAny(tokens: TokenStore, req: IncomingMessage, repo: string, rights: Right[]): TokenRecord {
  let last: unknown;
  for (const right of rights) {
    try {
      return tokens.authorize(req, { repo, right });
    } catch (e) {
      if (!(e instanceof ApiError) || e.status !== 403) throw e;
      last = e;
    }
  }
  throw last;
}

/** Count body bytes and stop past `limit` (413). */
async function* limited(req: IncomingMessage, limit: number): AsyncIterable<Uint8Array> {
  let n = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    n += c.length;
    if (n > limit) throw new ApiError(413, 'too-large', `Upload exceeds the limit of ${limit} bytes`);
    yield c;
  }
}

/** The publisher's API handler (see the file comment for the routes). */
export function createPublishApi(opts: PublishApiOptions): ApiHandler {
  const { publisher, tokens } = opts;
  const maxUpload = opts.maxUploadBytes ?? DEFAULT_MAX_UPLOAD_BYTES;
  const known = new Set(publisher.repoNames);

  return async (req: IncomingMessage, res: ServerResponse, url: URL): Promise<boolean> => {
    let parsed;
    try {
      parsed = parseRepoPath(url);
    } catch (e) {
      // A malformed path under /api/v1/repos/ is nobody's: refuse it here.
      sendApiError(res, e);
      return true;
    }
    if (parsed === null) return false;
    const { repo, rest } = parsed;
    const [head, ...tail] = rest;
    const route =
      head === 'objects' && tail.length === 1 && tail[0] === 'missing'
        ? 'missing'
        : head === 'objects' && tail.length === 0
          ? 'upload'
          : head === 'refs' && tail.length > 0
            ? 'ref'
            : head === 'jobs' && tail.length <= 1
              ? 'jobs'
              : head === 'rollouts'
                ? 'rollouts'
                : null;
    if (route === null) return false;
    // An upload body that is refused must not be read to its end.
    const refuse = (e: unknown): true => {
      if (route === 'upload' && !req.complete) res.setHeader('Connection', 'close');
      sendApiError(res, e);
      return true;
    };
    try {
      if (!known.has(repo)) throw new ApiError(404, 'repo-not-found', `No repository named ${repo}`);
      switch (route) {
        case 'missing': {
          requireMethod(req, res, 'POST');
          tokens.authorize(req, { repo, right: 'push' });
          const body = await readJsonBody(req, missingSchema, 2 * 1024 * 1024);
          sendJson(res, 200, { missing: publisher.missing(repo, body.objects) });
          return true;
        }
        case 'upload': {
          requireMethod(req, res, 'POST');
          tokens.authorize(req, { repo, right: 'push' });
          const type = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
          if (type !== OBJECTS_MEDIA_TYPE) throw new ApiError(400, 'invalid-content-type', `Upload needs Content-Type ${OBJECTS_MEDIA_TYPE}, not ${JSON.stringify(type)}`);
          const declared = req.headers['content-length'];
          if (declared !== undefined && Number(declared) > maxUpload) throw new ApiError(413, 'too-large', `Upload of ${declared} bytes exceeds the limit of ${maxUpload}`);
          const r = await publisher.receive(repo, limited(req, maxUpload));
          sendJson(res, 200, r);
          return true;
        }
        case 'ref': {
          requireMethod(req, res, 'POST');
          const ref = tail.join('/');
          const tok = tokens.authorize(req, { repo, right: 'publish', ref });
          const body = await readJsonBody(req, refUpdateSchema, 64 * 1024);
          const job = await publisher.requestPublish(repo, ref, body.commit, tok.id);
          res.setHeader('Location', `/api/v1/repos/${repo}/jobs/${job.id}`);
          sendJson(res, 202, { job });
          return true;
        }
        case 'jobs': {
          requireMethod(req, res, 'GET', 'HEAD');
          authorizeAny(tokens, req, repo, ['read', 'publish', 'push']);
          if (tail.length === 0) {
            const q = parseQuery(url, jobsQuerySchema);
            sendJson(res, 200, { jobs: publisher.store.jobs(repo, q.limit) });
            return true;
          }
          if (!/^[1-9][0-9]{0,15}$/.test(tail[0])) throw new ApiError(404, 'job-not-found', `No publish job ${JSON.stringify(tail[0].slice(0, 40))}`);
          const job = publisher.job(repo, Number(tail[0]));
          if (job === undefined) throw new ApiError(404, 'job-not-found', `No publish job ${tail[0]} in repository ${repo}`);
          sendJson(res, 200, { job });
          return true;
        }
        case 'rollouts': {
          if (tail.length === 0) {
            requireMethod(req, res, 'GET', 'HEAD');
            tokens.authorize(req, { repo, right: 'read' });
            sendJson(res, 200, { rollouts: await publisher.rollouts(repo) });
            return true;
          }
          requireMethod(req, res, 'PUT');
          const ref = tail.join('/');
          tokens.authorize(req, { repo, right: 'admin', ref });
          const body = await readJsonBody(req, rolloutSchema, 64 * 1024);
          const entry = await publisher.setRollout(repo, ref, {
            ...(body.percent !== undefined ? { percent: body.percent } : {}),
            ...(body.paused !== undefined ? { paused: body.paused } : {}),
            ...(body.reason !== undefined ? { reason: body.reason } : {}),
          });
          sendJson(res, 200, entry);
          return true;
        }
      }
    } catch (e) {
      return refuse(e);
    }
    return false;
  };
}
