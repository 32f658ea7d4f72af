/**
 * How `log` and `show` present a commit: ostree's text layout (ot-dump's commit dump, checked
 * against ostree 2022.7) and the documented `--json` shape.
 *
 *   commit CSUM
 *   Parent:  CSUM                      (only with a parent)
 *   ContentChecksum:  CSUM
 *   Date:  2020-01-01 00:00:00 +0000
 *   Version: V                         (only with a `version` string)
 *   <blank> + indented subject         (or "(no subject)" directly after the header)
 *   <blank> + indented body            (only with a body)
 *   <blank>
 */
import { contentChecksumOfCommit, type Checksum, type Commit } from '@larch/core-store';
import { lookup } from '@larch/gvariant';
import { formatCommitDate, formatIsoDate, indentLines } from './format.js';
import { variantString, variantToJson } from './variants.js';

/** The `version` metadata string, shown as `Version:`; null when absent or not a string. */
export function commitVersion(commit: Commit): string | null {
  return variantString(lookup(commit.metadata, 'version'));
}

/** The text block for one commit, ending with the blank line ostree prints after it. */
export function commitText(checksum: Checksum, commit: Commit): string {
  const lines = [`commit ${checksum}`];
  if (commit.parent !== null) lines.push(`Parent:  ${commit.parent}`);
  lines.push(`ContentChecksum:  ${contentChecksumOfCommit(commit)}`);
  lines.push(`Date:  ${formatCommitDate(commit.timestamp)}`);
  const version = commitVersion(commit);
  if (version !== null) lines.push(`Version: ${version}`);
  if (commit.subject !== '') {
    lines.push('', ...indentLines(commit.subject));
  } else {
    lines.push('(no subject)');
  }
  if (commit.body !== '') lines.push('', ...indentLines(commit.body));
  lines.push('');
  return `${lines.join('\n')}\n`;
}

/** The `--json` shape of a commit (see README "JSON output"). */
export interface CommitJson {
  checksum: string;
  parent: string | null;
  subject: string;
  body: string;
  timestamp: bigint;
  date: string | null;
  version: string | null;
  contentChecksum: string;
  rootTree: string;
  rootMeta: string;
  metadata: Record<string, { type: string; value: unknown }>;
}

/** The documented `--json` rendering of a commit. */
export function commitJson(checksum: Checksum, commit: Commit): CommitJson {
  const metadata: Record<string, { type: string; value: unknown }> = {};
  for (const [k, v] of commit.metadata) {
    if (!Object.hasOwn(metadata, k)) metadata[k] = { type: v.type, value: variantToJson(v) };
  }
  return {
    checksum,
    parent: commit.parent,
    subject: commit.subject,
    body: commit.body,
    timestamp: commit.timestamp,
    date: formatIsoDate(commit.timestamp),
    version: commitVersion(commit),
    contentChecksum: contentChecksumOfCommit(commit),
    rootTree: commit.rootTree,
    rootMeta: commit.rootMeta,
    metadata,
  };
}

export const HISTORY_NOT_FETCHED = '<< History beyond this commit not fetched >>';
