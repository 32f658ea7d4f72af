/**
 * Signatures kept in a repository: a commit's detached metadata (`objects/XX/REST.commitmeta`)
 * and the summary's `summary.sig`. Both are `a{sv}` dictionaries whose signature keys
 * (`ostree.gpgsigs`, `ostree.sign.ed25519`) hold `aay` arrays, one element per signature over
 * the exact bytes of the `.commit` object or the `summary` file (spec/pull-and-signing.md
 * section 6). This module adds, verifies and deletes those signatures, as OSTree's
 * `ostree_sign_commit`, `ostree_repo_append_gpg_signature`, `ostree_repo_add_gpg_signature_summary`
 * and `ostree_sign_summary` do.
 *
 * The cryptography is not here: core-store does not depend on `@larch/signing`. Callers pass
 * objects of the structural shapes below ({@link RepoSigner}, {@link RepoVerifier}), which
 * `@larch/signing`'s `Signer` and `Verifier` satisfy, as `@larch/http-pull` takes a
 * `PullVerifier` (an application composes the packages).
 *
 * Durability: every write replaces the whole file through a temporary file, fsync and rename
 * (`Repo.writeCommitMeta`, `Repo.writeSummarySignature`), so a reader or a crash sees the old
 * dictionary or the new one, never a mixture. Writers take the repository's exclusive lock for
 * the read-modify-write, so two processes signing at once cannot lose each other's signature.
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { Variant, decode, encode } from '@larch/gvariant';
import { LarchError } from './errors.js';
import { sanitize } from './fs-safety.js';
import type { Repo } from './repo.js';
import type { Checksum } from './types.js';

/** Detached metadata (`.commitmeta`, `summary.sig`) in decoded `a{sv}` form. */
export type DetachedDict = Array<[string, Variant]>;

/** GVariant type of each signature array in detached metadata. */
const SIGNATURES_TYPE = 'aay';

/**
 * Most signatures checked per verifier in one call: the limit `@larch/signing` applies
 * (`MAX_SIGNATURES_PER_SCHEME`). OSTree sets none; hostile metadata with thousands of elements
 * is refused instead of verified one by one.
 */
export const MAX_SIGNATURES_PER_KEY = 256;

/**
 * What this module needs of a signer. `@larch/signing`'s `Ed25519Signer`, `GpgProgramSigner`
 * and `OpenPgpSigner` have this shape.
 */
export interface RepoSigner {
  /** Detached-metadata key the signature goes under (`ostree.gpgsigs`, `ostree.sign.ed25519`). */
  readonly metadataKey: string;
  /** Identifier of the signing key, for messages. */
  readonly keyId: string;
  /** One detached signature over `data`. */
  sign(data: Uint8Array, options?: { signal?: AbortSignal }): Promise<Uint8Array>;
  /**
   * Optional: the index in `signatures` (the array under `metadataKey`) of a signature made by
   * this signer's key, or -1. Signers that implement it (OpenPGP ones) are refused when their
   * key already signed, as OSTree refuses (`Commit is already signed with GPG key KEYID`).
   */
  findOwnSignature?(data: Uint8Array, signatures: readonly Uint8Array[]): Promise<number>;
}

/**
 * What this module needs of a verifier: one report per signature, in input order (a report may
 * carry anything else the caller wants to print). `@larch/signing`'s `Verifier` has this shape.
 */
export interface RepoVerifier<R extends { valid: boolean } = { valid: boolean }> {
  readonly metadataKey: string;
  verify(data: Uint8Array, signatures: readonly Uint8Array[], options?: { signal?: AbortSignal }): Promise<R[]>;
}

/** The outcome of verifying signed bytes against a set of verifiers. */
export interface SignatureCheck<R extends { valid: boolean }> {
  /** True when every verifier found at least one valid signature. */
  valid: boolean;
  /** Every report, verifier by verifier, in signature order. */
  signatures: R[];
  /** Per verifier (in the order given): signatures found under its key, and how many are valid. */
  keys: Array<{ metadataKey: string; found: number; validCount: number }>;
}

/** Options of the signing functions. */
export interface SignOptions {
  /**
   * What to do when a signer that can tell ({@link RepoSigner.findOwnSignature}) finds its own
   * signature already present: `refuse` (throws EXISTS before anything is written; the default
   * for commits, as OSTree) or `append` another signature anyway (the default for the summary).
   */
  alreadySigned?: 'refuse' | 'append';
  signal?: AbortSignal;
}

// ---------------------------------------------------------------- dictionary helpers (pure)

/**
 * The signatures under `key` (first entry of that key wins, as GLib's lookup); [] when absent.
 * Throws OBJECT_CORRUPTED when the key holds anything but `aay`, as OSTree refuses it.
 */
export function signaturesOf(dict: ReadonlyArray<readonly [string, Variant]>, key: string): Uint8Array[] {
  const entry = dict.find((e) => e[0] === key);
  if (entry === undefined) return [];
  const v = entry[1];
  if (!(v instanceof Variant) || v.type !== SIGNATURES_TYPE || !Array.isArray(v.value) || !v.value.every((s) => s instanceof Uint8Array)) {
    throw new LarchError('OBJECT_CORRUPTED', `Detached metadata key ${sanitize(key)} has type ${sanitize(String(v?.type), 40)}, expected '${SIGNATURES_TYPE}'`, {
      key,
      type: v?.type,
    });
  }
  return v.value as Uint8Array[];
}

/** `dict` with the array under `key` replaced by `signatures` (dropped when empty); other keys keep their place. */
function withSignatures(dict: ReadonlyArray<readonly [string, Variant]>, key: string, signatures: Uint8Array[]): DetachedDict {
  const out: DetachedDict = [];
  let placed = false;
  for (const [k, v] of dict) {
    if (k !== key) out.push([k, v]);
    else if (!placed) {
      placed = true;
      if (signatures.length > 0) out.push([key, new Variant(SIGNATURES_TYPE, signatures)]);
    }
  }
  if (!placed && signatures.length > 0) out.push([key, new Variant(SIGNATURES_TYPE, signatures)]);
  return out;
}

/** Append one signature per signer, signer by signer, refusing a key that already signed. */
async function addSignatures(
  data: Uint8Array,
  dict: DetachedDict,
  signers: readonly RepoSigner[],
  opts: SignOptions,
  alreadySigned: (s: RepoSigner) => string,
): Promise<DetachedDict> {
  let out = dict;
  for (const signer of signers) {
    const existing = signaturesOf(out, signer.metadataKey);
    if ((opts.alreadySigned ?? 'refuse') === 'refuse' && signer.findOwnSignature !== undefined && existing.length > 0) {
      if ((await signer.findOwnSignature(data, existing)) >= 0) throw new LarchError('EXISTS', alreadySigned(signer), { keyId: signer.keyId });
    }
    const sig = await signer.sign(data, opts.signal !== undefined ? { signal: opts.signal } : {});
    out = withSignatures(out, signer.metadataKey, [...existing, sig]);
  }
  return out;
}

async function checkSignatures<R extends { valid: boolean }>(
  data: Uint8Array,
  dict: DetachedDict,
  verifiers: ReadonlyArray<RepoVerifier<R>>,
  opts: { signal?: AbortSignal; maxSignatures?: number },
): Promise<SignatureCheck<R>> {
  if (verifiers.length === 0) throw new TypeError('signature verification needs at least one verifier');
  const limit = opts.maxSignatures ?? MAX_SIGNATURES_PER_KEY;
  const signatures: R[] = [];
  const keys: SignatureCheck<R>['keys'] = [];
  for (const v of verifiers) {
    const sigs = signaturesOf(dict, v.metadataKey);
    if (sigs.length > limit) {
      throw new LarchError('LIMIT_EXCEEDED', `Too many signatures under ${sanitize(v.metadataKey)} in detached metadata: ${sigs.length} (limit ${limit})`, {
        key: v.metadataKey,
        limit,
        observed: sigs.length,
      });
    }
    const reports = sigs.length === 0 ? [] : await v.verify(data, sigs, opts.signal !== undefined ? { signal: opts.signal } : {});
    signatures.push(...reports);
    keys.push({ metadataKey: v.metadataKey, found: reports.length, validCount: reports.filter((r) => r.valid).length });
  }
  return { valid: keys.every((k) => k.validCount > 0), signatures, keys };
}

/** Which signatures to delete: indexes into `signatures` (the array under the key), given the signed bytes. */
export type SignatureSelector = (signatures: readonly Uint8Array[], data: Uint8Array) => Iterable<number> | Promise<Iterable<number>>;

/** Options of the delete functions. */
export interface DeleteSignaturesOptions {
  /**
   * Write the dictionary back even when nothing was selected (default false). `ostree sign
   * --delete` does (an unsigned commit then gets an empty `.commitmeta`); `gpg-sign --delete`
   * does not.
   */
  writeUnchanged?: boolean;
}

function dropSelected(dict: DetachedDict, key: string, picked: Iterable<number>): { dict: DetachedDict; removed: number } {
  const sigs = signaturesOf(dict, key);
  const drop = new Set([...picked].filter((i) => Number.isInteger(i) && i >= 0 && i < sigs.length));
  if (drop.size === 0) return { dict, removed: 0 };
  return { dict: withSignatures(dict, key, sigs.filter((_s, i) => !drop.has(i))), removed: drop.size };
}

// ---------------------------------------------------------------- commits

/**
 * Rewrite a commit's detached metadata: `change` gets the current dictionary ([] when there is
 * none) and returns the new one, or null to leave the file untouched. An emptied dictionary is
 * written as such, not removed, as OSTree does: a client that pulls the commit again then drops
 * its signatures too (a missing `.commitmeta` would leave its copy alone).
 *
 * Locking: the repository's exclusive lock for the whole read-modify-write.
 * Crash: the old or the new `.commitmeta`, never a mixture (temp file, fsync, rename).
 */
export async function updateCommitMeta(repo: Repo, commit: Checksum, change: (dict: DetachedDict) => Promise<DetachedDict | null> | DetachedDict | null): Promise<void> {
  await repo.withLock('exclusive', async () => {
    const dict = (await repo.readCommitMeta(commit)) ?? [];
    const next = await change(dict);
    if (next !== null) await repo.writeCommitMeta(commit, next);
  });
}

/**
 * Sign commit `commit` with every signer, appending one signature each to its detached metadata
 * and keeping every other key (OSTree's `ostree_sign_commit`, `ostree_repo_append_gpg_signature`).
 * A signer whose key already signed is refused (`Commit is already signed with GPG key KEYID`,
 * code EXISTS) unless `alreadySigned: 'append'`. No signers: nothing happens.
 *
 * Locking: exclusive, held while the signers run (a `gpg` signer may wait for its agent).
 * Crash: the old or the new `.commitmeta`. The signatures are written together, so a signer
 * that fails (missing key, wrong passphrase) leaves none of them.
 */
export async function signCommit(repo: Repo, commit: Checksum, signers: readonly RepoSigner[], opts: SignOptions = {}): Promise<void> {
  if (signers.length === 0) return;
  const data = await repo.readMetadata('commit', commit);
  await updateCommitMeta(repo, commit, (dict) => addSignatures(data, dict, signers, opts, (s) => `Commit is already signed with GPG key ${s.keyId}`));
}

/**
 * Verify commit `commit`'s detached signatures: for each verifier, the signatures under its
 * key, against the exact `.commit` bytes. Bad signatures do not throw; read `valid` and the
 * reports. Throws OBJECT_MISSING for a missing commit, OBJECT_CORRUPTED for a signature key of
 * the wrong type, LIMIT_EXCEEDED beyond `maxSignatures` (default {@link MAX_SIGNATURES_PER_KEY})
 * per key, and TypeError without verifiers.
 *
 * Locking: none (both files are only ever replaced whole). Read-only, so a crash changes nothing.
 */
export async function verifyCommitSignatures<R extends { valid: boolean }>(
  repo: Repo,
  commit: Checksum,
  verifiers: ReadonlyArray<RepoVerifier<R>>,
  opts: { signal?: AbortSignal; maxSignatures?: number } = {},
): Promise<SignatureCheck<R>> {
  const data = await repo.readMetadata('commit', commit);
  const dict = (await repo.readCommitMeta(commit)) ?? [];
  return checkSignatures(data, dict, verifiers, opts);
}

/**
 * Delete the signatures under `metadataKey` of commit `commit` that `select` picks (indexes into
 * that array; out-of-range ones are ignored), keeping every other key. Returns how many were
 * deleted. With nothing picked the file is left alone unless `writeUnchanged`.
 *
 * Locking: exclusive, held while `select` runs. Crash: the old or the new `.commitmeta`.
 */
export async function deleteCommitSignatures(
  repo: Repo,
  commit: Checksum,
  metadataKey: string,
  select: SignatureSelector,
  opts: DeleteSignaturesOptions = {},
): Promise<number> {
  const data = await repo.readMetadata('commit', commit);
  let removed = 0;
  await updateCommitMeta(repo, commit, async (dict) => {
    const r = dropSelected(dict, metadataKey, await select(signaturesOf(dict, metadataKey), data));
    removed = r.removed;
    return r.removed > 0 || opts.writeUnchanged ? r.dict : null;
  });
  return removed;
}

// ---------------------------------------------------------------- summary

/**
 * The bytes of the repository's `summary` file. Throws OBJECT_MISSING (`openat(summary): No
 * such file or directory`, OSTree's words) when there is none. Locking: none (the file is only
 * ever replaced whole).
 */
export async function readSummaryFile(repo: Repo): Promise<Uint8Array> {
  try {
    return await fsp.readFile(path.join(repo.path, 'summary'));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new LarchError('OBJECT_MISSING', 'openat(summary): No such file or directory', { path: 'summary' });
    throw new LarchError('IO_ERROR', `openat(summary): ${(e as Error).message}`, { path: 'summary', errno: code }, { cause: e });
  }
}

/** `summary.sig` decoded, or null when there is none. Throws OBJECT_CORRUPTED when it is not an `a{sv}`. */
export async function readSummarySignatures(repo: Repo): Promise<DetachedDict | null> {
  let bytes: Uint8Array;
  try {
    bytes = await fsp.readFile(path.join(repo.path, 'summary.sig'));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new LarchError('IO_ERROR', `Reading summary.sig: ${(e as Error).message}`, { path: 'summary.sig' }, { cause: e });
  }
  try {
    return decode<DetachedDict>('a{sv}', bytes).map(([k, v]) => [k, v]);
  } catch (e) {
    throw new LarchError('OBJECT_CORRUPTED', `Invalid summary.sig: ${(e as Error).message}`, { path: 'summary.sig' }, { cause: e });
  }
}

/**
 * Sign the repository's current `summary` into `summary.sig`. With `append`, the signatures
 * already in `summary.sig` are kept (signing an existing summary again, `ostree summary
 * --gpg-sign` without `-u`); otherwise `summary.sig` is written fresh, holding only these
 * signatures. Unlike {@link signCommit}, a key that already signed is not looked for unless
 * `alreadySigned: 'refuse'` is asked (EXISTS, `Summary is already signed with GPG key KEYID`),
 * as OSTree appends. No signers: nothing happens.
 * Throws OBJECT_MISSING when there is no summary.
 *
 * Locking: exclusive (the summary cannot be regenerated between being read and signed).
 * Crash: the old or the new `summary.sig` (temp file, fsync, rename). A `summary.sig` left over
 * a regenerated summary does not happen: regeneration removes it first (`generateSummary`).
 */
export async function signSummary(repo: Repo, signers: readonly RepoSigner[], opts: SignOptions & { append?: boolean } = {}): Promise<void> {
  if (signers.length === 0) return;
  await repo.withLock('exclusive', async () => {
    const data = await readSummaryFile(repo);
    const dict = opts.append ? ((await readSummarySignatures(repo)) ?? []) : [];
    const next = await addSignatures(data, dict, signers, { ...opts, alreadySigned: opts.alreadySigned ?? 'append' }, (s) => `Summary is already signed with GPG key ${s.keyId}`);
    await repo.writeSummarySignature(encode('a{sv}', next as never));
  });
}

/**
 * Verify `summary.sig` against the current `summary`, as {@link verifyCommitSignatures} does
 * for a commit (a missing `summary.sig` verifies nothing: `valid` is false). Throws
 * OBJECT_MISSING without a summary. Locking: none; read-only.
 */
export async function verifySummarySignatures<R extends { valid: boolean }>(
  repo: Repo,
  verifiers: ReadonlyArray<RepoVerifier<R>>,
  opts: { signal?: AbortSignal; maxSignatures?: number } = {},
): Promise<SignatureCheck<R>> {
  const data = await readSummaryFile(repo);
  const dict = (await readSummarySignatures(repo)) ?? [];
  return checkSignatures(data, dict, verifiers, opts);
}

/**
 * Delete the signatures under `metadataKey` in `summary.sig` that `select` picks; returns how
 * many were deleted. With nothing picked (or no `summary.sig`) nothing is written unless
 * `writeUnchanged`. Locking: exclusive. Crash: the old or the new `summary.sig`.
 */
export async function deleteSummarySignatures(repo: Repo, metadataKey: string, select: SignatureSelector, opts: DeleteSignaturesOptions = {}): Promise<number> {
  return repo.withLock('exclusive', async () => {
    const data = await readSummaryFile(repo);
    const dict = (await readSummarySignatures(repo)) ?? [];
    const r = dropSelected(dict, metadataKey, await select(signaturesOf(dict, metadataKey), data));
    if (r.removed > 0 || opts.writeUnchanged) await repo.writeSummarySignature(encode('a{sv}', r.dict as never));
    return r.removed;
  });
}
