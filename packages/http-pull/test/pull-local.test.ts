/**
 * pull-local (interop): from an archive repo written by the real `ostree` and from a bare-user
 * repo, by path and by file:// URL, by ref and by checksum, with depth; the result must pass
 * `ostree fsck` and check out like the source. Corruption in the source is refused.
 */
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LarchError, Repo, type RepoMode } from '@larch/core-store';
import { compareTrees, formatDifferences, interopDescribe, ostree, ostreeOk, requireOstree, tmpDir, type TmpDir } from '@larch/test-fixtures';
import { pullLocal } from '../src/index.js';
import { makeOstreeRemote, ostreeCheckout, repoObjectPaths } from './helpers.js';

const describeInterop = interopDescribe(describe);

describeInterop('pullLocal (interop)', () => {
  let tmp: TmpDir;
  let remote: Awaited<ReturnType<typeof makeOstreeRemote>>;
  let bareUserSrc: string;

  beforeAll(async () => {
    requireOstree();
    tmp = await tmpDir('larch-pulllocal-');
    remote = await makeOstreeRemote(tmp);
    await ostreeCheckout(remote.repo, 'main', tmp.join('expected'));
    bareUserSrc = tmp.join('bu-src');
    await ostreeOk(['init', `--repo=${bareUserSrc}`, '--mode=bare-user']);
    await ostreeOk(['pull-local', `--repo=${bareUserSrc}`, remote.repo, 'main', 'other']);
  });
  afterAll(async () => {
    await tmp?.cleanup();
  });

  const combos: Array<{ from: 'archive' | 'bare-user'; to: RepoMode; url: boolean }> = [
    { from: 'archive', to: 'archive', url: false },
    { from: 'archive', to: 'bare-user', url: true },
    { from: 'bare-user', to: 'archive', url: false },
    { from: 'bare-user', to: 'bare-user', url: true },
  ];
  for (const c of combos) {
    it(`copies main from ${c.from} into ${c.to} (${c.url ? 'file:// URL' : 'path'})`, async () => {
      const src = c.from === 'archive' ? remote.repo : bareUserSrc;
      const dest = tmp.join(`pl-${c.from}-${c.to}`);
      const repo = await Repo.init({ path: dest, mode: c.to });
      const r = await pullLocal({ repo, src: c.url ? pathToFileURL(src).toString() : src, refs: ['main'] });
      expect(r.refs).toEqual([{ ref: 'main', refspec: 'main', checksum: remote.commits[2], previous: null }]);
      const fsck = await ostree(['fsck', `--repo=${dest}`]);
      expect(fsck.code).toBe(0);
      const out = tmp.join(`pl-out-${c.from}-${c.to}`);
      await ostreeCheckout(dest, 'main', out);
      expect(formatDifferences(await compareTrees(tmp.join('expected'), out))).toBe('');
    });
  }

  it('pulls every head when no ref is given, follows depth, and accepts a checksum', async () => {
    const repo = await Repo.init({ path: tmp.join('pl-all'), mode: 'archive' });
    const r = await pullLocal({ repo, src: remote.repo, depth: 1 });
    expect(r.refs.map((x) => x.ref).sort()).toEqual(['main', 'other']);
    expect(await repo.hasObject('commit', remote.commits[1])).toBe(true);
    expect(await repo.hasObject('commit', remote.commits[0])).toBe(false);
    const r2 = await pullLocal({ repo, src: remote.repo, refs: [remote.commits[0]] });
    expect(r2.refs).toEqual([]);
    expect(await repo.hasObject('commit', remote.commits[0])).toBe(true);
    expect((await ostree(['fsck', `--repo=${repo.path}`])).code).toBe(0);
  });

  it('refuses a corrupted source object, naming it, and leaves the ref unset', async () => {
    const src = tmp.join('corrupt-src');
    await fsp.cp(remote.repo, src, { recursive: true });
    const filez = [...(await repoObjectPaths(src))].filter((p) => p.endsWith('.filez'));
    // Pick the biggest content object and flip a byte in its compressed payload.
    let victim = filez[0];
    let size = 0;
    for (const p of filez) {
      const st = await fsp.stat(join(src, p));
      if (st.size > size) {
        size = st.size;
        victim = p;
      }
    }
    const bytes = await fsp.readFile(join(src, victim));
    bytes[bytes.length - 5] ^= 0x40;
    await fsp.writeFile(join(src, victim), bytes);
    const repo = await Repo.init({ path: tmp.join('pl-corrupt'), mode: 'bare-user' });
    const e = (await pullLocal({ repo, src, refs: ['main'] }).catch((x: unknown) => x)) as LarchError;
    expect(e).toBeInstanceOf(LarchError);
    expect(e.code).toBe('OBJECT_CORRUPTED');
    const checksum = victim.replace(/^\/objects\/(..)\/(.{62})\.filez$/, '$1$2');
    expect(e.message).toContain(`Fetching ${checksum}.file: `);
    expect(await repo.resolveRef('main')).toBeNull();
    expect(await repo.hasObject('file', checksum)).toBe(false);
    expect((await ostree(['fsck', `--repo=${repo.path}`])).code).toBe(0);
  });

  it('a missing ref is REF_NOT_FOUND', async () => {
    const repo = await Repo.init({ path: tmp.join('pl-missing'), mode: 'archive' });
    await expect(pullLocal({ repo, src: remote.repo, refs: ['nope'] })).rejects.toMatchObject({ code: 'REF_NOT_FOUND', message: "Refspec 'nope' not found" });
  });
});
