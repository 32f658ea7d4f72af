/**
 * log, show, ls, cat, diff, rev-parse: output checked for shape on a larch-made repository, and
 * compared byte for byte with the real ostree on the same repository.
 */
import { spawnSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CLI,
  expectOneErrorLine,
  larch,
  larchBytes,
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
let repo: string;
let c1: string;
let c2: string;

beforeAll(async () => {
  ({ dir, cleanup } = await scratch());
  const tree = await makeSpecTree(join(dir, 'tree'));
  const tree2 = await makeChangedTree(join(dir, 'tree2'));
  repo = join(dir, 'repo');
  ok(larch(['init', `--repo=${repo}`, '--mode=archive']));
  c1 = ok(larch(['commit', `--repo=${repo}`, ...SPEC_COMMIT_ARGS, tree])).trim();
  c2 = ok(
    larch(['commit', `--repo=${repo}`, '-b', 'test', '-s', 'second', '-m', 'multi\n\nline\n', '--timestamp=@1600000000', tree2]),
  ).trim();
});
afterAll(async () => cleanup());

describe('larch log / show', () => {
  it('prints the ostree commit layout', () => {
    expect(c1).toBe(SPEC_COMMIT);
    const out = ok(larch(['show', `--repo=${repo}`, 'test^']));
    expect(out).toBe(
      [
        `commit ${SPEC_COMMIT}`,
        'ContentChecksum:  dd1d7bfdd287c531233b7012411b077932b92edf29114bc048e3acf70b867702',
        'Date:  2020-01-01 00:00:00 +0000',
        'Version: 1.0',
        '',
        '    subj',
        '',
        '    body',
        '',
        '',
      ].join('\n'),
    );
  });

  it('walks the history newest first', () => {
    const out = ok(larch(['log', `--repo=${repo}`, 'test']));
    expect(out.startsWith(`commit ${c2}\nParent:  ${c1}\n`)).toBe(true);
    expect(out).toContain('    multi\n    \n    line\n');
    expect(out.indexOf(`commit ${c1}`)).toBeGreaterThan(0);
    expect(out).not.toContain('History beyond');
  });

  it('gives the documented JSON shapes', () => {
    const log = JSON.parse(ok(larch(['log', `--repo=${repo}`, '--json', 'test'])));
    expect(log.missingParent).toBeNull();
    expect(log.commits.map((c: { checksum: string }) => c.checksum)).toEqual([c2, c1]);
    const show = JSON.parse(ok(larch(['show', `--repo=${repo}`, '--json', c1])));
    expect(show).toEqual({
      checksum: c1,
      parent: null,
      subject: 'subj',
      body: 'body',
      timestamp: 1577836800,
      date: '2020-01-01T00:00:00Z',
      version: '1.0',
      contentChecksum: 'dd1d7bfdd287c531233b7012411b077932b92edf29114bc048e3acf70b867702',
      rootTree: '71bb55e6c5c63ed91c8cdb1e7637389c9490c5b6badb64485e36dac1a42fa17c',
      rootMeta: '446a0ef11b7cc167f3b603e585c7eeeeb675faa412d5ec73f62988eb0b6c5488',
      metadata: { version: { type: 's', value: '1.0' }, 'ostree.ref-binding': { type: 'as', value: ['test'] } },
    });
    const key = JSON.parse(ok(larch(['show', `--repo=${repo}`, '--json', '--print-metadata-key=version', c1])));
    expect(key).toEqual({ key: 'version', type: 's', value: '1.0', text: "'1.0'" });
  });

  it('prints one metadata value as GVariant text', () => {
    expect(ok(larch(['show', `--repo=${repo}`, '--print-metadata-key=version', c1]))).toBe("'1.0'\n");
    expect(ok(larch(['show', `--repo=${repo}`, '--print-metadata-key=ostree.ref-binding', c1]))).toBe("['test']\n");
    expect(expectOneErrorLine(larch(['show', `--repo=${repo}`, '--print-metadata-key=nosuch', c1]))).toBe("No such metadata key 'nosuch'");
  });

  it('fails on unknown refs with ostree wording', () => {
    expect(expectOneErrorLine(larch(['log', `--repo=${repo}`, 'nosuch']))).toBe("Refspec 'nosuch' not found");
    expect(expectOneErrorLine(larch(['show', `--repo=${repo}`, 'nosuch']))).toBe("Refspec 'nosuch' not found");
    expect(expectOneErrorLine(larch(['show', `--repo=${repo}`]))).toMatch(/missing required argument/i);
  });
});

describe('larch ls / cat / diff / rev-parse', () => {
  it('lists with ostree columns', () => {
    expect(ok(larch(['ls', `--repo=${repo}`, '-R', c1]))).toBe(
      [
        'd00755 0 0      0 /',
        '-00644 0 0      6 /hello.txt',
        'l00777 0 0      0 /link -> hello.txt',
        'd00755 0 0      0 /sub',
        '-00644 0 0      0 /sub/empty',
        '',
      ].join('\n'),
    );
    expect(ok(larch(['ls', `--repo=${repo}`, '-d', c1]))).toBe('d00755 0 0      0 /\n');
    expect(ok(larch(['ls', `--repo=${repo}`, '-C', c1, '/sub']))).toContain(
      'd00755 0 0      0 81ea3e94a64fcb26ef505be1e7fa22c9fc2289eb87053f0e2eae1daf7a1e3257 446a0ef11b7cc167f3b603e585c7eeeeb675faa412d5ec73f62988eb0b6c5488 /sub\n',
    );
    const json = JSON.parse(ok(larch(['ls', `--repo=${repo}`, '--json', c1, '/link'])));
    expect(json).toEqual([
      {
        path: '/link',
        type: 'symlink',
        mode: 0o777,
        uid: 0,
        gid: 0,
        size: 0,
        checksum: 'f66efa496a72379413c44593de510dc344beb045294f1a543da87b2b6118db35',
        target: 'hello.txt',
      },
    ]);
    expectOneErrorLine(larch(['ls', `--repo=${repo}`, c1, '/nosuch']));
  });

  it('cats files, following symlinks, and refuses directories', () => {
    const r = larchBytes(['cat', `--repo=${repo}`, c1, '/hello.txt', '/link']);
    expect(r.code).toBe(0);
    expect(r.stdout.toString()).toBe('hello\nhello\n');
    expect(expectOneErrorLine(larch(['cat', `--repo=${repo}`, c1, '/sub']))).toBe("Can't open directory");
    expectOneErrorLine(larch(['cat', `--repo=${repo}`, c1, '/nosuch']));
  });

  it('diffs two commits as ostree: modified, deleted, added', () => {
    expect(ok(larch(['diff', `--repo=${repo}`, 'test^', 'test']))).toBe(
      ['M    /hello.txt', 'D    /sub/empty', 'A    /new.txt', 'A    /d2', 'A    /d2/z', ''].join('\n'),
    );
    expect(JSON.parse(ok(larch(['diff', `--repo=${repo}`, '--json', 'test', 'test'])))).toEqual([]);
  });

  it('stops quietly when stdout is closed early', () => {
    const r = spawnSync('sh', ['-c', `${process.execPath} ${CLI} log --repo=${repo} test | head -n 1`], { encoding: 'utf8' });
    expect(r.stdout).toBe(`commit ${c2}\n`);
    expect(r.stderr).toBe('');
  });

  it('resolves revisions', () => {
    expect(ok(larch(['rev-parse', `--repo=${repo}`, 'test']))).toBe(`${c2}\n`);
    expect(ok(larch(['rev-parse', `--repo=${repo}`, 'test^']))).toBe(`${c1}\n`);
    expect(ok(larch(['rev-parse', `--repo=${repo}`, c1.slice(0, 8)]))).toBe(`${c1}\n`);
    expect(expectOneErrorLine(larch(['rev-parse', `--repo=${repo}`, 'test^^']))).toBe(`Commit ${c1} has no parent`);
    expect(expectOneErrorLine(larch(['rev-parse', `--repo=${repo}`, 'origin:test']))).toBe("Refspec 'origin:test' not found");
  });
});

describe.skipIf(!RUN_INTEROP)('read verbs (interop with ostree on the same repository)', () => {
  let orepo: string;
  beforeAll(async () => {
    requireOstree();
    // A repository written by ostree, with a partial history (first commit pruned away).
    orepo = join(dir, 'orepo');
    ok(ostree(['init', `--repo=${orepo}`, '--mode=archive']));
    ok(ostree(['commit', `--repo=${orepo}`, '-b', 'main', '-s', 'one', '--timestamp=@1000', join(dir, 'tree')]));
    ok(
      ostree([
        'commit',
        `--repo=${orepo}`,
        '-b',
        'main',
        '-s',
        'two',
        '--add-metadata-string=version=2',
        '--add-metadata=n=uint32 5',
        '--add-metadata=t=uint64 7',
        "--add-metadata=l=['a', 'b']",
        '--add-metadata=e=@as []',
        '--timestamp=@2000',
        join(dir, 'tree2'),
      ]),
    );
    ok(ostree(['commit', `--repo=${orepo}`, '-b', 'main', '--body=only body', '--timestamp=@3000', join(dir, 'tree')]));
    ok(ostree(['prune', `--repo=${orepo}`, '--refs-only', '--depth=1']));
  });

  const same = (args: string[], r: () => string): void => {
    const o = ostree([...args, `--repo=${r()}`]);
    const l = larch([...args, `--repo=${r()}`]);
    expect(l.stdout).toBe(o.stdout);
    expect(l.code).toBe(o.code);
    if (o.code !== 0) expect(l.stderr).toBe(o.stderr);
  };

  it.each([
    [['log', 'main']],
    [['log', '--raw', 'main']],
    [['show', 'main']],
    [['show', 'main^']],
    [['show', '--raw', 'main^']],
    [['show', '--print-metadata-key=version', 'main^']],
    [['show', '--print-metadata-key=ostree.ref-binding', 'main']],
    [['show', '--print-metadata-key=n', 'main^']],
    [['show', '--print-metadata-key=t', 'main^']],
    [['show', '--print-metadata-key=l', 'main^']],
    [['show', '--print-metadata-key=e', 'main^']],
    [['show', '--print-metadata-key=nosuch', 'main']],
    [['show', 'nosuch']],
    [['ls', 'main']],
    [['ls', '-R', 'main']],
    [['ls', '-R', '-C', 'main']],
    [['ls', '-d', 'main', '/sub']],
    [['ls', 'main^', '/hello.txt', '/d2']],
    [['cat', 'main', '/hello.txt']],
    [['cat', 'main', '/link']],
    [['diff', 'main^', 'main']],
    [['diff', 'main', 'main^']],
    [['rev-parse', 'main^']],
    [['rev-parse', 'main^^']],
  ])('%j prints what ostree prints (ostree-made repo)', (args) => {
    same(args, () => orepo);
  });

  it.each([[['log', 'test']], [['log', '--raw', 'test']], [['show', 'test^']], [['ls', '-R', '-C', 'test']], [['diff', 'test^', 'test']]])(
    '%j prints what ostree prints (larch-made repo)',
    (args) => {
      same(args, () => repo);
    },
  );

  it('reads the same file content as ostree cat', async () => {
    const o = ostree(['cat', `--repo=${orepo}`, 'main^', '/d2/z']);
    const l = larchBytes(['cat', `--repo=${orepo}`, 'main^', '/d2/z']);
    expect(l.stdout.toString()).toBe(o.stdout);
    expect(o.stdout).toBe(await readFile(join(dir, 'tree2/d2/z'), 'utf8'));
  });
});
