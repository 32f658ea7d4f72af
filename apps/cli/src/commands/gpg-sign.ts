/**
 * `larch gpg-sign [--gpg-homedir=H] [--gpg-secret-key-file=F] COMMIT KEYID…` appends one
 * OpenPGP signature per key to the commit's detached metadata (`ostree.gpgsigs`), as
 * `ostree gpg-sign` does (through `gpg`, or in-process with an armored secret key file).
 * Signing with a key that already signed the commit fails (`Commit is already signed with GPG key
 * KEYID`), as in OSTree. `--delete COMMIT KEYID…` removes, for each KEYID, the first signature made
 * by that key (or one of its subkeys) and prints `Signatures deleted: N`, as OSTree 2022.7 does.
 * Keys are recognised through the global keyrings ($OSTREE_GPG_HOME, else
 * /usr/share/ostree/trusted.gpg.d) and `--gpg-homedir`'s keyring; a KEYID found in none of them
 * still matches a signature whose issuer key id it names (OSTree then deletes nothing).
 */
import type { Command } from 'commander';
import { GPG_SIGNATURES_KEY, GpgKeyring, GpgVerifier, findGpgSignatureByKey, getSignatures, removeSignatures } from '@larch/signing';
import type { VerbContext } from '../cli.js';
import { openRepo, UsageError } from '../context.js';
import { allOptions, verb } from './common.js';
import { gpgLookupKeyring, gpgSigners, rewriteCommitMeta, signCommit, type SigningOptions } from './sign.js';

interface GpgSignOpts extends SigningOptions {
  delete?: boolean;
}

/** True when `wanted` (key id, short id or fingerprint) names the key `keyId` (16 hex). */
function sameKey(keyId: string | null, fingerprint: string | null | undefined, wanted: string): boolean {
  const w = wanted.toUpperCase().replace(/^0X/, '');
  if (fingerprint && fingerprint.toUpperCase() === w) return true;
  if (keyId === null) return false;
  return w.length >= 16 ? w.slice(-16) === keyId : keyId.endsWith(w);
}

/** Register `gpg-sign`. */
export function registerGpgSign(program: Command, ctx: VerbContext): void {
  verb(program, 'gpg-sign', 'Sign a commit')
    .argument('<commit>', 'Commit or ref')
    .argument('[keyids...]', 'GPG key ids')
    .option('-d, --delete', 'Delete signatures having any of the GPG KEY-IDs')
    .option('--gpg-homedir <homedir>', 'GPG Homedir to use when looking for keyrings')
    .option('--gpg-secret-key-file <file>', 'Sign in-process with this armored OpenPGP secret key (no gpg needed)')
    .option('--gpg-passphrase-file <file>', 'Passphrase of the secret key (first line of FILE)')
    .action(async (commitArg: string, keyIds: string[], _o: GpgSignOpts, cmd: Command) => {
      const opts = allOptions<GpgSignOpts>(cmd);
      if (keyIds.length === 0 && !(opts.gpgSecretKeyFile !== undefined && !opts.delete)) throw new UsageError('Need at least one GPG KEY-ID to sign with');
      const repo = await openRepo(opts);
      const commit = await repo.revParse(commitArg);
      if (!opts.delete) {
        await signCommit(repo, commit, await gpgSigners(keyIds, opts));
        return;
      }
      const data = await repo.readMetadata('commit', commit);
      const ring = await gpgLookupKeyring(opts.gpgHomedir);
      let deleted = 0;
      await rewriteCommitMeta(repo, commit, async (dict) => {
        const sigs = getSignatures(dict, GPG_SIGNATURES_KEY);
        // Which key made each signature, for ids no keyring knows (the issuer is in the packet).
        const probe = new GpgVerifier(new GpgKeyring([]));
        const issuers = await Promise.all(sigs.map(async (s) => (await probe.verify(data, [s]))[0]));
        const drop = new Set<number>();
        for (const id of keyIds) {
          // The first signature by that key, even if an earlier KEYID already named it (as OSTree).
          const i = ring.find(id) !== null ? await findGpgSignatureByKey(sigs, ring, id) : issuers.findIndex((r) => r !== undefined && sameKey(r.keyId, r.fingerprint, id));
          if (i >= 0) drop.add(i);
        }
        deleted = drop.size;
        if (drop.size === 0) return null;
        return removeSignatures(dict, GPG_SIGNATURES_KEY, (_s, i) => drop.has(i)).dict;
      });
      ctx.io.out(`Signatures deleted: ${deleted}\n`);
    });
}
