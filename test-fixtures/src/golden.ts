/**
 * Locates the golden files (test-fixtures/golden) relative to this package,
 * from either src/ (tests) or dist/ (built).
 */
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Absolute path of test-fixtures/golden. */
export function goldenDir(): string {
  return resolve(dirname(fileURLToPath(import.meta.url)), '..', 'golden');
}

/** Absolute path of a file below test-fixtures/golden. */
export function goldenPath(...parts: string[]): string {
  return join(goldenDir(), ...parts);
}
