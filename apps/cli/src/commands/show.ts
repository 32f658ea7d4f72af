/**
 * `larch show [--json] [--raw] [--print-metadata-key=K] [--print-detached-metadata-key=K]
 * [--gpg-verify-remote=REMOTE] [--gpg-homedir=H] REV`: one commit in ostree's layout, or one
 * metadata value printed as GVariant text (`'1.0'`, `['test']`) as ostree does.
 *
 * A signed commit is followed by ostree's signature block (`Found 1 signature:` and, per
 * signature, `Signature made … using ALGO key ID …` / `Good signature from "…"`). GPG signatures
 * are checked against REMOTE's keys with --gpg-verify-remote (its keyring and `gpgkeypath`, else
 * the global keyrings), else every keyring of the repository plus the global directory
 * ($OSTREE_GPG_HOME, else /usr/share/ostree/trusted.gpg.d), as ostree; ed25519 signatures (which ostree 2022.7 does not
 * show) follow in the same layout, checked against the remotes' `verification-ed25519-key/-file`
 * and the well-known key files.
 */
import type { Command } from 'commander';
import { COMMIT_TYPE, type Checksum, type Repo } from '@larch/core-store';
import type { TimeLocale } from '@larch/signing';
import { lookup } from '@larch/gvariant';
import type { VerbContext } from '../cli.js';
import { CommandError, openRepo } from '../context.js';
import { commitJson, commitText } from '../commit-text.js';
import { toJson } from '../format.js';
import { byteswapVariant, rawObjectText, variantText, variantToJson } from '../variants.js';
import { allOptions, verb } from './common.js';

interface ShowOptions {
  raw?: boolean;
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
    const ring = await signing.loadRepoGpgKeyring({
      repoPath: repo.path,
      ...(opts.gpgVerifyRemote !== undefined ? { remote: opts.gpgVerifyRemote } : {}),
      ...(keypath !== undefined ? { gpgkeypath: signing.parseGpgKeyPath(keypath) } : {}),
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

/** Register `show`: print one commit or one of its metadata values. */
export function registerShow(program: Command, ctx: VerbContext): void {
  verb(program, 'show', 'Output a metadata object')
    .argument('<rev>', 'Commit or ref')
    .option('--print-metadata-key <key>', 'Print string value of metadata key')
    .option('--print-detached-metadata-key <key>', 'Print string value of detached metadata key')
    .option('--gpg-homedir <homedir>', 'GPG Homedir to use when looking for keyrings')
    .option('--gpg-verify-remote <remote>', 'Use REMOTE name for GPG configuration')
    .option('--raw', 'Show raw variant data')
    .option('--json', 'Print JSON (see README)')
    .action(async (rev: string, _o: ShowOptions, cmd: Command) => {
      const opts = allOptions<ShowOptions>(cmd);
      const repo = await openRepo(opts);
      const checksum = await repo.revParse(rev);
      const commit = await repo.readCommit(checksum);
      if (opts.printMetadataKey !== undefined) {
        const key = opts.printMetadataKey;
        const value = lookup(commit.metadata, key);
        if (value === undefined) throw new CommandError(`No such metadata key '${key}'`);
        if (opts.json) ctx.io.out(toJson({ key, type: value.type, value: variantToJson(value), text: variantText(value) }));
        // ostree byteswaps the whole commit for display, metadata values included.
        else ctx.io.out(`${variantText(byteswapVariant(value))}\n`);
        return;
      }
      if (opts.printDetachedMetadataKey !== undefined) {
        const key = opts.printDetachedMetadataKey;
        const value = lookup((await repo.readCommitMeta(checksum)) ?? [], key);
        if (value === undefined) throw new CommandError(`No such detached metadata key '${key}'`);
        if (opts.json) ctx.io.out(toJson({ key, type: value.type, value: variantToJson(value), text: variantText(value) }));
        else ctx.io.out(`${variantText(byteswapVariant(value))}\n`);
        return;
      }
      if (opts.json) ctx.io.out(toJson(commitJson(checksum, commit)));
      else if (opts.raw) {
        const bytes = await repo.readMetadata('commit', checksum);
        ctx.io.out(`commit ${checksum}\n${rawObjectText(COMMIT_TYPE, bytes)}\n`);
      } else ctx.io.out(commitText(checksum, commit) + (await signatureText(repo, checksum, opts)));
    });
}
