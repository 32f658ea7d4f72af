/**
 * `remote add|delete|list|show-url` side by side with the real ostree 2022.7: every option of
 * `remote add`, the usage errors, and the config file each leaves, byte for byte.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { larch, ok, ostree, requireOstree, RUN_INTEROP, scratch } from './helpers.js';
import { expectSame, type Places } from './remote-compare.js';

const describeInterop = RUN_INTEROP ? describe : describe.skip;

let dir: string;
let cleanup: () => Promise<void>;
let n = 0;
beforeAll(async () => {
  requireOstree();
  ({ dir, cleanup } = await scratch('larch-remote-add-'));
});
afterAll(async () => cleanup());

/** Two fresh repos, R for each tool. */
function repos(): Places {
  const i = n++;
  const places = { R: { ostree: join(dir, `o${i}`), larch: join(dir, `l${i}`) } };
  ok(ostree(['init', `--repo=${places.R.ostree}`, '--mode=archive']));
  ok(ostree(['init', `--repo=${places.R.larch}`, '--mode=archive']));
  return places;
}

async function expectSameConfig(p: Places, key = 'R'): Promise<string> {
  const theirs = await readFile(join(p[key]!.ostree, 'config'), 'utf8');
  expect(await readFile(join(p[key]!.larch, 'config'), 'utf8')).toBe(theirs);
  return theirs;
}

describeInterop('remote add (against ostree)', () => {
  it('writes every option in ostree\'s order and escaping', async () => {
    const p = repos();
    expectSame(['remote', 'add', '--repo={R}', 'plain', 'http://example.com/ostree/gnome'], p);
    expectSame(['remote', 'add', '--repo={R}', '--no-sign-verify', 'nosign', 'http://another.com/repo'], p);
    expectSame(
      [
        'remote',
        'add',
        '--repo={R}',
        '--collection-id=org.example.Os',
        '--set=url=http://override.example/',
        '--set=k=a\tb\t',
        '--set=lead= x',
        '--set=k=second',
        '--no-gpg-verify',
        '--contenturl=http://content.example/',
        '--custom-backend=ostree-rs-ext',
        'all',
        'http://all.example/repo',
        'main',
        'other/branch',
      ],
      p,
    );
    expectSame(['remote', 'add', '--repo={R}', '--custom-backend=ostree-rs-ext', 'nourl'], p);
    expectSame(['remote', 'add', '--repo={R}', '--collection-id', 'example-id', 'cid', 'https://example.com/'], p);
    const config = await expectSameConfig(p);
    expect(config).toContain('[remote "all"]\nurl=http://override.example/\nbranches=main;other/branch;\ncontenturl=http://content.example/\ncustom-backend=ostree-rs-ext\n');
  });

  it('takes any URL as ostree does (a pull refuses one it cannot fetch), metalink= as the metalink key', async () => {
    const p = repos();
    expectSame(['remote', 'add', '--repo={R}', 'relative', 'repo'], p);
    expectSame(['remote', 'add', '--repo={R}', 'ftp', 'ftp://example.com/repo'], p);
    expectSame(['remote', 'add', '--repo={R}', 'ml', 'metalink=http://example.com/metalink.xml'], p);
    expectSame(['remote', 'add', '--repo={R}', 'mirrors', 'mirrorlist=http://example.com/mirrors'], p);
    expect(await expectSameConfig(p)).toContain('[remote "ml"]\nmetalink=http://example.com/metalink.xml\n');
    expect(expectSame(['remote', 'show-url', '--repo={R}', 'relative'], p).stdout).toBe('repo\n');
    expect(expectSame(['remote', 'show-url', '--repo={R}', 'ml'], p).error).toBe('error: No "url" option in remote "ml"');
    const pulled = larch(['pull', `--repo=${p.R!.larch}`, 'ftp', 'main']);
    expect(pulled.code).toBe(1);
    expect(pulled.stderr).toMatch(/^error: Invalid URI scheme in ftp:\/\/example\.com\/repo$/m);
  });

  it('refuses a duplicate, leaves it alone with --if-not-exists, replaces it with --force', async () => {
    const p = repos();
    expectSame(['remote', 'add', '--repo={R}', 'a', 'http://a.example/', 'main'], p);
    expectSame(['remote', 'add', '--repo={R}', 'b', 'http://b.example/'], p);
    expect(expectSame(['remote', 'add', '--repo={R}', '--no-sign-verify', 'a', 'http://x/'], p).error).toBe(
      'error: Remote configuration for "a" already exists: (in config)',
    );
    expectSame(['remote', 'add', '--repo={R}', '--if-not-exists', 'a', 'http://x/'], p);
    expectSame(['remote', 'add', '--repo={R}', '--force', 'a', 'http://a2.example/', 'other'], p);
    expectSame(['remote', 'add', '--repo={R}', '--force', 'new', 'http://new.example/'], p);
    expect(expectSame(['remote', 'add', '--repo={R}', '--if-not-exists', '--force', 'c', 'http://c/'], p).error).toBe(
      'error: Can only specify one of --if-not-exists and --force',
    );
    expect(await expectSameConfig(p)).toMatch(/\[remote "b"\][^[]*\[remote "a"\]\nurl=http:\/\/a2\.example\/\nbranches=other;\n/);
  });

  it('reports usage mistakes in ostree\'s words', () => {
    const p = repos();
    expect(expectSame(['remote', 'add', '--repo={R}'], p).error).toBe('error: NAME and URL must be specified');
    expectSame(['remote', 'add', '--repo={R}', 'onlyname'], p);
    expect(expectSame(['remote', 'add', '--repo={R}', '--custom-backend=x'], p).error).toBe('error: NAME must be specified');
    expect(expectSame(['remote', 'add', '--repo={R}', '--set=novalue', 'a', 'http://a/'], p).error).toBe("error: Missing '=' in KEY=VALUE for --set");
    expect(expectSame(['remote', 'add', '--repo={R}', '--no-sign-verify', '--sign-verify=ed25519=inline:AAAA', 'a', 'http://a/'], p).error).toBe(
      'error: Cannot specify both --sign-verify and --no-sign-verify',
    );
    expect(expectSame(['remote', 'add', '--repo={R}', '--sign-verify=ed25519', 'a', 'http://a/'], p).error).toBe(
      'error: Failed to parse KEYTYPE=[inline|file]:DATA in ed25519',
    );
    expect(expectSame(['remote', 'add', '--repo={R}', 'bad/name', 'http://a/'], p).error).toBe('error: Invalid remote name bad/name');
  });
});

describeInterop('remote delete, list, show-url (against ostree)', () => {
  it('deletes as ostree does, --if-exists included, and leaves the same config', async () => {
    const p = repos();
    for (const name of ['one', 'two', 'three']) expectSame(['remote', 'add', '--repo={R}', name, `http://${name}.example/`], p);
    expectSame(['remote', 'delete', '--repo={R}', 'three'], p);
    expectSame(['remote', 'delete', '--repo={R}', 'one'], p);
    expect(expectSame(['remote', 'delete', '--repo={R}', 'nosuch'], p).error).toBe('error: Remote "nosuch" not found');
    expectSame(['remote', 'delete', '--repo={R}', '--if-exists', 'nosuch'], p);
    expect(expectSame(['remote', 'delete', '--repo={R}', 'bad/x'], p).error).toBe('error: Invalid remote name bad/x');
    expect(expectSame(['remote', 'delete', '--repo={R}'], p).error).toBe('error: NAME must be specified');
    expect(await expectSameConfig(p)).toBe('[core]\nrepo_version=1\nmode=archive-z2\n\n[remote "two"]\nurl=http://two.example/\n');
    expectSame(['remote', 'delete', '--repo={R}', 'two'], p);
    expect(await expectSameConfig(p)).toBe('[core]\nrepo_version=1\nmode=archive-z2\n');
  });

  it('lists names and aligned URLs, and stops at a remote without a URL as ostree does', () => {
    const p = repos();
    expectSame(['remote', 'add', '--repo={R}', 'a-long-name', 'http://a.example/'], p);
    expectSame(['remote', 'add', '--repo={R}', 'b', 'file:///srv/b'], p);
    expect(expectSame(['remote', 'list', '--repo={R}'], p).stdout).toBe('a-long-name\nb\n');
    expect(expectSame(['remote', 'list', '-u', '--repo={R}'], p).stdout).toBe('a-long-name  http://a.example/\nb            file:///srv/b\n');
    expectSame(['remote', 'list', '--show-urls', '--repo={R}', 'ignored-extra'], p);
    expectSame(['remote', 'add', '--repo={R}', '--custom-backend=x', 'c-nourl'], p);
    const r = expectSame(['remote', 'list', '-u', '--repo={R}'], p);
    expect(r).toMatchObject({ code: 1, error: 'error: No "url" option in remote "c-nourl"' });
  });

  it('shows URLs as ostree does: unchecked, a file:// name as itself, any unknown name as not found', () => {
    const p = repos();
    expectSame(['remote', 'add', '--repo={R}', '--custom-backend=ostree-rs-ext', 'container', 'docker://quay.io/examplecorp/foo'], p);
    expect(expectSame(['remote', 'show-url', '--repo={R}', 'container'], p).stdout).toBe('docker://quay.io/examplecorp/foo\n');
    expect(expectSame(['remote', 'show-url', '--repo={R}', 'file:///some/repo'], p).stdout).toBe('file:///some/repo\n');
    expect(expectSame(['remote', 'show-url', '--repo={R}', 'bad/name'], p).error).toBe('error: Remote "bad/name" not found');
    expect(expectSame(['remote', 'show-url', '--repo={R}'], p).error).toBe('error: NAME must be specified');
    expectSame(['remote', 'show-url', '--repo={R}', 'container', 'extra'], p);
  });

  it('lists and shows the parent repo\'s remotes, and never deletes them', () => {
    const p = repos();
    const parent = repos().R;
    const q: Places = { ...p, P: parent };
    expectSame(['config', '--repo={R}', 'set', 'core.parent', '{P}'], q);
    expectSame(['remote', 'add', '--repo={P}', 'inherited', 'http://parent.example/'], q);
    expectSame(['remote', 'add', '--repo={R}', 'own', 'http://own.example/'], q);
    expect(expectSame(['remote', 'list', '-u', '--repo={R}'], q).stdout).toBe('inherited  http://parent.example/\nown        http://own.example/\n');
    expectSame(['remote', 'show-url', '--repo={R}', 'inherited'], q);
    expect(expectSame(['remote', 'delete', '--repo={R}', 'inherited'], q).error).toBe('error: Remote "inherited" not found');
  });
});

describeInterop('remote sub-verb help (against ostree)', () => {
  it('lists ostree\'s options of each sub-verb, in ostree\'s order', () => {
    const options = (help: string): string[] => [...help.matchAll(/^ {2}(-[^\s=,]+)/gm)].map((m) => m[1]!);
    for (const sub of ['add', 'delete', 'show-url', 'list', 'add-cookie', 'delete-cookie', 'list-cookies', 'refs', 'summary']) {
      const theirs = options(ok(ostree(['remote', sub, '--help'])));
      // `list --json` is Larch's own.
      expect({ sub, options: options(ok(larch(['remote', sub, '--help']))).filter((o) => o !== '--json') }).toEqual({ sub, options: theirs });
    }
  });
});
