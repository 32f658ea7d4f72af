/**
 * `larch summary -u|--update [-m|--add-metadata=KEY=GVARIANT-TEXT]...` regenerates the summary
 * file; `larch summary -v|--view [--raw] [--json]` (or `--raw` alone) prints it in ostree's layout:
 *
 *   * REF                                (or `(COLLECTION-ID, REF)` when the summary has one)
 *       Latest Commit (N bytes):
 *         CSUM
 *       Version (ostree.commit.version): V
 *       Timestamp (ostree.commit.timestamp): 2020-09-13T12:26:40+00
 *   <blank>
 *   Repository Mode (ostree.summary.mode): archive-z2
 *   Last-Modified (ostree.summary.last-modified): ...
 *   ...
 * Keys without a label print as `KEY: GVARIANT-TEXT`. As in ostree, -v here means --view.
 */
import type { Command } from 'commander';
import { readSummary, readSummaryFile, signSummary, SUMMARY_TYPE } from '@larch/core-store';
import type { SignerOptions } from '@larch/signing';
import { bswap64, lookup, type Variant } from '@larch/gvariant';
import type { VerbContext } from '../cli.js';
import { openRepo, UsageError } from '../context.js';
import { formatIsoDate, formatSummaryDate, toJson } from '../format.js';
import { collect, keyValue, parseOption } from '../options.js';
import { metadataFromText, rawObjectText, variantString, variantText, variantToJson } from '../variants.js';
import { allOptions, verb } from './common.js';

interface SummaryOpts extends SignerOptions {
  update?: boolean;
  view?: boolean;
  raw?: boolean;
  json?: boolean;
  addMetadata?: string[];
}

/** Register `summary`: regenerate or view the summary file. */
export function registerSummary(program: Command, ctx: VerbContext): void {
  verb(program, 'summary', 'Manage summary metadata', false)
    .option('-u, --update', 'Update the summary')
    .option('-v, --view', 'View the local summary file')
    .option('--raw', 'View the raw bytes of the summary file')
    .option('--json', 'With --view: print JSON (see README)')
    .option('-m, --add-metadata <key=value>', 'Additional metadata field to add to the summary (GVariant text)', collect)
    .option('--gpg-sign <keyid>', 'GPG Key ID to sign the summary with', collect)
    .option('--gpg-homedir <homedir>', 'GPG Homedir to use when looking for keyrings')
    .option('--gpg-secret-key-file <file>', 'Sign with this armored OpenPGP secret key file instead of gpg')
    .option('--gpg-passphrase-file <file>', 'Passphrase of the signing key (first line of FILE)')
    .option('--sign <key>', 'Sign the summary with this base64 ed25519 secret key', collect)
    .option('--sign-type <name>', 'Signature type to use (defaults to ed25519)')
    .option('--keys-file <file>', 'Sign with the ed25519 secret keys in FILE (one base64 key per line)')
    .action(async (_o: SummaryOpts, cmd: Command) => {
      const opts = allOptions<SummaryOpts>(cmd);
      // Signing is loaded only when asked for; signers are built before the summary is rewritten.
      const wantsSigning =
        (opts.gpgSign?.length ?? 0) > 0 || opts.gpgSecretKeyFile !== undefined || (opts.sign?.length ?? 0) > 0 || opts.keysFile !== undefined;
      const signing = wantsSigning ? await import('@larch/signing') : null;
      const signers = signing ? await signing.signersFromOptions(opts) : [];
      if (opts.update) {
        const additionalMetadata = (opts.addMetadata ?? []).map((kv) => {
          const [k, text] = parseOption(keyValue, kv);
          return metadataFromText(kv, k, text);
        });
        const repo = await openRepo(opts);
        // As ostree: the delta indexes are rebuilt with the summary, and the new summary is
        // signed into a fresh summary.sig.
        await (await import('@larch/delta')).refreshSummary(repo, { additionalMetadata, signers });
        return;
      }
      if (signing && !opts.view && !opts.raw) {
        // `summary --gpg-sign=KEY` without -u: add signatures to the existing summary.
        await signSummary(await openRepo(opts), signers, { append: true });
        return;
      }
      // As ostree: --raw alone views the summary too.
      if (!opts.view && !opts.raw) throw new UsageError('No option specified; use -u to update summary');
      const bytes = await readSummaryFile(await openRepo(opts));
      if (opts.raw && !opts.json) {
        ctx.io.out(`${rawObjectText(SUMMARY_TYPE, bytes)}\n`);
        return;
      }
      const summary = readSummary(bytes);
      if (opts.json) ctx.io.out(toJson(summaryJson(summary)));
      else ctx.io.out(summaryText(summary));
    });
}

type Summary = ReturnType<typeof readSummary>;

/** OSTree stores these summary integers big-endian (spec/gvariant.md section 6). */
function beUint64(v: Variant | undefined): bigint | null {
  return v !== undefined && v.type === 't' && typeof v.value === 'bigint' ? bswap64(v.value) : null;
}

function refLabel(summary: Summary, name: string): string {
  const cid = variantString(lookup(summary.metadata, 'ostree.summary.collection-id'));
  return cid === null ? name : `(${cid}, ${name})`;
}

function summaryText(summary: Summary): string {
  const out: string[] = [];
  for (const ref of summary.refs) {
    out.push(`* ${refLabel(summary, ref.name)}`);
    out.push(`    Latest Commit (${ref.size} bytes):`);
    out.push(`      ${ref.checksum}`);
    for (const [k, v] of ref.metadata) {
      if (k === 'ostree.commit.timestamp') {
        const ts = beUint64(v);
        out.push(`    Timestamp (${k}): ${ts === null ? variantText(v, false) : formatSummaryDate(ts)}`);
      } else if (k === 'ostree.commit.version') {
        out.push(`    Version (${k}): ${variantString(v) ?? variantText(v, false)}`);
      } else {
        out.push(`    ${k}: ${variantText(v, false)}`);
      }
    }
    out.push('');
  }
  for (const [k, v] of summary.metadata) out.push(summaryMetadataLine(k, v));
  return `${out.join('\n')}\n`;
}

function summaryMetadataLine(key: string, v: Variant): string {
  const labelled = (label: string, text: string): string => `${label} (${key}): ${text}`;
  switch (key) {
    case 'ostree.summary.mode':
      return labelled('Repository Mode', variantString(v) ?? variantText(v, false));
    case 'ostree.summary.last-modified':
    case 'ostree.summary.expires': {
      const ts = beUint64(v);
      return labelled(key.endsWith('expires') ? 'Expires' : 'Last-Modified', ts === null ? variantText(v, false) : formatSummaryDate(ts));
    }
    case 'ostree.summary.tombstone-commits':
      return labelled('Has Tombstone Commits', v.value === true ? 'Yes' : 'No');
    case 'ostree.static-deltas':
      return labelled('Static Deltas', variantText(v, false));
    case 'ostree.summary.collection-id':
      return labelled('Collection ID', variantString(v) ?? variantText(v, false));
    case 'ostree.summary.collection-map':
      return labelled('Collection Map', variantText(v, false));
    default:
      return `${key}: ${variantText(v, false)}`;
  }
}

/** The `summary --view --json` shape (see README). */
function summaryJson(summary: Summary): unknown {
  const metadata: Record<string, unknown> = {};
  for (const [k, v] of summary.metadata) {
    if (Object.hasOwn(metadata, k)) continue;
    const ts = k === 'ostree.summary.last-modified' || k === 'ostree.summary.expires' ? beUint64(v) : null;
    metadata[k] = { type: v.type, value: ts ?? variantToJson(v) };
  }
  return {
    refs: summary.refs.map((r) => {
      const ts = beUint64(lookup(r.metadata, 'ostree.commit.timestamp'));
      return {
        name: r.name,
        checksum: r.checksum,
        size: r.size,
        timestamp: ts,
        date: ts === null ? null : formatIsoDate(ts),
        version: variantString(lookup(r.metadata, 'ostree.commit.version')),
      };
    }),
    metadata,
  };
}
