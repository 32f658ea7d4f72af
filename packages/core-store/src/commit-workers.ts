/**
 * Worker threads that store small files into an archive repository during a commit.
 *
 * Why: compressing is most of the CPU cost of an archive commit. Done on the libuv threadpool,
 * every file costs several thread hand-offs and the main thread still spends its time in
 * synchronous reads and writes, so a 2-core machine ends up using little more than one core.
 * Here each worker does the whole job for a batch of files synchronously and in one place: read
 * the file (no-follow), sha256 over the content header and payload, skip it when the repository
 * (or this worker, earlier in the same commit) already has the object, otherwise raw-deflate it
 * and write header + payload to a new exclusive file in `tmp/`. The main thread only walks the
 * tree, reads metadata and hands out batches of a few hundred files per message.
 *
 * Guarantees: a worker never publishes anything. It returns the temporary file of every object
 * it staged (also in a reply that carries an error), so the caller can publish them in its
 * write batch or remove them; a failed write removes its own temporary file. A small file
 * (up to `maxSmall`) is held whole with its compressed form; a larger one is hashed in a first
 * pass and, when new, hashed again and compressed 1 MiB at a time in a second pass (the two
 * hashes must agree), so memory stays bounded whatever the file size. The worker source uses
 * node built-ins only and is evaluated from a string, so the same code runs from the compiled
 * package and from its TypeScript sources under test; it loads them with
 * process.getBuiltinModule, which works whether the evaluated code is taken as CommonJS or (with
 * --input-type=module inherited from the process) as an ES module.
 */
import { Worker } from 'node:worker_threads';
import { LarchError, ioError } from './errors.js';

/** One regular file to store (streamed in chunks when larger than `maxSmall`). */
export interface SmallFileJob {
  /** Absolute path, opened with O_NOFOLLOW. */
  path: string;
  /** Size seen by lstat. Up to `maxSmall`, the file is read to its end whatever its size now (growing past `maxSmall` fails); above, the size at open is what must be read. */
  size: number;
  /** The content header hashed before the payload (fileHeader(meta)). */
  header: Uint8Array;
  /** The stored archive header; bytes 8..16 (the payload size) are filled in by the worker. */
  archiveHeader: Uint8Array;
}

export interface SmallFileResult {
  checksum: string;
  /** Temporary file holding the new object, or null when the object already exists. */
  tmp: string | null;
  /** Bytes written to `tmp`. */
  written: number;
  /** Payload bytes read. */
  read: number;
}

interface WireError {
  index: number;
  stage: 'read' | 'check' | 'write' | 'changed' | 'size';
  message: string;
  code?: string;
  errno?: number;
  syscall?: string;
  tmp?: string;
  checksum?: string;
  count?: number;
  size?: number;
}

interface Reply {
  id: number;
  results: SmallFileResult[];
  error?: WireError;
}

export interface BatchOutcome {
  /** Results for jobs[0 .. results.length - 1]. */
  results: SmallFileResult[];
  /** Set when jobs[results.length] failed; later jobs were not attempted. */
  error?: LarchError;
}

const WORKER_SOURCE = `
'use strict';
const load = (m) => process.getBuiltinModule(m);
const { parentPort, workerData, threadId } = load('node:worker_threads');
const fs = load('node:fs');
const { createHash, randomBytes } = load('node:crypto');
const { deflateRawSync, constants: Z } = load('node:zlib');
const SYNC = Z.Z_SYNC_FLUSH;
const EMPTY = Buffer.alloc(0);
const { objectsDir, tmpDir, level, maxSmall, pid } = workerData;
const C = fs.constants;
const base = tmpDir + '/larch-obj-' + pid + '-t' + threadId + '-' + randomBytes(6).toString('hex') + '-';
const seen = new Set();
let counter = 0;
let buf = Buffer.allocUnsafe(256 * 1024);

class Stage extends Error {
  constructor(stage, cause, extra) { super(cause ? cause.message : stage); this.stage = stage; this.cause = cause; Object.assign(this, extra); }
}

function readAll(path, size) {
  let fd;
  try { fd = fs.openSync(path, C.O_RDONLY | C.O_NOFOLLOW); } catch (e) { throw new Stage('read', e); }
  try {
    if (buf.length < size + 1) buf = Buffer.allocUnsafe(size + 1);
    let off = 0;
    for (;;) {
      if (off === buf.length) {
        const now = fs.fstatSync(fd).size;
        if (now > maxSmall) throw new Stage('changed');
        const bigger = Buffer.allocUnsafe(Math.max(now + 1, buf.length * 2));
        buf.copy(bigger, 0, 0, off);
        buf = bigger;
      }
      const n = fs.readSync(fd, buf, off, buf.length - off, null);
      if (n === 0) break;
      off += n;
    }
    if (off > maxSmall) throw new Stage('changed');
    return buf.subarray(0, off);
  } catch (e) {
    throw e instanceof Stage ? e : new Stage('read', e);
  } finally {
    fs.closeSync(fd);
  }
}

function writeAll(fd, b) {
  let off = 0;
  while (off < b.length) off += fs.writeSync(fd, b, off, b.length - off);
}

const CHUNK = 1024 * 1024;
let chunk;

function readAt(fd, pos) {
  try {
    return fs.readSync(fd, chunk, 0, CHUNK, pos);
  } catch (e) {
    throw new Stage('read', e);
  }
}

function known(checksum) {
  if (seen.has(checksum)) return true;
  let exists;
  try {
    exists = fs.lstatSync(objectsDir + '/' + checksum.slice(0, 2) + '/' + checksum.slice(2) + '.filez', { throwIfNoEntry: false }) !== undefined;
  } catch (e) {
    throw new Stage('check', e, { checksum });
  }
  seen.add(checksum);
  return exists;
}

function createTmp(checksum) {
  const tmp = base + (counter++).toString(36);
  try {
    return [tmp, fs.openSync(tmp, C.O_WRONLY | C.O_CREAT | C.O_EXCL, 0o644)];
  } catch (e) {
    seen.delete(checksum);
    throw new Stage('write', e, { tmp });
  }
}

function write(fd, b, tmp) {
  try {
    writeAll(fd, b);
  } catch (e) {
    throw new Stage('write', e, { tmp });
  }
}

// A large file: a hash pass, then (only when the object is new) a store pass that hashes again
// and compresses one chunk at a time. Each chunk is a separate raw-deflate piece ended by a sync
// flush (byte-aligned, not final); a final empty block closes the stream. Memory stays at one
// chunk whatever the file size.
function storeLarge(job) {
  if (chunk === undefined) chunk = Buffer.allocUnsafe(CHUNK);
  let fd;
  try { fd = fs.openSync(job.path, C.O_RDONLY | C.O_NOFOLLOW); } catch (e) { throw new Stage('read', e); }
  try {
    let size;
    try { size = fs.fstatSync(fd).size; } catch (e) { throw new Stage('read', e); }
    const h = createHash('sha256').update(job.header);
    let pos = 0;
    for (;;) {
      const n = readAt(fd, pos);
      if (n === 0) break;
      pos += n;
      if (pos > size) throw new Stage('size', null, { count: pos, size });
      h.update(chunk.subarray(0, n));
    }
    if (pos !== size) throw new Stage('size', null, { count: pos, size });
    const checksum = h.digest('hex');
    const result = { checksum, tmp: null, written: 0, read: size };
    if (known(checksum)) return result;
    const [tmp, out] = createTmp(checksum);
    try {
      const ah = job.archiveHeader;
      new DataView(ah.buffer, ah.byteOffset, ah.byteLength).setBigUint64(8, BigInt(size), false);
      write(out, ah, tmp);
      let written = ah.length;
      const h2 = createHash('sha256').update(job.header);
      pos = 0;
      for (;;) {
        const n = readAt(fd, pos);
        if (n === 0) break;
        pos += n;
        if (pos > size) throw new Stage('changed');
        const c = chunk.subarray(0, n);
        h2.update(c);
        const z = deflateRawSync(c, { level, finishFlush: SYNC, chunkSize: n + (n >>> 10) + 64 });
        write(out, z, tmp);
        written += z.length;
      }
      if (pos !== size || h2.digest('hex') !== checksum) throw new Stage('changed');
      const fin = deflateRawSync(EMPTY, { level });
      write(out, fin, tmp);
      written += fin.length;
      try { fs.closeSync(out); } catch (e) { throw new Stage('write', e, { tmp }); }
      result.tmp = tmp;
      result.written = written;
      return result;
    } catch (e) {
      try { fs.closeSync(out); } catch {}
      try { fs.unlinkSync(tmp); } catch {}
      seen.delete(checksum);
      throw e;
    }
  } finally {
    fs.closeSync(fd);
  }
}

function store(job) {
  if (job.size > maxSmall) return storeLarge(job);
  const data = readAll(job.path, job.size);
  const checksum = createHash('sha256').update(job.header).update(data).digest('hex');
  const result = { checksum, tmp: null, written: 0, read: data.length };
  if (known(checksum)) return result;
  const z = deflateRawSync(data, { level, chunkSize: Math.max(16384, data.length + (data.length >>> 10) + 64) });
  const ah = job.archiveHeader;
  new DataView(ah.buffer, ah.byteOffset, ah.byteLength).setBigUint64(8, BigInt(data.length), false);
  const [tmp, fd] = createTmp(checksum);
  try {
    write(fd, ah, tmp);
    write(fd, z, tmp);
    try { fs.closeSync(fd); } catch (e) { throw new Stage('write', e, { tmp }); }
  } catch (e) {
    try { fs.closeSync(fd); } catch {}
    try { fs.unlinkSync(tmp); } catch {}
    seen.delete(checksum);
    throw e;
  }
  result.tmp = tmp;
  result.written = ah.length + z.length;
  return result;
}

parentPort.on('message', (msg) => {
  const results = [];
  let error;
  for (let i = 0; i < msg.jobs.length; i++) {
    try {
      results.push(store(msg.jobs[i]));
    } catch (e) {
      const s = e instanceof Stage ? e : new Stage('read', e);
      const c = s.cause || {};
      error = { index: i, stage: s.stage, message: String(c.message ?? s.message), code: c.code, errno: c.errno, syscall: c.syscall, tmp: s.tmp, checksum: s.checksum, count: s.count, size: s.size };
      break;
    }
  }
  parentPort.postMessage({ id: msg.id, results, error });
});
`;

interface Pending {
  resolve: (r: BatchOutcome) => void;
  reject: (e: unknown) => void;
  jobs: SmallFileJob[];
  bytes: number;
}

interface Slot {
  worker: Worker;
  pending: Map<number, Pending>;
  /** Payload bytes of the batches queued on this worker. */
  bytes: number;
}

/**
 * A fixed pool of store workers for one commit into an archive repository; no lock is taken here
 * (the commit holds the repository's shared lock). `run` never rejects
 * for a file's error (that comes back in the outcome, with the results before it); it rejects
 * only when a worker thread itself dies. Call {@link close} when done.
 */
export class ArchiveStoreWorkers {
  private readonly slots: Slot[] = [];
  private nextId = 0;
  private dead: unknown = null;

  constructor(count: number, init: { objectsDir: string; tmpDir: string; level: number; maxSmall: number }) {
    for (let i = 0; i < count; i++) {
      const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { ...init, pid: process.pid } });
      const slot: Slot = { worker, pending: new Map(), bytes: 0 };
      worker.on('message', (r: Reply) => {
        const p = slot.pending.get(r.id);
        if (p === undefined) return;
        slot.pending.delete(r.id);
        slot.bytes -= p.bytes;
        p.resolve({ results: r.results, error: r.error !== undefined ? toLarchError(r.error, p.jobs[r.error.index]) : undefined });
      });
      const fail = (e: unknown): void => {
        if (this.dead === null) this.dead = e;
        for (const p of slot.pending.values()) p.reject(e);
        slot.pending.clear();
        slot.bytes = 0;
      };
      worker.on('error', fail);
      worker.on('exit', (code) => fail(new LarchError('IO_ERROR', `Commit worker exited with code ${code}`, { code })));
      this.slots.push(slot);
    }
  }

  /** Batches handed out and not yet answered. */
  get inFlight(): number {
    let n = 0;
    for (const s of this.slots) n += s.pending.size;
    return n;
  }

  /** Store `jobs` (`bytes` of payload) on the worker with the least payload queued. */
  run(jobs: SmallFileJob[], bytes: number): Promise<BatchOutcome> {
    if (this.dead !== null) return Promise.reject(this.dead);
    let slot = this.slots[0];
    for (const s of this.slots) if (s.bytes < slot.bytes) slot = s;
    const id = this.nextId++;
    slot.bytes += bytes;
    return new Promise<BatchOutcome>((resolve, reject) => {
      slot.pending.set(id, { resolve, reject, jobs, bytes });
      slot.worker.postMessage({ id, jobs });
    });
  }

  /** Stop every worker (after their batches have been answered). */
  async close(): Promise<void> {
    await Promise.all(
      this.slots.map((s) => {
        s.worker.removeAllListeners('exit');
        return s.worker.terminate();
      }),
    );
  }
}

function toLarchError(w: WireError, job: SmallFileJob | undefined): LarchError {
  const path = job?.path ?? '';
  if (w.stage === 'changed') return new LarchError('IO_ERROR', `File changed while committing: ${path}`, { path });
  if (w.stage === 'size') {
    const size = w.size ?? 0;
    const count = w.count ?? 0;
    return count > size
      ? new LarchError('OBJECT_CORRUPTED', `Reading ${path}: more data than the declared size ${size}`, { size })
      : new LarchError('OBJECT_CORRUPTED', `Reading ${path}: got ${count} bytes, declared size ${size}`, { size, actual: count });
  }
  const cause = Object.assign(new Error(w.message), { code: w.code, errno: w.errno, syscall: w.syscall });
  if (w.stage === 'check') return ioError(cause, 'Checking object', `${w.checksum}.file`);
  if (w.stage === 'write') return ioError(cause, 'Writing temporary file', w.tmp);
  return ioError(cause, 'Reading', path);
}
