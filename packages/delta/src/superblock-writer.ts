/**
 * The superblock writer (spec static-deltas.md section 3): encodes the superblock over the parts
 * the part builder wrote (their headers, inline parts and TO's detached metadata in its
 * metadata), signs it when asked, and publishes the delta.
 *
 * Durability: the superblock and every part file are fsynced (when the repository fsyncs) in the
 * generation's private directory under `tmp/`, which is then renamed into `deltas/` whole, so
 * readers never see a half-written delta; an existing delta of the same name is replaced. With
 * `--filename` the parts are moved beside the target file and the superblock renamed into place
 * last; nothing in the repository changes.
 */
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { dirname, join } from 'node:path';
import { deltaRelDir, deltaRelPath, type Checksum, type Repo } from '@larch/core-store';
import { Variant } from '@larch/gvariant';
import { encodeSuperblock, type FallbackEntry } from './format.js';
import { signSuperblock, type SuperblockSigner } from './sign.js';
import type { PartsWritten } from './part-builder.js';

export interface SuperblockInput {
  from: Checksum | null;
  to: Checksum;
  /** The TO commit object, carried in the superblock. */
  commit: Uint8Array;
  parts: PartsWritten;
  fallbacks: FallbackEntry[];
  /** Extra metadata, written first. */
  metadata: Array<[string, Variant]>;
  endianness: 'l' | 'B';
  timestamp: bigint;
  signers?: readonly SuperblockSigner[];
  /** The parts are inline (no part files to sync). */
  inlineParts: boolean;
}

/**
 * Write the superblock as `superblock` in `tmpDir` (exclusive create, fsynced when the repository
 * fsyncs, as are the part files beside it). Returns the bytes written: the signed wrapper when
 * there are signers (the summary's digest is over it).
 */
export async function writeSuperblock(repo: Repo, tmpDir: string, input: SuperblockInput): Promise<Buffer> {
  const { from, to, parts } = input;
  const metadata: Array<[string, Variant]> = [...input.metadata];
  metadata.push(['ostree.endianness', new Variant('y', input.endianness === 'B' ? 0x42 : 0x6c)]);
  for (const v of parts.inlineVariants) if (v) metadata.push(v);
  const cm = await repo.readCommitMeta(to);
  if (cm !== null) metadata.push([deltaRelPath(from, to, 'commitmeta'), new Variant('a{sv}', cm)]);
  const plainSb = encodeSuperblock({ metadata, timestamp: input.timestamp, from, to, commit: input.commit, parts: parts.headers, fallbacks: input.fallbacks }, input.endianness);
  const sb = input.signers !== undefined && input.signers.length > 0 ? await signSuperblock(plainSb, input.signers) : plainSb;
  const fh = await fsp.open(join(tmpDir, 'superblock'), 'wx', 0o644);
  try {
    await fh.writeFile(sb);
    if (repo.fsyncEnabled) await fh.sync();
  } finally {
    await fh.close();
  }
  if (repo.fsyncEnabled) {
    for (let i = 0; i < parts.headers.length && !input.inlineParts; i++) {
      const h = await fsp.open(join(tmpDir, String(i)), 'r');
      await h.sync();
      await h.close();
    }
  }
  return Buffer.from(sb);
}

/** SHA-256 (hex) of superblock bytes, as delta indexes and summaries name it. */
export function superblockDigest(sb: Uint8Array): string {
  return createHash('sha256').update(sb).digest('hex');
}

/**
 * Publish the delta written in `tmpDir` (superblock and `partFiles` part files): renamed into the
 * repository's `deltas/` (replacing a delta of the same name), or with `outFile` moved beside it.
 * Returns the delta's directory: relative to the repository, or the directory of `outFile`.
 */
export async function publishDelta(repo: Repo, tmpDir: string, opts: { from: Checksum | null; to: Checksum; partFiles: number; outFile: string | null }): Promise<string> {
  if (opts.outFile !== null) {
    // Outside the repository (`--filename`): the parts go beside the superblock, which is
    // renamed into place last; nothing in the repository changes.
    for (let i = 0; i < opts.partFiles; i++) await moveFile(join(tmpDir, String(i)), join(dirname(opts.outFile), String(i)));
    await moveFile(join(tmpDir, 'superblock'), opts.outFile);
    return dirname(opts.outFile);
  }
  const relDir = deltaRelDir(opts.from, opts.to);
  await fsp.chmod(tmpDir, 0o755);
  const dest = join(repo.path, relDir);
  await fsp.mkdir(dirname(dest), { recursive: true });
  const old = `${tmpDir}.old`;
  let replaced = false;
  try {
    await fsp.rename(dest, old);
    replaced = true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  await fsp.rename(tmpDir, dest);
  if (replaced) await fsp.rm(old, { recursive: true, force: true });
  return relDir;
}

/** Rename `from` to `to`, copying (then syncing and removing) across filesystems. */
async function moveFile(from: string, to: string): Promise<void> {
  try {
    await fsp.rename(from, to);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EXDEV') throw e;
    const tmp = `${to}.${process.pid}.tmp`;
    await fsp.copyFile(from, tmp);
    const fh = await fsp.open(tmp, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fsp.rename(tmp, to);
    await fsp.rm(from, { force: true });
  }
}
