/**
 * Staging the files of a directory source (repo-commit.ts): each file is hashed (node:crypto over
 * header + content) and, when neither the repository nor this commit has its object yet, stored.
 *
 * - Small files (<= SMALL_FILE_MAX) are read once and the same buffer is hashed and stored.
 *   Larger files are read twice (hash pass, then store pass re-hashed and compared), so no file
 *   is ever held whole in memory and what is stored is exactly what was hashed.
 * - Archive commits of many files (or many bytes) store every regular file on worker threads
 *   (commit-workers.ts, one per core): the main thread reads metadata and hands out batches of
 *   up to 256 small files (each large file alone); a worker reads, hashes, skips what the
 *   repository has, raw-deflates and writes the staged file, all synchronously.
 * - Hardlinked inputs are hashed once (dev+ino map); `--link-checkout-speedup` takes a file that
 *   is a hard link to an object of the repository as that object; `--consume` adopts new files
 *   of bare repositories by hard link instead of copying them.
 */
import { chmodSync, closeSync, constants as fsc, fstatSync, linkSync, openSync, readlinkSync, readSync, unlinkSync } from 'node:fs';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { availableParallelism } from 'node:os';
import { pipeline } from 'node:stream/promises';
import { Writable } from 'node:stream';
import { LarchError, ioError } from './errors.js';
import { HashCounter, stageContent, stageBytesSync, compressForArchive } from './objects/content-io.js';
import { contentHasher, fileHeader } from './objects/file-header.js';
import { serializeArchiveHeader } from './objects/archive-header.js';
import { ArchiveStoreWorkers, type BatchOutcome, type SmallFileJob } from './commit-workers.js';
import { scanDevino, type FileNode } from './commit-scan.js';
import type { CommitState } from './commit-state.js';
import type { Checksum, FileMeta, Xattr } from './types.js';
import { OBJECTS_DIR } from './layout.js';

/** Files up to this size are read into memory once; larger ones are streamed. */
export const SMALL_FILE_MAX = 1024 * 1024;
/** Archive commits with at least this many files, or bytes, store regular files on worker threads. */
const WORKER_MIN_FILES = 200;
const WORKER_MIN_BYTES = 32 * 1024 * 1024;
/** A worker batch closes at this many files or this many payload bytes. */
const BATCH_FILES = 256;
const BATCH_BYTES = 4 * 1024 * 1024;

/** Read a whole small file through one descriptor opened without following symlinks. */
function readSmall(abs: string, expected: number): Buffer {
  let fd: number;
  try {
    fd = openSync(abs, fsc.O_RDONLY | fsc.O_NOFOLLOW);
  } catch (e) {
    throw ioError(e, 'Reading', abs);
  }
  try {
    // One extra byte detects growth since lstat; a short read means it shrank.
    let buf = Buffer.allocUnsafe(expected + 1);
    let off = 0;
    for (;;) {
      if (off === buf.length) {
        const size = fstatSync(fd).size;
        if (size > SMALL_FILE_MAX) throw new LarchError('IO_ERROR', `File changed while committing: ${abs}`, { path: abs });
        const bigger = Buffer.allocUnsafe(Math.max(size + 1, buf.length * 2));
        buf.copy(bigger, 0, 0, off);
        buf = bigger;
      }
      const n = readSync(fd, buf, off, buf.length - off, null);
      if (n === 0) break;
      off += n;
    }
    return buf.subarray(0, off);
  } catch (e) {
    throw e instanceof LarchError ? e : ioError(e, 'Reading', abs);
  } finally {
    closeSync(fd);
  }
}

/** Stages the files of the directory sources of one commit; see the file comment. */
export class FileStager {
  private readonly hardlinks = new Map<string, Promise<Checksum> | Checksum>();
  /** `--link-checkout-speedup` in a bare mode: dev:ino → checksum of the repository's content objects. */
  private readonly devino: Map<string, Checksum> | null;
  // Archive commits of many files: small regular files are read, hashed, compressed and staged
  // on worker threads (commit-workers.ts), in batches; the main thread walks and reads metadata.
  private pool: ArchiveStoreWorkers | null = null;
  private workerCount = 0;
  private pending: { jobs: SmallFileJob[]; files: FileNode[]; bytes: number } = { jobs: [], files: [], bytes: 0 };
  private readonly batches = new Set<Promise<void>>();
  private readonly firstByInode = new Map<string, FileNode>();
  private aliases: Array<[FileNode, FileNode]> = [];
  private readonly headerCache = new Map<string, { header: Uint8Array; archiveHeader: Uint8Array }>();

  constructor(private readonly st: CommitState) {
    this.devino = (st.opts.linkCheckoutSpeedup === true || st.opts.devinoCanonical === true) && st.repo.mode !== 'archive' ? scanDevino(st.repo) : null;
  }

  /** Start the worker threads when an archive commit has enough files or bytes to pay for them. */
  startWorkersFor(counts: { files: number; bytes: number }): void {
    const { repo } = this.st;
    if (this.pool === null && repo.mode === 'archive' && (counts.files >= WORKER_MIN_FILES || counts.bytes >= WORKER_MIN_BYTES)) {
      this.workerCount = Math.max(1, Math.min(this.st.limit, availableParallelism()));
      this.pool = new ArchiveStoreWorkers(this.workerCount, {
        objectsDir: join(repo.path, OBJECTS_DIR),
        tmpDir: this.st.stage.path,
        level: repo.zlibLevel,
        maxSmall: SMALL_FILE_MAX,
      });
    }
  }

  /** Wait for every file handed out (batches and jobs), then give hardlink aliases their checksum. */
  async drain(): Promise<void> {
    await this.flush();
    while (this.batches.size) await Promise.all(this.batches);
    while (this.st.inflight.size) await Promise.all(this.st.inflight);
    this.st.checkAbort();
    for (const [f, first] of this.aliases) f.checksum = first.checksum;
    this.aliases = [];
  }

  /** After a failure: let every batch and job settle, so that no temporary file appears after cleanup. */
  async settleAll(): Promise<void> {
    while (this.batches.size) await Promise.allSettled(this.batches);
    while (this.st.inflight.size) await Promise.allSettled(this.st.inflight);
  }

  async close(): Promise<void> {
    await this.pool?.close();
  }

  private metaFor(f: FileNode): FileMeta {
    const src = f.source;
    const mod = this.st.mod;
    const m = src !== undefined ? mod.modify(f.rel, src.mode, src.uid, src.gid) : mod.modify(f.rel, f.st.mode, f.st.uid, f.st.gid);
    return { uid: m.uid, gid: m.gid, mode: m.mode, symlinkTarget: '', xattrs: src !== undefined ? (mod.withXattrs ? src.xattrs : []) : mod.xattrsOf(f.abs) };
  }

  /** The --link-checkout-speedup fast path: true when `f` was taken as the object it is a hard link to. */
  private async devinoHit(f: FileNode): Promise<boolean> {
    const checksum = this.devino?.get(`${f.st.dev}:${f.st.ino}`);
    if (checksum === undefined) return false;
    const { repo, mod, stats } = this.st;
    if (this.st.opts.devinoCanonical === true) {
      f.checksum = checksum;
      stats.devinoHits++;
      stats.files++;
      return true;
    }
    let src: { mode: number; uid: number; gid: number; xattrs: Xattr[] };
    if (repo.mode === 'bare-user') {
      src = (await repo.openFile(checksum)).meta;
      f.source = { ...src, symlinkTarget: '' };
    } else src = { mode: f.st.mode, uid: f.st.uid, gid: f.st.gid, xattrs: [] };
    const m = mod.modify(f.rel, src.mode, src.uid, src.gid);
    if (!mod.withXattrs || m.mode !== src.mode || m.uid !== src.uid || m.gid !== src.gid) return false;
    f.checksum = checksum;
    stats.devinoHits++;
    stats.files++;
    return true;
  }

  /**
   * `consume` in bare and bare-user-only repos: a new regular file is moved into the repository
   * (hard-linked into the staging directory, published from there) instead of copied, as ostree
   * adopts it; only when its stored form is the file itself (bare: metadata unmodified).
   */
  private adoptable(f: FileNode, meta: FileMeta): boolean {
    const { repo, opts, mod } = this.st;
    if (opts.consume !== true || !f.st.isFile()) return false;
    if (repo.mode === 'bare-user-only') return true;
    return repo.mode === 'bare' && mod.withXattrs && meta.uid === f.st.uid && meta.gid === f.st.gid && meta.mode === f.st.mode;
  }

  private adopt(f: FileNode, meta: FileMeta, checksum: Checksum): boolean {
    const tmp = this.st.stage.newTmpPath();
    try {
      if (this.st.repo.mode === 'bare-user-only') chmodSync(f.abs, meta.mode & 0o755);
      linkSync(f.abs, tmp);
    } catch {
      return false; // another filesystem, or not ours to change: copy instead
    }
    this.st.record(tmp, 'file', checksum, 0, f.st.size);
    return true;
  }

  private async processLarge(f: FileNode, meta: FileMeta): Promise<Checksum> {
    const st = this.st;
    const repo = st.repo;
    let fh: fsp.FileHandle;
    try {
      fh = await fsp.open(f.abs, fsc.O_RDONLY | fsc.O_NOFOLLOW);
    } catch (e) {
      throw ioError(e, 'Reading', f.abs);
    }
    try {
      const size = (await fh.stat()).size;
      const hash = contentHasher(meta);
      try {
        await pipeline(fh.createReadStream({ autoClose: false, start: 0 }), new HashCounter(hash, size, `Reading ${f.abs}`), new Writable({ write: (_c, _e, cb) => cb() }));
      } catch (e) {
        throw e instanceof LarchError ? e : ioError(e, 'Reading', f.abs);
      }
      st.bytesDone += size;
      const checksum = hash.digest('hex');
      st.sizeOfFile(checksum, size);
      if (st.claim('file', checksum) && !(this.adoptable(f, meta) && this.adopt(f, meta, checksum))) {
        const tmp = st.stage.newTmpPath();
        let r;
        try {
          r = await stageContent({ mode: repo.mode, meta, size, payload: fh.createReadStream({ autoClose: false, start: 0 }), tmpPath: tmp, zlibLevel: repo.zlibLevel, what: `Reading ${f.abs}` });
        } catch (e) {
          throw e instanceof LarchError ? e : ioError(e, 'Reading', f.abs);
        }
        if (r.checksum !== checksum) {
          await fsp.rm(tmp, { force: true });
          throw new LarchError('IO_ERROR', `File changed while committing: ${f.abs}`, { path: f.abs });
        }
        st.record(tmp, 'file', checksum, r.written, size);
      }
      return checksum;
    } finally {
      await fh.close();
    }
  }

  private headersFor(meta: FileMeta, size: number): { header: Uint8Array; archiveHeader: Uint8Array } {
    // Most files share owner and mode and carry no xattrs; the size is patched in by the worker.
    const key = meta.xattrs.length === 0 ? `${meta.uid}:${meta.gid}:${meta.mode}` : null;
    const hit = key !== null ? this.headerCache.get(key) : undefined;
    if (hit !== undefined) return hit;
    const h = { header: fileHeader(meta), archiveHeader: serializeArchiveHeader({ meta, size }) };
    if (key !== null) this.headerCache.set(key, h);
    return h;
  }

  /** Take in a worker's answer: every staged file goes into the batch (or is removed as a duplicate). */
  private settle(files: FileNode[], out: BatchOutcome): void {
    const st = this.st;
    for (let i = 0; i < out.results.length; i++) {
      const r = out.results[i];
      files[i].checksum = r.checksum;
      st.bytesDone += r.read;
      st.stats.files++;
      st.sizeOfFile(r.checksum, r.read);
      const key = `${r.checksum}.file`;
      if (r.tmp !== null && st.staged.has(key)) {
        try {
          unlinkSync(r.tmp);
        } catch {
          // already gone
        }
      } else if (r.tmp !== null) {
        st.staged.add(key);
        st.record(r.tmp, 'file', r.checksum, r.written, r.read);
      } else st.staged.add(key);
    }
    if (out.error !== undefined && st.failure === null) st.failure = out.error;
    st.progress();
  }

  private async dispatch(jobs: SmallFileJob[], files: FileNode[], bytes: number): Promise<void> {
    const pool = this.pool;
    if (pool === null) return;
    // Two batches queued per worker keep it busy while bounding memory.
    while (pool.inFlight >= 2 * this.workerCount) await Promise.race(this.batches);
    this.st.checkAbort();
    const p = pool.run(jobs, bytes).then(
      (out) => this.settle(files, out),
      (e) => {
        if (this.st.failure === null) this.st.failure = e;
      },
    );
    const tracked = p.finally(() => this.batches.delete(tracked));
    this.batches.add(tracked);
  }

  private async flush(): Promise<void> {
    if (this.pending.jobs.length === 0) return;
    const { jobs, files, bytes } = this.pending;
    this.pending = { jobs: [], files: [], bytes: 0 };
    await this.dispatch(jobs, files, bytes);
  }

  /** Hash one file and (if new) stage it; returns when the checksum is known (staging may continue in `inflight`). */
  async processFile(f: FileNode): Promise<void> {
    const st = this.st;
    const repo = st.repo;
    const stats = st.stats;
    st.checkAbort();
    if (this.devino !== null && (await this.devinoHit(f))) return;
    stats.contentTotal++;
    const fst = f.st;
    // Hardlinked inputs share one object, unless per-path mode overrides could tell them apart.
    const hlKey = fst.nlink > 1 && fst.isFile() && st.opts.statOverrides === undefined ? `${fst.dev}:${fst.ino}` : null;
    if (this.pool !== null && fst.isFile()) {
      const meta = this.metaFor(f);
      if (hlKey !== null) {
        const first = this.firstByInode.get(hlKey);
        if (first !== undefined) {
          this.aliases.push([f, first]);
          stats.files++;
          return;
        }
        this.firstByInode.set(hlKey, f);
      }
      const h = this.headersFor(meta, fst.size);
      const job = { path: f.abs, size: fst.size, header: h.header, archiveHeader: h.archiveHeader };
      if (fst.size > SMALL_FILE_MAX) {
        // Streamed by the worker a chunk at a time; sent alone so the workers stay balanced.
        await this.dispatch([job], [f], fst.size);
        return;
      }
      const pending = this.pending;
      pending.jobs.push(job);
      pending.files.push(f);
      pending.bytes += fst.size;
      if (pending.jobs.length >= BATCH_FILES || pending.bytes >= BATCH_BYTES) await this.flush();
      return;
    }
    const meta = this.metaFor(f);
    if (hlKey !== null) {
      const known = this.hardlinks.get(hlKey);
      if (known !== undefined) {
        f.checksum = await known;
        stats.files++;
        return;
      }
    }
    if (fst.isSymbolicLink()) {
      try {
        meta.symlinkTarget = readlinkSync(f.abs);
      } catch (e) {
        throw ioError(e, 'Reading symlink', f.abs);
      }
      const checksum = contentHasher(meta).digest('hex');
      st.sizeOfFile(checksum, Buffer.byteLength(meta.symlinkTarget));
      if (st.claim('file', checksum)) {
        const tmp = st.stage.newTmpPath();
        const r = stageBytesSync(repo.mode, meta, null, tmp, null);
        st.record(tmp, 'file', checksum, r, Buffer.byteLength(meta.symlinkTarget));
      }
      f.checksum = checksum;
    } else if (fst.size <= SMALL_FILE_MAX) {
      const data = readSmall(f.abs, fst.size);
      st.bytesDone += data.length;
      const checksum = contentHasher(meta).update(data).digest('hex');
      f.checksum = checksum;
      st.sizeOfFile(checksum, data.length);
      if (hlKey !== null) this.hardlinks.set(hlKey, checksum);
      if (st.claim('file', checksum) && !(this.adoptable(f, meta) && this.adopt(f, meta, checksum))) {
        if (repo.mode === 'archive') {
          await st.launch(async () => {
            const z = await compressForArchive(data, repo.zlibLevel);
            const tmp = st.stage.newTmpPath();
            const written = stageBytesSync(repo.mode, meta, data, tmp, z);
            st.record(tmp, 'file', checksum, written, data.length);
          });
        } else {
          const tmp = st.stage.newTmpPath();
          st.record(tmp, 'file', checksum, stageBytesSync(repo.mode, meta, data, tmp, null), data.length);
        }
      }
    } else {
      // Large files are hashed and stored in the background; dirtrees are built after all finish.
      let resolveC!: (c: Checksum) => void;
      let rejectC!: (e: unknown) => void;
      const p = new Promise<Checksum>((res, rej) => {
        resolveC = res;
        rejectC = rej;
      });
      p.catch(() => undefined);
      if (hlKey !== null) this.hardlinks.set(hlKey, p);
      try {
        await st.launch(async () => {
          try {
            const c = await this.processLarge(f, meta);
            f.checksum = c;
            resolveC(c);
          } catch (e) {
            rejectC(e);
            throw e;
          }
        });
      } catch (e) {
        rejectC(e);
        throw e;
      }
    }
    stats.files++;
    st.progress();
  }
}
