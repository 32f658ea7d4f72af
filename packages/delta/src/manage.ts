/**
 * Listing, describing, deleting and indexing the static deltas of a repository, and applying a
 * delta from a directory (`apply-offline`).
 *
 * Delta index files (spec section 8.2): `delta-indexes/XX/REST.index`, an `a{sv}` with one key
 * `ostree.static-deltas` mapping each delta name that ends at that commit to the SHA-256 of its
 * superblock. Clients that see `ostree.summary.indexed-deltas` in a summary look deltas up there,
 * so every generated delta refreshes the index of its target.
 */
import { createHash } from 'node:crypto';
import { constants as fsc, promises as fsp } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import {
  DELTA_INDEXES_DIR,
  LarchError,
  deltaIndexRelPath,
  deltaName,
  deltaRelDir,
  deltaRelPath,
  listDeltaDirs,
  parseDeltaIndexName,
  type Checksum,
  type Repo,
} from '@larch/core-store';
import { Variant, decode, encode } from '@larch/gvariant';
import { applySuperblock, type ApplyOptions, type ApplyResult } from './apply.js';
import { maxStoredPartSize, unpackPart, MAX_PART_BODY, type PartSource } from './part-reader.js';
import { decodePartBody, decodeSuperblock, inlinePartBytes, superblockFigures, type PartHeader, type Superblock } from './format.js';
import { parseDeltaName } from './names.js';
import { checkSuperblockPolicy, verifySuperblock, type SuperblockVerification, type SuperblockVerifier } from './sign.js';
import { OP_NAMES, OpReader } from './ops.js';

/** Largest superblock file read (inline parts can make it big). */
export const MAX_SUPERBLOCK_SIZE = 1024 * 1024 * 1024;

export interface DeltaEntry {
  name: string;
  from: Checksum | null;
  to: Checksum;
  /** Absolute path of the delta directory. */
  dir: string;
}

/** Every delta directory of `repo` that holds a superblock, sorted by name. No lock; read-only. */
export async function listDeltas(repo: Repo): Promise<DeltaEntry[]> {
  const out = (await listDeltaDirs(repo)).map((d) => ({ name: deltaName(d.from, d.to), from: d.from, to: d.to, dir: d.dir }));
  return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** Read a file of at most `max` bytes, refusing symlinks. */
export async function readBounded(path: string, max: number, what: string): Promise<Buffer> {
  let fh: fsp.FileHandle;
  try {
    fh = await fsp.open(path, fsc.O_RDONLY | fsc.O_NOFOLLOW);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new LarchError('OBJECT_MISSING', `No such file ${path} (${what})`, { path });
    throw new LarchError('IO_ERROR', `Opening ${path}: ${(e as Error).message}`, { path }, { cause: e });
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new LarchError('OBJECT_CORRUPTED', `${path} (${what}) is not a regular file`, { path });
    if (st.size > max) throw new LarchError('LIMIT_EXCEEDED', `${path} (${what}) is ${st.size} bytes, larger than the limit of ${max}`, { path, size: st.size, limit: max });
    const buf = Buffer.alloc(st.size);
    let off = 0;
    while (off < st.size) {
      const { bytesRead } = await fh.read(buf, off, st.size - off, off);
      if (bytesRead === 0) break;
      off += bytesRead;
    }
    return off === st.size ? buf : buf.subarray(0, off);
  } finally {
    await fh.close();
  }
}

/** Locate a delta by name in `repo` and parse its superblock. */
export async function readDelta(repo: Repo, name: string): Promise<{ entry: DeltaEntry; superblock: Superblock; bytes: Buffer }> {
  const { from, to } = parseDeltaName(name);
  const dir = join(repo.path, deltaRelDir(from, to));
  let bytes: Buffer;
  try {
    bytes = await readBounded(join(dir, 'superblock'), MAX_SUPERBLOCK_SIZE, 'static delta superblock');
  } catch (e) {
    if (e instanceof LarchError && e.code === 'OBJECT_MISSING') throw new LarchError('OBJECT_MISSING', `Static delta '${name}' not found`, { name });
    throw e;
  }
  return { entry: { name, from, to, dir }, superblock: decodeSuperblock(bytes), bytes };
}

/** Parts read from files `0`, `1`, … in a directory, each bounded by its header's size. */
export function directoryPartSource(dir: string): PartSource {
  return {
    async readPart(i: number, h: PartHeader): Promise<Uint8Array> {
      const b = await readBounded(join(dir, String(i)), h.size, `static delta part ${i}`).catch((e: unknown) => {
        if (e instanceof LarchError && e.code === 'LIMIT_EXCEEDED') throw new LarchError('OBJECT_CORRUPTED', `Static delta part ${i} is larger than its declared size ${h.size}`, { part: i });
        throw e;
      });
      return b;
    },
  };
}

export interface PartDescription {
  index: number;
  nobjects: number;
  /** Stored and uncompressed size from the part's header (as stored: see DeltaDescription). */
  size: bigint;
  usize: bigint;
  inline: boolean;
  nmodes?: number;
  nxattrs?: number;
  blobsize?: number;
  opsize?: number;
  ops?: Record<string, number>;
}

export interface DeltaDescription {
  name: string;
  signed: boolean;
  from: Checksum | null;
  to: Checksum;
  /** The byte order of the superblock's numbers, as ostree reports it (see Superblock.endiannessSource). */
  endianness: 'little' | 'big' | 'invalid';
  /** Guessed from the part sizes of a delta without `ostree.endianness`. */
  endiannessHeuristic: boolean;
  timestamp: bigint;
  parents: number;
  fallbacks: number;
  /** The fallback objects, in superblock order. */
  fallbackObjects: Checksum[];
  /**
   * Sizes are 64-bit values summed as ostree sums them (modulo 2^64): a legacy delta whose byte
   * order is guessed wrong has absurd ones, which ostree prints too.
   */
  fallbackSize: bigint;
  fallbackUsize: bigint;
  parts: PartDescription[];
  partSize: bigint;
  partUsize: bigint;
}

const sum64 = (xs: bigint[]): bigint => xs.reduce((a, b) => BigInt.asUintN(64, a + b), 0n);

/** A missing file, in the words ostree's `glnx_openat_rdonly` uses. */
async function readForShow(path: string, shown: string, max: number, what: string): Promise<Buffer> {
  try {
    return await readBounded(path, max, what);
  } catch (e) {
    if (e instanceof LarchError && e.code === 'OBJECT_MISSING') throw new LarchError('OBJECT_MISSING', `openat(${shown}): No such file or directory`, { path });
    throw e;
  }
}

/**
 * Describe a delta like `ostree static-delta show`. `name` is a delta name (`TO` or `FROM-TO`)
 * in `repo`, or, when it holds a `/`, the path of a superblock file (its parts are read beside it;
 * ostree looks for them in the repository). As ostree does, part checksums are not checked (each
 * part is only decoded, within the usual bounds), and sizes are reported as stored. Parts inline
 * in the superblock are described too (ostree 2022.7 fails on them). No lock; read-only.
 */
export async function showDelta(repo: Repo, name: string): Promise<DeltaDescription> {
  let sbPath: string;
  let shown: string;
  if (name.includes('/')) {
    sbPath = resolve(name);
    shown = name;
  } else {
    const { from, to } = parseDeltaName(name);
    shown = deltaRelPath(from, to, 'superblock');
    sbPath = join(repo.path, shown);
  }
  const bytes = await readForShow(sbPath, shown, MAX_SUPERBLOCK_SIZE, 'static delta superblock');
  const sb = decodeSuperblock(bytes, { lenientSizes: true });
  const figures = superblockFigures(bytes);
  const dir = dirname(sbPath);
  const parts: PartDescription[] = [];
  for (let i = 0; i < sb.parts.length; i++) {
    const h = sb.parts[i];
    const rel = deltaRelPath(sb.from, sb.to, i);
    const iv = sb.metadata.find(([k]) => k === rel)?.[1];
    const stored = iv !== undefined ? inlinePartBytes(iv, `part ${i}`) : await readForShow(join(dir, String(i)), rel, maxStoredPartSize(), `static delta part ${i}`);
    // Sizes as stored may be anything (see above): decode within the largest bound instead.
    const bounded = { ...h, size: Math.min(h.size, maxStoredPartSize()), usize: Math.min(h.usize, MAX_PART_BODY) };
    const body = decodePartBody(await unpackPart(stored, bounded, `part ${i}`), `part ${i}`);
    const ops: Record<string, number> = { openspliceclose: 0, open: 0, write: 0, setread: 0, unsetread: 0, close: 0, bspatch: 0 };
    const r = new OpReader(body.ops, `part ${i}`);
    const argc: Record<number, number> = { 0x53: -1, 0x6f: 3, 0x77: 2, 0x72: 1, 0x52: 0, 0x63: 0, 0x42: 2 };
    while (!r.done) {
      const op = r.byte();
      const n = OP_NAMES[op];
      if (n === undefined) throw new LarchError('OBJECT_CORRUPTED', `Unknown opcode ${op} in static delta part ${i}`);
      ops[n]++;
      let args = argc[op];
      if (args === -1) args = h.objects[ops.openspliceclose + ops.close - 1]?.type === 'file' ? 4 : 2;
      for (let k = 0; k < args; k++) r.varint();
    }
    const { size, usize } = figures.parts[i];
    parts.push({ index: i, nobjects: h.objects.length, size, usize, inline: iv !== undefined, nmodes: body.modes.length, nxattrs: body.xattrs.length, blobsize: body.payload.length, opsize: body.ops.length, ops });
  }
  return {
    name,
    signed: sb.signed,
    from: sb.from,
    to: sb.to,
    endianness: sb.endiannessSource === 'invalid' ? 'invalid' : sb.endianness === 'l' ? 'little' : 'big',
    endiannessHeuristic: sb.endiannessSource === 'heuristic',
    timestamp: sb.timestamp,
    parents: figures.parents,
    fallbacks: sb.fallbacks.length,
    fallbackObjects: sb.fallbacks.map((f) => f.checksum),
    fallbackSize: sum64(figures.fallbacks.map((f) => f.size)),
    fallbackUsize: sum64(figures.fallbacks.map((f) => f.usize)),
    parts,
    partSize: sum64(figures.parts.map((p) => p.size)),
    partUsize: sum64(figures.parts.map((p) => p.usize)),
  };
}

/**
 * Delete a delta directory and refresh the index of its target. Locking: exclusive. Throws
 * OBJECT_MISSING when there is no such delta.
 */
export async function deleteDelta(repo: Repo, name: string): Promise<void> {
  const { from, to } = parseDeltaName(name);
  await repo.withLock('exclusive', async () => {
    const dir = join(repo.path, deltaRelDir(from, to));
    try {
      await fsp.access(dir);
    } catch {
      throw new LarchError('OBJECT_MISSING', `Can't find delta ${name}`, { name });
    }
    // Rename first so a concurrent reader never sees a directory with some parts gone.
    const doomed = join(repo.tmpPath, `larch-delta-rm-${process.pid}-${Date.now()}`);
    await fsp.rename(dir, doomed);
    await fsp.rm(doomed, { recursive: true, force: true });
    await reindexDeltas(repo, { to });
  });
}

async function writeIfChanged(path: string, bytes: Uint8Array): Promise<void> {
  try {
    const old = await fsp.readFile(path);
    if (Buffer.compare(old, bytes) === 0) return;
  } catch {
    // absent
  }
  await fsp.mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}`;
  await fsp.writeFile(tmp, bytes, { mode: 0o644 });
  await fsp.rename(tmp, path);
}

/**
 * Regenerate `delta-indexes/` (all of it, or only for target `to`) and set `[core]
 * indexed-deltas=true` in the repo config, as `ostree summary -u` does. Index files whose bytes
 * do not change are left alone; stale ones are removed.
 */
export async function reindexDeltas(repo: Repo, opts: { to?: Checksum } = {}): Promise<void> {
  const deltas = await listDeltas(repo);
  const byTo = new Map<Checksum, Array<[string, Variant]>>();
  for (const d of deltas) {
    if (opts.to !== undefined && d.to !== opts.to) continue;
    const sb = await fsp.readFile(join(d.dir, 'superblock'));
    const list = byTo.get(d.to) ?? [];
    list.push([d.name, new Variant('ay', createHash('sha256').update(sb).digest())]);
    byTo.set(d.to, list);
  }
  const wanted = new Set<string>();
  for (const [to, list] of byTo) {
    list.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    const rel = deltaIndexRelPath(to);
    wanted.add(rel);
    await writeIfChanged(join(repo.path, rel), encode('a{sv}', [['ostree.static-deltas', new Variant('a{sv}', list)]]));
  }
  const root = join(repo.path, DELTA_INDEXES_DIR);
  if (opts.to !== undefined) {
    if (!byTo.has(opts.to)) await fsp.rm(join(repo.path, deltaIndexRelPath(opts.to)), { force: true });
  } else {
    for (const pre of await fsp.readdir(root).catch(() => [] as string[])) {
      for (const f of await fsp.readdir(join(root, pre)).catch(() => [] as string[])) {
        if (!wanted.has(`${DELTA_INDEXES_DIR}/${pre}/${f}`) && f.endsWith('.index')) await fsp.rm(join(root, pre, f), { force: true });
      }
    }
  }
  if (!repo.config.getBoolean('core', 'indexed-deltas', false)) {
    repo.config.set('core', 'indexed-deltas', true);
    await repo.saveConfig();
  }
}

/** Read a delta index file's entries (name -> superblock sha256 hex). */
export function parseDeltaIndex(bytes: Uint8Array): Map<string, string> {
  const out = new Map<string, string>();
  let v: Array<[string, Variant]>;
  try {
    v = decode('a{sv}', bytes) as Array<[string, Variant]>;
  } catch (e) {
    throw new LarchError('OBJECT_CORRUPTED', `Invalid static delta index: ${(e as Error).message}`, {}, { cause: e });
  }
  const d = v.find(([k]) => k === 'ostree.static-deltas')?.[1];
  if (d && d.type === 'a{sv}') {
    for (const [name, val] of d.value as Array<[string, Variant]>) {
      if (val.type === 'ay' && (val.value as Uint8Array).length === 32) out.set(name, Buffer.from(val.value as Uint8Array).toString('hex'));
    }
  }
  return out;
}

/** The superblock file of a delta given as its directory or as the superblock file itself. */
async function superblockPathOf(path: string): Promise<string> {
  const abs = resolve(path);
  const st = await fsp.stat(abs).catch((e: unknown) => {
    throw new LarchError('OBJECT_MISSING', `No such static delta ${abs}: ${(e as Error).message}`, { path: abs });
  });
  return st.isDirectory() ? join(abs, 'superblock') : abs;
}

/**
 * `static-delta apply-offline`: apply the delta at `path` (its directory, or its superblock file
 * with parts `0`, `1`, … beside it) to `repo`. Parts are verified against their checksums; nothing
 * is published unless every part applies; no ref moves. See {@link applySuperblock}.
 */
export async function applyOffline(repo: Repo, path: string, opts: ApplyOptions & { verifier?: SuperblockVerifier } = {}): Promise<ApplyResult & { from: Checksum | null; to: Checksum }> {
  const sbPath = await superblockPathOf(path);
  const bytes = await readBounded(sbPath, MAX_SUPERBLOCK_SIZE, 'static delta superblock');
  const sb = decodeSuperblock(bytes);
  await checkSuperblockPolicy(repo, sb, opts.verifier);
  const res = await applySuperblock(repo, sb, directoryPartSource(dirname(sbPath)), { publish: 'at-end', ...opts });
  return { ...res, from: sb.from, to: sb.to };
}

/**
 * `static-delta indexes`: the TO commits that have a delta index (`delta-indexes/XX/REST.index`),
 * sorted. Entries with other names are skipped, as ostree skips them. Locking: none.
 */
export async function listDeltaIndexes(repo: Repo): Promise<Checksum[]> {
  const root = join(repo.path, DELTA_INDEXES_DIR);
  const out: Checksum[] = [];
  for (const pre of await fsp.readdir(root, { withFileTypes: true }).catch(() => [])) {
    if (!pre.isDirectory() || pre.name.length !== 2) continue;
    for (const f of await fsp.readdir(join(root, pre.name), { withFileTypes: true })) {
      if (!f.isFile() || !f.name.endsWith('.index') || f.name.length !== 41 + '.index'.length) continue;
      const to = parseDeltaIndexName(pre.name, f.name);
      if (to !== null) out.push(to);
    }
  }
  return out.sort();
}

/**
 * `static-delta verify`: check the signatures of a delta's superblock under `verifier`'s key.
 * `delta` is a delta name (`TO` or `FROM-TO`, looked up in `repo`) or, when it holds a `/`, the
 * path of a superblock file or of the delta's directory. Throws as {@link verifySuperblock} does
 * when the delta is not signed or not signed for that key.
 */
export async function verifyDelta(repo: Repo, delta: string, verifier: SuperblockVerifier): Promise<SuperblockVerification> {
  let sbPath: string;
  if (delta.includes('/')) {
    sbPath = await superblockPathOf(delta);
  } else {
    const { from, to } = parseDeltaName(delta);
    sbPath = join(repo.path, deltaRelPath(from, to, 'superblock'));
  }
  const bytes = await readBounded(sbPath, MAX_SUPERBLOCK_SIZE, 'static delta superblock');
  return verifySuperblock(decodeSuperblock(bytes), verifier);
}
