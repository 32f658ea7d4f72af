import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { Variant } from '@larch/gvariant';
import { lgetxattr } from '@larch/native';
import { Repo } from './repo.js';
import { LarchError } from './errors.js';
import { S_IFLNK, S_IFREG, type FileMeta, type RepoMode } from './types.js';
import { contentChecksumOf } from './objects/file-header.js';
import { serializeDirMeta } from './objects/dirmeta.js';
import { serializeArchiveHeader } from './objects/archive-header.js';
import { deflateRawSync } from 'node:zlib';

const MODES: RepoMode[] = ['archive', 'bare', 'bare-user', 'bare-user-only'];
const HAVE_OSTREE = spawnSync('ostree', ['--version']).status === 0;
/** Interop tests fail in CI when ostree is missing, and are skipped locally. */
const interop = HAVE_OSTREE || process.env.CI === 'true' ? it : it.skip;
const ostree = (...args: string[]) => execFileSync('ostree', args, { encoding: 'utf8' });

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'larch-repo-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const fresh = () => join(dir, `r${n++}`);

function listing(root: string): string[] {
  const out: string[] = [];
  const rec = (p: string) => {
    for (const name of readdirSync(p).sort()) {
      const abs = join(p, name);
      const st = lstatSync(abs);
      out.push(`${relative(root, abs)} ${st.mode.toString(8)}`);
      if (st.isDirectory()) rec(abs);
    }
  };
  rec(root);
  return out;
}

const reg = (mode = 0o644, extra: Partial<FileMeta> = {}): FileMeta => ({ uid: 0, gid: 0, mode: S_IFREG | mode, symlinkTarget: '', xattrs: [], ...extra });
const link = (target: string): FileMeta => ({ uid: 0, gid: 0, mode: S_IFLNK | 0o777, symlinkTarget: target, xattrs: [] });
const enc = new TextEncoder();

async function readAll(s: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of s as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks);
}

describe('Repo.init / open', () => {
  interop('creates the same config and directory tree as `ostree init`', async () => {
    for (const mode of MODES) {
      for (const collectionId of [undefined, 'org.example.Os']) {
        const ours = fresh();
        const theirs = fresh();
        await Repo.init({ path: ours, mode, collectionId });
        ostree('init', `--repo=${theirs}`, `--mode=${mode}`, ...(collectionId ? [`--collection-id=${collectionId}`] : []));
        expect(readFileSync(join(ours, 'config'))).toEqual(readFileSync(join(theirs, 'config')));
        expect(listing(ours)).toEqual(listing(theirs));
      }
    }
  });

  it('writes mode=archive-z2 for archive and reads both spellings', async () => {
    const p = fresh();
    const r = await Repo.init({ path: p, mode: 'archive' });
    expect(readFileSync(join(p, 'config'), 'utf8')).toBe('[core]\nrepo_version=1\nmode=archive-z2\n');
    expect(r.mode).toBe('archive');
    writeFileSync(join(p, 'config'), '[core]\nrepo_version=1\nmode=archive\n');
    expect((await Repo.open(p)).mode).toBe('archive');
  });

  it('is idempotent for the same config and refuses a different one', async () => {
    const p = fresh();
    await Repo.init({ path: p, mode: 'bare' });
    await expect(Repo.init({ path: p, mode: 'bare' })).resolves.toBeInstanceOf(Repo);
    await expect(Repo.init({ path: p, mode: 'archive' })).rejects.toMatchObject({ code: 'EXISTS' });
  });

  it('reports REPO_NOT_FOUND, BAD_MODE and BAD_CONFIG', async () => {
    await expect(Repo.open(join(dir, 'nope'))).rejects.toMatchObject({ code: 'REPO_NOT_FOUND' });
    const p = fresh();
    await Repo.init({ path: p, mode: 'bare' });
    writeFileSync(join(p, 'config'), '[core]\nrepo_version=1\nmode=weird\n');
    await expect(Repo.open(p)).rejects.toMatchObject({ code: 'BAD_MODE' });
    writeFileSync(join(p, 'config'), '[core]\nrepo_version=2\nmode=bare\n');
    await expect(Repo.open(p)).rejects.toMatchObject({ code: 'BAD_CONFIG' });
    writeFileSync(join(p, 'config'), 'garbage\n');
    await expect(Repo.open(p)).rejects.toMatchObject({ code: 'BAD_CONFIG' });
    writeFileSync(join(p, 'config'), '[core]\nrepo_version=1\nmode=bare\nfsync=perhaps\n');
    await expect(Repo.open(p)).rejects.toMatchObject({ code: 'BAD_CONFIG' });
  });

  interop('saveConfig keeps unknown keys and remote sections readable by ostree', async () => {
    const p = fresh();
    ostree('init', `--repo=${p}`, '--mode=bare');
    ostree('remote', 'add', `--repo=${p}`, '--no-gpg-verify', 'my.origin', 'http://example.com/repo');
    const r = await Repo.open(p);
    expect(r.config.get('remote "my.origin"', 'url')).toBe('http://example.com/repo');
    r.config.set('core', 'lock-timeout-secs', 5);
    await r.saveConfig();
    expect(ostree('config', `--repo=${p}`, 'get', 'core.lock-timeout-secs').trim()).toBe('5');
    expect(ostree('remote', 'show-url', `--repo=${p}`, 'my.origin').trim()).toBe('http://example.com/repo');
    expect(readFileSync(join(p, 'config'), 'utf8')).toContain('[remote "my.origin"]\nurl=http://example.com/repo\ngpg-verify=false\n');
    expect((await Repo.open(p)).lockTimeoutMs).toBe(5000);
  });
});

describe.each(MODES)('content objects in %s mode', (mode) => {
  let repo: Repo;
  beforeAll(async () => {
    repo = await Repo.init({ path: fresh(), mode });
  });
  const xattrs = mode === 'bare-user-only' ? [] : [{ name: 'user.b', value: enc.encode('2') }, { name: 'user.a', value: enc.encode('1') }];

  it('writes, opens and verifies a regular file, keeping ownership, mode and xattrs', async () => {
    const meta = reg(0o755, mode === 'bare-user-only' ? {} : { uid: 1234, gid: 99, xattrs });
    const data = enc.encode('hello world\n'.repeat(100));
    const c = await repo.writeFile(meta, { bytes: data });
    expect(c).toBe(contentChecksumOf(meta, data));
    expect(await repo.hasObject('file', c)).toBe(true);
    expect(repo.objectPath('file', c).endsWith(mode === 'archive' ? '.filez' : '.file')).toBe(true);
    const f = await repo.openFile(c);
    expect(f.size).toBe(data.length);
    expect(f.meta.uid).toBe(meta.uid);
    expect(f.meta.gid).toBe(meta.gid);
    expect(f.meta.mode).toBe(meta.mode);
    expect(f.meta.xattrs.map((x) => x.name)).toEqual(mode === 'bare-user-only' ? [] : ['user.a', 'user.b']);
    expect(await readAll(f.open())).toEqual(Buffer.from(data));
    await repo.verifyFile(c);
    const st = lstatSync(repo.objectPath('file', c));
    expect(st.mtimeMs === 0 || mode === 'archive').toBe(true);
    if (mode === 'bare') expect([st.uid, st.gid, st.mode & 0o7777]).toEqual([1234, 99, 0o755]);
    if (mode === 'bare-user') {
      expect(st.mode & 0o7777).toBe(0o755);
      expect(lgetxattr(repo.objectPath('file', c), 'user.ostreemeta')!.subarray(0, 12).toString('hex')).toBe('000004d200000063000081ed');
    }
  });

  it('stores symlinks as the mode requires', async () => {
    const meta = link('hello.txt');
    const c = await repo.writeFile(meta, { bytes: new Uint8Array(0) });
    expect(c).toBe('f66efa496a72379413c44593de510dc344beb045294f1a543da87b2b6118db35');
    const p = repo.objectPath('file', c);
    if (mode === 'bare' || mode === 'bare-user-only') expect(readlinkSync(p)).toBe('hello.txt');
    if (mode === 'bare-user') {
      expect(readFileSync(p)).toEqual(Buffer.from('hello.txt\0'));
      expect(statSync(p).mode & 0o7777).toBe(0o644);
    }
    const f = await repo.openFile(c);
    expect(f.meta.symlinkTarget).toBe('hello.txt');
    expect(f.size).toBe(0);
    expect((await readAll(f.open())).length).toBe(0);
    await repo.verifyFile(c);
  });

  it('streams from a path and from a stream; an existing object is kept', async () => {
    const src = join(dir, `src-${mode}`);
    writeFileSync(src, 'from a path');
    const c1 = await repo.writeFile(reg(), { path: src });
    expect(c1).toBe(contentChecksumOf(reg(), enc.encode('from a path')));
    const before = lstatSync(repo.objectPath('file', c1)).ino;
    const { Readable } = await import('node:stream');
    const c2 = await repo.writeFile(reg(), { stream: Readable.from([Buffer.from('from a '), Buffer.from('path')]), size: 11 });
    expect(c2).toBe(c1);
    expect(lstatSync(repo.objectPath('file', c1)).ino).toBe(before);
    await expect(repo.writeFile(reg(), { stream: Readable.from([Buffer.from('short')]), size: 11 })).rejects.toBeInstanceOf(LarchError);
  });

  it('rejects a wrong expected checksum without publishing or leaving tmp files', async () => {
    const wrong = 'ab'.repeat(32);
    await expect(repo.writeFile(reg(), { bytes: enc.encode('x') }, { expectedChecksum: wrong })).rejects.toMatchObject({ code: 'OBJECT_CORRUPTED' });
    expect(await repo.hasObject('file', wrong)).toBe(false);
    expect(readdirSync(repo.tmpPath).filter((f) => f.startsWith('larch-'))).toEqual([]);
  });

  it('detects a corrupted object and a missing one', async () => {
    const data = enc.encode('precious data '.repeat(50));
    const c = await repo.writeFile(reg(), { bytes: data });
    const p = repo.objectPath('file', c);
    const bytes = readFileSync(p);
    bytes[bytes.length - 3] ^= 0x55;
    chmodSync(p, 0o644);
    writeFileSync(p, bytes);
    await expect(repo.verifyFile(c)).rejects.toMatchObject({ code: 'OBJECT_CORRUPTED' });
    await expect(repo.verifyFile('00'.repeat(32))).rejects.toMatchObject({ code: 'OBJECT_MISSING' });
  });

  if (mode === 'bare-user-only') {
    it('refuses modes, owners and xattrs it cannot represent', async () => {
      await expect(repo.writeFile(reg(0o4755), { bytes: enc.encode('x') })).rejects.toMatchObject({ code: 'UNSUPPORTED_FILE' });
      await expect(repo.writeFile(reg(0o644, { uid: 5 }), { bytes: enc.encode('x') })).rejects.toMatchObject({ code: 'UNSUPPORTED_FILE' });
    });
  }
});

describe('archive reading limits', () => {
  it('stops inflating at the declared size (decompression bomb)', async () => {
    const repo = await Repo.init({ path: fresh(), mode: 'archive' });
    const meta = reg();
    const declared = 10;
    const payload = Buffer.alloc(5 * 1024 * 1024);
    const c = contentChecksumOf(meta, payload.subarray(0, declared));
    const p = repo.objectPath('file', c);
    mkdirSync(join(p, '..'), { recursive: true });
    writeFileSync(p, Buffer.concat([serializeArchiveHeader({ meta, size: declared }), deflateRawSync(payload)]));
    const f = await repo.openFile(c);
    expect(f.size).toBe(declared);
    await expect(readAll(f.open())).rejects.toMatchObject({ code: 'OBJECT_CORRUPTED' });
    await expect(repo.verifyFile(c)).rejects.toMatchObject({ code: 'OBJECT_CORRUPTED' });
  });
  it('maps invalid deflate data to OBJECT_CORRUPTED and closes the file when a reader stops early', async () => {
    const repo = await Repo.init({ path: fresh(), mode: 'archive' });
    const meta = reg();
    const c = 'ab'.repeat(32);
    const p = repo.objectPath('file', c);
    mkdirSync(join(p, '..'), { recursive: true });
    writeFileSync(p, Buffer.concat([serializeArchiveHeader({ meta, size: 100 }), Buffer.from('ffffffffffffffffffff', 'hex')]));
    await expect(repo.verifyFile(c)).rejects.toMatchObject({ code: 'OBJECT_CORRUPTED' });
    const good = await repo.writeFile(meta, { bytes: new Uint8Array(1 << 20).fill(7) });
    const s = (await repo.openFile(good)).open() as import('node:stream').Readable;
    await new Promise<void>((res) => {
      s.once('data', () => {
        s.destroy();
        res();
      });
    });
  });
  it('rejects a header length beyond the file', async () => {
    const repo = await Repo.init({ path: fresh(), mode: 'archive' });
    const c = 'cd'.repeat(32);
    const p = repo.objectPath('file', c);
    mkdirSync(join(p, '..'), { recursive: true });
    writeFileSync(p, Buffer.from('00001000000000000000', 'hex'));
    await expect(repo.openFile(c)).rejects.toMatchObject({ code: 'OBJECT_CORRUPTED' });
  });
});

interop('reads and verifies every content object the real ostree wrote, in every mode', async () => {
  const tree = join(dir, 'ostree-tree');
  mkdirSync(join(tree, 'sub'), { recursive: true });
  writeFileSync(join(tree, 'hello.txt'), 'hello\n');
  writeFileSync(join(tree, 'exec'), '#!/bin/sh\n', { mode: 0o755 });
  writeFileSync(join(tree, 'sub', 'empty'), '');
  symlinkSync('hello.txt', join(tree, 'link'));
  execFileSync('setfattr', ['-n', 'user.demo', '-v', 'v', join(tree, 'hello.txt')]);
  for (const mode of MODES) {
    const p = fresh();
    ostree('init', `--repo=${p}`, `--mode=${mode}`);
    const commit = ostree('commit', `--repo=${p}`, '-b', 'main', `--tree=dir=${tree}`, '--timestamp=2020-01-01 00:00:00 +0000').trim();
    const repo = await Repo.open(p);
    let files = 0;
    const seen: string[] = [];
    for await (const o of repo.listObjects()) {
      seen.push(o.type);
      if (o.type === 'file') {
        await repo.verifyFile(o.checksum);
        files++;
      } else if (o.type !== 'commitmeta' && o.type !== 'tombstone-commit') {
        await repo.readMetadata(o.type, o.checksum, { verify: true });
      }
    }
    expect(files).toBe(4);
    expect(seen.filter((t) => t === 'commit')).toHaveLength(1);
    const c = await repo.readCommit(commit);
    const root = await repo.readDirTree(c.rootTree);
    expect(root.files.map((f) => f.name)).toEqual(['exec', 'hello.txt', 'link']);
    expect((await repo.readDirMeta(c.rootMeta)).mode & 0o170000).toBe(0o040000);
    expect(await repo.resolveRef('main')).toBe(commit);
  }
});

describe('metadata objects', () => {
  it('writes dirmeta idempotently, verifies, lists and deletes', async () => {
    const repo = await Repo.init({ path: fresh(), mode: 'archive' });
    const bytes = serializeDirMeta({ uid: 0, gid: 0, mode: 0o40755, xattrs: [] });
    const c = await repo.writeMetadata('dirmeta', bytes);
    expect(c).toBe('446a0ef11b7cc167f3b603e585c7eeeeb675faa412d5ec73f62988eb0b6c5488');
    expect(await repo.writeMetadata('dirmeta', bytes)).toBe(c);
    expect(Buffer.from(await repo.readMetadata('dirmeta', c, { verify: true }))).toEqual(Buffer.from(bytes));
    const listed = [];
    for await (const o of repo.listObjects()) listed.push(o);
    expect(listed).toEqual([{ type: 'dirmeta', checksum: c }]);
    writeFileSync(join(repo.path, 'objects', 'zz-not-an-object'), '');
    writeFileSync(join(repo.path, 'objects', '44', 'junk.txt'), '');
    const again = [];
    for await (const o of repo.listObjects()) again.push(o);
    expect(again).toHaveLength(1);
    await expect(repo.writeMetadata('dirtree', new Uint8Array([1, 2, 3]))).rejects.toMatchObject({ code: 'OBJECT_CORRUPTED' });
    await repo.deleteObject('dirmeta', c);
    await expect(repo.readMetadata('dirmeta', c)).rejects.toMatchObject({ code: 'OBJECT_MISSING' });
    await expect(repo.deleteObject('dirmeta', c)).rejects.toMatchObject({ code: 'OBJECT_MISSING' });
  });

  it('detects a metadata object whose name does not match its bytes', async () => {
    const repo = await Repo.init({ path: fresh(), mode: 'bare' });
    const c = await repo.writeMetadata('dirmeta', serializeDirMeta({ uid: 0, gid: 0, mode: 0o40755, xattrs: [] }));
    writeFileSync(repo.objectPath('dirmeta', c), serializeDirMeta({ uid: 1, gid: 0, mode: 0o40755, xattrs: [] }));
    await expect(repo.readDirMeta(c)).rejects.toMatchObject({ code: 'OBJECT_CORRUPTED' });
    await expect(repo.readMetadata('dirmeta', c, { verify: true })).rejects.toThrow(/checksum expected/);
  });

  it('detached metadata and partial markers', async () => {
    const repo = await Repo.init({ path: fresh(), mode: 'bare' });
    const c = 'ab'.repeat(32);
    expect(await repo.readCommitMeta(c)).toBeNull();
    await repo.writeCommitMeta(c, [['ostree.sign.dummy', new Variant('aay', [enc.encode('abc')])]]);
    expect(createHash('sha256').update(readFileSync(repo.objectPath('commitmeta', c))).digest('hex')).toBeTruthy();
    expect(readFileSync(repo.objectPath('commitmeta', c)).toString('hex')).toBe('6f73747265652e7369676e2e64756d6d790000000000000061626303006161791221');
    const back = await repo.readCommitMeta(c);
    expect(back![0][0]).toBe('ostree.sign.dummy');
    await repo.writeCommitMeta(c, null);
    expect(await repo.readCommitMeta(c)).toBeNull();
    expect(await repo.isCommitPartial(c)).toBe(false);
    await repo.markCommitPartial(c);
    expect(existsSync(join(repo.path, 'state', `${c}.commitpartial`))).toBe(true);
    expect(await repo.isCommitPartial(c)).toBe(true);
    await repo.clearCommitPartial(c);
    expect(await repo.isCommitPartial(c)).toBe(false);
  });

  it('cleans tmp/ entries older than core.tmp-expiry-secs only, and never cache/', async () => {
    const repo = await Repo.init({ path: fresh(), mode: 'bare' });
    writeFileSync(join(repo.tmpPath, 'larch-obj-old'), 'x');
    writeFileSync(join(repo.tmpPath, 'other-tool-file'), 'x');
    mkdirSync(join(repo.tmpPath, 'summary-abc'));
    writeFileSync(join(repo.tmpPath, 'summary-abc', 'summary'), 'x');
    expect(await repo.cleanupTmp()).toBe(0);
    expect(await repo.cleanupTmp({ now: Date.now() + 3600 * 1000 })).toBe(0);
    // As ostree's cleanup_tmpdir: anything but cache/ once older than the expiry (one day).
    expect(await repo.cleanupTmp({ now: Date.now() + 86401 * 1000 })).toBe(3);
    expect(readdirSync(repo.tmpPath).sort()).toEqual(['cache']);
  });

  it('enforces the metadata size limit before reading', async () => {
    const repo = await Repo.init({ path: fresh(), mode: 'bare' });
    const c = 'ef'.repeat(32);
    const p = repo.objectPath('commit', c);
    mkdirSync(join(p, '..'), { recursive: true });
    writeFileSync(p, '');
    const { truncateSync } = await import('node:fs');
    truncateSync(p, 128 * 1024 * 1024 + 1);
    await expect(repo.readMetadata('commit', c)).rejects.toMatchObject({ code: 'LIMIT_EXCEEDED' });
  });
});

describe('Repo.stageVerifiedFileSync', () => {
  const work = mkdtempSync(join(tmpdir(), 'larch-stage-sync-'));
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('stages regular files and symlinks in bare-user mode that the batch publishes and verifyFile accepts', async () => {
    const repo = await Repo.init({ path: join(work, 'bu'), mode: 'bare-user' });
    const file: FileMeta = { uid: 0, gid: 0, mode: S_IFREG | 0o644, symlinkTarget: '', xattrs: [] };
    const link: FileMeta = { uid: 0, gid: 0, mode: S_IFLNK | 0o777, symlinkTarget: 'hello.txt', xattrs: [] };
    const payload = new TextEncoder().encode('hello\n');
    const fileSum = contentChecksumOf(file, payload);
    const linkSum = contentChecksumOf(link, new Uint8Array(0));
    const batch = repo.beginBatch();
    expect(repo.stageVerifiedFileSync(file, payload, fileSum, batch)).toBe(payload.length);
    repo.stageVerifiedFileSync(link, new Uint8Array(0), linkSum, batch);
    expect(await repo.hasObject('file', fileSum)).toBe(false);
    await batch.commit();
    await repo.verifyFile(fileSum);
    await repo.verifyFile(linkSum);
    expect((await repo.openFile(linkSum)).meta.symlinkTarget).toBe('hello.txt');
  });

  it('refuses archive repos, which keep the received .filez', async () => {
    const repo = await Repo.init({ path: join(work, 'ar'), mode: 'archive' });
    const file: FileMeta = { uid: 0, gid: 0, mode: S_IFREG | 0o644, symlinkTarget: '', xattrs: [] };
    expect(() => repo.stageVerifiedFileSync(file, new Uint8Array(1), '0'.repeat(64), repo.beginBatch())).toThrow(
      expect.objectContaining({ code: 'INVALID_ARGUMENT' }),
    );
  });
});

describe('Repo.beginFileSync', () => {
  const work = mkdtempSync(join(tmpdir(), 'larch-stage-stream-'));
  afterAll(() => rmSync(work, { recursive: true, force: true }));
  const meta: FileMeta = { uid: 0, gid: 0, mode: S_IFREG | 0o755, symlinkTarget: '', xattrs: [] };
  const data = Buffer.concat(Array.from({ length: 40 }, (_, i) => Buffer.alloc(100_000, i)));

  for (const mode of ['bare-user', 'bare'] as RepoMode[]) {
    it(`stages a file written in pieces, hashed as written (${mode})`, async () => {
      const repo = await Repo.init({ path: join(work, mode), mode });
      const sum = contentChecksumOf(meta, data);
      const batch = repo.beginBatch();
      const w = repo.beginFileSync(meta);
      for (let i = 0; i < data.length; i += 65_536) w.write(data.subarray(i, i + 65_536));
      expect(w.written).toBe(data.length);
      w.finish(sum, batch);
      expect(await repo.hasObject('file', sum)).toBe(false);
      await batch.commit();
      await repo.verifyFile(sum);
      const f = await repo.openFile(sum);
      expect(f.meta.mode).toBe(meta.mode);
      expect(readdirSync(repo.tmpPath).filter((n) => n.startsWith('larch-'))).toEqual([]);
    });
  }

  it('refuses content that does not hash to the name, leaving nothing behind', async () => {
    const repo = await Repo.init({ path: join(work, 'bad'), mode: 'bare-user' });
    const batch = repo.beginBatch();
    const w = repo.beginFileSync(meta);
    w.write(data);
    expect(() => w.finish(contentChecksumOf(meta, data.subarray(1)), batch)).toThrow(expect.objectContaining({ code: 'OBJECT_CORRUPTED' }));
    await batch.commit();
    expect(readdirSync(repo.tmpPath).filter((n) => n.startsWith('larch-'))).toEqual([]);
    const aborted = repo.beginFileSync(meta);
    aborted.write(data.subarray(0, 10));
    aborted.abort();
    expect(readdirSync(repo.tmpPath).filter((n) => n.startsWith('larch-'))).toEqual([]);
  });

  it('refuses archive repos and non-regular files', async () => {
    const repo = await Repo.init({ path: join(work, 'ar'), mode: 'archive' });
    expect(() => repo.beginFileSync(meta)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    const bu = await Repo.init({ path: join(work, 'bu2'), mode: 'bare-user' });
    expect(() => bu.beginFileSync({ ...meta, mode: S_IFLNK | 0o777, symlinkTarget: 'x' })).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
  });
});

describe('Repo.openRegularFileSync', () => {
  const work = mkdtempSync(join(tmpdir(), 'larch-open-regular-'));
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  for (const mode of ['bare-user', 'bare'] as RepoMode[]) {
    it(`opens regular objects and refuses symlinks and missing objects (${mode})`, async () => {
      const repo = await Repo.init({ path: join(work, mode), mode });
      const file: FileMeta = { uid: 0, gid: 0, mode: S_IFREG | 0o644, symlinkTarget: '', xattrs: [] };
      const link: FileMeta = { uid: 0, gid: 0, mode: S_IFLNK | 0o777, symlinkTarget: 'target', xattrs: [] };
      const payload = Buffer.from('some content\n');
      const fileSum = contentChecksumOf(file, payload);
      const linkSum = contentChecksumOf(link);
      const batch = repo.beginBatch();
      repo.stageVerifiedFileSync(file, payload, fileSum, batch);
      repo.stageVerifiedFileSync(link, new Uint8Array(0), linkSum, batch);
      await batch.commit();
      const { fd, size } = repo.openRegularFileSync(fileSum);
      const { readSync, closeSync } = await import('node:fs');
      const buf = Buffer.alloc(size);
      expect(readSync(fd, buf, 0, size, 0)).toBe(payload.length);
      closeSync(fd);
      expect(buf.equals(payload)).toBe(true);
      expect(() => repo.openRegularFileSync(linkSum)).toThrow(expect.objectContaining({ code: 'OBJECT_CORRUPTED', data: expect.objectContaining({ detail: 'not a regular file' }) }));
      expect(() => repo.openRegularFileSync('ab'.repeat(32))).toThrow(expect.objectContaining({ code: 'OBJECT_MISSING' }));
    });
  }
});
