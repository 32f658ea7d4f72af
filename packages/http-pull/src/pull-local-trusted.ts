/**
 * Staging content from a trusted local source (`pull-local` from a repository owned by the
 * invoking user, or `--trust-source`), as ostree's trusted import: the object is filed under the
 * name the source gives it and is not compared with that name. A corrupted source object is
 * therefore copied as it is (converted between modes where the modes differ); `fsck` of the
 * destination finds it later. Everything else still holds: a source file that cannot be read in
 * its repository's format fails the pull, and `--bareuseronly-files` still checks modes (the
 * caller does that before staging).
 *
 * Between archive repositories the `.filez` is copied byte for byte (ostree copies the file the
 * same way when it cannot hardlink it); otherwise the source's metadata and payload are written in
 * the destination's mode by core-store, which computes a checksum on the way that is not compared.
 */
import { promises as fsp } from 'node:fs';
import { S_IFLNK, S_IFMT, WriteBatch, type Checksum, type FileMeta, type ObjectType, type Repo } from '@larch/core-store';
import type { StagedContent } from './pull-store.js';

/** A batch that files what is added to it under one given name, in another batch. */
class UnderName extends WriteBatch {
  constructor(
    repo: Repo,
    private readonly target: WriteBatch,
    private readonly checksum: Checksum,
  ) {
    super(repo);
  }

  override add(tmp: string, type: ObjectType): void {
    this.target.add(tmp, type, this.checksum);
  }
}

/** Stage metadata + payload under `checksum` in the destination's mode, unchecked. */
export async function stageTrustedPlain(repo: Repo, batch: WriteBatch, checksum: Checksum, meta: FileMeta, size: number, stream: NodeJS.ReadableStream): Promise<StagedContent> {
  const isLink = (meta.mode & S_IFMT) === S_IFLNK;
  await repo.writeFile(meta, isLink ? { bytes: new Uint8Array(0) } : { stream, size }, { batch: new UnderName(repo, batch, checksum) });
  return { written: size, size: isLink ? 0 : size };
}

/**
 * Copy an archive source's `.filez` into an archive destination byte for byte, under `checksum`.
 * Like ostree's direct copy it adds nothing to "content written" (size 0).
 */
export async function stageTrustedFilez(repo: Repo, batch: WriteBatch, checksum: Checksum, body: AsyncIterable<Uint8Array>): Promise<StagedContent> {
  const tmp = repo.newTmpPath('pull');
  const fh = await fsp.open(tmp, 'wx', 0o644);
  let written = 0;
  try {
    for await (const chunk of body) {
      await fh.write(chunk);
      written += chunk.length;
    }
    await fh.close();
  } catch (e) {
    await fh.close().catch(() => undefined);
    await fsp.rm(tmp, { force: true });
    throw e;
  }
  batch.add(tmp, 'file', checksum);
  return { written, size: 0 };
}
