/**
 * `larch show [--json] [--raw] [-B] [--print-metadata-key=K] [--print-detached-metadata-key=K]
 * [--print-related] [--print-sizes] [--gpg-verify-remote=REMOTE] [--gpg-homedir=H] REV`: one
 * commit in ostree's layout, or one metadata value printed as GVariant text (`'1.0'`, `['test']`)
 * as ostree does; its related commits (`NAME CHECKSUM` lines); or the totals of its
 * `ostree.sizes` metadata. `--print-variant-type=TYPE FILE` prints a file read as a GVariant of
 * TYPE. Values are byteswapped for display as ostree does on little-endian machines; `-B`
 * (`--no-byteswap`) prints them as stored, and prints a commit's whole variant before its summary.
 *
 * A signed commit is followed by ostree's signature block (`Found 1 signature:` and, per
 * signature, `Signature made … using ALGO key ID …` / `Good signature from "…"`). GPG signatures
 * are checked against REMOTE's keys with --gpg-verify-remote (its keyring and `gpgkeypath`, else
 * the global keyrings), else every keyring of the repository plus the global directory
 * ($OSTREE_GPG_HOME, else /usr/share/ostree/trusted.gpg.d), as ostree; ed25519 signatures (which ostree 2022.7 does not
 * show) follow in the same layout, checked against the remotes' `verification-ed25519-key/-file`
 * and the well-known key files.
 */
import { readFile } from 'node:fs/promises';
import { Option, type Command } from 'commander';
import { COMMIT_TYPE, type Checksum, type ObjectType, type Repo } from '@larch/core-store';
import type { TimeLocale } from '@larch/signing';
import { decode, lookup, parseType, Variant } from '@larch/gvariant';
import type { VerbContext } from '../cli.js';
import { CommandError, openRepo, UsageError } from '../context.js';
import { commitJson, commitText } from '../commit-text.js';
import { formatSize, toJson } from '../format.js';
import { byteswapVariant, rawObjectText, variantText, variantToJson } from '../variants.js';
import { allOptions, verb } from './common.js';

interface ShowOptions {
  raw?: boolean;
  noByteswap?: boolean;
  printRelated?: boolean;
  printSizes?: boolean;
  printVariantType?: string;
  json?: boolean;
  printMetadataKey?: string;
  printDetachedMetadataKey?: string;
  gpgVerifyRemote?: string;
  gpgHomedir?: string;
}

/** Where signature keys come from for `show` / `log`. */
export interface SignatureKeyOptions {
  gpgVerifyRemote?: string;
  gpgHomedir?: string;
}

function remoteNames(repo: Repo): string[] {
  return repo.config
    .groups()
    .map((g) => /^remote "(.+)"$/.exec(g)?.[1])
    .filter((n): n is string => n !== undefined);
}

/**
 * The locale signature dates are printed in, looked up once per command and only when a GPG
 * signature is shown (it may run the `locale` program): see time-locale.ts.
 */
export function lazyTimeLocale(): () => Promise<TimeLocale> {
  let found: Promise<TimeLocale> | null = null;
  return () => (found ??= import('../time-locale.js').then((m) => m.timeLocaleFromEnv()));
}

/**
 * The signature block ostree prints after a commit (empty when the commit has no signatures),
 * with dates in the user's locale as ostree prints them (`timeLocale`; `log` shares one).
 * Reads key files; no locks. Loads the signing package only for signed commits.
 */
export async function signatureText(repo: Repo, checksum: Checksum, opts: SignatureKeyOptions, timeLocale: () => Promise<TimeLocale> = lazyTimeLocale()): Promise<string> {
  const dict = await repo.readCommitMeta(checksum);
  if (dict === null) return '';
  const has = (k: string): boolean => dict.some(([key]) => key === k);
  if (!has('ostree.gpgsigs') && !has('ostree.sign.ed25519')) return '';
  const signing = await import('@larch/signing');
  const data = await repo.readMetadata('commit', checksum);
  let out = '';
  const gpgSigs = signing.getSignatures(dict, signing.GPG_SIGNATURES_KEY);
  if (gpgSigs.length > 0) {
    if (opts.gpgVerifyRemote !== undefined) assertRemoteExists(repo, opts.gpgVerifyRemote);
    const keypath = opts.gpgVerifyRemote !== undefined ? repo.config.get(`remote "${opts.gpgVerifyRemote}"`, 'gpgkeypath') : undefined;
    const ring = await signing.repoGpgKeyring(repo, {
      ...(opts.gpgVerifyRemote !== undefined ? { remote: opts.gpgVerifyRemote } : {}),
      ...(keypath !== undefined ? { gpgkeypath: keypath } : {}),
      ...(opts.gpgHomedir !== undefined ? { homedir: opts.gpgHomedir } : {}),
    });
    out += signing.signatureBlock(await new signing.GpgVerifier(ring).verify(data, gpgSigs), 'signature', { timeLocale: await timeLocale() });
  }
  const edSigs = signing.getSignatures(dict, signing.ED25519_SIGNATURES_KEY);
  if (edSigs.length > 0) {
    const remotes = opts.gpgVerifyRemote !== undefined ? [opts.gpgVerifyRemote] : remoteNames(repo);
    const inline: string[] = [];
    const files: string[] = [];
    for (const r of remotes) {
      const k = repo.config.get(`remote "${r}"`, 'verification-ed25519-key');
      const f = repo.config.get(`remote "${r}"`, 'verification-ed25519-file');
      if (k !== undefined && k.trim() !== '') inline.push(k.trim());
      if (f !== undefined && f.trim() !== '') files.push(f.trim());
    }
    let reports;
    try {
      const verifier = await signing.loadEd25519Verifier({ ...(inline.length > 0 ? { inline } : {}), ...(files.length > 0 ? { files } : {}) });
      reports = await verifier.verify(data, edSigs);
    } catch (e) {
      if (!signing.isSigningError(e, 'KEY_NOT_FOUND')) throw e;
      reports = edSigs.map(() => ({ scheme: 'ed25519' as const, keyId: null, valid: false, reason: 'no public keys loaded', expired: false, revoked: false, timestamp: null, keysTried: [] }));
    }
    out += (out === '' ? '' : '\n') + signing.signatureBlock(reports, 'ed25519 signature');
  }
  return out;
}

function assertRemoteExists(repo: Repo, remote: string): void {
  if (!repo.config.hasGroup(`remote "${remote}"`)) throw new CommandError(`Remote "${remote}" not found`);
}

/** A value as ostree prints it: byteswapped for display unless `-B`. */
function shown(value: Variant, noByteswap: boolean | undefined): string {
  return variantText(noByteswap ? value : byteswapVariant(value));
}

/** `--print-related`: the commit's related list (field 2), `NAME CHECKSUM` per line. */
async function relatedText(repo: Repo, checksum: Checksum): Promise<string> {
  const fields = decode<unknown[]>(COMMIT_TYPE, await repo.readMetadata('commit', checksum));
  const related = fields[2] as Array<[string, Uint8Array]>;
  return related.map(([name, csum]) => `${name} ${Buffer.from(csum).toString('hex')}\n`).join('');
}

/** Object types as numbered in `ostree.sizes` entries. */
const SIZES_OBJECT_TYPES: Record<number, ObjectType> = { 1: 'file', 2: 'dirtree', 3: 'dirmeta', 4: 'commit', 5: 'tombstone-commit', 6: 'commitmeta' };

/** An unsigned LEB128 varint at `pos`, or null when the entry ends first. */
function varuint(b: Uint8Array, pos: number): { value: bigint; next: number } | null {
  let value = 0n;
  for (let shift = 0n, i = pos; i < b.length && shift < 70n; i++, shift += 7n) {
    value |= BigInt(b[i] & 0x7f) << shift;
    if ((b[i] & 0x80) === 0) return { value, next: i + 1 };
  }
  return null;
}

/** `--print-sizes`: the totals of the commit's `ostree.sizes`, and what this repository lacks of them. */
async function sizesText(repo: Repo, metadata: Array<[string, Variant]>): Promise<string> {
  const v = lookup(metadata, 'ostree.sizes');
  if (v === undefined || v.type !== 'aay') throw new CommandError('No metadata key ostree.sizes in commit');
  let archived = 0n;
  let unpacked = 0n;
  let newArchived = 0n;
  let newUnpacked = 0n;
  let newObjects = 0;
  const entries = v.value as Uint8Array[];
  for (const e of entries) {
    if (e.length < 34) throw new CommandError('Could not read ostree.sizes metadata entry');
    const checksum = Buffer.from(e.subarray(0, 32)).toString('hex');
    const a = varuint(e, 32);
    const u = a === null ? null : varuint(e, a.next);
    if (a === null || u === null) throw new CommandError('Unexpected EOF reading ostree.sizes varint');
    let type: ObjectType = 'file';
    if (u.next < e.length) {
      const t = SIZES_OBJECT_TYPES[e[u.next]];
      if (t === undefined) throw new CommandError(`Unexpected ostree.sizes object type ${e[u.next]}`);
      type = t;
    }
    archived += a.value;
    unpacked += u.value;
    if (!(await repo.hasObject(type, checksum))) {
      newArchived += a.value;
      newUnpacked += u.value;
      newObjects++;
    }
  }
  return (
    `Compressed size (needed/total): ${formatSize(newArchived)}/${formatSize(archived)}\n` +
    `Unpacked size (needed/total): ${formatSize(newUnpacked)}/${formatSize(unpacked)}\n` +
    `Number of objects (needed/total): ${newObjects}/${entries.length}\n`
  );
}

/** `--print-variant-type=TYPE FILE`: the file read as one GVariant of TYPE. */
async function variantFileText(type: string, file: string): Promise<string> {
  try {
    parseType(type);
  } catch {
    throw new UsageError(`Invalid GVariant type string '${type}' for --print-variant-type`);
  }
  let bytes: Uint8Array;
  try {
    bytes = await readFile(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new CommandError(`openat(${file}): ${code === 'ENOENT' ? 'No such file or directory' : code === 'EACCES' ? 'Permission denied' : (e as Error).message}`);
  }
  let value: Variant;
  try {
    value = new Variant(type, decode(type, bytes));
  } catch {
    throw new CommandError(`${file}: not a valid GVariant of type ${type}`);
  }
  // ostree prints such a file byteswapped on little-endian machines, -B or not.
  return `${variantText(byteswapVariant(value))}\n`;
}

/** Register `show`: print one commit or one of its metadata values. */
export function registerShow(program: Command, ctx: VerbContext): void {
  verb(program, 'show', 'Output a metadata object')
    .argument('<rev>', 'Commit or ref')
    .option('--print-related', 'Show the "related" commits')
    .option('--print-variant-type <type>', 'Memory map OBJECT (in this case a filename) to the GVariant type string')
    .option('--print-metadata-key <key>', 'Print string value of metadata key')
    .option('--print-detached-metadata-key <key>', 'Print string value of detached metadata key')
    .option('--print-sizes', 'Show the commit size metadata')
    .option('--raw', 'Show raw variant data')
    .addOption(Object.assign(new Option('-B, --no-byteswap', 'Do not automatically convert variant data from big endian'), { negate: false }))
    .option('--gpg-homedir <homedir>', 'GPG Homedir to use when looking for keyrings')
    .option('--gpg-verify-remote <remote>', 'Use REMOTE name for GPG configuration')
    .option('--json', 'Print JSON (see README)')
    .action(async (rev: string, _o: ShowOptions, cmd: Command) => {
      const opts = allOptions<ShowOptions>(cmd);
      const repo = await openRepo(opts);
      // As ostree: metadata keys first, then the related list, a variant file, the sizes.
      if (opts.printMetadataKey === undefined && opts.printDetachedMetadataKey === undefined && !opts.printRelated && opts.printVariantType !== undefined) {
        ctx.io.out(await variantFileText(opts.printVariantType, rev));
        return;
      }
      const checksum = await repo.revParse(rev);
      const commit = await repo.readCommit(checksum);
      if (opts.printMetadataKey !== undefined) {
        const key = opts.printMetadataKey;
        const value = lookup(commit.metadata, key);
        if (value === undefined) throw new CommandError(`No such metadata key '${key}'`);
        if (opts.json) ctx.io.out(toJson({ key, type: value.type, value: variantToJson(value), text: variantText(value) }));
        // ostree byteswaps the whole commit for display, metadata values included.
        else ctx.io.out(`${shown(value, opts.noByteswap)}\n`);
        return;
      }
      if (opts.printDetachedMetadataKey !== undefined) {
        const key = opts.printDetachedMetadataKey;
        const value = lookup((await repo.readCommitMeta(checksum)) ?? [], key);
        if (value === undefined) throw new CommandError(`No such detached metadata key '${key}'`);
        if (opts.json) ctx.io.out(toJson({ key, type: value.type, value: variantToJson(value), text: variantText(value) }));
        else ctx.io.out(`${shown(value, opts.noByteswap)}\n`);
        return;
      }
      if (opts.printRelated) {
        ctx.io.out(await relatedText(repo, checksum));
        return;
      }
      if (opts.printSizes) {
        ctx.io.out(await sizesText(repo, commit.metadata));
        return;
      }
      if (opts.json) ctx.io.out(toJson(commitJson(checksum, commit)));
      else if (opts.noByteswap) {
        // ostree prints the commit as stored, then its usual summary (with or without --raw).
        const bytes = await repo.readMetadata('commit', checksum);
        const text = commitText(checksum, commit);
        const nl = text.indexOf('\n') + 1;
        ctx.io.out(`${text.slice(0, nl)}${variantText(new Variant(COMMIT_TYPE, decode(COMMIT_TYPE, bytes)))}\n${text.slice(nl)}${await signatureText(repo, checksum, opts)}`);
      } else if (opts.raw) {
        const bytes = await repo.readMetadata('commit', checksum);
        ctx.io.out(`commit ${checksum}\n${rawObjectText(COMMIT_TYPE, bytes)}\n`);
      } else ctx.io.out(commitText(checksum, commit) + (await signatureText(repo, checksum, opts)));
    });
}
