import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { CLI as MAIN, expectOneErrorLine, expectUsageError, larch, ok, ostree, requireOstree, RUN_INTEROP, scratch } from './helpers.js';


let dir: string;
let cleanup: () => Promise<void>;
beforeAll(async () => {
  ({ dir, cleanup } = await scratch());
});
afterAll(async () => cleanup());

describe('larch (global behaviour)', () => {
  it('prints the version and a Features list in ostree layout', () => {
    const out = ok(larch(['--version']));
    const lines = out.trimEnd().split('\n');
    expect(lines[0]).toBe('larch:');
    expect(lines[1]).toMatch(/^ Version: '\d+\.\d+\.\d+'$/);
    expect(lines[2]).toBe(' Features:');
    expect(lines.slice(3).length).toBeGreaterThan(0);
    for (const l of lines.slice(3)) expect(l).toMatch(/^ {2}- [a-z0-9-]+$/);
    expect(lines).toContain('  - repo-archive');
  });

  it('rejects an unknown verb: the usage on stderr, then one error line, as ostree', () => {
    expect(expectUsageError(larch(['bogusverb']), 'larch')).toBe("Unknown command 'bogusverb'");
    expect(expectUsageError(larch(['remote', 'bogus']), 'larch remote')).toBe('Unknown "remote" subcommand \'bogus\'');
  });

  it('rejects a missing verb or sub-verb the same way', () => {
    expect(expectUsageError(larch([]), 'larch')).toBe('No command specified');
    expect(expectUsageError(larch(['static-delta']), 'larch static-delta')).toBe('No command specified');
  });

  it('prints help in ostree\'s layout on stdout, for every verb and sub-verb it lists', () => {
    const top = larch(['--help']);
    expect(top.code).toBe(0);
    expect(top.stderr).toBe('');
    expect(top.stdout).toMatch(/^Usage:\n {2}larch \[OPTION…\] COMMAND\n\nBuiltin Commands:\n/);
    const verbs = /Builtin Commands:\n([\s\S]*?)\n\n/.exec(top.stdout)![1].split('\n').map((l) => l.trim().split(/\s+/)[0]);
    expect(verbs).toEqual(expect.arrayContaining(['init', 'commit', 'pull', 'admin', 'static-delta']));
    const deploy = larch(['admin', 'deploy', '--help']);
    expect(deploy.code).toBe(0);
    expect(deploy.stdout).toMatch(/^Usage:\n {2}larch admin deploy \[OPTION…\] REFSPEC\n/);
    expect(deploy.stdout).toMatch(/\nHelp Options:\n {2}-h, --help +Show help options\n\nApplication Options:\n/);
    expect(deploy.stdout).toMatch(/\n {2}--sysroot=PATH +\S/);
    // `larch help VERB` is `larch VERB --help`.
    expect(larch(['help', 'admin', 'deploy']).stdout).toBe(deploy.stdout);
  });

  it('names itself after the link it is run through, as a GLib program does', async () => {
    const link = join(dir, 'ostree');
    await symlink(MAIN, link);
    const r = spawnSync(link, ['admin', '--help'], { encoding: 'utf8', env: { ...process.env, LC_ALL: 'C.UTF-8' } });
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^Usage:\n {2}ostree admin \[OPTION…\] COMMAND\n/);
    expect(r.stdout).toContain('Builtin "admin" Commands:');
  });

  it('rejects unknown options with ostree wording', () => {
    expect(expectOneErrorLine(larch(['log', '--bogus', 'x']))).toBe('Unknown option --bogus');
  });

  it('rejects an option without its value', () => {
    expect(expectOneErrorLine(larch(['commit', '-b']))).toBe('Missing argument for --branch');
  });

  it('rejects extra arguments with ostree wording', () => {
    expect(expectOneErrorLine(larch(['rev-parse', `--repo=${dir}/none`, 'a', 'b']))).toBe('Too many arguments given');
    ok(larch(['init', `--repo=${dir}/toomany`]));
    expect(expectOneErrorLine(larch(['config', `--repo=${dir}/toomany`, 'get', '--group=core', 'mode', 'extra']))).toBe('Too many arguments given');
  });

  it('needs a repository', () => {
    expect(expectOneErrorLine(larch(['refs'], { cwd: dir }))).toBe('Command requires a --repo argument');
  });

  it('prints help on --help and exits 0', () => {
    const r = larch(['commit', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('--add-metadata-string');
  });

  it('prints a stack trace only with --verbose', () => {
    const quiet = larch(['log', `--repo=${dir}/nonexistent`, 'x']);
    expectOneErrorLine(quiet);
    const verbose = larch(['log', `--repo=${dir}/nonexistent`, '--verbose', 'x']);
    expect(verbose.code).toBe(1);
    expect(verbose.stderr.split('\n')[0]).toMatch(/^error: /);
    expect(verbose.stderr).toMatch(/\n\s+at /);
  });
});

describe('larch init', () => {
  it('creates a repository that ostree would create', async () => {
    for (const mode of ['archive', 'bare', 'bare-user', 'bare-user-only']) {
      const repo = join(dir, `init-${mode}`);
      ok(larch(['init', `--repo=${repo}`, `--mode=${mode}`]));
      const config = await readFile(join(repo, 'config'), 'utf8');
      expect(config).toContain(`mode=${mode === 'archive' ? 'archive-z2' : mode}\n`);
      expect(config).toContain('repo_version=1\n');
      ok(larch(['refs', '--repo', repo]));
    }
  });

  it('accepts --repo before the verb and OSTREE_REPO', async () => {
    ok(larch([`--repo=${dir}/before`, 'init', '--mode=archive']));
    expect(await readFile(join(dir, 'before/config'), 'utf8')).toContain('mode=archive-z2');
    ok(larch(['init', '--mode=bare-user'], { env: { OSTREE_REPO: join(dir, 'env') } }));
    expect(await readFile(join(dir, 'env/config'), 'utf8')).toContain('mode=bare-user');
  });

  it('records a collection id', async () => {
    ok(larch(['init', `--repo=${dir}/coll`, '--mode=archive', '--collection-id=org.example.Test']));
    expect(await readFile(join(dir, 'coll/config'), 'utf8')).toContain('collection-id=org.example.Test');
  });

  it('rejects a bad mode with one line and exit 1', () => {
    expect(expectOneErrorLine(larch(['init', `--repo=${dir}/bad`, '--mode=bogus']))).toBe(
      "Invalid mode 'bogus' in repository configuration",
    );
  });

  it('rejects an invalid collection id', () => {
    expectOneErrorLine(larch(['init', `--repo=${dir}/badcoll`, '--mode=bare', '--collection-id=bad']));
  });
});

describe.skipIf(!RUN_INTEROP)('larch init (interop)', () => {
  beforeAll(requireOstree);

  it('writes the same config file as ostree init', async () => {
    for (const mode of ['archive', 'bare', 'bare-user', 'bare-user-only']) {
      ok(larch(['init', `--repo=${dir}/l-${mode}`, `--mode=${mode}`]));
      ok(ostree(['init', `--repo=${dir}/o-${mode}`, `--mode=${mode}`]));
      expect(await readFile(join(dir, `l-${mode}/config`), 'utf8')).toBe(await readFile(join(dir, `o-${mode}/config`), 'utf8'));
      // and ostree accepts the repository
      ok(ostree(['refs', `--repo=${dir}/l-${mode}`]));
    }
  });

  it('fails a bad mode as ostree does', () => {
    const o = ostree(['init', `--repo=${dir}/ob`, '--mode=bogus']);
    const l = larch(['init', `--repo=${dir}/lb`, '--mode=bogus']);
    expect(l.code).toBe(o.code);
    expect(l.stderr).toBe(o.stderr);
  });
});

describe('larch and signals', () => {
  it('exits 130 on SIGINT during a pull, as a process that SIGINT ended looks to a shell', async () => {
    const { createServer } = await import('node:http');
    const { spawn } = await import('node:child_process');
    const { once } = await import('node:events');
    // A server that takes the request and never answers: the pull waits until interrupted.
    let seen!: () => void;
    const requested = new Promise<void>((r) => (seen = r));
    const server = createServer(() => seen());
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as { port: number }).port;
    try {
      const repo = join(dir, 'sigint-repo');
      ok(larch(['init', `--repo=${repo}`, '--mode=archive']));
      ok(larch(['remote', 'add', `--repo=${repo}`, '--no-gpg-verify', 'origin', `http://127.0.0.1:${port}/`]));
      const child = spawn(process.execPath, [MAIN, 'pull', `--repo=${repo}`, 'origin', 'main'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
      await requested;
      child.kill('SIGINT');
      const [code] = (await once(child, 'exit')) as [number | null, string | null];
      expect(code).toBe(130);
      expect(stderr).not.toMatch(/^error:/m);
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });
});

describe('larch takes options where ostree takes them', () => {
  it('passes options given before the verb to the verb, and keeps the remote in `refs REMOTE:PREFIX`', async () => {
    const repo = join(dir, 'opts-before');
    const tree = join(dir, 'opts-before-tree');
    await mkdir(tree, { recursive: true });
    await writeFile(join(tree, 'a'), 'a\n');
    ok(larch(['init', `--repo=${repo}`, '--mode=archive']));
    const c = ok(larch(['commit', `--repo=${repo}`, '-b', 'main', '--add-metadata-string=version=1.2', `--tree=dir=${tree}`])).trim();
    expect(ok(larch([`--repo=${repo}`, '--print-metadata-key=version', 'show', 'main']))).toBe("'1.2'\n");
    ok(larch(['refs', `--repo=${repo}`, `--create=origin:foo/bar`, c]));
    ok(larch(['refs', `--repo=${repo}`, `--create=origin:main`, c]));
    const out = ok(larch(['refs', `--repo=${repo}`, 'origin:foo']));
    expect(out).toBe('origin:bar\n');
    if (RUN_INTEROP) {
      requireOstree();
      expect(ok(ostree([`--repo=${repo}`, '--print-metadata-key=version', 'show', 'main']))).toBe("'1.2'\n");
      expect(ok(ostree(['refs', `--repo=${repo}`, 'origin:foo']))).toBe(out);
    }
  });

  it('finds the system repository under $OSTREE_SYSROOT, as ostree does', async () => {
    const sysroot = join(dir, 'sysroot-env');
    await mkdir(join(sysroot, 'ostree'), { recursive: true });
    ok(larch(['init', `--repo=${join(sysroot, 'ostree/repo')}`, '--mode=bare']));
    const r = larch(['config', 'get', 'core.mode'], { cwd: dir, env: { OSTREE_SYSROOT: sysroot } });
    expect(r.stdout).toBe('bare\n');
  });
});

describe('flags with a value', () => {
  it('takes --flag=VALUE for an option without a value and ignores the value, as GLib does', async () => {
    const src = join(dir, 'flagval-src');
    const dst = join(dir, 'flagval-dst');
    const tree = join(dir, 'flagval-tree');
    await mkdir(tree, { recursive: true });
    await writeFile(join(tree, 'a'), 'a\n');
    ok(larch(['init', `--repo=${src}`, '--mode=archive']));
    ok(larch(['init', `--repo=${dst}`, '--mode=archive']));
    ok(larch(['commit', `--repo=${src}`, '-b', 'main', `--tree=dir=${tree}`]));
    ok(larch(['remote', 'add', `--repo=${dst}`, '--no-gpg-verify', 'origin', `file://${src}`]));
    // Verification on (the value is ignored): the unsigned commit is refused, as by ostree.
    const r = larch(['pull-local', `--repo=${dst}`, '--remote=origin', '--gpg-verify=true', src, 'main']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^error: .*(signature|GPG)/im);
    if (RUN_INTEROP) {
      requireOstree();
      expect(ostree(['pull-local', `--repo=${dst}`, '--remote=origin', '--gpg-verify=true', src, 'main']).code).toBe(1);
    }
  });
});
