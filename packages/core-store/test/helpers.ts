/**
 * Test helpers for core-store integration tests: temporary directories, tree builders, a thin
 * wrapper over the real `ostree` CLI, and a tree snapshot used to compare our output with ostree's.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, symlinkSync, writeFileSync, chmodSync, lchownSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as native from '@larch/native';

export const HAVE_OSTREE = spawnSync('ostree', ['--version']).status === 0;
if (!HAVE_OSTREE && process.env.CI === 'true') throw new Error('the real ostree CLI is required in CI (apt-get install -y ostree)');

const made: string[] = [];
export function tmp(prefix = 'larch-test-'): string {
  const d = mkdtempSync(path.join(tmpdir(), prefix));
  made.push(d);
  return d;
}
export function cleanup(): void {
  for (const d of made.splice(0)) rmSync(d, { recursive: true, force: true });
}

export function ostree(...args: string[]): string {
  return execFileSync('ostree', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}
/** Run ostree, returning status and output instead of throwing. */
export function ostreeRun(...args: string[]): { status: number; stdout: string; stderr: string } {
  const r = spawnSync('ostree', args, { encoding: 'utf8' });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

export type TreeSpec = Record<string, string | { content?: string; mode?: number; uid?: number; gid?: number; symlink?: string; dir?: boolean; xattrs?: Record<string, string> }>;

/** Build a tree: keys are relative paths; string values are file contents. Parents are created 0755. */
export function makeTree(root: string, spec: TreeSpec): void {
  mkdirSync(root, { recursive: true });
  const dirs: Array<[string, number]> = [];
  for (const [rel, v] of Object.entries(spec)) {
    const p = path.join(root, rel);
    mkdirSync(path.dirname(p), { recursive: true });
    const o = typeof v === 'string' ? { content: v } : v;
    if (o.dir) {
      mkdirSync(p, { recursive: true });
      if (o.mode !== undefined) dirs.push([p, o.mode]);
    } else if (o.symlink !== undefined) symlinkSync(o.symlink, p);
    else {
      writeFileSync(p, o.content ?? '');
      chmodSync(p, o.mode ?? 0o644);
    }
    if (o.uid !== undefined || o.gid !== undefined) lchownSync(p, o.uid ?? 0, o.gid ?? 0);
    for (const [k, val] of Object.entries(o.xattrs ?? {})) native.lsetxattr(p, k, Buffer.from(val));
  }
  for (const [p, m] of dirs.reverse()) chmodSync(p, m);
}

export function ostreeInitCommit(repo: string, mode: string, tree: string, branch = 'main', extra: string[] = []): string {
  ostree('init', `--repo=${repo}`, `--mode=${mode}`);
  ostree('commit', `--repo=${repo}`, '-b', branch, `--tree=dir=${tree}`, '--timestamp=2020-01-01 00:00:00 +0000', '-s', 'subject', ...extra);
  return ostree('rev-parse', `--repo=${repo}`, branch).trim();
}

export interface Node {
  type: 'd' | 'f' | 'l';
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
  nlink: number;
  content?: string;
  target?: string;
  xattrs: string;
}

/** Everything about a tree we compare against ostree's checkout (paths relative to root). */
export function snapshot(root: string): Map<string, Node> {
  const out = new Map<string, Node>();
  const walk = (rel: string): void => {
    const p = path.join(root, rel);
    const st = lstatSync(p);
    const xs = native.llistxattr(p).filter((n) => n !== 'user.ostreemeta' && !n.startsWith('security.')).sort();
    const xattrs = xs.map((n) => `${n}=${native.lgetxattr(p, n)?.toString('hex')}`).join(',');
    const base = { mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, mtime: Math.floor(st.mtimeMs / 1000), nlink: st.nlink, xattrs };
    if (st.isDirectory()) {
      out.set(rel || '.', { type: 'd', ...base });
      for (const n of readdirSync(p).sort()) walk(rel ? `${rel}/${n}` : n);
    } else if (st.isSymbolicLink()) out.set(rel, { type: 'l', ...base, target: readlinkSync(p) });
    else out.set(rel, { type: 'f', ...base, content: createHash('sha256').update(readFileSync(p)).digest('hex') });
  };
  walk('');
  return out;
}

/** A tree exercising modes, owners, xattrs, symlinks, empty dirs, setuid and a restrictive dir. */
export const SAMPLE: TreeSpec = {
  'hello.txt': { content: 'hello\n', uid: 12, gid: 34 },
  'empty': '',
  'link': { symlink: 'hello.txt' },
  'abs-link': { symlink: '/etc/passwd' },
  'bin/tool': { content: '#!/bin/sh\necho hi\n', mode: 0o755 },
  'bin/suid': { content: 'x', mode: 0o4755 },
  'etc/conf': { content: 'a=b\n', xattrs: { 'user.test': 'v1' } },
  'private': { dir: true, mode: 0o700 },
  'private/secret': { content: 'secret', mode: 0o600 },
  'emptydir': { dir: true },
  'sgid': { dir: true, mode: 0o2775 },
  'sgid/f': 'in a setgid dir\n',
  'sticky': { dir: true, mode: 0o1777 },
  'deep/a/b/c/file': 'deep\n',
};

export function fileSha(p: string): string {
  return createHash('sha256').update(readFileSync(p)).digest('hex');
}
