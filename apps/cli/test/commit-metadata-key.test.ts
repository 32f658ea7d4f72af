/**
 * `commit`'s KEY=VALUE metadata options side by side with the real `ostree commit`: an empty key
 * in the commit's metadata is `Empty metadata key` (test-basic-user-only "rejected invalid
 * metadata"), a missing `=` is `Missing '=' in KEY=VALUE metadata '…'`, and an empty value is fine.
 */
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { larch, ostree, requireOstree, RUN_INTEROP, scratch, type RunResult } from './helpers.js';

type Tool = 'larch' | 'ostree';
let dir: string;
let cleanup: () => Promise<void>;
let files: string;
let n = 0;

function commit(tool: Tool, extra: string[]): { r: RunResult; refs: string } {
  const cmd = tool === 'larch' ? larch : ostree;
  const repo = join(dir, `repo-${tool}-${n++}`);
  cmd(['init', `--repo=${repo}`, '--mode=archive']);
  const r = cmd([`--repo=${repo}`, 'commit', '-b', 'metadata', `--tree=dir=${files}`, ...extra]);
  return { r, refs: cmd([`--repo=${repo}`, 'refs']).stdout };
}

beforeAll(async () => {
  requireOstree();
  ({ dir, cleanup } = await scratch('larch-commit-metadata-key-'));
  files = join(dir, 'files');
  await fsp.mkdir(files);
});

afterAll(async () => {
  await cleanup?.();
});

describe.runIf(RUN_INTEROP)('commit metadata keys, as ostree commit', () => {
  it.each([
    [['--add-metadata-string==FOO'], 'error: Empty metadata key\n'],
    [["--add-metadata=='x'"], 'error: Empty metadata key\n'],
    [['--add-metadata-string=FOO'], "error: Missing '=' in KEY=VALUE metadata 'FOO'\n"],
    [['--add-metadata=FOO'], "error: Missing '=' in KEY=VALUE metadata 'FOO'\n"],
    [['--add-detached-metadata-string=FOO'], "error: Missing '=' in KEY=VALUE metadata 'FOO'\n"],
    // Every option is parsed before the empty key is refused.
    [['--add-metadata-string==FOO', '--add-detached-metadata-string=BAR'], "error: Missing '=' in KEY=VALUE metadata 'BAR'\n"],
  ])('%j fails with %j and writes no ref', (extra, message) => {
    for (const tool of ['larch', 'ostree'] as const) {
      const { r, refs } = commit(tool, extra);
      expect({ tool, code: r.code, stderr: r.stderr, refs }).toEqual({ tool, code: 1, stderr: message, refs: '' });
    }
  });

  it('an empty value is accepted', () => {
    for (const tool of ['larch', 'ostree'] as const) {
      const { r, refs } = commit(tool, ['--add-metadata-string=FOO=']);
      expect({ tool, code: r.code, refs }).toEqual({ tool, code: 0, refs: 'metadata\n' });
    }
  });
});
