/**
 * `larch --version`: the same YAML-ish layout as `ostree --version`, so tools that grep the
 * `Features:` list keep working. The list names what Larch actually implements.
 */

/** Capabilities of this build, in the order they are printed. */
export const FEATURES = [
  'repo-archive',
  'repo-bare',
  'repo-bare-user',
  'repo-bare-user-only',
  'collections',
  'summary',
  'prune',
  'fsck',
  'json-output',
] as const;

/** The `--version` text: name, version and the Features list, ostree's layout. */
export function versionText(version: string): string {
  const lines = ['larch:', ` Version: '${version}'`, ' Features:', ...FEATURES.map((f) => `  - ${f}`)];
  return `${lines.join('\n')}\n`;
}
