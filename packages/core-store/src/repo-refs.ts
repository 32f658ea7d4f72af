/**
 * Refs (repo-format.md 5): `refs/heads/NAME`, `refs/remotes/REMOTE/NAME`,
 * `refs/mirrors/COLLECTION/NAME`; each file holds 64 hex characters and a newline. A head may be
 * a relative symlink to another head (an alias). Refspecs are `NAME`, `REMOTE:NAME` and, for
 * collection refs, `(COLLECTION, NAME)` as `ostree refs --collections` prints them.
 *
 * Writes are atomic: the new content goes to a temporary file in `tmp/`, is fsynced, renamed
 * over the ref, and the ref's directory is fsynced. Callers write refs only after the objects
 * they point to are durable. No lock is taken here (OSTree takes none for ref writes either;
 * commit/pull hold the shared repo lock around their whole transaction).
 */
import { promises as fsp } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { LarchError, hasErrno, ioError } from './errors.js';
import type { Checksum } from './types.js';
import { isChecksum, validateChecksum, validateCollectionId, validateRefName, validateRemoteName } from './validate.js';

/**
 * Whether a directory entry below `refs/heads/`, `refs/remotes/REMOTE/` or
 * `refs/mirrors/COLLECTION/` can be part of a ref name. Others are skipped when listing, as ostree
 * skips them (tools such as rsync leave `.rsync_info`-style files there). The REMOTE and
 * COLLECTION directories themselves are not checked, as in ostree.
 */
function isRefFragment(name: string): boolean {
  try {
    validateRemoteName(name);
    return true;
  } catch {
    return false;
  }
}
import type { Repo } from './repo.js';
import { OBJECTS_DIR, REFS_DIR, REFS_HEADS_DIR, REFS_REMOTES_DIR, refRelPath, refsKindDir } from './layout.js';

export type RefKind = 'heads' | 'remotes' | 'mirrors';

export interface ParsedRefspec {
  kind: RefKind;
  /** Remote name (remotes) or collection id (mirrors). */
  scope: string | null;
  name: string;
}

const COLLECTION_REF_RE = /^\(([^,()]+), ([^()]+)\)$/;

/** Parse and validate a refspec into its location. Throws INVALID_REF. */
export function parseRefspec(refspec: string): ParsedRefspec {
  const m = COLLECTION_REF_RE.exec(refspec);
  if (m) {
    validateCollectionId(m[1]);
    validateRefName(m[2]);
    return { kind: 'mirrors', scope: m[1], name: m[2] };
  }
  const colon = refspec.indexOf(':');
  if (colon >= 0) {
    const remote = refspec.slice(0, colon);
    const name = refspec.slice(colon + 1);
    validateRemoteName(remote);
    validateRefName(name);
    return { kind: 'remotes', scope: remote, name };
  }
  validateRefName(refspec);
  return { kind: 'heads', scope: null, name: refspec };
}

export function formatRefspec(r: ParsedRefspec): string {
  if (r.kind === 'heads') return r.name;
  if (r.kind === 'remotes') return `${r.scope}:${r.name}`;
  return `(${r.scope}, ${r.name})`;
}

export function refPath(repoPath: string, r: ParsedRefspec): string {
  return join(repoPath, refRelPath(r.kind, r.scope, r.name));
}

/** Read one ref file (following alias symlinks that stay inside `refs/`); null when absent. */
async function readRefFile(repoPath: string, path: string, refspec: string): Promise<Checksum | null> {
  const refsRoot = resolve(repoPath, REFS_DIR);
  let p = path;
  for (let hops = 0; ; hops++) {
    let st;
    try {
      st = await fsp.lstat(p);
    } catch (e) {
      if (hasErrno(e, 'ENOENT') || hasErrno(e, 'ENOTDIR')) return null;
      throw ioError(e, 'Reading ref', p);
    }
    if (st.isSymbolicLink()) {
      if (hops >= 8) throw new LarchError('INVALID_REF', `Too many levels of ref aliases for ${refspec}`, { refspec });
      const target = resolve(dirname(p), await fsp.readlink(p));
      if (!target.startsWith(refsRoot + sep)) throw new LarchError('INVALID_REF', `Ref alias ${refspec} points outside refs/`, { refspec });
      p = target;
      continue;
    }
    if (st.isDirectory()) return null;
    if (st.size > 4096) throw new LarchError('INVALID_REF', `Ref ${refspec} is too large`, { refspec });
    const text = (await fsp.readFile(p, 'utf8')).trimEnd();
    if (!isChecksum(text)) throw new LarchError('INVALID_REF', `Invalid checksum in ref ${refspec}: ${text.slice(0, 80)}`, { refspec });
    return text;
  }
}

/** Resolve one refspec to its checksum, or null when the ref does not exist. A plain NAME is looked up in heads, then `refs/remotes/NAME`, then any remote's NAME, then any collection's NAME. */
export async function resolveRef(repo: Repo, refspec: string): Promise<Checksum | null> {
  const r = parseRefspec(refspec);
  const direct = await readRefFile(repo.path, refPath(repo.path, r), refspec);
  if (direct !== null || r.kind !== 'heads') return direct;
  // OSTree falls back to `REMOTE/NAME` paths and to NAME under remotes and mirrors.
  const asRemotePath = await readRefFile(repo.path, join(repo.path, REFS_REMOTES_DIR, r.name), refspec);
  if (asRemotePath !== null) return asRemotePath;
  for (const kind of ['remotes', 'mirrors'] as const) {
    const scopes = await listDir(join(repo.path, refsKindDir(kind)));
    for (const scope of scopes.sort()) {
      const c = await readRefFile(repo.path, join(repo.path, refsKindDir(kind), scope, r.name), refspec);
      if (c !== null) return c;
    }
  }
  return null;
}

async function listDir(dir: string): Promise<string[]> {
  try {
    return await fsp.readdir(dir);
  } catch (e) {
    if (hasErrno(e, 'ENOENT')) return [];
    throw ioError(e, 'Listing', dir);
  }
}

async function walkRefs(repoPath: string, dir: string, out: Array<[string, string]>): Promise<void> {
  let entries;
  try {
    entries = await fsp.readdir(dir, { withFileTypes: true });
  } catch (e) {
    if (hasErrno(e, 'ENOENT')) return;
    throw ioError(e, 'Listing refs in', dir);
  }
  for (const ent of entries) {
    if (!isRefFragment(ent.name)) continue;
    const p = join(dir, ent.name);
    if (ent.isDirectory()) await walkRefs(repoPath, p, out);
    else out.push([p, ent.name]);
  }
}

/**
 * List refs as refspec → checksum (sorted by refspec). Aliases are listed under their own name.
 * Default: heads and remotes, as `ostree refs` lists them; `kind: 'all'` adds collection refs.
 */
export async function listRefs(repo: Repo, opts: { kind?: RefKind | 'all'; remote?: string; prefix?: string } = {}): Promise<Map<string, Checksum>> {
  const kinds: RefKind[] = opts.kind === undefined ? (opts.remote !== undefined ? ['remotes'] : ['heads', 'remotes']) : opts.kind === 'all' ? ['heads', 'remotes', 'mirrors'] : [opts.kind];
  const result: Array<[string, Checksum]> = [];
  for (const kind of kinds) {
    const base = join(repo.path, refsKindDir(kind));
    const scopes: Array<string | null> = kind === 'heads' ? [null] : opts.remote !== undefined && kind === 'remotes' ? [opts.remote] : await listDir(base);
    for (const scope of scopes) {
      const dir = scope === null ? base : join(base, scope);
      const files: Array<[string, string]> = [];
      await walkRefs(repo.path, dir, files);
      for (const [p] of files) {
        const name = relative(dir, p).split(sep).join('/');
        const spec = formatRefspec({ kind, scope, name });
        if (opts.prefix !== undefined && !name.startsWith(opts.prefix)) continue;
        const c = await readRefFile(repo.path, p, spec);
        if (c !== null) result.push([spec, c]);
      }
    }
  }
  result.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return new Map(result);
}

/**
 * Point a ref at `checksum` (atomic: tmp + fsync + rename + fsync dir), or delete it with null
 * (an alias is removed as a link; its target stays). Does not check that the commit exists.
 */
export async function setRef(repo: Repo, refspec: string, checksum: Checksum | null): Promise<void> {
  const r = parseRefspec(refspec);
  const p = refPath(repo.path, r);
  const dir = dirname(p);
  if (checksum === null) {
    try {
      await fsp.unlink(p);
    } catch (e) {
      if (hasErrno(e, 'ENOENT')) return;
      throw ioError(e, 'Deleting ref', p);
    }
    await repo.fsyncDir(dir);
    return;
  }
  validateChecksum(checksum);
  try {
    await fsp.mkdir(dir, { recursive: true });
  } catch (e) {
    if (hasErrno(e, 'ENOTDIR') || hasErrno(e, 'EEXIST')) {
      throw new LarchError('INVALID_REF', `Cannot create ref ${refspec}: a ref is a prefix of it`, { refspec }, { cause: e });
    }
    throw ioError(e, 'Creating ref directory', dir);
  }
  const tmp = await repo.writeTmpFile(`${checksum}\n`);
  try {
    try {
      await fsp.rename(tmp, p);
    } catch (e) {
      if (!(hasErrno(e, 'EISDIR') || hasErrno(e, 'ENOTEMPTY'))) throw e;
      // A directory holds the name. Left over from deleted refs (no ref below it), it is
      // removed, as ostree removes it; otherwise the new ref would hide the refs below.
      const below: Array<[string, string]> = [];
      await walkRefs(repo.path, p, below);
      if (below.length > 0) {
        throw new LarchError('INVALID_REF', `Cannot create ref ${refspec}: it is a prefix of other refs`, { refspec }, { cause: e });
      }
      await fsp.rm(p, { recursive: true, force: true });
      await fsp.rename(tmp, p);
    }
  } catch (e) {
    await fsp.rm(tmp, { force: true });
    if (e instanceof LarchError) throw e;
    throw ioError(e, 'Writing ref', p);
  }
  await repo.fsyncDir(dir);
}

/** Create `refs/heads/ALIAS` as a relative symlink to head `target`, as `ostree refs --alias --create`. */
export async function setRefAlias(repo: Repo, alias: string, target: string): Promise<void> {
  validateRefName(alias);
  validateRefName(target);
  const p = join(repo.path, REFS_HEADS_DIR, alias);
  await fsp.mkdir(dirname(p), { recursive: true });
  const rel = relative(dirname(p), join(repo.path, REFS_HEADS_DIR, target));
  await fsp.rm(p, { force: true });
  await fsp.symlink(rel, p);
  await repo.fsyncDir(dirname(p));
}

/**
 * Resolve a revision: a full checksum, a unique prefix of a commit checksum, a refspec, each
 * optionally followed by `^` (parent) any number of times. Throws REF_NOT_FOUND
 * ("Refspec 'x' not found"), AMBIGUOUS_REF, or REF_NOT_FOUND "Commit X has no parent".
 */
export async function revParse(repo: Repo, spec: string): Promise<Checksum> {
  let base = spec;
  let ups = 0;
  while (base.endsWith('^')) {
    base = base.slice(0, -1);
    ups++;
  }
  let c = await resolveBase(repo, base, spec);
  for (let i = 0; i < ups; i++) {
    const commit = await repo.readCommit(c);
    if (commit.parent === null) throw new LarchError('REF_NOT_FOUND', `Commit ${c} has no parent`, { refspec: spec, checksum: c });
    c = commit.parent;
  }
  return c;
}

async function resolveBase(repo: Repo, base: string, spec: string): Promise<Checksum> {
  if (isChecksum(base)) return base;
  if (/^[0-9a-f]{1,63}$/.test(base)) {
    const matches = await commitsWithPrefix(repo, base);
    if (matches.length > 1) throw new LarchError('AMBIGUOUS_REF', `Refspec '${base}' is ambiguous: matches ${matches.length} commits`, { refspec: spec, matches });
    if (matches.length === 1) return matches[0];
  }
  let found: Checksum | null = null;
  try {
    found = await resolveRef(repo, base);
  } catch (e) {
    if (!(e instanceof LarchError && e.code === 'INVALID_REF' && e.data.ref !== undefined)) throw e;
  }
  if (found === null) throw new LarchError('REF_NOT_FOUND', `Refspec '${base}' not found`, { refspec: spec });
  return found;
}

async function commitsWithPrefix(repo: Repo, prefix: string): Promise<Checksum[]> {
  const out: Checksum[] = [];
  const dirs = prefix.length >= 2 ? [prefix.slice(0, 2)] : (await listDir(join(repo.path, OBJECTS_DIR))).filter((d) => d.startsWith(prefix));
  for (const d of dirs) {
    for (const f of await listDir(join(repo.path, OBJECTS_DIR, d))) {
      if (!f.endsWith('.commit')) continue;
      const c = d + f.slice(0, -'.commit'.length);
      if (isChecksum(c) && c.startsWith(prefix)) out.push(c);
    }
  }
  return out;
}
