/**
 * Importing objects from a local repository on the same filesystem by hardlink (`pull-local`),
 * as ostree does, without giving up verification. Metadata objects (the same bytes in every
 * mode) are linked between any modes: linked into `tmp/`, read there, checked by the pull as
 * any metadata, then published. Content objects are linked between repositories of the same mode
 * (archive, bare, bare-user, bare-user-only: the stored file is then the same in both), and from
 * bare-user into bare-user-only, as ostree pairs them: a bare-user regular file is stored as the
 * file itself, which bare-user-only reads with owner 0 and no xattrs (a bare-user symlink, a
 * regular file holding its target, is copied). Trusted, every regular file is linked, as ostree
 * links it (one whose owner, xattrs or mode bits bare-user-only cannot hold is then reported by
 * fsck, as in ostree); untrusted, only one that the destination reads as the object its name
 * says (owner 0, no xattrs, the stored mode the recorded one), the others go to the copy:
 *
 * 1. link(2) the source's object file into the destination's `tmp/`: from here on the inode is
 *    ours, so a rename or replacement of the source path can no longer change what is checked;
 * 2. check that link: a regular file (a symlink among the source's objects is copied, never
 *    linked) owned by the destination repository's owner (a file of another user could be
 *    rewritten by that user after the check; in a bare repository, where a file's owner is part
 *    of the object, the check of the content stands for this), whose content checksum is the name:
 *    for an archive object, its header parses, its payload inflates to exactly the declared
 *    size and the file ends with its deflate stream (an object with junk after it is copied
 *    instead, and the copy drops the junk); for the bare modes the metadata is read from the
 *    link as the mode stores it (`user.ostreemeta`, or the inode's own mode, owner and xattrs);
 * 3. publish the link into `objects/` (never replacing an object), then wait for one syncfs(2)
 *    of the filesystem shared by every import in flight, so the new entry (and the data of a
 *    source written without fsync) is durable before the pull goes on to mark its commit
 *    complete.
 *
 * When the link cannot be made (EXDEV, EMLINK, EPERM) or the file does not qualify, the caller
 * falls back to copying through the usual verify-then-store path. With `trust` (a trusted local
 * source, see pull-local.ts) step 2 only checks the file type and owner, as ostree's trusted
 * pull-local checks nothing. With `bareuseronly` (`--bareuseronly-files`) the mode read from
 * the link is checked as well, trusted or not.
 */
import { constants as fsc, linkSync, promises as fsp, unlinkSync } from 'node:fs';
import { createInflateRaw, inflateRawSync } from 'node:zlib';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Stats } from 'node:fs';
import {
  LarchError,
  MAX_ARCHIVE_HEADER_SIZE,
  S_IFLNK,
  S_IFMT,
  USER_META_XATTR,
  contentHasher,
  fileChecksumMismatch,
  parseArchiveHeaderVariant,
  parseUserMeta,
  readXattrs,
  type ArchiveHeader,
  type FileMeta,
  type Repo,
  type RepoMode,
} from '@larch/core-store';
import { validateBareuseronlyMode } from './bareuseronly.js';

/** Objects up to this size are checked in one read and one synchronous inflate. */
const SMALL = 256 * 1024;

/**
 * One syncfs(2) shared by every caller that arrives while none has started: a caller waits for a
 * sync that began after its own writes, so it is covered; concurrent callers share it.
 */
export class SyncBarrier {
  private running: Promise<void> | null = null;
  private next: Promise<void> | null = null;

  constructor(private readonly sync: () => Promise<void>) {}

  wait(): Promise<void> {
    if (this.running === null) {
      this.running = this.sync().finally(() => {
        this.running = null;
      });
      return this.running;
    }
    // A sync is under way, maybe started before our writes: wait for the one after it.
    this.next ??= this.running
      .catch(() => undefined)
      .then(() => {
        this.next = null;
        return this.wait();
      });
    return this.next;
  }
}

/** What {@link importByLink} did. */
export type LinkResult = { linked: true; bytes: number } | { linked: false };

/** Shared state of the hardlink imports of one pull-local. */
export class LinkImporter {
  /** Cleared after the first EXDEV: the repositories are on different filesystems. */
  private enabled = true;
  private readonly barrier: SyncBarrier;

  /**
   * Content objects are linked only between repositories of one mode (their files differ by mode),
   * and from bare-user into bare-user-only.
   */
  private readonly content: boolean;
  /** bare-user into bare-user-only: read each object as bare-user, link only its regular files. */
  private readonly conversion: boolean;

  constructor(
    private readonly src: Repo,
    private readonly dest: Repo,
    private readonly destUid: number,
    private readonly maxSize: number,
    private readonly trust: boolean,
    /**
     * Commits too (a commit is published before the pull checks its bindings, as ostree imports
     * it; not when its signatures are to be checked first).
     */
    private readonly commits: boolean,
    /** Check the mode of each linked content object (`--bareuseronly-files`). */
    private readonly bareuseronly = false,
  ) {
    this.conversion = src.mode === 'bare-user' && dest.mode === 'bare-user-only';
    this.content = src.mode === dest.mode || this.conversion;
    this.barrier = new SyncBarrier(() => dest.syncTmpFs());
  }

  /**
   * Link a metadata object (the same bytes in every mode) into `tmp/` and read it there: the
   * bytes to check, and the link to publish with {@link publishMetadata} once they are checked
   * (or to drop with {@link discard}). Null when it cannot be linked: the caller reads it.
   */
  async linkMetadata(type: 'commit' | 'dirtree' | 'dirmeta', checksum: string, maxBytes: number): Promise<{ tmp: string; bytes: Uint8Array } | null> {
    if (!this.enabled || (type === 'commit' && !this.commits)) return null;
    const tmp = this.linkToTmp(this.src.objectReadPath(type, checksum));
    if (tmp === null) return null;
    try {
      const fh = await fsp.open(tmp, fsc.O_RDONLY | fsc.O_NOFOLLOW);
      try {
        const st = await fh.stat();
        if (st.isFile() && st.uid === this.destUid && st.size <= maxBytes) {
          const bytes = Buffer.alloc(st.size);
          const { bytesRead } = await fh.read(bytes, 0, st.size, 0);
          if (bytesRead === st.size) return { tmp, bytes: new Uint8Array(bytes.buffer, bytes.byteOffset, bytesRead) };
        }
      } finally {
        await fh.close();
      }
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ELOOP') {
        removeQuietly(tmp);
        throw e;
      }
    }
    removeQuietly(tmp);
    return null;
  }

  /**
   * Publish a checked metadata link. A commit is first marked partial (its tree is not there
   * yet), as the pull does before it stores a commit.
   */
  async publishMetadata(tmp: string, type: 'commit' | 'dirtree' | 'dirmeta', checksum: string): Promise<void> {
    if (type === 'commit') await this.dest.markCommitPartial(checksum);
    this.dest.publishStagedSync(tmp, type, checksum);
    if (this.dest.fsyncEnabled) await this.barrier.wait();
  }

  /** Drop a link that was not published. */
  discard(tmp: string): void {
    removeQuietly(tmp);
  }

  /** link(2) into `tmp/`; null when linking is not possible here (EXDEV, EMLINK, EPERM). */
  private linkToTmp(from: string): string | null {
    const tmp = this.dest.newTmpPath('link');
    try {
      linkSync(from, tmp);
      return tmp;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EXDEV') this.enabled = false;
      // ENOENT: not in the source or a parent it can be linked from (or missing): read instead.
      if (code === 'EXDEV' || code === 'EMLINK' || code === 'EPERM' || code === 'ENOENT') return null;
      throw e;
    }
  }

  /**
   * Import `checksum` by hardlink. Resolves `{ linked: false }` when the caller must copy
   * instead; throws OBJECT_CORRUPTED (nothing published) when the object is not what its name says.
   */
  async import(checksum: string): Promise<LinkResult> {
    if (!this.enabled || !this.content) return { linked: false };
    const tmp = this.linkToTmp(this.src.objectReadPath('file', checksum));
    if (tmp === null) return { linked: false };
    let bytes: number | null;
    try {
      bytes = await this.check(tmp, checksum);
    } catch (e) {
      removeQuietly(tmp);
      throw e;
    }
    if (bytes === null) {
      removeQuietly(tmp);
      return { linked: false };
    }
    this.dest.publishStagedSync(tmp, 'file', checksum);
    if (this.dest.fsyncEnabled) await this.barrier.wait();
    return { linked: true, bytes };
  }

  /** Check the linked file (see the top of this file); its size, or null to copy instead. */
  private async check(path: string, checksum: string): Promise<number | null> {
    let fh: fsp.FileHandle;
    try {
      fh = await fsp.open(path, fsc.O_RDONLY | fsc.O_NOFOLLOW);
    } catch (e) {
      // link(2) took a symlink as it is: never published as an object; the copy reads through it.
      if ((e as NodeJS.ErrnoException).code === 'ELOOP') return null;
      throw e;
    }
    try {
      const st = await fh.stat();
      const mode = this.dest.mode;
      if (!st.isFile() || (mode !== 'bare' && st.uid !== this.destUid)) return null;
      if (mode === 'archive') {
        if (this.bareuseronly) validateBareuseronlyMode(checksum, (await readArchiveHeader(fh, st.size, checksum, this.maxSize)).meta.mode);
        if (this.trust) return st.size;
        if (st.size <= SMALL) {
          const whole = Buffer.alloc(st.size);
          const { bytesRead } = await fh.read(whole, 0, st.size, 0);
          return checkSmall(whole.subarray(0, bytesRead), checksum, this.maxSize) ? bytesRead : null;
        }
        return (await checkLarge(fh, st.size, checksum, this.maxSize)) ? st.size : null;
      }
      if (this.trust && !this.bareuseronly && !this.conversion) return st.size;
      // Read as the source stores it (bare-user, when converting into bare-user-only).
      const meta = bareMeta(this.src.mode as Exclude<RepoMode, 'archive'>, path, st, checksum);
      // A bare-user symlink object (a regular file holding the target): copied, as ostree does
      // when it converts, so that it is read and checked the usual way.
      if (meta === null) return null;
      if (this.bareuseronly) validateBareuseronlyMode(checksum, meta.mode);
      if (this.trust) return st.size;
      if (st.size > this.maxSize) return null;
      const hash = contentHasher(meta);
      for await (const chunk of fh.createReadStream({ start: 0, autoClose: false, highWaterMark: SMALL })) hash.update(chunk as Buffer);
      const actual = hash.digest('hex');
      if (actual !== checksum) throw fileChecksumMismatch(checksum, actual);
      // The source's object, checked as ostree checks it; published only if it is this object here too.
      if (this.conversion && !canonicalForBareUserOnly(meta, st)) return null;
      return st.size;
    } finally {
      await fh.close();
    }
  }
}

/**
 * The metadata of a regular-file object of a bare mode, read from the linked file as that mode
 * stores it; null for a bare-user object that stands for a symlink.
 */
function bareMeta(mode: Exclude<RepoMode, 'archive'>, path: string, st: Stats, checksum: string): FileMeta | null {
  if (mode === 'bare') return { uid: st.uid, gid: st.gid, mode: st.mode, symlinkTarget: '', xattrs: readXattrs(path) };
  if (mode === 'bare-user-only') return { uid: 0, gid: 0, mode: st.mode, symlinkTarget: '', xattrs: [] };
  const stored = readXattrs(path, (name) => name !== USER_META_XATTR);
  if (stored.length === 0) throw corrupted(checksum, `Unable to read ${USER_META_XATTR} xattr`);
  let um: Omit<FileMeta, 'symlinkTarget'>;
  try {
    um = parseUserMeta(stored[0].value);
  } catch (e) {
    throw corrupted(checksum, (e as Error).message, e);
  }
  if ((um.mode & S_IFMT) === S_IFLNK) return null;
  return { ...um, symlinkTarget: '' };
}

/**
 * Whether bare-user-only reads a linked bare-user file as the object its metadata describes: owner
 * 0, no xattrs, and the file's own mode (bare-user keeps bits such as setuid or o+w only in
 * `user.ostreemeta`) the recorded one. Its checksum is then the same in both modes.
 */
function canonicalForBareUserOnly(meta: FileMeta, st: Stats): boolean {
  return meta.uid === 0 && meta.gid === 0 && meta.xattrs.length === 0 && meta.mode === st.mode;
}

/** The header of an archive object, for its mode. */
async function readArchiveHeader(fh: fsp.FileHandle, fileSize: number, checksum: string, maxSize: number): Promise<ArchiveHeader> {
  const prefix = Buffer.alloc(Math.min(fileSize, 8 + MAX_ARCHIVE_HEADER_SIZE));
  const { bytesRead } = await fh.read(prefix, 0, prefix.length, 0);
  return parseHeader(prefix.subarray(0, bytesRead), fileSize, checksum, maxSize).header;
}

function removeQuietly(p: string): void {
  try {
    unlinkSync(p);
  } catch {
    // already gone
  }
}

function corrupted(checksum: string, why: string, cause?: unknown): LarchError {
  return new LarchError('OBJECT_CORRUPTED', `Corrupted file object ${checksum}: ${why}`, { checksum }, cause !== undefined ? { cause } : undefined);
}

/** The header at the start of a `.filez` (length prefix, reserved bytes, variant) and its end. */
function parseHeader(prefix: Buffer, fileSize: number, checksum: string, maxSize: number): { len: number; header: ArchiveHeader } {
  if (prefix.length < 8) throw corrupted(checksum, 'truncated header');
  const len = prefix.readUInt32BE(0);
  if (len === 0 || len > MAX_ARCHIVE_HEADER_SIZE || 8 + len > fileSize) throw corrupted(checksum, `invalid header length ${len}`);
  return { len, header: headerOf(prefix.subarray(8, 8 + len), checksum, maxSize) };
}

function headerOf(v: Buffer, checksum: string, maxSize: number): ArchiveHeader {
  let header: ArchiveHeader;
  try {
    header = parseArchiveHeaderVariant(new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
  } catch (e) {
    throw corrupted(checksum, (e as Error).message, e);
  }
  if (header.size > maxSize) {
    throw new LarchError('LIMIT_EXCEEDED', `File object ${checksum} declares ${header.size} bytes, exceeding the limit of ${maxSize}`, { checksum, limit: maxSize, observed: header.size });
  }
  return header;
}

const isSymlink = (h: ArchiveHeader): boolean => (h.meta.mode & S_IFMT) === S_IFLNK;

/** Check a whole small `.filez`; false when it has bytes after its deflate stream. */
function checkSmall(whole: Buffer, checksum: string, maxSize: number): boolean {
  const { len, header } = parseHeader(whole, whole.length, checksum, maxSize);
  const start = 8 + len;
  let payload: Buffer = Buffer.alloc(0);
  let end = start;
  if (!isSymlink(header)) {
    try {
      const r = inflateRawSync(whole.subarray(start), { maxOutputLength: Math.max(1, header.size), info: true }) as unknown as { buffer: Buffer; engine: { bytesWritten: number } };
      payload = r.buffer;
      end += r.engine.bytesWritten;
    } catch (e) {
      const msg = (e as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE' ? `more data than the declared size ${header.size}` : (e as Error).message;
      throw corrupted(checksum, msg, e);
    }
    if (payload.length !== header.size) throw corrupted(checksum, `got ${payload.length} bytes, declared size ${header.size}`);
  }
  const actual = contentHasher(header.meta).update(payload).digest('hex');
  if (actual !== checksum) throw fileChecksumMismatch(checksum, actual);
  return end === whole.length;
}

/** Check a large `.filez` by streaming it through inflate and the content hash. */
async function checkLarge(fh: fsp.FileHandle, fileSize: number, checksum: string, maxSize: number): Promise<boolean> {
  const prefix = Buffer.alloc(8);
  await fh.read(prefix, 0, 8, 0);
  const len = prefix.readUInt32BE(0);
  if (len === 0 || len > MAX_ARCHIVE_HEADER_SIZE || 8 + len > fileSize) throw corrupted(checksum, `invalid header length ${len}`);
  const v = Buffer.alloc(len);
  const { bytesRead } = await fh.read(v, 0, len, 8);
  if (bytesRead !== len) throw corrupted(checksum, 'truncated header');
  const header = headerOf(v, checksum, maxSize);
  const start = 8 + len;
  if (isSymlink(header)) {
    const actual = contentHasher(header.meta).digest('hex');
    if (actual !== checksum) throw fileChecksumMismatch(checksum, actual);
    return start === fileSize;
  }
  const hash = contentHasher(header.meta);
  let inflated = 0;
  const inflater = createInflateRaw({ chunkSize: SMALL });
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb): void {
      inflated += chunk.length;
      if (inflated > header.size) {
        cb(corrupted(checksum, `more data than the declared size ${header.size}`));
        return;
      }
      hash.update(chunk);
      cb();
    },
  });
  try {
    await pipeline(fh.createReadStream({ start, autoClose: false, highWaterMark: SMALL }), inflater, sink);
  } catch (e) {
    if (e instanceof LarchError) throw e;
    throw corrupted(checksum, (e as Error).message, e);
  }
  if (inflated !== header.size) throw corrupted(checksum, `got ${inflated} bytes, declared size ${header.size}`);
  const actual = hash.digest('hex');
  if (actual !== checksum) throw fileChecksumMismatch(checksum, actual);
  return start + inflater.bytesWritten === fileSize;
}
