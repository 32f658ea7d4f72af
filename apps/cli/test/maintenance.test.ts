/**
 * fsck, prune, summary and config: ostree's output lines and exit statuses, on repositories
 * written by larch and by ostree.
 */
import { cp, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  expectOneErrorLine,
  larch,
  makeChangedTree,
  makeSpecTree,
  ok,
  ostree,
  requireOstree,
  RUN_INTEROP,
  scratch,
  SPEC_COMMIT,
  SPEC_COMMIT_ARGS,
} from './helpers.js';

let dir: string;
let cleanup: () => Promise<void>;
let tree: string;
let tree2: string;

beforeAll(async () => {
  ({ dir, cleanup } = await scratch());
  tree = await makeSpecTree(join(dir, 'tree'));
  tree2 = await makeChangedTree(join(dir, 'tree2'));
});
afterAll(async () => cleanup());

/** A repo with three commits on `t` (timestamps 1000, 2000, 3000). */
function historyRepo(name: string): string {
  const repo = join(dir, name);
  ok(larch(['init', `--repo=${repo}`, '--mode=archive']));
  ok(larch(['commit', `--repo=${repo}`, '-b', 't', '-s', 'one', '--timestamp=@1000', tree]));
  ok(larch(['commit', `--repo=${repo}`, '-b', 't', '-s', 'two', '--timestamp=@2000', tree2]));
  ok(larch(['commit', `--repo=${repo}`, '-b', 't', '-s', 'three', '--timestamp=@3000', tree]));
  return repo;
}

async function objectFile(repo: string, checksum: string, ext: string): Promise<string> {
  const d = join(repo, 'objects', checksum.slice(0, 2));
  const name = (await readdir(d)).find((f) => f === `${checksum.slice(2)}.${ext}`);
  if (!name) throw new Error(`no ${checksum}.${ext}`);
  return join(d, name);
}

describe('larch fsck', () => {
  it('reports a clean repository in ostree layout', () => {
    const repo = historyRepo('fsck-clean');
    expect(ok(larch(['fsck', `--repo=${repo}`]))).toBe(
      [
        'Validating refs...',
        'Validating refs in collections...',
        'Enumerating commits...',
        'Verifying content integrity of 3 commit objects...',
        'fsck objects (1/15) 6%',
        'fsck objects (15/15) 100%',
        'object fsck of 3 commits completed successfully - no errors found.',
        '',
      ].join('\n'),
    );
    // -q keeps the progress lines, as ostree's does.
    expect(ok(larch(['fsck', `--repo=${repo}`, '-q']))).toBe(
      'fsck objects (1/15) 6%\nfsck objects (15/15) 100%\nobject fsck of 3 commits completed successfully - no errors found.\n',
    );
    const json = JSON.parse(ok(larch(['fsck', `--repo=${repo}`, '--json'])));
    expect(json.commits).toBe(3);
    expect(json.errors).toEqual([]);
  });

  it('fails with exit 1 on a corrupted object, naming it', async () => {
    const repo = historyRepo('fsck-bad');
    const hello = '44f778e59f0a4748d6b0c90a47347212a231c4ad1e8f7ea5c5dffc7749153a6b';
    await writeFile(await objectFile(repo, hello, 'filez'), 'garbage');
    const r = larch(['fsck', `--repo=${repo}`]);
    expect(r.code).toBe(1);
    expect(r.stderr.split('\n').filter(Boolean)).toHaveLength(1);
    expect(r.stderr).toMatch(/^error: .*44f778e5/);
    const all = larch(['fsck', `--repo=${repo}`, '--all', '-q']);
    expect(all.code).toBe(1);
    const lines = all.stderr.split('\n').filter(Boolean);
    expect(lines[lines.length - 1]).toBe('error: Repository corruption encountered');
    expect(lines.slice(0, -1).some((l) => l.includes(hello))).toBe(true);
    const json = larch(['fsck', `--repo=${repo}`, '--json']);
    expect(json.code).toBe(1);
    expect(JSON.parse(json.stdout).errors[0]).toMatchObject({ checksum: hello, code: 'OBJECT_CORRUPTED' });
  });
});

describe('larch fsck --delete', () => {
  it('removes the corrupted object and marks its commits partial', async () => {
    const repo = historyRepo('fsck-delete');
    const hello = '44f778e59f0a4748d6b0c90a47347212a231c4ad1e8f7ea5c5dffc7749153a6b';
    const file = await objectFile(repo, hello, 'filez');
    await writeFile(file, 'garbage');
    const r = larch(['fsck', `--repo=${repo}`, '--delete']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^Marking commit as partial: [0-9a-f]{64}$/m);
    expect((await readdir(join(repo, 'objects', hello.slice(0, 2)))).some((f) => f.startsWith(hello.slice(2)))).toBe(false);
    // As ostree: commits marked partial by fsck fail every later fsck until they are pulled again.
    const again = larch(['fsck', `--repo=${repo}`]);
    expect(again.code).toBe(1);
    expect(again.stdout).toMatch(/^2 partial commits not verified$/m);
    expect(again.stderr.trim()).toBe('error: 2 partial commits from fsck-detected corruption');
  });
});

describe('larch prune', () => {
  it('prints ostree lines for nothing to do, a dry run and a deletion', () => {
    const repo = historyRepo('prune');
    const r = `--repo=${repo}`;
    expect(ok(larch(['prune', r]))).toMatch(/^Total objects: \d+\nNo unreachable objects\n$/);
    const dry = ok(larch(['prune', r, '--refs-only', '--depth=0', '--no-prune']));
    expect(dry).toMatch(/^Total objects: \d+\nWould delete: \d+ objects, freeing \d+ bytes\n$/);
    expect(ok(larch(['log', r, 't']))).toContain('    one');
    const del = ok(larch(['prune', r, '--refs-only', '--depth=0']));
    expect(del).toMatch(/^Total objects: \d+\nDeleted \d+ objects, \d+ bytes freed\n$/);
    expect(ok(larch(['log', r, 't']))).toContain('<< History beyond this commit not fetched >>\n');
    const log = JSON.parse(ok(larch(['log', r, '--json', 't'])));
    expect(log.commits).toHaveLength(1);
    expect(log.missingParent).toBe(log.commits[0].parent);
    const json = JSON.parse(ok(larch(['prune', r, '--json'])));
    expect(json).toMatchObject({ deleted: 0, bytesFreed: 0, dryRun: false });
  });

  it('validates its options', () => {
    const repo = historyRepo('prune-err');
    const r = `--repo=${repo}`;
    expect(expectOneErrorLine(larch(['prune', r, '--depth=abc']))).toBe('Cannot parse integer value “abc” for --depth');
    expect(expectOneErrorLine(larch(['prune', r, '--keep-younger-than=bogus']))).toBe("Could not parse 'bogus'");
    expectOneErrorLine(larch(['prune', r, '--delete-commit=t']));
  });
});

describe('larch summary', () => {
  it('updates and views the summary', () => {
    const repo = join(dir, 'sum');
    ok(larch(['init', `--repo=${repo}`, '--mode=archive']));
    ok(larch(['commit', `--repo=${repo}`, ...SPEC_COMMIT_ARGS, tree]));
    ok(larch(['summary', `--repo=${repo}`, '-u', "--add-metadata=foo='bar'"]));
    const view = ok(larch(['summary', `--repo=${repo}`, '--view']));
    expect(view.startsWith(`* test\n    Latest Commit (142 bytes):\n      ${SPEC_COMMIT}\n`)).toBe(true);
    // per-ref metadata lines come in the summary's own key order
    expect(view).toContain('\n    Version (ostree.commit.version): 1.0\n');
    expect(view).toContain('\n    Timestamp (ostree.commit.timestamp): 2020-01-01T00:00:00+00\n');
    expect(view).toContain('Repository Mode (ostree.summary.mode): archive-z2\n');
    expect(view).toContain("foo: 'bar'\n");
    const json = JSON.parse(ok(larch(['summary', `--repo=${repo}`, '-v', '--json'])));
    expect(json.refs).toEqual([
      { name: 'test', checksum: SPEC_COMMIT, size: 142, timestamp: 1577836800, date: '2020-01-01T00:00:00Z', version: '1.0' },
    ]);
    expect(json.metadata['ostree.summary.mode']).toEqual({ type: 's', value: 'archive-z2' });
    expect(json.metadata.foo).toEqual({ type: 's', value: 'bar' });
  });

  it('fails without an action, on bad metadata and without a summary file', () => {
    const repo = join(dir, 'sum-err');
    ok(larch(['init', `--repo=${repo}`, '--mode=archive']));
    expect(expectOneErrorLine(larch(['summary', `--repo=${repo}`]))).toBe('No option specified; use -u to update summary');
    expect(expectOneErrorLine(larch(['summary', `--repo=${repo}`, '-u', '--add-metadata=foo']))).toBe("Missing '=' in KEY=VALUE metadata 'foo'");
    expect(expectOneErrorLine(larch(['summary', `--repo=${repo}`, '--view']))).toBe('openat(summary): No such file or directory');
  });
});

describe('larch config', () => {
  it('gets, sets and unsets keys, including quoted remote groups', async () => {
    const repo = join(dir, 'cfg');
    ok(larch(['init', `--repo=${repo}`, '--mode=archive']));
    const r = `--repo=${repo}`;
    expect(ok(larch(['config', r, 'get', 'core.mode']))).toBe('archive-z2\n');
    ok(larch(['config', r, 'set', 'core.foo', 'bar']));
    ok(larch(['config', r, 'set', 'remote "a.b".url', 'http://example.com/repo']));
    expect(ok(larch(['config', r, 'get', 'remote "a.b".url']))).toBe('http://example.com/repo\n');
    expect(ok(larch(['config', r, 'get', '--group=core', 'foo']))).toBe('bar\n');
    expect(JSON.parse(ok(larch(['config', r, '--json', 'get', 'core.foo'])))).toEqual({ group: 'core', key: 'foo', value: 'bar' });
    ok(larch(['config', r, 'unset', 'core.foo']));
    const text = await readFile(join(repo, 'config'), 'utf8');
    expect(text).not.toContain('foo=');
    expect(text).toContain('[remote "a.b"]\nurl=http://example.com/repo\n');
  });

  it('fails with ostree wording', () => {
    const repo = join(dir, 'cfg-err');
    ok(larch(['init', `--repo=${repo}`, '--mode=archive']));
    const r = `--repo=${repo}`;
    expect(expectOneErrorLine(larch(['config', r, 'get', 'core.nosuch']))).toBe('Key file does not have key “nosuch” in group “core”');
    expect(expectOneErrorLine(larch(['config', r, 'get', 'nosuch.key']))).toBe('Key file does not have group “nosuch”');
    expect(expectOneErrorLine(larch(['config', r, 'get', 'nodot']))).toBe('Key must be of the form "sectionname.keyname"');
    expect(expectOneErrorLine(larch(['config', r]))).toBe('OPERATION must be specified');
    expect(expectOneErrorLine(larch(['config', r, 'bogus', 'x']))).toBe('Unknown operation bogus');
  });
});

describe.skipIf(!RUN_INTEROP)('maintenance verbs (interop)', () => {
  beforeAll(requireOstree);

  it('fsck and prune print what ostree prints on identical repositories', async () => {
    const a = historyRepo('pa');
    const b = join(dir, 'pb');
    await cp(a, b, { recursive: true });
    // Progress lines included: ostree prints them to stdout whether or not it is a terminal.
    expect(ok(larch(['fsck', `--repo=${a}`]))).toBe(ok(ostree(['fsck', `--repo=${b}`])));
    for (const args of [['--no-prune', '--refs-only', '--depth=0'], ['--refs-only', '--depth=1'], ['--keep-younger-than=@1500', '--refs-only'], []]) {
      expect(ok(larch(['prune', `--repo=${a}`, ...args]))).toBe(ok(ostree(['prune', `--repo=${b}`, ...args])));
    }
    expect(ok(larch(['log', `--repo=${a}`, 't']))).toBe(ok(ostree(['log', `--repo=${b}`, 't'])));
    expect(ok(ostree(['fsck', `--repo=${a}`]))).toContain('no errors found');
  });

  it('fsck fails where ostree fails', async () => {
    const repo = historyRepo('fsck-interop');
    const hello = '44f778e59f0a4748d6b0c90a47347212a231c4ad1e8f7ea5c5dffc7749153a6b';
    await writeFile(await objectFile(repo, hello, 'filez'), 'garbage');
    expect(larch(['fsck', `--repo=${repo}`]).code).toBe(ostree(['fsck', `--repo=${repo}`]).code);
  });

  it('summary --view matches ostree on a summary written by ostree, and ostree reads ours', () => {
    const repo = historyRepo('sum-interop');
    ok(larch(['commit', `--repo=${repo}`, ...SPEC_COMMIT_ARGS, tree]));
    ok(ostree(['summary', `--repo=${repo}`, '-u', '--add-metadata=foo=<uint32 5>', "--add-metadata=bar='x'"]));
    expect(ok(larch(['summary', `--repo=${repo}`, '--view']))).toBe(ok(ostree(['summary', `--repo=${repo}`, '--view'])));
    expect(ok(larch(['summary', `--repo=${repo}`, '--view', '--raw']))).toBe(ok(ostree(['summary', `--repo=${repo}`, '--view', '--raw'])));
    ok(larch(['summary', `--repo=${repo}`, '-u']));
    expect(ok(larch(['summary', `--repo=${repo}`, '--view']))).toBe(ok(ostree(['summary', `--repo=${repo}`, '--view'])));
  });

  it('summary --view labels collection refs as ostree does', () => {
    const repo = join(dir, 'sum-coll');
    ok(ostree(['init', `--repo=${repo}`, '--mode=archive', '--collection-id=org.example.Test']));
    ok(ostree(['commit', `--repo=${repo}`, '-b', 'a/b', '--add-metadata-string=version=2.5', '--timestamp=@1000', tree]));
    ok(ostree(['summary', `--repo=${repo}`, '-u']));
    const view = ok(larch(['summary', `--repo=${repo}`, '--view']));
    expect(view).toContain('* (org.example.Test, a/b)\n');
    expect(view).toContain('Collection ID (ostree.summary.collection-id): org.example.Test\n');
    expect(view).toBe(ok(ostree(['summary', `--repo=${repo}`, '--view'])));
    expect(ok(larch(['summary', `--repo=${repo}`, '--view', '--raw']))).toBe(ok(ostree(['summary', `--repo=${repo}`, '--view', '--raw'])));
  });

  it('config get/set agree with ostree', () => {
    const repo = join(dir, 'cfg-interop');
    ok(larch(['init', `--repo=${repo}`, '--mode=bare-user']));
    ok(larch(['config', `--repo=${repo}`, 'set', 'remote "o".url', 'http://x/']));
    expect(ok(ostree(['config', `--repo=${repo}`, 'get', 'remote "o".url']))).toBe('http://x/\n');
    ok(ostree(['config', `--repo=${repo}`, 'set', 'core.foo', 'a b']));
    expect(ok(larch(['config', `--repo=${repo}`, 'get', 'core.foo']))).toBe('a b\n');
    const o = ostree(['config', `--repo=${repo}`, 'get', 'core.nosuch']);
    const l = larch(['config', `--repo=${repo}`, 'get', 'core.nosuch']);
    expect(l.stderr).toBe(o.stderr);
    expect(l.code).toBe(o.code);
  });
});
