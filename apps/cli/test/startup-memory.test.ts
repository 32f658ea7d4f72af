/**
 * What `larch` loads before it runs a verb: every verb pays for it, and the walks that must stay
 * within 64 MB of RSS (checkout, ls -R) start from it. Printing text must not pull in the signing
 * or repository libraries (a locale lookup once loaded @larch/signing and took 13 MB from them).
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CLI } from './helpers.js';

const MB = 1024 * 1024;

/** Peak RSS in bytes of one run, from GNU time. */
function peak(args: string[]): number {
  const r = spawnSync('/usr/bin/time', ['-f', '%M', process.execPath, ...args], { encoding: 'utf8' });
  expect(r.status, r.stderr).toBe(0);
  return Number(r.stderr.trim().split('\n').pop()) * 1024;
}

describe('start-up memory', () => {
  it('larch --version costs at most 20 MB of RSS more than node itself', () => {
    if (!existsSync('/usr/bin/time')) throw new Error('GNU time is needed: apt-get install -y time');
    // The smallest of three runs of each, so a busy machine's noise does not decide.
    const node = Math.min(...[0, 1, 2].map(() => peak(['-e', '0'])));
    const larch = Math.min(...[0, 1, 2].map(() => peak([CLI, '--version'])));
    console.log(`start-up RSS: node ${Math.round(node / MB)} MB, larch --version ${Math.round(larch / MB)} MB`);
    expect(larch - node).toBeLessThanOrEqual(20 * MB);
  });
});
