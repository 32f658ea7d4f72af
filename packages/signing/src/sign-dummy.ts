/**
 * OSTree's `dummy` signature engine, for tests only (as in ostree, it refuses to work unless
 * `OSTREE_DUMMY_SIGN_ENABLED=1`): the "signature" is the secret key's text itself, stored under
 * `ostree.sign.dummy` as `aay`, and it verifies when it equals the public key's text. It lets
 * tests exchange signed objects with an `ostree` built without an ed25519 engine (Debian's).
 */
import { SigningError } from './errors.js';

export const DUMMY_SIGNATURES_KEY = 'ostree.sign.dummy';

function checkEnabled(): void {
  if (process.env.OSTREE_DUMMY_SIGN_ENABLED !== '1') throw new SigningError('CONFIG_INVALID', 'dummy signature type is only for ostree testing');
}

/** Signs with a dummy key: the signature is the key's bytes. */
export class DummySigner {
  readonly metadataKey = DUMMY_SIGNATURES_KEY;
  /** For messages: dummy keys have no identity. */
  readonly keyId = 'dummy';
  constructor(private readonly key: string) {
    checkEnabled();
  }
  async sign(): Promise<Uint8Array> {
    return new TextEncoder().encode(this.key);
  }
}

/** Accepts a signature equal to the key (ostree keeps only the last key it is given). */
export class DummyVerifier {
  readonly metadataKey = DUMMY_SIGNATURES_KEY;
  constructor(private readonly key: string) {
    checkEnabled();
  }
  async verify(_data: Uint8Array, signatures: readonly Uint8Array[]): Promise<Array<{ valid: boolean; reason: string | null }>> {
    const text = new TextDecoder();
    return signatures.map((s) => {
      const valid = text.decode(s) === this.key;
      return { valid, reason: valid ? null : `signature: dummy: incorrect signatures found: ${signatures.length}` };
    });
  }
}
