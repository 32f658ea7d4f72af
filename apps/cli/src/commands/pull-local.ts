/**
 * `larch pull-local [--depth=N] [--remote=REMOTE] [--gpg-verify] [--gpg-verify-summary]
 * [--commit-metadata-only] [--json] SRC_REPO [REF|CHECKSUM…]`: copy commits from another local
 * repository (a path or file:// URL), verifying every object, as `ostree pull-local`. Without
 * refs every head of SRC_REPO is copied.
 *
 * With --gpg-verify (and --remote, whose keyring is used, as in OSTree) each commit's signatures
 * are checked in the source before anything is copied; the copy is then made by checksum (so
 * exactly the verified bytes arrive: objects are content-addressed) and the refs are written
 * afterwards. --gpg-verify-summary checks SRC_REPO's summary against summary.sig first.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { LarchError, Repo, isChecksum, type Checksum } from '@larch/core-store';
import { getRemote, pullLocal, type PulledRef, type RemoteConfig } from '@larch/http-pull';
import type { VerbContext } from '../cli.js';
import { openRepo, UsageError } from '../context.js';
import { integer, parseOption } from '../options.js';
import { allOptions, verb } from './common.js';
import { runPull, signatureVerifier } from './pull.js';

interface PullLocalOpts {
  depth?: string;
  remote?: string;
  commitMetadataOnly?: boolean;
  json?: boolean;
  gpgVerify?: boolean;
  gpgVerifySummary?: boolean;
}

async function optionalBytes(p: Promise<Uint8Array>): Promise<Uint8Array | null> {
  try {
    return await p;
  } catch (e) {
    if ((e instanceof LarchError && e.code === 'OBJECT_MISSING') || (e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

/**
 * Check the source's summary (--gpg-verify-summary) and the signatures of every commit to be
 * copied (the targets and, with depth, their parents present in the source); return the targets
 * as (ref or null, checksum). Reads the source only.
 */
async function verifySource(
  repoPath: string,
  srcArg: string,
  names: string[],
  depth: number,
  remote: string,
  opts: { commits: boolean; summary: boolean },
  config: RemoteConfig,
): Promise<Array<{ ref: string | null; checksum: Checksum }>> {
  const src = await Repo.open(srcArg.startsWith('file:') ? fileURLToPath(srcArg) : srcArg);
  const verifier = signatureVerifier(repoPath);
  const ctx = { remote, config };
  if (opts.summary) {
    const summary = await optionalBytes(readFile(join(src.path, 'summary')));
    if (summary === null) throw new LarchError('BAD_CONFIG', `Summary verification enabled (gpg-verify-summary), but ${srcArg} has no summary`, { src: srcArg });
    await verifier.verifySummary(summary, await optionalBytes(readFile(join(src.path, 'summary.sig'))), { ...ctx, required: ['gpg-verify-summary'] });
  }
  const targets: Array<{ ref: string | null; checksum: Checksum }> = [];
  const list = names.length > 0 ? names : [...(await src.listRefs({ kind: 'heads' })).keys()];
  for (const name of list) {
    if (isChecksum(name)) targets.push({ ref: null, checksum: name });
    else {
      const c = await src.resolveRef(name);
      if (c === null) throw new LarchError('REF_NOT_FOUND', `Refspec '${name}' not found`, { refspec: name, path: src.path });
      targets.push({ ref: name, checksum: c });
    }
  }
  if (opts.commits) {
    const seen = new Set<string>();
    for (const t of targets) {
      let c: Checksum | null = t.checksum;
      for (let left = depth; c !== null && !seen.has(c); left--) {
        seen.add(c);
        const bytes = await optionalBytes(src.readMetadata('commit', c));
        if (bytes === null) break; // a missing parent is tolerated, as by the copy itself
        await verifier.verifyCommit(bytes, await optionalBytes(src.readMetadata('commitmeta', c)), { ...ctx, required: ['gpg-verify'], checksum: c });
        if (left === 0) break;
        c = (await src.readCommit(c)).parent;
      }
    }
  }
  return targets;
}

/** Register `pull-local`. */
export function registerPullLocal(program: Command, ctx: VerbContext): void {
  verb(program, 'pull-local', 'Copy data from SRC_REPO')
    .argument('<src_repo>', 'Source repository path or file:// URL')
    .argument('[refs...]', 'Refs or commit checksums (default: every ref of SRC_REPO)')
    .option('--depth <depth>', 'Traverse DEPTH parents (-1=infinite) (default: 0)')
    .option('--remote <remote>', 'Add REMOTE to refspec')
    .option('--commit-metadata-only', 'Fetch only the commit metadata')
    .option('--gpg-verify', 'GPG verify commits (must specify --remote)')
    .option('--gpg-verify-summary', 'GPG verify summary (must specify --remote)')
    .option('--json', 'Print progress and the result as JSON lines on stdout')
    .action(async (src: string, refs: string[], _o: PullLocalOpts, cmd: Command) => {
      const opts = allOptions<PullLocalOpts>(cmd);
      const depth = opts.depth === undefined ? 0 : parseOption(integer('--depth', { min: -1 }), opts.depth);
      const repo = await openRepo(opts);
      if (opts.gpgVerify || opts.gpgVerifySummary) {
        if (opts.remote === undefined) throw new UsageError('--gpg-verify and --gpg-verify-summary require --remote');
        const remote = opts.remote;
        const config = getRemote(repo, remote);
        const targets = await verifySource(repo.path, src, refs, depth, remote, { commits: Boolean(opts.gpgVerify), summary: Boolean(opts.gpgVerifySummary) }, config);
        await runPull(ctx.io, Boolean(opts.json), async (signal, onProgress) => {
          const r = await pullLocal({
            repo,
            src,
            refs: [...new Set(targets.map((t) => t.checksum))],
            depth,
            commitMetadataOnly: Boolean(opts.commitMetadataOnly),
            signal,
            ...(onProgress ? { onProgress } : {}),
          });
          // Refs last, to the verified commits (pulled by checksum above).
          const written: PulledRef[] = [];
          await repo.withLock('shared', async () => {
            for (const t of targets) {
              if (t.ref === null) continue;
              const refspec = `${remote}:${t.ref}`;
              const previous = await repo.resolveRef(refspec).catch(() => null);
              if (previous !== t.checksum) await repo.setRef(refspec, t.checksum);
              written.push({ ref: t.ref, refspec, checksum: t.checksum, previous });
            }
          });
          return { ...r, refs: written };
        });
        return;
      }
      await runPull(ctx.io, Boolean(opts.json), (signal, onProgress) =>
        pullLocal({
          repo,
          src,
          refs,
          depth,
          commitMetadataOnly: Boolean(opts.commitMetadataOnly),
          ...(opts.remote !== undefined ? { remote: opts.remote } : {}),
          signal,
          ...(onProgress ? { onProgress } : {}),
        }),
      );
    });
}
