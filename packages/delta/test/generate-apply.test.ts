import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Repo, commitTree, fsck, type RepoMode } from '@larch/core-store';
import { tmpDir, type TmpDir } from '@larch/test-fixtures';
import { applyOffline, applySuperblock, directoryPartSource, partComplete, deleteDelta, deltaRelDir, generateDelta, listDeltas, parseDeltaIndex, readDelta, showDelta, deltaIndexRelPath } from '../src/index.js';
import { xzCompress } from '../src/xz.js';
import { bsdiff } from '../src/bsdiff.js';
import { expectSameTree, makeVersions, seeded, type Versions } from './helpers.js';

let tmp: TmpDir;
let v: Versions;

beforeAll(async () => {
  tmp = await tmpDir('larch-delta-');
  v = await makeVersions(tmp.path);
});
afterAll(async () => {
  await tmp.cleanup();
});

async function target(name: string, mode: RepoMode, withV1: boolean): Promise<Repo> {
  const repo = await Repo.init({ path: join(tmp.path, name), mode });
  if (withV1) {
    await generateDelta(v.repo, { from: null, to: v.v1, minFallbackSize: 0 });
    await applyOffline(repo, join(v.repo.path, deltaRelDir(null, v.v1)));
  }
  return repo;
}

async function objectCount(repo: Repo): Promise<number> {
  let n = 0;
  for await (const _ of repo.listObjects()) n++;
  return n;
}

describe('generate + apply-offline', () => {
  it('a from-scratch delta rebuilds the commit in every repo mode', async () => {
    const stats = await generateDelta(v.repo, { from: null, to: v.v2, minFallbackSize: 0 });
    expect(stats.fallbacks).toBe(0);
    expect(stats.parts).toBe(1);
    for (const mode of ['bare-user', 'archive', 'bare'] as RepoMode[]) {
      const repo = await target(`scratch-${mode}`, mode, false);
      const r = await applyOffline(repo, join(v.repo.path, deltaRelDir(null, v.v2), 'superblock'));
      expect(r.commitWritten).toBe(true);
      expect((await fsck(repo)).errors).toEqual([]);
      await expectSameTree(repo, v.v2, join(tmp.path, `co-scratch-${mode}`), v.tree2);
    }
  });

  it('a FROM->TO delta uses bsdiff, rollsum and copies from a different file, and applies on top of FROM', async () => {
    const stats = await generateDelta(v.repo, { from: v.v1, to: v.v2, minFallbackSize: 0 });
    expect(stats.bsdiff).toBeGreaterThanOrEqual(2); // tool, libfoo.so.1 -> .so.2 (stem match), ...
    // The new Translation-en copies its checksum lines out of the old Packages file, in a part of its own.
    expect(stats.copy).toBe(1);
    const show = await showDelta(v.repo, `${v.v1}-${v.v2}`);
    expect(show.parts).toHaveLength(2);
    expect(show.parts[0].nobjects).toBe(1);
    // Written with copy ops out of the old file (one per copy) and literal writes between them.
    expect(show.parts[0].ops!.bspatch).toBe(0);
    expect(show.parts[0].ops!.setread).toBeGreaterThanOrEqual(50);
    expect(show.parts[0].ops!.write).toBeGreaterThanOrEqual(100);
    expect(show.parts[1].ops!.bspatch).toBe(stats.bsdiff);
    // Only new objects travel: much smaller than the scratch delta.
    const scratch = await readDelta(v.repo, v.v2);
    expect(show.partSize).toBeLessThan(scratch.superblock.parts[0].size / 3);
    // The copy part is smaller than the same file compressed alone.
    const translation = await fsp.readFile(join(v.tree2, 'var/lib/apt/lists/main_i18n_Translation-en'));
    expect(show.parts[0].size).toBeLessThan((await xzCompress(translation)).length * 0.95);
    for (const mode of ['bare-user', 'archive'] as RepoMode[]) {
      const repo = await target(`from-${mode}`, mode, true);
      const before = await objectCount(repo);
      const r = await applyOffline(repo, join(v.repo.path, deltaRelDir(v.v1, v.v2)));
      expect(r.partsApplied).toBe(2);
      expect(await objectCount(repo)).toBeGreaterThan(before);
      expect((await fsck(repo)).errors).toEqual([]);
      await expectSameTree(repo, v.v2, join(tmp.path, `co-from-${mode}`), v.tree2);
      // Applying again skips every part.
      const again = await applyOffline(repo, join(v.repo.path, deltaRelDir(v.v1, v.v2)));
      expect(again).toMatchObject({ partsApplied: 0, partsSkipped: 2, commitWritten: false });
    }
  });

  it('keeps a bsdiff patch larger than its file when it compresses smaller (a rebuilt binary)', async () => {
    // Every 100 bytes a few new bytes: bsdiff finds only short matches, so its raw patch (24
    // control bytes a record) outgrows the file, yet it is mostly zeros and compresses to a
    // fraction of the file.
    const old = seeded(120_000, 21);
    const pieces: Buffer[] = [];
    for (let i = 0; i < old.length; i += 100) pieces.push(old.subarray(i, i + 100), seeded(6, 1000 + i));
    const nw = Buffer.concat(pieces);
    const raw = Buffer.concat(bsdiff(old, nw)).length;
    expect(raw).toBeGreaterThan(nw.length * 1.05);
    const dir = join(tmp.path, 'rebuilt');
    await fsp.mkdir(join(dir, 't1/usr/lib'), { recursive: true });
    await fsp.mkdir(join(dir, 't2/usr/lib'), { recursive: true });
    await fsp.writeFile(join(dir, 't1/usr/lib/libre.so.1'), old);
    await fsp.writeFile(join(dir, 't2/usr/lib/libre.so.1'), nw);
    const repo = await Repo.init({ path: join(dir, 'repo'), mode: 'archive' });
    const opts = { branch: 'main', ownerUid: 0, ownerGid: 0, noXattrs: true };
    const c1 = (await commitTree(repo, { ...opts, tree: join(dir, 't1'), subject: 'v1', timestamp: 1n })).commit;
    const c2 = (await commitTree(repo, { ...opts, tree: join(dir, 't2'), subject: 'v2', timestamp: 2n })).commit;
    const stats = await generateDelta(repo, { from: c1, to: c2, minFallbackSize: 0 });
    expect(stats.bsdiff).toBe(1);
    expect(stats.size).toBeLessThan((await xzCompress(nw)).length / 4);
    const client = await Repo.init({ path: join(dir, 'client'), mode: 'bare-user' });
    await generateDelta(repo, { from: null, to: c1, minFallbackSize: 0 });
    await applyOffline(client, join(repo.path, deltaRelDir(null, c1)));
    await applyOffline(client, join(repo.path, deltaRelDir(c1, c2)));
    expect((await fsck(client)).errors).toEqual([]);
    await expectSameTree(client, c2, join(dir, 'co'), join(dir, 't2'));
  });

  it('rollsum when bsdiff is disabled; several parts with a small chunk size; inline parts; no compression', async () => {
    const stats = await generateDelta(v.repo, { from: v.v1, to: v.v2, minFallbackSize: 0, disableBsdiff: true, maxChunkSize: 1, inlineParts: true, compression: 'none' });
    expect(stats.bsdiff).toBe(0);
    expect(stats.rollsum).toBeGreaterThanOrEqual(1);
    const d = await readDelta(v.repo, `${v.v1}-${v.v2}`);
    expect(d.superblock.parts.length).toBe(stats.parts);
    expect(d.superblock.metadata.filter(([k]) => k.startsWith('deltas/')).length).toBe(stats.parts);
    expect((await fsp.readdir(join(v.repo.path, deltaRelDir(v.v1, v.v2)))).sort()).toEqual(['superblock']);
    const big = await generateDelta(v.repo, { from: null, to: v.v2, minFallbackSize: 0, maxChunkSize: 1 });
    expect(big.parts).toBeGreaterThan(1);
    const repo = await target('multi', 'bare-user', true);
    await applyOffline(repo, join(v.repo.path, deltaRelDir(v.v1, v.v2)));
    await expectSameTree(repo, v.v2, join(tmp.path, 'co-multi'), v.tree2);
    const repo2 = await target('multi2', 'archive', false);
    await applyOffline(repo2, join(v.repo.path, deltaRelDir(null, v.v2)));
    await expectSameTree(repo2, v.v2, join(tmp.path, 'co-multi2'), v.tree2);
  });

  it('published per part, a part that fails to load still lets the parts in flight run, so a retry skips them', async () => {
    await generateDelta(v.repo, { from: null, to: v.v2, minFallbackSize: 0, maxChunkSize: 1 });
    const { superblock: sb } = await readDelta(v.repo, v.v2);
    expect(sb.parts.length).toBeGreaterThan(2);
    const dir = join(v.repo.path, deltaRelDir(null, v.v2));
    const files = directoryPartSource(dir);
    // Part 1 fails at once while part 0 is still being read (it is read once part 1 has failed).
    let part1Failed!: () => void;
    const afterPart1 = new Promise<void>((r) => (part1Failed = r));
    const source = {
      async readPart(i: number, h: (typeof sb.parts)[number]): Promise<Uint8Array> {
        if (i === 1) {
          setImmediate(part1Failed);
          throw new Error('part 1 unreachable');
        }
        if (i === 0) await afterPart1;
        return files.readPart(i, h);
      },
    };
    const repo = await target('per-part-fail', 'bare-user', false);
    await expect(applySuperblock(repo, sb, source, { publish: 'per-part', prefetch: 2 })).rejects.toThrow(/part 1 unreachable/);
    expect(partComplete(repo, sb.parts[0])).toBe(true);
    expect(partComplete(repo, sb.parts[1])).toBe(false);
    expect(await repo.hasObject('commit', v.v2)).toBe(false);
    const retry = await applySuperblock(repo, sb, files, { publish: 'per-part' });
    expect(retry.partsSkipped).toBeGreaterThanOrEqual(1);
    expect((await fsck(repo)).errors).toEqual([]);
    // Published at the end, the same failure leaves no part behind.
    const atEnd = await target('at-end-fail', 'bare-user', false);
    await expect(applySuperblock(atEnd, sb, source, { publish: 'at-end', prefetch: 2 })).rejects.toThrow(/part 1 unreachable/);
    expect(partComplete(atEnd, sb.parts[0])).toBe(false);
  });

  it('fallbacks: large files leave the parts; apply-offline refuses such a delta', async () => {
    const stats = await generateDelta(v.repo, { from: null, to: v.v2, minFallbackSize: 1 });
    expect(stats.fallbacks).toBe(1);
    const d = await readDelta(v.repo, v.v2);
    expect(d.superblock.fallbacks[0].size).toBe(1_200_000);
    const repo = await target('fallback', 'bare-user', false);
    await expect(applyOffline(repo, join(v.repo.path, deltaRelDir(null, v.v2)))).rejects.toThrow(/Cannot execute static delta with 1 fallback objects offline/);
    expect(await repo.hasObject('commit', v.v2)).toBe(false);
  });

  it('lists, indexes and deletes deltas', async () => {
    await generateDelta(v.repo, { from: v.v1, to: v.v2 });
    const names = (await listDeltas(v.repo)).map((d) => d.name);
    expect(names).toContain(`${v.v1}-${v.v2}`);
    const idx = parseDeltaIndex(await fsp.readFile(join(v.repo.path, deltaIndexRelPath(v.v2))));
    expect([...idx.keys()].sort()).toEqual([v.v2, `${v.v1}-${v.v2}`].sort());
    expect(v.repo.config.getBoolean('core', 'indexed-deltas', false)).toBe(true);
    await deleteDelta(v.repo, `${v.v1}-${v.v2}`);
    expect((await listDeltas(v.repo)).map((d) => d.name)).not.toContain(`${v.v1}-${v.v2}`);
    const idx2 = parseDeltaIndex(await fsp.readFile(join(v.repo.path, deltaIndexRelPath(v.v2))));
    expect([...idx2.keys()]).toEqual([v.v2]);
    await expect(deleteDelta(v.repo, `${v.v1}-${v.v2}`)).rejects.toThrow(`Can't find delta ${v.v1}-${v.v2}`);
    await expect(showDelta(v.repo, 'nonsense')).rejects.toThrow('Invalid rev nonsense');
  });

  it('refuses a FROM delta when FROM is not local', async () => {
    await generateDelta(v.repo, { from: v.v1, to: v.v2 });
    const repo = await target('nofrom', 'bare-user', false);
    await expect(applyOffline(repo, join(v.repo.path, deltaRelDir(v.v1, v.v2)))).rejects.toThrow(`Commit ${v.v1}, which is the delta source, is not in repository`);
  });
});
