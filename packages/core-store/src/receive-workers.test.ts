import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lstatSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deflateRawSync } from 'node:zlib';
import { lgetxattr } from '@larch/native';
import { Repo, WriteBatch } from './repo.js';
import { ReceiveWorkers } from './receive-workers.js';
import { LarchError } from './errors.js';
import { contentChecksumOf } from './objects/file-header.js';
import { serializeArchiveHeader } from './objects/archive-header.js';
import { parseUserMeta, USER_META_XATTR } from './objects/user-meta.js';
import { S_IFLNK, S_IFREG, type FileMeta } from './types.js';

let dir: string;
let n = 0;
const fresh = async (mode: 'archive' | 'bare-user') => Repo.init({ path: join(dir, `r${n++}`), mode });
const stray = (repo: Repo) => readdirSync(repo.tmpPath).filter((f) => f.startsWith('larch-recv-'));

/** A `.filez` as a server sends it, with its checksum. */
function filez(meta: FileMeta, payload: Buffer, declared = payload.length): { checksum: string; bytes: Buffer } {
  const checksum = contentChecksumOf(meta, payload);
  const header = serializeArchiveHeader({ meta, size: declared });
  return { checksum, bytes: Buffer.concat([header, deflateRawSync(payload)]) };
}

const reg = (mode = 0o644): FileMeta => ({ uid: 0, gid: 0, mode: S_IFREG | mode, xattrs: [], symlinkTarget: '' });

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'larch-recv-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('ReceiveWorkers', () => {
  it('verifies and stages many objects into bare-user and archive repos, published by the batch', async () => {
    for (const mode of ['bare-user', 'archive'] as const) {
      const repo = await fresh(mode);
      const workers = new ReceiveWorkers(repo, 2);
      const batch = new WriteBatch(repo);
      const objs = Array.from({ length: 300 }, (_, i) => filez(reg(i % 2 ? 0o755 : 0o644), Buffer.from(`object ${i} `.repeat(i + 1))));
      const sent = objs.map((o) => Buffer.from(o.bytes));
      const written = await Promise.all(objs.map((o) => workers.stage(o.checksum, o.bytes, batch)));
      await workers.close();
      expect(written.every((w) => typeof w === 'number' && w > 0)).toBe(true);
      await batch.commit();
      for (const [i, o] of objs.entries()) {
        expect(await repo.hasObject('file', o.checksum)).toBe(true);
        await repo.verifyFile(o.checksum);
        const p = repo.objectPath('file', o.checksum);
        if (mode === 'archive') {
          expect(readFileSync(p).equals(sent[i])).toBe(true);
        } else {
          const meta = parseUserMeta(lgetxattr(p, USER_META_XATTR)!);
          expect(meta.mode & 0o7777).toBe(i % 2 ? 0o755 : 0o644);
          expect(lstatSync(p).mtimeMs).toBe(0);
        }
      }
      expect(stray(repo)).toEqual([]);
    }
  });

  it('refuses a flipped byte, a short or overlong payload and a bad header, staging nothing', async () => {
    const repo = await fresh('bare-user');
    const workers = new ReceiveWorkers(repo, 2);
    const batch = new WriteBatch(repo);
    const good = filez(reg(), Buffer.from('hello world\n'.repeat(50)));
    const flipped = Buffer.from(good.bytes);
    flipped[flipped.length - 3] ^= 0x01;
    const payload = Buffer.from('x'.repeat(1000));
    const bomb = filez(reg(), payload, 10); // declares 10 bytes, inflates to 1000
    const short = filez(reg(), payload, 2000);
    const cases: Array<[string, Uint8Array, RegExp]> = [
      [good.checksum, flipped, /Corrupted file object/],
      [bomb.checksum, bomb.bytes, /more data than the declared size 10/],
      [short.checksum, short.bytes, /got 1000 bytes, declared size 2000/],
      [good.checksum, Buffer.from([0, 0, 0, 200, 0, 0, 0, 0, 1, 2]), /invalid header length 200/],
      [filez(reg(), Buffer.from('other')).checksum, good.bytes, /checksum expected=.*actual=/],
    ];
    for (const [checksum, bytes, re] of cases) {
      const err = await workers.stage(checksum, bytes, batch).then(() => null, (e: unknown) => e);
      expect(err).toBeInstanceOf(LarchError);
      expect((err as LarchError).code).toBe('OBJECT_CORRUPTED');
      expect((err as LarchError).message).toMatch(re);
    }
    await expect(workers.stage(good.checksum, Buffer.from(good.bytes), batch, 100)).rejects.toMatchObject({ code: 'LIMIT_EXCEEDED' });
    await workers.close();
    expect(batch.size).toBe(0);
    expect(stray(repo)).toEqual([]);
  });

  it('declines symlinks without taking the bytes, so the caller can stream them', async () => {
    const repo = await fresh('bare-user');
    const workers = new ReceiveWorkers(repo, 1);
    const batch = new WriteBatch(repo);
    const link = filez({ uid: 0, gid: 0, mode: S_IFLNK | 0o777, xattrs: [], symlinkTarget: 'target' }, Buffer.alloc(0));
    expect(await workers.stage(link.checksum, link.bytes, batch)).toBeNull();
    expect(link.bytes.length).toBeGreaterThan(0);
    await workers.close();
    expect(batch.size).toBe(0);
  });
});
