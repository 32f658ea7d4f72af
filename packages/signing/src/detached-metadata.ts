/**
 * OSTree keeps signatures outside the signed object: a commit's `.commitmeta` and the repo's
 * `summary.sig` are both GVariant `a{sv}` dictionaries whose signature keys hold `aay` arrays,
 * one element per signature, over the exact bytes of the `.commit` / `summary` file
 * (spec/pull-and-signing.md section 6). Adding a signature appends to the array and keeps every
 * other key, so a GPG signature and an ed25519 signature (or unrelated metadata) can coexist.
 *
 * These helpers work on the decoded dictionary form used by `@larch/gvariant`
 * (`Array<[string, Variant]>`) and never touch the filesystem; writing the bytes into the repo
 * is the store's job.
 */

import { Variant, decode, encode } from '@larch/gvariant';
import { SigningError, sanitize } from './errors.js';

/** Detached metadata (`.commitmeta`, `summary.sig`) in `@larch/gvariant`'s decoded `a{sv}` form. */
export type DetachedMetadata = Array<[string, Variant]>;

/** Key for OpenPGP signatures: `aay`, each element one binary detached signature. */
export const GPG_SIGNATURES_KEY = 'ostree.gpgsigs';
/** Key for ed25519 signatures (`ostree sign`): `aay`, each element 64 raw bytes. */
export const ED25519_SIGNATURES_KEY = 'ostree.sign.ed25519';
/** GVariant type of every signature array. */
export const SIGNATURES_TYPE = 'aay';
/** GVariant type of `.commitmeta` and `summary.sig`. */
export const DETACHED_METADATA_TYPE = 'a{sv}';

/**
 * Decode `.commitmeta` / `summary.sig` bytes. Detached metadata is not checksummed by OSTree,
 * so it is untrusted input: it is only parsed, and a signature in it counts only once verified.
 * Throws METADATA_INVALID when the bytes are not an `a{sv}`. Pure; no locks.
 */
export function decodeDetachedMetadata(bytes: Uint8Array): DetachedMetadata {
  try {
    const value = decode<Array<[string, Variant]>>(DETACHED_METADATA_TYPE, bytes);
    return value.map(([k, v]) => [k, v]);
  } catch (e) {
    throw new SigningError('METADATA_INVALID', `Invalid detached metadata: ${(e as Error).message}`, {}, { cause: e });
  }
}

/** Encode detached metadata to `a{sv}` bytes in GVariant normal form, ready to be written as `.commitmeta` or `summary.sig`. Pure. */
export function encodeDetachedMetadata(dict: DetachedMetadata): Uint8Array {
  return encode(DETACHED_METADATA_TYPE, dict);
}

/**
 * The signatures stored under `key` (e.g. GPG_SIGNATURES_KEY), in order; [] when the key is
 * absent. Throws METADATA_INVALID when the key is present with a type other than `aay`, as OSTree
 * does. Like GLib's lookup, the first entry with that key wins. The returned arrays may be views
 * into the decoded input.
 */
export function getSignatures(dict: ReadonlyArray<readonly [string, Variant]>, key: string): Uint8Array[] {
  const entry = dict.find((e) => e[0] === key);
  if (entry === undefined) return [];
  const v = entry[1];
  if (!(v instanceof Variant) || v.type !== SIGNATURES_TYPE || !Array.isArray(v.value)) {
    throw new SigningError(
      'METADATA_INVALID',
      `Detached metadata key '${sanitize(key)}' has type '${sanitize(String(v?.type))}', expected '${SIGNATURES_TYPE}'`,
      { key, type: v?.type },
    );
  }
  return (v.value as unknown[]).map((s) => {
    if (!(s instanceof Uint8Array)) throw new SigningError('METADATA_INVALID', `Detached metadata key '${sanitize(key)}' holds a non-byte-array element`, { key });
    return s;
  });
}

/**
 * Return a new dictionary with `signature` appended to the array under `key`. Every other key
 * is kept in its place; later duplicate entries of `key` (legal in GVariant, never written by
 * OSTree) are folded into the first. Like `ostree gpg-sign`, this appends even when an identical
 * signature is already present. Pure: the input is not modified.
 */
export function appendSignature(dict: ReadonlyArray<readonly [string, Variant]>, key: string, signature: Uint8Array): DetachedMetadata {
  if (!(signature instanceof Uint8Array) || signature.length === 0) throw new TypeError('signature must be a non-empty Uint8Array');
  const merged: Uint8Array[] = [];
  for (const e of dict) if (e[0] === key) merged.push(...getSignatures([e], key));
  merged.push(signature);
  const out: DetachedMetadata = [];
  let placed = false;
  for (const [k, v] of dict) {
    if (k !== key) out.push([k, v]);
    else if (!placed) {
      out.push([key, new Variant(SIGNATURES_TYPE, merged)]);
      placed = true;
    }
  }
  if (!placed) out.push([key, new Variant(SIGNATURES_TYPE, merged)]);
  return out;
}

/**
 * Return a new dictionary without the signatures under `key` for which `remove` returns true
 * (the building block of `gpg-sign --delete`). The key is dropped when its array becomes empty.
 * Also returns how many were removed. Pure.
 */
export function removeSignatures(
  dict: ReadonlyArray<readonly [string, Variant]>,
  key: string,
  remove: (signature: Uint8Array, index: number) => boolean,
): { dict: DetachedMetadata; removed: number } {
  const kept = getSignatures(dict, key).filter((s, i) => !remove(s, i));
  const before = getSignatures(dict, key).length;
  const out: DetachedMetadata = [];
  let placed = false;
  for (const [k, v] of dict) {
    if (k !== key) out.push([k, v]);
    else if (!placed) {
      placed = true;
      if (kept.length > 0) out.push([key, new Variant(SIGNATURES_TYPE, kept)]);
    }
  }
  return { dict: out, removed: before - kept.length };
}
