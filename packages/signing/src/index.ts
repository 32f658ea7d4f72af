/**
 * @larch/signing — OSTree-compatible signatures over commit and summary bytes: OpenPGP
 * (`ostree.gpgsigs`) verified in-process with OpenPGP.js and made with `gpg` or OpenPGP.js,
 * and ed25519 (`ostree.sign.ed25519`) in `ostree sign`'s key formats. No repository access:
 * callers pass bytes and detached-metadata dictionaries. See spec/pull-and-signing.md section 6.
 */

export { SigningError, isSigningError, type SigningErrorCode } from './errors.js';
export {
  type DetachedMetadata,
  GPG_SIGNATURES_KEY,
  ED25519_SIGNATURES_KEY,
  SIGNATURES_TYPE,
  DETACHED_METADATA_TYPE,
  decodeDetachedMetadata,
  encodeDetachedMetadata,
  getSignatures,
  appendSignature,
  removeSignatures,
} from './detached-metadata.js';
export {
  type SignatureScheme,
  type SignatureReport,
  type VerifyOptions,
  type Signer,
  type Verifier,
  type VerifyPolicy,
  type SchemeResult,
  type VerifyResult,
  MAX_SIGNATURES_PER_SCHEME,
  signDetached,
  verifyDetached,
  assertVerified,
} from './sign.js';
export {
  ED25519_PUBLIC_KEY_BYTES,
  ED25519_SECRET_KEY_BYTES,
  ED25519_SEED_BYTES,
  ED25519_SIGNATURE_BYTES,
  type Ed25519Engine,
  Ed25519PublicKey,
  Ed25519SecretKey,
  generateEd25519Key,
  ed25519Sign,
  ed25519Verify,
  Ed25519Signer,
  Ed25519Verifier,
  type Ed25519VerifierOptions,
} from './sign-ed25519.js';
export {
  MAX_KEY_FILE_SIZE,
  DEFAULT_ED25519_KEY_ROOTS,
  type SkippedKeyLine,
  type ParsedKeys,
  type KeySpec,
  type Ed25519KeySources,
  parseEd25519KeyLines,
  readEd25519KeyFile,
  readEd25519KeyDir,
  readEd25519SecretKeys,
  parseKeySpec,
  keySourcesFromSpecs,
  loadEd25519Verifier,
} from './ed25519-keys.js';
export {
  MAX_KEYRING_SIZE,
  DEFAULT_GLOBAL_GPG_DIR,
  GpgKeyring,
  type RemoteGpgKeySources,
  parseGpgKeyring,
  parseGpgKeyPath,
  globalGpgKeyringDir,
  loadGpgKeyring,
  loadGpgKeyPathEntry,
  loadGpgHomedirKeyring,
  loadGlobalGpgKeyring,
  gpgLookupKeyring,
  collectRemoteGpgKeys,
  loadRemoteGpgKeyring,
} from './gpg-keyring.js';
export {
  MAX_GPG_SIGNATURE_SIZE,
  MAX_PACKETS_PER_SIGNATURE,
  GpgVerifier,
  GpgProgramSigner,
  type GpgProgramSignerOptions,
  OpenPgpSigner,
  findGpgSignatureByKey,
} from './sign-gpg.js';
export { type UserIdParts, parseUserId, mailboxOfUserId, wkdUrls, zbase32 } from './gpg-user-id.js';
export { type GpgKeyInfo, type GpgSubkeyInfo, type GpgUserIdInfo, describeGpgKeys, gpgKeyListText } from './gpg-key-list.js';
export { type SignType, type RemoteSigningConfig, parseRemoteSigningConfig, policiesForRemote } from './remote-config.js';
export { formatCDate, hexOf, describeSignature, signatureBlock, assertPullVerified, type VerifiedObject, type SignatureTextOptions } from './text.js';
export {
  type TimeLocale,
  type DateFormatOptions,
  C_TIME_LOCALE,
  C_UTF8_TIME_LOCALE,
  formatGDateTime,
  formatLocaleDateTime,
  encodeForLocale,
} from './date-format.js';
export { createPullVerifier, type PullVerifierOptions, type PullVerifyContext, type SigningPullVerifier } from './pull-verifier.js';
export { importGpgKeys, remoteKeyringPath, deleteRemoteKeyring, loadRepoGpgKeyring } from './gpg-import.js';
export { importRemoteGpgKeys, deleteRemoteGpgKeyring, repoGpgKeyring, type KeyringRepo, type KeySource, type RepoGpgKeyringOptions } from './repo-keyrings.js';
export { DUMMY_SIGNATURES_KEY, DummySigner, DummyVerifier } from './sign-dummy.js';
export {
  type SignerSpec,
  type SignerOptions,
  type SignerSpecOptions,
  type BuiltSigner,
  wantsSigning,
  checkSignType,
  signerSpecsFromOptions,
  buildSigners,
  signersFromOptions,
  preflightSigners,
  gnupgHome,
  ed25519SecretKeyOf,
  ed25519PublicKeyOf,
  ed25519VerifierFromOptions,
} from './signer-options.js';
