/**
 * A remote's signature settings as OSTree keeps them in `[remote "NAME"]` of the repo config
 * (spec/pull-and-signing.md section 5), validated with zod, and the verification policies they
 * imply. Values arrive as raw GKeyFile strings (the caller owns config parsing):
 * booleans are GKeyFile's `true`/`false`/`1`/`0`, lists are `;`-separated (`gpgkeypath` takes
 * `;` or `,`, but not both, as OSTree). `sign-verify` is either a boolean ("every sign type we
 * support", i.e. ed25519) or a list of sign types.
 */

import { z } from 'zod';
import { SigningError, sanitize } from './errors.js';
import { loadEd25519Verifier } from './ed25519-keys.js';
import { loadRemoteGpgKeyring, parseGpgKeyPath } from './gpg-keyring.js';
import { GpgVerifier } from './sign-gpg.js';
import type { Verifier, VerifyPolicy } from './sign.js';

/** Sign types (`ostree sign`) this package implements. */
export type SignType = 'ed25519';
const SIGN_TYPES: readonly string[] = ['ed25519'];

export interface RemoteSigningConfig {
  /** `gpg-verify`, default true. */
  gpgVerify: boolean;
  /** `gpg-verify-summary`, default false. */
  gpgVerifySummary: boolean;
  /** `gpgkeypath` entries (keyring files or directories). */
  gpgKeyPath: string[];
  /** `sign-verify`: the sign types required on commits, [] when off. */
  signVerify: SignType[];
  /** `sign-verify-summary`: the sign types required on the summary, [] when off. */
  signVerifySummary: SignType[];
  /** `verification-ed25519-key`: inline base64 public key. */
  ed25519Key: string | null;
  /** `verification-ed25519-file`: path of a file of base64 public keys. */
  ed25519File: string | null;
}

const gkeyBool = (key: string, dflt: boolean) =>
  z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined) return dflt;
      const t = v.trim();
      if (t === 'true' || t === '1') return true;
      if (t === 'false' || t === '0') return false;
      ctx.addIssue({ code: 'custom', message: `Key '${key}' in remote config has value '${sanitize(v, 60)}' which cannot be interpreted as a boolean` });
      return z.NEVER;
    });

const signTypes = (key: string) =>
  z
    .string()
    .optional()
    .transform((v, ctx): SignType[] => {
      if (v === undefined || v.trim() === '' || v.trim() === 'false' || v.trim() === '0') return [];
      if (v.trim() === 'true' || v.trim() === '1') return ['ed25519'];
      const names = v.split(';').map((s) => s.trim()).filter((s) => s !== '');
      for (const n of names) {
        if (!SIGN_TYPES.includes(n)) {
          ctx.addIssue({ code: 'custom', message: `${key}: Unknown signature type '${sanitize(n, 40)}' (supported: ${SIGN_TYPES.join(', ')})` });
          return z.NEVER;
        }
      }
      return [...new Set(names)] as SignType[];
    });

const schema = z.object({
  'gpg-verify': gkeyBool('gpg-verify', true),
  'gpg-verify-summary': gkeyBool('gpg-verify-summary', false),
  gpgkeypath: z.string().optional(),
  'sign-verify': signTypes('sign-verify'),
  'sign-verify-summary': signTypes('sign-verify-summary'),
  'verification-ed25519-key': z.string().trim().min(1).optional(),
  'verification-ed25519-file': z.string().trim().min(1).optional(),
});

/**
 * Validate a remote's raw config keys. Unrelated keys (`url`, `branches`, …) are ignored.
 * Throws CONFIG_INVALID naming the key at fault; a `gpgkeypath` mixing `;` and `,` only when
 * GPG verification is on (OSTree reads the value only then; otherwise it is ignored). Pure.
 */
export function parseRemoteSigningConfig(section: Readonly<Record<string, string>>): RemoteSigningConfig {
  const r = schema.safeParse(section);
  if (!r.success) {
    throw new SigningError('CONFIG_INVALID', r.error.issues.map((i) => i.message).join('; '), { issues: r.error.issues });
  }
  const d = r.data;
  return {
    gpgVerify: d['gpg-verify'],
    gpgVerifySummary: d['gpg-verify-summary'],
    gpgKeyPath: gpgKeyPathOf(d.gpgkeypath, d['gpg-verify'] || d['gpg-verify-summary']),
    signVerify: d['sign-verify'],
    signVerifySummary: d['sign-verify-summary'],
    ed25519Key: d['verification-ed25519-key'] ?? null,
    ed25519File: d['verification-ed25519-file'] ?? null,
  };
}

function gpgKeyPathOf(raw: string | undefined, used: boolean): string[] {
  if (raw === undefined) return [];
  try {
    return parseGpgKeyPath(raw);
  } catch (e) {
    if (used) throw e;
    return [];
  }
}

/**
 * Build the commit and summary verification policies for a remote (null = nothing to verify).
 * GPG keys: `<repoPath>/<remote>.trustedkeys.gpg` and friends (see `loadRemoteGpgKeyring`);
 * ed25519 keys: the remote's inline key and key file, else the well-known locations.
 * Keys are loaded only for the schemes that are enabled. Reads key files; no locks.
 * Throws KEY_NOT_FOUND / KEY_INVALID when an enabled scheme has no usable key.
 */
export async function policiesForRemote(args: {
  config: RemoteSigningConfig;
  repoPath: string;
  remote: string;
  /** Override the well-known ed25519 roots (`--keys-dir`); for tests and relocated systems. */
  ed25519KeysDirs?: string[];
  /** Override `/etc/ostree/remotes.d` and `/usr/share/ostree/trusted.gpg.d`. */
  etcRemotesDir?: string;
  globalGpgDir?: string;
}): Promise<{ commit: VerifyPolicy | null; summary: VerifyPolicy | null }> {
  const c = args.config;
  let gpg: GpgVerifier | undefined;
  const gpgVerifier = async () => {
    gpg ??= new GpgVerifier(
      await loadRemoteGpgKeyring({ repoPath: args.repoPath, remote: args.remote, gpgkeypath: c.gpgKeyPath, etcRemotesDir: args.etcRemotesDir, globalDir: args.globalGpgDir }),
    );
    return gpg;
  };
  let ed: Verifier | undefined;
  const edVerifier = async () => {
    ed ??= await loadEd25519Verifier({
      inline: c.ed25519Key ? [c.ed25519Key] : undefined,
      files: c.ed25519File ? [c.ed25519File] : undefined,
      keysDirs: args.ed25519KeysDirs,
    });
    return ed;
  };
  const build = async (useGpg: boolean, types: SignType[]): Promise<VerifyPolicy | null> => {
    const verifiers: Verifier[] = [];
    if (useGpg) verifiers.push(await gpgVerifier());
    if (types.includes('ed25519')) verifiers.push(await edVerifier());
    return verifiers.length > 0 ? { verifiers } : null;
  };
  return { commit: await build(c.gpgVerify, c.signVerify), summary: await build(c.gpgVerifySummary, c.signVerifySummary) };
}
