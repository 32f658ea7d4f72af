/**
 * Downgrade protection and verifier wiring of `pull`: with `timestampCheck` (or the device paths'
 * `allowDowngrade: false`) a ref never moves to an older commit; without either it follows the
 * remote back, as ostree's pull API; the check happens once the commit object is known, before its tree
 * is fetched (no request for the old commit's dirtree/filez, nothing stored); the mirror ref is
 * checked the same way; and the verifier runs before the downgrade check and before storing.
 */
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LarchError, Repo, commitTree, generateSummary } from '@larch/core-store';
import { makeTree, tmpDir, type TmpDir } from '@larch/test-fixtures';
import { FileFetcher, addRemote, pull, type FetchOptions, type FetchResponse, type Fetcher, type PullVerifier } from '../src/index.js';
import { formatTimestampC } from '../src/timestamp-check.js';

class RecordingFetcher implements Fetcher {
  calls: string[] = [];
  private readonly inner = new FileFetcher();
  get(url: string, opts: FetchOptions): Promise<FetchResponse> {
    this.calls.push(url);
    return this.inner.get(url, opts);
  }
}

describe('pull: downgrade protection', () => {
  let tmp: TmpDir;
  let src: Repo;
  let newer = '';
  let older = '';
  let n = 0;

  async function client(): Promise<Repo> {
    const repo = await Repo.init({ path: tmp.join(`client${n++}`), mode: 'bare-user' });
    await addRemote(repo, { name: 'origin', url: `${pathToFileURL(src.path).toString()}/`, gpgVerify: false });
    return repo;
  }
  async function pointMain(c: string): Promise<void> {
    await src.setRef('main', c);
    await generateSummary(src);
  }

  beforeAll(async () => {
    tmp = await tmpDir('larch-downgrade-');
    await makeTree(tmp.join('t1'), { 'a.txt': 'one\n' });
    await makeTree(tmp.join('t2'), { 'a.txt': 'two\n', 'only-in-old/x.txt': 'old content\n' });
    src = await Repo.init({ path: tmp.join('src'), mode: 'archive' });
    newer = (await commitTree(src, { tree: tmp.join('t1'), branch: 'main', timestamp: 1_704_153_600n, bindings: false })).commit; // 2024-01-02
    older = (await commitTree(src, { tree: tmp.join('t2'), branch: 'side', timestamp: 1_704_067_200n, bindings: false })).commit; // 2024-01-01
    await pointMain(newer);
  });
  afterAll(async () => {
    await pointMain(newer);
    await tmp?.cleanup();
  });

  it('formats times as GLib %c in UTC', () => {
    expect(formatTimestampC(1_704_067_200n)).toBe('Mon Jan  1 00:00:00 2024');
    expect(formatTimestampC(1_704_153_600n)).toBe('Tue Jan  2 00:00:00 2024');
  });

  it('refuses a rolled-back ref before fetching the old tree; allowDowngrade accepts it', async () => {
    const repo = await client();
    await pull({ repo, remote: 'origin', refs: ['main'] });
    await pointMain(older);
    const f = new RecordingFetcher();
    const e = (await pull({ repo, remote: 'origin', refs: ['main'], fetcher: f, timestampCheck: true }).catch((x: unknown) => x)) as LarchError;
    expect(e).toBeInstanceOf(LarchError);
    expect(e.data.reason).toBe('downgrade');
    expect(e.message).toBe(
      `Upgrade target revision '${older}' with timestamp 'Mon Jan  1 00:00:00 2024' is chronologically older than current revision '${newer}' with timestamp 'Tue Jan  2 00:00:00 2024'; use --allow-downgrade to permit`,
    );
    expect(f.calls.some((u) => u.endsWith('.dirtree') || u.endsWith('.filez'))).toBe(false);
    expect(await repo.hasObject('commit', older)).toBe(false);
    expect(await repo.resolveRef('origin:main')).toBe(newer);
    // The device paths' explicit `allowDowngrade: false` refuses it too.
    const d = (await pull({ repo, remote: 'origin', refs: ['main'], allowDowngrade: false }).catch((x: unknown) => x)) as LarchError;
    expect(d.data.reason).toBe('downgrade');
    expect(await repo.resolveRef('origin:main')).toBe(newer);

    const r = await pull({ repo, remote: 'origin', refs: ['main'], allowDowngrade: true, timestampCheck: true });
    expect(r.refs[0]).toMatchObject({ checksum: older, previous: newer });
    await pointMain(newer);
  });

  it('checks the mirror ref (refs/heads) with --mirror, and pulls by checksum without a ref unchecked', async () => {
    const repo = await client();
    await pull({ repo, remote: 'origin', refs: ['main'], mirror: true });
    expect(await repo.resolveRef('main')).toBe(newer);
    await pointMain(older);
    const e = (await pull({ repo, remote: 'origin', refs: ['main'], mirror: true, timestampCheck: true }).catch((x: unknown) => x)) as LarchError;
    expect(e.data.reason).toBe('downgrade');
    expect(await repo.resolveRef('main')).toBe(newer);
    // Without the check (the default), the mirror follows the remote back.
    await pull({ repo, remote: 'origin', refs: ['main'], mirror: true });
    expect(await repo.resolveRef('main')).toBe(older);
    await pull({ repo, remote: 'origin', refs: [older] });
    expect(await repo.hasObject('commit', older)).toBe(true);
    await pointMain(newer);
  });

  it('an equal timestamp passes (two builds in the same second, as ostree -T allows); a new ref has nothing to compare', async () => {
    const repo = await client();
    await pull({ repo, remote: 'origin', refs: ['main'], timestampCheck: true });
    await pull({ repo, remote: 'origin', refs: ['main'], timestampCheck: true }); // same commit: fine
    const same = (await commitTree(src, { tree: tmp.join('t2'), branch: 'twin', timestamp: 1_704_153_600n, bindings: false })).commit;
    await pointMain(same);
    const r = await pull({ repo, remote: 'origin', refs: ['main'], timestampCheck: true });
    expect(r.refs[0]).toMatchObject({ checksum: same, previous: newer });
    await pull({ repo, remote: 'origin', refs: ['side'], timestampCheck: true });
    expect(await repo.resolveRef('origin:side')).toBe(older);
    await pointMain(newer);
  });

  it('runs the verifier first, on the exact bytes, and stores nothing it refused', async () => {
    const repo = await Repo.init({ path: tmp.join(`client${n++}`), mode: 'archive' });
    await addRemote(repo, { name: 'origin', url: `${pathToFileURL(src.path).toString()}/` }); // gpg-verify defaults to true
    const seen: string[] = [];
    const refuse: PullVerifier = {
      verifyCommit: (bytes, _meta, ctx) => {
        seen.push(ctx.checksum);
        throw new LarchError('OBJECT_CORRUPTED', `Commit ${ctx.checksum}: refused`, {});
      },
      verifySummary: () => undefined,
    };
    await expect(pull({ repo, remote: 'origin', refs: ['main'], verifier: refuse })).rejects.toThrow(/refused/);
    expect(seen).toEqual([newer]);
    expect(await repo.hasObject('commit', newer)).toBe(false);
    expect(await fsp.readdir(join(repo.path, 'objects'))).toEqual([]);
    expect(await repo.resolveRef('origin:main')).toBeNull();
  });
});
