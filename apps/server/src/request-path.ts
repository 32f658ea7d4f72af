/**
 * Request target → repository file.
 *
 * Why an allow-list: a repository directory holds more than clients may see (`tmp/` with
 * staging files and cached remote summaries, `state/`, lock files, `*.trustedkeys.gpg`
 * keyrings, the `config` of other remotes' credentials in future). OSTree's HTTP protocol
 * (spec/pull-and-signing.md §1, §7) only ever asks for a fixed set of shapes, so everything
 * else is refused before the filesystem is touched.
 *
 * Validation is done on the raw request target, segment by segment, *before and after*
 * percent-decoding: a decoded segment may not be empty, `.` or `..`, and may not contain `/`,
 * `\` or NUL. Nothing is normalised — a path that would need normalising is rejected (400), so
 * `/objects/../config` never turns into `/config`. Checks on the filesystem itself (symlinks
 * resolving outside the repo) happen later, in serve-file.ts.
 */
import { DELTAS_DIR, DELTA_INDEXES_DIR, MODIFIED_BASE64_CLASS, OBJECTS_DIR } from '@larch/core-store';

/** What a request path may name, and how it is cached. */
export type RepoFileKind =
  | 'config'
  | 'summary'
  | 'summary-sig'
  | 'object'
  | 'commitmeta'
  | 'ref'
  | 'delta'
  | 'delta-index'
  | 'extension';

/** A mount: requests below `prefix` (segments, no slashes) map into the repository at `root`. */
export interface Mount {
  /** URL prefix split into decoded segments; `[]` for a repository served at `/`. */
  readonly prefix: readonly string[];
  /** Real path of the repository (already passed through realpath). */
  readonly root: string;
}

/** The outcome of mapping a request target. */
export type PathResolution =
  | { readonly ok: true; readonly mount: Mount; readonly segments: readonly string[]; readonly kind: RepoFileKind }
  | { readonly ok: false; readonly status: 400 | 404; readonly reason: string };

/** Longest request target accepted (a ref path is the only long shape; OSTree caps refs far below). */
export const MAX_TARGET_LENGTH = 4096;

const HEX2 = /^[0-9a-f]{2}$/;
const OBJECT_NAME = /^[0-9a-f]{62}\.(commit|commitmeta|dirtree|dirmeta|filez|tombstone-commit)$/;
// OSTree ref components: `[\w\d][-._\w\d]*` (ostree-core.c); collection ids and remote names are narrower.
const REF_COMPONENT = /^[A-Za-z0-9_][A-Za-z0-9._-]*$/;
// Static delta names use OSTree's modified base64 (core-store's layout), `-` joins "from" and "to".
const DELTA_HEAD = new RegExp(`^[${MODIFIED_BASE64_CLASS}]{2}$`);
const DELTA_REST = new RegExp(`^[${MODIFIED_BASE64_CLASS}-]{1,200}$`);
const DELTA_PART = /^(superblock|0|[1-9][0-9]{0,8})$/;
const DELTA_INDEX = new RegExp(`^[${MODIFIED_BASE64_CLASS}]{1,200}\\.index$`);
const EXTENSION_COMPONENT = /^[A-Za-z0-9_][A-Za-z0-9._+-]*$/;

function bad(reason: string): PathResolution {
  return { ok: false, status: 400, reason };
}

function notFound(reason: string): PathResolution {
  return { ok: false, status: 404, reason };
}

/**
 * Split the path part of a request target into decoded segments, or explain why it is unsafe.
 * Query strings are ignored (OSTree never sends one); fragments are never sent by clients.
 */
export function splitTarget(target: string): string[] | { reason: string } {
  if (target.length > MAX_TARGET_LENGTH) return { reason: 'request target too long' };
  if (!target.startsWith('/')) return { reason: 'request target is not an absolute path' };
  const q = target.indexOf('?');
  const path = q < 0 ? target : target.slice(0, q);
  if (path.includes('\\')) return { reason: 'backslash in path' };
  if (path.includes('\0')) return { reason: 'NUL in path' };
  if (path === '/') return [];
  const raw = path.slice(1).split('/');
  const out: string[] = [];
  for (let i = 0; i < raw.length; i++) {
    const seg = raw[i];
    if (seg === '') {
      // A trailing slash names a directory, which is never served (404, not unsafe).
      if (i === raw.length - 1) {
        out.push('');
        break;
      }
      return { reason: 'empty path segment' };
    }
    let dec: string;
    try {
      dec = seg.includes('%') ? decodeURIComponent(seg) : seg;
    } catch {
      return { reason: 'malformed percent-encoding' };
    }
    if (dec === '.' || dec === '..') return { reason: 'dot segment in path' };
    if (dec.includes('/') || dec.includes('\\') || dec.includes('\0')) return { reason: 'encoded separator or NUL in path' };
    // Control characters never appear in repository paths.
    // eslint-disable-next-line no-control-regex
    if (/[\x00-\x1f\x7f]/.test(dec)) return { reason: 'control character in path' };
    out.push(dec);
  }
  return out;
}

/** Classify a path relative to a repository root, or refuse it. Pure; no I/O. */
export function classifyRepoPath(seg: readonly string[]): RepoFileKind | null {
  const n = seg.length;
  if (n === 0 || seg[n - 1] === '') return null;
  for (const s of seg) if (s.endsWith('.lock')) return null;
  switch (seg[0]) {
    case 'config':
      return n === 1 ? 'config' : null;
    case 'summary':
      return n === 1 ? 'summary' : null;
    case 'summary.sig':
      return n === 1 ? 'summary-sig' : null;
    case OBJECTS_DIR:
      if (n !== 3 || !HEX2.test(seg[1]) || !OBJECT_NAME.test(seg[2])) return null;
      return seg[2].endsWith('.commitmeta') ? 'commitmeta' : 'object';
    case 'refs':
      if (n < 3 || (seg[1] !== 'heads' && seg[1] !== 'remotes' && seg[1] !== 'mirrors')) return null;
      for (let i = 2; i < n; i++) if (!REF_COMPONENT.test(seg[i])) return null;
      return 'ref';
    case DELTAS_DIR:
      if (n !== 4 || !DELTA_HEAD.test(seg[1]) || !DELTA_REST.test(seg[2]) || !DELTA_PART.test(seg[3])) return null;
      return 'delta';
    case DELTA_INDEXES_DIR:
      if (n !== 3 || !DELTA_HEAD.test(seg[1]) || !DELTA_INDEX.test(seg[2])) return null;
      return 'delta-index';
    case 'extensions':
      if (n < 2) return null;
      for (let i = 1; i < n; i++) if (!EXTENSION_COMPONENT.test(seg[i])) return null;
      return 'extension';
    default:
      return null;
  }
}

/**
 * Map a raw request target to a mount and a repository path. Mounts are tried longest prefix
 * first. Unsafe targets → 400; safe targets that name nothing a repository publishes → 404.
 */
export function resolveTarget(target: string, mounts: readonly Mount[]): PathResolution {
  const seg = splitTarget(target);
  if (!Array.isArray(seg)) return bad(seg.reason);
  for (const mount of mounts) {
    const p = mount.prefix;
    if (seg.length < p.length) continue;
    let match = true;
    for (let i = 0; i < p.length; i++) {
      if (seg[i] !== p[i]) {
        match = false;
        break;
      }
    }
    if (!match) continue;
    const rest = seg.slice(p.length);
    const kind = classifyRepoPath(rest);
    if (kind === null) return notFound('not a repository file');
    return { ok: true, mount, segments: rest, kind };
  }
  return notFound('no repository at this path');
}

/** Sort mounts so that the longest prefix is tried first. */
export function sortMounts(mounts: Mount[]): Mount[] {
  return mounts.sort((a, b) => b.prefix.length - a.prefix.length);
}

/** Parse a configured URL prefix (`/`, `/os`, `/os/stable/`) into segments. Throws RangeError when unsafe. */
export function parsePrefix(prefix: string): string[] {
  const t = prefix.endsWith('/') && prefix.length > 1 ? prefix.slice(0, -1) : prefix;
  const seg = splitTarget(t);
  if (!Array.isArray(seg) || t.includes('%') || t.includes('?')) {
    throw new RangeError(`Invalid prefix ${JSON.stringify(prefix)}: must be "/" or "/name[/name…]" without dot segments`);
  }
  for (const s of seg) {
    if (!/^[A-Za-z0-9_][A-Za-z0-9._~-]*$/.test(s)) throw new RangeError(`Invalid prefix component ${JSON.stringify(s)} in ${JSON.stringify(prefix)}`);
  }
  return seg;
}
