/**
 * A tree of 42 objects that spells 2^40 paths: 40 levels of dirtrees, each naming the next one
 * twice (`a/` and `b/`), down to an empty directory, all with one dirmeta. A pull must walk
 * objects, not paths: it completes quickly, asks for each object once, and its memory does not
 * grow with the number of paths — the whole tree, and a subpath of it, from a real HTTP server.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Repo, generateSummary, serializeCommit, serializeDirMeta, serializeDirTree } from '@larch/core-store';
import { tmpDir, type TmpDir } from '@larch/test-fixtures';
import { addRemote, pull } from '../src/index.js';
import { HostileServer } from './hostile-server.js';

const LEVELS = 40;
const MiB = 1024 * 1024;

describe('pull of a tree with 2^40 paths and 42 objects', () => {
  let tmp: TmpDir;
  let server: HostileServer;
  let commit = '';
  const objects = new Set<string>();

  beforeAll(async () => {
    tmp = await tmpDir('larch-deep-tree-');
    const src = await Repo.init({ path: tmp.join('src'), mode: 'archive' });
    const path = (c: string, ext: string): string => `/objects/${c.slice(0, 2)}/${c.slice(2)}.${ext}`;
    const meta = await src.writeMetadata('dirmeta', serializeDirMeta({ uid: 0, gid: 0, mode: 0o40755, xattrs: [] }));
    objects.add(path(meta, 'dirmeta'));
    let tree = await src.writeMetadata('dirtree', serializeDirTree({ files: [], dirs: [] }));
    objects.add(path(tree, 'dirtree'));
    for (let i = 0; i < LEVELS; i++) {
      const next = { treeChecksum: tree, metaChecksum: meta };
      tree = await src.writeMetadata('dirtree', serializeDirTree({ files: [], dirs: [{ name: 'a', ...next }, { name: 'b', ...next }] }));
      objects.add(path(tree, 'dirtree'));
    }
    expect(objects.size).toBe(LEVELS + 2);
    commit = await src.writeMetadata('commit', serializeCommit({ metadata: [], parent: null, subject: 'deep', body: '', timestamp: 1_700_000_000n, rootTree: tree, rootMeta: meta }));
    await src.setRef('main', commit);
    await generateSummary(await Repo.open(src.path));
    server = await HostileServer.start(src.path);
  });
  afterAll(async () => {
    await server?.stop();
    await tmp?.cleanup();
  });

  for (const c of [
    { mode: 'bare-user' as const, subpath: undefined },
    { mode: 'archive' as const, subpath: undefined },
    { mode: 'bare-user' as const, subpath: '/a/b/a/b' },
  ]) {
    it(`${c.mode}${c.subpath ? `, subpath ${c.subpath}` : ''}: each object fetched once, memory flat`, async () => {
      const repo = await Repo.init({ path: tmp.join(`dest-${c.mode}-${c.subpath ? 'sub' : 'all'}`), mode: c.mode });
      await addRemote(repo, { name: 'h', url: server.url, gpgVerify: false });
      server.resetCounters();
      global.gc?.();
      const before = process.memoryUsage().heapUsed;
      const r = await pull({ repo, remote: 'h', refs: ['main'], ...(c.subpath ? { subpath: c.subpath } : {}) });
      const grown = process.memoryUsage().heapUsed - before;
      expect(r.refs[0].checksum).toBe(commit);
      const requested = server.requests.filter((p) => p.startsWith('/objects/') && !p.endsWith('.commitmeta'));
      expect(requested.length).toBe(new Set(requested).size);
      // Whole tree: every object once. Subpath: the commit, the dirmeta and the dirtrees on the way.
      const want = c.subpath ? 1 + 1 + (LEVELS + 1) : 1 + objects.size;
      expect(requested).toHaveLength(want);
      for (const p of requested) if (!p.endsWith('.commit')) expect(objects.has(p), p).toBe(true);
      expect(r.partialCommits).toEqual(c.subpath ? [commit] : []);
      // Per-path state for 2^40 paths could never fit; per-object state is a few kB.
      expect(grown).toBeLessThan(64 * MiB);
    });
  }
});
