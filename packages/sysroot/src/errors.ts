/**
 * Errors of the sysroot package. The workspace has one error class, core-store's `LarchError`;
 * sysroot failures use its codes and put the finer reason in `data.reason`, so callers can
 * branch on it without parsing messages. Messages follow `ostree admin`'s wording.
 */
import { LarchError, type LarchErrorCode } from '@larch/core-store';

/** Finer reasons a sysroot operation fails, carried in `LarchError.data.reason`. */
export type SysrootReason =
  | 'not-a-sysroot'
  | 'bad-bootversion'
  | 'bad-boot-entry'
  | 'no-stateroot'
  | 'stateroot-exists'
  | 'no-kernel'
  | 'etc-conflict'
  | 'bad-index'
  | 'booted'
  | 'not-booted'
  | 'bootloader'
  | 'bad-karg'
  | 'locked'
  | 'no-origin'
  | 'no-deployment'
  | 'downgrade'
  | 'unlocked'
  | 'bad-origin';

export function sysrootError(code: LarchErrorCode, reason: SysrootReason, message: string, data: Record<string, unknown> = {}, cause?: unknown): LarchError {
  return new LarchError(code, message, { reason, ...data }, cause !== undefined ? { cause } : undefined);
}

export { LarchError };
