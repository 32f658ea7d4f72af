/**
 * `larch commit` options that OSTree's own tests use, each run side by side with the real
 * `ostree commit` on twin repositories: same exit status, same checksum (so the same tree and
 * metadata, byte for byte), same error wording where ostree's scripts grep it.
 */
import { execFileSync } from 'node:child_process';
import { chmod, link, mkdir, readdir, stat, symlink, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { larch, ok, ostree, requireOstree, RUN_INTEROP, scratch, type RunResult } from './helpers.js';

let dir: string;
let cleanup: () => Promise<void>;
let tree: string;
let other: string;

async function makeTree(root: string, files: Record<string, string>): Promise<string> {
  for (const [p, content] of Object.entries(files)) {
    await mkdir(join(root, p, '..'), { recursive: true });
    await writeFile(join(root, p), content);
    await chmod(join(root, p), p.endsWith('.sh') ? 0o755 : 0o644);
  }
  await chmod(root, 0o755);
  return root;
}

beforeAll(async () => {
  if (RUN_INTEROP) requireOstree();
  ({ dir, cleanup } = await scratch('larch-commit-opts-'));
  tree = await makeTree(join(dir, 'tree'), { 'a.txt': 'a\n', 'bin/run.sh': '#!/bin/sh\n', 'sub/deep/f': 'deep\n', 'sub/g': 'g\n' });
  await symlink('a.txt', join(tree, 'link'));
  other = await makeTree(join(dir, 'other'), { 'a.txt': 'replaced\n', 'sub/new': 'new\n', 'extra/x': 'x\n' });
});
afterAll(async () => cleanup());

let n = 0;
/** Twin repositories of `mode`: the same command runs on each with its own tool. */
function twins(mode = 'archive'): { l: string; o: string } {
  n++;
  const l = join(dir, `l${n}`);
  const o = join(dir, `o${n}`);
  ok(larch(['init', `--repo=${l}`, `--mode=${mode}`]));
  ok(ostree(['init', `--repo=${o}`, `--mode=${mode}`]));
  return { l, o };
}

/** Run `commit ARGS` on both; both must agree on the exit status and (on success) the checksum. */
function both(r: { l: string; o: string }, args: string[], env: Record<string, string> = {}): { l: RunResult; o: RunResult } {
  const a = larch(['commit', `--repo=${r.l}`, ...args], { env });
  const b = ostree(['commit', `--repo=${r.o}`, ...args], { env });
  expect({ code: a.code, out: a.stdout }, `larch stderr: ${a.stderr}`).toEqual({ code: b.code, out: b.stdout });
  return { l: a, o: b };
}

const T = '--timestamp=@1700000000';

describe.runIf(RUN_INTEROP)('larch commit options, side by side with ostree commit', () => {
  it('overlays several --tree sources in order (dir, ref, dir over ref, ref with a modifier)', () => {
    const r = twins();
    both(r, ['-b', 'base', T, `--tree=dir=${tree}`]);
    both(r, ['-b', 'o', T, `--tree=dir=${other}`]);
    both(r, ['-b', 'ref', T, '--tree=ref=base']);
    both(r, ['-b', 'union', T, '--tree=ref=base', `--tree=dir=${other}`]);
    both(r, ['-b', 'union2', T, `--tree=dir=${other}`, '--tree=ref=base']);
    both(r, ['-b', 'ref-ref', T, '--tree=ref=base', '--tree=ref=o']);
    both(r, ['-b', 'owned', T, '--tree=ref=base', '--owner-uid=42', '--owner-gid=7']);
    both(r, ['-b', 'ro', T, '--tree=ref=base', '--mode-ro-executables']);
  });

  it('--base starts from a commit and overlays the directory on it, unmodified', () => {
    const r = twins('bare-user');
    both(r, ['-b', 'base', T, tree]);
    both(r, ['-b', 'b', T, '--base=base', '--owner-uid=42', '--owner-gid=42', other]);
  });

  it('--statoverride adds or sets mode bits by path, and an unmatched path fails with ostree lines', async () => {
    const r = twins();
    const so = join(dir, 'statoverride.txt');
    await writeFile(so, `+2048 /a.txt\n=${0o700} /sub\n`);
    both(r, ['-b', 's', T, `--statoverride=${so}`, tree]);
    await writeFile(so, '+2048 /nope\n');
    const res = both(r, ['-b', 's2', T, `--statoverride=${so}`, tree]);
    expect(res.l.stderr).toBe(res.o.stderr);
    await writeFile(so, 'nospace\n');
    const bad = both(r, ['-b', 's3', T, `--statoverride=${so}`, tree]);
    expect(bad.l.stderr).toBe(bad.o.stderr);
  });

  it('--skip-if-unchanged prints the parent and writes nothing when the tree is unchanged', () => {
    const r = twins();
    const first = both(r, ['-b', 'x', T, tree]).l.stdout;
    const again = both(r, ['-b', 'x', '--timestamp=@1800000000', '--skip-if-unchanged', tree]);
    expect(again.l.stdout).toBe(first);
    expect(ok(larch(['log', `--repo=${r.l}`, 'x'])).match(/^commit /gm)).toHaveLength(1);
    both(r, ['-b', 'x', '--timestamp=@1800000000', '--skip-if-unchanged', other]);
  });

  it('--bind-ref, --orphan -b, --keep-metadata, -F and --add-detached-metadata-string', async () => {
    const r = twins();
    both(r, ['-b', 'b1', '--bind-ref=zz', '--bind-ref=aa', T, tree]);
    both(r, ['--orphan', T, tree]);
    both(r, ['--orphan', '-b', 'orph', T, tree]);
    both(r, ['-b', 'k', '--add-metadata-string=KEEP=me', '--add-metadata-string=DROP=x', T, tree]);
    both(r, ['-b', 'k', '--keep-metadata=KEEP', T, other]);
    const missing = both(r, ['-b', 'k', '--keep-metadata=NOPE', T, other]);
    expect(missing.l.stderr.replace(/'[0-9a-f]{64}'/, "'C'")).toBe(missing.o.stderr.replace(/'[0-9a-f]{64}'/, "'C'"));
    const noparent = both(r, ['--orphan', '--keep-metadata=KEEP', T, tree]);
    expect(noparent.l.stderr).toBe(noparent.o.stderr);
    const body = join(dir, 'msg.txt');
    await writeFile(body, 'A long\nbody.\n');
    both(r, ['-b', 'msg', '-F', body, '-s', 'subject', T, tree]);
    const c = both(r, ['-b', 'det', '--add-detached-metadata-string=SIG=HANCOCK', T, tree]).l.stdout.trim();
    expect(ok(larch(['show', `--repo=${r.l}`, '--print-detached-metadata-key=SIG', c]))).toBe(ok(ostree(['show', `--repo=${r.o}`, '--print-detached-metadata-key=SIG', c])));
  });

  it('-b REMOTE:REF writes the remote ref, parents on it and binds it as given', () => {
    const r = twins();
    both(r, ['-b', 'origin:remote1', T, tree]);
    both(r, ['-b', 'origin:remote1', '--timestamp=@1700000100', other]);
    for (const [repo, run] of [[r.l, larch], [r.o, ostree]] as const) {
      expect(ok(run(['refs', `--repo=${repo}`])).trim()).toBe('origin:remote1');
      const head = ok(run(['rev-parse', `--repo=${repo}`, 'origin:remote1'])).trim();
      expect(ok(run(['rev-parse', `--repo=${repo}`, `${head}^`])).trim()).toMatch(/^[0-9a-f]{64}$/);
      expect(existsSync(join(repo, 'refs/remotes/origin/remote1'))).toBe(true);
    }
  });

  it('--generate-sizes writes the same ostree.sizes as ostree', () => {
    const r = twins();
    both(r, ['-b', 'base', T, tree]);
    both(r, ['-b', 'gs', '--generate-sizes', T, tree]);
    both(r, ['-b', 'gs2', '--generate-sizes', T, '--tree=ref=base', `--tree=dir=${other}`]);
    both(r, ['-b', 'gs3', '--generate-sizes', T, '--base=base', other]);
  });

  it('--tree=tar= imports plain and gzip archives, with --tar-autocreate-parents', async () => {
    const r = twins();
    const plain = join(dir, 't.tar');
    const gz = join(dir, 't.tgz');
    execFileSync('tar', ['-C', tree, '--owner=0', '--group=0', '-cf', plain, '.']);
    execFileSync('tar', ['-C', tree, '--owner=3', '--group=4', '-czf', gz, 'sub/deep/f', 'a.txt']);
    both(r, ['-b', 'tar', T, `--tree=tar=${plain}`]);
    both(r, ['-b', 'tgz', T, `--tree=tar=${gz}`, '--tar-autocreate-parents']);
    both(r, ['-b', 'mix', T, `--tree=dir=${other}`, `--tree=tar=${plain}`]);
  });

  it('refuses a tar member named ../NAME, as ostree does, writing nothing outside', async () => {
    const r = twins();
    const evil = join(dir, 'evil.tar');
    execFileSync('python3', ['-c', `import tarfile,io
t=tarfile.open(${JSON.stringify(evil)},'w')
i=tarfile.TarInfo('../evil'); d=b'x\\n'; i.size=len(d); t.addfile(i, io.BytesIO(d)); t.close()`]);
    const res = both(r, ['-b', 'evil', T, `--tree=tar=${evil}`, '--tar-autocreate-parents']);
    expect(res.l.code).not.toBe(0);
    expect(res.l.stderr.split('\n').filter(Boolean)).toHaveLength(1);
    expect(existsSync(join(dir, 'evil'))).toBe(false);
  });

  it('--consume deletes the committed directory; bare repos take the files in by hard link', async () => {
    for (const mode of ['bare', 'bare-user-only', 'archive']) {
      const r = twins(mode);
      const copies: string[] = [];
      for (const side of ['l', 'o']) {
        const t = await makeTree(join(dir, `consume-${mode}-${side}`), { 'eatme.txt': 'a file to consume\n', 'd/x': 'x\n' });
        await link(join(t, 'eatme.txt'), join(dir, `saved-${mode}-${side}`));
        copies.push(t);
      }
      const a = larch(['commit', `--repo=${r.l}`, '-b', 'c', T, '--consume', `--tree=dir=${copies[0]}`]);
      const b = ostree(['commit', `--repo=${r.o}`, '-b', 'c', T, '--consume', `--tree=dir=${copies[1]}`]);
      expect(a.code).toBe(0);
      expect(a.stdout).toBe(b.stdout);
      expect(existsSync(copies[0])).toBe(false);
      expect(existsSync(copies[1])).toBe(false);
      // ostree adopts a new file into bare and bare-user-only repositories: the object is that inode.
      const objOf = async (repo: string): Promise<number> => {
        const ck = /[0-9a-f]{64}/.exec(ok(larch(['ls', `--repo=${repo}`, '-C', 'c', '/eatme.txt'])))![0];
        return (await stat(join(repo, 'objects', ck.slice(0, 2), `${ck.slice(2)}.file${mode === 'archive' ? 'z' : ''}`))).ino;
      };
      const lSaved = (await stat(join(dir, `saved-${mode}-l`))).ino === (await objOf(r.l));
      const oSaved = (await stat(join(dir, `saved-${mode}-o`))).ino === (await objOf(r.o));
      expect(lSaved).toBe(oSaved);
      expect(ok(ostree(['fsck', `--repo=${r.l}`]))).toContain('no errors found');
    }
  });

  it('--table-output and --link-checkout-speedup count like ostree', async () => {
    for (const mode of ['bare', 'bare-user']) {
      const r = twins(mode);
      both(r, ['-b', 'base', T, tree]);
      const so = join(dir, `so-speed-${mode}`);
      await writeFile(so, `=${0o600} /a.txt\n`);
      const cos: string[] = [];
      for (const repo of [r.l, r.o]) {
        const co = join(dir, `co-speed-${mode}-${cos.length}`);
        ok(ostree(['checkout', `--repo=${repo}`, ...(mode === 'bare-user' ? ['-U'] : []), '-H', 'base', co]));
        cos.push(co);
      }
      const a = larch(['commit', `--repo=${r.l}`, '-b', 't', T, `--statoverride=${so}`, '--table-output', '--link-checkout-speedup', cos[0]]);
      const b = ostree(['commit', `--repo=${r.o}`, '-b', 't', T, `--statoverride=${so}`, '--table-output', '--link-checkout-speedup', cos[1]]);
      expect(a.stdout).toBe(b.stdout);
      expect(a.stdout).toMatch(/^Content Written: 1$/m);
    }
  });

  it('refuses SOURCE_DATE_EPOCH values ostree refuses, with its wording, and reads the rest as strtoll', () => {
    const r = twins();
    for (const v of ['invalid', '', '12345678901234567890', '9223372036854775808']) {
      const res = both(r, ['-b', 'e', tree], { SOURCE_DATE_EPOCH: v });
      expect(res.l.stderr).toBe(res.o.stderr);
    }
    for (const v of ['1234567890', ' 12x', '-5', '+7']) both(r, ['-b', `e${v.trim().replace(/\W/g, '')}`, tree], { SOURCE_DATE_EPOCH: v });
  });

  it('refuses a file name that is not UTF-8 with ostree wording', async () => {
    const r = twins();
    const bad = join(dir, 'badutf8');
    await mkdir(bad, { recursive: true });
    execFileSync('sh', ['-c', `touch "${bad}/$(printf 'a\\377')"`]);
    expect((await readdir(bad)).length).toBe(1);
    const res = both(r, ['-b', 'u', T, bad]);
    expect(res.l.stderr).toMatch(/^error: Invalid UTF-8 in filename /);
  });

  it('fails with OSTREE_REPO_TEST_ERROR=pre-commit and leaves the staging directory of OSTREE_BOOTID', async () => {
    const r = twins();
    const env = { OSTREE_REPO_TEST_ERROR: 'pre-commit', OSTREE_BOOTID: '3072029c-8b10-60d1-d31b-8422eeff9b42' };
    const res = both(r, ['-b', 'p', T, tree], env);
    expect(res.l.stderr).toContain('OSTREE_REPO_TEST_ERROR_PRE_COMMIT');
    const staged = (await readdir(join(r.l, 'tmp'))).filter((e) => e.startsWith(`staging-${env.OSTREE_BOOTID}-`) && !e.endsWith('-lock'));
    expect(staged.length).toBe(1);
  });
});
