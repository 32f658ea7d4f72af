/**
 * The superblock and part reader (spec static-deltas.md sections 3-4): where a part's stored
 * bytes come from (inline in the superblock's metadata, or a part file), the checks they pass
 * before anything is decompressed (declared sizes within limits, size and SHA-256 of the header),
 * and their bounded decompression.
 *
 * Trust model: every byte of the superblock and of the parts is hostile until checked. Stored
 * parts must match the size and SHA-256 of their header before they are decompressed, and the xz
 * decoder's output is capped (decompression bomb) by {@link partBodyLimit}.
 */
import { createHash } from 'node:crypto';
import { LarchError, deltaRelPath, type Repo } from '@larch/core-store';
import type { Variant } from '@larch/gvariant';
import { COMPRESSION_NONE, COMPRESSION_XZ, inlinePartBytes, type PartHeader, type Superblock } from './format.js';
import { xzDecompressBounded } from './xz.js';

/**
 * Default of {@link ApplyOptions.maxPartSize}: the largest decompressed part body accepted, and
 * the largest uncompressed size a part may declare. Part bodies are held in memory, so this is
 * also the most memory one part can take. ostree 2022.7 has no such limit (it inflates parts into
 * an anonymous temporary file); ostree 2026.3 capped part bodies at 512 MiB and 2026.4 dropped the
 * cap again, because a size predicted from the header broke real deltas (bsdiff patches can be
 * larger than the files they make). Our generator makes parts of up to about this size (a single
 * large file), so the default stays here; a caller with less memory lowers it.
 */
export const MAX_PART_BODY = 1024 * 1024 * 1024;

/** Where the stored bytes of non-inline parts come from. */
export interface PartSource {
  /** The stored bytes of part `index` (at most `header.size` bytes are accepted). */
  readPart(index: number, header: PartHeader): Promise<Uint8Array>;
}

export function corrupt(msg: string, data: Record<string, unknown> = {}): LarchError {
  return new LarchError('OBJECT_CORRUPTED', msg, data);
}

/**
 * Decompression bound for a part: min(what its header declares, `max`). The header's usize is
 * the size of the objects the part makes, not of its body, so the declared bound leaves room for
 * op streams, tables and patches (twice usize, 1 KiB per object, 1 MiB). The declared size can
 * lower the bound but never raise it: a usize above `max` is refused by {@link checkDeclaredSizes}
 * (and by {@link unpackPart}), and the bound is at most `max` whatever the header says.
 */
export function partBodyLimit(h: PartHeader, max: number = MAX_PART_BODY): number {
  return Math.min(max, h.usize * 2 + h.objects.length * 1024 + 1024 * 1024);
}

/** Largest stored size a part may declare: an uncompressed body of `max` bytes, or its xz stream (which adds a little). */
export function maxStoredPartSize(max: number = MAX_PART_BODY): number {
  return max + Math.ceil(max / 1024) + 64 * 1024;
}

function assertPartSizeLimit(max: number): void {
  if (!Number.isSafeInteger(max) || max < 0) throw new RangeError(`maxPartSize must be a non-negative integer, got ${max}`);
}

/**
 * Refuse a part whose header declares more than `max` uncompressed bytes, or a stored size no
 * body of `max` bytes could need. `what` names the part ("part 3").
 */
export function checkDeclaredSize(h: PartHeader, what: string, max: number = MAX_PART_BODY): void {
  assertPartSizeLimit(max);
  if (h.usize > max) {
    throw new LarchError('LIMIT_EXCEEDED', `Static delta ${what} declares ${h.usize} uncompressed bytes, more than the limit of ${max}`, { part: what, declared: h.usize, limit: max });
  }
  const stored = maxStoredPartSize(max);
  if (h.size > stored) {
    throw new LarchError('LIMIT_EXCEEDED', `Static delta ${what} declares a stored size of ${h.size} bytes, more than the limit of ${stored}`, { part: what, declared: h.size, limit: stored });
  }
}

/** {@link checkDeclaredSize} for every part of a superblock, before anything is read or fetched. */
export function checkDeclaredSizes(sb: Superblock, max: number = MAX_PART_BODY): void {
  sb.parts.forEach((h, i) => checkDeclaredSize(h, `part ${i}`, max));
}

/**
 * Decode stored part bytes (compression byte + payload) into the body bytes, bounded by
 * {@link partBodyLimit}(h, max). Compression `0` and `'x'` (xz) only, as ostree: any other byte
 * ('g' included, which old ostree documents mention but never implemented) is refused unread.
 */
export async function unpackPart(stored: Uint8Array, h: PartHeader, what: string, max: number = MAX_PART_BODY): Promise<Uint8Array> {
  checkDeclaredSize(h, what, max);
  if (stored.length === 0) throw corrupt(`Truncated static delta ${what}: empty`);
  const kind = stored[0];
  const rest = stored.subarray(1);
  const limit = partBodyLimit(h, max);
  if (kind === COMPRESSION_NONE) {
    if (rest.length > limit) throw new LarchError('LIMIT_EXCEEDED', `Static delta ${what} is larger than its limit of ${limit} bytes`, { limit });
    return rest;
  }
  if (kind === COMPRESSION_XZ) return xzDecompressBounded(rest, limit, what);
  throw corrupt(`Invalid compression type '${kind}' in static delta ${what}`);
}

/** Check stored part bytes against the size and checksum of the header. */
export function verifyPart(stored: Uint8Array, h: PartHeader, what: string): void {
  if (stored.length !== h.size) throw corrupt(`Static delta ${what} is ${stored.length} bytes, expected ${h.size} (truncated or corrupt)`, { size: stored.length, expected: h.size });
  const actual = createHash('sha256').update(stored).digest('hex');
  if (actual !== h.checksum) throw corrupt(`Checksum mismatch for static delta ${what}: expected ${h.checksum}, actual ${actual}`, { expected: h.checksum, actual });
}

/** The stored bytes of part `i`: inline from the superblock metadata, or from `source`. */
export async function partBytes(sb: Superblock, i: number, source: PartSource): Promise<{ bytes: Uint8Array; inline: boolean }> {
  const key = deltaRelPath(sb.from, sb.to, i);
  const v = sb.metadata.find(([k]) => k === key)?.[1];
  if (v !== undefined) return { bytes: inlinePartBytes(v, `part ${i}`), inline: true };
  return { bytes: await source.readPart(i, sb.parts[i]), inline: false };
}

export function isInline(sb: Superblock, i: number): boolean {
  const key = deltaRelPath(sb.from, sb.to, i);
  return sb.metadata.some(([k]) => k === key);
}

/** The detached metadata of TO carried in the superblock, if any. */
export function superblockCommitMeta(sb: Superblock): Array<[string, Variant]> | null {
  const key = deltaRelPath(sb.from, sb.to, 'commitmeta');
  const v = sb.metadata.find(([k]) => k === key)?.[1];
  if (v === undefined) return null;
  if (v.type !== 'a{sv}') throw corrupt(`Invalid detached metadata in static delta superblock: type ${v.type}`);
  return v.value as Array<[string, Variant]>;
}

/** True when every object of a part is already in the repository. */
export function partComplete(repo: Repo, h: PartHeader): boolean {
  return h.objects.every((o) => repo.hasObjectSync(o.type, o.checksum));
}
