/**
 * file:// fetcher: maps a URL to a path and streams the file, answering 404 for anything that
 * is missing or not a regular file, as a static web server would. Used for `url=file:///…`
 * remotes and in tests.
 */
import { createReadStream, promises as fsp, type ReadStream } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { TransportError, type FetchOptions, type FetchResponse, type Fetcher } from './fetcher.js';

/** A {@link Fetcher} for file:// URLs. */
export class FileFetcher implements Fetcher {
  async get(url: string, opts: FetchOptions): Promise<FetchResponse> {
    if (opts.signal.aborted) throw opts.signal.reason;
    let path: string;
    try {
      path = fileURLToPath(url);
    } catch (e) {
      throw new TransportError(`Invalid file URL ${url}`, { cause: e });
    }
    let size: number;
    try {
      const st = await fsp.stat(path);
      if (!st.isFile()) return notFound();
      size = st.size;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR') return notFound();
      throw new TransportError(`Reading ${path}: ${(e as Error).message}`, { cause: e });
    }
    const start = opts.range?.start ?? 0;
    const end = opts.range?.end;
    const len = Math.max(0, (end !== undefined ? Math.min(end + 1, size) : size) - start);
    let stream: ReadStream | null = null;
    let released = false;
    const signal = opts.signal;
    // The file is opened only when the body is read, so an unread body holds no descriptor and
    // an abort can only surface through the iteration that is reading it.
    const body = (async function* (): AsyncIterable<Uint8Array> {
      if (released) throw new TransportError('Response body was already released');
      stream = createReadStream(path, { start, ...(end !== undefined ? { end } : {}), highWaterMark: 256 * 1024 });
      const onAbort = (): void => {
        stream?.destroy(new TransportError('aborted'));
      };
      signal.addEventListener('abort', onAbort, { once: true });
      try {
        for await (const chunk of stream) yield chunk as Buffer;
      } finally {
        signal.removeEventListener('abort', onAbort);
        stream.destroy();
      }
    })();
    return {
      status: opts.range ? 206 : 200,
      headers: { 'content-length': String(len) },
      body,
      dump: async () => {
        released = true;
        (stream as ReadStream | null)?.destroy();
      },
    };
  }
}

function notFound(): FetchResponse {
  return {
    status: 404,
    headers: {},
    body: (async function* () {})(),
    dump: async () => undefined,
  };
}
