/**
 * The same fixture tree committed by `larch commit` and by the real
 * `ostree commit` (same subject, body, timestamp, owner and metadata) must
 * give the same commit checksum; `ostree fsck` must accept what larch wrote;
 * checkouts across the two tools must reproduce the input tree.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  FIXTURE_KINDS,
  compareTrees,
  formatDifferences,
  interopDescribe,
  larchOk,
  makeFixtureTree,
  ostreeOk,
  requireOstree,
  tmpDirs,
  type FixtureKind,
  type TmpDir,
} from '@larch/test-fixtures';
import { commitWith, initLarch, initOstree, lazy, type Mode } from './helpers.js';

const describeInterop = interopDescribe(describe);
const tmp = tmpDirs('larch-interop-');
afterAll(tmp.cleanupAll);

/** What a user-mode (-U) checkout drops: setuid and setgid on files. */
const USER_MODE_FILE_MASK = 0o1777;

function suite(kind: FixtureKind, mode: Mode, canonical: boolean, large = false) {
  let dir: TmpDir;
  const tree = () => dir.join('tree');
  const larchRepo = () => dir.join('larch-repo');
  const ostreeRepo = () => dir.join('ostree-repo');
  beforeAll(async () => {
    requireOstree();
    dir = await tmp.make();
    await makeFixtureTree(tree(), kind, { canonical, large });
  });
  afterAll(async () => dir?.cleanup());

  const larchCommit = lazy(async () => {
    await initLarch(larchRepo(), mode);
    return commitWith('larch', larchRepo(), tree(), 'fixture');
  });
  const ostreeCommit = lazy(async () => {
    await initOstree(ostreeRepo(), mode);
    return commitWith('ostree', ostreeRepo(), tree(), 'fixture');
  });

  it('larch commit gives the same checksum as ostree commit', async () => {
    const [ours, theirs] = await Promise.all([larchCommit(), ostreeCommit()]);
    expect(ours).toBe(theirs);
  });

  it('ostree fsck accepts the repo larch wrote', async () => {
    await larchCommit();
    const r = await ostreeOk(['fsck', `--repo=${larchRepo()}`]);
    expect(r.stdout).toMatch(/no errors found/);
  });

  it('ostree checkout of the larch commit reproduces the input tree', async () => {
    const c = await larchCommit();
    const out = dir.join(`ostree-co-${c.slice(0, 8)}`);
    await ostreeOk(['checkout', `--repo=${larchRepo()}`, c, out]);
    const diffs = await compareTrees(tree(), out, { owners: true });
    expect(formatDifferences(diffs)).toBe('');
  });

  it('larch checkout of the ostree commit reproduces the input tree', async () => {
    const c = await ostreeCommit();
    const out = dir.join('larch-co');
    await larchOk(['checkout', `--repo=${ostreeRepo()}`, c, out]);
    const diffs = await compareTrees(tree(), out, { owners: true });
    expect(formatDifferences(diffs)).toBe('');
  });

  it('ostree checkout -U of the larch commit reproduces the tree in user mode', async () => {
    const c = await larchCommit();
    const out = dir.join('ostree-co-U');
    await ostreeOk(['checkout', '-U', `--repo=${larchRepo()}`, c, out]);
    const diffs = await compareTrees(tree(), out, { fileModeMask: USER_MODE_FILE_MASK });
    expect(formatDifferences(diffs)).toBe('');
  });

  it('larch checkout -U of the ostree commit matches the input and ostree -U exactly', async () => {
    const c = await ostreeCommit();
    const ours = dir.join('larch-co-U');
    const theirs = dir.join('ostree-co-U-ref');
    await larchOk(['checkout', '-U', `--repo=${ostreeRepo()}`, c, ours]);
    await ostreeOk(['checkout', '-U', `--repo=${ostreeRepo()}`, c, theirs]);
    expect(formatDifferences(await compareTrees(tree(), ours, { fileModeMask: USER_MODE_FILE_MASK }))).toBe('');
    expect(formatDifferences(await compareTrees(theirs, ours))).toBe('');
  });
}

describeInterop('interop: commit (archive)', () => {
  for (const kind of FIXTURE_KINDS) describe(kind, () => suite(kind, 'archive', false));
});

describeInterop('interop: commit (bare-user)', () => {
  for (const kind of FIXTURE_KINDS) describe(kind, () => suite(kind, 'bare-user', false));
});

describeInterop('interop: commit (bare-user-only, canonical variants)', () => {
  for (const kind of FIXTURE_KINDS) describe(kind, () => suite(kind, 'bare-user-only', true));
});

describeInterop('slow interop: commit with a file > 64 MiB', () => {
  describe('archive', () => suite('large-file', 'archive', false, true));
  describe('bare-user', () => suite('large-file', 'bare-user', false, true));
});
