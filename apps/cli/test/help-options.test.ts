/**
 * The option surface every verb shares with ostree 2022.7, side by side with the real `ostree`:
 * `--version` after any verb, the `--no-*` options in the help, `-v/--verbose` on the sub-verbs
 * that lacked it, and ostree's two internal admin verbs (hidden, and idle outside a booted system).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { larch, ok, ostree, requireOstree, RUN_INTEROP, scratch, type RunResult } from './helpers.js';

const describeInterop = RUN_INTEROP ? describe : describe.skip;

let dir: string;
let cleanup: () => Promise<void>;
beforeAll(async () => {
  requireOstree();
  ({ dir, cleanup } = await scratch('larch-help-options-'));
});
afterAll(async () => cleanup());

/** The long options (with their short form) of a help text's `Application Options:`. */
function listedOptions(help: string): string[] {
  const at = help.indexOf('Application Options:\n');
  if (at < 0) return [];
  const list: string[] = [];
  for (const line of help.slice(at).split('\n').slice(1)) {
    const m = /^\s+((?:-\w, )?--[\w-]+)/.exec(line);
    if (!m) break;
    list.push(m[1]);
  }
  return list;
}

/**
 * The `error:` line of stderr: with -v, ostree prints debug lines before it and larch a stack
 * trace after it.
 */
function errorLine(r: RunResult): string {
  return r.stderr.split('\n').find((line) => line.startsWith('error: ')) ?? '';
}

/** Both tools' answers, with their repositories (or none) outside any real one. */
function both(args: string[], repo?: { ostree: string; larch: string }): { o: RunResult; l: RunResult } {
  const env = { OSTREE_REPO: join(dir, 'no-such-repo'), OSTREE_SYSROOT: join(dir, 'no-such-sysroot') };
  return {
    o: ostree(repo ? [...args, `--repo=${repo.ostree}`] : args, { cwd: dir, env }),
    l: larch(repo ? [...args, `--repo=${repo.larch}`] : args, { cwd: dir, env }),
  };
}

describeInterop('--version after a verb (against ostree)', () => {
  const versionOf = (run: typeof larch): string => ok(run(['--version']));

  it.each([
    [['refs', '--version']],
    [['log', '--version']],
    [['admin', '--version']],
    [['remote', '--version']],
    [['admin', 'deploy', '--version']],
    [['admin', 'kargs', 'edit-in-place', '--version']],
    [['remote', 'add', '--version']],
    [['remote', 'gpg-import', '--version']],
    [['static-delta', 'list', '--version']],
    [['refs', '--version', 'a', 'b']],
    [['--version', 'refs']],
  ])('%j prints the version and exits 0, whatever arguments the verb needs', (args) => {
    const { o, l } = both(args);
    expect({ code: o.code, stdout: o.stdout, stderr: o.stderr }).toEqual({ code: 0, stdout: versionOf(ostree), stderr: '' });
    expect({ code: l.code, stdout: l.stdout, stderr: l.stderr }).toEqual({ code: 0, stdout: versionOf(larch), stderr: '' });
  });

  it('static-delta --version is a missing sub-verb, and an unknown option still fails', () => {
    const sd = both(['static-delta', '--version']);
    expect([sd.o.code, sd.o.stdout, errorLine(sd.o)]).toEqual([1, '', 'error: No command specified']);
    expect([sd.l.code, sd.l.stdout, errorLine(sd.l)]).toEqual([1, '', 'error: No command specified']);
    const { o, l } = both(['refs', '--version', '--bogus']);
    expect([l.code, l.stdout, errorLine(l)]).toEqual([1, '', 'error: Unknown option --bogus']);
    expect([o.code, o.stdout, errorLine(o)]).toEqual([1, '', 'error: Unknown option --bogus']);
  });

  it("lists --version last in every verb's help, as ostree does", () => {
    for (const args of [['refs'], ['admin', 'deploy'], ['remote', 'gpg-list-keys'], ['static-delta', 'reindex']]) {
      const { o, l } = both([...args, '--help']);
      expect(listedOptions(o.stdout).at(-1)).toBe('--version');
      expect(listedOptions(l.stdout).at(-1)).toBe('--version');
    }
  });
});

describeInterop('the help lists what ostree lists (against ostree)', () => {
  it.each([[['admin', 'deploy']], [['commit']], [['export']], [['prune']]])("%j: every --no-* option of ostree's help", (args) => {
    const { o, l } = both([...args, '--help']);
    const negated = listedOptions(o.stdout).filter((x) => x.startsWith('--no-'));
    expect(negated.length).toBeGreaterThan(0);
    expect(listedOptions(l.stdout)).toEqual(expect.arrayContaining(negated));
  });

  it.each([
    [['remote', 'gpg-import']],
    [['remote', 'gpg-list-keys']],
    ...['list', 'show', 'delete', 'generate', 'apply-offline', 'verify', 'indexes', 'reindex'].map((s) => [['static-delta', s]]),
  ])('%j lists and takes -v, --verbose', (args) => {
    const { o, l } = both([...args, '--help']);
    expect(listedOptions(o.stdout)).toContain('-v, --verbose');
    expect(listedOptions(l.stdout)).toContain('-v, --verbose');
  });

  it('-v changes nothing else on those sub-verbs', () => {
    const repo = { ostree: join(dir, 'o-repo'), larch: join(dir, 'l-repo') };
    ok(ostree(['init', '--mode=archive', `--repo=${repo.ostree}`]));
    ok(ostree(['init', '--mode=archive', `--repo=${repo.larch}`]));
    for (const args of [['static-delta', 'list', '-v'], ['static-delta', 'indexes', '--verbose'], ['remote', 'gpg-list-keys', '-v', 'nosuch']]) {
      const { o, l } = both(args, repo);
      expect([l.code, l.stdout, errorLine(l)]).toEqual([o.code, o.stdout, o.code === 0 ? '' : errorLine(o)]);
    }
  });
});

// ostree's internal verbs return before anything else outside a booted OSTree system.
const describeNotBooted = RUN_INTEROP && !existsSync('/run/ostree-booted') ? describe : describe.skip;

describeNotBooted('admin finalize-staged and boot-complete (against ostree, not booted)', () => {
  it("are hidden from admin's help, as ostree hides them", () => {
    const { o, l } = both(['admin', '--help']);
    for (const r of [o, l]) expect(r.stdout).not.toMatch(/^\s+(finalize-staged|boot-complete)\s/m);
  });

  it.each([[['admin', 'finalize-staged']], [['admin', 'finalize-staged', '--hold']], [['admin', 'boot-complete']]])('%j does nothing and exits 0', (args) => {
    const { o, l } = both(args);
    expect({ code: o.code, stdout: o.stdout, stderr: o.stderr }).toEqual({ code: 0, stdout: '', stderr: '' });
    expect({ code: l.code, stdout: l.stdout, stderr: l.stderr }).toEqual({ code: 0, stdout: '', stderr: '' });
  });
});
