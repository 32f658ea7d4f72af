/**
 * Remotes in the repository config, as OSTree keeps them: one `[remote "NAME"]` group per remote
 * with `url`, optional `contenturl`, `branches` (a `;` list), `gpg-verify` (default true),
 * `gpg-verify-summary`, `sign-verify`, `sign-verify-summary`, `collection-id`, and any other key,
 * which is kept untouched (spec pull-and-signing.md 5; repo-format.md 9).
 *
 * Writes go through `Repo.saveConfig` (tmp + fsync + rename), under the repo's exclusive lock so
 * two concurrent `remote add` calls cannot lose each other's update; the config is re-read from
 * disk inside the lock, so comments and unknown keys are preserved.
 */
import { z } from 'zod';
import { KeyFile, LarchError, Repo, validateCollectionId, validateRefName, validateRemoteName } from '@larch/core-store';

/** A remote as read from the config. */
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
  if (!URL_SCHEMES.has(u.protocol)) ctx.addIssue({ code: 'custom', message: `Unsupported URL scheme in '${s}' (use http://, https:// or file://)` });
  else if (u.protocol !== 'file:' && u.hostname === '') ctx.addIssue({ code: 'custom', message: `Invalid URL '${s}': no host` });
  else if (u.username !== '' || u.password !== '') ctx.addIssue({ code: 'custom', message: `Invalid URL '${s}': credentials in URLs are not supported` });
});

const keyNameSchema = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, { message: 'Invalid key name' });

function checkUrl(url: string, what: string): void {
  const r = remoteUrlSchema.safeParse(url);
  if (!r.success) throw new LarchError('INVALID_ARGUMENT', r.error.issues[0]?.message ?? `Invalid ${what}`, { url });
}

function boolValue(kf: KeyFile, group: string, key: string, def: boolean): boolean {
  return kf.getBoolean(group, key, def);
}

/** `sign-verify` is a boolean or a list of sign types. */
function signTypes(kf: KeyFile, group: string, key: string): string[] {
  const raw = kf.get(group, key);
  if (raw === undefined) return [];
  const v = raw.trim();
  if (v === 'true' || v === '1') return ['ed25519'];
  if (v === 'false' || v === '0' || v === '') return [];
  return (kf.getStringList(group, key) ?? []).map((s) => s.trim()).filter((s) => s.length > 0);
}

/** Read a remote's configuration. Throws REF_NOT_FOUND (`Remote "NAME" not found`) or BAD_CONFIG. */
export function getRemote(repo: Repo, name: string): RemoteConfig {
  validateRemoteName(name);
  const kf = repo.config;
  const g = groupName(name);
  if (!kf.hasGroup(g)) throw new LarchError('REF_NOT_FOUND', `Remote "${name}" not found`, { remote: name });
  const url = kf.get(g, 'url');
  if (url === undefined) throw new LarchError('BAD_CONFIG', `No "url" option in remote "${name}"`, { remote: name });
  checkUrl(url, 'url');
  const contentUrl = kf.get(g, 'contenturl') ?? url;
  checkUrl(contentUrl, 'contenturl');
  const options: Record<string, string> = {};
  for (const k of kf.keys(g)) options[k] = kf.get(g, k) ?? '';
  const collectionId = kf.get(g, 'collection-id')?.trim() || null;
  if (collectionId !== null) validateCollectionId(collectionId);
  return {
    name,
    url,
    contentUrl,
    branches: (kf.getStringList(g, 'branches') ?? []).filter((b) => b.length > 0),
    gpgVerify: boolValue(kf, g, 'gpg-verify', true),
    gpgVerifySummary: boolValue(kf, g, 'gpg-verify-summary', false),
    signVerify: signTypes(kf, g, 'sign-verify'),
    signVerifySummary: signTypes(kf, g, 'sign-verify-summary'),
    collectionId,
    options,
  };
}

/** Options of {@link addRemote}, mirroring `ostree remote add`. */
export interface AddRemoteOptions {
  name: string;
  url: string;
  /** Default refs for `pull NAME` without refs. */
  branches?: string[];
  /** `--set=KEY=VALUE` pairs, applied in order. */
  set?: Array<[string, string]>;
  /** `--no-gpg-verify` writes `gpg-verify=false`. */
  gpgVerify?: boolean;
  /** `--if-not-exists`: do nothing when the remote exists. */
  ifNotExists?: boolean;
}

const addRemoteSchema = z.object({
  name: z.string(),
  url: remoteUrlSchema,
  branches: z.array(z.string()).optional(),
  set: z.array(z.tuple([keyNameSchema, z.string()])).optional(),
  gpgVerify: z.boolean().optional(),
  ifNotExists: z.boolean().optional(),
});

/**
 * Apply `change` to the config as it is on disk now (a fresh `Repo.open`, so comments and
 * unknown keys survive byte for byte), save it, and mirror the result into `repo.config` so the
 * caller's instance sees it too.
 */
async function editConfig<T>(repo: Repo, change: (fresh: Repo) => T | Promise<T>): Promise<T> {
  return repo.withLock('exclusive', async () => {
    const fresh = await Repo.open(repo.path);
    const result = await change(fresh);
    await fresh.saveConfig();
    const synced = KeyFile.parse(fresh.config.toString());
    for (const g of repo.config.groups()) repo.config.removeGroup(g);
    for (const g of synced.groups()) for (const k of synced.keys(g)) repo.config.setRaw(g, k, synced.getRaw(g, k) ?? '');
    return result;
  });
}

/**
 * Add `[remote "NAME"]` to the config, as `ostree remote add`: `url=`, `branches=` when given,
 * each `set` pair, then `gpg-verify=false` with `gpgVerify: false`. Throws EXISTS
 * (`Remote configuration for "NAME" already exists`) unless `ifNotExists`, INVALID_REF for a bad name,
 * INVALID_ARGUMENT for a bad URL or key. Returns false when it existed and nothing changed.
 *
 * Locking: exclusive repo lock while re-reading and rewriting `config`. Crash: the old or the new
 * config, never a torn one.
 */
export async function addRemote(repo: Repo, opts: AddRemoteOptions): Promise<boolean> {
  validateRemoteName(opts.name);
  const parsed = addRemoteSchema.safeParse(opts);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new LarchError('INVALID_ARGUMENT', `${issue?.message ?? 'Invalid remote options'}${issue?.path.length ? ` (${issue.path.join('.')})` : ''}`, { remote: opts.name });
  }
  for (const b of opts.branches ?? []) validateRefName(b);
  const g = groupName(opts.name);
  if (opts.ifNotExists && repo.config.hasGroup(g)) return false;
  return editConfig(repo, (fresh) => {
    if (fresh.config.hasGroup(g)) {
      if (opts.ifNotExists) return false;
      throw new LarchError('EXISTS', `Remote configuration for "${opts.name}" already exists: (in config)`, { remote: opts.name });
    }
    // Key order as `ostree remote add` writes it: url, branches, --set keys, gpg-verify.
    fresh.config.set(g, 'url', opts.url);
    if (opts.branches && opts.branches.length > 0) fresh.config.setStringList(g, 'branches', opts.branches);
    for (const [k, v] of opts.set ?? []) {
      if (k === 'url' || k === 'contenturl') checkUrl(v, k);
      fresh.config.set(g, k, v);
    }
    if (opts.gpgVerify === false) fresh.config.set(g, 'gpg-verify', 'false');
    // Validate what is about to be written (bad booleans, bad contenturl...) before it reaches disk.
    getRemote(fresh, opts.name);
    return true;
  });
}

/** Names and URLs of the configured remotes, sorted by name. Locking: none (reads the opened config). */
export function listRemotes(repo: Repo): Array<{ name: string; url: string }> {
  const out: Array<{ name: string; url: string }> = [];
  for (const g of repo.config.groups()) {
    const m = /^remote "(.+)"$/.exec(g);
    if (!m) continue;
    out.push({ name: m[1], url: repo.config.get(g, 'url') ?? '' });
  }
  return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/**
 * Remove a remote's group from the config (its `refs/remotes/NAME` refs stay, as in OSTree).
 * Throws REF_NOT_FOUND (`Remote "NAME" not found`) unless `ifExists`. Locking: exclusive.
 */
export async function deleteRemote(repo: Repo, name: string, opts: { ifExists?: boolean } = {}): Promise<boolean> {
  validateRemoteName(name);
  const g = groupName(name);
  return editConfig(repo, (fresh) => {
    if (!fresh.config.hasGroup(g)) {
      if (opts.ifExists) return false;
      throw new LarchError('REF_NOT_FOUND', `Remote "${name}" not found`, { remote: name });
    }
    fresh.config.removeGroup(g);
    return true;
  });
}

/** The `url` of a remote (`ostree remote show-url`). Throws REF_NOT_FOUND. */
export function remoteUrl(repo: Repo, name: string): string {
  return getRemote(repo, name).url;
}
