/**
 * A small archive repository for the browse tests: ref `os/main` with three commits (versions 1.0,
 * 1.1, 1.2) that modify, add and remove files, a symlink, and two static deltas made with
 * @larch/delta (from scratch to the head, and parent → head).
 */
import { mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { commitTree, Repo, type Checksum } from '@larch/core-store';
import { generateDelta } from '@larch/delta';
import { Variant } from '@larch/gvariant';

export interface BrowseFixture {
  repo: Repo;
  commits: [Checksum, Checksum, Checksum];
}

/** A symbol table of `n` lines, a stand-in for a library that changes a little between releases. */
function symbols(n: number, changed: number[] = []): string {
  const lines: string[] = [];
  for (let i = 0; i < n; i++) {
    const addr = ((i * 2654435761) >>> 0) ^ (changed.includes(i) ? 0xffff : 0);
    lines.push(`sym_${String(i).padStart(5, '0')} = 0x${addr.toString(16).padStart(8, '0')}`);
  }
  return `${lines.join('\n')}\n`;
}

async function put(root: string, rel: string, content: string): Promise<void> {
  await mkdir(join(root, rel, '..'), { recursive: true });
  await writeFile(join(root, rel), content);
}

export async function makeBrowseFixture(dir: string, opts: { deltas?: boolean } = {}): Promise<BrowseFixture> {
  const repo = await Repo.init({ path: join(dir, 'repo'), mode: 'archive' });
  const tree = join(dir, 'tree');
  await put(tree, 'etc/os-release', 'NAME=Larch\nVERSION=1.0\n');
  await put(tree, 'usr/bin/hello', '#!/bin/sh\necho hello\n');
  await put(tree, 'usr/lib/libsym.so', symbols(6000));
  await put(tree, 'usr/lib/libold.so', 'old library '.repeat(200));
  await symlink('usr/bin', join(tree, 'bin'));
  const c1 = await commitTree(repo, { tree, branch: 'os/main', subject: 'First release', body: 'The base system.', timestamp: 1_700_000_000n, metadata: [['version', new Variant('s', '1.0')]] });
  await put(tree, 'etc/os-release', 'NAME=Larch\nVERSION=1.1\n');
  await put(tree, 'usr/share/doc/readme', 'Read me.\n');
  const c2 = await commitTree(repo, { tree, branch: 'os/main', subject: 'Add documentation', timestamp: 1_700_086_400n, metadata: [['version', new Variant('s', '1.1')]] });
  await rm(join(tree, 'usr/lib/libold.so'));
  await put(tree, 'usr/bin/hello', '#!/bin/sh\necho hello, world\n');
  await put(tree, 'usr/lib/libsym.so', symbols(6000, [10, 2000, 4000]));
  const c3 = await commitTree(repo, { tree, branch: 'os/main', subject: 'Drop the old library', timestamp: 1_700_172_800n, metadata: [['version', new Variant('s', '1.2')]] });
  if (opts.deltas !== false) {
    await generateDelta(repo, { from: null, to: c3.commit, minFallbackSize: 0 });
    await generateDelta(repo, { from: c2.commit, to: c3.commit, minFallbackSize: 0 });
  }
  return { repo, commits: [c1.commit, c2.commit, c3.commit] };
}
