import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOneErrorLine, larch, makeSpecTree, ok, scratch, SPEC_COMMIT, SPEC_COMMIT_ARGS } from './helpers.js';

let dir: string;
let cleanup: () => Promise<void>;
let source: string;

beforeAll(async () => {
  ({ dir, cleanup } = await scratch());
  const tree = await makeSpecTree(join(dir, 'tree'));
  source = join(dir, 'source');
  ok(larch(['init', `--repo=${source}`, '--mode=archive']));
  ok(larch(['commit', `--repo=${source}`, ...SPEC_COMMIT_ARGS, tree]));
});
afterAll(async () => cleanup());

describe('larch remote', () => {
  it('adds, lists, shows and deletes a remote', () => {
    const repo = join(dir, 'remotes');
    ok(larch(['init', `--repo=${repo}`, '--mode=archive']));
    ok(larch(['remote', 'add', `--repo=${repo}`, '--no-gpg-verify', 'origin', 'http://127.0.0.1:9/repo/', 'test']));
    expect(ok(larch(['remote', 'list', `--repo=${repo}`]))).toBe('origin\n');
    expect(ok(larch(['remote', 'list', `--repo=${repo}`, '-u']))).toMatch(/^origin\s+http:\/\/127\.0\.0\.1:9\/repo\/\n$/);
    expect(ok(larch(['remote', 'show-url', `--repo=${repo}`, 'origin']))).toBe('http://127.0.0.1:9/repo/\n');
    expectOneErrorLine(larch(['remote', 'add', `--repo=${repo}`, 'origin', 'http://example.invalid/']));
    ok(larch(['remote', 'delete', `--repo=${repo}`, 'origin']));
    expect(ok(larch(['remote', 'list', `--repo=${repo}`]))).toBe('');
    expectOneErrorLine(larch(['remote', 'show-url', `--repo=${repo}`, 'origin']));
  });
});

describe('larch pull', () => {
  it('pulls a ref from a file:// remote into a bare-user repo, verified, and prints JSON lines with --json', () => {
    const repo = join(dir, 'pulled');
    ok(larch(['init', `--repo=${repo}`, '--mode=bare-user']));
    ok(larch(['remote', 'add', `--repo=${repo}`, '--no-gpg-verify', 'origin', pathToFileURL(source).href]));
    const out = ok(larch(['pull', `--repo=${repo}`, '--json', 'origin', 'test']));
    const lines = out.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.length).toBeGreaterThan(0);
    expect(ok(larch(['rev-parse', `--repo=${repo}`, 'origin:test']))).toBe(`${SPEC_COMMIT}\n`);
    ok(larch(['fsck', `--repo=${repo}`]));
  });

  it('refuses a remote that requires signatures when none can be checked, without moving any ref', () => {
    const repo = join(dir, 'gpg');
    ok(larch(['init', `--repo=${repo}`, '--mode=archive']));
    ok(larch(['remote', 'add', `--repo=${repo}`, 'origin', pathToFileURL(source).href]));
    expectOneErrorLine(larch(['pull', `--repo=${repo}`, 'origin', 'test']));
    expect(larch(['rev-parse', `--repo=${repo}`, 'origin:test']).code).not.toBe(0);
  });

  it('fails with one line for an unknown remote', () => {
    expectOneErrorLine(larch(['pull', `--repo=${source}`, 'nosuch', 'test']));
  });
});

describe('larch pull-local', () => {
  it('copies a ref from another repo, verified', () => {
    const repo = join(dir, 'local');
    ok(larch(['init', `--repo=${repo}`, '--mode=bare-user']));
    ok(larch(['pull-local', `--repo=${repo}`, source, 'test']));
    expect(ok(larch(['rev-parse', `--repo=${repo}`, 'test']))).toBe(`${SPEC_COMMIT}\n`);
    ok(larch(['fsck', `--repo=${repo}`]));
  });
});
