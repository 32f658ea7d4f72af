/**
 * The static delta container formats (spec static-deltas.md sections 2-4 and 6): superblock,
 * part headers, fallback entries, the `(yay)` part wrapper and the part body.
 *
 * Decoding treats every byte as hostile: lengths of checksums, object lists, versions, the
 * compression byte and the commit embedded in the superblock are all checked here, before any
 * consumer acts on them. Errors are LarchError OBJECT_CORRUPTED with a message that names the
 * field at fault.
 */
import { createHash } from 'node:crypto';
import { COMMIT_TYPE, LarchError, type Checksum, type ObjectType, type Xattr } from '@larch/core-store';
import { Variant, bswap32, bswap64, decode, encode, type GValue } from '@larch/gvariant';

export const SUPERBLOCK_TYPE = `(a{sv}tayay${COMMIT_TYPE}aya(uayttay)a(yaytt))`;
export const SIGNED_SUPERBLOCK_TYPE = '(taya{sv})';
export const PART_BODY_TYPE = '(a(uuu)aa(ayay)ayay)';
/** `OSTSGNDT` read as a little-endian u64 (the magic is stored big-endian). */
const SIGNED_MAGIC = Buffer.from('OSTSGNDT', 'latin1');

export const COMPRESSION_NONE = 0;
export const COMPRESSION_XZ = 0x78;

/** Object type codes of part object lists. */
export const OBJTYPE_CODE: Partial<Record<ObjectType, number>> = { file: 1, dirtree: 2, dirmeta: 3, commit: 4 };
const CODE_OBJTYPE: Record<number, ObjectType> = { 1: 'file', 2: 'dirtree', 3: 'dirmeta', 4: 'commit' };

export interface DeltaObject {
  type: ObjectType;
  checksum: Checksum;
}

export interface PartHeader {
  version: number;
  /** sha256 of the stored part bytes (hex). */
  checksum: Checksum;
  /** Stored size in bytes. */
  size: number;
  /** Sum of the uncompressed sizes of the part's objects. */
  usize: number;
  objects: DeltaObject[];
}

export interface FallbackEntry {
  type: ObjectType;
  checksum: Checksum;
  compressedSize: number;
  size: number;
}

export interface Superblock {
  metadata: Array<[string, Variant]>;
  /** Generation time, seconds since the epoch. */
  timestamp: bigint;
  from: Checksum | null;
  to: Checksum;
  /** The TO commit object, byte for byte. */
  commit: Uint8Array;
  parts: PartHeader[];
  fallbacks: FallbackEntry[];
  /** Byte order of the part header and fallback numbers. */
  endianness: 'l' | 'B';
  /**
   * How `endianness` was found, as ostree finds it (`_ostree_delta_get_endianness`): from
   * `ostree.endianness` ('metadata'); guessed from the part sizes of a delta that predates that
   * key ('heuristic'); or neither — an unknown byte in the key, or a legacy delta whose sizes look
   * right in host order — which ostree calls invalid and reads in host (little-endian) order.
   */
  endiannessSource: 'metadata' | 'heuristic' | 'invalid';
  /** True when the file was a signed wrapper (section 6); `signatures` holds its dict. */
  signed: boolean;
  signatures: Array<[string, Variant]>;
  /** What the signatures of a signed wrapper cover: the plain superblock inside it (null when not signed). */
  signedData: Uint8Array | null;
}

export interface PartBody {
  /** (uid, gid, mode) host values. */
  modes: Array<[number, number, number]>;
  xattrs: Xattr[][];
  payload: Uint8Array;
  ops: Uint8Array;
}

function corrupt(msg: string, data: Record<string, unknown> = {}): LarchError {
  return new LarchError('OBJECT_CORRUPTED', msg, data);
}

const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');

function checksumField(b: unknown, what: string): Checksum {
  if (!(b instanceof Uint8Array) || b.length !== 32) {
    throw corrupt(`Invalid checksum of length ${(b as Uint8Array | undefined)?.length ?? 0} expected 32 (${what})`, { field: what });
  }
  return hex(b);
}

/** Decode a `[type:1][checksum:32]` object list. */
export function decodeObjectList(b: Uint8Array, what: string): DeltaObject[] {
  if (b.length % 33 !== 0) throw corrupt(`Invalid static delta part object list of ${b.length} bytes (not a multiple of 33) in ${what}`);
  const out: DeltaObject[] = [];
  for (let i = 0; i < b.length; i += 33) {
    const type = CODE_OBJTYPE[b[i]];
    if (type === undefined) throw corrupt(`Invalid object type ${b[i]} in static delta ${what}`);
    out.push({ type, checksum: hex(b.subarray(i + 1, i + 33)) });
  }
  return out;
}

export function encodeObjectList(objs: readonly DeltaObject[]): Uint8Array {
  const out = Buffer.alloc(objs.length * 33);
  objs.forEach((o, i) => {
    const code = OBJTYPE_CODE[o.type];
    if (code === undefined) throw new LarchError('INVALID_ARGUMENT', `Object type ${o.type} cannot be part of a static delta`);
    out[i * 33] = code;
    out.write(o.checksum, i * 33 + 1, 'hex');
  });
  return out;
}

const u32 = (n: number, swap: boolean): number => (swap ? bswap32(n) : n);
const u64 = (n: bigint, swap: boolean, lenient = false): number => {
  const v = swap ? bswap64(n) : n;
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) {
    if (lenient) return Number.POSITIVE_INFINITY;
    throw corrupt(`Static delta size field ${v} too large`);
  }
  return Number(v);
};

/**
 * Serialise a plain superblock. The part header and fallback numbers are written in `endianness`
 * (default 'l'); the caller's metadata must say the same in `ostree.endianness`.
 */
export function encodeSuperblock(sb: Omit<Superblock, 'endianness' | 'endiannessSource' | 'signed' | 'signatures' | 'signedData'>, endianness: 'l' | 'B' = 'l'): Uint8Array {
  const swap = endianness === 'B';
  const n64 = (n: number): bigint => (swap ? bswap64(BigInt(n)) : BigInt(n));
  const commitValue = decode(COMMIT_TYPE, sb.commit);
  const value: GValue = [
    sb.metadata,
    bswap64(sb.timestamp),
    sb.from === null ? new Uint8Array(0) : Buffer.from(sb.from, 'hex'),
    Buffer.from(sb.to, 'hex'),
    commitValue,
    new Uint8Array(0),
    sb.parts.map((p) => [u32(p.version, swap), Buffer.from(p.checksum, 'hex'), n64(p.size), n64(p.usize), encodeObjectList(p.objects)]),
    sb.fallbacks.map((f) => [OBJTYPE_CODE[f.type] ?? 1, Buffer.from(f.checksum, 'hex'), n64(f.compressedSize), n64(f.size)]),
  ];
  const bytes = encode(SUPERBLOCK_TYPE, value);
  // The embedded commit must come back byte for byte (it is re-encoded from its decoded value).
  const back = decode<GValue[]>(SUPERBLOCK_TYPE, bytes)[4];
  const again = encode(COMMIT_TYPE, back);
  if (createHash('sha256').update(again).digest('hex') !== sb.to) {
    throw new LarchError('OBJECT_CORRUPTED', `Commit ${sb.to} is not in normal form; cannot embed it in a static delta`, { checksum: sb.to });
  }
  return bytes;
}

/**
 * The signed wrapper (section 6) around a plain superblock: the magic, the plain bytes, and the
 * signatures (`ostree.sign.<engine>` → `aay`). Pure.
 */
export function encodeSignedSuperblock(plain: Uint8Array, signatures: Array<[string, Variant]>): Uint8Array {
  return encode(SIGNED_SUPERBLOCK_TYPE, [SIGNED_MAGIC.readBigUInt64LE(0), plain, signatures]);
}

type RawHeader = [number, Uint8Array, bigint, bigint, Uint8Array];
type RawFallback = [number, Uint8Array, bigint, bigint];
type RawSuperblock = [Array<[string, Variant]>, bigint, Uint8Array, Uint8Array, GValue, Uint8Array, RawHeader[], RawFallback[]];

const U32_MAX = 0xffffffffn;

/**
 * The byte order of a superblock's numbers, as ostree decides it: the `ostree.endianness` byte
 * when the key is there with type `y`; else (deltas from before 2016) swapped when some part
 * declares a stored size over 1.2 times its uncompressed size, or when parts average more than
 * 4 GiB an object, read in host order; else "invalid" (host order). The host is little-endian.
 */
function superblockEndianness(metadata: Array<[string, Variant]>, headers: RawHeader[]): { endianness: 'l' | 'B'; source: Superblock['endiannessSource'] } {
  const v = metadata.find(([k]) => k === 'ostree.endianness')?.[1];
  if (v !== undefined && v.type === 'y') {
    if (v.value === 0x6c) return { endianness: 'l', source: 'metadata' };
    if (v.value === 0x42) return { endianness: 'B', source: 'metadata' };
    return { endianness: 'l', source: 'invalid' };
  }
  let swapped = false;
  let totalSize = 0n;
  let totalObjects = 0n;
  for (const [, , size, usize, objects] of headers) {
    totalObjects += BigInt(Math.floor(objects.length / 33));
    totalSize = BigInt.asUintN(64, totalSize + size);
    if (size > usize && Number(size) / Number(usize) > 1.2) {
      swapped = true;
      break;
    }
  }
  if (!swapped && totalObjects > 0n && totalSize / totalObjects > U32_MAX) swapped = true;
  return swapped ? { endianness: 'B', source: 'heuristic' } : { endianness: 'l', source: 'invalid' };
}

/** The plain superblock inside `bytes` (unwrapping a signed one), decoded but not yet checked. */
function parseSuperblock(bytes: Uint8Array): { plain: Uint8Array; signed: boolean; signatures: Array<[string, Variant]>; v: RawSuperblock } {
  let plain = bytes;
  let signed = false;
  let signatures: Array<[string, Variant]> = [];
  if (bytes.length >= 8 && Buffer.compare(Buffer.from(bytes.subarray(0, 8)), SIGNED_MAGIC) === 0) {
    try {
      const w = decode<[bigint, Uint8Array, Array<[string, Variant]>]>(SIGNED_SUPERBLOCK_TYPE, bytes);
      plain = w[1];
      signatures = w[2];
      signed = true;
    } catch (e) {
      throw new LarchError('OBJECT_CORRUPTED', `Invalid signed static delta superblock: ${(e as Error).message}`, {}, { cause: e });
    }
  }
  let v: RawSuperblock;
  try {
    v = decode(SUPERBLOCK_TYPE, plain) as RawSuperblock;
  } catch (e) {
    throw new LarchError('OBJECT_CORRUPTED', `Invalid static delta superblock: ${(e as Error).message}`, {}, { cause: e });
  }
  return { plain, signed, signatures, v };
}

/**
 * Parse a superblock file (plain or signed wrapper). Verifies: checksum lengths, that the
 * embedded commit hashes to TO, part versions, object lists, fallback types, and that every size
 * is a safe integer — unless `lenientSizes`, which reads a larger one as Infinity (for describing
 * a delta only: see {@link superblockFigures}). Pure.
 */
export function decodeSuperblock(bytes: Uint8Array, opts: { lenientSizes?: boolean } = {}): Superblock {
  const lenient = opts.lenientSizes === true;
  const { plain, signed, signatures, v } = parseSuperblock(bytes);
  const [metadata, ts, fromB, toB, commitV, , headers, fallbacks] = v;
  const from = fromB.length === 0 ? null : checksumField(fromB, 'delta source');
  const to = checksumField(toB, 'delta target');
  const commit = encode(COMMIT_TYPE, commitV);
  const actual = createHash('sha256').update(commit).digest('hex');
  if (actual !== to) throw corrupt(`Corrupted commit object in static delta superblock; checksum expected='${to}' actual='${actual}'`, { checksum: to, actual });
  const { endianness, source: endiannessSource } = superblockEndianness(metadata, headers);
  const swap = endianness === 'B';
  const parts: PartHeader[] = headers.map((h, i) => {
    const version = u32(h[0], swap);
    if (version > 0) throw corrupt(`Invalid version ${version} in static delta part ${i}`);
    return {
      version,
      checksum: checksumField(h[1], `part ${i} checksum`),
      size: u64(h[2], swap, lenient),
      usize: u64(h[3], swap, lenient),
      objects: decodeObjectList(h[4], `part ${i}`),
    };
  });
  const fb: FallbackEntry[] = fallbacks.map((f, i) => {
    const type = CODE_OBJTYPE[f[0]];
    if (type !== 'file') throw corrupt(`Invalid fallback object type ${f[0]} in static delta (entry ${i})`);
    return { type, checksum: checksumField(f[1], `fallback ${i}`), compressedSize: u64(f[2], swap, lenient), size: u64(f[3], swap, lenient) };
  });
  return { metadata, timestamp: bswap64(ts), from, to, commit, parts, fallbacks: fb, endianness, endiannessSource, signed, signatures, signedData: signed ? plain : null };
}

/** A superblock's figures as stored (see {@link superblockFigures}). */
export interface SuperblockFigures {
  /** Stored and uncompressed size of each part, in the superblock's byte order. */
  parts: Array<{ size: bigint; usize: bigint }>;
  /** Stored and uncompressed size of each fallback object. */
  fallbacks: Array<{ size: bigint; usize: bigint }>;
  /** Entries of the (unused) recurse list: its length over two checksums, as ostree counts parents. */
  parents: number;
}

/**
 * The sizes of a superblock file as 64-bit values, and its parent count, for describing a delta
 * as `ostree static-delta show` does: it prints the sizes whatever they are (a legacy delta whose
 * byte order is guessed wrong shows exabytes), where {@link decodeSuperblock} refuses sizes past
 * 2^53. For display only. Pure.
 */
export function superblockFigures(bytes: Uint8Array): SuperblockFigures {
  const { v } = parseSuperblock(bytes);
  const swap = superblockEndianness(v[0], v[6]).endianness === 'B';
  const n = (x: bigint): bigint => (swap ? bswap64(x) : x);
  return {
    parts: v[6].map((h) => ({ size: n(h[2]), usize: n(h[3]) })),
    fallbacks: v[7].map((f) => ({ size: n(f[2]), usize: n(f[3]) })),
    parents: Math.floor(v[5].length / 64),
  };
}

/** Serialise a part body. Modes are host values; stored big-endian as ostree does. */
export function encodePartBody(body: PartBody): Uint8Array {
  return encode(PART_BODY_TYPE, [
    body.modes.map(([u, g, m]) => [bswap32(u), bswap32(g), bswap32(m)]),
    body.xattrs.map((set) => set.map((x) => [Buffer.concat([Buffer.from(x.name, 'utf8'), Buffer.from([0])]), x.value])),
    body.payload,
    body.ops,
  ]);
}

/**
 * The serialised part body as a list of chunks `[modes, xattrs, ...payload, ops, framing]`,
 * byte-identical to {@link encodePartBody} without copying the payload. (All four members have
 * alignment 1 after the 4-aligned first one, so no padding occurs; the framing offsets of the
 * first three members follow, last first, in the narrowest width that fits.)
 */
export function encodePartBodyChunks(modes: PartBody['modes'], xattrs: PartBody['xattrs'], payload: Uint8Array[], ops: Uint8Array): Uint8Array[] {
  const { head, tail } = partBodyFrame(modes, xattrs, payload.reduce((n, c) => n + c.length, 0), ops);
  return [head, ...payload, tail];
}

/**
 * What surrounds a part body's payload of `payloadLength` bytes: `head` (modes and xattrs tables)
 * and `tail` (ops and framing offsets), so a caller can lay a payload out in place between them.
 */
export function partBodyFrame(modes: PartBody['modes'], xattrs: PartBody['xattrs'], payloadLength: number, ops: Uint8Array): { head: Buffer; tail: Buffer } {
  const m = encode('a(uuu)', modes.map(([u, g, md]) => [bswap32(u), bswap32(g), bswap32(md)]));
  const x = encode('aa(ayay)', xattrs.map((set) => set.map((a) => [Buffer.concat([Buffer.from(a.name, 'utf8'), Buffer.from([0])]), a.value])));
  const base = m.length + x.length + payloadLength + ops.length;
  let w = 1;
  while (w < 8 && base + 3 * w >= 2 ** (8 * w)) w *= 2;
  const framing = Buffer.alloc(3 * w);
  [m.length + x.length + payloadLength, m.length + x.length, m.length].forEach((end, i) => framing.writeUIntLE(end, i * w, Math.min(w, 6)));
  return { head: Buffer.concat([m, x]), tail: Buffer.concat([ops, framing]) };
}

/** Parse a part body; xattr names must be NUL-terminated and non-empty. */
export function decodePartBody(bytes: Uint8Array, what: string): PartBody {
  let v: [Array<[number, number, number]>, Array<Array<[Uint8Array, Uint8Array]>>, Uint8Array, Uint8Array];
  try {
    v = decode(PART_BODY_TYPE, bytes) as typeof v;
  } catch (e) {
    throw new LarchError('OBJECT_CORRUPTED', `Invalid static delta ${what}: ${(e as Error).message}`, {}, { cause: e });
  }
  const modes = v[0].map(([u, g, m]) => [bswap32(u), bswap32(g), bswap32(m)] as [number, number, number]);
  const xattrs = v[1].map((set) =>
    set.map(([n, val]) => {
      if (n.length < 2 || n[n.length - 1] !== 0 || n.subarray(0, n.length - 1).includes(0)) throw corrupt(`Invalid xattr name in static delta ${what}`);
      return { name: Buffer.from(n.subarray(0, n.length - 1)).toString('utf8'), value: new Uint8Array(val) };
    }),
  );
  return { modes, xattrs, payload: v[2], ops: v[3] };
}

/** The `(yay)` value of an inline part in the superblock metadata, as stored bytes. */
export function inlinePartBytes(v: Variant, what: string): Uint8Array {
  if (v.type !== '(yay)') throw corrupt(`Invalid inline static delta ${what}: type ${v.type}`);
  const [c, payload] = v.value as [number, Uint8Array];
  const out = new Uint8Array(payload.length + 1);
  out[0] = c;
  out.set(payload, 1);
  return out;
}

export function inlinePartVariant(stored: Uint8Array): Variant {
  return new Variant('(yay)', [stored[0], stored.subarray(1)]);
}
