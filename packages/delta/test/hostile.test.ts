/**
 * Hand-made hostile deltas: each must be refused with one clear line, leaving no object, no
 * commit and no staging file behind.
 */
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Repo, contentChecksumOf, serializeCommit, serializeDirMeta, type Checksum, type FileMeta } from '@larch/core-store';
import { Variant } from '@larch/gvariant';
import { encodeDirTree, tmpDir, type TmpDir } from '@larch/test-fixtures';
import { LarchError } from '@larch/core-store';
import { ByteSink, MAX_PART_BODY, applyOffline, encodePartBody, encodeSuperblock, xzCompress, type ApplyOptions, type DeltaObject, type PartBody } from '../src/index.js';

let tmp: TmpDir;
beforeAll(async () => {
  tmp = await tmpDir('larch-delta-hostile-');
});
afterAll(async () => {
  await tmp.cleanup();
});

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const FILE_META: FileMeta = { uid: 0, gid: 0, mode: 0o100644, symlinkTarget: '', xattrs: [] };

interface Fixture {
  commit: Uint8Array;
  to: Checksum;
  objects: DeltaObject[];
  payload: Buffer;
  ops: Buffer;
}

/** A one-file commit (`name` -> `content`) and the plain scratch part that builds it. */
function fixture(content = 'hello world\n', name = 'hello.txt'): Fixture {
  const file = contentChecksumOf(FILE_META, Buffer.from(content));
  const dirmeta = serializeDirMeta({ uid: 0, gid: 0, mode: 0o40755, xattrs: [] });
  const dirtree = encodeDirTree({ files: [{ name, checksum: file }], dirs: [] });
  const commit = serializeCommit({ metadata: [], parent: null, subject: 's', body: '', timestamp: 1n, rootTree: sha(dirtree), rootMeta: sha(dirmeta) });
  const payload = Buffer.concat([dirtree, dirmeta, Buffer.from(content)]);
  const ops = new ByteSink()
    .byte(0x53).varint(dirtree.length).varint(0)
    .byte(0x53).varint(dirmeta.length).varint(dirtree.length)
    .byte(0x53).varint(0).varint(0).varint(content.length).varint(dirtree.length + dirmeta.length)
    .view();
  return {
    commit,
    to: sha(commit),
    objects: [
      { type: 'dirtree', checksum: sha(dirtree) },
      { type: 'dirmeta', checksum: sha(dirmeta) },
      { type: 'file', checksum: file },
    ],
    payload,
    ops: Buffer.from(ops),
  };
}

interface Craft {
  from?: Checksum | null;
  to: Checksum;
  commit: Uint8Array;
  objects: DeltaObject[];
  body?: Partial<PartBody>;
  /** Replace the stored part bytes after the header checksum was computed. */
  tamper?: (stored: Buffer) => Buffer;
  /** Stored bytes given outright. */
  stored?: Buffer;
  usize?: number;
  /** Stored size declared in the header (default: the real one). */
  size?: number;
  compress?: boolean;
  headerChecksum?: string;
}

async function craft(dir: string, c: Craft, base: Fixture): Promise<string> {
  await fsp.mkdir(dir, { recursive: true });
  const body = encodePartBody({ modes: [[0, 0, 0o100644]], xattrs: [[]], payload: base.payload, ops: base.ops, ...c.body });
  let stored = c.stored;
  if (stored === undefined) {
    const inner = c.compress === false ? Buffer.from(body) : await xzCompress(body, 1);
    stored = Buffer.concat([Buffer.from([c.compress === false ? 0 : 0x78]), inner]);
  }
  const header = { version: 0, checksum: c.headerChecksum ?? sha(stored), size: c.size ?? stored.length, usize: c.usize ?? 100, objects: c.objects };
  await fsp.writeFile(join(dir, '0'), c.tamper ? c.tamper(stored) : stored);
  const metadata: Array<[string, Variant]> = [['ostree.endianness', new Variant('y', 0x6c)]];
  await fsp.writeFile(join(dir, 'superblock'), encodeSuperblock({ metadata, timestamp: 0n, from: c.from ?? null, to: c.to, commit: c.commit, parts: [header], fallbacks: [] }));
  return dir;
}

let n = 0;
async function freshRepo(): Promise<Repo> {
  return Repo.init({ path: join(tmp.path, `repo-${n++}`), mode: 'bare-user' });
}

async function expectRefused(repo: Repo, deltaDir: string, pattern: RegExp, keep = 0, opts: ApplyOptions = {}): Promise<Error> {
  const err = await applyOffline(repo, deltaDir, opts).then(
    () => null,
    (e: Error) => e,
  );
  expect(err, 'delta was applied').not.toBeNull();
  if (process.env.SHOW_ERRORS) console.log(err!.message);
  expect(err!.message).toMatch(pattern);
  expect(err!.message).not.toContain('\n');
  let objects = 0;
  for await (const _ of repo.listObjects()) objects++;
  expect(objects).toBe(keep);
  expect((await fsp.readdir(repo.tmpPath)).filter((f) => f.startsWith('larch-'))).toEqual([]);
  return err!;
}

describe('hostile deltas are refused and commit nothing', () => {
  const base = fixture();

  it('the hand-made baseline applies', async () => {
    const repo = await freshRepo();
    const d = await craft(join(tmp.path, 'ok'), { to: base.to, commit: base.commit, objects: base.objects }, base);
    await applyOffline(repo, d);
    expect(await repo.hasObject('commit', base.to)).toBe(true);
  });

  it('truncated part', async () => {
    const d = await craft(join(tmp.path, 'trunc'), { to: base.to, commit: base.commit, objects: base.objects, tamper: (s) => s.subarray(0, s.length - 7) }, base);
    await expectRefused(await freshRepo(), d, /Static delta part 0 is \d+ bytes, expected \d+ \(truncated or corrupt\)/);
  });

  it('corrupt part (same size)', async () => {
    const d = await craft(join(tmp.path, 'flip'), { to: base.to, commit: base.commit, objects: base.objects, tamper: (s) => { const c = Buffer.from(s); c[c.length >> 1] ^= 0x10; return c; } }, base);
    await expectRefused(await freshRepo(), d, /Checksum mismatch for static delta part 0/);
  });

  it('part checksum mismatch in the header', async () => {
    const d = await craft(join(tmp.path, 'hdr'), { to: base.to, commit: base.commit, objects: base.objects, headerChecksum: '00'.repeat(32) }, base);
    await expectRefused(await freshRepo(), d, /Checksum mismatch for static delta part 0: expected 0{64}/);
  });

  it('a valid-checksum part whose xz stream is truncated', async () => {
    const body = encodePartBody({ modes: [[0, 0, 0o100644]], xattrs: [[]], payload: base.payload, ops: base.ops });
    const z = await xzCompress(body, 1);
    const stored = Buffer.concat([Buffer.from([0x78]), z.subarray(0, z.length - 12)]);
    const d = await craft(join(tmp.path, 'xztrunc'), { to: base.to, commit: base.commit, objects: base.objects, stored }, base);
    await expectRefused(await freshRepo(), d, /Invalid xz stream in static delta part 0/);
  });

  it('xz stream inflating past the declared size (decompression bomb)', async () => {
    const bomb = Buffer.concat([base.payload, Buffer.alloc(40 * 1024 * 1024)]);
    const d = await craft(join(tmp.path, 'bomb'), { to: base.to, commit: base.commit, objects: base.objects, body: { payload: bomb }, usize: 100 }, base);
    const st = await fsp.stat(join(d, '0'));
    expect(st.size).toBeLessThan(64 * 1024);
    await expectRefused(await freshRepo(), d, /Static delta part 0 decompresses past its limit of \d+ bytes/);
  });

  it('a part declaring 2^40 uncompressed bytes: the superblock is refused, naming the part, before the part is read', async () => {
    const d = await craft(join(tmp.path, 'usize-2-40'), { to: base.to, commit: base.commit, objects: base.objects, usize: 2 ** 40 }, base);
    await fsp.rm(join(d, '0')); // never read: refused from the header alone
    const err = await expectRefused(await freshRepo(), d, /^Static delta part 0 declares 1099511627776 uncompressed bytes, more than the limit of 1073741824$/);
    expect(err).toBeInstanceOf(LarchError);
    expect((err as LarchError).code).toBe('LIMIT_EXCEEDED');
    expect((err as LarchError).data).toMatchObject({ part: 'part 0', declared: 2 ** 40, limit: MAX_PART_BODY });
  });

  it('a part declaring a stored size no part body within the limit could need is refused before it is read', async () => {
    const d = await craft(join(tmp.path, 'size-2-40'), { to: base.to, commit: base.commit, objects: base.objects, size: 2 ** 40 }, base);
    await expectRefused(await freshRepo(), d, /^Static delta part 0 declares a stored size of 1099511627776 bytes, more than the limit of \d+$/);
  });

  it('a configured maxPartSize caps the bound below what the header allows, and refuses larger declarations', async () => {
    // A valid part (declared usize 100, so a declared bound over 1 MiB) whose body is 5 KB.
    const payload = Buffer.concat([base.payload, Buffer.alloc(5000)]);
    const xz = await craft(join(tmp.path, 'max-xz'), { to: base.to, commit: base.commit, objects: base.objects, body: { payload } }, base);
    await expectRefused(await freshRepo(), xz, /^Static delta part 0 decompresses past its limit of 4096 bytes$/, 0, { maxPartSize: 4096 });
    const raw = await craft(join(tmp.path, 'max-raw'), { to: base.to, commit: base.commit, objects: base.objects, body: { payload }, compress: false }, base);
    await expectRefused(await freshRepo(), raw, /^Static delta part 0 is larger than its limit of 4096 bytes$/, 0, { maxPartSize: 4096 });
    const declared = await craft(join(tmp.path, 'max-usize'), { to: base.to, commit: base.commit, objects: base.objects, usize: 5000 }, base);
    await expectRefused(await freshRepo(), declared, /^Static delta part 0 declares 5000 uncompressed bytes, more than the limit of 4096$/, 0, { maxPartSize: 4096 });
    // Within the limit it applies.
    const repo = await freshRepo();
    await applyOffline(repo, xz, { maxPartSize: 8192 });
    expect(await repo.hasObject('commit', base.to)).toBe(true);
  });

  it('unknown compression byte', async () => {
    const d = await craft(join(tmp.path, 'comp'), { to: base.to, commit: base.commit, objects: base.objects, stored: Buffer.from('g0000') }, base);
    await expectRefused(await freshRepo(), d, /Invalid compression type/);
  });

  it('op reading outside the payload', async () => {
    const ops = Buffer.from(new ByteSink().byte(0x53).varint(10).varint(base.payload.length - 5).view());
    const d = await craft(join(tmp.path, 'oob-read'), { to: base.to, commit: base.commit, objects: base.objects, body: { ops } }, base);
    await expectRefused(await freshRepo(), d, /op reads out of bounds/);
  });

  it('op writing past the declared object size', async () => {
    // dirtree + dirmeta as in the baseline, then open a 5-byte file and write 12 bytes into it.
    const good = fixture();
    const dtLen = good.payload.length - 12 - 12;
    const o = new ByteSink()
      .byte(0x53).varint(dtLen).varint(0)
      .byte(0x53).varint(12).varint(dtLen)
      .byte(0x6f).varint(0).varint(0).varint(5)
      .byte(0x77).varint(12).varint(dtLen + 12)
      .byte(0x63);
    const d = await craft(join(tmp.path, 'oob-write'), { to: good.to, commit: good.commit, objects: good.objects, body: { ops: Buffer.from(o.view()) } }, good);
    await expectRefused(await freshRepo(), d, /write past the declared size 5/);
  });

  it('read source offset outside the source object', async () => {
    const repo = await freshRepo();
    const d1 = await craft(join(tmp.path, 'src-base'), { to: base.to, commit: base.commit, objects: base.objects }, base);
    await applyOffline(repo, d1);
    const before = 4;
    const v2 = fixture('hello there\n');
    const dtLen = v2.payload.length - 24;
    const srcOff = v2.payload.length;
    const payload = Buffer.concat([v2.payload, Buffer.from(base.objects[2].checksum, 'hex')]);
    const o = new ByteSink()
      .byte(0x53).varint(dtLen).varint(0)
      .byte(0x72).varint(srcOff)
      .byte(0x6f).varint(0).varint(0).varint(12)
      .byte(0x77).varint(12).varint(100)
      .byte(0x63);
    // The new dirmeta equals the old one, so the object list holds dirtree and file only.
    const objects = [v2.objects[0], v2.objects[2]];
    const d = await craft(join(tmp.path, 'src-oob'), { from: base.to, to: v2.to, commit: v2.commit, objects, body: { payload, ops: Buffer.from(o.view()) } }, v2);
    await expectRefused(repo, d, /write reads out of bounds of source object/, before);
  });

  it('object whose bytes do not hash to the listed checksum', async () => {
    const evil = Buffer.from(base.payload);
    evil[evil.length - 2] ^= 0x20; // "hello worlD\n"
    const d = await craft(join(tmp.path, 'badsum'), { to: base.to, commit: base.commit, objects: base.objects, body: { payload: evil } }, base);
    await expectRefused(await freshRepo(), d, /Corrupted file object; checksum expected='[0-9a-f]{64}' actual=/);
  });

  it('an op stream that would create a path outside the repo (dirtree entry "../../etc/evil")', async () => {
    const f = fixture('x\n', '../../etc/evil');
    const d = await craft(join(tmp.path, 'path'), { to: f.to, commit: f.commit, objects: f.objects }, f);
    await expectRefused(await freshRepo(), d, /Refusing to write invalid dirtree object: .*Invalid \/ in filename/);
    await fsp.access(join(tmp.path, 'etc')).then(
      () => expect.fail('escaped the repository'),
      () => undefined,
    );
  });

  it('object list with an invalid object type', async () => {
    const d = await craft(join(tmp.path, 'objtype'), { to: base.to, commit: base.commit, objects: base.objects }, base);
    const sbPath = join(d, 'superblock');
    const sb = await fsp.readFile(sbPath);
    const at = sb.indexOf(Buffer.concat([Buffer.from([2]), Buffer.from(base.objects[0].checksum, 'hex')]));
    sb[at] = 9;
    await fsp.writeFile(sbPath, sb);
    await expectRefused(await freshRepo(), d, /Invalid object type 9/);
  });

  it('unknown opcode, bad mode index, directory mode for a file, ops ending inside an object', async () => {
    const dtLen = base.payload.length - 24;
    const head = (): ByteSink => new ByteSink().byte(0x53).varint(dtLen).varint(0).byte(0x53).varint(12).varint(dtLen);
    const cases: Array<[string, Buffer, RegExp, Partial<PartBody>?]> = [
      ['opcode', Buffer.from(head().byte(0x99).view()), /Unknown opcode 153/],
      ['modeidx', Buffer.from(head().byte(0x53).varint(7).varint(0).varint(12).varint(dtLen + 12).view()), /mode index 7 out of bounds/],
      ['dirmode', Buffer.from(head().byte(0x53).varint(0).varint(0).varint(12).varint(dtLen + 12).view()), /not a regular file or symlink/, { modes: [[0, 0, 0o40755]] }],
      ['unclosed', Buffer.from(head().byte(0x6f).varint(0).varint(0).varint(12).byte(0x77).varint(12).varint(dtLen + 12).view()), /ends inside an open object/],
      ['short', Buffer.from(head().view()), /produced 2 of 3 objects/],
    ];
    for (const [name, ops, re, body] of cases) {
      const d = await craft(join(tmp.path, `ops-${name}`), { to: base.to, commit: base.commit, objects: base.objects, body: { ops, ...body } }, base);
      await expectRefused(await freshRepo(), d, re);
    }
  });
});
