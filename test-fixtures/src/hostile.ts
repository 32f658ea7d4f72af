/**
 * Raw object builders for hostile-input tests. They encode OSTree objects
 * with `@larch/gvariant` and write them straight into a repository's
 * objects/ directory under their sha256 name, bypassing every check
 * core-store performs on write — so tests can feed checkout, fsck and
 * traversal names such as "", ".", "..", "a/b", symlinks that escape the
 * checkout, wrong checksum lengths, unsorted or duplicate entries.
 *
 * Nothing here validates its input on purpose. Formats: spec/repo-format.md
 * sections 2-4 (big-endian integers inside GVariant, NUL-terminated xattr names).
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { chmod, lchown, mkdir, readFile, rename, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { deflateRawSync } from 'node:zlib';
import { Variant, bswap32, bswap64, encode, type GValue } from '@larch/gvariant';

export type RawChecksum = string | Uint8Array;

export interface RawXattr {
  name: string;
  value: Uint8Array | string;
}

export interface RawFileMeta {
  uid?: number;
  gid?: number;
  /** Full st_mode with type bits; default 0100644, or 0120777 when symlinkTarget is set. */
  mode?: number;
  symlinkTarget?: string;
  xattrs?: RawXattr[];
}

export interface RawDirTree {
  files: Array<{ name: string; checksum: RawChecksum }>;
  dirs: Array<{ name: string; treeChecksum: RawChecksum; metaChecksum: RawChecksum }>;
}

export interface RawDirMeta {
  uid?: number;
  gid?: number;
  /** Full st_mode with S_IFDIR; default 040755. */
  mode?: number;
  xattrs?: RawXattr[];
}

export interface RawCommit {
  metadata?: Array<[string, Variant]>;
  parent?: RawChecksum | null;
  subject?: string;
  body?: string;
  /** Seconds since the epoch; default 0. */
  timestamp?: bigint;
  rootTree: RawChecksum;
  rootMeta: RawChecksum;
}

const enc = new TextEncoder();

/** sha256 hex of bytes. */
export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** A checksum as the bytes OSTree stores: hex strings are decoded (any length), bytes kept as they are. */
export function checksumBytes(c: RawChecksum): Uint8Array {
  if (typeof c !== 'string') return c;
  if (!/^([0-9a-fA-F]{2})*$/.test(c)) throw new Error(`checksumBytes: not hex: ${c}`);
  return Uint8Array.from(Buffer.from(c, 'hex'));
}

function xattrValue(x: RawXattr): GValue {
  const name = new Uint8Array(Buffer.byteLength(x.name) + 1);
  name.set(enc.encode(x.name));
  return [name, typeof x.value === 'string' ? enc.encode(x.value) : x.value];
}

/** `(a(say)a(sayay))` in the order given (no sorting, no name checks). */
export function encodeDirTree(t: RawDirTree): Uint8Array {
  return encode('(a(say)a(sayay))', [
    t.files.map((f) => [f.name, checksumBytes(f.checksum)]),
    t.dirs.map((d) => [d.name, checksumBytes(d.treeChecksum), checksumBytes(d.metaChecksum)]),
  ]);
}

/** `(uuua(ayay))` with big-endian integers, xattrs in the order given. */
export function encodeDirMeta(m: RawDirMeta = {}): Uint8Array {
  return encode('(uuua(ayay))', [
    bswap32(m.uid ?? 0),
    bswap32(m.gid ?? 0),
    bswap32(m.mode ?? 0o40755),
    (m.xattrs ?? []).map(xattrValue),
  ]);
}

/** `(a{sv}aya(say)sstayay)` with a big-endian timestamp. */
export function encodeCommit(c: RawCommit): Uint8Array {
  return encode('(a{sv}aya(say)sstayay)', [
    (c.metadata ?? []).map(([k, v]) => [k, v]),
    c.parent ? checksumBytes(c.parent) : new Uint8Array(0),
    [],
    c.subject ?? '',
    c.body ?? '',
    bswap64(c.timestamp ?? 0n),
    checksumBytes(c.rootTree),
    checksumBytes(c.rootMeta),
  ]);
}

function metaMode(m: RawFileMeta): number {
  return m.mode ?? (m.symlinkTarget ? 0o120777 : 0o100644);
}

function withLengthPrefix(v: Uint8Array): Uint8Array {
  const out = new Uint8Array(8 + v.length);
  new DataView(out.buffer).setUint32(0, v.length, false);
  out.set(v, 8);
  return out;
}

/** The content-checksum input header: BE32 length, 4 zero bytes, `(uuuusa(ayay))`. */
export function encodeFileHeader(m: RawFileMeta): Uint8Array {
  return withLengthPrefix(
    encode('(uuuusa(ayay))', [
      bswap32(m.uid ?? 0),
      bswap32(m.gid ?? 0),
      bswap32(metaMode(m)),
      0,
      m.symlinkTarget ?? '',
      (m.xattrs ?? []).map(xattrValue),
    ]),
  );
}

/** Content checksum of a file object: sha256(header || content); symlinks have no content. */
export function contentChecksum(m: RawFileMeta, content: Uint8Array = new Uint8Array(0)): string {
  return createHash('sha256').update(encodeFileHeader(m)).update(m.symlinkTarget ? new Uint8Array(0) : content).digest('hex');
}

/** An archive `.filez` object: header `(tuuuusa(ayay))` then raw-deflated content. */
export function encodeArchiveFile(m: RawFileMeta, content: Uint8Array = new Uint8Array(0)): Uint8Array {
  const isLink = !!m.symlinkTarget;
  const header = withLengthPrefix(
    encode('(tuuuusa(ayay))', [
      bswap64(BigInt(isLink ? 0 : content.length)),
      bswap32(m.uid ?? 0),
      bswap32(m.gid ?? 0),
      bswap32(metaMode(m)),
      0,
      m.symlinkTarget ?? '',
      (m.xattrs ?? []).map(xattrValue),
    ]),
  );
  if (isLink) return header;
  const body = deflateRawSync(content);
  const out = new Uint8Array(header.length + body.length);
  out.set(header);
  out.set(body, header.length);
  return out;
}

/** `a{sv}` tombstone for `commit`: {"commit": <b"HEX\0">}. */
export function encodeTombstone(commit: string): Uint8Array {
  const bytes = new Uint8Array(commit.length + 1);
  bytes.set(enc.encode(commit));
  return encode('a{sv}', [['commit', new Variant('ay', bytes)]]);
}

export type RepoModeName = 'archive' | 'bare' | 'bare-user' | 'bare-user-only';

/** The repo mode from `config` ([core] mode=), with archive-z2 reported as 'archive'. */
export function repoModeOf(repo: string): RepoModeName {
  const text = readFileSync(join(repo, 'config'), 'utf8');
  const m = /^\s*mode\s*=\s*(\S+)\s*$/m.exec(text);
  const mode = m?.[1] ?? 'bare';
  if (mode === 'archive-z2' || mode === 'archive') return 'archive';
  if (mode === 'bare' || mode === 'bare-user' || mode === 'bare-user-only') return mode;
  throw new Error(`repoModeOf: unknown mode ${mode} in ${repo}/config`);
}

/** Object path inside `repo`: objects/XX/REST.EXT (content objects get .filez in archive mode). */
export function rawObjectPath(repo: string, type: string, checksum: string): string {
  const ext = type === 'file' ? (repoModeOf(repo) === 'archive' ? 'filez' : 'file') : type;
  return join(repo, 'objects', checksum.slice(0, 2), `${checksum.slice(2)}.${ext}`);
}

async function placeFile(path: string, write: (tmp: string) => Promise<void>): Promise<void> {
  await mkdir(join(path, '..'), { recursive: true });
  const tmp = `${path}.hostile-tmp`;
  await write(tmp);
  await rename(tmp, path);
}

/**
 * Writes `bytes` as a metadata object (dirtree, dirmeta, commit, commitmeta,
 * tombstone-commit) named `checksum`, by default sha256(bytes). Replaces an
 * existing object. Returns the name used.
 */
export async function writeRawObject(
  repo: string,
  type: 'dirtree' | 'dirmeta' | 'commit' | 'commitmeta' | 'tombstone-commit',
  bytes: Uint8Array,
  checksum: string = sha256Hex(bytes),
): Promise<string> {
  await placeFile(rawObjectPath(repo, type, checksum), (tmp) => writeFile(tmp, bytes, { mode: 0o644 }));
  return checksum;
}

/**
 * Writes a content object in the repo's own storage form (archive .filez,
 * bare, bare-user with the user.ostreemeta xattr via `setfattr`, or
 * bare-user-only), named by its content checksum unless `checksum` is given.
 */
export async function writeRawFile(
  repo: string,
  meta: RawFileMeta,
  content: Uint8Array | string = new Uint8Array(0),
  checksum?: string,
): Promise<string> {
  const data = typeof content === 'string' ? enc.encode(content) : content;
  const name = checksum ?? contentChecksum(meta, data);
  const path = rawObjectPath(repo, 'file', name);
  const mode = repoModeOf(repo);
  const isLink = !!meta.symlinkTarget;
  const fmode = metaMode(meta);
  await placeFile(path, async (tmp) => {
    if (mode === 'archive') {
      await writeFile(tmp, encodeArchiveFile(meta, data), { mode: 0o644 });
    } else if (mode === 'bare-user') {
      const stored = isLink ? Buffer.concat([Buffer.from(meta.symlinkTarget!), Buffer.from([0])]) : data;
      await writeFile(tmp, stored);
      await chmod(tmp, isLink ? 0o644 : (fmode & 0o775) | 0o400);
      const xattr = encode('(uuua(ayay))', [
        bswap32(meta.uid ?? 0),
        bswap32(meta.gid ?? 0),
        bswap32(fmode),
        (meta.xattrs ?? []).map(xattrValue),
      ]);
      const r = spawnSync('setfattr', ['-n', 'user.ostreemeta', '-v', `0x${Buffer.from(xattr).toString('hex')}`, tmp]);
      if (r.status !== 0) throw new Error(`setfattr failed on ${tmp}: ${r.stderr?.toString() ?? r.error}`);
    } else if (isLink) {
      await symlink(meta.symlinkTarget!, tmp);
      if (mode === 'bare') await lchown(tmp, meta.uid ?? 0, meta.gid ?? 0);
    } else {
      await writeFile(tmp, data);
      if (mode === 'bare') await lchown(tmp, meta.uid ?? 0, meta.gid ?? 0);
      await chmod(tmp, fmode & 0o7777);
    }
  });
  return name;
}

// ---------------------------------------------------------------- whole trees

export interface HostileFile {
  name: string;
  /** Regular file content (default empty). */
  content?: string | Uint8Array;
  /** Makes this entry a symlink with this target (may escape, may be absolute). */
  symlink?: string;
  /** Full st_mode; defaults as in RawFileMeta. */
  mode?: number;
  uid?: number;
  gid?: number;
  /** Reference this checksum instead of writing an object (e.g. a missing one). */
  checksum?: RawChecksum;
}

export interface HostileDir {
  files?: HostileFile[];
  dirs?: Array<{ name: string; tree: HostileDir }>;
  /** This directory's dirmeta. */
  meta?: RawDirMeta;
  /** Keep entries in the given order instead of sorting them by name bytes. */
  keepOrder?: boolean;
}

function byNameBytes<T extends { name: string }>(list: T[]): T[] {
  return [...list].sort((x, y) => Buffer.compare(Buffer.from(x.name), Buffer.from(y.name)));
}

/** Writes every object of `dir` (recursively) and returns its dirtree and dirmeta checksums. */
export async function writeHostileTree(repo: string, dir: HostileDir): Promise<{ tree: string; meta: string }> {
  const files: RawDirTree['files'] = [];
  for (const f of dir.keepOrder ? (dir.files ?? []) : byNameBytes(dir.files ?? [])) {
    const checksum =
      f.checksum ??
      (await writeRawFile(
        repo,
        { uid: f.uid, gid: f.gid, mode: f.mode, symlinkTarget: f.symlink },
        f.symlink ? '' : (f.content ?? ''),
      ));
    files.push({ name: f.name, checksum });
  }
  const dirs: RawDirTree['dirs'] = [];
  for (const d of dir.keepOrder ? (dir.dirs ?? []) : byNameBytes(dir.dirs ?? [])) {
    const sub = await writeHostileTree(repo, d.tree);
    dirs.push({ name: d.name, treeChecksum: sub.tree, metaChecksum: sub.meta });
  }
  const tree = await writeRawObject(repo, 'dirtree', encodeDirTree({ files, dirs }));
  const meta = await writeRawObject(repo, 'dirmeta', encodeDirMeta(dir.meta));
  return { tree, meta };
}

/**
 * Writes a whole hostile commit (tree objects, dirmeta, commit) and, when
 * `ref` is given, points refs/heads/REF at it (65-byte ref file, no checks).
 */
export async function writeHostileCommit(
  repo: string,
  root: HostileDir,
  opts: { ref?: string; subject?: string; timestamp?: bigint; parent?: string | null; metadata?: Array<[string, Variant]> } = {},
): Promise<{ commit: string; tree: string; meta: string }> {
  const { tree, meta } = await writeHostileTree(repo, root);
  const commit = await writeRawObject(
    repo,
    'commit',
    encodeCommit({
      rootTree: tree,
      rootMeta: meta,
      subject: opts.subject ?? 'hostile',
      timestamp: opts.timestamp ?? 0n,
      parent: opts.parent ?? null,
      metadata: opts.metadata,
    }),
  );
  if (opts.ref) await setRawRef(repo, opts.ref, commit);
  return { commit, tree, meta };
}

/** Writes refs/heads/NAME = checksum + "\n" without validation. */
export async function setRawRef(repo: string, name: string, checksum: string): Promise<void> {
  const path = join(repo, 'refs', 'heads', name);
  await placeFile(path, (tmp) => writeFile(tmp, `${checksum}\n`));
}

/** Reads refs/heads/NAME (trimmed) or null when absent. */
export async function readRawRef(repo: string, name: string): Promise<string | null> {
  try {
    return (await readFile(join(repo, 'refs', 'heads', name), 'utf8')).trim();
  } catch {
    return null;
  }
}
