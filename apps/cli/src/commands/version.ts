/**
 * `larch --version`: the same YAML-ish layout as `ostree --version`, so tools that grep the
 * `Features:` list keep working. The list names what Larch actually implements.
 */

/**
 * Capabilities of this build, in the order they are printed. `gpgme` and `sign-ed25519` are the
 * names ostree prints for GPG and ed25519 signing support, which scripts check for; Larch
 * provides both (OpenPGP.js and the gpg program; node:crypto and @noble/curves).
 */
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
  'gpgme',
  'sign-ed25519',
  'static-deltas',
  'sysroot',
] as const;

/** The `--version` text: name, version and the Features list, ostree's layout. */
export function versionText(version: string): string {
  const lines = ['larch:', ` Version: '${version}'`, ' Features:', ...FEATURES.map((f) => `  - ${f}`)];
  return `${lines.join('\n')}\n`;
}
