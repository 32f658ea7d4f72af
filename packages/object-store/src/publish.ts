/**
 * publishRepo: mirror a local archive repo into a PublishedStore so that every reader, at every
 * moment, sees a consistent repo.
 *
 * Order (each phase finishes before the next starts):
 *   1. content, dirtree and dirmeta objects;  2. commit objects;
 *   3. detached metadata (.commitmeta) and static-delta parts;  4. delta superblocks, then delta indexes;
 *   5. a fresh listing verifies that every local object and delta file is in the store with its size;
 *   6. config and refs;  7. summary, then summary.sig (a stale remote summary.sig is deleted first);
 *   8. refs deleted locally are deleted remotely.
 * So the summary (and any ref) only ever names objects that are already stored: a publish killed
 * at any point leaves the previous summary, which names older objects that are still there, and a
 * rerun lists the store once and uploads only what is missing.
 *
 * What "missing" means: objects and delta files never change under their name, so they are
 * compared by presence and size; the small mutable files (refs, config, summary, summary.sig,
 * .commitmeta, delta indexes) by MD5 against the store's ETag. A delta directory whose superblock
 * changed is re-uploaded whole.
 *
 * Every put carries its MD5 (the store rejects damaged bytes) and the returned ETag is compared
 * with it; bodies are streamed from disk (files up to SMALL_BODY are read into memory once).
 */
import { createHash } from 'node:crypto';
import { createReadStream, promises as fsp } from 'node:fs';
import path from 'node:path';
import { LarchError, Repo, readSummary } from '@larch/core-store';
import type { PublishedStore, PutBody, RangedBody, StoredObject } from './store.js';
import { cacheControlFor, classify, contentTypeFor, deltaDirKey, isImmutable, objectKey, summaryDeltaNames, type KeyClass } from './keys.js';

/** Bodies up to this size are read into memory once (one read for MD5 and upload). */
const SMALL_BODY = 1 << 20;

export interface PublishProgress {
  phase: 'scan' | 'list' | 'objects' | 'commits' | 'metadata' | 'deltas' | 'verify' | 'refs' | 'summary' | 'cleanup' | 'done';
  filesDone: number;
  filesTotal: number;
  bytesDone: number;
  bytesTotal: number;
}

export interface PublishOptions {
  /** Uploads in flight at most (default 16). The store may bound it further. */
  concurrency?: number;
  /** Only compute what would be uploaded and deleted. */
  dryRun?: boolean;
  /** Delete refs from the store that no longer exist locally (default true). */
  deleteStaleRefs?: boolean;
  onProgress?: (p: PublishProgress) => void;
  signal?: AbortSignal;
}

export interface PublishResult {
  /** Keys uploaded (or, in a dry run, that would be), in upload order. */
  uploaded: string[];
  uploadedBytes: number;
  /** Uploaded keys by class (objects, commit, delta-part, ref, summary, …). */
  byClass: Partial<Record<KeyClass, number>>;
  /** Local files already in the store (not uploaded). */
  skipped: number;
  /** Remote refs deleted because they are gone locally. */
  deletedRefs: string[];
  summaryPublished: boolean;
  dryRun: boolean;
}

interface LocalFile {
  key: string;
  file: string;
  size: number;
  cls: KeyClass;
  md5?: string;
}

/** An S3 multipart upload's entity tag: an MD5, "-", the number of parts. */
const MULTIPART_ETAG = /^[0-9a-f]{32}-\d+$/;

/** A local file as a body a store can reopen, whole or at a range. */
function fileBody(file: string): RangedBody {
  return { open: (range) => createReadStream(file, range) };
}

async function md5File(file: string): Promise<string> {
  const h = createHash('md5');
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** Walk the parts of a local repo that are published, with their keys. */
async function scanRepo(root: string): Promise<LocalFile[]> {
  const out: LocalFile[] = [];
  const walk = async (rel: string): Promise<void> => {
    let ents;
    try {
      ents = await fsp.readdir(path.join(root, rel), { withFileTypes: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw e;
    }
    for (const ent of ents) {
      const relPath = rel === '' ? ent.name : `${rel}/${ent.name}`;
      if (ent.isDirectory()) await walk(relPath);
      else if (ent.isFile()) {
        const st = await fsp.stat(path.join(root, relPath));
        out.push({ key: relPath, file: path.join(root, relPath), size: st.size, cls: classify(relPath) });
      }
    }
  };
  for (const dir of ['objects', 'deltas', 'delta-indexes', 'refs/heads', 'refs/mirrors']) await walk(dir);
  for (const name of ['config', 'summary', 'summary.sig']) {
    try {
      const st = await fsp.stat(path.join(root, name));
      if (st.isFile()) out.push({ key: name, file: path.join(root, name), size: st.size, cls: classify(name) });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
  }
  // Partial or foreign files in objects/ (anything but OSTree's suffixes) are not published.
  return out.filter((f) => !f.key.startsWith('objects/') || /^objects\/[0-9a-f]{2}\/[0-9a-f]{62}\.(filez|dirtree|dirmeta|commit|commitmeta|tombstone-commit)$/.test(f.key));
}

/**
 * Refuse a repo whose refs or summary name a commit (or a delta) it does not hold: publishing
 * them would make the store name missing objects.
 */
async function checkNames(root: string, local: LocalFile[]): Promise<void> {
  const keys = new Set(local.map((f) => f.key));
  for (const f of local) {
    if (f.cls !== 'ref') continue;
    const text = (await fsp.readFile(f.file, 'utf8')).trim();
    if (/^[0-9a-f]{64}$/.test(text) && !keys.has(objectKey(text, 'commit'))) {
      throw new LarchError('OBJECT_MISSING', `Ref ${f.key} names commit ${text}, which is not in ${root}`, { key: f.key, commit: text });
    }
  }
  const sum = local.find((f) => f.cls === 'summary');
  if (!sum) return;
  const summary = readSummary(await fsp.readFile(sum.file));
  for (const ref of [...summary.refs, ...[...summary.collectionMap.values()].flat()]) {
    if (!keys.has(objectKey(ref.checksum, 'commit'))) {
      throw new LarchError('OBJECT_MISSING', `The summary of ${root} names commit ${ref.checksum} (ref ${ref.name}), which is not in the repo; regenerate it with 'summary -u'`, { ref: ref.name, commit: ref.checksum });
    }
  }
  for (const name of summaryDeltaNames(summary)) {
    if (!keys.has(`${deltaDirKey(name)}superblock`)) {
      throw new LarchError('OBJECT_MISSING', `The summary of ${root} names static delta ${name}, which is not in the repo; regenerate it with 'summary -u'`, { delta: name });
    }
  }
}

/** Run `fn` over `items` with at most `limit` in flight; the first failure stops new starts and is thrown. */
async function pool<T>(items: readonly T[], limit: number, signal: AbortSignal | undefined, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failed: unknown;
  const worker = async (): Promise<void> => {
    while (failed === undefined && next < items.length) {
      if (signal?.aborted) throw signal.reason ?? new LarchError('ABORTED', 'Publish aborted');
      const item = items[next++];
      try {
        await fn(item);
      } catch (e) {
        failed ??= e;
        throw e;
      }
    }
  };
  const results = await Promise.allSettled(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failed !== undefined) throw failed;
  for (const r of results) if (r.status === 'rejected') throw r.reason;
}

/**
 * Mirror the archive repo at `repoPath` into `store` (see the file comment for the order and the
 * crash guarantees). Holds the repo's shared lock for the duration, so a local prune cannot
 * delete objects while they are being published.
 *
 * Limits: single-part puts only (objects up to the store's single-put limit, 5 GiB on S3). A
 * prune of the same store running concurrently with a graceSeconds shorter than the publish can
 * delete an old object this publish found and reused; step 5 then uploads it again.
 */
export async function publishRepo(repoPath: string, store: PublishedStore, opts: PublishOptions = {}): Promise<PublishResult> {
  const repo = await Repo.open(repoPath);
  if (repo.mode !== 'archive') {
    throw new LarchError('BAD_MODE', `Cannot publish repo ${repo.path}: mode is ${repo.mode}, publishing needs an archive repo`, { path: repo.path, mode: repo.mode });
  }
  return repo.withLock('shared', () => publishLocked(repo.path, store, opts));
}

async function publishLocked(root: string, store: PublishedStore, opts: PublishOptions): Promise<PublishResult> {
  const concurrency = Math.max(1, opts.concurrency ?? 16);
  const dryRun = Boolean(opts.dryRun);
  const progress: PublishProgress = { phase: 'scan', filesDone: 0, filesTotal: 0, bytesDone: 0, bytesTotal: 0 };
  const report = (phase?: PublishProgress['phase']): void => {
    if (phase) progress.phase = phase;
    opts.onProgress?.({ ...progress });
  };
  report('scan');
  const local = await scanRepo(root);
  await checkNames(root, local);
  report('list');
  const remote = new Map<string, StoredObject>();
  for await (const o of store.list('')) remote.set(o.key, o);

  // Decide what to upload.
  const changedDeltaDirs = new Set<string>();
  const mutableNeedsMd5 = (f: LocalFile): boolean => !isImmutable(f.cls);
  await pool(local.filter(mutableNeedsMd5).concat(local.filter((f) => f.cls === 'delta-superblock')), concurrency, opts.signal, async (f) => {
    f.md5 = await md5File(f.file);
  });
  for (const f of local) {
    if (f.cls !== 'delta-superblock') continue;
    const r = remote.get(f.key);
    if (!r || r.size !== f.size || (r.etag !== null && r.etag !== f.md5)) changedDeltaDirs.add(f.key.slice(0, -'superblock'.length));
  }
  const deltaDirOf = (key: string): string => key.slice(0, key.lastIndexOf('/') + 1);
  // Whether a stored entity tag is the local file's: its MD5, or for an object the store took in
  // parts, the multipart tag the store computes for the file.
  // (A multipart tag is compared without the whole-file MD5: one read of the file, not two.)
  const sameEtag = async (f: LocalFile, etag: string): Promise<boolean> => {
    if (MULTIPART_ETAG.test(etag)) return store.localEtag !== undefined && (await store.localEtag(fileBody(f.file), f.size)) === etag;
    f.md5 ??= await md5File(f.file);
    return etag === f.md5;
  };
  const needs = async (f: LocalFile): Promise<boolean> => {
    const r = remote.get(f.key);
    if (!r || r.size !== f.size) return true;
    if (f.cls === 'delta-part' && changedDeltaDirs.has(deltaDirOf(f.key))) return r.etag !== null && !(await sameEtag(f, r.etag));
    if (isImmutable(f.cls)) return false;
    return r.etag === null || !(await sameEtag(f, r.etag));
  };
  const todo: LocalFile[] = [];
  let skipped = 0;
  for (const f of local) {
    if (await needs(f)) todo.push(f);
    else skipped++;
  }
  const localRefs = new Set(local.filter((f) => f.cls === 'ref').map((f) => f.key));
  const staleRefs = opts.deleteStaleRefs === false ? [] : [...remote.keys()].filter((k) => classify(k) === 'ref' && (k.startsWith('refs/heads/') || k.startsWith('refs/mirrors/')) && !localRefs.has(k));
  const staleSig = !local.some((f) => f.cls === 'summary-sig') && remote.has('summary.sig') && todo.some((f) => f.cls === 'summary');

  const result: PublishResult = { uploaded: [], uploadedBytes: 0, byClass: {}, skipped, deletedRefs: [], summaryPublished: false, dryRun };
  progress.filesTotal = todo.length;
  progress.bytesTotal = todo.reduce((s, f) => s + f.size, 0);

  const upload = async (f: LocalFile): Promise<void> => {
    if (!dryRun) {
      let body: PutBody;
      if (f.size <= SMALL_BODY) {
        const bytes = await fsp.readFile(f.file);
        if (bytes.length !== f.size) throw new LarchError('IO_ERROR', `${f.file} changed size while publishing`, { key: f.key });
        f.md5 = createHash('md5').update(bytes).digest('hex');
        body = bytes;
      } else {
        f.md5 ??= await md5File(f.file);
        body = fileBody(f.file);
      }
      const res = await store.put(f.key, body, { contentType: contentTypeFor(f.cls), cacheControl: cacheControlFor(f.cls), length: f.size, md5: f.md5 });
      if (res.etag !== null && /^[0-9a-f]{32}$/.test(res.etag) && res.etag !== f.md5) {
        throw new LarchError('OBJECT_CORRUPTED', `PUT ${store.location.replace(/\/$/, '')}/${f.key}: stored ETag ${res.etag} differs from the MD5 ${f.md5} of the local file`, { key: f.key });
      }
      remote.set(f.key, { key: f.key, size: f.size, etag: f.md5, lastModified: new Date() });
    }
    result.uploaded.push(f.key);
    result.uploadedBytes += f.size;
    result.byClass[f.cls] = (result.byClass[f.cls] ?? 0) + 1;
    progress.filesDone++;
    progress.bytesDone += f.size;
    report();
  };
  const phase = async (name: PublishProgress['phase'], classes: KeyClass[]): Promise<void> => {
    report(name);
    await pool(todo.filter((f) => classes.includes(f.cls)), concurrency, opts.signal, upload);
  };

  await phase('objects', ['object']);
  await phase('commits', ['commit']);
  await phase('metadata', ['commitmeta', 'delta-part', 'other']);
  await phase('deltas', ['delta-superblock']);
  await phase('deltas', ['delta-index']);

  if (!dryRun) {
    // Everything a ref or the summary can name must now be in the store: check with a fresh listing.
    report('verify');
    const now = new Map<string, StoredObject>();
    for await (const o of store.list('')) now.set(o.key, o);
    const missing = local.filter((f) => isImmutable(f.cls) || f.cls === 'commitmeta').filter((f) => now.get(f.key)?.size !== f.size);
    if (missing.length > 0) {
      // Deleted since the first listing (a concurrent prune): upload again, then check once more.
      progress.filesTotal += missing.length;
      progress.bytesTotal += missing.reduce((s, f) => s + f.size, 0);
      await pool(missing.filter((f) => f.cls !== 'delta-superblock'), concurrency, opts.signal, upload);
      await pool(missing.filter((f) => f.cls === 'delta-superblock'), concurrency, opts.signal, upload);
      for (const f of missing) {
        const h = await store.head(f.key);
        if (h?.size !== f.size) throw new LarchError('OBJECT_MISSING', `Object missing in ${store.location}: ${f.key} (not published; refusing to publish refs and summary)`, { key: f.key });
      }
    }
  }

  await phase('refs', ['config', 'ref']);
  report('summary');
  if (staleSig && !dryRun) await store.deleteMany(['summary.sig']);
  await pool(todo.filter((f) => f.cls === 'summary'), 1, opts.signal, upload);
  await pool(todo.filter((f) => f.cls === 'summary-sig'), 1, opts.signal, upload);
  result.summaryPublished = todo.some((f) => f.cls === 'summary');

  if (staleRefs.length > 0) {
    report('cleanup');
    if (!dryRun) await store.deleteMany(staleRefs);
    result.deletedRefs = staleRefs;
  }
  report('done');
  return result;
}
