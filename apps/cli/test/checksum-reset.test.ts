/** `larch checksum` and `larch reset`, side by side with the real ostree. */
import { spawnSync } from 'node:child_process';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOneErrorLine, larch, ok, ostree, RUN_INTEROP, requireOstree, scratch } from './helpers.js';

let dir: string;
let cleanup: () => Promise<void>;

beforeAll(async () => {
  ({ dir, cleanup } = await scratch('larch-cli-checksum-'));
});
afterAll(async () => {
  await cleanup();
});

describe.runIf(RUN_INTEROP)('larch checksum and reset with the real ostree', () => {
  beforeAll(() => requireOstree());

  it('checksum gives ostree\'s checksum for a file, a symlink, a directory, with and without xattrs', () => {
    const t = join(dir, 't');
    mkdirSync(join(t, 'sub'), { recursive: true });
    writeFileSync(join(t, 'file'), 'hello\n'.repeat(50_000));
    writeFileSync(join(t, 'empty'), '');
    symlinkSync('file', join(t, 'link'));
    writeFileSync(join(t, 'tagged'), 'x\n');
    const attr = spawnSync('setfattr', ['-n', 'user.larch', '-v', 'yes', join(t, 'tagged')], { encoding: 'utf8' });
    expect(attr.status, attr.stderr).toBe(0);
    for (const p of ['file', 'empty', 'link', 'sub', 'tagged', '.']) {
      expect(ok(larch(['checksum', join(t, p)])), p).toBe(ok(ostree(['checksum', join(t, p)])));
      expect(ok(larch(['checksum', '--ignore-xattrs', join(t, p)])), p).toBe(ok(ostree(['checksum', '--ignore-xattrs', join(t, p)])));
    }
    expect(ok(larch(['checksum', join(t, 'tagged')]))).not.toBe(ok(larch(['checksum', '--ignore-xattrs', join(t, 'tagged')])));
    expect(expectOneErrorLine(larch(['checksum', join(dir, 'nope')]))).toBe(`Error when getting information for file “${join(dir, 'nope')}”: No such file or directory`);
  });

  it('reset moves a branch back to an earlier commit; ostree sees it; bad refs and commits are refused', () => {
    const repo = join(dir, 'repo');
    ok(larch(['init', `--repo=${repo}`, '--mode=archive']));
    const t = join(dir, 'rt');
    mkdirSync(t);
    writeFileSync(join(t, 'a'), '1\n');
    const c1 = ok(larch(['commit', `--repo=${repo}`, '-b', 'main', '-s', 'one', `--tree=dir=${t}`])).trim();
    writeFileSync(join(t, 'a'), '2\n');
    const c2 = ok(larch(['commit', `--repo=${repo}`, '-b', 'main', '-s', 'two', `--tree=dir=${t}`])).trim();
    expect(ok(ostree(['rev-parse', `--repo=${repo}`, 'main'])).trim()).toBe(c2);
    expect(ok(larch(['reset', `--repo=${repo}`, 'main', 'main^']))).toBe('');
    expect(ok(ostree(['rev-parse', `--repo=${repo}`, 'main'])).trim()).toBe(c1);
    ok(larch(['reset', `--repo=${repo}`, 'main', c2]));
    expect(ok(larch(['rev-parse', `--repo=${repo}`, 'main'])).trim()).toBe(c2);
    expect(expectOneErrorLine(larch(['reset', `--repo=${repo}`, 'other', c1]))).toBe("Invalid ref 'other'");
    expect(expectOneErrorLine(larch(['reset', `--repo=${repo}`, 'main', '0'.repeat(64)]))).toContain(`${'0'.repeat(64)}.commit`);
    expect(ok(larch(['rev-parse', `--repo=${repo}`, 'main'])).trim()).toBe(c2);
  });
});
