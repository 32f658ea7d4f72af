/**
 * Test helpers: OS-like trees (usr/lib/modules/VER/{vmlinuz,initramfs.img}, usr/etc/…), commits
 * into a sysroot's repo through core-store, snapshots of a sysroot's boot state for byte-for-byte
 * comparison with what the real `ostree admin` writes, and teardown that clears the immutable
 * attribute deployments carry.
 */
import { createHash } from 'node:crypto';
import { lstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { commitTree, Repo } from '@larch/core-store';
import { Variant } from '@larch/gvariant';
import { makeTree, type TreeSpec } from '@larch/test-fixtures';
import { setImmutable } from '../src/index.js';

export const KERNEL = 'a kernel\n';
export const INITRAMFS = 'an initramfs\n';

export interface OsTreeOptions {
  kver?: string;
  /** null: no usr/lib/modules kernel (for the legacy layout). */
  kernel?: string | null;
  /** null: no initramfs. */
  initramfs?: string | null;
  devicetree?: string;
  /** Extra entries (paths relative to the tree root). */
  extra?: TreeSpec;
  /** Entries under usr/etc. */
  etc?: TreeSpec;
  prettyName?: string;
}

export function osTreeSpec(o: OsTreeOptions = {}): TreeSpec {
  const kver = o.kver ?? '3.6.0';
  const spec: TreeSpec = {
    'usr/bin/sh': { type: 'file', content: '#!/bin/sh\n', mode: 0o755 },
    bin: { type: 'symlink', target: 'usr/bin' },
    'usr/etc/os-release': `PRETTY_NAME="${o.prettyName ?? 'TestOS 42'}"\nID=testos\n`,
    'usr/etc/aconfigfile': 'default config\n',
  };
  if (o.kernel !== null) spec[`usr/lib/modules/${kver}/vmlinuz`] = o.kernel ?? KERNEL;
  if (o.kernel !== null && o.initramfs !== null) spec[`usr/lib/modules/${kver}/initramfs.img`] = o.initramfs ?? INITRAMFS;
  if (o.devicetree !== undefined) spec[`usr/lib/modules/${kver}/devicetree`] = o.devicetree;
  for (const [k, v] of Object.entries(o.etc ?? {})) spec[`usr/etc/${k}`] = v;
  Object.assign(spec, o.extra ?? {});
  return spec;
}

let seq = 0;
/** Build the tree in a fresh directory under `work` and commit it to `repoPath` on `branch`. */
export async function commitOs(work: string, repoPaths: string | string[], opts: OsTreeOptions & { version?: string; branch?: string; timestamp?: bigint } = {}): Promise<string> {
  const dir = path.join(work, `tree-${++seq}`);
  await mkdir(dir, { recursive: true });
  await makeTree(dir, osTreeSpec(opts));
  let csum = '';
  for (const rp of Array.isArray(repoPaths) ? repoPaths : [repoPaths]) {
    const repo = await Repo.open(rp);
    const r = await commitTree(repo, {
      tree: dir,
      branch: opts.branch ?? 'testos/main',
      subject: 'test',
      timestamp: opts.timestamp ?? 1_700_000_000n + BigInt(seq),
      metadata: opts.version !== undefined ? [['version', new Variant('s', opts.version)]] : [],
    });
    if (csum !== "" && r.commit !== csum) throw new Error(`commit differs between repos: ${csum} vs ${r.commit}`);
    csum = r.commit;
  }
  await rm(dir, { recursive: true, force: true });
  return csum;
}

function sha(p: string): string {
  return createHash('sha256').update(readFileSync(p)).digest('hex').slice(0, 16);
}

/**
 * A text snapshot of what decides booting: every entry under boot/ and ostree/ except the
 * repository and the insides of deployments, with type, mode, symlink target and, for files
 * under boot/loader.*, their full content; plus the `ostree/*` refs and the origin files.
 */
export function snapshot(sysroot: string): string {
  const lines: string[] = [];
  const walk = (rel: string): void => {
    const full = path.join(sysroot, rel);
    const st = lstatSync(full);
    const mode = (st.mode & 0o7777).toString(8);
    if (st.isSymbolicLink()) lines.push(`l ${rel} -> ${readlinkSync(full)}`);
    else if (st.isFile()) {
      lines.push(`f ${mode} ${rel} ${sha(full)}`);
      if (/^boot\/loader\.[01]\//.test(rel) || rel.endsWith('.origin')) lines.push(...readFileSync(full, 'utf8').split('\n').map((l) => `    | ${l}`));
    } else if (st.isDirectory()) {
      lines.push(`d ${mode} ${rel}`);
      if (rel === 'ostree/repo' || /^ostree\/deploy\/[^/]+\/deploy\/[^/]+$/.test(rel)) return;
      for (const n of readdirSync(full).sort()) walk(rel === '' ? n : `${rel}/${n}`);
    }
  };
  walk('boot');
  walk('ostree');
  const refsDir = path.join(sysroot, 'ostree/repo/refs/heads/ostree');
  const refs: string[] = [];
  const walkRefs = (d: string, name: string): void => {
    let names: string[];
    try {
      names = readdirSync(d);
    } catch {
      return;
    }
    for (const n of names.sort()) {
      const p = path.join(d, n);
      if (lstatSync(p).isDirectory()) walkRefs(p, `${name}/${n}`);
      else refs.push(`ref ${name}/${n} ${readFileSync(p, 'utf8').trim()}`);
    }
  };
  walkRefs(refsDir, 'ostree');
  return [...lines.filter((l) => !l.endsWith(' ostree/lock') && !/ ostree\/lock /.test(l)), ...refs].join('\n');
}

/** Remove a sysroot made by tests, clearing the immutable bit on every deployment first. */
export async function removeSysroot(sysroot: string): Promise<void> {
  const dep = path.join(sysroot, 'ostree/deploy');
  let oses: string[] = [];
  try {
    oses = readdirSync(dep);
  } catch {
    /* nothing deployed */
  }
  for (const os of oses) {
    let names: string[] = [];
    try {
      names = readdirSync(path.join(dep, os, 'deploy'));
    } catch {
      continue;
    }
    for (const n of names) {
      const p = path.join(dep, os, 'deploy', n);
      if (lstatSync(p).isDirectory()) setImmutable(p, false);
    }
  }
  await rm(sysroot, { recursive: true, force: true });
}

/** Run `fn` with the deployment root's immutable bit cleared, then set it again. */
export async function mutating<T>(dir: string, fn: () => Promise<T> | T): Promise<T> {
  const was = setImmutable(dir, false);
  try {
    return await fn();
  } finally {
    if (was) setImmutable(dir, true);
  }
}
