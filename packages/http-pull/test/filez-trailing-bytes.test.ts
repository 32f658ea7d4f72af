/**
 * A `.filez` with bytes after its deflate stream (after its header, for a symlink). OSTree
 * accepts such an object and, parsing it and writing it anew, stores it without them (checked
 * with ostree 2022.7: `ostree pull` into an archive repo). Larch must do the same: the pull
 * succeeds, each stored object is the original header + deflate stream, byte for byte what
 * `ostree pull` stores, and `ostree fsck` passes. Covered: a small object (verified in memory), a
 * large one (streamed), a symlink, each into an archive repository, and the same into bare-user.
 */
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Repo } from '@larch/core-store';
import { interopDescribe, makeTree, ostreeOk, requireOstree, tmpDir, type TmpDir } from '@larch/test-fixtures';
import { addRemote, pull } from '../src/index.js';
import { repoObjectPaths } from './helpers.js';
import { HostileServer } from './hostile-server.js';

const describeInterop = interopDescribe(describe);

describeInterop('pull of .filez objects with trailing bytes (interop)', () => {
  let tmp: TmpDir;
  let server: HostileServer;
  let src: string;
  let commit: string;
  /** Request path → the object as ostree wrote it, for each object given trailing bytes. */
  const originals = new Map<string, Buffer>();

  beforeAll(async () => {
    requireOstree();
    tmp = await tmpDir('larch-filez-junk-');
    src = tmp.join('src');
    const tree = tmp.join('tree');
    await makeTree(tree, {
      'small.txt': 'a small file\n'.repeat(20),
      'big.bin': { type: 'file', generate: { size: 400_000, seed: 11 } },
      link: { type: 'symlink', target: 'small.txt' },
    });
    await ostreeOk(['init', `--repo=${src}`, '--mode=archive']);
    commit = (await ostreeOk(['commit', `--repo=${src}`, '-b', 'main', '--timestamp=2024-01-01 00:00:00 +0000', tree])).stdout.trim();
    await ostreeOk(['summary', '-u', `--repo=${src}`]);
    // Trailing bytes after every content object: a few after the small ones, 1 MiB after the big one.
    for (const p of await repoObjectPaths(src)) {
      if (!p.endsWith('.filez')) continue;
      const file = join(src, p);
      const orig = await fsp.readFile(file);
      originals.set(p, orig);
      await fsp.appendFile(file, orig.length > 256 * 1024 ? Buffer.alloc(1024 * 1024, 0x5a) : Buffer.from('JUNK after the stream'));
    }
    expect(originals.size).toBe(3);
    server = await HostileServer.start(src);
  });
  afterAll(async () => {
    await server?.stop();
    await tmp?.cleanup();
  });

  it('ostree itself pulls them and stores them without the trailing bytes', async () => {
    const dest = tmp.join('ostree-dest');
    await ostreeOk(['init', `--repo=${dest}`, '--mode=archive']);
    await ostreeOk(['remote', 'add', `--repo=${dest}`, '--no-gpg-verify', 'h', server.url]);
    await ostreeOk(['pull', `--repo=${dest}`, 'h', 'main']);
    for (const [p, orig] of originals) expect(Buffer.compare(await fsp.readFile(join(dest, p)), orig), p).toBe(0);
  });

  it('archive destination: stored as header + deflate stream, as ostree stores them; ostree fsck passes', async () => {
    const dest = tmp.join('archive-dest');
    const repo = await Repo.init({ path: dest, mode: 'archive' });
    await addRemote(repo, { name: 'h', url: server.url, gpgVerify: false });
    const r = await pull({ repo, remote: 'h', refs: ['main'] });
    expect(r.refs[0].checksum).toBe(commit);
    for (const [p, orig] of originals) {
      const stored = await fsp.readFile(join(dest, p));
      expect(stored.length, p).toBe(orig.length);
      expect(Buffer.compare(stored, orig), p).toBe(0);
    }
    await ostreeOk(['fsck', `--repo=${dest}`]);
  });

  it('bare-user destination: the pull succeeds and ostree fsck passes', async () => {
    const dest = tmp.join('bare-user-dest');
    const repo = await Repo.init({ path: dest, mode: 'bare-user' });
    await addRemote(repo, { name: 'h', url: server.url, gpgVerify: false });
    const r = await pull({ repo, remote: 'h', refs: ['main'] });
    expect(r.refs[0].checksum).toBe(commit);
    await ostreeOk(['fsck', `--repo=${dest}`]);
  });
});
