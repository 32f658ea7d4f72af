/**
 * `pullLocal` with signature checks: the verifier sees every commit copied (with its detached
 * metadata) and the source's summary before anything is stored; a refusal leaves no commit
 * object and no ref behind.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LarchError, Repo, commitTree, generateSummary } from '@larch/core-store';
import { makeTree, tmpDir, type TmpDir } from '@larch/test-fixtures';
import { addRemote, pullLocal, type PullVerifier } from '../src/index.js';

describe('pullLocal: signature checks', () => {
  let tmp: TmpDir;
  let src: Repo;
  let good = '';
  let bad = '';
  let n = 0;

  /** Accepts every commit except `bad`; records what it saw. */
  function verifier(seen: string[], summaryOk = true): PullVerifier {
    return {
      verifyCommit: (_bytes, _meta, ctx) => {
        seen.push(`commit:${ctx.checksum}:${ctx.remote}:${ctx.required.join(',')}`);
        if (ctx.checksum === bad) throw new LarchError('OBJECT_CORRUPTED', `Commit ${ctx.checksum}: BAD signature`, {});
      },
      verifySummary: (_bytes, sig, ctx) => {
        seen.push(`summary:${sig === null ? 'nosig' : 'sig'}:${ctx.required.join(',')}`);
        if (!summaryOk) throw new LarchError('OBJECT_CORRUPTED', 'BAD summary signature', {});
      },
    };
  }
  async function dest(): Promise<Repo> {
    const repo = await Repo.init({ path: tmp.join(`dest${n++}`), mode: 'bare-user' });
    await addRemote(repo, { name: 'origin', url: 'file:///nonexistent', gpgVerify: true });
    return repo;
  }

  beforeAll(async () => {
    tmp = await tmpDir('larch-pull-local-verify-');
    await makeTree(tmp.join('t1'), { 'a.txt': 'one\n' });
    await makeTree(tmp.join('t2'), { 'b.txt': 'two\n' });
    src = await Repo.init({ path: tmp.join('src'), mode: 'archive' });
    good = (await commitTree(src, { tree: tmp.join('t1'), branch: 'main', bindings: false })).commit;
    bad = (await commitTree(src, { tree: tmp.join('t2'), branch: 'other', bindings: false })).commit;
    await generateSummary(src);
  });
  afterAll(async () => tmp?.cleanup());

  it('checks the summary and each commit, and writes remote refs', async () => {
    const repo = await dest();
    const seen: string[] = [];
    const r = await pullLocal({ repo, src: src.path, refs: ['main'], remote: 'origin', gpgVerify: true, gpgVerifySummary: true, verifier: verifier(seen) });
    expect(seen).toEqual(['summary:nosig:gpg-verify-summary', `commit:${good}:origin:gpg-verify`]);
    expect(r.refs[0]).toMatchObject({ refspec: 'origin:main', checksum: good });
  });

  it('a refused commit is not stored and its ref does not move', async () => {
    const repo = await dest();
    const e = await pullLocal({ repo, src: src.path, refs: ['other'], remote: 'origin', gpgVerify: true, verifier: verifier([]) }).catch((x: unknown) => x);
    expect((e as Error).message).toMatch(/BAD signature/);
    expect(await repo.hasObject('commit', bad)).toBe(false);
    expect(await repo.resolveRef('origin:other')).toBeNull();
  });

  it('a refused summary stops the pull before anything is copied', async () => {
    const repo = await dest();
    const e = await pullLocal({ repo, src: src.path, refs: ['main'], remote: 'origin', gpgVerifySummary: true, verifier: verifier([], false) }).catch((x: unknown) => x);
    expect((e as Error).message).toMatch(/BAD summary signature/);
    expect(await repo.hasObject('commit', good)).toBe(false);
  });

  it('needs a remote and a verifier', async () => {
    const repo = await dest();
    await expect(pullLocal({ repo, src: src.path, gpgVerify: true, verifier: verifier([]) })).rejects.toThrow(TypeError);
    await expect(pullLocal({ repo, src: src.path, remote: 'origin', gpgVerify: true })).rejects.toMatchObject({ code: 'BAD_CONFIG' });
  });
});
