/**
 * Filesystem safety helpers shared by checkout (and, later, /etc merge, delta apply and the server).
 *
 * Threat model: the *content* of a repository is hostile. A dirtree may carry names such as `..`,
 * `a/b` or "" that would make a naive writer escape its destination, and a union checkout may run
 * over a tree where some directory has been replaced by a symlink pointing elsewhere. These helpers
 * make sure every name we join onto a path is a single plain component, and that no component of a
 * path we write beneath is a symlink.
 *
 * Node has no `openat`/`RESOLVE_BENEATH`, so the walk here is check-then-open: every leading
 * component is `lstat`ed and must be a real directory, and the final open uses
 * `O_NOFOLLOW` (plus `O_EXCL` when creating). That defends against hostile repository content,
 * not against another local user racing us inside the destination directory between the check
 * and the open; callers that need the latter must not share the destination with untrusted users.
 */
import { constants as C, promises as fsp } from 'node:fs';
import path from 'node:path';
import { LarchError } from './errors.js';

/**
 * Check one path component taken from repository data (a dirtree entry, a subpath element).
 * Rejects "", ".", "..", anything containing "/" or NUL. Throws LarchError INVALID_NAME whose
 * `data` carries the name and whatever context the caller passes (for example the dirtree checksum).
 */
export function validatePathComponent(name: string, context: Record<string, unknown> = {}): void {
  let why: string | null = null;
  if (name.length === 0) why = 'Invalid empty filename';
  else if (name === '.' || name === '..') why = `Invalid special element '.' or '..' in filename ${name}`;
  else if (name.includes('/')) why = `Invalid / in filename ${shownName(name)}`;
  else if (name.includes('\0')) why = `Invalid NUL in filename ${shownName(name)}`;
  if (why === null) return;
  const where = typeof context.dirtree === 'string' ? ` (dirtree ${context.dirtree})` : '';
  throw new LarchError('INVALID_NAME', `${why}${where}`, { name, ...context });
}

/**
 * A name as ostree prints it in an error (bare), unless it holds control characters or is very
 * long: then escaped and quoted by `sanitize`, so the error stays one line.
 */
function shownName(name: string): string {
  // eslint-disable-next-line no-control-regex
  return name.length > 200 || /[\u0000-\u001f\u007f]/.test(name) ? sanitize(name) : name;
}

/** Escape control characters and cap the length, so untrusted text is safe inside a message. */
export function sanitize(text: string, max = 200): string {
  const s = JSON.stringify(text.length > max ? `${text.slice(0, max)}…` : text);
  return s;
}

/**
 * Split a relative path coming from untrusted input ("a/b/c", leading "/" allowed) into validated
 * components. Empty components from repeated slashes are skipped; "." and ".." are rejected.
 */
export function splitSafePath(rel: string, context: Record<string, unknown> = {}): string[] {
  const parts = rel.split('/').filter((p) => p.length > 0);
  for (const p of parts) validatePathComponent(p, context);
  return parts;
}

/**
 * Verify that `root/<components[0..n-1]>` are all real directories (not symlinks), so that a file
 * created at `root/<components>` stays beneath `root`. `root` itself is trusted (the caller chose
 * it). Throws LarchError EXISTS when a component is a symlink or not a directory, IO_ERROR when a
 * component cannot be examined. Check-then-open: see the file comment for the threat model.
 */
export async function assertNoSymlinkInLeadingPath(root: string, components: readonly string[]): Promise<void> {
  let cur = root;
  for (let i = 0; i < components.length - 1; i++) {
    const name = components[i];
    validatePathComponent(name);
    cur = path.join(cur, name);
    let st;
    try {
      st = await fsp.lstat(cur);
    } catch (e) {
      throw new LarchError('IO_ERROR', `lstat ${cur}: ${(e as Error).message}`, { path: cur }, { cause: e });
    }
    if (st.isSymbolicLink()) {
      throw new LarchError('EXISTS', `Refusing to follow symlink ${sanitize(cur)} beneath ${sanitize(root)}`, { path: cur, root });
    }
    if (!st.isDirectory()) {
      throw new LarchError('EXISTS', `Not a directory: ${sanitize(cur)}`, { path: cur, root });
    }
  }
}

/**
 * Open `root/<rel>` without following any symlink on the way: every leading component must be a
 * real directory (`lstat`), and the final component is opened with `O_NOFOLLOW`. With `create`
 * the file is created exclusively (`O_CREAT|O_EXCL`), so an existing file or a dangling symlink
 * at the target fails with EEXIST instead of being written through.
 * Returns a `FileHandle`; the caller closes it. Check-then-open (see the file comment).
 */
export async function openBeneath(
  root: string,
  rel: string,
  opts: { create?: boolean; write?: boolean; mode?: number } = {},
): Promise<fsp.FileHandle> {
  const parts = splitSafePath(rel);
  if (parts.length === 0) throw new LarchError('INVALID_NAME', 'Invalid empty filename', { name: rel });
  await assertNoSymlinkInLeadingPath(root, parts);
  let flags = C.O_NOFOLLOW;
  if (opts.create) flags |= C.O_CREAT | C.O_EXCL | C.O_WRONLY;
  else flags |= opts.write ? C.O_WRONLY : C.O_RDONLY;
  return fsp.open(path.join(root, ...parts), flags, opts.mode ?? 0o600);
}

/** Flags for creating a new regular file exclusively, never through a symlink. */
export const CREATE_EXCL_NOFOLLOW = C.O_CREAT | C.O_EXCL | C.O_WRONLY | C.O_NOFOLLOW;
