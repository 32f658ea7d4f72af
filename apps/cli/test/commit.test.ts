import { spawn, spawnSync } from 'node:child_process';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
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
  CLI,
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

function newRepo(name: string, mode = 'archive'): string {
  const repo = join(dir, name);
  ok(larch(['init', `--repo=${repo}`, `--mode=${mode}`]));
  return repo;
}

describe('larch commit', () => {
  it('reproduces the reference commit checksum in every mode and prints only the checksum', () => {
    for (const mode of ['archive', 'bare', 'bare-user', 'bare-user-only']) {
      const repo = newRepo(`spec-${mode}`, mode);
      const r = larch(['commit', `--repo=${repo}`, ...SPEC_COMMIT_ARGS, tree]);
      expect(r.code).toBe(0);
      expect(r.stdout).toBe(`${SPEC_COMMIT}\n`);
      expect(r.stderr).toBe('');
      expect(ok(larch(['rev-parse', `--repo=${repo}`, 'test']))).toBe(`${SPEC_COMMIT}\n`);
    }
  });

  it('accepts --tree=dir=PATH and the same timestamp in every documented form', () => {
    const repo = newRepo('forms');
    const args = ['-s', 'subj', '--body=body', '--add-metadata-string=version=1.0', '-b', 'test', '--owner-uid=0', '--owner-gid=0'];
    const forms = ['@1577836800', '2020-01-01T00:00:00Z', '2020-01-01 00:00:00 +0000', '2020-01-01T01:00:00+01:00'];
    for (const ts of forms) {
      // --parent=none keeps each commit identical to the reference commit
      const out = ok(larch(['commit', `--repo=${repo}`, ...args, `--timestamp=${ts}`, '--parent=none', `--tree=dir=${tree}`]));
      expect(out).toBe(`${SPEC_COMMIT}\n`);
    }
  });

  it('uses SOURCE_DATE_EPOCH when no --timestamp is given', () => {
    const repo = newRepo('sde');
    const c = ok(larch(['commit', `--repo=${repo}`, '--orphan', '--no-bindings', tree], { env: { SOURCE_DATE_EPOCH: '1000' } })).trim();
    const json = JSON.parse(ok(larch(['show', `--repo=${repo}`, '--json', c])));
    expect(json.timestamp).toBe(1000);
  });

  it('links commits to the branch head and honours --parent=none and --orphan', () => {
    const repo = newRepo('chain');
    const c1 = ok(larch(['commit', `--repo=${repo}`, '-b', 'main', '-s', 'one', '--timestamp=@1000', tree])).trim();
    const c2 = ok(larch(['commit', `--repo=${repo}`, '-b', 'main', '-s', 'two', '--timestamp=@2000', tree2])).trim();
    expect(JSON.parse(ok(larch(['show', `--repo=${repo}`, '--json', c2]))).parent).toBe(c1);
    const c3 = ok(larch(['commit', `--repo=${repo}`, '-b', 'main', '--parent=none', '--timestamp=@3000', tree])).trim();
    expect(JSON.parse(ok(larch(['show', `--repo=${repo}`, '--json', c3]))).parent).toBeNull();
    const c4 = ok(larch(['commit', `--repo=${repo}`, '--orphan', '--timestamp=@4000', tree])).trim();
    expect(ok(larch(['rev-parse', `--repo=${repo}`, 'main']))).toBe(`${c3}\n`);
    expect(ok(larch(['rev-parse', `--repo=${repo}`, c4.slice(0, 10)]))).toBe(`${c4}\n`);
  });

  it('keeps metadata in command-line order: strings, then GVariant values, then the ref binding', () => {
    const repo = newRepo('meta');
    const c = ok(
      larch([
        'commit',
        `--repo=${repo}`,
        '-b',
        'm',
        '--add-metadata=z=<1>',
        '--add-metadata-string=b=2',
        '--add-metadata-string=a=1',
        "--add-metadata=y='q'",
        '--add-metadata=n=uint32 7',
        tree,
      ]),
    ).trim();
    const json = JSON.parse(ok(larch(['show', `--repo=${repo}`, '--json', c])));
    expect(Object.keys(json.metadata)).toEqual(['b', 'a', 'z', 'y', 'n', 'ostree.ref-binding']);
    expect(json.metadata.b).toEqual({ type: 's', value: '2' });
    expect(json.metadata.n).toEqual({ type: 'u', value: 7 });
    expect(json.metadata['ostree.ref-binding']).toEqual({ type: 'as', value: ['m'] });
  });

  it('writes no ref binding with --no-bindings', () => {
    const repo = newRepo('nobind');
    const c = ok(larch(['commit', `--repo=${repo}`, '-b', 'x', '--no-bindings', tree])).trim();
    expect(JSON.parse(ok(larch(['show', `--repo=${repo}`, '--json', c]))).metadata).toEqual({});
  });

  it('applies --skip-list', async () => {
    const repo = newRepo('skip');
    const list = join(dir, 'skiplist');
    await writeFile(list, '/hello.txt\n');
    const c = ok(larch(['commit', `--repo=${repo}`, '-b', 'x', `--skip-list=${list}`, tree])).trim();
    const paths = JSON.parse(ok(larch(['ls', `--repo=${repo}`, '-R', '--json', c]))).map((e: { path: string }) => e.path);
    expect(paths).not.toContain('/hello.txt');
    expect(paths).toContain('/link');
  });

  it('fails with one error line on each invalid option', () => {
    const repo = newRepo('errors');
    const base = ['commit', `--repo=${repo}`];
    expect(expectOneErrorLine(larch([...base, '-s', 'x', tree]))).toBe('A branch must be specified with --branch, or use --orphan');
    expect(expectOneErrorLine(larch([...base, '-b', 'x', '--owner-uid=abc', tree]))).toBe('Cannot parse integer value “abc” for --owner-uid');
    expect(expectOneErrorLine(larch([...base, '-b', 'x', '--add-metadata-string=foo', tree]))).toBe("Missing '=' in KEY=VALUE metadata 'foo'");
    expect(expectOneErrorLine(larch([...base, '-b', 'x', '--add-metadata=foo=bar', tree]))).toMatch(/^Parsing foo=bar: /);
    expect(expectOneErrorLine(larch([...base, '-b', 'x', '--timestamp=1600000000', tree]))).toBe("Could not parse '1600000000'");
    expect(expectOneErrorLine(larch([...base, '-b', 'x', '--parent=abc', tree]))).toBe('Invalid rev abc');
    expect(expectOneErrorLine(larch([...base, '-b', 'bad ref', tree]))).toMatch(/bad ref/);
    expect(expectOneErrorLine(larch([...base, '-b', 'x', '--tree=tar=foo.tar']))).toMatch(/tar/);
    expect(expectOneErrorLine(larch([...base, '-b', 'x', join(dir, 'no-such-dir')]))).toMatch(/no-such-dir/);
    expect(expectOneErrorLine(larch([...base, '-b', 'x', '--bootable', tree]))).toBe('No such file or directory: /usr');
    // nothing was committed by the failures
    expectOneErrorLine(larch(['rev-parse', `--repo=${repo}`, 'x']));
  });
});

describe('larch commit interrupted', () => {
  it('stops cleanly on SIGINT: exit 130 as a process SIGINT ended, no error line, no ref, no staged files', async () => {
    const big = join(dir, 'big');
    for (let d = 0; d < 30; d++) {
      await mkdir(join(big, `d${d}`), { recursive: true });
      for (let f = 0; f < 100; f++) await writeFile(join(big, `d${d}`, `f${f}`), `${d}-${f}\n`.repeat(50));
    }
    const repo = newRepo('interrupted');
    const child = spawn(process.execPath, [CLI, 'commit', `--repo=${repo}`, '-b', 'big', big], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    const closed = new Promise<number | null>((res) => child.on('close', (c) => res(c)));
    // Interrupt once the commit is under way (something staged in tmp/), not while Node is
    // still starting and has no handler yet.
    let done = false;
    void closed.then(() => (done = true));
    while (!done && (await readdir(join(repo, 'tmp'))).every((n) => n === 'cache')) await new Promise((r) => setTimeout(r, 10));
    if (!done) child.kill('SIGINT');
    const code = await closed;
    if (code === 0) {
      // The machine was fast enough to finish first: then the commit must be complete.
      expect(ok(larch(['rev-parse', `--repo=${repo}`, 'big']))).toBe(stdout);
    } else {
      expect(code).toBe(130);
      expect(stdout).toBe('');
      expect(stderr).not.toMatch(/^error: /m);
      expectOneErrorLine(larch(['rev-parse', `--repo=${repo}`, 'big']));
      // As ostree's aborted transaction: at most its staging directory is left, unlocked; the next
      // transaction of this boot takes it over and leaves tmp/ clean.
      const left = (await readdir(join(repo, 'tmp'))).filter((n) => n !== 'cache');
      expect(left.length).toBeLessThanOrEqual(1);
      for (const n of left) expect(n).toMatch(/^staging-[0-9a-f-]+-[A-Za-z0-9]{6}$/);
      ok(larch(['commit', `--repo=${repo}`, '-b', 'small', tree]));
      expect((await readdir(join(repo, 'tmp'))).filter((n) => n !== 'cache')).toEqual([]);
    }
    expect(larch(['fsck', `--repo=${repo}`, '-q']).code).toBe(0);
  });
});

const HAVE_SCRIPT = spawnSync('script', ['--version'], { encoding: 'utf8' }).status === 0;

describe.skipIf(!HAVE_SCRIPT)('larch commit progress', () => {
  it('draws a progress bar on a terminal stderr, and the checksum still reaches stdout', () => {
    const repo = newRepo('tty');
    // script(1) runs the command on a pseudo-terminal; its output is what the terminal shows.
    const cmd = `${process.execPath} ${CLI} commit --repo=${repo} ${SPEC_COMMIT_ARGS.map((a) => `'${a}'`).join(' ')} ${tree}`;
    const r = spawnSync('script', ['-qec', cmd, '/dev/null'], { encoding: 'utf8', env: { ...process.env, TZ: 'UTC' } });
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('Committing');
    expect(r.stdout).toContain(SPEC_COMMIT);
  });
});

describe.skipIf(!RUN_INTEROP)('larch commit (interop)', () => {
  beforeAll(requireOstree);

  it('produces the commit ostree produces for the same options, and ostree fscks it', () => {
    const args = [
      '-b',
      'main',
      '-s',
      'subject line',
      '-m',
      'body\ntext',
      '--timestamp=@1234567890',
      '--add-metadata-string=version=3.1',
      '--add-metadata-string=k=v',
      '--add-metadata=n=uint32 5',
      "--add-metadata=list=['a', 'b']",
      '--owner-uid=0',
      '--owner-gid=0',
    ];
    const lrepo = newRepo('l-interop', 'archive');
    const orepo = join(dir, 'o-interop');
    ok(ostree(['init', `--repo=${orepo}`, '--mode=archive']));
    const l = ok(larch(['commit', `--repo=${lrepo}`, ...args, tree2]));
    const o = ok(ostree(['commit', `--repo=${orepo}`, ...args, tree2]));
    expect(l).toBe(o);
    expect(ostree(['fsck', `--repo=${lrepo}`]).code).toBe(0);
  });

  it('writes repositories of every mode that ostree verifies and lists identically', () => {
    for (const mode of ['archive', 'bare', 'bare-user', 'bare-user-only']) {
      const repo = newRepo(`mode-interop-${mode}`, mode);
      const c = ok(larch(['commit', `--repo=${repo}`, '-b', 'm', '--owner-uid=0', '--owner-gid=0', '--timestamp=@1', tree2])).trim();
      expect(ostree(['fsck', `--repo=${repo}`]).code).toBe(0);
      expect(ok(larch(['ls', `--repo=${repo}`, '-R', '-C', c]))).toBe(ok(ostree(['ls', `--repo=${repo}`, '-R', '-C', c])));
      expect(ok(larch(['log', `--repo=${repo}`, 'm']))).toBe(ok(ostree(['log', `--repo=${repo}`, 'm'])));
    }
  });
});
