/**
 * The on-disk layout of a repository (spec repo-format.md; static-deltas.md section 1): where
 * objects, refs, static deltas and delta indexes live, relative to the repository root. The same
 * relative paths are the URLs of an archive repository served over HTTP and the keys of one
 * published to a bucket, so the store, the puller, the publisher and the server all build their
 * paths here and nowhere else.
 *
 * Static deltas are named by hex (`TO`, or `FROM-TO`) but stored under a directory derived from
 * OSTree's "modified base64" of the checksums (`ostree_checksum_b64_from_bytes`): the base64 of
 * the 32 raw bytes, without the `=` padding, with `/` written as `_`; the first two characters
 * are the fan-out directory, taken from FROM when there is one. Every path built here comes from
 * validated 64-hex checksums, so none can leave the repository.
 */
import { validateChecksum, validateCollectionId, validateRefName, validateRemoteName } from './validate.js';
import type { Checksum, ObjectType, RepoMode } from './types.js';

/** Directory of the loose objects: `objects/XX/REST.SUFFIX`. */
export const OBJECTS_DIR = 'objects';
/** Directory of the static deltas: `deltas/XX/REST/{superblock,0,1,…}`. */
export const DELTAS_DIR = 'deltas';
/** Directory of the static delta indexes: `delta-indexes/XX/REST.index`. */
export const DELTA_INDEXES_DIR = 'delta-indexes';
/** Every ref lives below this directory. */
export const REFS_DIR = 'refs';
/** Local branches. */
export const REFS_HEADS_DIR = 'refs/heads';
/** Branches of remotes: `refs/remotes/REMOTE/NAME`. */
export const REFS_REMOTES_DIR = 'refs/remotes';
/** Collection-bound refs: `refs/mirrors/COLLECTION/NAME`. */
export const REFS_MIRRORS_DIR = 'refs/mirrors';

/** The kinds of ref, by the directory below `refs/` that holds them. */
export type RefDirKind = 'heads' | 'remotes' | 'mirrors';

/** The directory of one kind of ref: `refs/heads`, `refs/remotes` or `refs/mirrors`. */
export function refsKindDir(kind: RefDirKind): string {
  if (kind === 'heads') return REFS_HEADS_DIR;
  if (kind === 'remotes') return REFS_REMOTES_DIR;
  if (kind === 'mirrors') return REFS_MIRRORS_DIR;
  throw new RangeError(`Unknown ref kind ${String(kind)}`);
}

/**
 * A ref's file relative to the repository root: `refs/heads/NAME` (no scope),
 * `refs/remotes/REMOTE/NAME` or `refs/mirrors/COLLECTION/NAME` (the scope is the remote's name or
 * the collection id). Every part is validated as a refspec's is, so the path never leaves its
 * directory (INVALID_REF otherwise); a scope given for heads, or missing for the others, is a
 * RangeError.
 */
export function refRelPath(kind: RefDirKind, scope: string | null, name: string): string {
  const dir = refsKindDir(kind);
  if ((kind === 'heads') !== (scope === null)) throw new RangeError(kind === 'heads' ? 'A local ref has no remote or collection' : `A ref of refs/${kind} needs its ${kind === 'remotes' ? 'remote' : 'collection id'}`);
  if (kind === 'remotes') validateRemoteName(scope!);
  else if (kind === 'mirrors') validateCollectionId(scope!);
  validateRefName(name);
  return scope === null ? `${dir}/${name}` : `${dir}/${scope}/${name}`;
}

/**
 * The characters of OSTree's modified base64 (the standard alphabet with `_` for `/`), as a
 * regular-expression character class body, for validators that accept delta paths.
 */
export const MODIFIED_BASE64_CLASS = 'A-Za-z0-9+_';

/** Length of the modified base64 of a 32-byte checksum (43 characters, no padding). */
export const MODIFIED_BASE64_LENGTH = 43;

const MODIFIED_BASE64_CHECKSUM = new RegExp(`^[${MODIFIED_BASE64_CLASS}]{${MODIFIED_BASE64_LENGTH}}$`);

/** File name suffix of an object: its type, except content objects of an archive repository (`filez`). */
export type ObjectSuffix = ObjectType | 'filez';

/** The suffix under which a repository of `mode` stores an object of `type`. */
export function objectSuffix(type: ObjectType, mode: RepoMode): ObjectSuffix {
  return type === 'file' && mode === 'archive' ? 'filez' : type;
}

/** `objects/XX/REST.SUFFIX` for an object (suffix from {@link objectSuffix}). Throws INVALID_ARGUMENT for a bad checksum. */
export function objectRelPath(checksum: Checksum, suffix: ObjectSuffix): string {
  validateChecksum(checksum);
  return `${OBJECTS_DIR}/${checksum.slice(0, 2)}/${checksum.slice(2)}.${suffix}`;
}

/** OSTree's modified base64 of a checksum: base64 of the 32 raw bytes, no `=`, `/` written as `_`. */
export function modifiedBase64(checksum: Checksum): string {
  validateChecksum(checksum);
  return Buffer.from(checksum, 'hex').toString('base64').replace(/=+$/, '').replace(/\//g, '_');
}

/**
 * Inverse of {@link modifiedBase64}: the hex checksum, or null when `s` is not 43 characters of
 * the modified alphabet (names OSTree never writes, such as padded or `/`-bearing ones, are refused).
 */
export function checksumFromModifiedBase64(s: string): Checksum | null {
  if (!MODIFIED_BASE64_CHECKSUM.test(s)) return null;
  const buf = Buffer.from(`${s.replace(/_/g, '/')}=`, 'base64');
  return buf.length === 32 ? buf.toString('hex') : null;
}

/** A static delta's name: `TO` for a delta from scratch, `FROM-TO` otherwise (hex). */
export function deltaName(from: Checksum | null, to: Checksum): string {
  return from === null ? to : `${from}-${to}`;
}

/** The delta's directory relative to the repository root, e.g. `deltas/qq/5rMZ…` or `deltas/Ab/CD…-EF…`. */
export function deltaRelDir(from: Checksum | null, to: Checksum): string {
  const t = modifiedBase64(to);
  if (from === null) return `${DELTAS_DIR}/${t.slice(0, 2)}/${t.slice(2)}`;
  const f = modifiedBase64(from);
  return `${DELTAS_DIR}/${f.slice(0, 2)}/${f.slice(2)}-${t}`;
}

/**
 * A file of a delta, relative to the repository root: `superblock`, a part by index, or the
 * `commitmeta` key inline parts and detached metadata use inside the superblock.
 */
export function deltaRelPath(from: Checksum | null, to: Checksum, file: 'superblock' | 'commitmeta' | number): string {
  if (typeof file === 'number' && !(Number.isSafeInteger(file) && file >= 0)) throw new RangeError(`Invalid delta part index ${file}`);
  return `${deltaRelDir(from, to)}/${file}`;
}

/**
 * Decode the fan-out directory `prefix` and the entry `rest` below it under `deltas/` into
 * (from, to); null when they do not name a delta (split at the first `-`, each side must be the
 * modified base64 of a checksum).
 */
export function parseDeltaDirName(prefix: string, rest: string): { from: Checksum | null; to: Checksum } | null {
  const full = prefix + rest;
  const dash = full.indexOf('-');
  if (dash < 0) {
    const to = checksumFromModifiedBase64(full);
    return to === null ? null : { from: null, to };
  }
  const from = checksumFromModifiedBase64(full.slice(0, dash));
  const to = checksumFromModifiedBase64(full.slice(dash + 1));
  return from === null || to === null ? null : { from, to };
}

/** Relative path of the delta index of commit `to`: `delta-indexes/XX/REST.index`. */
export function deltaIndexRelPath(to: Checksum): string {
  const t = modifiedBase64(to);
  return `${DELTA_INDEXES_DIR}/${t.slice(0, 2)}/${t.slice(2)}.index`;
}

/** Decode a delta index file name (`XX` directory, `REST.index` entry) into its TO commit; null when it is not one. */
export function parseDeltaIndexName(prefix: string, file: string): Checksum | null {
  if (!file.endsWith('.index')) return null;
  return checksumFromModifiedBase64(prefix + file.slice(0, -'.index'.length));
}
