import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOneErrorLine, larch, ok, ostree, requireOstree, RUN_INTEROP, scratch } from './helpers.js';

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

  it('rejects an unknown verb with one usage error line', () => {
    expect(expectOneErrorLine(larch(['bogusverb']))).toBe("Unknown command 'bogusverb'");
  });

  it('rejects a missing verb', () => {
    expect(expectOneErrorLine(larch([]))).toBe('No command specified');
  });

  it('rejects unknown options with ostree wording', () => {
    expect(expectOneErrorLine(larch(['log', '--bogus', 'x']))).toBe('Unknown option --bogus');
  });

  it('rejects an option without its value', () => {
    expect(expectOneErrorLine(larch(['commit', '-b']))).toBe('Missing argument for --branch');
  });

  it('rejects extra arguments', () => {
    expect(expectOneErrorLine(larch(['rev-parse', `--repo=${dir}/none`, 'a', 'b']))).toMatch(/too many arguments/i);
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
