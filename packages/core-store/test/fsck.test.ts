import { randomBytes } from 'node:crypto';
import { readFileSync, truncateSync, unlinkSync, writeFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Repo } from '../src/repo.js';
import { fsck } from '../src/repo-fsck.js';
import type { ObjectType } from '../src/types.js';
import { HAVE_OSTREE, SAMPLE, cleanup, makeTree, ostree, ostreeInitCommit, ostreeRun, tmp } from './helpers.js';

afterAll(cleanup);

async function fixture(mode: 'archive' | 'bare-user' | 'bare' | 'bare-user-only'): Promise<{ repo: Repo; commit: string }> {
  const d = tmp();
  const tree = path.join(d, 'tree');
  makeTree(tree, { ...SAMPLE, 'big.bin': randomBytes(600 * 1024).toString('latin1') });
  const extra = mode === 'bare-user-only' ? ['--canonical-permissions'] : [];
  const commit = ostreeInitCommit(path.join(d, 'repo'), mode, tree, 'main', extra);
  return { repo: await Repo.open(path.join(d, 'repo')), commit };
}

async function pick(repo: Repo, type: ObjectType, pred: (p: string) => boolean = () => true): Promise<string> {
  for await (const o of repo.listObjects()) {
    if (o.type !== type) continue;
    const p = repo.objectPath(type, o.checksum);
    if (statSync(p).size > 0 && pred(p)) return o.checksum;
  }
  throw new Error(`no ${type} object`);
}

function flipByte(p: string, at?: number): void {
  const b = readFileSync(p);
  const i = at ?? Math.floor(b.length / 2);
  b[i] ^= 0x55;
  writeFileSync(p, b);
}

describe.skipIf(!HAVE_OSTREE)('fsck', () => {
  for (const mode of ['archive', 'bare-user', 'bare', 'bare-user-only'] as const) {
    it(`finds no errors in a clean ${mode} repo written by ostree`, async () => {
      const { repo } = await fixture(mode);
      const r = await fsck(repo);
      expect(r.errors).toEqual([]);
      expect(r.commits).toBe(1);
      expect(r.partial).toBe(0);
      expect(r.objectsChecked).toBeGreaterThan(10);
    });
  }

  const CASES: Array<{ name: string; mode: 'archive' | 'bare-user'; type: ObjectType; damage: (p: string) => void; code: string; big?: boolean }> = [
    { name: 'flipped byte in a commit', mode: 'archive', type: 'commit', damage: (p) => flipByte(p, 3), code: 'OBJECT_CORRUPTED' },
    { name: 'flipped byte in a dirtree', mode: 'archive', type: 'dirtree', damage: (p) => flipByte(p), code: 'OBJECT_CORRUPTED' },
    { name: 'flipped byte in a dirmeta', mode: 'bare-user', type: 'dirmeta', damage: (p) => flipByte(p, 1), code: 'OBJECT_CORRUPTED' },
    { name: 'flipped byte in an archive file', mode: 'archive', type: 'file', damage: (p) => flipByte(p), code: 'OBJECT_CORRUPTED' },
    { name: 'flipped byte in a large archive file', mode: 'archive', type: 'file', damage: (p) => flipByte(p), code: 'OBJECT_CORRUPTED', big: true },
    { name: 'flipped byte in a bare-user file', mode: 'bare-user', type: 'file', damage: (p) => flipByte(p), code: 'OBJECT_CORRUPTED' },
    { name: 'flipped byte in a large bare-user file', mode: 'bare-user', type: 'file', damage: (p) => flipByte(p), code: 'OBJECT_CORRUPTED', big: true },
    { name: 'truncated archive file', mode: 'archive', type: 'file', damage: (p) => truncateSync(p, statSync(p).size - 3), code: 'OBJECT_CORRUPTED' },
    { name: 'truncated large archive file', mode: 'archive', type: 'file', damage: (p) => truncateSync(p, statSync(p).size - 100), code: 'OBJECT_CORRUPTED', big: true },
    { name: 'truncated dirtree', mode: 'bare-user', type: 'dirtree', damage: (p) => truncateSync(p, statSync(p).size - 1), code: 'OBJECT_CORRUPTED' },
    { name: 'deleted file', mode: 'archive', type: 'file', damage: (p) => unlinkSync(p), code: 'OBJECT_MISSING' },
    { name: 'deleted dirmeta', mode: 'bare-user', type: 'dirmeta', damage: (p) => unlinkSync(p), code: 'OBJECT_MISSING' },
  ];
  for (const c of CASES) {
    it(`reports a ${c.name} (${c.mode})`, async () => {
      const { repo } = await fixture(c.mode);
      const victim = await pick(repo, c.type, (p) => (c.big ? statSync(p).size > 100_000 : statSync(p).size < 100_000));
      c.damage(repo.objectPath(c.type, victim));
      const r = await fsck(repo);
      const hit = r.errors.filter((e) => e.checksum === victim);
      expect(hit.length, JSON.stringify(r.errors)).toBeGreaterThanOrEqual(1);
      if (c.type !== 'commit') expect(hit[0].type).toBe(c.type);
      expect(hit[0].code).toBe(c.code);
      expect(hit[0].message).toContain(victim);
      if (c.code === 'OBJECT_MISSING') expect(hit[0].message).toMatch(new RegExp(`^Object missing in commits [0-9a-f]{64}: ${victim}\\.${c.type}$`));
      // The real ostree agrees that the repository is damaged.
      expect(ostreeRun('fsck', `--repo=${repo.path}`).status).not.toBe(0);
    });
  }

  for (const mode of ['archive', 'bare-user'] as const) {
    it(`gives the same report with worker threads (${mode})`, async () => {
      const { repo } = await fixture(mode);
      const files: string[] = [];
      for await (const o of repo.listObjects()) if (o.type === 'file') files.push(o.checksum);
      flipByte(repo.objectPath('file', files[0]), statSync(repo.objectPath('file', files[0])).size - 1);
      unlinkSync(repo.objectPath('file', files[1]));
      const inThread = await fsck(repo, { workers: 0 });
      // The missing object made the commit partial (as ostree does); unmark it for the second run.
      for (const c of inThread.markedPartial) await repo.clearCommitPartial(c);
      const threaded = await fsck(repo, { workers: 2 });
      expect(inThread.errors.length).toBe(2);
      expect(threaded.errors).toEqual(inThread.errors);
      expect(threaded.objectsChecked).toBe(inThread.objectsChecked);
    });
  }

  it('reports a dirtree stored under its own checksum that is not sorted (structure, not checksum)', async () => {
    const { repo } = await fixture('archive');
    const [f1, f2] = await (async () => {
      const out: string[] = [];
      for await (const o of repo.listObjects()) if (o.type === 'file') out.push(o.checksum);
      return out;
    })();
    const { encode } = await import('@larch/gvariant');
    const bytes = encode('(a(say)a(sayay))', [[['b', Buffer.from(f1, 'hex')], ['a', Buffer.from(f2, 'hex')]], []] as never);
    const tree = await repo.writeMetadata('dirtree', bytes).catch(() => null);
    const { createHash } = await import('node:crypto');
    const treeSum = tree ?? createHash('sha256').update(bytes).digest('hex');
    if (!tree) {
      const { mkdirSync } = await import('node:fs');
      mkdirSync(path.dirname(repo.objectPath('dirtree', treeSum)), { recursive: true });
      writeFileSync(repo.objectPath('dirtree', treeSum), bytes);
    }
    let meta = '';
    for await (const o of repo.listObjects()) if (o.type === 'dirmeta') meta = o.checksum;
    const commit = encode('(a{sv}aya(say)sstayay)', [[], new Uint8Array(0), [], 's', '', 0n, Buffer.from(treeSum, 'hex'), Buffer.from(meta, 'hex')] as never);
    const c = createHash('sha256').update(commit).digest('hex');
    const { mkdirSync } = await import('node:fs');
    mkdirSync(path.dirname(repo.objectPath('commit', c)), { recursive: true });
    writeFileSync(repo.objectPath('commit', c), commit);
    const r = await fsck(repo);
    const hit = r.errors.find((e) => e.checksum === treeSum);
    expect(hit?.code).toBe('OBJECT_CORRUPTED');
    expect(hit?.message).toContain('not sorted');
  });

  it('uses OSTree wording for checksum mismatches', async () => {
    const { repo } = await fixture('bare-user');
    const victim = await pick(repo, 'file', (p) => statSync(p).size < 100_000 && statSync(p).size > 3);
    flipByte(repo.objectPath('file', victim));
    const r = await fsck(repo);
    expect(r.errors).toHaveLength(1);
    expect(r.errors[0].message).toMatch(new RegExp(`^In commits [0-9a-f]{64}: fsck content object ${victim}: Corrupted file object; checksum expected='${victim}' actual='[0-9a-f]{64}'$`));
  });

  it('collects every error, not just the first', async () => {
    const { repo } = await fixture('archive');
    const files: string[] = [];
    for await (const o of repo.listObjects()) if (o.type === 'file') files.push(o.checksum);
    for (const f of files.slice(0, 3)) unlinkSync(repo.objectPath('file', f));
    const r = await fsck(repo);
    expect(r.errors.map((e) => e.checksum).sort()).toEqual(files.slice(0, 3).sort());
  });

  it('skips partial commits and counts them', async () => {
    const { repo, commit } = await fixture('archive');
    await repo.markCommitPartial(commit);
    const files: string[] = [];
    for await (const o of repo.listObjects()) if (o.type === 'file') files.push(o.checksum);
    unlinkSync(repo.objectPath('file', files[0]));
    const r = await fsck(repo);
    expect(r.partial).toBe(1);
    expect(r.errors).toEqual([]);
    expect(ostree('fsck', `--repo=${repo.path}`)).toContain('1 partial commits not verified');
  });

  it('reports a ref pointing at a missing commit', async () => {
    const { repo, commit } = await fixture('archive');
    unlinkSync(repo.objectPath('commit', commit));
    const r = await fsck(repo);
    expect(r.errors.some((e) => e.ref === 'main' && e.code === 'OBJECT_MISSING')).toBe(true);
  });

  it('with delete, removes corrupted objects and marks the commit partial', async () => {
    const { repo, commit } = await fixture('bare-user');
    const victim = await pick(repo, 'file', (p) => statSync(p).size < 100_000 && statSync(p).size > 3);
    flipByte(repo.objectPath('file', victim));
    const r = await fsck(repo, { delete: true });
    expect(r.deleted).toBe(1);
    expect(r.markedPartial).toEqual([commit]);
    expect(await repo.hasObject('file', victim)).toBe(false);
    expect(await repo.isCommitPartial(commit)).toBe(true);
    const again = await fsck(repo);
    expect(again.errors).toEqual([]);
    expect(again.partial).toBe(1);
  });

  it('verifyBindings flags a ref missing from the commit binding', async () => {
    const { repo, commit } = await fixture('archive');
    await repo.setRef('other', commit);
    const r = await fsck(repo, { verifyBindings: true });
    expect(r.errors.map((e) => e.ref)).toEqual(['other']);
  });
});
