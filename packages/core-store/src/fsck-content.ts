/**
 * fsck's verification of content objects: the content checksum recomputed from the object as
 * its repository's mode stores it (archive header and deflated payload, `user.ostreemeta`, or
 * stat and xattrs), small objects synchronously into one reused buffer, larger ones as streams,
 * spread over worker threads (`HashPool`) once enough objects are queued.
 */
import { createHash } from 'node:crypto';
import { closeSync, createReadStream, fstatSync, lstatSync, openSync, readSync, readlinkSync, constants as C } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { createInflateRaw, inflateRawSync } from 'node:zlib';
import { availableParallelism } from 'node:os';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import * as native from '@larch/native';
import { LarchError } from './errors.js';
import { archiveHeaderLength, contentHasher, parseArchiveHeaderVariant, parseUserMeta, sortXattrs, validateFileMode, type ArchiveHeader } from './objects/index.js';
import type { Repo } from './repo.js';
import { S_IFLNK, S_IFMT, S_IFREG, type Checksum, type FileMeta, type RepoMode, type Xattr } from './types.js';
import type { FsckErrorCode } from './repo-fsck.js';

/** Objects up to this size are read whole (into a reused buffer) and verified synchronously. */
const SMALL_OBJECT = 1024 * 1024;
/** Read size for streaming larger objects. */
const STREAM_CHUNK = 1024 * 1024;

/**
 * One scratch buffer per thread for small objects. Safe because the small-object paths never
 * await between filling it and their last use of it.
 */
let scratch = Buffer.allocUnsafe(64 * 1024);
function scratchOf(n: number): Buffer {
  if (scratch.length < n) scratch = Buffer.allocUnsafe(Math.max(n, scratch.length * 2));
  return scratch.subarray(0, n);
}

/** Objects handed to a worker at once. */
export const BATCH = 64;

type CheckResult = { code: FsckErrorCode; message: string } | null;

/** Verify one content object; null when its content checksum matches its name. */
async function checkContent(mode: RepoMode, checksum: Checksum, p: string): Promise<CheckResult> {
  try {
    const actual = await contentChecksum(mode, p);
    if (actual === checksum) return null;
    return { code: 'OBJECT_CORRUPTED', message: `Corrupted file object; checksum expected='${checksum}' actual='${actual}'` };
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { code: 'OBJECT_MISSING', message: `Object missing: ${checksum}.file` };
    if (e instanceof LarchError) return { code: 'OBJECT_CORRUPTED', message: `Corrupted file object: ${e.message}` };
    if (typeof code === 'string' && code.startsWith('Z_')) {
      return { code: 'OBJECT_CORRUPTED', message: `Corrupted file object: compressed payload is damaged or truncated (${(e as Error).message})` };
    }
    return { code: 'IO_ERROR', message: `Reading ${checksum}.file: ${(e as Error).message}` };
  }
}

async function checkBatch(mode: RepoMode, items: Array<[string, string]>): Promise<CheckResult[]> {
  const out: CheckResult[] = [];
  for (const [c, p] of items) out.push(await checkContent(mode, c, p));
  return out;
}

/**
 * Content verification spread over worker threads (reading, inflating and hashing are all CPU
 * work on the calling thread otherwise). Workers run this same module; they start lazily once
 * enough objects are queued to pay for their start-up, and any worker failure falls back to
 * verifying in the calling thread, so a missing worker never loses a result.
 */
export class HashPool {
  private workers: Array<{ w: Worker; busy: number }> | null = null;
  private failed = false;
  private closing = false;
  private seq = 0;
  private pending = new Map<number, { resolve: (r: CheckResult[]) => void; items: Array<[string, string]> }>();
  private submitted = 0;
  private readonly size: number;
  private readonly threshold: number;

  constructor(private readonly mode: RepoMode, workers: number | undefined) {
    this.size = workers ?? Math.min(2, availableParallelism());
    // An explicit worker count starts the workers right away.
    this.threshold = workers === undefined ? WORKER_THRESHOLD : 0;
  }

  async check(items: Array<[string, string]>): Promise<CheckResult[]> {
    this.submitted += items.length;
    if (this.size <= 0 || this.failed || (this.workers === null && this.submitted < this.threshold)) return checkBatch(this.mode, items);
    if (this.workers === null) this.start();
    if (this.failed || this.workers === null) return checkBatch(this.mode, items);
    const slot = this.workers.reduce((a, b) => (b.busy < a.busy ? b : a));
    slot.busy++;
    const id = ++this.seq;
    return new Promise<CheckResult[]>((resolve) => {
      this.pending.set(id, {
        items,
        resolve: (r) => {
          slot.busy--;
          resolve(r);
        },
      });
      slot.w.postMessage({ id, items });
    });
  }

  private start(): void {
    const url = new URL(import.meta.url);
    const workerData = { larchFsckWorker: true, mode: this.mode };
    // Under a TypeScript test runner this module is a .ts file: load it through tsx's loader.
    const viaTsx = url.pathname.endsWith('.ts');
    const tsxBoot = `import('tsx/esm/api').then((m) => m.register()).then(() => import(${JSON.stringify(url.href)}))`;
    try {
      this.workers = Array.from({ length: this.size }, () => {
        const w = viaTsx ? new Worker(tsxBoot, { eval: true, workerData }) : new Worker(url, { workerData });
        w.on('message', (m: { id: number; results: CheckResult[] }) => {
          const p = this.pending.get(m.id);
          if (!p) return;
          this.pending.delete(m.id);
          p.resolve(m.results);
        });
        w.on('error', () => this.fail());
        w.on('exit', (code) => {
          if (code !== 0) this.fail();
        });
        return { w, busy: 0 };
      });
    } catch {
      this.fail();
    }
  }

  /** A worker died: verify everything it still owed in this thread, and stop using workers. */
  private fail(): void {
    if (this.failed || this.closing) return;
    this.failed = true;
    const owed = [...this.pending.values()];
    this.pending.clear();
    for (const p of owed) void checkBatch(this.mode, p.items).then(p.resolve);
    for (const { w } of this.workers ?? []) void w.terminate();
    this.workers = null;
  }

  async close(): Promise<void> {
    this.closing = true;
    const ws = this.workers ?? [];
    this.workers = null;
    await Promise.all(ws.map(({ w }) => w.terminate()));
  }
}

/** Queued content objects before worker threads are worth starting. */
const WORKER_THRESHOLD = 1024;

if (!isMainThread && (workerData as { larchFsckWorker?: boolean } | null)?.larchFsckWorker === true && parentPort) {
  const port = parentPort;
  const mode = (workerData as { mode: RepoMode }).mode;
  port.on('message', (m: { id: number; items: Array<[string, string]> }) => {
    void checkBatch(mode, m.items).then((results) => port.postMessage({ id: m.id, results }));
  });
}

function corrupt(detail: string): LarchError {
  return new LarchError('OBJECT_CORRUPTED', detail, {});
}

/**
 * Recompute the content checksum of the object at `p`, stored as `mode` lays it out.
 * Throws ENOENT for a missing object, LarchError OBJECT_CORRUPTED for damaged framing or modes.
 */
async function contentChecksum(mode: Repo['mode'], p: string): Promise<string> {
  if (mode === 'archive') return archiveChecksum(p);
  if (mode === 'bare-user') return bareUserChecksum(p);
  return bareChecksum(p, mode === 'bare-user-only');
}

async function archiveChecksum(p: string): Promise<string> {
  const fd = openSync(p, C.O_RDONLY | C.O_NOFOLLOW);
  let closed = false;
  try {
    const size = fstatSync(fd).size;
    if (size <= SMALL_OBJECT) {
      const buf = scratchOf(size);
      readFully(fd, buf, 0);
      closeSync(fd);
      closed = true;
      const hlen = archiveHeaderLength(buf.subarray(0, 8), size);
      const h = parseArchiveHeaderVariant(buf.subarray(8, 8 + hlen));
      const hasher = contentHasher(h.meta);
      if ((h.meta.mode & S_IFMT) === S_IFREG) {
        const z = buf.subarray(8 + hlen);
        const payload = inflateRawSync(z);
        checkSize(h, payload.length);
        hasher.update(payload);
      }
      return hasher.digest('hex');
    }
    const prefix = Buffer.allocUnsafe(8);
    readFully(fd, prefix, 0);
    const hlen = archiveHeaderLength(prefix, size);
    const hv = Buffer.allocUnsafe(hlen);
    readFully(fd, hv, 8);
    const h = parseArchiveHeaderVariant(hv);
    const hasher = contentHasher(h.meta);
    if ((h.meta.mode & S_IFMT) === S_IFREG) {
      let n = 0;
      const rs = createReadStream('', { fd, start: 8 + hlen, autoClose: false, highWaterMark: STREAM_CHUNK });
      await pipeline(rs, createInflateRaw({ chunkSize: STREAM_CHUNK / 4 }), async (source: AsyncIterable<Buffer>) => {
        for await (const chunk of source) {
          n += chunk.length;
          hasher.update(chunk);
        }
      });
      checkSize(h, n);
    }
    return hasher.digest('hex');
  } finally {
    if (!closed) closeSync(fd);
  }
}

function checkSize(h: ArchiveHeader, n: number): void {
  if (n !== h.size) throw corrupt(`truncated or oversized payload: header says ${h.size} bytes, inflated ${n}`);
}

function readFully(fd: number, buf: Buffer, position: number): void {
  let off = 0;
  while (off < buf.length) {
    const r = readSync(fd, buf, off, buf.length - off, position + off);
    if (r === 0) throw corrupt(`truncated: expected ${buf.length} bytes at offset ${position}, got ${off}`);
    off += r;
  }
}

async function hashPayload(fd: number, size: number, hasher: ReturnType<typeof createHash>): Promise<void> {
  if (size <= SMALL_OBJECT) {
    const buf = scratchOf(size);
    readFully(fd, buf, 0);
    hasher.update(buf);
    return;
  }
  let n = 0;
  const rs = createReadStream('', { fd, start: 0, autoClose: false, highWaterMark: STREAM_CHUNK });
  for await (const chunk of rs as AsyncIterable<Buffer>) {
    n += chunk.length;
    hasher.update(chunk);
  }
  if (n !== size) throw corrupt(`file changed size while reading (${size} -> ${n})`);
}

async function bareUserChecksum(p: string): Promise<string> {
  const raw = native.lgetxattr(p, 'user.ostreemeta');
  if (raw === null) throw corrupt('missing user.ostreemeta xattr');
  const m = parseUserMeta(raw);
  const fd = openSync(p, C.O_RDONLY | C.O_NOFOLLOW);
  try {
    const size = fstatSync(fd).size;
    if ((m.mode & S_IFMT) === S_IFLNK) {
      if (size === 0 || size > 4097) throw corrupt(`invalid symlink object size ${size}`);
      const buf = Buffer.allocUnsafe(size);
      readFully(fd, buf, 0);
      if (buf[size - 1] !== 0) throw corrupt('symlink object content lacks its trailing NUL');
      const meta: FileMeta = { ...m, symlinkTarget: buf.subarray(0, size - 1).toString('utf8') };
      return contentHasher(meta).digest('hex');
    }
    const hasher = contentHasher({ ...m, symlinkTarget: '' });
    await hashPayload(fd, size, hasher);
    return hasher.digest('hex');
  } finally {
    closeSync(fd);
  }
}

function readXattrs(p: string): Xattr[] {
  const names = native.llistxattr(p);
  if (names.length === 0) return [];
  const out: Xattr[] = [];
  for (const name of names) {
    const v = native.lgetxattr(p, name);
    if (v !== null) out.push({ name, value: new Uint8Array(v) });
  }
  return sortXattrs(out);
}

async function bareChecksum(p: string, userOnly: boolean): Promise<string> {
  const st = lstatSync(p);
  const mode = st.mode;
  validateFileMode(mode, 'file object');
  const base = { uid: userOnly ? 0 : st.uid, gid: userOnly ? 0 : st.gid, mode };
  if (st.isSymbolicLink()) {
    const target = readlinkSync(p);
    return contentHasher({ ...base, symlinkTarget: target, xattrs: userOnly ? [] : readXattrs(p) }).digest('hex');
  }
  const hasher = contentHasher({ ...base, symlinkTarget: '', xattrs: userOnly ? [] : readXattrs(p) });
  const fd = openSync(p, C.O_RDONLY | C.O_NOFOLLOW);
  try {
    await hashPayload(fd, st.size, hasher);
  } finally {
    closeSync(fd);
  }
  return hasher.digest('hex');
}
