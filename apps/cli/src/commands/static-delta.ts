/**
 * `larch static-delta list|show|delete|generate|apply-offline|reindex`: OSTree's static deltas,
 * in ostree's command forms and output lines:
 *   static-delta generate [--from=REV | --empty] --to=REV [--inline|--inline-parts]
 *                         [--disable-bsdiff] [-n] [--min-fallback-size=MB] [--max-bsdiff-size=MB]
 *                         [--max-chunk-size=MB] [--compression=xz|none] [--json]
 *                         [--sign=KEY]… [--sign-type=ed25519] [--keys-file=F] [--filename=PATH]
 *                         [--set-endianness=l|B] [--swap-endianness]
 *   static-delta list | show NAME|PATH | delete NAME | reindex [--to=CHECKSUM] | indexes
 *   static-delta apply-offline [--sign-type=T] [--keys-file=F] [--keys-dir=D] PATH [KEY…]
 *                         (PATH: the delta's directory or its superblock)
 *   static-delta verify [--sign-type=T] [--keys-file=F] [--keys-dir=D] DELTA [KEY…]
 * Formats and algorithms are @larch/delta's; this module parses, calls and prints. `generate`
 * prints ostree's statistics block on stderr as ostree does (always: ostree passes `verbose`),
 * `show` ostree's description (sizes as GLib formats them), errors in ostree's words.
 */
import type { Command } from 'commander';
import type { GenerateEvent, GenerateStats, SuperblockSigner, SuperblockVerifier } from '@larch/delta';
import type { VerbContext } from '../cli.js';
import { CommandError, interruptible, openRepo, UsageError } from '../context.js';
import { formatSize, toJson } from '../format.js';
import { collect, integer, parseOption } from '../options.js';
import { NO_OWN_OPTIONS, OWN_ACTION, SubcommandError } from '../help.js';
import { allOptions, verb } from './common.js';

function sub(parent: Command, name: string, description: string): Command {
  return parent
    .command(name)
    .description(description)
    .option('--repo <path>', 'Path to OSTree repository (defaults to $OSTREE_REPO or the current directory)')
    .allowExcessArguments(false);
}

interface GenerateOpts {
  from?: string;
  empty?: boolean;
  to?: string;
  inline?: boolean;
  inlineParts?: boolean;
  disableBsdiff?: boolean;
  ifNotExists?: boolean;
  minFallbackSize?: string;
  maxBsdiffSize?: string;
  maxChunkSize?: string;
  compression?: string;
  json?: boolean;
  sign?: string[];
  signType?: string;
  keysFile?: string;
  filename?: string;
  setEndianness?: string;
  swapEndianness?: boolean;
}

interface VerifyOpts {
  signType?: string;
  keysFile?: string;
  keysDir?: string;
  json?: boolean;
}

/** Signers for `generate --sign=KEY…` / `--keys-file=F`: ed25519 (base64 secret keys), or OSTree's test-only `dummy`. */
async function deltaSigners(opts: GenerateOpts): Promise<SuperblockSigner[]> {
  // Only ed25519 and ostree's test engine exist; any other type is refused by name, in the words
  // ostree's apply-offline uses for it.
  const type = opts.signType ?? 'ed25519';
  if (type !== 'ed25519' && type !== 'dummy') throw new CommandError(`Signing type ${type} is not supported`);
  if ((opts.sign ?? []).length === 0 && (type === 'dummy' || opts.keysFile === undefined)) return [];
  const { signersFromOptions } = await import('@larch/signing');
  return signersFromOptions({ signType: type, ...(opts.sign !== undefined ? { sign: opts.sign } : {}), ...(opts.keysFile !== undefined ? { keysFile: opts.keysFile } : {}) }, { signTypes: ['ed25519', 'dummy'] });
}

/**
 * The verifier for `apply-offline` / `verify`, as ostree builds it: KEYs on the command line
 * (base64 public keys; secret keys are reduced to theirs), `--keys-file`, and, when no KEY is
 * given, the well-known trusted key files (under `--keys-dir` when given). Without any key,
 * `apply-offline` goes on without a verifier (undefined); `verify` fails.
 */
async function deltaVerifier(keys: string[], opts: VerifyOpts, required: boolean, unsupported: string): Promise<SuperblockVerifier | undefined> {
  const type = opts.signType ?? 'ed25519';
  if (type === 'dummy') {
    const { DummyVerifier } = await import('@larch/signing');
    if (keys.length === 0) {
      if (required) throw new CommandError('signature: dummy: no public key given');
      return undefined;
    }
    // ostree's dummy engine keeps only the last key it is given.
    return new DummyVerifier(keys[keys.length - 1]);
  }
  if (type !== 'ed25519') throw new CommandError(unsupported);
  const { ed25519VerifierFromOptions, isSigningError } = await import('@larch/signing');
  try {
    return await ed25519VerifierFromOptions(keys, opts);
  } catch (e) {
    // No key anywhere: ostree's apply-offline then goes on as if no engine were configured.
    if (!required && keys.length === 0 && opts.keysFile === undefined && opts.keysDir === undefined && isSigningError(e, 'KEY_NOT_FOUND')) return undefined;
    throw e;
  }
}

const sizeLine = (label: string, n: bigint): string => `${label}: ${n} (${formatSize(n)})\n`;

/**
 * The statistics ostree's `static-delta generate` prints on stderr as it goes (its library's
 * verbose output), in its words; null for a bsdiff step it does not report (it reports about ten
 * of them).
 */
function generateEventLine(e: GenerateEvent): string | null {
  switch (e.type) {
    case 'reachable':
      return `modified: ${e.modified}\nnew reachable: metadata=${e.metadata} content regular=${e.regular} symlink=${e.symlink}\n`;
    case 'rollsum':
      return `rollsum for ${e.from} -> ${e.to}; crcs=${e.crcmatches} bufs=${e.bufmatches} total=${e.total} matchsize=${e.matchSize}\n`;
    case 'rollsum-planned':
      return `rollsum for ${e.rollsum}/${e.modified} modified\n`;
    case 'bsdiff': {
      const mod = Math.floor(e.total / 10);
      return mod === 0 || e.index % mod === 0 ? `processing bsdiff: [${e.index}/${e.total}]\n` : null;
    }
    case 'fallback':
      return `fallback for ${e.checksum} (${formatSize(e.size)})\n`;
    case 'part':
      return `part ${e.index + 1} n:${e.objects} compressed:${e.size} uncompressed:${e.usize}\n`;
  }
}

/** ostree's closing statistics lines of `static-delta generate`. */
function generateSummaryLines(s: GenerateStats): string {
  return `uncompressed=${s.usize} compressed=${s.partSize} loose=${s.looseSize}\nrollsum=${s.rollsum} objects, ${s.rollsumSize} bytes\nbsdiff=${s.bsdiff} objects\n`;
}

/**
 * Why no signature verified, in ostree's words: for ed25519, every key tried against every
 * signature ("ed25519: Signature couldn't be verified with: key 'HEX'; …", or "…; tried N keys"
 * beyond three); otherwise the first reason.
 */
function verifyFailure(verifier: SuperblockVerifier, signatures: number, reasons: string[]): string {
  const trusted = (verifier as { trusted?: ReadonlyArray<{ bytes: Uint8Array }> }).trusted;
  if (verifier.metadataKey !== 'ostree.sign.ed25519' || trusted === undefined || reasons.some((r) => r !== 'no trusted key matches')) {
    return reasons[0] ?? 'no valid signature';
  }
  const tried = Array.from({ length: signatures }, () => trusted.map((k) => Buffer.from(k.bytes).toString('hex'))).flat();
  if (tried.length > 3) return `ed25519: Signature couldn't be verified; tried ${tried.length} keys`;
  return `ed25519: Signature couldn't be verified with: ${tried.map((h) => `key '${h}'`).join('; ')}`;
}

/** Register `static-delta` and its sub-verbs. */
export function registerStaticDelta(program: Command, ctx: VerbContext): void {
  const sd = verb(program, 'static-delta', 'Static delta related commands');
  NO_OWN_OPTIONS.add(sd);
  // Unlike the other verbs with sub-verbs, ostree's static-delta says just `No command specified`.
  sd.argument('[command]')
    .allowExcessArguments(true)
    .action((command: string | undefined) => {
      throw new SubcommandError(command === undefined ? 'No command specified' : `Unknown "static-delta" subcommand '${command}'`, sd);
    });
  OWN_ACTION.add(sd);

  sub(sd, 'list', 'List static delta files')
    .option('--json', 'Print JSON: [{ name, from, to }]')
    .action(async (_o: { json?: boolean }, cmd: Command) => {
      const opts = allOptions<{ json?: boolean }>(cmd);
      const { listDeltas } = await import('@larch/delta');
      const repo = await openRepo(opts);
      const list = await listDeltas(repo);
      if (opts.json) {
        ctx.io.out(toJson(list.map(({ name, from, to }) => ({ name, from, to }))));
        return;
      }
      if (list.length === 0) ctx.io.out('(No static deltas)\n');
      for (const d of list) ctx.io.out(`${d.name}\n`);
    });

  sub(sd, 'show', 'Dump information on a delta')
    .argument('[delta]', 'Delta name (TO or FROM-TO), or the path of a superblock')
    .option('--json', 'Print JSON')
    .action(async (name: string | undefined, _o: { json?: boolean }, cmd: Command) => {
      const opts = allOptions<{ json?: boolean }>(cmd);
      if (name === undefined) throw new CommandError('DELTA must be specified');
      const { showDelta } = await import('@larch/delta');
      const repo = await openRepo(opts);
      const d = await showDelta(repo, name);
      if (opts.json) {
        ctx.io.out(toJson(d));
        return;
      }
      let s = `Delta: ${d.name}\nSigned: ${d.signed ? 'yes' : 'no'}\n`;
      s += d.from === null ? 'From <scratch>\n' : `From: ${d.from}\n`;
      const endianness = d.endiannessHeuristic && d.endianness !== 'invalid' ? `${d.endianness} (heuristic)` : d.endianness;
      s += `To: ${d.to}\nEndianness: ${endianness}\nTimestamp: ${d.timestamp}\nNumber of parents: ${d.parents}\n`;
      s += `Number of fallback entries: ${d.fallbacks}\n`;
      for (const c of d.fallbackObjects) s += `  ${c}\n`;
      s += sizeLine('Total Fallback Size', d.fallbackSize) + sizeLine('Total Fallback Uncompressed Size', d.fallbackUsize);
      s += `Number of parts: ${d.parts.length}\n`;
      for (const p of d.parts) {
        s += `PartMeta${p.index}: nobjects=${p.nobjects} size=${p.size} usize=${p.usize}\n`;
        s += `PartPayload${p.index}: nmodes=${p.nmodes} nxattrs=${p.nxattrs} blobsize=${p.blobsize} opsize=${p.opsize}\n`;
        const o = p.ops!;
        s += `PartPayloadOps${p.index}: openspliceclose=${o.openspliceclose} open=${o.open} write=${o.write} setread=${o.setread} unsetread=${o.unsetread} close=${o.close} bspatch=${o.bspatch}\n`;
      }
      s += sizeLine('Total Part Size', d.partSize) + sizeLine('Total Part Uncompressed Size', d.partUsize);
      const u64 = (n: bigint): bigint => BigInt.asUintN(64, n);
      s += sizeLine('Total Size', u64(d.partSize + d.fallbackSize)) + sizeLine('Total Uncompressed Size', u64(d.partUsize + d.fallbackUsize));
      ctx.io.out(s);
    });

  sub(sd, 'delete', 'Remove a delta')
    .argument('[delta]', 'Delta name (TO or FROM-TO)')
    .action(async (name: string | undefined, _o: object, cmd: Command) => {
      const opts = allOptions<object>(cmd);
      if (name === undefined) throw new CommandError('DELTA must be specified');
      const { deleteDelta } = await import('@larch/delta');
      await deleteDelta(await openRepo(opts), name);
    });

  sub(sd, 'reindex', 'Regenerate static delta indexes')
    .option('--to <rev>', 'Only update delta index to revision REV')
    .action(async (_o: object, cmd: Command) => {
      const opts = allOptions<{ to?: string }>(cmd);
      const { reindexDeltasLocked } = await import('@larch/delta');
      const repo = await openRepo(opts);
      // As ostree: --to is a full checksum, not resolved as a revision.
      const to = opts.to;
      if (to !== undefined && !/^[0-9a-f]{64}$/.test(to)) throw new CommandError(`Invalid rev ${to}`);
      await reindexDeltasLocked(repo, to !== undefined ? { to } : {});
    });

  sub(sd, 'generate', 'Generate static delta files')
    .argument('[to]', 'Target revision (same as --to)')
    .option('--from <rev>', 'Create delta from revision REV')
    .option('--empty', 'Create delta from scratch')
    .option('--to <rev>', 'Create delta to revision REV')
    .option('--inline', 'Inline delta parts into main delta')
    .option('--inline-parts', 'Inline delta parts into main delta (same as --inline)')
    .option('--disable-bsdiff', 'Disable use of bsdiff')
    .option('-n, --if-not-exists', 'Only generate if a delta does not already exist')
    .option('--min-fallback-size <mb>', 'Minimum uncompressed size in megabytes for individual HTTP request')
    .option('--max-bsdiff-size <mb>', 'Maximum size in megabytes to consider bsdiff compression for input files')
    .option('--max-chunk-size <mb>', 'Maximum size of delta chunks in megabytes')
    .option('--compression <kind>', "Part compression: 'xz' (default) or 'none'")
    .option('--set-endianness <endian>', "Choose metadata endianness ('l' or 'B')")
    .option('--swap-endianness', 'Swap metadata endianness from host order')
    .option('--filename <path>', 'Write the delta content to PATH (a directory).  If not specified, the OSTree repository is used')
    .option('--sign <key>', 'Sign the delta with KEY (base64 ed25519 secret key; repeatable)', collect)
    .option('--sign-type <name>', "Signature type to use (defaults to 'ed25519')")
    .option('--keys-file <file>', 'Read key(s) from file')
    .option('--json', 'Print JSON statistics')
    .action(async (toArg: string | undefined, _o: GenerateOpts, cmd: Command) => {
      const opts = allOptions<GenerateOpts>(cmd);
      if (opts.empty && opts.from !== undefined) throw new UsageError('Cannot specify both --empty and --from=REV');
      const toRev = opts.to ?? toArg;
      if (toRev === undefined) throw new UsageError('--to=REV must be specified');
      const mb = (name: string, v: string | undefined): number | undefined => (v === undefined ? undefined : parseOption(integer(name, { min: 0 }), v));
      const minFallbackSize = mb('--min-fallback-size', opts.minFallbackSize);
      const maxBsdiffSize = mb('--max-bsdiff-size', opts.maxBsdiffSize);
      const maxChunkSize = mb('--max-chunk-size', opts.maxChunkSize);
      if (maxChunkSize === 0) throw new UsageError('--max-chunk-size must be at least 1');
      if (opts.compression !== undefined && opts.compression !== 'xz' && opts.compression !== 'none') throw new UsageError(`Invalid compression '${opts.compression}': expected xz or none`);
      const { endianness: hostOrder } = await import('node:os');
      let endianness: 'l' | 'B' = hostOrder() === 'BE' ? 'B' : 'l';
      if (opts.setEndianness !== undefined) {
        if (opts.setEndianness !== 'l' && opts.setEndianness !== 'B') throw new CommandError(`Invalid endianness '${opts.setEndianness}'`);
        endianness = opts.setEndianness;
      }
      if (opts.swapEndianness) endianness = endianness === 'l' ? 'B' : 'l';
      const signers = await deltaSigners(opts);
      const { generateDelta, hasDelta } = await import('@larch/delta');
      const repo = await openRepo(opts);
      const to = await repo.revParse(toRev);
      let from: string | null = null;
      if (!opts.empty) {
        if (opts.from !== undefined) from = await repo.revParse(opts.from);
        else {
          const parent = (await repo.readCommit(to)).parent;
          if (parent === null) throw new CommandError(`Commit ${to} has no parent; use --empty for a delta from scratch`);
          from = parent;
        }
      }
      if (opts.ifNotExists) {
        if (await hasDelta(repo, from, to)) {
          if (!opts.json) ctx.io.out(`Delta ${from === null ? to : `${from}-${to}`} already exists.\n`);
          else ctx.io.out(toJson({ name: from === null ? to : `${from}-${to}`, existed: true }));
          return;
        }
      }
      if (!opts.json) ctx.io.out(`Generating static delta:\n  From: ${from ?? 'empty'}\n  To:   ${to}\n`);
      const stats = await generateDelta(repo, {
        from,
        to,
        ...(minFallbackSize !== undefined ? { minFallbackSize } : {}),
        ...(maxBsdiffSize !== undefined ? { maxBsdiffSize } : {}),
        ...(maxChunkSize !== undefined ? { maxChunkSize } : {}),
        inlineParts: Boolean(opts.inline || opts.inlineParts),
        disableBsdiff: Boolean(opts.disableBsdiff),
        ...(opts.compression !== undefined ? { compression: opts.compression as 'xz' | 'none' } : {}),
        ...(signers.length > 0 ? { signers } : {}),
        ...(opts.filename !== undefined ? { filename: opts.filename } : {}),
        ...(endianness !== 'l' ? { endianness } : {}),
        onEvent: (e) => {
          const line = generateEventLine(e);
          if (line !== null) ctx.io.err(line);
        },
      });
      ctx.io.err(generateSummaryLines(stats));
      if (opts.json) ctx.io.out(toJson(stats));
    });

  sub(sd, 'apply-offline', 'Apply static delta file')
    .argument('<path>', 'The delta directory or its superblock file')
    .argument('[keys...]', 'Public keys to check a signed delta with')
    .option('--sign-type <name>', "Signature type to use (defaults to 'ed25519')")
    .option('--keys-file <file>', 'Read key(s) from file')
    .option('--keys-dir <dir>', 'Redefine system-wide directories with public and revoked keys for verification')
    .option('--json', 'Print JSON statistics')
    .action(async (path: string, keys: string[], _o: VerifyOpts, cmd: Command) => {
      const opts = allOptions<VerifyOpts>(cmd);
      const verifier = await deltaVerifier(keys, opts, false, `Signing type ${opts.signType} is not supported`);
      const { applyOffline } = await import('@larch/delta');
      const repo = await openRepo(opts);
      const r = await interruptible((signal) => applyOffline(repo, path, { signal, ...(verifier ? { verifier } : {}) }));
      if (opts.json) ctx.io.out(toJson(r));
    });

  sub(sd, 'verify', 'Verify static delta signatures')
    .argument('<delta>', 'Delta name (TO or FROM-TO), or the path of its superblock')
    .argument('[keys...]', 'Public keys to check the signatures with')
    .option('--sign-type <name>', "Signature type to use (defaults to 'ed25519')")
    .option('--keys-file <file>', 'Read key(s) from file')
    .option('--keys-dir <dir>', 'Redefine system-wide directories with public and revoked keys for verification')
    .action(async (delta: string, keys: string[], _o: VerifyOpts, cmd: Command) => {
      const opts = allOptions<VerifyOpts>(cmd);
      const type = opts.signType ?? 'ed25519';
      if (type !== 'ed25519' && type !== 'dummy') {
        ctx.io.out('Sign-type not supported\n');
        throw new CommandError(`Signing type ${type} is not supported`);
      }
      const verifier = (await deltaVerifier(keys, opts, true, ''))!;
      const { verifyDelta } = await import('@larch/delta');
      const repo = await openRepo(opts);
      let failure: string | null = null;
      try {
        const r = await verifyDelta(repo, delta, verifier);
        if (!r.valid) failure = verifyFailure(verifier, r.signatures, r.reasons);
      } catch (e) {
        ctx.io.out('Verification fails\n');
        throw e;
      }
      ctx.io.out(`Verification ${failure === null ? 'OK' : 'fails'}\n`);
      if (failure !== null) throw new CommandError(failure);
    });

  sub(sd, 'indexes', 'List static delta indexes')
    .option('--json', 'Print JSON: the TO commits that have an index')
    .action(async (_o: { json?: boolean }, cmd: Command) => {
      const opts = allOptions<{ json?: boolean }>(cmd);
      const { listDeltaIndexes } = await import('@larch/delta');
      const list = await listDeltaIndexes(await openRepo(opts));
      if (opts.json) {
        ctx.io.out(toJson(list));
        return;
      }
      if (list.length === 0) ctx.io.out('(No static deltas indexes)\n');
      for (const c of list) ctx.io.out(`${c}\n`);
    });

  // ostree's `-v`, listed after each sub-verb's own options.
  for (const c of sd.commands) c.option('-v, --verbose', 'Print debug information during command processing');
}
