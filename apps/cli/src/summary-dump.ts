/**
 * A summary file as ostree prints it (`ot_dump_summary_bytes`, shared by `ostree summary --view`
 * and `ostree remote summary`):
 *
 *   * REF                                (`* (COLLECTION-ID, REF)` when the summary has one)
 *       Latest Commit (SIZE):            (GLib's g_format_size: `512 bytes`, `1.2 kB`)
 *         CSUM
 *       Version (ostree.commit.version): V
 *       Timestamp (ostree.commit.timestamp): 2020-09-13T12:26:40+00
 *       KEY: GVARIANT-TEXT
 *   <blank>
 *   (the refs of each collection of ostree.summary.collection-map, the same way)
 *   Repository Mode (ostree.summary.mode): archive-z2
 *   Last-Modified (ostree.summary.last-modified): …
 *   Collection Map (ostree.summary.collection-map): (printed above)
 *   KEY: GVARIANT-TEXT
 *
 * `raw` prints the whole variant as GVariant text, big-endian integers swapped (`--raw`).
 */
import { readSummary, SUMMARY_TYPE, type Summary, type SummaryRef } from '@larch/core-store';
import { bswap64, lookup, type Variant } from '@larch/gvariant';
import { formatSize, formatSummaryDate } from './format.js';
import { rawObjectText, variantString, variantText } from './variants.js';

const MODES = new Set(['bare', 'bare-user', 'bare-user-only', 'archive-z2', 'archive', 'bare-split-xattrs']);

/** OSTree stores these summary integers big-endian (spec/gvariant.md section 6). */
function beDate(v: Variant): string {
  return v.type === 't' && typeof v.value === 'bigint' ? formatSummaryDate(bswap64(v.value)) : variantText(v, false);
}

function refLines(collectionId: string | null, ref: SummaryRef): string[] {
  const out = [collectionId === null ? `* ${ref.name}` : `* (${collectionId}, ${ref.name})`, `    Latest Commit (${formatSize(ref.size)}):`, `      ${ref.checksum}`];
  for (const [k, v] of ref.metadata) {
    if (k === 'ostree.commit.timestamp') out.push(`    Timestamp (${k}): ${beDate(v)}`);
    else if (k === 'ostree.commit.version') out.push(`    Version (${k}): ${variantString(v) ?? variantText(v, false)}`);
    else out.push(`    ${k}: ${variantText(v, false)}`);
  }
  out.push('');
  return out;
}

function metadataLine(key: string, v: Variant): string {
  const labelled = (label: string, text: string): string => `${label} (${key}): ${text}`;
  switch (key) {
    case 'ostree.static-deltas':
      return labelled('Static Deltas', variantText(v, false));
    case 'ostree.summary.last-modified':
      return labelled('Last-Modified', beDate(v));
    case 'ostree.summary.expires':
      return labelled('Expires', beDate(v));
    case 'ostree.summary.collection-id':
      return labelled('Collection ID', variantString(v) ?? variantText(v, false));
    case 'ostree.summary.collection-map':
      return labelled('Collection Map', '(printed above)');
    case 'ostree.summary.mode': {
      const mode = variantString(v) ?? variantText(v, false);
      return labelled('Repository Mode', MODES.has(mode) ? mode : `Invalid (‘${mode}’)`);
    }
    case 'ostree.summary.tombstone-commits':
      return labelled('Has Tombstone Commits', v.value === true ? 'Yes' : 'No');
    default:
      return `${key}: ${variantText(v, false)}`;
  }
}

/** The text of a parsed summary (see the top of this file). Pure. */
export function summaryDumpText(summary: Summary): string {
  const out: string[] = [];
  const main = variantString(lookup(summary.metadata, 'ostree.summary.collection-id'));
  for (const ref of summary.refs) out.push(...refLines(main, ref));
  for (const [cid, refs] of summary.collectionMap) for (const ref of refs) out.push(...refLines(cid, ref));
  for (const [k, v] of summary.metadata) out.push(metadataLine(k, v));
  return out.length === 0 ? '' : `${out.join('\n')}\n`;
}

/** The text of summary bytes: {@link summaryDumpText}, or with `raw` the variant's GVariant text. Throws OBJECT_CORRUPTED for a malformed summary. */
export function summaryBytesText(bytes: Uint8Array, raw: boolean): string {
  if (raw) return `${rawObjectText(SUMMARY_TYPE, bytes)}\n`;
  return summaryDumpText(readSummary(bytes));
}
