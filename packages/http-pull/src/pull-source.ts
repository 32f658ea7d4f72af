/**
 * Where a pull reads objects from. `HttpSource` reads a remote's files through a Fetcher with
 * retries and timeouts (pull-transfer.ts); `LocalRepoSource` reads another repository on disk
 * through core-store (pull-local). The walker in pull-engine.ts only sees this interface, so
 * both get the same verification and the same resume behaviour.
 */
import { Readable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { LarchError, parseCommit, parseDirMeta, parseDirTree, type Repo, type RepoMode } from '@larch/core-store';
import { fetchError } from './errors.js';
import { joinUrl } from './fetcher.js';
import type { LinkImporter } from './pull-local-link.js';
import { transfer, type TransferContext } from './pull-transfer.js';

/** Metadata object types a source serves. */
export type SourceMetadataType = 'commit' | 'dirtree' | 'dirmeta' | 'commitmeta';

/** A content object as a source hands it over. */
export type ContentInput =
  | { kind: 'filez'; body: AsyncIterable<Uint8Array>; sizeHint: number | null; trusted?: boolean }
  | { kind: 'plain'; meta: import('@larch/core-store').FileMeta; size: number; stream: NodeJS.ReadableStream; trusted?: boolean };
// `trusted`: from a trusted local source (pull-local): stored under its name without checking it
// (pull-local-trusted.ts); a `filez` is so taken only by an archive destination.

/** A place objects are read from (a remote over a Fetcher, or a local repository). */
export interface ObjectSource {
  /**
   * Read a metadata object and run `check` on its bytes (verification errors then name the
   * object and where it came from); null when `optional` and absent.
   */
  metadata<T>(type: SourceMetadataType, checksum: string, maxBytes: number, optional: boolean, check: (bytes: Uint8Array) => T): Promise<{ bytes: Uint8Array; value: T } | null>;
  /** Hand a content object to `stage` (re-run on retry); returns the bytes written. */
  content(checksum: string, stage: (input: ContentInput) => Promise<number>): Promise<number>;
}

/** Collect a body into one buffer (bounded by the transfer's maxBytes). */
export async function collect(body: AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let n = 0;
  for await (const c of body) {
    parts.push(c);
    n += c.length;
  }
  const b = Buffer.concat(parts, n);
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

/** `objects/XX/REST.EXT`, relative to a repo root. */
export function objectRelPath(checksum: string, ext: string): string {
  return `objects/${checksum.slice(0, 2)}/${checksum.slice(2)}.${ext}`;
}

/** Objects of an OSTree archive repo served over HTTP(S) or file:// (`url` and `contenturl`). */
export class HttpSource implements ObjectSource {
  constructor(
    private readonly ctx: TransferContext,
    readonly url: string,
    readonly contentUrl: string,
  ) {}

  /** GET a repo-relative file (summary, config, refs/...) fully into memory. */
  file(rel: string, maxBytes: number, optional: boolean): Promise<Uint8Array | null> {
    return transfer(this.ctx, { url: joinUrl(this.url, rel), object: rel, maxBytes, optional, high: true }, collect);
  }

  /**
   * As OSTree's `start_fetch`: every object comes from `contenturl`, metadata included, except a
   * commit's detached metadata (its signatures), which comes from `url` with the summary, so a
   * content mirror never supplies what a commit is verified with.
   */
  metadata<T>(type: SourceMetadataType, checksum: string, maxBytes: number, optional: boolean, check: (bytes: Uint8Array) => T): Promise<{ bytes: Uint8Array; value: T } | null> {
    const rel = objectRelPath(checksum, type);
    const base = type === 'commitmeta' ? this.url : this.contentUrl;
    return transfer(this.ctx, { url: joinUrl(base, rel), object: `${checksum}.${type}`, maxBytes, optional, high: true }, async (body) => {
      const bytes = await collect(body);
      return { bytes, value: check(bytes) };
    });
  }

  async content(checksum: string, stage: (input: ContentInput) => Promise<number>): Promise<number> {
    const rel = objectRelPath(checksum, 'filez');
    const r = await transfer(
      this.ctx,
      { url: joinUrl(this.contentUrl, rel), object: `${checksum}.filez`, maxBytes: this.ctx.limits.maxContentSize, optional: false, high: false, resumable: true },
      (body, contentLength) => stage({ kind: 'filez', body, sizeHint: contentLength }),
    );
    return r ?? 0;
  }
}

/** How {@link LocalRepoSource} may take objects. */
export interface LocalSourceOptions {
  /** Bytes read are reported here (there is no transfer layer to count them). */
  onBytes?: (n: number) => void;
  /**
   * Hardlink objects into the destination when it is on the source's filesystem: metadata in
   * any mode, content between archive repositories (checked first, see pull-local-link.ts);
   * others are copied as before.
   */
  linkInto?: LinkImporter;
  /**
   * A trusted source (pull-local.ts says which are): as ostree's pull-local without
   * `--untrusted`, a metadata object whose bytes do not match its name is taken as it is (still
   * parsed), and content is linked or copied without being checked against its name.
   */
  trust?: boolean;
  /** The destination's mode: trusted content of an archive source goes to an archive one as its `.filez`. */
  destMode?: RepoMode;
}

/** Objects of a repository on the local disk, in any mode. */
export class LocalRepoSource implements ObjectSource {
  private readonly onBytes: (n: number) => void;
  private readonly link: LinkImporter | null;
  private readonly trust: boolean;
  private readonly destMode: RepoMode | null;

  constructor(
    private readonly src: Repo,
    opts: LocalSourceOptions = {},
  ) {
    this.onBytes = opts.onBytes ?? (() => undefined);
    this.link = opts.linkInto ?? null;
    this.trust = Boolean(opts.trust);
    this.destMode = opts.destMode ?? null;
  }

  async metadata<T>(type: SourceMetadataType, checksum: string, maxBytes: number, optional: boolean, check: (bytes: Uint8Array) => T): Promise<{ bytes: Uint8Array; value: T } | null> {
    const object = `${checksum}.${type}`;
    const where = pathToFileURL(this.src.objectReadPath(type, checksum)).toString();
    let bytes: Uint8Array;
    // A metadata object hardlinked into tmp/ is checked from the link, then the link is published.
    let linked: { tmp: string; bytes: Uint8Array } | null = null;
    try {
      if (this.link !== null && type !== 'commitmeta') linked = await this.link.linkMetadata(type, checksum, maxBytes);
      bytes = linked !== null ? linked.bytes : await this.src.readMetadata(type, checksum);
    } catch (e) {
      if (e instanceof LarchError && e.code === 'OBJECT_MISSING') {
        if (optional) return null;
        throw fetchError('OBJECT_MISSING', 'not-found', object, where, 'No such file', {}, e);
      }
      throw fetchError(e instanceof LarchError ? e.code : 'IO_ERROR', 'corrupted', object, where, (e as Error).message, {}, e);
    }
    this.onBytes(bytes.length);
    if (bytes.length > maxBytes) {
      throw fetchError('LIMIT_EXCEEDED', 'too-large', object, where, `${bytes.length} bytes exceed the limit of ${maxBytes}`, { limit: maxBytes, observed: bytes.length });
    }
    let value: T;
    try {
      value = check(bytes);
    } catch (e) {
      if (this.trust && type !== 'commitmeta' && e instanceof LarchError && typeof e.data.actual === 'string') {
        // Only the name is wrong: a trusted source's object is taken as it is.
        value = parseTrusted(type, checksum, bytes) as T;
      } else {
        if (linked !== null) this.link!.discard(linked.tmp);
        throw fetchError(e instanceof LarchError ? e.code : 'OBJECT_CORRUPTED', 'corrupted', object, where, (e as Error).message, e instanceof LarchError ? { ...e.data } : {}, e);
      }
    }
    if (linked !== null) {
      // Checked: published now, so the pull's own copy of it finds it present and writes nothing.
      try {
        await this.link!.publishMetadata(linked.tmp, type as 'commit' | 'dirtree' | 'dirmeta', checksum);
      } catch (e) {
        this.link!.discard(linked.tmp);
        throw e;
      }
    }
    return { bytes, value };
  }

  async content(checksum: string, stage: (input: ContentInput) => Promise<number>): Promise<number> {
    if (this.link !== null) {
      // Hardlinked: nothing is written, so `stage` is not called (ostree counts 0 bytes written).
      try {
        const r = await this.link.import(checksum);
        if (r.linked) {
          this.onBytes(r.bytes);
          return r.bytes;
        }
      } catch (e) {
        throw this.contentError(checksum, this.src.objectReadPath('file', checksum), e);
      }
    }
    if (this.src.mode === 'archive' && (!this.trust || this.destMode === 'archive')) {
      // Hand over the stored .filez as is (the source's, or an archive parent's); it is verified
      // exactly like a download (trusted: copied as it is). One held only by a parent of another
      // mode is read below.
      const { createReadStream } = await import('node:fs');
      const p = this.src.objectReadPath('file', checksum);
      const { stat } = await import('node:fs/promises');
      let sizeHint: number | null = null;
      try {
        sizeHint = (await stat(p)).size;
      } catch (e) {
        if (this.src.parent === null || (e as NodeJS.ErrnoException).code !== 'ENOENT') throw this.contentError(checksum, p, e);
      }
      if (sizeHint !== null) {
        const stream = createReadStream(p, { highWaterMark: 256 * 1024 });
        try {
          const n = await stage({ kind: 'filez', body: stream, sizeHint, ...(this.trust ? { trusted: true } : {}) });
          this.onBytes(sizeHint);
          return n;
        } catch (e) {
          throw this.contentError(checksum, p, e);
        } finally {
          stream.destroy();
        }
      }
    }
    // Read through the source's parent chain, in whatever mode holds it.
    const p = this.src.objectReadPath('file', checksum);
    let stream: NodeJS.ReadableStream | undefined;
    try {
      const opened = await this.src.openFile(checksum);
      stream = opened.open();
      const n = await stage({ kind: 'plain', meta: opened.meta, size: opened.size, stream, ...(this.trust ? { trusted: true } : {}) });
      this.onBytes(opened.size);
      return n;
    } catch (e) {
      throw this.contentError(checksum, p, e);
    } finally {
      (stream as Readable | undefined)?.destroy?.();
    }
  }

  private contentError(checksum: string, path: string, e: unknown): LarchError {
    const where = pathToFileURL(path).toString();
    const object = `${checksum}.file`;
    if ((e as NodeJS.ErrnoException).code === 'ENOENT' || (e instanceof LarchError && e.code === 'OBJECT_MISSING')) {
      return fetchError('OBJECT_MISSING', 'not-found', object, where, 'No such file', {}, e);
    }
    if (e instanceof LarchError) return fetchError(e.code, 'corrupted', object, where, e.message, { ...e.data }, e);
    return fetchError('IO_ERROR', 'corrupted', object, where, (e as Error).message ?? String(e), {}, e);
  }
}

/** Parse a metadata object whose checksum does not match its name (a trusted local source). */
function parseTrusted(type: Exclude<SourceMetadataType, 'commitmeta'>, checksum: string, bytes: Uint8Array): unknown {
  try {
    if (type === 'commit') return parseCommit(bytes);
    if (type === 'dirtree') return parseDirTree(bytes);
    return parseDirMeta(bytes);
  } catch (e) {
    throw new LarchError('OBJECT_CORRUPTED', `Corrupted ${type} object ${checksum}: ${(e as Error).message}`, { type, checksum }, { cause: e });
  }
}

