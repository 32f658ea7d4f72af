/**
 * Crash safety: `larch admin deploy`, `rollback` and `cleanup` are killed with SIGKILL at many
 * points (strace injects SIGKILL at the Nth rename, symlink, unlink, fsync or syncfs of the
 * process). After each kill the boot configuration must name exactly the old or the new
 * deployment list, every entry's kernel, initramfs and deployment directory must exist, the real
 * `ostree admin status` must read the sysroot, and running the command again must complete.
 * Each run starts from a fresh copy (`cp -a`, hardlinks kept) of a template sysroot.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Repo } from '@larch/core-store';
import { hasOstree, larchCliPath, tmpDir, type TmpDir } from '@larch/test-fixtures';
import { deploy, deploymentName, initFs, osInit, Sysroot } from '../src/index.js';
import { commitOs, removeSysroot } from './helpers.js';

const HAVE_STRACE = spawnSync('strace', ['-V'], { stdio: 'ignore' }).status === 0;
const describeCrash = HAVE_STRACE || process.env.CI === 'true' ? describe : describe.skip;

const SETS: Record<string, string> = {
  rename: 'rename,renameat,renameat2',
  symlink: 'symlink,symlinkat',
  unlink: 'unlink,unlinkat,rmdir',
  fsync: 'fsync,fdatasync',
  syncfs: 'syncfs',
};

function listOf(sr: Sysroot): string {
  return sr.deployments.map((d) => `${d.stateroot}/${deploymentName(d)}`).join(' ');
}

async function check(root: string, allowed: string[]): Promise<string> {
  const sr = await Sysroot.open(root); // throws when an entry's deployment directory is missing
  for (const d of sr.deployments) {
    for (const key of ['linux', 'initrd']) {
      const p = d.bootconfig.get(key);
      expect(p, `${key} of ${deploymentName(d)}`).toBeDefined();
      expect(existsSync(path.join(root, 'boot', p!)), `${key} ${p}`).toBe(true);
    }
    expect(existsSync(sr.deploymentDir(d))).toBe(true);
  }
  const list = listOf(sr);
  expect(allowed).toContain(list);
  if (hasOstree()) {
    const st = spawnSync('ostree', ['admin', 'status', `--sysroot=${root}`], { encoding: 'utf8' });
    expect(st.status, st.stderr).toBe(0);
  }
  return list;
}

function runLarch(args: string[], inject?: { set: string; n: number; log: string }): { code: number | null; signal: string | null; stderr: string; died: string } {
  const node = [process.execPath, larchCliPath(), ...args];
  const cmd = inject ? ['strace', '-f', '-qq', '-o', inject.log, '-e', `trace=${inject.set}`, '-e', `inject=${inject.set}:signal=KILL:when=${inject.n}`, ...node] : node;
  const r = spawnSync(cmd[0], cmd.slice(1), { encoding: 'utf8', env: { ...process.env, OSTREE_SYSROOT_DEBUG: 'mutable-deployments' } });
  let died = '';
  if (inject && existsSync(inject.log)) {
    // The killed call ends in "= ?"; with -f it may be split into "<unfinished ...>" / "<... resumed>".
    const lines = readFileSync(inject.log, 'utf8').split('\n');
    const k = lines.findIndex((l) => / = \?$/.test(l.trim()));
    if (k >= 0) {
      const [pid] = lines[k].split(/\s+/);
      let call = lines[k];
      if (call.includes('resumed>')) call = [...lines.slice(0, k)].reverse().find((l) => l.startsWith(`${pid} `) && l.includes('<unfinished')) ?? call;
      died = call.replace(/^\d+\s+/, '').replace(/\s*<unfinished \.\.\.>/, '').slice(0, 200);
    }
  }
  return { code: r.status, signal: r.signal, stderr: r.stderr, died };
}

describeCrash('crash safety under SIGKILL', () => {
  let work: TmpDir;
  const templates: Record<string, string> = {};
  const expected: Record<string, { old: string; next: string }> = {};
  let points = 0;
  const seen: string[] = [];

  beforeAll(async () => {
    process.env.OSTREE_SYSROOT_DEBUG = 'mutable-deployments';
    work = await tmpDir('larch-sysroot-crash-');
    // Base: two deployments; a newer commit waiting on the branch.
    const base = work.join('base');
    mkdirSync(base);
    await initFs(base);
    await osInit(base, 'testos');
    const repo = path.join(base, 'ostree/repo');
    await commitOs(work.path, repo, { version: '1', etc: { 'a.conf': 'a\n' } });
    await deploy(base, { stateroot: 'testos', refspec: 'testos/main', kargs: { replace: ['root=LABEL=ROOT'] } });
    await commitOs(work.path, repo, { version: '2', kernel: 'kernel 2\n', etc: { 'a.conf': 'a\n', 'b.conf': 'b\n' } });
    await deploy(base, { stateroot: 'testos', refspec: 'testos/main' });
    await commitOs(work.path, repo, { version: '3', kernel: 'kernel 3\n', etc: { 'a.conf': 'a3\n' } });
    templates.deploy = base;
    templates.rollback = base;
    // Cleanup template: the base plus garbage of every kind cleanup removes.
    const dirty = work.join('dirty');
    spawnSync('cp', ['-a', base, dirty]);
    const sr = await Sysroot.open(dirty);
    const d0 = sr.deployments[0];
    spawnSync('cp', ['-a', sr.deploymentDir(d0), path.join(path.dirname(sr.deploymentDir(d0)), `${d0.csum}.7`)]);
    writeFileSync(`${path.join(path.dirname(sr.deploymentDir(d0)), `${d0.csum}.7`)}.origin`, '[origin]\nrefspec=x\n');
    mkdirSync(path.join(dirty, 'boot/ostree', `testos-${'0'.repeat(64)}`), { recursive: true });
    writeFileSync(path.join(dirty, 'boot/ostree', `testos-${'0'.repeat(64)}`, 'vmlinuz-1'), 'old\n');
    mkdirSync(path.join(dirty, `boot/loader.${1 - sr.bootversion}/entries`), { recursive: true });
    writeFileSync(path.join(dirty, `boot/loader.${1 - sr.bootversion}/entries/ostree-1-testos.conf`), 'title stale\n');
    mkdirSync(path.join(dirty, `ostree/boot.${1 - sr.bootversion}.1/testos`), { recursive: true });
    const r = await Repo.open(path.join(dirty, 'ostree/repo'));
    await commitOs(work.path, r.path, { version: 'junk', branch: 'junk', kernel: 'junk kernel\n', etc: { 'junk1': '1\n', 'junk2': '2\n', 'junk3': '3\n' } });
    await r.setRef('junk', null);
    templates.cleanup = dirty;
    // Expected lists: run each operation uninterrupted on a copy.
    for (const op of ['deploy', 'rollback', 'cleanup']) {
      const c = work.join(`expect-${op}`);
      spawnSync('cp', ['-a', templates[op], c]);
      const old = listOf(await Sysroot.open(c));
      const r2 = runLarch(opArgs(op, c));
      expect(r2.code, r2.stderr).toBe(0);
      expected[op] = { old, next: listOf(await Sysroot.open(c)) };
      await removeSysroot(c);
    }
    expect(expected.deploy.next).not.toBe(expected.deploy.old);
    expect(expected.rollback.next).not.toBe(expected.rollback.old);
  }, 300_000);

  afterAll(async () => {
    delete process.env.OSTREE_SYSROOT_DEBUG;
    await work?.cleanup();
  });

  function opArgs(op: string, root: string): string[] {
    if (op === 'deploy') return ['admin', 'deploy', `--sysroot=${root}`, '--os=testos', 'testos/main'];
    if (op === 'rollback') return ['admin', 'rollback', `--sysroot=${root}`];
    return ['admin', 'cleanup', `--sysroot=${root}`];
  }

  const plan: Array<{ op: string; sets: string[]; maxN: number }> = [
    { op: 'deploy', sets: ['rename', 'symlink', 'unlink', 'fsync', 'syncfs'], maxN: 14 },
    { op: 'rollback', sets: ['rename', 'symlink', 'unlink', 'syncfs'], maxN: 10 },
    { op: 'cleanup', sets: ['unlink', 'rename', 'fsync'], maxN: 12 },
  ];

  for (const { op, sets, maxN } of plan) {
    it(`${op}: killed at each point, then rerun`, async () => {
      let i = 0;
      for (const set of sets) {
        for (let n = 1; n <= maxN; n++) {
          const root = work.join(`run-${op}-${i++}`);
          spawnSync('cp', ['-a', templates[op], root]);
          const r = runLarch(opArgs(op, root), { set: SETS[set], n, log: `${root}.strace` });
          const killed = r.code !== 0;
          const { old, next } = expected[op];
          await check(root, [old, next]);
          if (killed) {
            points++;
            seen.push(`${op}:${set}#${n} ${r.died}`);
          }
          // A second run completes and leaves a valid state.
          const again = runLarch(opArgs(op, root));
          expect(again.code, `rerun after ${op} ${set}#${n}: ${again.stderr}`).toBe(0);
          const sr = await Sysroot.open(root);
          expect(sr.deployments.length).toBeGreaterThan(0);
          if (op !== 'deploy') await check(root, [old, next]);
          await removeSysroot(root);
          if (!killed) break; // the command finished before the Nth call: no more points in this set
        }
      }
    }, 900_000);
  }

  it('covered at least 50 distinct kill points', () => {
    if (process.env.LARCH_CRASH_LOG) writeFileSync(process.env.LARCH_CRASH_LOG, `${seen.join('\n')}\n`);
    expect(points, seen.join('\n')).toBeGreaterThanOrEqual(50);
  });
});
