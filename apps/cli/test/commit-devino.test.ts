/**
 * `commit -I` (`--devino-canonical`) side by side with the real `ostree commit`, as
 * test-basic-user's "commit with -I": a file hard-linked to an object of the repository is taken
 * as that object, so `--owner-uid`/`--owner-gid` do not change it, while with
 * `--link-checkout-speedup` alone they do.
 */
import { promises as fsp } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { larch, ok, ostree, requireOstree, RUN_INTEROP, scratch } from './helpers.js';

type Tool = 'larch' | 'ostree';
let dir: string;
let cleanup: () => Promise<void>;

beforeAll(async () => {
  requireOstree();
  ({ dir, cleanup } = await scratch('larch-commit-devino-'));
  await fsp.mkdir(join(dir, 'files/baz'), { recursive: true });
  await fsp.writeFile(join(dir, 'files/baz/cow'), 'moo\n', { mode: 0o644 });
});

afterAll(async () => {
  await cleanup?.();
});

/** Commit, check out with hard links, recommit with new owners and `flags`; the owner `ls` shows for /baz/cow, and the --table-output. */
function recommit(tool: Tool, flags: string[]): { owner: string; table: string } {
  const cmd = tool === 'larch' ? larch : ostree;
  const repo = join(dir, `repo-${tool}-${flags.join('')}`);
  const co = `${repo}-co`;
  ok(cmd(['init', `--repo=${repo}`, '--mode=bare-user']));
  ok(cmd([`--repo=${repo}`, 'commit', '-b', 'base', `--tree=dir=${join(dir, 'files')}`]));
  ok(cmd([`--repo=${repo}`, 'checkout', '-H', '-U', 'base', co]));
  const { uid, gid } = userInfo();
  const table = ok(cmd([`--repo=${repo}`, 'commit', `--owner-uid=${uid + 1}`, `--owner-gid=${gid + 1}`, ...flags, '-b', 'test', '--table-output', `--tree=dir=${co}`]));
  const ls = ok(cmd([`--repo=${repo}`, 'ls', 'test', '/baz/cow']));
  const [, u, g] = ls.trim().split(/\s+/);
  return { owner: `${u} ${g}`, table };
}

describe.runIf(RUN_INTEROP)('commit -I, as ostree commit', () => {
  const { uid, gid } = userInfo();

  it('keeps the owner of the object a hard link points to; --link-checkout-speedup applies --owner-uid', () => {
    for (const tool of ['larch', 'ostree'] as const) {
      const devino = recommit(tool, ['-I']);
      expect({ tool, owner: devino.owner }).toEqual({ tool, owner: `${uid} ${gid}` });
      expect(devino.table).toMatch(/Content Cache Hits: [1-9][0-9]*/);
      expect({ tool, owner: recommit(tool, ['--link-checkout-speedup']).owner }).toEqual({ tool, owner: `${uid + 1} ${gid + 1}` });
    }
  });
});
