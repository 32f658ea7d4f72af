/**
 * A fault-injecting server over a repository written by the real `ostree`: one flipped byte, a
 * truncated body, a 404, a 500, a stall mid-body. Each pull must fail within a bounded time with
 * one line naming the object and the URL; the ref must not move; `ostree fsck` must pass; and a
 * second pull after the server is fixed must complete, fetching only the missing objects.
 */
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LarchError, Repo } from '@larch/core-store';
import { compareTrees, formatDifferences, interopDescribe, ostree, requireOstree, tmpDir, type TmpDir } from '@larch/test-fixtures';
import { addRemote, pull } from '../src/index.js';
import { makeOstreeRemote, objectRequests, ostreeCheckout, repoObjectPaths, startFaultServer, type Fault, type FaultServer } from './helpers.js';

const describeInterop = interopDescribe(describe);

/**
 * Short retry delays so each failure is quick, but patient timers: on a loaded machine a slow
 * object must not be taken for a stalled one (which would fail, or fetch twice, another object).
 */
const LIMITS = { retries: 2, retryBaseDelayMs: 20, retryMaxDelayMs: 50, stallTimeoutMs: 10_000, requestTimeoutMs: 300_000 };
/** The stall case: the stalled body never moves again, so a few seconds tell it from slowness. */
const STALL_LIMITS = { ...LIMITS, stallTimeoutMs: 3_000 };
/** A pull that is bounded ends well within this (a hung one would not); only a guard. */
const BOUNDED_MS = 90_000;

describeInterop('pull against a faulty server (interop)', () => {
  let tmp: TmpDir;
  let server: FaultServer;
  let remote: Awaited<ReturnType<typeof makeOstreeRemote>>;
  let bigObject: string;

  beforeAll(async () => {
    requireOstree();
    tmp = await tmpDir('larch-faults-');
    remote = await makeOstreeRemote(tmp);
    server = await startFaultServer(remote.repo);
    await ostreeCheckout(remote.repo, 'main', tmp.join('expected'));
    // The largest .filez (the 300 kB blob): big enough to cut or stall in the middle.
    let best = { path: '', size: -1 };
    for (const p of await repoObjectPaths(remote.repo)) {
      if (!p.endsWith('.filez')) continue;
      const st = await fsp.stat(join(remote.repo, p));
      if (st.size > best.size) best = { path: p, size: st.size };
    }
    bigObject = best.path;
  });
  afterAll(async () => {
    await server?.stop();
    await tmp?.cleanup();
  });

  const cases: Array<{ fault: Fault; code: string; detail: RegExp; attempts: number }> = [
    { fault: 'flip', code: 'OBJECT_CORRUPTED', detail: /Corrupted file object|invalid|incorrect|Corrupted/i, attempts: 1 },
    { fault: 'truncate', code: 'IO_ERROR', detail: /closed|terminated|socket|Connection/i, attempts: 3 },
    { fault: 404, code: 'OBJECT_MISSING', detail: /Server returned HTTP 404/, attempts: 1 },
    { fault: 500, code: 'IO_ERROR', detail: /Server returned HTTP 500/, attempts: 3 },
    { fault: 'stall', code: 'IO_ERROR', detail: /Timeout was reached/, attempts: 3 },
  ];

  for (const c of cases) {
    it(`fault ${String(c.fault)}: fails in bounded time naming object and URL, then resumes fetching only what is missing`, async () => {
      const dest = tmp.join(`dest-${String(c.fault)}`);
      const repo = await Repo.init({ path: dest, mode: 'archive' });
      await addRemote(repo, { name: 'origin', url: server.url, gpgVerify: false });
      server.faults.clear();
      server.faults.set(bigObject, c.fault);
      server.requests.length = 0;

      const t0 = Date.now();
      const limits = c.fault === 'stall' ? STALL_LIMITS : LIMITS;
      const err = await pull({ repo, remote: 'origin', refs: ['main'], limits }).then(
        () => null,
        (e: unknown) => e,
      );
      const elapsed = Date.now() - t0;
      expect(err).toBeInstanceOf(LarchError);
      const e = err as LarchError;
      expect(e.code).toBe(c.code);
      const checksum = bigObject.replace(/^\/objects\/(..)\/(.{62})\.filez$/, '$1$2');
      expect(e.message).toContain(`Fetching ${checksum}.filez: `);
      expect(e.message).toContain(`${server.url.replace(/\/$/, '')}${bigObject}`);
      expect(e.message).toMatch(c.detail);
      expect(e.message).not.toContain('\n');
      expect(e.data.object).toBe(`${checksum}.filez`);
      expect(elapsed).toBeLessThan(BOUNDED_MS);
      expect(server.requests.filter((p) => p === bigObject)).toHaveLength(c.attempts);

      // The ref did not move, the commit is partial, and fsck is happy.
      expect(await repo.resolveRef('origin:main')).toBeNull();
      expect(await repo.isCommitPartial(remote.commits[2])).toBe(true);
      const fsck1 = await ostree(['fsck', `--repo=${dest}`]);
      expect(fsck1.code).toBe(0);
      expect(await repoObjectPaths(dest)).not.toContain(bigObject);

      // Fixed server: a second pull completes and fetches exactly the missing objects.
      const present = await repoObjectPaths(dest);
      server.faults.clear();
      server.requests.length = 0;
      await pull({ repo, remote: 'origin', refs: ['main'], limits: LIMITS });
      const fetched = objectRequests(server.requests).filter((p) => !p.endsWith('.commitmeta'));
      for (const p of fetched) expect(present.has(p), `${p} was fetched again`).toBe(false);
      const after = await repoObjectPaths(dest);
      const added = [...after].filter((p) => !present.has(p));
      expect(fetched.sort()).toEqual(added.sort());
      expect(fetched).toContain(bigObject);

      expect(await repo.resolveRef('origin:main')).toBe(remote.commits[2]);
      expect(await repo.isCommitPartial(remote.commits[2])).toBe(false);
      const fsck2 = await ostree(['fsck', `--repo=${dest}`]);
      expect(fsck2.code).toBe(0);
      expect(fsck2.stdout).not.toContain('partial');
      const out = tmp.join(`out-${String(c.fault)}`);
      await ostreeCheckout(dest, 'origin:main', out);
      expect(formatDifferences(await compareTrees(tmp.join('expected'), out))).toBe('');
    }, 300_000);
  }

  it('a body that breaks off is resumed with a Range request, not downloaded again', async () => {
    const dest = tmp.join('dest-resume');
    const repo = await Repo.init({ path: dest, mode: 'bare-user' });
    await addRemote(repo, { name: 'origin', url: server.url, gpgVerify: false });
    server.faults.clear();
    server.faults.set(bigObject, 'truncate-once');
    server.requests.length = 0;
    server.ranges.length = 0;
    server.sent.clear();
    const r = await pull({ repo, remote: 'origin', refs: ['main'], limits: LIMITS });
    expect(r.refs[0].checksum).toBe(remote.commits[2]);
    const idx = server.requests.map((p, i) => (p === bigObject ? i : -1)).filter((i) => i >= 0);
    expect(idx).toHaveLength(2);
    expect(server.ranges[idx[0]]).toBeUndefined();
    const size = (await fsp.stat(join(remote.repo, bigObject))).size;
    // The resume starts where the client's bytes stopped (at most the half the server wrote
    // before cutting the connection; some of it may be lost with the socket).
    const m = /^bytes=(\d+)-$/.exec(server.ranges[idx[1]] ?? '');
    expect(m).not.toBeNull();
    const start = Number(m![1]);
    expect(start).toBeGreaterThan(0);
    expect(start).toBeLessThanOrEqual(Math.floor(size / 2));
    expect(server.sent.get(bigObject)).toBe(Math.floor(size / 2) + (size - start)); // nothing fetched twice but the lost tail
    expect(r.progress.retries).toBe(1);
    expect((await ostree(['fsck', `--repo=${dest}`])).code).toBe(0);
    const out = tmp.join('out-resume');
    await ostreeCheckout(dest, 'origin:main', out);
    expect(formatDifferences(await compareTrees(tmp.join('expected'), out))).toBe('');
  });

  it('a corrupted dirtree is refused and never stored', async () => {
    const dest = tmp.join('dest-dirtree');
    const repo = await Repo.init({ path: dest, mode: 'bare-user' });
    await addRemote(repo, { name: 'origin', url: server.url, gpgVerify: false });
    const commit = await Repo.open(remote.repo).then((r) => r.readCommit(remote.commits[2]));
    const treePath = `/objects/${commit.rootTree.slice(0, 2)}/${commit.rootTree.slice(2)}.dirtree`;
    server.faults.clear();
    server.faults.set(treePath, 'flip');
    const e = (await pull({ repo, remote: 'origin', refs: ['main'], limits: LIMITS }).catch((x: unknown) => x)) as LarchError;
    expect(e.code).toBe('OBJECT_CORRUPTED');
    expect(e.message).toContain(`Fetching ${commit.rootTree}.dirtree: Corrupted dirtree object; checksum expected='${commit.rootTree}'`);
    expect(await repo.hasObject('dirtree', commit.rootTree)).toBe(false);
    expect(await repo.resolveRef('origin:main')).toBeNull();
    expect((await ostree(['fsck', `--repo=${dest}`])).code).toBe(0);
    server.faults.clear();
  });

  it('cancellation through the AbortSignal stops a stalled pull promptly', async () => {
    const repo = await Repo.init({ path: tmp.join('dest-abort'), mode: 'archive' });
    await addRemote(repo, { name: 'origin', url: server.url, gpgVerify: false });
    server.faults.clear();
    server.faults.set(bigObject, 'stall');
    server.requests.length = 0;
    const ac = new AbortController();
    // No timer would end this pull within the test's time: only the abort can.
    const pulling = pull({ repo, remote: 'origin', refs: ['main'], signal: ac.signal, limits: { stallTimeoutMs: 3_600_000, requestTimeoutMs: 3_600_000 } }).catch((x: unknown) => x);
    // Abort once the stalled object has been asked for (the pull is then waiting on it).
    while (!server.requests.includes(bigObject)) await new Promise((r) => setTimeout(r, 20));
    ac.abort(new Error('user pressed ^C'));
    const e = (await pulling) as LarchError;
    expect(e.code).toBe('ABORTED');
    expect(await repo.resolveRef('origin:main')).toBeNull();
    server.faults.clear();
  });
});
