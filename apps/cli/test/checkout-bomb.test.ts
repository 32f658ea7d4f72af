/**
 * A hostile archive repository: a content object of a few hundred KB on disk whose payload
 * inflates to 512 MiB while its header declares 10 bytes. `larch checkout` must refuse it as
 * corrupted, with one error line, without inflating it: its memory stays that of any small
 * checkout. (ostree 2022.7 streams the whole payload into the file, 512 MiB of disk for a few
 * hundred KB of repository, in constant memory, and exits 0; its fsck reports the object.)
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createDeflateRaw } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Repo, serializeArchiveHeader, serializeCommit, serializeDirMeta, serializeDirTree } from '@larch/core-store';
import { CLI, expectOneErrorLine, scratch } from './helpers.js';

const MB = 1024 * 1024;

/** Raw deflate of `n` MiB of zeros, fed a MiB at a time. */
async function zeros(n: number): Promise<Buffer> {
  const z = createDeflateRaw({ level: 9 });
  const out: Buffer[] = [];
  z.on('data', (b: Buffer) => out.push(b));
  const done = new Promise((r) => z.on('end', r));
  const mib = Buffer.alloc(MB);
  for (let i = 0; i < n; i++) if (!z.write(mib)) await new Promise((r) => z.once('drain', r));
  z.end();
  await done;
  return Buffer.concat(out);
}

describe('checkout of an archive object that inflates past its declared size', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let repoPath: string;
  const bomb = 'ab'.repeat(32);

  beforeAll(async () => {
    ({ dir, cleanup } = await scratch('larch-bomb-'));
    repoPath = join(dir, 'repo');
    const repo = await Repo.init({ path: repoPath, mode: 'archive' });
    const header = serializeArchiveHeader({ meta: { uid: 0, gid: 0, mode: 0o100644, symlinkTarget: '', xattrs: [] }, size: 10 });
    const p = repo.objectPath('file', bomb);
    mkdirSync(join(p, '..'), { recursive: true });
    writeFileSync(p, Buffer.concat([header, await zeros(512)]));
    const meta = await repo.writeMetadata('dirmeta', serializeDirMeta({ uid: 0, gid: 0, mode: 0o40755, xattrs: [] }));
    const tree = await repo.writeMetadata('dirtree', serializeDirTree({ files: [{ name: 'bomb', checksum: bomb }], dirs: [] }));
    const commit = await repo.writeMetadata('commit', serializeCommit({ metadata: [], parent: null, subject: 'bomb', body: '', timestamp: 0n, rootTree: tree, rootMeta: meta }));
    await repo.setRef('bomb', commit);
  }, 120_000);
  afterAll(async () => cleanup());

  it('fails with one line naming the object, in the memory of a small checkout', () => {
    if (!existsSync('/usr/bin/time')) throw new Error('GNU time is needed: apt-get install -y time');
    const r = spawnSync('/usr/bin/time', ['-f', 'peak %M', process.execPath, CLI, 'checkout', `--repo=${repoPath}`, 'bomb', join(dir, 'co')], { encoding: 'utf8' });
    const peak = Number(/peak (\d+)\s*$/.exec(r.stderr)![1]) * 1024;
    // GNU time adds its own lines after the command's.
    const stderr = r.stderr.replace(/(Command exited with non-zero status \d+\n)?peak \d+\s*$/, '');
    expect(expectOneErrorLine({ code: r.status ?? -1, stdout: r.stdout, stderr })).toContain(bomb);
    expect(peak).toBeLessThan(150 * MB);
  });
});
