/**
 * `larch admin status [--verify] [--json]`, as `ostree admin status` 2022.7 prints it: each
 * deployment's lines from @larch/sysroot, then, for a deployment whose origin names a remote with
 * GPG verification on, its commit's signatures as `    GPG: …` lines; `--verify` instead checks
 * the commit against the origin remote's signature policy and prints the result (an error, exit
 * 1, for a deployment with no origin, no remote or a bad signature, as ostree).
 *
 * OSTree quirk kept: the status lines check signatures against the keys of the remote named like
 * the deployment's stateroot (`ostree_repo_verify_commit_for_remote (repo, rev, osname)`), not
 * the origin's remote. Keyrings: the remote's `REPO/REMOTE.trustedkeys.gpg`, `gpgkeypath`, and the
 * global directory ($OSTREE_GPG_HOME, else /usr/share/ostree/trusted.gpg.d), as OSTree.
 */
import type { Command } from 'commander';
import type { Repo } from '@larch/core-store';
import type { DeploymentStatus } from '@larch/sysroot';
import type { VerbContext } from '../cli.js';
import { CommandError } from '../context.js';
import { toJson } from '../format.js';
import { allOptions } from './common.js';
import { bootedOf, bootedRootOption, lib, sub, sysrootOf, type SysrootOpts } from './admin-common.js';

interface StatusOpts extends SysrootOpts {
  verify?: boolean;
}

/** `[remote "NAME"] gpg-verify`, default true (ostree_repo_remote_get_gpg_verify). */
function remoteGpgVerify(repo: Repo, remote: string): boolean {
  const v = repo.config.get(`remote "${remote}"`, 'gpg-verify');
  return v === undefined ? true : v === 'true' || v === '1';
}

function remoteExists(repo: Repo, remote: string): boolean {
  return repo.config.groups().includes(`remote "${remote}"`);
}

async function originRemote(refspec: string | null): Promise<string | null> {
  if (refspec === null) return null;
  const { parseRefspec } = await import('@larch/core-store');
  try {
    const r = parseRefspec(refspec);
    return r.kind === 'mirrors' ? null : r.scope;
  } catch {
    return null;
  }
}

/** The `    GPG: ` lines of a commit's signatures, checked with `keysOf`'s keys; '' when unsigned. */
async function gpgLines(repo: Repo, checksum: string, keysOf: string): Promise<string> {
  const signing = await import('@larch/signing');
  const dict = await repo.readCommitMeta(checksum);
  const sigs = dict === null ? [] : signing.getSignatures(dict, signing.GPG_SIGNATURES_KEY);
  if (sigs.length === 0) return '';
  const ring = await signing.repoGpgKeyring(repo, { remote: keysOf });
  const reports = await new signing.GpgVerifier(ring).verify(await repo.readMetadata('commit', checksum), sigs);
  return reports.map((r) => signing.describeSignature(r).map((l) => `    GPG: ${l}\n`).join('')).join('');
}

/** A remote's config group as the raw key → value record @larch/signing parses. */
function remoteSection(repo: Repo, remote: string): Record<string, string> {
  const group = `remote "${remote}"`;
  const out: Record<string, string> = {};
  for (const k of repo.config.keys(group)) out[k] = repo.config.get(group, k) ?? '';
  return out;
}

/**
 * `--verify`: the origin remote's verdict on the commit, worded as OSTree's
 * `ostree_repo_signature_verify_commit_data` (GPG lines prefixed `GPG: `, then the ed25519
 * result); a commit that does not pass is an error.
 */
async function verifyText(repo: Repo, d: DeploymentStatus, hasCommit: boolean): Promise<string> {
  if (!hasCommit) throw new CommandError('Cannot verify, failed to load commit');
  if (!d.hasOrigin) throw new CommandError('Cannot verify deployment with no origin');
  if (d.refspec === null) throw new CommandError('No origin/refspec, cannot verify');
  const remote = await originRemote(d.refspec);
  if (remote === null) throw new CommandError('Cannot verify deployment without remote');
  if (!remoteExists(repo, remote)) throw new CommandError(`Remote "${remote}" not found`);
  const signing = await import('@larch/signing');
  const dict = await repo.readCommitMeta(d.checksum);
  if (dict === null) throw new CommandError("Can't verify commit without detached metadata");
  const cfg = signing.parseRemoteSigningConfig(remoteSection(repo, remote));
  const data = await repo.readMetadata('commit', d.checksum);
  const parts: string[] = [];
  if (cfg.gpgVerify) {
    const ring = await signing.repoGpgKeyring(repo, { remote });
    const reports = await new signing.GpgVerifier(ring).verify(data, signing.getSignatures(dict, signing.GPG_SIGNATURES_KEY));
    if (!reports.some((r) => r.valid)) {
      const last = reports[reports.length - 1];
      throw new CommandError(last ? signing.describeSignature(last).join('; ') : 'No GPG signatures found');
    }
    parts.push(reports.map((r) => signing.describeSignature(r).map((l) => `GPG: ${l}\n`).join('')).join(''));
  }
  if (cfg.signVerify.length > 0 || cfg.ed25519Key !== null || cfg.ed25519File !== null) {
    const verifier = await signing.loadEd25519Verifier({
      ...(cfg.ed25519Key !== null ? { inline: [cfg.ed25519Key] } : {}),
      ...(cfg.ed25519File !== null ? { files: [cfg.ed25519File] } : {}),
    });
    const result = await signing.verifyDetached({ data, dict, policy: { verifiers: [verifier] } });
    if (!result.valid) {
      const reports = result.signatures.filter((r) => r.scheme === 'ed25519');
      throw new CommandError(`Can't verify commit: ${reports.length === 0 ? 'ed25519: commit have no signatures of my type' : reports.map((r) => signing.describeSignature(r).join('; ')).join('; ')}`);
    }
    parts.push(result.signatures.filter((r) => r.valid).map((r) => signing.describeSignature(r).join('')).join('\n'));
  }
  if (parts.length === 0) throw new CommandError(`Cannot verify commit for remote ${remote}; GPG verification disabled, and no signapi verifiers configured`);
  return parts.join('\n');
}

/** Register `admin status`. */
export function registerAdminStatus(admin: Command, ctx: VerbContext): void {
  bootedRootOption(sub(admin, 'status', 'List deployments'))
    .option('-V, --verify', 'Print the commit verification status')
    .option('--json', 'Print JSON (see README)')
    .action(async (_o: unknown, cmd: Command) => {
      const opts = allOptions<StatusOpts>(cmd);
      const l = await lib();
      const s = await l.sysrootStatus(sysrootOf(opts), bootedOf(opts));
      if (opts.json) {
        ctx.io.out(toJson(s));
        return;
      }
      if (s.deployments.length === 0) {
        ctx.io.out('No deployments.\n');
        return;
      }
      const { Repo } = await import('@larch/core-store');
      const repo = await Repo.open(`${s.sysroot}/ostree/repo`);
      for (const d of s.deployments) {
        ctx.io.out(l.formatDeploymentHeader(d) + l.formatDeploymentDetails(d));
        const hasCommit = await repo.hasObject('commit', d.checksum);
        if (opts.verify) {
          ctx.io.out(`${await verifyText(repo, d, hasCommit)}\n`);
          continue;
        }
        const remote = await originRemote(d.refspec);
        if (hasCommit && remote !== null && remoteExists(repo, remote) && remoteGpgVerify(repo, remote)) {
          ctx.io.out(await gpgLines(repo, d.checksum, d.stateroot));
        }
      }
    });
}
