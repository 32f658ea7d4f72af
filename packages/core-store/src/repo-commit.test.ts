import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, linkSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync, openSync, closeSync, ftruncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Variant } from '@larch/gvariant';
import { Repo } from './repo.js';
import { commitTree } from './repo-commit.js';
import type { RepoMode } from './types.js';

const MODES: RepoMode[] = ['archive', 'bare', 'bare-user', 'bare-user-only'];
const HAVE_OSTREE = spawnSync('ostree', ['--version']).status === 0;
const interop = HAVE_OSTREE || process.env.CI === 'true' ? it : it.skip;
const ostree = (...args: string[]) => execFileSync('ostree', args, { encoding: 'utf8' });
const DIST = resolve(dirname(fileURLToPath(import.meta.url)), '../dist/index.js');
const TS = '2020-01-01 00:00:00 +0000';
const EPOCH = 1577836800n;

let dir: string;
let tree: string;
let n = 0;
const fresh = () => join(dir, `r${n++}`);

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'larch-commit-'));
  chmodSync(dir, 0o755);
  tree = join(dir, 'tree');
  mkdirSync(join(tree, 'sub', 'deeper'), { recursive: true });
  mkdirSync(join(tree, 'empty-dir'));
  writeFileSync(join(tree, 'hello.txt'), 'hello\n');
  writeFileSync(join(tree, 'run.sh'), '#!/bin/sh\necho hi\n', { mode: 0o755 });
  chmodSync(join(tree, 'run.sh'), 0o755);
  writeFileSync(join(tree, 'sub', 'empty'), '');
  writeFileSync(join(tree, 'sub', 'deeper', 'data.bin'), Buffer.from(Array.from({ length: 70000 }, (_, i) => (i * 7919) & 0xff)));
  writeFileSync(join(tree, 'ünïcødé – файл.txt'), 'unicode\n');
  writeFileSync(join(tree, 'Zupper'), 'sorted before lowercase\n');
  symlinkSync('hello.txt', join(tree, 'link'));
  symlinkSync('../hello.txt', join(tree, 'sub', 'uplink'));
  symlinkSync('/nonexistent/target', join(tree, 'dangling'));
  linkSync(join(tree, 'hello.txt'), join(tree, 'sub', 'hardlink'));
  execFileSync('setfattr', ['-n', 'user.one', '-v', '1', join(tree, 'hello.txt')]);
  execFileSync('setfattr', ['-n', 'user.two', '-v', '0x00ff', join(tree, 'sub', 'empty')]);
  execFileSync('setfattr', ['-n', 'user.dir', '-v', 'd', join(tree, 'sub')]);
  // symlinks carry xattrs too (trusted.* is allowed on links for root); ostree records them
  if (process.getuid?.() === 0) execFileSync('setfattr', ['-h', '-n', 'trusted.larch', '-v', 'on-link', join(tree, 'link')]);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function ostreeCommit(mode: RepoMode, extra: string[], t = tree): { repo: string; commit: string } {
  const repo = fresh();
  ostree('init', `--repo=${repo}`, `--mode=${mode}`);
  const commit = ostree('commit', `--repo=${repo}`, `--tree=dir=${t}`, `--timestamp=${TS}`, ...extra).trim();
  return { repo, commit };
}

describe('commitTree', () => {
  interop.each(MODES)('gives the same commit checksum as ostree commit in %s, and ostree fsck accepts it', async (mode) => {
    const theirs = ostreeCommit(mode, ['-b', 'test', '-s', 'subject line', '--body=the body', '--add-metadata-string=version=1.0']);
    const repo = await Repo.init({ path: fresh(), mode });
    const r = await commitTree(repo, {
      tree,
      branch: 'test',
      subject: 'subject line',
      body: 'the body',
      timestamp: EPOCH,
      metadata: [['version', new Variant('s', '1.0')]],
    });
    expect(r.commit).toBe(theirs.commit);
    expect(await repo.resolveRef('test')).toBe(r.commit);
    expect(r.stats.files).toBe(10);
    const fsck = ostree('fsck', `--repo=${repo.path}`);
    expect(fsck).toContain('no errors found');
    // listings agree (modes, owners, sizes, targets, xattrs)
    expect(ostree('ls', `--repo=${repo.path}`, '-R', '-X', 'test')).toBe(ostree('ls', `--repo=${theirs.repo}`, '-R', '-X', 'test'));
    expect(readdirSync(repo.tmpPath).filter((f) => f.startsWith('larch-'))).toEqual([]);
  });

  interop('owner overrides, canonical permissions and no-xattrs match ostree', async () => {
    const cases: Array<[string[], Parameters<typeof commitTree>[1]]> = [
      [['--owner-uid=1234', '--owner-gid=55'], { tree, ownerUid: 1234, ownerGid: 55 }],
      [['--canonical-permissions'], { tree, canonicalPermissions: true }],
      [['--no-xattrs'], { tree, noXattrs: true }],
    ];
    for (const mode of ['archive', 'bare'] as RepoMode[]) {
      for (const [args, opts] of cases) {
        const theirs = ostreeCommit(mode, ['--orphan', '--no-bindings', ...args]);
        const repo = await Repo.init({ path: fresh(), mode });
        const r = await commitTree(repo, { ...opts, timestamp: EPOCH, bindings: false });
        expect(r.commit, `${mode} ${args.join(' ')}`).toBe(theirs.commit);
      }
    }
  });

  interop('skip lists use /paths relative to the tree, like --skip-list', async () => {
    const list = join(dir, 'skip');
    writeFileSync(list, '/sub/deeper\n/hello.txt\n');
    const theirs = ostreeCommit('archive', ['--orphan', '--no-bindings', `--skip-list=${list}`]);
    const repo = await Repo.init({ path: fresh(), mode: 'archive' });
    const r = await commitTree(repo, { tree, timestamp: EPOCH, bindings: false, skipList: ['/sub/deeper', '/hello.txt'] });
    expect(r.commit).toBe(theirs.commit);
    await expect(commitTree(repo, { tree, timestamp: EPOCH, skipList: ['hello.txt'] })).rejects.toThrow(/Unmatched skip-list paths: hello.txt/);
  });

  interop('with a collection id, adds the collection binding like ostree', async () => {
    const theirsRepo = fresh();
    ostree('init', `--repo=${theirsRepo}`, '--mode=archive', '--collection-id=org.example.Os');
    const theirs = ostree('commit', `--repo=${theirsRepo}`, `--tree=dir=${tree}`, `--timestamp=${TS}`, '-b', 'main').trim();
    const repo = await Repo.init({ path: fresh(), mode: 'archive', collectionId: 'org.example.Os' });
    const r = await commitTree(repo, { tree, timestamp: EPOCH, branch: 'main' });
    expect(r.commit).toBe(theirs);
    // without a branch ostree records an empty ref binding
    const orphan = ostree('commit', `--repo=${theirsRepo}`, `--tree=dir=${tree}`, `--timestamp=${TS}`, '--orphan').trim();
    expect((await commitTree(repo, { tree, timestamp: EPOCH })).commit).toBe(orphan);
  });

  it('defaults the parent to the branch head, honours parent:null, bindings:false and SOURCE_DATE_EPOCH', async () => {
    const repo = await Repo.init({ path: fresh(), mode: 'bare-user' });
    const first = await commitTree(repo, { tree, branch: 'b', timestamp: EPOCH });
    const second = await commitTree(repo, { tree, branch: 'b', timestamp: EPOCH + 1n });
    expect((await repo.readCommit(second.commit)).parent).toBe(first.commit);
    expect(second.stats.newObjects).toBe(1); // only the commit is new
    const orphan = await commitTree(repo, { tree, branch: 'b', parent: null, bindings: false, timestamp: EPOCH });
    const c = await repo.readCommit(orphan.commit);
    expect(c.parent).toBeNull();
    expect(c.metadata).toEqual([]);
    const withMeta = await repo.readCommit(first.commit);
    expect(withMeta.metadata.map(([k, v]) => [k, v.value])).toEqual([['ostree.ref-binding', ['b']]]);
    const old = process.env.SOURCE_DATE_EPOCH;
    process.env.SOURCE_DATE_EPOCH = '1234567890';
    try {
      const r = await commitTree(repo, { tree });
      expect((await repo.readCommit(r.commit)).timestamp).toBe(1234567890n);
    } finally {
      if (old === undefined) delete process.env.SOURCE_DATE_EPOCH;
      else process.env.SOURCE_DATE_EPOCH = old;
    }
  });

  it('hashes hardlinked inputs once and stores identical contents once', async () => {
    const t = join(dir, 'hl-tree');
    mkdirSync(t);
    writeFileSync(join(t, 'a'), 'same bytes');
    linkSync(join(t, 'a'), join(t, 'b'));
    writeFileSync(join(t, 'c'), 'same bytes'); // same content, different inode
    const repo = await Repo.init({ path: fresh(), mode: 'archive' });
    let last: { filesDone: number; filesTotal?: number; bytesDone: number } = { filesDone: 0, bytesDone: 0 };
    const r = await commitTree(repo, { tree: t, onProgress: (p) => (last = p) });
    expect(r.stats.files).toBe(3);
    expect(last.filesTotal).toBe(3);
    expect(last.bytesDone).toBe(20); // a (and its hardlink b) once, c once
    const root = await repo.readDirTree((await repo.readCommit(r.commit)).rootTree);
    expect(new Set(root.files.map((f) => f.checksum)).size).toBe(1);
    expect(r.stats.newObjects).toBe(4); // one file, dirtree, dirmeta, commit
  });

  it('rejects FIFOs with the path and writes nothing', async () => {
    const t = join(dir, 'fifo-tree');
    mkdirSync(t);
    writeFileSync(join(t, 'a'), 'a');
    execFileSync('mkfifo', [join(t, 'pipe')]);
    const repo = await Repo.init({ path: fresh(), mode: 'archive' });
    await expect(commitTree(repo, { tree: t, branch: 'x' })).rejects.toMatchObject({
      code: 'UNSUPPORTED_FILE',
      message: `Not a regular file or symlink: ${join(t, 'pipe')}`,
    });
    expect(readdirSync(join(repo.path, 'objects'))).toEqual([]);
    expect(await repo.resolveRef('x')).toBeNull();
  });

  it('fails on an unreadable file naming it, leaving no object, tmp file or ref change', async () => {
    // Run as an unprivileged user: root can read anything.
    const base = join(dir, 'unreadable');
    mkdirSync(join(base, 't', 'd'), { recursive: true });
    for (let i = 0; i < 30; i++) writeFileSync(join(base, 't', `f${i}`), `content ${i}\n`.repeat(i * 100));
    writeFileSync(join(base, 't', 'd', 'secret'), 'no');
    chmodSync(join(base, 't', 'd', 'secret'), 0o000);
    chmodSync(base, 0o777);
    const script = `
      import { Repo, commitTree } from ${JSON.stringify(DIST)};
      const repo = await Repo.init({ path: ${JSON.stringify(join(base, 'repo'))}, mode: 'archive' });
      const first = await commitTree(repo, { tree: ${JSON.stringify(join(base, 't', 'd', '..', 'd', '..'))}, branch: 'main', skipList: ['/d/secret'] });
      try {
        await commitTree(repo, { tree: ${JSON.stringify(join(base, 't'))}, branch: 'main' });
        console.log(JSON.stringify({ ok: true }));
      } catch (e) {
        console.log(JSON.stringify({ code: e.code, message: e.message, first: first.commit, ref: await repo.resolveRef('main') }));
      }`;
    const out = spawnSync(process.execPath, ['--input-type=module', '-e', script], { uid: 65534, gid: 65534, encoding: 'utf8', cwd: base });
    expect(out.stderr).toBe('');
    const res = JSON.parse(out.stdout);
    expect(res.code).toBe('IO_ERROR');
    expect(res.message).toContain(join(base, 't', 'd', 'secret'));
    expect(res.ref).toBe(res.first);
    expect(readdirSync(join(base, 'repo', 'tmp')).filter((f) => f.startsWith('larch-'))).toEqual([]);
    // every object in the repo belongs to the first commit
    const repo = await Repo.open(join(base, 'repo'));
    let objs = 0;
    for await (const _ of repo.listObjects()) objs++;
    const repo2 = await Repo.init({ path: fresh(), mode: 'archive' });
    chmodSync(join(base, 't', 'd', 'secret'), 0o644);
    await commitTree(repo2, { tree: join(base, 't'), skipList: ['/d/secret'], branch: 'main' });
    let objs2 = 0;
    for await (const _ of repo2.listObjects()) objs2++;
    expect(objs).toBe(objs2);
  });

  it('aborts on signal without leaving tmp files', async () => {
    const repo = await Repo.init({ path: fresh(), mode: 'archive' });
    const ac = new AbortController();
    ac.abort();
    await expect(commitTree(repo, { tree, branch: 'x', signal: ac.signal })).rejects.toMatchObject({ code: 'ABORTED' });
    expect(readdirSync(repo.tmpPath).filter((f) => f.startsWith('larch-'))).toEqual([]);
    expect(await repo.resolveRef('x')).toBeNull();
  });

  interop('two concurrent commit processes on one repo both succeed', { timeout: 60000 }, async () => {
    const p = fresh();
    await Repo.init({ path: p, mode: 'archive' });
    const run = (branch: string) =>
      new Promise<{ code: number | null; out: string }>((res) => {
        const script = `import { Repo, commitTree } from ${JSON.stringify(DIST)};
          const repo = await Repo.open(${JSON.stringify(p)});
          const r = await commitTree(repo, { tree: ${JSON.stringify(tree)}, branch: ${JSON.stringify(branch)}, subject: ${JSON.stringify(branch)} });
          console.log(r.commit);`;
        const c = spawn(process.execPath, ['--input-type=module', '-e', script]);
        let out = '';
        c.stdout.on('data', (d) => (out += d));
        c.stderr.on('data', (d) => (out += d));
        c.on('exit', (code) => res({ code, out }));
      });
    const [a, b] = await Promise.all([run('one'), run('two')]);
    expect(a.code, a.out).toBe(0);
    expect(b.code, b.out).toBe(0);
    expect(ostree('fsck', `--repo=${p}`)).toContain('no errors found');
    expect(ostree('refs', `--repo=${p}`).trim().split('\n').sort()).toEqual(['one', 'two']);
  });

  interop('a commit killed at random points leaves a repo that ostree fsck accepts and an unchanged ref', { timeout: 60000 }, async () => {
    const t = join(dir, 'kill-tree');
    for (let i = 0; i < 400; i++) {
      mkdirSync(join(t, `d${i % 10}`), { recursive: true });
      writeFileSync(join(t, `d${i % 10}`, `f${i}`), `file ${i} `.repeat(200 + i * 20));
    }
    const p = fresh();
    const repo = await Repo.init({ path: p, mode: 'archive' });
    const base = await commitTree(repo, { tree, branch: 'main' });
    for (const delay of [30, 80, 150, 250]) {
      const script = `import { Repo, commitTree } from ${JSON.stringify(DIST)};
        const repo = await Repo.open(${JSON.stringify(p)});
        await commitTree(repo, { tree: ${JSON.stringify(t)}, branch: 'main', subject: '${delay}' });`;
      const c = spawn(process.execPath, ['--input-type=module', '-e', script]);
      const exited = new Promise((r) => c.on('exit', r));
      await new Promise((r) => setTimeout(r, delay));
      c.kill('SIGKILL');
      await exited;
      expect(ostree('fsck', `--repo=${p}`)).toContain('no errors found');
      const head = await repo.resolveRef('main');
      // either untouched or a complete new commit
      if (head !== base.commit) expect((await repo.readCommit(head!)).subject).toBe(`${delay}`);
    }
  });

  interop('streams a file larger than 64 MiB with bounded memory and matches ostree', { timeout: 120000 }, async () => {
    const t = join(dir, 'big-tree');
    mkdirSync(t);
    const fd = openSync(join(t, 'big'), 'w');
    ftruncateSync(fd, 80 * 1024 * 1024);
    closeSync(fd);
    writeFileSync(join(t, 'small'), 'x');
    const theirs = ostreeCommit('archive', ['--orphan', '--no-bindings'], t);
    const p = fresh();
    const script = `import { Repo, commitTree } from ${JSON.stringify(DIST)};
      const repo = await Repo.init({ path: ${JSON.stringify(p)}, mode: 'archive' });
      const r = await commitTree(repo, { tree: ${JSON.stringify(t)}, timestamp: ${EPOCH}n, bindings: false });
      console.log(JSON.stringify({ commit: r.commit, maxRss: process.resourceUsage().maxRSS }));`;
    const out = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    expect(out.stderr).toBe('');
    const res = JSON.parse(out.stdout);
    expect(res.commit).toBe(theirs.commit);
    expect(res.maxRss).toBeLessThan(200 * 1024); // KiB: far below the 80 MiB file plus the runtime
    expect(existsSync(join(p, 'objects'))).toBe(true);
    rmSync(t, { recursive: true, force: true });
  });
});
