/**
 * Where ed25519 keys come from, in OSTree's formats (spec/pull-and-signing.md 6.3, ostree-sign(1)):
 * - key files: one base64 key per line (public keys for verifying, 64-byte secret keys for
 *   signing, `--keys-file`); blank lines are ignored, other unusable lines are skipped and
 *   reported, and a file without a single usable key is an error;
 * - key directories: every regular file in the directory, in name order
 *   (`/etc/ostree/trusted.ed25519.d/`);
 * - the well-known locations, used when a remote configures neither an inline key nor a key
 *   file: `<root>/trusted.ed25519`, `<root>/trusted.ed25519.d/*` and the `revoked.ed25519`
 *   counterparts, for root in /etc/ostree and /usr/share/ostree (`--keys-dir` replaces the roots).
 *   One deliberate difference: OSTree reads the well-known revocation lists only together with
 *   the well-known trusted keys; we also apply them to keys configured per remote, so a key
 *   revoked system-wide is refused everywhere;
 * - specs in the `ostree remote add --sign-verify=ed25519=inline:KEY|file:PATH` form.
 * Key files are small; reading is capped at MAX_KEY_FILE_SIZE so a wrong path (a device, a huge
 * file) cannot exhaust memory.
 */

import { open, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { SigningError, sanitize } from './errors.js';
import { Ed25519PublicKey, Ed25519SecretKey, Ed25519Verifier, type Ed25519Engine } from './sign-ed25519.js';

/** Largest key file we read (1 MiB ≈ 23 000 public keys). */
export const MAX_KEY_FILE_SIZE = 1024 * 1024;

/** Well-known roots searched when no key is configured, in OSTree's order. */
export const DEFAULT_ED25519_KEY_ROOTS: readonly string[] = ['/etc/ostree', '/usr/share/ostree'];

export interface SkippedKeyLine {
  source: string;
  line: number;
  reason: string;
}

export interface ParsedKeys<K> {
  keys: K[];
  skipped: SkippedKeyLine[];
}

/**
 * Parse key-file text: one base64 key per line. Pure. Lines that are not a valid key are
 * returned in `skipped` (with the reason) rather than thrown, as one bad line must not disable
 * every other key; callers decide whether an empty result is an error.
 */
export function parseEd25519KeyLines(text: string, kind: 'public', source?: string): ParsedKeys<Ed25519PublicKey>;
export function parseEd25519KeyLines(text: string, kind: 'secret', source?: string): ParsedKeys<Ed25519SecretKey>;
export function parseEd25519KeyLines(text: string, kind: 'public' | 'secret', source = '<text>'): ParsedKeys<Ed25519PublicKey | Ed25519SecretKey> {
  const keys: Array<Ed25519PublicKey | Ed25519SecretKey> = [];
  const skipped: SkippedKeyLine[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line === '') continue;
    try {
      keys.push(kind === 'public' ? Ed25519PublicKey.from(line) : Ed25519SecretKey.from(line));
    } catch (e) {
      skipped.push({ source, line: i + 1, reason: (e as Error).message });
    }
  }
  return { keys, skipped };
}

async function readSmallFile(path: string): Promise<string> {
  let fh;
  try {
    fh = await open(path, 'r');
    const st = await fh.stat();
    if (!st.isFile()) throw new SigningError('KEY_INVALID', `Key file ${sanitize(path)} is not a regular file`, { path });
    if (st.size > MAX_KEY_FILE_SIZE) {
      throw new SigningError('KEY_INVALID', `Key file ${sanitize(path)} is larger than ${MAX_KEY_FILE_SIZE} bytes`, { path, limit: MAX_KEY_FILE_SIZE, observed: st.size });
    }
    const buf = Buffer.alloc(Math.min(st.size + 1, MAX_KEY_FILE_SIZE + 1));
    let n = 0;
    for (;;) {
      const { bytesRead } = await fh.read(buf, n, buf.length - n, null);
      if (bytesRead === 0) break;
      n += bytesRead;
      if (n >= buf.length) throw new SigningError('KEY_INVALID', `Key file ${sanitize(path)} grew while being read`, { path });
    }
    return buf.subarray(0, n).toString('utf8');
  } catch (e) {
    if (e instanceof SigningError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    throw new SigningError(code === 'ENOENT' ? 'KEY_NOT_FOUND' : 'IO_ERROR', `Can't open key file ${sanitize(path)}: ${(e as Error).message}`, { path, errno: code }, { cause: e });
  } finally {
    await fh?.close();
  }
}

/**
 * Read a key file (one base64 key per line). Throws KEY_NOT_FOUND when it does not exist and
 * KEY_INVALID when it holds no valid key (unless `allowEmpty`, used for revocation lists).
 * Reads at most MAX_KEY_FILE_SIZE bytes; no locks.
 */
export async function readEd25519KeyFile(path: string, kind: 'public', options?: { allowEmpty?: boolean }): Promise<ParsedKeys<Ed25519PublicKey>>;
export async function readEd25519KeyFile(path: string, kind: 'secret', options?: { allowEmpty?: boolean }): Promise<ParsedKeys<Ed25519SecretKey>>;
export async function readEd25519KeyFile(path: string, kind: 'public' | 'secret', options: { allowEmpty?: boolean } = {}): Promise<ParsedKeys<Ed25519PublicKey | Ed25519SecretKey>> {
  const text = await readSmallFile(path);
  const parsed = kind === 'public' ? parseEd25519KeyLines(text, 'public', path) : parseEd25519KeyLines(text, 'secret', path);
  if (parsed.keys.length === 0 && !options.allowEmpty) {
    throw new SigningError('KEY_INVALID', `signature: ed25519: no valid keys in file ${sanitize(path)}`, { path, skipped: parsed.skipped });
  }
  return parsed;
}

/**
 * Read every regular file of a key directory (name order; hidden files included, as OSTree
 * does). A missing directory yields no keys. Files without valid keys are reported in `skipped`.
 */
export async function readEd25519KeyDir(dir: string): Promise<ParsedKeys<Ed25519PublicKey>> {
  let names: string[];
  try {
    names = (await readdir(dir)).sort();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT' || (e as NodeJS.ErrnoException).code === 'ENOTDIR') return { keys: [], skipped: [] };
    throw new SigningError('IO_ERROR', `Can't read key directory ${sanitize(dir)}: ${(e as Error).message}`, { path: dir }, { cause: e });
  }
  const out: ParsedKeys<Ed25519PublicKey> = { keys: [], skipped: [] };
  for (const name of names) {
    const path = join(dir, name);
    const st = await stat(path).catch(() => null);
    if (!st?.isFile()) continue;
    const parsed = await readEd25519KeyFile(path, 'public', { allowEmpty: true });
    out.keys.push(...parsed.keys);
    out.skipped.push(...parsed.skipped);
  }
  return out;
}

async function readOptionalFile(path: string): Promise<ParsedKeys<Ed25519PublicKey>> {
  try {
    return await readEd25519KeyFile(path, 'public', { allowEmpty: true });
  } catch (e) {
    if (e instanceof SigningError && e.code === 'KEY_NOT_FOUND') return { keys: [], skipped: [] };
    throw e;
  }
}

/** A key given as `inline:BASE64` or `file:PATH` (ostree's `--sign-verify=ed25519=…`). */
export type KeySpec = { kind: 'inline'; value: string } | { kind: 'file'; path: string };

const keySpecSchema = z.string().regex(/^(inline|file):.+$/, 'expected inline:BASE64 or file:PATH');

/** Parse `inline:BASE64` or `file:PATH`. Throws CONFIG_INVALID for anything else. Pure. */
export function parseKeySpec(spec: string): KeySpec {
  const r = keySpecSchema.safeParse(spec);
  if (!r.success) throw new SigningError('CONFIG_INVALID', `Invalid key specification '${sanitize(spec)}': expected inline:BASE64 or file:PATH`, { spec });
  const i = spec.indexOf(':');
  const kind = spec.slice(0, i);
  const rest = spec.slice(i + 1);
  return kind === 'inline' ? { kind: 'inline', value: rest } : { kind: 'file', path: rest };
}

const loadOptionsSchema = z.object({
  inline: z.array(z.string()).optional(),
  files: z.array(z.string().min(1)).optional(),
  dirs: z.array(z.string().min(1)).optional(),
  revoked: z.array(z.string()).optional(),
  revokedFiles: z.array(z.string().min(1)).optional(),
  keysDirs: z.array(z.string().min(1)).optional(),
  useWellKnown: z.boolean().optional(),
  engine: z.enum(['node', 'noble', 'both']).optional(),
});

export interface Ed25519KeySources {
  /** Inline base64 public keys (`verification-ed25519-key`). */
  inline?: string[];
  /** Key files (`verification-ed25519-file`). */
  files?: string[];
  /** Extra key directories, every file of which is read. */
  dirs?: string[];
  /** Inline revoked public keys. */
  revoked?: string[];
  /** Revoked-key files (`revokedkey-file`). */
  revokedFiles?: string[];
  /** Roots of the well-known locations (`--keys-dir`); default DEFAULT_ED25519_KEY_ROOTS. */
  keysDirs?: string[];
  /**
   * Read the well-known trusted locations. Default: only when no inline key, file or dir is
   * given, as OSTree does. Revocation lists in the well-known locations are always read unless
   * this is explicitly false.
   */
  useWellKnown?: boolean;
  engine?: Ed25519Engine;
}

/**
 * Build an ed25519 verifier from key sources (validated with zod; CONFIG_INVALID on bad
 * options). Throws KEY_INVALID for a bad inline key or a key file without valid keys, and
 * KEY_NOT_FOUND when no trusted key was found anywhere. Reads files only; no locks.
 */
export async function loadEd25519Verifier(sources: Ed25519KeySources): Promise<Ed25519Verifier & { skipped: SkippedKeyLine[] }> {
  const parsed = loadOptionsSchema.safeParse(sources);
  if (!parsed.success) throw new SigningError('CONFIG_INVALID', `Invalid ed25519 key options: ${parsed.error.message}`, { issues: parsed.error.issues });
  const o = parsed.data;
  const trusted: Ed25519PublicKey[] = [];
  const revoked: Ed25519PublicKey[] = [];
  const skipped: SkippedKeyLine[] = [];
  for (const k of o.inline ?? []) trusted.push(Ed25519PublicKey.from(k));
  for (const k of o.revoked ?? []) revoked.push(Ed25519PublicKey.from(k));
  for (const f of o.files ?? []) {
    const r = await readEd25519KeyFile(f, 'public');
    trusted.push(...r.keys);
    skipped.push(...r.skipped);
  }
  for (const d of o.dirs ?? []) {
    const r = await readEd25519KeyDir(d);
    trusted.push(...r.keys);
    skipped.push(...r.skipped);
  }
  for (const f of o.revokedFiles ?? []) {
    const r = await readEd25519KeyFile(f, 'public', { allowEmpty: true });
    revoked.push(...r.keys);
    skipped.push(...r.skipped);
  }
  const configured = (o.inline?.length ?? 0) + (o.files?.length ?? 0) + (o.dirs?.length ?? 0) > 0;
  const wellKnownTrusted = o.useWellKnown ?? !configured;
  const roots = o.keysDirs ?? [...DEFAULT_ED25519_KEY_ROOTS];
  if (o.useWellKnown !== false) {
    for (const root of roots) {
      const parts = [await readOptionalFile(join(root, 'revoked.ed25519')), await readEd25519KeyDir(join(root, 'revoked.ed25519.d'))];
      for (const r of parts) {
        revoked.push(...r.keys);
        skipped.push(...r.skipped);
      }
      if (!wellKnownTrusted) continue;
      const t = [await readOptionalFile(join(root, 'trusted.ed25519')), await readEd25519KeyDir(join(root, 'trusted.ed25519.d'))];
      for (const r of t) {
        trusted.push(...r.keys);
        skipped.push(...r.skipped);
      }
    }
  }
  if (trusted.length === 0) {
    throw new SigningError('KEY_NOT_FOUND', 'signature: ed25519: no public keys loaded', { roots: wellKnownTrusted ? roots : [], skipped });
  }
  const verifier = new Ed25519Verifier({ trusted, revoked, engine: o.engine }) as Ed25519Verifier & { skipped: SkippedKeyLine[] };
  verifier.skipped = skipped;
  return verifier;
}

/** Sources for a `KeySpec` list: inline keys and files. Pure. */
export function keySourcesFromSpecs(specs: readonly KeySpec[]): Pick<Ed25519KeySources, 'inline' | 'files'> {
  return {
    inline: specs.flatMap((s) => (s.kind === 'inline' ? [s.value] : [])),
    files: specs.flatMap((s) => (s.kind === 'file' ? [s.path] : [])),
  };
}

/** Read secret keys from a `--keys-file` (one base64 64-byte key per line). KEY_INVALID when none is valid. */
export async function readEd25519SecretKeys(path: string): Promise<Ed25519SecretKey[]> {
  return (await readEd25519KeyFile(path, 'secret')).keys;
}
