/**
 * The `summary` file (spec/repo-format.md section 10): `(a(s(taya{sv}))a{sv})`.
 *
 * Layout details that matter for byte compatibility with `ostree summary -u` 2022.7:
 * - refs are local heads (plus the mirrors of the repo's own collection), sorted by strcmp of
 *   the UTF-8 bytes; remote refs never appear;
 * - the commit size is the byte length of the commit object, in host order (little-endian);
 * - per-ref metadata: `ostree.commit.timestamp` (t, big-endian) and `ostree.commit.version`
 *   when the commit carries `version`;
 * - additional metadata: last-modified (t BE), mode, tombstone-commits, indexed-deltas,
 *   static-deltas (delta name -> sha256 of its superblock), collection id and collection map.
 *   ostree writes these in GHashTable order; readers look keys up by name, and so do we.
 *
 * Writing: the new file is written and fsynced under `tmp/summary-XXXXXX/`, a stale
 * `summary.sig` is deleted (a signature over older bytes would fail verification), and the new
 * file is renamed into place, so readers see the old or the new summary, never a torn one.
 */
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { Variant, bswap64, decode, encode } from '@larch/gvariant';
import { LarchError } from './errors.js';
import { parseCommit } from './objects/index.js';
import { parseRefspec } from './repo-refs.js';
import type { Repo } from './repo.js';
import type { Checksum } from './types.js';
import { DELTAS_DIR, parseDeltaDirName, REFS_MIRRORS_DIR } from './layout.js';

export const SUMMARY_TYPE = '(a(s(taya{sv}))a{sv})';

export interface SummaryRef {
  name: string;
  /** Byte length of the commit object. */
  size: number;
  checksum: Checksum;
  metadata: Array<[string, Variant]>;
}

export interface Summary {
  refs: SummaryRef[];
  metadata: Array<[string, Variant]>;
  /** Refs of other collections (`ostree.summary.collection-map`), by collection id. */
  collectionMap: Map<string, SummaryRef[]>;
}

export interface GenerateSummaryOptions {
  /** Extra metadata (`summary -u --add-metadata`); replaces generated keys of the same name. */
  additionalMetadata?: Array<[string, Variant]>;
  /** Regeneration time for `ostree.summary.last-modified`, epoch seconds (default: now). */
  now?: bigint;
}

/** strcmp order over UTF-8 bytes (not UTF-16 code units). */
function strcmp(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

function modeString(repo: Repo): string {
  return repo.mode === 'archive' ? 'archive-z2' : repo.mode;
}

type RefTuple = [string, [bigint, Uint8Array, Array<[string, Variant]>]];

async function refEntry(repo: Repo, name: string, checksum: Checksum): Promise<RefTuple> {
  const bytes = await repo.readMetadata('commit', checksum);
  const commit = parseCommit(bytes);
  // ostree 2022.7 writes the version (when there is one) before the timestamp.
  const meta: Array<[string, Variant]> = [];
  const version = commit.metadata.find(([k]) => k === 'version')?.[1];
  if (version && version.type === 's') meta.push(['ostree.commit.version', new Variant('s', version.value)]);
  meta.push(['ostree.commit.timestamp', new Variant('t', bswap64(commit.timestamp))]);
  return [name, [BigInt(bytes.length), Buffer.from(checksum, 'hex'), meta]];
}

/** Walk refs/mirrors/COLLECTION/... on disk: collection id -> (ref name -> checksum). */
async function listMirrors(repo: Repo): Promise<Map<string, Map<string, Checksum>>> {
  const out = new Map<string, Map<string, Checksum>>();
  const root = path.join(repo.path, REFS_MIRRORS_DIR);
  let collections: string[];
  try {
    collections = await fsp.readdir(root);
  } catch {
    return out;
  }
  for (const coll of collections) {
    const refs = new Map<string, Checksum>();
    const walk = async (dir: string, prefix: string): Promise<void> => {
      for (const ent of await fsp.readdir(dir, { withFileTypes: true })) {
        const p = path.join(dir, ent.name);
        if (ent.isDirectory()) await walk(p, `${prefix}${ent.name}/`);
        else {
          const text = (await fsp.readFile(p, 'utf8')).trim();
          if (/^[0-9a-f]{64}$/.test(text)) refs.set(`${prefix}${ent.name}`, text);
        }
      }
    };
    await walk(path.join(root, coll), '');
    if (refs.size > 0) out.set(coll, refs);
  }
  return out;
}

/** A static delta directory in a repository. */
export interface DeltaDir {
  from: Checksum | null;
  to: Checksum;
  /** Absolute path of `deltas/XX/REST`. */
  dir: string;
}

/**
 * Every `deltas/XX/REST` directory whose name decodes to a delta ("TO" or "FROM-TO" in modified
 * base64, spec section 11) and that holds a `superblock`, in no particular order. Read-only, no
 * lock; names that do not decode are skipped.
 */
export async function listDeltaDirs(repo: Repo): Promise<DeltaDir[]> {
  const root = path.join(repo.path, DELTAS_DIR);
  const out: DeltaDir[] = [];
  let prefixes: string[];
  try {
    prefixes = await fsp.readdir(root);
  } catch {
    return out;
  }
  for (const pre of prefixes) {
    let rests: string[];
    try {
      rests = await fsp.readdir(path.join(root, pre));
    } catch {
      continue;
    }
    for (const rest of rests) {
      const name = parseDeltaDirName(pre, rest);
      if (name === null) continue;
      const { from, to } = name;
      const dir = path.join(root, pre, rest);
      try {
        await fsp.access(path.join(dir, 'superblock'));
      } catch {
        continue;
      }
      out.push({ from, to, dir });
    }
  }
  return out;
}

/** Static deltas on disk: delta name ("TO" or "FROM-TO", hex) -> sha256 of its superblock. */
async function listDeltas(repo: Repo): Promise<Array<[string, Uint8Array]>> {
  const out: Array<[string, Uint8Array]> = [];
  for (const d of await listDeltaDirs(repo)) {
    let sb: Buffer;
    try {
      sb = await fsp.readFile(path.join(d.dir, 'superblock'));
    } catch {
      continue;
    }
    out.push([d.from ? `${d.from}-${d.to}` : d.to, createHash('sha256').update(sb).digest()]);
  }
  out.sort((a, b) => strcmp(a[0], b[0]));
  return out;
}

/**
 * Regenerate the repository's `summary` and return its bytes.
 *
 * Locking: exclusive (refs cannot move while the summary is assembled).
 * Crash guarantee: the old or the new summary is in place; never a partial file. A stale
 * `summary.sig` is removed before the new summary is renamed in (sign again afterwards).
 */
export async function generateSummary(repo: Repo, opts: GenerateSummaryOptions = {}): Promise<Uint8Array> {
  return repo.withLock('exclusive', async () => {
    const collectionId = repo.config.get('core', 'collection-id');
    const heads = await repo.listRefs({ kind: 'heads' });
    const main = new Map<string, Checksum>();
    for (const [name, c] of heads) main.set(parseRefspec(name).name, c);
    const mirrors = await listMirrors(repo);
    if (collectionId !== undefined) for (const [n, c] of mirrors.get(collectionId) ?? []) if (!main.has(n)) main.set(n, c);

    const entries = async (refs: Map<string, Checksum>): Promise<RefTuple[]> => {
      const names = [...refs.keys()].sort(strcmp);
      return Promise.all(names.map((n) => refEntry(repo, n, refs.get(n)!)));
    };
    const refs = await entries(main);

    const now = opts.now ?? BigInt(Math.floor(Date.now() / 1000));
    const metadata: Array<[string, Variant]> = [
      // The key order `ostree summary -u` 2022.7 produces.
      ['ostree.summary.mode', new Variant('s', modeString(repo))],
      ['ostree.summary.last-modified', new Variant('t', bswap64(now))],
      ['ostree.summary.tombstone-commits', new Variant('b', repo.config.getBoolean('core', 'tombstone-commits', false))],
    ];
    if (!repo.config.getBoolean('core', 'no-deltas-in-summary', false)) {
      const deltas = await listDeltas(repo);
      if (deltas.length > 0) {
        metadata.push(['ostree.static-deltas', new Variant('a{sv}', deltas.map(([n, d]) => [n, new Variant('ay', d)]))]);
      }
    }
    metadata.push(['ostree.summary.indexed-deltas', new Variant('b', true)]);
    if (collectionId !== undefined) {
      metadata.push(['ostree.summary.collection-id', new Variant('s', collectionId)]);
      const others = [...mirrors.keys()].filter((c) => c !== collectionId).sort(strcmp);
      const map: Array<[string, RefTuple[]]> = [];
      for (const coll of others) map.push([coll, await entries(mirrors.get(coll)!)]);
      if (map.length > 0) metadata.push(['ostree.summary.collection-map', new Variant('a{sa(s(taya{sv}))}', map)]);
    }
    for (const [k, v] of opts.additionalMetadata ?? []) {
      const i = metadata.findIndex(([mk]) => mk === k);
      if (i >= 0) metadata[i] = [k, v];
      else metadata.push([k, v]);
    }

    const bytes = encode(SUMMARY_TYPE, [refs, metadata] as never);
    await writeSummaryFile(repo, bytes);
    return bytes;
  });
}

async function writeSummaryFile(repo: Repo, bytes: Uint8Array): Promise<void> {
  const dir = await fsp.mkdtemp(path.join(repo.tmpPath, 'summary-'));
  try {
    const tmp = path.join(dir, 'summary');
    const fh = await fsp.open(tmp, 'wx', 0o644);
    try {
      await fh.writeFile(bytes);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fsp.rm(path.join(repo.path, 'summary.sig'), { force: true });
    await fsp.rename(tmp, path.join(repo.path, 'summary'));
    const d = await fsp.open(repo.path, 'r');
    try {
      await d.sync();
    } finally {
      await d.close();
    }
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
}

function refsOf(list: unknown, what: string): SummaryRef[] {
  return (list as RefTuple[]).map(([name, [size, csum, meta]]) => {
    if (!(csum instanceof Uint8Array) || csum.length !== 32) {
      throw new LarchError('OBJECT_CORRUPTED', `Invalid summary: ${what} ref ${JSON.stringify(name)} has a checksum of ${csum?.length} bytes`, { ref: name });
    }
    if (size > BigInt(Number.MAX_SAFE_INTEGER)) throw new LarchError('OBJECT_CORRUPTED', `Invalid summary: commit size of ${JSON.stringify(name)} too large`, { ref: name });
    return { name, size: Number(size), checksum: Buffer.from(csum).toString('hex'), metadata: meta };
  });
}

/**
 * Parse any ostree summary file. Throws OBJECT_CORRUPTED on malformed framing or checksums.
 * No locking, no I/O.
 */
export function readSummary(bytes: Uint8Array): Summary {
  let v: [unknown, Array<[string, Variant]>];
  try {
    v = decode(SUMMARY_TYPE, bytes) as typeof v;
  } catch (e) {
    throw new LarchError('OBJECT_CORRUPTED', `Invalid summary: ${(e as Error).message}`, {}, { cause: e });
  }
  const collectionMap = new Map<string, SummaryRef[]>();
  const cm = v[1].find(([k]) => k === 'ostree.summary.collection-map')?.[1];
  if (cm && cm.type === 'a{sa(s(taya{sv}))}') {
    for (const [coll, list] of cm.value as Array<[string, unknown]>) collectionMap.set(coll, refsOf(list, coll));
  }
  return { refs: refsOf(v[0], 'main'), metadata: v[1], collectionMap };
}

/** The timestamp of a summary ref (host order), or null when absent. */
export function summaryRefTimestamp(ref: SummaryRef): bigint | null {
  const v = ref.metadata.find(([k]) => k === 'ostree.commit.timestamp')?.[1];
  return v && v.type === 't' ? bswap64(v.value as bigint) : null;
}
