/**
 * The external programs an image build runs (mkfs.ext4, mkfs.vfat, mtools, sgdisk, dd,
 * grub-mkstandalone), each found on PATH (plus /usr/sbin and /sbin, where Debian puts the
 * filesystem tools for root only) before anything is written, so a missing one is reported up
 * front with the Debian package that provides it. A failing program becomes one LarchError naming
 * the program and the last line it printed.
 */
import { spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { LarchError } from '@larch/core-store';

/** Program → Debian package providing it. */
export const TOOL_PACKAGES = {
  'mkfs.ext4': 'e2fsprogs',
  'mkfs.vfat': 'dosfstools',
  mmd: 'mtools',
  mcopy: 'mtools',
  sgdisk: 'gdisk',
  dd: 'coreutils',
  'grub-mkstandalone': 'grub-common (with grub-efi-amd64-bin)',
} as const;

export type Tool = keyof typeof TOOL_PACKAGES;

const EXTRA_DIRS = ['/usr/local/sbin', '/usr/sbin', '/sbin'];

/** The absolute path of `tool`, or null. */
export function findTool(tool: string, path = process.env.PATH ?? ''): string | null {
  for (const dir of [...path.split(delimiter).filter(Boolean), ...EXTRA_DIRS]) {
    const p = join(dir, tool);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  return null;
}

/** Resolve every tool in `tools`; throws one INVALID_ARGUMENT error listing the missing ones. */
export function requireTools(tools: readonly Tool[]): Record<string, string> {
  const found: Record<string, string> = {};
  const missing: string[] = [];
  for (const t of tools) {
    const p = findTool(t);
    if (p === null) missing.push(`${t} (Debian package ${TOOL_PACKAGES[t]})`);
    else found[t] = p;
  }
  if (missing.length > 0) {
    throw new LarchError('INVALID_ARGUMENT', `Missing programs needed to build an image: ${missing.join(', ')}`, { missing, reason: 'missing-tool' });
  }
  return found;
}

/** Run `file args…`, resolve with its stdout; reject with the program's last stderr line. */
export function runTool(file: string, args: string[], opts: { signal?: AbortSignal; env?: Record<string, string> } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(opts.env ? { env: { ...process.env, ...opts.env } } : {}),
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e) => reject(new LarchError(e.name === 'AbortError' ? 'ABORTED' : 'IO_ERROR', `${file}: ${e.message}`, { program: file, reason: 'tool-failed' }, { cause: e })));
    child.on('close', (code, sig) => {
      if (code === 0) return resolve(Buffer.concat(out).toString('utf8'));
      const lines = Buffer.concat(err).toString('utf8').trim().split('\n').filter(Boolean);
      const last = lines.length > 0 ? lines[lines.length - 1] : `exit ${code ?? sig}`;
      reject(new LarchError('IO_ERROR', `${file} ${args[0] ?? ''} failed: ${last}`, { program: file, args, status: code, signal: sig, stderr: lines.slice(-20), reason: 'tool-failed' }));
    });
  });
}
