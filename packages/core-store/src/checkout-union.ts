/**
 * `unionIdentical`: whether an entry already in the destination is the object being checked
 * out (same type, mode, owner, size, and the same content or symlink target).
 */
import { constants as C, promises as fsp, type Stats } from 'node:fs';
import { S_IFLNK, S_IFMT } from './types.js';
import { type Ctx, userFileMode } from './checkout-context.js';
import type { OpenedFile } from './checkout-copy.js';

export async function sameFile(a: Stats, pa: string, b: Stats, pb: string): Promise<boolean> {
  if (a.mode !== b.mode || a.uid !== b.uid || a.gid !== b.gid || a.size !== b.size) return false;
  if (a.isSymbolicLink()) return (await fsp.readlink(pa)) === (await fsp.readlink(pb));
  if (!a.isFile()) return false;
  return sameContent(pa, pb);
}

export async function sameContent(pa: string, pb: string): Promise<boolean> {
  const [fa, fb] = await Promise.all([fsp.open(pa, C.O_RDONLY | C.O_NOFOLLOW), fsp.open(pb, C.O_RDONLY | C.O_NOFOLLOW)]);
  try {
    const ba = Buffer.allocUnsafe(65536);
    const bb = Buffer.allocUnsafe(65536);
    for (;;) {
      const [ra, rb] = await Promise.all([fa.read(ba, 0, ba.length, null), fb.read(bb, 0, bb.length, null)]);
      if (ra.bytesRead !== rb.bytesRead) return false;
      if (ra.bytesRead === 0) return true;
      if (!ba.subarray(0, ra.bytesRead).equals(bb.subarray(0, rb.bytesRead))) return false;
    }
  } finally {
    await Promise.all([fa.close(), fb.close()]);
  }
}

export async function identicalToObject(ctx: Ctx, obj: OpenedFile, target: string): Promise<boolean> {
  const st = await fsp.lstat(target);
  const meta = obj.meta;
  if ((meta.mode & S_IFMT) === S_IFLNK) return st.isSymbolicLink() && (await fsp.readlink(target)) === meta.symlinkTarget;
  if (!st.isFile() || st.size !== obj.size) return false;
  const wantMode = ctx.userMode ? userFileMode(meta.mode) : meta.mode & 0o7777;
  if ((st.mode & 0o7777) !== wantMode) return false;
  if (!ctx.userMode && (st.uid !== meta.uid || st.gid !== meta.gid)) return false;
  // Compare content as a stream against the object's content.
  const fh = await fsp.open(target, C.O_RDONLY | C.O_NOFOLLOW);
  try {
    const buf = Buffer.allocUnsafe(65536);
    for await (const chunk of obj.open() as AsyncIterable<Buffer>) {
      let off = 0;
      while (off < chunk.length) {
        const want = Math.min(buf.length, chunk.length - off);
        const { bytesRead } = await fh.read(buf, 0, want, null);
        if (bytesRead === 0 || !buf.subarray(0, bytesRead).equals(chunk.subarray(off, off + bytesRead))) return false;
        off += bytesRead;
      }
    }
    const { bytesRead } = await fh.read(buf, 0, 1, null);
    return bytesRead === 0;
  } finally {
    await fh.close();
  }
}
