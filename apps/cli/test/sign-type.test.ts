import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { expectOneErrorLine, larch, ok, scratch } from './helpers.js';

let dir: string;
let cleanup: () => Promise<void>;
beforeAll(async () => {
  ({ dir, cleanup } = await scratch('larch-sign-type-'));
});
afterAll(async () => cleanup());

describe('signature types', () => {
  it('refuses a type other than ed25519 with one line naming it', () => {
    const repo = join(dir, 'repo');
    ok(larch(['init', `--repo=${repo}`, '--mode=archive']));
    const a = expectOneErrorLine(larch(['sign', `--repo=${repo}`, '--sign-type=dummy', '0'.repeat(64), 'KEY']));
    expect(a).toMatch(/Unsupported signature type 'dummy'; the supported type is ed25519/);
    const b = expectOneErrorLine(larch(['remote', 'add', `--repo=${repo}`, '--sign-verify=rsa=inline:AAAA', 'origin', 'http://127.0.0.1:1/']));
    expect(b).toMatch(/Unsupported signature type 'rsa' in --sign-verify/);
  });
});
