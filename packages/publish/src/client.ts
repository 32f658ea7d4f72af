/**
 * The push client: send a commit of a local repository to larch-server and ask for the ref to
 * move. Steps: walk the commit locally; ask the server which objects it lacks (batches of
 * checksums); upload only those, several per request (archive `.filez` form, compressed on the
 * fly when the local repository is bare-user, streamed, never a whole file in memory); then
 * request the ref update, which queues the server's publish job, and follow the job.
 *
 * Resumable by construction: the server keeps every object it verified, so running the same
 * push again asks again and uploads only what is still missing.
 */
import { createReadStream, lstatSync } from 'node:fs';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { createDeflateRaw, deflateRawSync } from 'node:zlib';
import { LarchError, Repo, S_IFLNK, S_IFMT, serializeArchiveHeader, traverseCommit, validateRefName, type Checksum } from '@larch/core-store';
import { Agent, request, type Dispatcher } from 'undici';
import { ApiError, type ApiStatus } from './api-error.js';
import type { PublishJob } from './store.js';
import { BODY_END, MAGIC, OBJECTS_MEDIA_TYPE, RECORD_END, chunkFrames, isUploadType, recordHeader, type UploadType } from './wire.js';

/** Options of {@link pushRef}. */
export interface PushOptions {
  /** Local repository (archive or bare-user). */
  repoPath: string;
  /** Base URL of larch-server, e.g. `http://127.0.0.1:8080/`. */
  serverUrl: string;
  /** Repository name on the server. */
  repo: string;
  /** Ref to update on the server (and, unless `commit` is given, the local ref to push). */
  ref: string;
  /** Bearer token with the rights `push` and `publish`. */
  token: string;
  /** Commit to push (default: what the local `ref` points to). */
  commit?: Checksum;
  /** Approximate bytes per upload request (default 8 MiB). */
  batchBytes?: number;
  /** Upload requests in flight (default 2). */
  concurrency?: number;
  /** Follow the publish job until it ends (default true). */
  wait?: boolean;
  signal?: AbortSignal;
  onProgress?: (p: PushProgress) => void;
  /** HTTP dispatcher (tests); default: a keep-alive agent closed at the end. */
  dispatcher?: Dispatcher;
}

/** Progress of a push. */
export interface PushProgress {
  phase: 'scan' | 'query' | 'upload' | 'publish' | 'done';
  /** Objects of the commit. */
  objectsTotal: number;
  /** Objects the server lacked. */
  objectsMissing: number;
  /** Objects uploaded (acknowledged by the server). */
  objectsSent: number;
  /** Upload body bytes acknowledged. */
  bytesSent: number;
  job?: PublishJob;
}

/** Outcome of {@link pushRef}. */
export interface PushResult {
  commit: Checksum;
  objectsTotal: number;
  objectsMissing: number;
  objectsSent: number;
  bytesSent: number;
  uploadRequests: number;
  /** The publish job (finished when `wait` was true). */
  job: PublishJob;
}

/** Checksums per missing-object query. */
export const MISSING_QUERY_BATCH = 5000;
/** Objects per upload request at most. */
export const UPLOAD_MAX_OBJECTS = 5000;
/** Content objects at most this big are compressed in one call instead of a stream. */
const SMALL_COMPRESS = 256 * 1024;

interface Obj {
  type: UploadType;
  checksum: Checksum;
}

class Http {
  constructor(
    private readonly base: URL,
    private readonly token: string,
    private readonly dispatcher: Dispatcher,
    private readonly signal: AbortSignal | undefined,
  ) {}

  url(repo: string, ...segments: string[]): URL {
    return new URL(`api/v1/repos/${encodeURIComponent(repo)}/${segments.map(encodeURIComponent).join('/')}`, this.base);
  }

  async call<T>(method: 'GET' | 'POST', url: URL, body?: { json: unknown } | { stream: Readable }): Promise<{ status: number; json: T }> {
    const headers: Record<string, string> = { authorization: `Bearer ${this.token}`, accept: 'application/json' };
    let payload: string | Readable | undefined;
    if (body && 'json' in body) {
      headers['content-type'] = 'application/json';
      payload = JSON.stringify(body.json);
    } else if (body) {
      headers['content-type'] = OBJECTS_MEDIA_TYPE;
      payload = body.stream;
    }
    let res: Dispatcher.ResponseData;
    try {
      res = await request(url, { method, headers, body: payload, dispatcher: this.dispatcher, signal: this.signal, headersTimeout: 600_000, bodyTimeout: 600_000 });
    } catch (e) {
      if ((e as Error).name === 'AbortError') throw new LarchError('ABORTED', 'Push aborted', {}, { cause: e });
      throw new LarchError('IO_ERROR', `Connecting to ${url.origin}: ${(e as Error).message}`, { url: url.href }, { cause: e });
    }
    const text = await res.body.text();
    let json: unknown = null;
    try {
      json = text === '' ? null : JSON.parse(text);
    } catch {
      json = null;
    }
    if (res.statusCode >= 400) {
      const err = (json as { error?: { code?: string; message?: string; missing?: string } } | null)?.error;
      const message = err?.message ?? `HTTP ${res.statusCode} from ${url.pathname}`;
      throw new ApiError(res.statusCode as ApiStatus, err?.code ?? 'http-error', `Server refused ${method} ${url.pathname}: ${message}`, err?.missing !== undefined ? { missing: err.missing } : {});
    }
    return { status: res.statusCode, json: json as T };
  }
}

async function* objectFrames(repo: Repo, o: Obj, level: number): AsyncIterable<Buffer> {
  yield recordHeader(o.type, o.checksum);
  if (o.type !== 'file') {
    yield* chunkFrames(await repo.readMetadata(o.type, o.checksum));
  } else if (repo.mode === 'archive') {
    // The stored `.filez` is already the upload form.
    for await (const c of createReadStream(repo.objectPath('file', o.checksum), { highWaterMark: 256 * 1024 }) as AsyncIterable<Buffer>) yield* chunkFrames(c);
  } else {
    const f = await repo.openFile(o.checksum);
    yield* chunkFrames(serializeArchiveHeader({ meta: f.meta, size: (f.meta.mode & S_IFMT) === S_IFLNK ? 0 : f.size }));
    if ((f.meta.mode & S_IFMT) !== S_IFLNK) {
      if (f.size <= SMALL_COMPRESS) {
        const parts: Buffer[] = [];
        for await (const c of f.open() as AsyncIterable<Buffer>) parts.push(c);
        yield* chunkFrames(deflateRawSync(Buffer.concat(parts), { level }));
      } else {
        const deflate = createDeflateRaw({ level });
        const src = f.open();
        src.on('error', (e: Error) => deflate.destroy(e));
        src.pipe(deflate);
        for await (const c of deflate as AsyncIterable<Buffer>) yield* chunkFrames(c);
      }
    }
  }
  yield RECORD_END;
}

/** Split `objects` into upload requests of about `batchBytes` (estimated from sizes on disk). */
function planBatches(repo: Repo, objects: Obj[], batchBytes: number): Obj[][] {
  const out: Obj[][] = [];
  let cur: Obj[] = [];
  let bytes = 0;
  for (const o of objects) {
    let size = 512;
    try {
      size = lstatSync(repo.objectPath(o.type, o.checksum)).size;
    } catch {
      // Missing locally: the upload will say so.
    }
    if (cur.length > 0 && (bytes + size > batchBytes || cur.length >= UPLOAD_MAX_OBJECTS)) {
      out.push(cur);
      cur = [];
      bytes = 0;
    }
    cur.push(o);
    bytes += size + 64;
  }
  if (cur.length > 0) out.push(cur);
  return out;
}

const TYPE_ORDER: Record<UploadType, number> = { file: 0, dirmeta: 1, dirtree: 2, commit: 3 };

/**
 * Push `commit` (default: the local `ref`) to the server and request the ref update. Throws
 * ApiError with the server's status and code when a request is refused (401/403 token, 409
 * incomplete commit, 422 corrupted object), LarchError IO_ERROR on network failure, ABORTED on
 * `signal`, and IO_ERROR naming the step when the publish job fails. Takes no lock on the local
 * repository (reads only).
 */
export async function pushRef(opts: PushOptions): Promise<PushResult> {
  validateRefName(opts.ref);
  const repo = await Repo.open(opts.repoPath);
  const commit = opts.commit ?? (await repo.revParse(opts.ref));
  const base = new URL(opts.serverUrl.endsWith('/') ? opts.serverUrl : `${opts.serverUrl}/`);
  const own = opts.dispatcher === undefined;
  const dispatcher = opts.dispatcher ?? new Agent({ connections: Math.max(2, (opts.concurrency ?? 2) + 1), keepAliveTimeout: 10_000 });
  const http = new Http(base, opts.token, dispatcher, opts.signal);
  const progress: PushProgress = { phase: 'scan', objectsTotal: 0, objectsMissing: 0, objectsSent: 0, bytesSent: 0 };
  const report = (): void => opts.onProgress?.({ ...progress });
  let uploadRequests = 0;
  try {
    report();
    const all = await traverseCommit(repo, commit, { depth: 0 });
    const objects: Obj[] = [];
    for (const o of all.values()) if (isUploadType(o.type)) objects.push({ type: o.type, checksum: o.checksum });
    progress.objectsTotal = objects.length;
    progress.phase = 'query';
    report();

    const missing: Obj[] = [];
    for (let i = 0; i < objects.length; i += MISSING_QUERY_BATCH) {
      const keys = objects.slice(i, i + MISSING_QUERY_BATCH).map((o) => `${o.checksum}.${o.type}`);
      const r = await http.call<{ missing: string[] }>('POST', http.url(opts.repo, 'objects', 'missing'), { json: { objects: keys } });
      for (const k of r.json.missing) {
        const dot = k.indexOf('.');
        missing.push({ checksum: k.slice(0, dot), type: k.slice(dot + 1) as UploadType });
      }
    }
    // Content first, the commit last: the server never holds a commit whose tree is still coming.
    missing.sort((a, b) => TYPE_ORDER[a.type] - TYPE_ORDER[b.type]);
    progress.objectsMissing = missing.length;
    progress.phase = 'upload';
    report();

    const level = repo.zlibLevel;
    const batches = planBatches(repo, missing, opts.batchBytes ?? 8 * 1024 * 1024);
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < batches.length) {
        const batch = batches[next++];
        let bytes = 0;
        const body = Readable.from(
          (async function* (): AsyncIterable<Buffer> {
            yield MAGIC;
            bytes += MAGIC.length;
            for (const o of batch) {
              for await (const f of objectFrames(repo, o, level)) {
                bytes += f.length;
                yield f;
              }
            }
            yield BODY_END;
            bytes += 1;
          })(),
          { highWaterMark: 4 },
        );
        uploadRequests++;
        await http.call('POST', http.url(opts.repo, 'objects'), { stream: body });
        progress.objectsSent += batch.length;
        progress.bytesSent += bytes;
        report();
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, Math.min(opts.concurrency ?? 2, batches.length)) }, worker));

    progress.phase = 'publish';
    report();
    const r = await http.call<{ job: PublishJob }>('POST', http.url(opts.repo, 'refs', ...opts.ref.split('/')), { json: { commit } });
    let job = r.json.job;
    progress.job = job;
    report();
    if (opts.wait !== false) {
      let delay = 100;
      while (job.state === 'queued' || job.state === 'running') {
        await sleep(delay, undefined, { signal: opts.signal });
        delay = Math.min(1000, delay * 2);
        job = (await http.call<{ job: PublishJob }>('GET', http.url(opts.repo, 'jobs', String(job.id)))).json.job;
        progress.job = job;
        report();
      }
      if (job.state === 'failed') {
        throw new LarchError('IO_ERROR', `Publish job ${job.id} failed at step ${job.step}: ${job.error ?? 'unknown error'}`, { job });
      }
    }
    progress.phase = 'done';
    report();
    return { commit, objectsTotal: progress.objectsTotal, objectsMissing: progress.objectsMissing, objectsSent: progress.objectsSent, bytesSent: progress.bytesSent, uploadRequests, job };
  } finally {
    if (own) await dispatcher.close();
  }
}
