import { describe, expect, it } from 'vitest';
import { KeyFile } from './config.js';
import { LarchError } from './errors.js';

describe('KeyFile', () => {
  const text = '# top comment\n[core]\nrepo_version=1\n  mode = bare\n\n# about the remote\n[remote "a.b"]\nurl=http://x/y\nbranches=main;other;\nunknown-key=kept\n';

  it('round-trips untouched text byte for byte', () => {
    expect(KeyFile.parse(text).toString()).toBe(text);
  });

  it('reads quoted group names with dots, trims keys and leading value space', () => {
    const kf = KeyFile.parse(text);
    expect(kf.groups()).toEqual(['core', 'remote "a.b"']);
    expect(kf.get('core', 'mode')).toBe('bare');
    expect(kf.get('remote "a.b"', 'url')).toBe('http://x/y');
    expect(kf.getStringList('remote "a.b"', 'branches')).toEqual(['main', 'other']);
    expect(kf.getInteger('core', 'repo_version', 0)).toBe(1);
  });

  it('sets keys in place, appends new keys after the group, new groups after a blank line', () => {
    const kf = KeyFile.parse(text);
    kf.set('core', 'mode', 'archive-z2');
    kf.set('core', 'fsync', false);
    kf.set('new', 'k', ' lead\tand\\slash');
    expect(kf.toString()).toBe(
      '# top comment\n[core]\nrepo_version=1\nmode=archive-z2\nfsync=false\n\n# about the remote\n[remote "a.b"]\nurl=http://x/y\nbranches=main;other;\nunknown-key=kept\n\n[new]\nk=\\slead\\tand\\\\slash\n',
    );
    expect(KeyFile.parse(kf.toString()).get('new', 'k')).toBe(' lead\tand\\slash');
    expect(kf.getBoolean('core', 'fsync', true)).toBe(false);
  });

  it('lists with escaped separators, removal, booleans', () => {
    const kf = KeyFile.parse('[g]\nl=a\\;b;c\nb=1\nbad=maybe\n');
    expect(kf.getStringList('g', 'l')).toEqual(['a;b', 'c']);
    kf.setStringList('g', 'l2', ['x;y', 'z']);
    expect(kf.getRaw('g', 'l2')).toBe('x\\;y;z;');
    expect(kf.getBoolean('g', 'b', false)).toBe(true);
    expect(() => kf.getBoolean('g', 'bad', false)).toThrow(LarchError);
    expect(kf.getBoolean('g', 'missing', true)).toBe(true);
    expect(kf.removeKey('g', 'b')).toBe(true);
    expect(kf.hasKey('g', 'b')).toBe(false);
    expect(kf.removeGroup('g')).toBe(true);
    expect(kf.groups()).toEqual([]);
  });

  it('rejects lines that are not groups, keys or comments', () => {
    expect(() => KeyFile.parse('[core]\nnot a pair\n')).toThrow(/not a key-value pair/);
    expect(() => KeyFile.parse('k=v\n')).toThrow(/not a key-value pair/);
    try {
      KeyFile.parse('[core]\n=v\n');
      expect.unreachable();
    } catch (e) {
      expect((e as LarchError).code).toBe('BAD_CONFIG');
    }
  });
});
