/**
 * Remotes as OSTree keeps them: one `[remote "NAME"]` group per remote with `url` (or, for a
 * remote whose content is not fetched by OSTree, `custom-backend` and maybe no url at all),
 * optional `contenturl`, `branches` (a `;` list), `gpg-verify` (default true),
 * `gpg-verify-summary`, `sign-verify`, `sign-verify-summary`, `collection-id`, and any other
 * key, which is kept untouched (spec pull-and-signing.md 5; repo-format.md 9).
 *
 * Where a repository's remotes come from, as OSTree's `reload_remote_config` and
 * `_ostree_repo_get_remote_inherited` find them:
 *   1. the `[remote "NAME"]` groups of the repo's `config`;
 *   2. the `*.conf` files of its remotes config dir ("remotes.d"): `/etc/ostree/remotes.d` when
 *      the repo is the system repo `/ostree/repo` (the same inode), `SYSROOT/etc/ostree/remotes.d`
 *      when the caller opened it through a deployed sysroot ({@link RemotesScope}); a name
 *      defined in two places is an error;
 *   3. the parent repo (`core.parent`), recursively: its remotes are listed too, and a key a
 *      remote does not set is looked up in the parent's remote of the same name.
 * A new remote goes to `DIR/NAME.conf` when there is such a dir and `core.add-remotes-config-dir`
 * (default: true for the system repo) says so, else into `config`, as OSTree's
 * `impl_repo_remote_add` decides.
 *
 * Files are written the way GKeyFile writes them (values escaped as `g_key_file_set_string`
 * does, a new group at the end after one blank line, no blank line left at the end of the file),
 * so a config without comments comes out byte for byte as `ostree remote add` leaves it; unlike
 * OSTree, comments and the spelling of untouched lines are kept. Writes are tmp + fsync + rename
 * + fsync of the directory, under the repo's exclusive lock, and the config is re-read from disk
 * inside the lock, so two concurrent `remote add` calls cannot lose each other's update.
 *
 * Deliberate differences: by default `addRemote` refuses what OSTree would only trip over when
 * pulling (a URL that is not http(s):// or file://, credentials in a URL, mirrorlist=/metalink=,
 * a boolean key that is not a boolean); with `checkUrls: false` (what `larch remote add` passes,
 * to take what `ostree remote add` takes) URLs are written as given and `getRemote` refuses them
 * when fetching. A custom-backend remote's URL is never checked, as nothing here fetches from it.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, unlinkSync, writeSync, type Stats } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { dirname, join, resolve } from 'node:path';
import { z } from 'zod';
import { KeyFile, LarchError, type Repo, validateCollectionId, validateRefName, validateRemoteName } from '@larch/core-store';

/** A remote as read from the config (with the keys its parent repo's remote of the same name adds). */
export interface RemoteConfig {
  name: string;
  url: string;
  /** Base URL for `.filez` objects; defaults to `url`. */
  contentUrl: string;
  branches: string[];
  gpgVerify: boolean;
  gpgVerifySummary: boolean;
  /** Sign types whose signatures are required on commits (`sign-verify=true` means `ed25519`). */
  signVerify: string[];
  signVerifySummary: string[];
  collectionId: string | null;
  /** Every key of the group, unescaped, including the ones above. */
  options: Record<string, string>;
}

/**
 * Where remotes live besides the repo's `config`, for a repository the caller opened in a
 * particular way (OSTree decides this from how the repo was opened). Default: the system repo
 * `/ostree/repo` (same inode) reads `/etc/ostree/remotes.d` and is a system repo; any other repo
 * has no remotes config dir. A repo opened through `--sysroot=SYSROOT` is a system repo whose dir
 * is `SYSROOT/etc/ostree/remotes.d` when SYSROOT is a deployed root, and none when it is a
 * physical root (OSTree's `get_remotes_d_dir`).
 */
export interface RemotesScope {
  /** The remotes config dir (`*.conf` files), or null for none. */
  remotesConfigDir?: string | null;
  /** Whether the repo is the system repo (the default of `core.add-remotes-config-dir`). */
  system?: boolean;
}

const SYSTEM_REPO = '/ostree/repo';
const SYSTEM_REMOTES_DIR = '/etc/ostree/remotes.d';
/** Bound on `core.parent` chains (OSTree recurses without one; a cycle would never end). */
const MAX_PARENT_DEPTH = 32;

const GROUP_RE = /^remote "(.+)"$/;
const groupName = (name: string): string => `remote "${name}"`;

const URL_SCHEMES = new Set(['http:', 'https:', 'file:']);

/** A remote URL: http://, https:// or file:// (mirrorlist= and metalink= are not supported). */
export const remoteUrlSchema = z.string().superRefine((s, ctx) => {
  if (s.startsWith('mirrorlist=') || s.startsWith('metalink=')) {
    ctx.addIssue({ code: 'custom', message: `Unsupported remote URL '${s}': mirrorlist= and metalink= are not supported` });
    return;
  }
  let u: URL;
  try {
    u = new URL(s);
  } catch {
    ctx.addIssue({ code: 'custom', message: `Invalid URL '${s}'` });
    return;
  }
  // ostree's words (its fetcher refuses any scheme but http, https and file when it pulls).
  if (!URL_SCHEMES.has(u.protocol)) ctx.addIssue({ code: 'custom', message: `Invalid URI scheme in ${s}` });
  else if (u.protocol !== 'file:' && u.hostname === '') ctx.addIssue({ code: 'custom', message: `Invalid URL '${s}': no host` });
  else if (u.username !== '' || u.password !== '') ctx.addIssue({ code: 'custom', message: `Invalid URL '${s}': credentials in URLs are not supported` });
});

const keyNameSchema = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, { message: 'Invalid key name' });

function checkUrl(url: string, what: string): void {
  const r = remoteUrlSchema.safeParse(url);
  if (!r.success) throw new LarchError('INVALID_ARGUMENT', r.error.issues[0]?.message ?? `Invalid ${what}`, { url });
}

/**
 * A value as `g_key_file_set_string` writes it: `\n`, `\r` and `\` always escaped, spaces and
 * tabs only while leading (`\s`, `\t`), and with `list` the separator `;` as `\;`.
 */
function gkeyfileEscape(value: string, list: boolean): string {
  let out = '';
  let leading = true;
  for (const c of value) {
    if (c === ' ' && leading) out += '\\s';
    else if (c === '\t' && leading) out += '\\t';
    else if (c === '\n') out += '\\n';
    else if (c === '\r') out += '\\r';
    else if (c === '\\') out += '\\\\';
    else if (list && c === ';') out += '\\;';
    else {
      out += c;
      leading = false;
    }
  }
  return out;
}

/** A value of an option given to {@link addRemote}: GKeyFile string, boolean or string list. */
type OptionValue = string | boolean | string[];

function rawValue(v: OptionValue): string {
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (Array.isArray(v)) return v.map((s) => `${gkeyfileEscape(s, true)};`).join('');
  return gkeyfileEscape(v, false);
}

// ---------------------------------------------------------------- where remotes are

/** One `[remote "NAME"]` group and the file it was read from (null: the repo's config). */
interface RemoteEntry {
  name: string;
  kf: KeyFile;
  file: string | null;
}

/** A repo's own remotes (config + remotes config dir) and its parent's. */
interface RemoteSet {
  own: Map<string, RemoteEntry>;
  parent: RemoteSet | null;
}

function statOrNull(p: string): Stats | null {
  try {
    return statSync(p);
  } catch {
    return null;
  }
}

/** OSTree's test for the system repo: the same inode as `/ostree/repo`. */
function isSystemRepo(repoPath: string): boolean {
  const sys = statOrNull(SYSTEM_REPO);
  if (sys === null) return false;
  const own = statOrNull(repoPath);
  return own !== null && own.dev === sys.dev && own.ino === sys.ino;
}

interface ResolvedScope {
  dir: string | null;
  system: boolean;
}

function resolveScope(repoPath: string, scope: RemotesScope | undefined): ResolvedScope {
  if (scope !== undefined && (scope.remotesConfigDir !== undefined || scope.system !== undefined)) {
    return { dir: scope.remotesConfigDir ?? null, system: scope.system ?? false };
  }
  const system = isSystemRepo(repoPath);
  return { dir: system ? SYSTEM_REMOTES_DIR : null, system };
}

function addEntries(into: Map<string, RemoteEntry>, kf: KeyFile, file: string | null): void {
  const found: RemoteEntry[] = [];
  for (const g of kf.groups()) {
    const m = GROUP_RE.exec(g);
    if (!m) continue;
    // As OSTree: every remote of one file is checked before any is taken.
    if (into.has(m[1])) throw new LarchError('BAD_CONFIG', `Multiple specifications found for remote "${m[1]}"`, { remote: m[1], ...(file !== null ? { file } : {}) });
    found.push({ name: m[1], kf, file });
  }
  for (const e of found) into.set(e.name, e);
}

function readKeyFile(path: string): KeyFile {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new LarchError('IO_ERROR', `Reading ${path}: ${(e as Error).message}`, { path }, { cause: e });
  }
  return KeyFile.parse(text, path);
}

/** The `*.conf` files of a remotes config dir, each a regular file (links followed), in name order. */
function confFiles(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new LarchError('IO_ERROR', `Reading ${dir}: ${(e as Error).message}`, { path: dir }, { cause: e });
  }
  return names
    .filter((n) => n.endsWith('.conf'))
    .sort()
    .map((n) => join(dir, n))
    .filter((p) => statOrNull(p)?.isFile() === true);
}

function loadRemoteSet(repoPath: string, config: KeyFile, scope: ResolvedScope, depth: number): RemoteSet {
  const own = new Map<string, RemoteEntry>();
  addEntries(own, config, null);
  if (scope.dir !== null) for (const f of confFiles(scope.dir)) addEntries(own, readKeyFile(f), f);
  let parent: RemoteSet | null = null;
  const parentPath = config.get('core', 'parent');
  if (parentPath !== undefined && parentPath !== '' && depth < MAX_PARENT_DEPTH) {
    // Relative to the working directory, as OSTree opens it (g_file_new_for_path).
    const p = resolve(parentPath);
    const why = (detail: string, cause?: unknown): LarchError =>
      new LarchError('BAD_CONFIG', `While checking parent repository '${parentPath}': ${detail}`, { path: p }, cause !== undefined ? { cause } : undefined);
    if (statOrNull(p)?.isDirectory() !== true) throw why(`opendir(${p}): No such file or directory`);
    let kf: KeyFile;
    try {
      kf = readKeyFile(join(p, 'config'));
    } catch (e) {
      throw why((e as Error).message, e);
    }
    parent = loadRemoteSet(p, kf, resolveScope(p, undefined), depth + 1);
  }
  return { own, parent };
}

function remoteSet(repo: Repo, scope: RemotesScope | undefined): RemoteSet {
  return loadRemoteSet(repo.path, repo.config, resolveScope(repo.path, scope), 0);
}

/** The remote's keys, its own over its parents' (raw, still escaped), in a one-group KeyFile; null when no repo in the chain has it. */
function mergedGroup(set: RemoteSet, name: string): KeyFile | null {
  const chain: RemoteEntry[] = [];
  for (let s: RemoteSet | null = set; s !== null; s = s.parent) {
    const e = s.own.get(name);
    if (e) chain.push(e);
  }
  if (chain.length === 0) return null;
  const g = groupName(name);
  const merged = new KeyFile();
  for (const e of chain.reverse()) for (const k of e.kf.keys(g)) merged.setRaw(g, k, e.kf.getRaw(g, k) ?? '');
  return merged;
}

function notFound(name: string): LarchError {
  return new LarchError('REF_NOT_FOUND', `Remote "${name}" not found`, { remote: name });
}

// ---------------------------------------------------------------- reading

/** `sign-verify` is a boolean or a list of sign types. */
function signTypes(kf: KeyFile, group: string, key: string): string[] {
  const raw = kf.get(group, key);
  if (raw === undefined) return [];
  const v = raw.trim();
  if (v === 'true' || v === '1') return ['ed25519'];
  if (v === 'false' || v === '0' || v === '') return [];
  return (kf.getStringList(group, key) ?? []).map((s) => s.trim()).filter((s) => s.length > 0);
}

/**
 * Parse and check one remote's group (URLs are checked when `checkUrls` and the remote has no
 * custom backend; the collection ID only when `checkCollectionId`).
 */
function parseRemote(kf: KeyFile, name: string, checkCollectionId = true, checkUrls = true): RemoteConfig {
  const g = groupName(name);
  const skipUrls = !checkUrls || kf.get(g, 'custom-backend') !== undefined;
  const url = kf.get(g, 'url');
  if (url === undefined && !skipUrls) throw new LarchError('BAD_CONFIG', `No "url" option in remote "${name}"`, { remote: name });
  if (url !== undefined && !skipUrls) checkUrl(url, 'url');
  const contentUrl = kf.get(g, 'contenturl') ?? url ?? '';
  if (kf.get(g, 'contenturl') !== undefined && !skipUrls) checkUrl(contentUrl, 'contenturl');
  const options: Record<string, string> = {};
  for (const k of kf.keys(g)) options[k] = kf.get(g, k) ?? '';
  const collectionId = kf.get(g, 'collection-id')?.trim() || null;
  if (collectionId !== null && checkCollectionId) validateCollectionId(collectionId);
  return {
    name,
    url: url ?? '',
    contentUrl,
    branches: (kf.getStringList(g, 'branches') ?? []).filter((b) => b.length > 0),
    gpgVerify: kf.getBoolean(g, 'gpg-verify', true),
    gpgVerifySummary: kf.getBoolean(g, 'gpg-verify-summary', false),
    signVerify: signTypes(kf, g, 'sign-verify'),
    signVerifySummary: signTypes(kf, g, 'sign-verify-summary'),
    collectionId,
    options,
  };
}

/**
 * A remote's configuration for fetching from it (pull, summary): its own keys over those of the
 * parent repo's remote of the same name, from `config`, the remotes config dir or the parent.
 * Throws REF_NOT_FOUND (`Remote "NAME" not found`); BAD_CONFIG for a remote that cannot be
 * fetched by OSTree's rules, in OSTree's pull wording (`remote unconfigured-state: TEXT`,
 * `Cannot fetch via libostree - remote 'NAME' uses custom backend 'B'`, `No "url" option in
 * remote "NAME"`), for a malformed boolean or a name defined twice; INVALID_ARGUMENT for a URL
 * this package cannot fetch. With `fetchable: false` (a caller that only needs the remote's
 * keys, such as pull-local's `--remote` for keyrings) none of the fetch checks are made and `url`
 * is whatever the remote has (`''` when none). Locking: none (reads `repo.config` as opened,
 * and the files).
 */
export function getRemote(repo: Repo, name: string, scope?: RemotesScope, opts: { fetchable?: boolean } = {}): RemoteConfig {
  validateRemoteName(name);
  const kf = mergedGroup(remoteSet(repo, scope), name);
  if (kf === null) throw notFound(name);
  if (opts.fetchable === false) return parseRemote(kf, name, false, false);
  const g = groupName(name);
  const unconfigured = kf.get(g, 'unconfigured-state');
  if (unconfigured !== undefined) throw new LarchError('BAD_CONFIG', `remote unconfigured-state: ${unconfigured}`, { remote: name, reason: 'unconfigured' });
  const custom = kf.get(g, 'custom-backend');
  if (custom !== undefined) throw new LarchError('BAD_CONFIG', `Cannot fetch via libostree - remote '${name}' uses custom backend '${custom}'`, { remote: name, reason: 'custom-backend' });
  return parseRemote(kf, name);
}

/**
 * The `url` of a remote as `ostree remote show-url` prints it: unchecked, inherited from the
 * parent repo when the remote has none of its own; a `file://` name is its own URL. Throws
 * REF_NOT_FOUND (`Remote "NAME" not found`, whatever the name), BAD_CONFIG (`No "url" option in
 * remote "NAME"`). Locking: none.
 */
export function remoteUrl(repo: Repo, name: string, scope?: RemotesScope): string {
  if (name.startsWith('file://')) return name;
  const kf = mergedGroup(remoteSet(repo, scope), name);
  if (kf === null) throw notFound(name);
  const url = kf.get(groupName(name), 'url');
  if (url === undefined) throw new LarchError('BAD_CONFIG', `No "url" option in remote "${name}"`, { remote: name });
  return url;
}

/**
 * Names and URLs (`''` when a remote has none) of the remotes of the repo and of its parent
 * repos, sorted by name in byte order (as `ostree remote list`). Locking: none.
 */
export function listRemotes(repo: Repo, scope?: RemotesScope): Array<{ name: string; url: string }> {
  const set = remoteSet(repo, scope);
  const names = new Set<string>();
  for (let s: RemoteSet | null = set; s !== null; s = s.parent) for (const n of s.own.keys()) names.add(n);
  return [...names]
    .sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)))
    .map((name) => ({ name, url: mergedGroup(set, name)?.get(groupName(name), 'url') ?? '' }));
}

// ---------------------------------------------------------------- writing

/** Options of {@link addRemote}, mirroring `ostree remote add`. */
export interface AddRemoteOptions {
  name: string;
  /** The `url` key; null for none (only with `customBackend`). */
  url: string | null;
  /** Default refs for `pull NAME` without refs (`branches`). */
  branches?: string[];
  /** `--contenturl`: base URL of the content objects. */
  contentUrl?: string;
  /** `--custom-backend`: the remote's content is not fetched by OSTree (its URL is not checked). */
  customBackend?: string;
  /** `--set=KEY=VALUE` pairs, applied in order (a key given twice keeps its first place, last value). */
  set?: Array<[string, string]>;
  /** `--no-gpg-verify` (and `--no-sign-verify`) write `gpg-verify=false`. */
  gpgVerify?: boolean;
  /**
   * `--no-sign-verify` (false: `sign-verify=false`), or `--sign-verify` specs: each writes
   * `verification-TYPE-key` (inline) or `verification-TYPE-file`, then `sign-verify=TYPE[,TYPE…]`.
   */
  signVerify?: false | Array<{ type: string; ref: 'inline' | 'file'; value: string }>;
  /** `--collection-id`. */
  collectionId?: string;
  /** `--if-not-exists`: do nothing when the repo itself has the remote. */
  ifNotExists?: boolean;
  /** `--force`: replace the remote's whole group (or file) when the repo has it, else add it. */
  force?: boolean;
  /** Where the repo's remotes live (default: see {@link RemotesScope}). */
  scope?: RemotesScope;
  /**
   * Refuse URLs this package cannot fetch (default true). False takes any URL as `ostree remote
   * add` does, and, as it, writes `metalink=URL` as the `metalink` key.
   */
  checkUrls?: boolean;
}

const addRemoteSchema = z.object({
  name: z.string(),
  url: z.union([remoteUrlSchema, z.null()]),
  branches: z.array(z.string()).optional(),
  contentUrl: z.string().optional(),
  customBackend: z.string().optional(),
  set: z.array(z.tuple([keyNameSchema, z.string()])).optional(),
  gpgVerify: z.boolean().optional(),
  collectionId: z.string().optional(),
  ifNotExists: z.boolean().optional(),
  force: z.boolean().optional(),
  checkUrls: z.boolean().optional(),
});

/** The keys `ostree remote add` writes for these options, in its order (`ot_remote_builtin_add`). */
function addedKeys(opts: AddRemoteOptions): Array<[string, OptionValue]> {
  const keys: Array<[string, OptionValue]> = [];
  if (opts.url !== null && opts.checkUrls === false && opts.url.startsWith('metalink=')) keys.push(['metalink', opts.url.slice('metalink='.length)]);
  else if (opts.url !== null) keys.push(['url', opts.url]);
  if (opts.branches && opts.branches.length > 0) keys.push(['branches', opts.branches]);
  if (opts.contentUrl !== undefined) keys.push(['contenturl', opts.contentUrl]);
  if (opts.customBackend !== undefined) keys.push(['custom-backend', opts.customBackend]);
  for (const kv of opts.set ?? []) keys.push(kv);
  if (opts.gpgVerify === false || opts.signVerify === false) keys.push(['gpg-verify', false]);
  if (opts.signVerify === false) keys.push(['sign-verify', false]);
  else if (opts.signVerify && opts.signVerify.length > 0) {
    for (const s of opts.signVerify) keys.push([`verification-${s.type}-${s.ref === 'inline' ? 'key' : 'file'}`, s.value]);
    keys.push(['sign-verify', opts.signVerify.map((s) => s.type).join(',')]);
  }
  if (opts.collectionId !== undefined) keys.push(['collection-id', opts.collectionId]);
  return keys;
}

/** A one-group KeyFile holding the remote's keys; a key set twice keeps its first place. */
function groupOf(name: string, keys: Array<[string, OptionValue]>): KeyFile {
  const kf = new KeyFile();
  const g = groupName(name);
  for (const [k, v] of keys) kf.setRaw(g, k, rawValue(v));
  return kf;
}

/** Write `text` to `path` atomically: tmp in the same directory, fsync, rename, fsync the directory. */
function writeFileAtomic(path: string, text: string, fsync: boolean): void {
  const tmp = join(dirname(path), `.${randomBytes(6).toString('hex')}.tmp`);
  try {
    const fd = openSync(tmp, 'wx', 0o644);
    try {
      const buf = Buffer.from(text, 'utf8');
      for (let off = 0; off < buf.length; ) off += writeSync(fd, buf, off);
      if (fsync) fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
    if (fsync) syncDir(dirname(path));
  } catch (e) {
    rmSync(tmp, { force: true });
    throw new LarchError('IO_ERROR', `Writing ${path}: ${(e as Error).message}`, { path }, { cause: e });
  }
}

function syncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Config text as GKeyFile leaves it after a group is removed: no blank lines at the end. */
function configText(kf: KeyFile): string {
  return kf.toString().replace(/\n(?:[ \t]*\n)+$/, '\n');
}

/**
 * Run `change` on the repo's remotes as they are on disk now (config re-read inside the
 * exclusive lock, so comments and unknown keys survive byte for byte), write the config when
 * `change` says so, and mirror it into `repo.config` so the caller's instance sees it too.
 */
async function editRemotes<T>(repo: Repo, scope: RemotesScope | undefined, change: (ctx: { config: KeyFile; own: Map<string, RemoteEntry>; scope: ResolvedScope }) => { result: T; configChanged: boolean }): Promise<T> {
  return repo.withLock('exclusive', async () => {
    const configPath = join(repo.path, 'config');
    const config = readKeyFile(configPath);
    const resolved = resolveScope(repo.path, scope);
    const own = new Map<string, RemoteEntry>();
    addEntries(own, config, null);
    if (resolved.dir !== null) for (const f of confFiles(resolved.dir)) addEntries(own, readKeyFile(f), f);
    const { result, configChanged } = change({ config, own, scope: resolved });
    if (configChanged) {
      const text = configText(config);
      writeFileAtomic(configPath, text, repo.fsyncEnabled);
      const synced = KeyFile.parse(text, configPath);
      for (const g of repo.config.groups()) repo.config.removeGroup(g);
      for (const g of synced.groups()) for (const k of synced.keys(g)) repo.config.setRaw(g, k, synced.getRaw(g, k) ?? '');
    }
    return result;
  });
}

function copyGroup(from: KeyFile, to: KeyFile, group: string): void {
  for (const k of from.keys(group)) to.setRaw(group, k, from.getRaw(group, k) ?? '');
}

/**
 * Add a remote, as `ostree remote add` (OSTree's `impl_repo_remote_add`, and with `force`
 * `impl_repo_remote_replace`): `url`, then the options in {@link AddRemoteOptions}' order, into
 * the remotes config dir (`DIR/NAME.conf`) or `config` (see the top of this file). With `force`,
 * an existing remote's group is replaced where it is (in `config` it moves to the end). Only the
 * repo's own remotes count; a parent's remote of the same name is shadowed, not changed.
 *
 * Throws EXISTS (`Remote configuration for "NAME" already exists: FILE|(in config)`) unless
 * `ifNotExists` or `force`; INVALID_REF for a bad name or branch; INVALID_ARGUMENT for a bad URL
 * or key, or `ifNotExists` with `force`; BAD_CONFIG for a bad boolean. Returns
 * false when the remote existed and `ifNotExists` left it alone.
 *
 * Locking: exclusive repo lock while re-reading and rewriting. Crash: the old or the new file,
 * never a torn one.
 */
export async function addRemote(repo: Repo, opts: AddRemoteOptions): Promise<boolean> {
  validateRemoteName(opts.name);
  const unchecked = opts.customBackend !== undefined || opts.checkUrls === false;
  const parsed = addRemoteSchema.safeParse({ ...opts, url: unchecked ? null : opts.url });
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new LarchError('INVALID_ARGUMENT', `${issue?.message ?? 'Invalid remote options'}${issue?.path.length ? ` (${issue.path.join('.')})` : ''}`, { remote: opts.name });
  }
  if (opts.url === null && opts.customBackend === undefined) throw new LarchError('INVALID_ARGUMENT', 'A remote needs a URL unless it has a custom backend', { remote: opts.name });
  if (opts.ifNotExists && opts.force) throw new LarchError('INVALID_ARGUMENT', 'Can only specify one of --if-not-exists and --force', { remote: opts.name });
  for (const b of opts.branches ?? []) validateRefName(b);
  const keys = addedKeys(opts);
  const group = groupOf(opts.name, keys);
  const g = groupName(opts.name);
  // Validate what is about to be written (bad URLs and booleans...) before it reaches disk. As
  // ostree, a collection ID is taken as given (`ostree remote add --collection-id example-id`);
  // a pull refuses an invalid one.
  parseRemote(group, opts.name, false, opts.checkUrls !== false);
  return editRemotes(repo, opts.scope, ({ config, own, scope }) => {
    const existing = own.get(opts.name);
    if (existing && opts.ifNotExists) return { result: false, configChanged: false };
    if (existing && !opts.force) {
      throw new LarchError('EXISTS', `Remote configuration for "${opts.name}" already exists: ${existing.file ?? '(in config)'}`, { remote: opts.name });
    }
    let file: string | null;
    if (existing) file = existing.file;
    else {
      const toDir = scope.dir !== null && config.getBoolean('core', 'add-remotes-config-dir', scope.system);
      file = toDir ? join(scope.dir!, `${opts.name}.conf`) : null;
    }
    if (file !== null) {
      mkdirSync(dirname(file), { recursive: true, mode: 0o755 });
      writeFileAtomic(file, group.toString(), repo.fsyncEnabled);
      return { result: true, configChanged: false };
    }
    config.removeGroup(g);
    copyGroup(group, config, g);
    return { result: true, configChanged: true };
  });
}

/**
 * Remove a remote of the repo itself (not one it inherits from its parent), as `ostree remote
 * delete`: its group from `config`, or its whole file from the remotes config dir. Its
 * `refs/remotes/NAME` refs stay, as in OSTree; the caller removes its keyring. Throws
 * REF_NOT_FOUND (`Remote "NAME" not found`) unless `ifExists`, INVALID_REF for a bad name.
 * Locking: exclusive.
 */
export async function deleteRemote(repo: Repo, name: string, opts: { ifExists?: boolean; scope?: RemotesScope } = {}): Promise<boolean> {
  validateRemoteName(name);
  return editRemotes(repo, opts.scope, ({ config, own }) => {
    const existing = own.get(name);
    if (!existing) {
      if (opts.ifExists) return { result: false, configChanged: false };
      throw notFound(name);
    }
    if (existing.file !== null) {
      try {
        unlinkSync(existing.file);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new LarchError('IO_ERROR', `Removing ${existing.file}: ${(e as Error).message}`, { path: existing.file }, { cause: e });
      }
      if (repo.fsyncEnabled) syncDir(dirname(existing.file));
      return { result: true, configChanged: false };
    }
    config.removeGroup(groupName(name));
    return { result: true, configChanged: true };
  });
}
