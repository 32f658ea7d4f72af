/**
 * Worker threads that verify received content objects (`.filez` bytes, as a pull downloads
 * them) and stage them into a repository's `tmp/`.
 *
 * Why: a pull of an OS tree is mostly small content objects. For each one the receiving thread
 * used to inflate, hash and then create, write, chmod and close a file itself; on a busy machine
 * the file creation alone blocks for hundreds of microseconds, and all of it serialised behind
 * the network work on one thread. Here the receiving thread only parses the small header (it
 * needs the metadata anyway) and hands the bytes over; a worker inflates them with a bound on
 * the output, hashes the content header and payload, compares with the expected checksum and
 * only then writes the file. Several workers run at once, so file-system latency overlaps
 * with the network and with each other.
 *
 * Guarantees: nothing is written before the checksum is proven; a worker never publishes (the
 * caller adds the returned temporary file to its write batch, after setting extended
 * attributes, which needs the native binding and stays on the calling thread); a failed write
 * removes its own temporary file. The worker source uses node built-ins only and is evaluated
 * from a string (as in commit-workers.ts), so it runs from the compiled package and from the
 * TypeScript sources under test alike. No lock is taken here: the caller's transaction holds
 * the repository lock.
 */
import { availableParallelism } from 'node:os';
import { rmSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { lsetxattr } from '@larch/native';
import { LarchError, fileChecksumMismatch, ioError } from './errors.js';
import { MAX_ARCHIVE_HEADER_SIZE, parseArchiveHeaderVariant } from './objects/archive-header.js';
import { fileHeader } from './objects/file-header.js';
import { bareUserStoredMode, serializeUserMeta, USER_META_XATTR } from './objects/user-meta.js';
import type { Repo } from './repo.js';
import type { WriteBatch } from './repo.js';
import { S_IFLNK, S_IFMT, type Checksum, type RepoMode } from './types.js';
import { validateChecksum } from './validate.js';

/** Received objects whose declared content size is above this are left to the streaming path. */
export const RECEIVE_MAX_INFLATED = 4 * 1024 * 1024;

interface Job {
  id: number;
  checksum: string;
  bytes: Uint8Array;
  /** Offset of the deflated payload (8 + header length). */
  payloadAt: number;
  size: number;
  hashHeader: Uint8Array;
  mode: RepoMode;
  /** Permission bits to set (bare modes). */
  perm: number;
  uid: number;
  gid: number;
}

interface Reply {
  id: number;
  tmp?: string;
  written?: number;
  error?: { kind: 'inflate' | 'short' | 'long' | 'mismatch' | 'write'; message: string; actual?: string; got?: number; code?: string; errno?: number; syscall?: string; tmp?: string };
}

const WORKER_SOURCE = `
'use strict';
const load = (m) => process.getBuiltinModule(m);
const { parentPort, workerData, threadId } = load('node:worker_threads');
const fs = load('node:fs');
const { createHash, randomBytes } = load('node:crypto');
const { inflateRawSync } = load('node:zlib');
const { tmpDir, pid } = workerData;
const C = fs.constants;
const base = tmpDir + '/larch-recv-' + pid + '-t' + threadId + '-' + randomBytes(6).toString('hex') + '-';
let counter = 0;
const EMPTY = Buffer.alloc(0);

function writeAll(fd, b) {
  let off = 0;
  while (off < b.length) off += fs.writeSync(fd, b, off, b.length - off, null);
  return off;
}

function handle(j) {
  const bytes = Buffer.from(j.bytes.buffer, j.bytes.byteOffset, j.bytes.byteLength);
  let payload = EMPTY;
  if (j.size > 0 || j.bytes.byteLength > j.payloadAt) {
    try {
      payload = inflateRawSync(bytes.subarray(j.payloadAt), { maxOutputLength: Math.max(1, j.size) });
    } catch (e) {
      if (e && e.code === 'ERR_BUFFER_TOO_LARGE') return { id: j.id, error: { kind: 'long', message: e.message } };
      return { id: j.id, error: { kind: 'inflate', message: e && e.message ? e.message : String(e) } };
    }
  }
  if (payload.length !== j.size) return { id: j.id, error: { kind: payload.length > j.size ? 'long' : 'short', message: '', got: payload.length } };
  const actual = createHash('sha256').update(j.hashHeader).update(payload).digest('hex');
  if (actual !== j.checksum) return { id: j.id, error: { kind: 'mismatch', message: '', actual } };
  const tmp = base + (counter++);
  let fd;
  try {
    fd = fs.openSync(tmp, C.O_WRONLY | C.O_CREAT | C.O_EXCL, j.mode === 'archive' ? 0o644 : 0o600);
  } catch (e) {
    return { id: j.id, error: { kind: 'write', message: e.message, code: e.code, errno: e.errno, syscall: e.syscall, tmp } };
  }
  try {
    let written;
    if (j.mode === 'archive') {
      written = writeAll(fd, bytes);
    } else {
      written = writeAll(fd, payload);
      if (j.mode === 'bare') fs.fchownSync(fd, j.uid, j.gid);
      fs.fchmodSync(fd, j.perm);
      fs.futimesSync(fd, 0, 0);
    }
    fs.closeSync(fd);
    fd = undefined;
    return { id: j.id, tmp, written };
  } catch (e) {
    if (fd !== undefined) { try { fs.closeSync(fd); } catch {} }
    try { fs.unlinkSync(tmp); } catch {}
    return { id: j.id, error: { kind: 'write', message: e.message, code: e.code, errno: e.errno, syscall: e.syscall, tmp } };
  }
}

parentPort.on('message', (jobs) => {
  const out = [];
  for (const j of jobs) out.push(handle(j));
  parentPort.postMessage(out);
});
`;

interface Pending {
  resolve: (r: Reply) => void;
  reject: (e: unknown) => void;
}

interface Slot {
  worker: Worker;
  queued: Job[];
  inFlight: number;
  scheduled: boolean;
}

function corrupt(checksum: string, detail: string, data: Record<string, unknown> = {}): LarchError {
  return new LarchError('OBJECT_CORRUPTED', `Corrupted file object ${checksum}: ${detail}`, { type: 'file', checksum, ...data });
}

/**
 * A pool of receive workers for one repository. {@link stage} verifies and stages one received
 * `.filez`; call {@link close} when the transaction is done (pending work is answered first).
 */
export class ReceiveWorkers {
  private readonly slots: Slot[] = [];
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;
  private dead: unknown = null;
  private closed = false;

  /** `threads` defaults to the machine's parallelism, at least 2 and at most 4. */
  constructor(
    private readonly repo: Repo,
    threads: number = Math.min(4, Math.max(2, availableParallelism())),
  ) {
    for (let i = 0; i < threads; i++) {
      const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { tmpDir: repo.tmpPath, pid: process.pid } });
      const slot: Slot = { worker, queued: [], inFlight: 0, scheduled: false };
      worker.on('message', (replies: Reply[]) => {
        slot.inFlight -= replies.length;
        if (slot.inFlight === 0) this.send(slot);
        // Idle workers must not keep the process alive; busy ones must.
        if (slot.inFlight === 0 && slot.queued.length === 0) worker.unref();
        for (const r of replies) {
          const p = this.pending.get(r.id);
          if (p === undefined) continue;
          this.pending.delete(r.id);
          p.resolve(r);
        }
      });
      const fail = (e: unknown): void => {
        if (this.dead === null) this.dead = e;
        for (const p of this.pending.values()) p.reject(e);
        this.pending.clear();
      };
      worker.on('error', fail);
      worker.on('exit', (code) => {
        if (!this.closed) fail(new LarchError('IO_ERROR', `Receive worker exited with code ${code}`, { code }));
      });
      worker.unref();
      this.slots.push(slot);
    }
  }

  /**
   * Verify `bytes` (a whole `.filez`: BE32 header length, 4 reserved bytes, header, deflated
   * payload) against `checksum` and stage it in this repository's mode, adding the temporary
   * file to `batch`. Returns the bytes written, or null when the object is not for this path
   * (a symlink, or a declared size above {@link RECEIVE_MAX_INFLATED}: stream it instead).
   * Throws OBJECT_CORRUPTED (nothing staged) on any mismatch, LIMIT_EXCEEDED when the declared
   * size is above `maxSize`. `bytes` may be transferred to the worker: do not use it afterwards.
   */
  async stage(checksum: Checksum, bytes: Uint8Array, batch: WriteBatch, maxSize: number = Number.MAX_SAFE_INTEGER): Promise<number | null> {
    validateChecksum(checksum);
    if (bytes.length < 8) throw corrupt(checksum, 'truncated header');
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const len = dv.getUint32(0, false);
    if (len === 0 || len > MAX_ARCHIVE_HEADER_SIZE || len > bytes.length - 8) throw corrupt(checksum, `invalid header length ${len}`);
    let header;
    try {
      header = parseArchiveHeaderVariant(bytes.subarray(8, 8 + len));
    } catch (e) {
      throw new LarchError('OBJECT_CORRUPTED', `Corrupted file object ${checksum}: ${(e as Error).message}`, { type: 'file', checksum }, { cause: e });
    }
    if (header.size > maxSize) {
      throw new LarchError('LIMIT_EXCEEDED', `File object ${checksum} declares ${header.size} bytes, exceeding the limit of ${maxSize}`, { checksum, limit: maxSize, observed: header.size });
    }
    const meta = header.meta;
    if ((meta.mode & S_IFMT) === S_IFLNK || header.size > RECEIVE_MAX_INFLATED) return null;
    if (this.dead !== null) throw this.dead;
    const mode = this.repo.mode;
    const perm = mode === 'bare-user' ? bareUserStoredMode(meta.mode) & 0o7777 : meta.mode & 0o7777;
    // A view into a shared pool must be copied; a buffer of its own is handed over as is.
    const own = bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength && bytes.buffer instanceof ArrayBuffer;
    const body = own || bytes.byteLength < 64 * 1024 ? bytes : bytes.slice();
    const job: Job = { id: this.nextId++, checksum, bytes: body, payloadAt: 8 + len, size: header.size, hashHeader: fileHeader(meta), mode, perm, uid: meta.uid, gid: meta.gid };
    const reply = await this.submit(job);
    const e = reply.error;
    if (e !== undefined) {
      if (e.kind === 'mismatch') throw fileChecksumMismatch(checksum, e.actual ?? '');
      if (e.kind === 'long') throw corrupt(checksum, `more data than the declared size ${header.size}`);
      if (e.kind === 'short') throw corrupt(checksum, `got ${e.got} bytes, declared size ${header.size}`);
      if (e.kind === 'inflate') throw corrupt(checksum, e.message);
      const cause = Object.assign(new Error(e.message), { code: e.code, errno: e.errno, syscall: e.syscall });
      throw ioError(cause, 'Writing temporary file', e.tmp);
    }
    const tmp = reply.tmp!;
    try {
      if (mode === 'bare-user') lsetxattr(tmp, USER_META_XATTR, serializeUserMeta(meta));
      else if (mode === 'bare') for (const x of meta.xattrs) lsetxattr(tmp, x.name, x.value);
    } catch (err) {
      rmSync(tmp, { force: true });
      throw ioError(err, 'Setting extended attributes on', tmp);
    }
    batch.add(tmp, 'file', checksum);
    return reply.written!;
  }

  private submit(job: Job): Promise<Reply> {
    let slot = this.slots[0];
    for (const s of this.slots) if (s.inFlight + s.queued.length < slot.inFlight + slot.queued.length) slot = s;
    slot.queued.push(job);
    slot.worker.ref();
    // One message in flight per worker: jobs that arrive while it works wait and go together
    // with its next message (a message, and the thread wake-up it causes, costs more than a
    // small job). An idle worker gets what arrived in the same turn of the event loop.
    if (slot.inFlight === 0 && !slot.scheduled) {
      slot.scheduled = true;
      setImmediate(() => {
        slot.scheduled = false;
        if (slot.inFlight === 0) this.send(slot);
      });
    }
    return new Promise<Reply>((resolve, reject) => this.pending.set(job.id, { resolve, reject }));
  }

  private send(slot: Slot): void {
    const jobs = slot.queued;
    if (jobs.length === 0) return;
    slot.queued = [];
    slot.inFlight += jobs.length;
    // Small buffers are cheaper to copy than to transfer.
    const transfer: ArrayBuffer[] = [];
    for (const j of jobs) if (j.bytes.byteLength >= 64 * 1024) transfer.push(j.bytes.buffer as ArrayBuffer);
    slot.worker.postMessage(jobs, transfer);
  }

  /** Stop every worker. Work still queued is answered with an error. */
  async close(): Promise<void> {
    this.closed = true;
    const left = [...this.pending.values()];
    this.pending.clear();
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
    for (const p of left) p.reject(new LarchError('IO_ERROR', 'Receive workers closed before the object was stored', {}));
  }
}
