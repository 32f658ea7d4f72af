/**
 * `ostree commit --tree=tar=FILE`: overlay a tar archive (plain or gzip, from a file or `-` for
 * standard input) into the commit's tree, as ostree's libarchive import does.
 *
 * The archive is read as a stream, one 512-byte record at a time: a member's payload goes straight
 * from the stream into its staged content object (small payloads are gathered first, large ones
 * are written a chunk at a time), so no archive or member is ever held whole in memory.
 * Understood: ustar (with its name prefix), GNU long names and long link names, pax extended
 * headers (path, linkpath, size, uid, gid, SCHILY.xattr.*); sizes and ids in octal or base-256.
 * Entries: regular files, symlinks, directories, hard links (resolved when the archive ends, to
 * the checksum of their target, as ostree does). Devices, FIFOs and anything else fail with
 * ostree's `Unsupported file type for path "PATH"`. Paths are made relative (`/`, `./` and a
 * leading `/..` removed); a `..` or empty-named component fails. A member's parent directory must
 * already be in the tree unless `autocreateParents` (then it is made 0755, owned like the member).
 * The commit's modifier (owner, statoverride, skip list, canonical permissions) applies to each
 * member by `/path`, as to a directory source.
 */
import { createReadStream } from 'node:fs';
import { PassThrough, Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { LarchError, ioError } from './errors.js';
import type { MutableTree } from './mutable-tree.js';
import type { Repo } from './repo.js';
import type { StagingDir } from './repo-staging.js';
import { serializeDirMeta } from './objects/dirmeta.js';
import { stageContent } from './objects/content-io.js';
import { S_IFDIR, S_IFLNK, S_IFMT, S_IFREG, type Checksum, type FileMeta, type Xattr } from './types.js';

export interface TarImportContext {
  repo: Repo;
  stage: StagingDir;
  modify: (rel: string, mode: number, uid: number, gid: number) => { mode: number; uid: number; gid: number };
  withXattrs: boolean;
  skip: Set<string>;
  matched: Set<string>;
  claim: (type: 'file', checksum: Checksum) => boolean;
  record: (tmp: string, type: 'file', checksum: Checksum, written: number, unpacked: number) => void;
  countContent: () => void;
  sizeOfFile: (checksum: Checksum, unpacked: number) => void;
  writeDirMeta: (bytes: Uint8Array) => Checksum;
  autocreateParents?: boolean;
  signal?: AbortSignal;
}

const BLOCK = 512;
const DEFAULT_DIRMODE = S_IFDIR | 0o755;

/** Reads exact byte counts from a stream of chunks. */
class ByteReader {
  private chunks: Buffer[] = [];
  private have = 0;
  private done = false;
  private readonly it: AsyncIterator<Buffer>;
  constructor(source: AsyncIterable<Buffer>) {
    this.it = source[Symbol.asyncIterator]();
  }

  private async fill(n: number): Promise<void> {
    while (this.have < n && !this.done) {
      const r = await this.it.next();
      if (r.done) this.done = true;
      else {
        this.chunks.push(r.value);
        this.have += r.value.length;
      }
    }
  }

  /** Up to `n` bytes (fewer only at the end of the stream). */
  async read(n: number): Promise<Buffer> {
    await this.fill(n);
    const take = Math.min(n, this.have);
    const all = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks);
    const out = all.subarray(0, take);
    const rest = all.subarray(take);
    this.chunks = rest.length ? [rest] : [];
    this.have = rest.length;
    return out;
  }

  /** The next piece of at most `max` bytes, without gathering more than one chunk. */
  async readSome(max: number): Promise<Buffer> {
    await this.fill(1);
    if (this.have === 0) return Buffer.alloc(0);
    return this.read(Math.min(max, this.chunks[0].length));
  }

  async exact(n: number, what: string): Promise<Buffer> {
    const b = await this.read(n);
    if (b.length !== n) throw new LarchError('INVALID_ARGUMENT', `Truncated tar archive: ${what}`, {});
    return b;
  }
}

function cstring(b: Buffer): string {
  const nul = b.indexOf(0);
  return (nul < 0 ? b : b.subarray(0, nul)).toString('utf8');
}

/** A numeric header field: octal text, or base-256 when the top bit of the first byte is set. */
function num(b: Buffer, what: string): number {
  if (b[0] & 0x80) {
    let v = BigInt(b[0] & 0x7f);
    for (let i = 1; i < b.length; i++) v = (v << 8n) | BigInt(b[i]);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new LarchError('INVALID_ARGUMENT', `Invalid tar header: ${what} too large`, {});
    return Number(v);
  }
  const s = cstring(b).trim();
  if (s === '') return 0;
  if (!/^[0-7]+$/.test(s)) throw new LarchError('INVALID_ARGUMENT', `Invalid tar header: ${what} '${s}'`, {});
  return parseInt(s, 8);
}

/** pax records: "LEN KEY=VALUE\n" each. */
function parsePax(b: Buffer): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  let off = 0;
  while (off < b.length) {
    const sp = b.indexOf(0x20, off);
    if (sp < 0) break;
    const len = parseInt(b.subarray(off, sp).toString('ascii'), 10);
    if (!Number.isSafeInteger(len) || len <= sp - off || off + len > b.length) throw new LarchError('INVALID_ARGUMENT', 'Invalid tar pax header', {});
    const rec = b.subarray(sp + 1, off + len - 1);
    const eq = rec.indexOf(0x3d);
    if (eq > 0) out.set(rec.subarray(0, eq).toString('utf8'), Buffer.from(rec.subarray(eq + 1)));
    off += len;
  }
  return out;
}

/** As ostree's path_relative: strip leading `/` (and `/..`), `./` and empty components; `.` is the root. */
function relativePath(p: string): string {
  let s = p;
  for (;;) {
    if (s.startsWith('/')) {
      s = s.slice(1);
      if (s.startsWith('../')) s = s.slice(2);
    } else if (s.startsWith('./')) s = s.slice(2);
    else break;
  }
  if (s === '.') s = '';
  s = s.replace(/\/+$/, '');
  const parts = s === '' ? [] : s.split('/');
  for (const c of parts) {
    if (c === '' || c === '.' || c === '..') throw new LarchError('INVALID_ARGUMENT', `While making relative path "${s}": Invalid path component '${c}'`, { path: p });
  }
  return parts.join('/');
}

/** The archive as a stream of bytes, gunzipped when it starts with the gzip magic. */
async function openArchive(path: string): Promise<AsyncIterable<Buffer>> {
  const raw: Readable = path === '-' ? process.stdin : createReadStream(path);
  const opened = new Promise<void>((res, rej) => {
    if (path === '-') res();
    raw.once('open', () => res());
    raw.once('error', rej);
  });
  try {
    await opened;
  } catch (e) {
    throw ioError(e, 'Opening', path);
  }
  const it = raw[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  const first = await it.next().catch((e: unknown) => {
    throw ioError(e, 'Reading', path);
  });
  const rest = async function* (): AsyncGenerator<Buffer> {
    if (!first.done) yield first.value;
    for (;;) {
      const r = await it.next();
      if (r.done) return;
      yield r.value;
    }
  };
  if (!first.done && first.value.length >= 2 && first.value[0] === 0x1f && first.value[1] === 0x8b) {
    const gunzip = createGunzip();
    Readable.from(rest()).on('error', (e) => gunzip.destroy(e)).pipe(gunzip);
    return gunzip;
  }
  return rest();
}

/** A member of the archive: its header with GNU long names and pax records applied. */
interface Member {
  /** Relative path (`''` for the root). */
  rel: string;
  /** The typeflag character. */
  type: string;
  /** S_IFREG, S_IFLNK or S_IFDIR. */
  fmt: number;
  /** Permission bits. */
  perm: number;
  uid: number;
  gid: number;
  size: number;
  linkname: string;
  xattrs: Xattr[];
}

/** `n` rounded up to whole records. */
function padded(n: number): number {
  return Math.ceil(n / BLOCK) * BLOCK;
}

/**
 * The next member of the archive `path`, reading and applying the GNU long name (`L`), long link
 * (`K`) and pax (`x`; global `g` ignored) records before it; null at the end of the archive.
 */
async function nextMember(reader: ByteReader, path: string): Promise<Member | null> {
  let longName: string | null = null;
  let longLink: string | null = null;
  let pax: Map<string, Buffer> | null = null;
  for (;;) {
    const h = await reader.read(BLOCK);
    if (h.length === 0) return null;
    if (h.length < BLOCK) throw new LarchError('INVALID_ARGUMENT', `Truncated tar archive: ${path}`, {});
    if (h.every((b) => b === 0)) return null;
    let sum = 0;
    for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : h[i];
    if (num(h.subarray(148, 156), 'checksum') !== sum) throw new LarchError('INVALID_ARGUMENT', `Invalid tar header checksum in ${path}`, {});
    const type = String.fromCharCode(h[156] || 0x30);
    let size = num(h.subarray(124, 136), 'size');
    if (type === 'L' || type === 'K' || type === 'x' || type === 'g') {
      if (size > 16 * 1024 * 1024) throw new LarchError('INVALID_ARGUMENT', `Tar extended header too large in ${path}`, {});
      const data = (await reader.exact(padded(size), 'extended header')).subarray(0, size);
      if (type === 'L') longName = cstring(data);
      else if (type === 'K') longLink = cstring(data);
      else if (type === 'x') pax = parsePax(data);
      continue;
    }
    const magicUstar = h.subarray(257, 262).toString('latin1') === 'ustar';
    let name = cstring(h.subarray(0, 100));
    if (magicUstar && h[345] !== 0) name = `${cstring(h.subarray(345, 500))}/${name}`;
    let linkname = cstring(h.subarray(157, 257));
    let uid = num(h.subarray(108, 116), 'uid');
    let gid = num(h.subarray(116, 124), 'gid');
    const xattrs: Xattr[] = [];
    if (longName !== null) name = longName;
    if (longLink !== null) linkname = longLink;
    if (pax !== null) {
      const p = pax;
      if (p.has('path')) name = p.get('path')!.toString('utf8');
      if (p.has('linkpath')) linkname = p.get('linkpath')!.toString('utf8');
      if (p.has('size')) size = Number(p.get('size')!.toString('ascii'));
      if (p.has('uid')) uid = Number(p.get('uid')!.toString('ascii'));
      if (p.has('gid')) gid = Number(p.get('gid')!.toString('ascii'));
      for (const [k, v] of p) if (k.startsWith('SCHILY.xattr.')) xattrs.push({ name: k.slice('SCHILY.xattr.'.length), value: v });
      if (!Number.isSafeInteger(size) || size < 0) throw new LarchError('INVALID_ARGUMENT', `Invalid tar pax size in ${path}`, {});
    }
    xattrs.sort((a, b) => Buffer.compare(Buffer.from(a.name), Buffer.from(b.name)));
    const perm = num(h.subarray(100, 108), 'mode') & 0o7777;
    const rel = relativePath(name);
    let fmt: number;
    if (type === '0' || type === '7' || type === '1') fmt = S_IFREG;
    else if (type === '2') fmt = S_IFLNK;
    else if (type === '5') fmt = S_IFDIR;
    else throw new LarchError('UNSUPPORTED_FILE', `Unsupported file type for path "${rel}"`, { path: rel });
    return { rel, type, fmt, perm, uid, gid, size, linkname, xattrs };
  }
}

/** Read past the payload of a member that is not stored (a directory, a skipped path, a hard link). */
async function skipPayload(reader: ByteReader, m: Member): Promise<void> {
  const hasPayload = m.fmt === S_IFREG && m.type !== '1';
  let left = hasPayload ? padded(m.size) : m.type === '1' ? padded(m.size) : 0;
  while (left > 0) {
    const piece = await reader.readSome(left);
    if (piece.length === 0) throw new LarchError('INVALID_ARGUMENT', `Truncated tar archive: ${m.rel}`, {});
    left -= piece.length;
  }
}

/**
 * The directory `rel` of the tree. When it is missing and `autocreateParents` is set, the root
 * and every directory down to it are (re)made 0755 owned like the member, as ostree does; else
 * the member fails.
 */
async function lookupDir(mtree: MutableTree, ctx: TarImportContext, rel: string, uid: number, gid: number): Promise<MutableTree> {
  const parts = rel === '' ? [] : rel.split('/');
  let t = mtree;
  let found = true;
  for (const c of parts) {
    await t.load(ctx.repo);
    const next = t.dirs.get(c);
    if (next === undefined) {
      found = false;
      break;
    }
    t = next;
  }
  if (found) return t;
  if (!ctx.autocreateParents) throw new LarchError('INVALID_ARGUMENT', `No such file or directory: ${rel}`, { path: rel });
  const meta = ctx.writeDirMeta(serializeDirMeta({ uid, gid, mode: DEFAULT_DIRMODE, xattrs: [] }));
  t = mtree;
  t.setMeta(meta);
  for (const c of parts) {
    await t.load(ctx.repo);
    t = t.ensureDir(c);
    t.setMeta(meta);
  }
  return t;
}

/** Stage the member's content object straight from the archive stream (unless present) and return its checksum. */
async function storeFile(reader: ByteReader, path: string, ctx: TarImportContext, e: Member, meta: FileMeta): Promise<Checksum> {
  const tmp = ctx.stage.newTmpPath();
  const isLink = (meta.mode & S_IFMT) === S_IFLNK;
  let payload: Readable | null = null;
  if (!isLink) {
    let left = e.size;
    const body = new PassThrough();
    payload = body;
    void (async () => {
      try {
        while (left > 0) {
          const piece = await reader.readSome(Math.min(left, 1024 * 1024));
          if (piece.length === 0) throw new LarchError('INVALID_ARGUMENT', `Truncated tar archive: ${e.rel}`, {});
          left -= piece.length;
          if (!body.write(Buffer.from(piece))) await new Promise<void>((r) => body.once('drain', r));
        }
        body.end();
      } catch (err) {
        body.destroy(err as Error);
      }
    })();
  }
  const r = await stageContent({ mode: ctx.repo.mode, meta, size: isLink ? 0 : e.size, payload, tmpPath: tmp, zlibLevel: ctx.repo.zlibLevel, what: `Reading ${e.rel} in ${path}` });
  ctx.sizeOfFile(r.checksum, isLink ? Buffer.byteLength(meta.symlinkTarget) : e.size);
  ctx.countContent();
  if (ctx.claim('file', r.checksum)) ctx.record(tmp, 'file', r.checksum, r.written, isLink ? Buffer.byteLength(meta.symlinkTarget) : e.size);
  else await import('node:fs/promises').then((f) => f.rm(tmp, { force: true }));
  return r.checksum;
}

/** Hard links take the content object of their target, which came earlier in the archive. */
async function resolveHardlinks(mtree: MutableTree, ctx: TarImportContext, hardlinks: Array<{ parent: MutableTree; name: string; target: string }>): Promise<void> {
  for (const hl of hardlinks) {
    const slash = hl.target.lastIndexOf('/');
    let dir: MutableTree = mtree;
    for (const c of slash < 0 ? [] : hl.target.slice(0, slash).split('/')) {
      await dir.load(ctx.repo);
      const next = dir.dirs.get(c);
      if (next === undefined) throw new LarchError('INVALID_ARGUMENT', `ostree-tar: Processing deferred hardlink ${hl.target}: No such file or directory: ${c}`, {});
      dir = next;
    }
    await dir.load(ctx.repo);
    const name = slash < 0 ? hl.target : hl.target.slice(slash + 1);
    if (dir.dirs.has(name)) throw new LarchError('INVALID_ARGUMENT', `Expected hardlink file target at "${hl.target}" but found a directory`, {});
    const checksum = dir.files.get(name);
    if (checksum === undefined) throw new LarchError('INVALID_ARGUMENT', `ostree-tar: Processing deferred hardlink ${hl.target}: No such file or directory: ${name}`, {});
    hl.parent.replaceFile(hl.name, checksum);
  }
}

/** Overlay the tar archive at `path` into `mtree`. */
export async function commitTar(path: string, mtree: MutableTree, ctx: TarImportContext): Promise<void> {
  const reader = new ByteReader(await openArchive(path));
  const hardlinks: Array<{ parent: MutableTree; name: string; target: string }> = [];
  for (;;) {
    if (ctx.signal?.aborted) throw new LarchError('ABORTED', 'Commit aborted', {});
    const e = await nextMember(reader, path);
    if (e === null) break;
    const { rel, fmt } = e;
    const abs = `/${rel}`;
    if (ctx.skip.has(abs)) {
      ctx.matched.add(abs);
      await skipPayload(reader, e);
      continue;
    }
    const m = ctx.modify(rel === '' ? '/' : abs, fmt | e.perm, e.uid, e.gid);
    const slash = rel.lastIndexOf('/');
    const parentRel = rel === '' ? '' : slash < 0 ? '' : rel.slice(0, slash);
    const base = slash < 0 ? rel : rel.slice(slash + 1);
    const xa = ctx.withXattrs ? e.xattrs : [];
    if (fmt === S_IFDIR) {
      await skipPayload(reader, e);
      const dm = ctx.writeDirMeta(serializeDirMeta({ uid: m.uid, gid: m.gid, mode: m.mode, xattrs: xa }));
      if (rel === '') mtree.setMeta(dm);
      else {
        const parent = await lookupDir(mtree, ctx, parentRel, e.uid, e.gid);
        await parent.load(ctx.repo);
        const d = parent.ensureDir(base);
        d.setMeta(dm);
      }
      continue;
    }
    if (rel === '') throw new LarchError('INVALID_ARGUMENT', `Invalid tar member: the root is not a directory in ${path}`, {});
    const parent = await lookupDir(mtree, ctx, parentRel, e.uid, e.gid);
    await parent.load(ctx.repo);
    if (e.type === '1' && e.size === 0) {
      hardlinks.push({ parent, name: base, target: relativePath(e.linkname) });
      continue;
    }
    const meta: FileMeta = { uid: m.uid, gid: m.gid, mode: m.mode, symlinkTarget: fmt === S_IFLNK ? e.linkname : '', xattrs: xa };
    const checksum = await storeFile(reader, path, ctx, e, meta);
    const pad = padded(e.size) - e.size;
    if (fmt === S_IFREG && pad > 0) await reader.exact(pad, rel);
    parent.replaceFile(base, checksum);
  }

  // An archive without an entry for its root gets a 0755 root owned by 0:0 (with the modifier applied).
  if (ctx.autocreateParents && mtree.meta === null) {
    const m = ctx.modify('/', DEFAULT_DIRMODE, 0, 0);
    mtree.setMeta(ctx.writeDirMeta(serializeDirMeta({ uid: m.uid, gid: m.gid, mode: m.mode, xattrs: [] })));
  }
  await resolveHardlinks(mtree, ctx, hardlinks);
}
