/**
 * The JSON error vocabulary of larch-server's `/api/`: every refusal is an {@link ApiError}
 * carrying its HTTP status and a kebab-case code, answered as
 * `{"error":{"code":"…","message":"…"}}`. Other errors are mapped by {@link sendApiError}:
 * core-store's LarchError codes to the nearest status, zod errors to 400, anything else to 500
 * (with a generic message: internals are not echoed to clients).
 */
import type { ServerResponse } from 'node:http';
import { LarchError, type LarchErrorCode } from '@larch/core-store';
import { z } from 'zod';

/** HTTP statuses the API answers errors with. */
export type ApiStatus = 400 | 401 | 403 | 404 | 405 | 409 | 413 | 422 | 500 | 503;

function larchCodeFor(status: number): LarchErrorCode {
  if (status === 413) return 'LIMIT_EXCEEDED';
  if (status === 409) return 'EXISTS';
  if (status === 422) return 'OBJECT_CORRUPTED';
  if (status >= 500) return 'IO_ERROR';
  return 'INVALID_ARGUMENT';
}

/**
 * An API refusal. `status` is the HTTP status, `apiCode` the kebab-case code clients branch on
 * (`unauthorized`, `token-expired`, `forbidden`, `invalid-body`, `not-found`, `incomplete-commit`…);
 * `code` is the LarchError code nearest to the status, for code that handles every LarchError.
 */
export class ApiError extends LarchError {
  readonly status: number;
  readonly apiCode: string;

  constructor(status: ApiStatus, apiCode: string, message: string, data: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    super(larchCodeFor(status), message, data, options);
    this.name = 'ApiError';
    this.status = status;
    this.apiCode = apiCode;
  }

  /** The response body. */
  body(): { error: { code: string; message: string } & Record<string, unknown> } {
    return { error: { code: this.apiCode, message: this.message, ...publicData(this.data) } };
  }
}

/** Only plain, small values of `data` go to the client (e.g. `missing: "<csum>.dirtree"`). */
function publicData(data: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(data)) {
    if (k === 'code' || k === 'message') continue;
    if (typeof v === 'string' && v.length <= 512) out[k] = v;
    else if (typeof v === 'number' || typeof v === 'boolean' || v === null) out[k] = v;
  }
  return out;
}

function oneLine(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\x00-\x1f\x7f]+/g, ' ').slice(0, 1000);
}

/** Send `body` as JSON with `status`. No caching; a 204 has no body. */
export function sendJson(res: ServerResponse, status: number, body?: unknown): void {
  // Headers go through setHeader (not writeHead's object) so that the access log can read
  // Content-Length back with getHeader.
  res.setHeader('Cache-Control', 'no-store');
  if (status === 204 || body === undefined) {
    res.setHeader('Content-Length', '0');
    res.writeHead(status);
    res.end();
    return;
  }
  const text = JSON.stringify(body);
  res.setHeader('Content-Type', 'application/json; charset=utf-8');
  res.setHeader('Content-Length', String(Buffer.byteLength(text)));
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.writeHead(status);
  res.end(text);
}

/** Convert any thrown value to the ApiError it is answered with. */
export function toApiError(e: unknown): ApiError {
  if (e instanceof ApiError) return e;
  if (e instanceof z.ZodError) {
    const i = e.issues[0];
    const where = i && i.path.length ? ` at ${i.path.join('.')}` : '';
    return new ApiError(400, 'invalid-body', `Invalid request${where}: ${i?.message ?? 'validation failed'}`);
  }
  if (e instanceof LarchError) {
    const m = oneLine(e.message);
    switch (e.code) {
      case 'INVALID_NAME':
      case 'INVALID_CHECKSUM':
      case 'INVALID_REF':
      case 'INVALID_ARGUMENT':
        return new ApiError(400, 'invalid-argument', m, {}, { cause: e });
      case 'OBJECT_CORRUPTED':
        return new ApiError(422, 'object-corrupted', m, {}, { cause: e });
      case 'LIMIT_EXCEEDED':
        return new ApiError(413, 'too-large', m, {}, { cause: e });
      case 'REF_NOT_FOUND':
      case 'REPO_NOT_FOUND':
        return new ApiError(404, 'not-found', m, {}, { cause: e });
      case 'OBJECT_MISSING':
        return new ApiError(409, 'object-missing', m, {}, { cause: e });
      case 'LOCK_TIMEOUT':
        return new ApiError(503, 'busy', m, {}, { cause: e });
      default:
        break;
    }
  }
  return new ApiError(500, 'internal', 'Internal server error', {}, { cause: e });
}

/**
 * Answer `e` as a JSON error. When the headers are already out (a streamed answer failed), the
 * connection is destroyed instead so the client sees a truncated response, not a wrong one.
 */
export function sendApiError(res: ServerResponse, e: unknown): ApiError {
  const err = toApiError(e);
  if (res.headersSent) {
    res.destroy();
    return err;
  }
  if (err.status === 401) res.setHeader('WWW-Authenticate', 'Bearer realm="larch"');
  sendJson(res, err.status, err.body());
  return err;
}
