/**
 * Side-by-side runs for the `remote` tests: the same command line against the real `ostree` and
 * `larch`, each on its own repository (or sysroot), compared on exit status, stdout and the last
 * stderr line (the error), with each tool's own paths and program name made equal.
 */
import { expect } from 'vitest';
import { larch, ostree, type RunOptions, type RunResult } from './helpers.js';

/** A pair of places (repos, sysroots) with the same role: `{KEY}` in an argument is replaced by each tool's own. */
export type Places = Record<string, { ostree: string; larch: string }>;

function substitute(args: readonly string[], places: Places, who: 'ostree' | 'larch'): string[] {
  return args.map((a) => a.replace(/\{(\w+)\}/g, (m, k: string) => places[k]?.[who] ?? m));
}

/** Both tools' paths become `{KEY}`, both program names `ostree`. */
function normalize(text: string, places: Places, who: 'ostree' | 'larch'): string {
  let t = text;
  // Longest paths first, so that a repo inside a sysroot is named by the repo's key.
  const entries = Object.entries(places).sort(([, a], [, b]) => b[who].length - a[who].length);
  for (const [k, p] of entries) t = t.split(p[who]).join(`{${k}}`);
  return t.replace(/^ {2}larch /gm, '  ostree ');
}

export interface Compared {
  ostree: RunResult;
  larch: RunResult;
}

/** Run `args` with both tools. */
export function runBoth(args: readonly string[], places: Places, opts: RunOptions = {}): Compared {
  return { ostree: ostree(substitute(args, places, 'ostree'), opts), larch: larch(substitute(args, places, 'larch'), opts) };
}

function lastLine(s: string): string {
  return s.trimEnd().split('\n').pop() ?? '';
}

/**
 * Run `args` with both tools and expect the same exit status, stdout and error line (and no
 * stack trace from larch). Returns ostree's normalized stdout and error line.
 */
export function expectSame(args: readonly string[], places: Places, opts: RunOptions = {}): { stdout: string; error: string; code: number } {
  const r = runBoth(args, places, opts);
  const theirs = { code: r.ostree.code, stdout: normalize(r.ostree.stdout, places, 'ostree'), error: normalize(lastLine(r.ostree.stderr), places, 'ostree') };
  const ours = { code: r.larch.code, stdout: normalize(r.larch.stdout, places, 'larch'), error: normalize(lastLine(r.larch.stderr), places, 'larch') };
  expect({ args, ...ours }).toEqual({ args, ...theirs });
  expect(r.larch.stderr).not.toMatch(/\bat .*\.js:\d+/);
  // A usage error prints the sub-verb's help first, as ostree's does.
  if (r.ostree.stderr.startsWith('Usage:')) expect(r.larch.stderr.startsWith('Usage:')).toBe(true);
  return theirs;
}

/** OSTree's test web server (package ostree-tests), serving `root`; `stop()` kills it. */
export async function startTrivialHttpd(root: string, portFile: string, extraArgs: readonly string[] = []): Promise<{ url: string; stop: () => void }> {
  const { spawn } = await import('node:child_process');
  const { readFile } = await import('node:fs/promises');
  const child = spawn(TRIVIAL_HTTPD, [...extraArgs, '-p', portFile, root], { stdio: 'ignore' });
  // It writes its port once it listens: wait for that, not for a fixed time.
  for (;;) {
    const port = (await readFile(portFile, 'utf8').catch(() => '')).trim();
    if (/^\d+$/.test(port)) return { url: `http://127.0.0.1:${port}`, stop: () => void child.kill() };
    if (child.exitCode !== null) throw new Error(`${TRIVIAL_HTTPD} exited with status ${child.exitCode}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export const TRIVIAL_HTTPD = '/usr/libexec/libostree/ostree-trivial-httpd';
