import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LarchError } from './errors.js';
import { assertNoSymlinkInLeadingPath, openBeneath, sanitize, splitSafePath, validatePathComponent } from './fs-safety.js';

const root = mkdtempSync(path.join(tmpdir(), 'larch-fs-safety-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('validatePathComponent', () => {
  for (const bad of ['', '.', '..', 'a/b', '/', '../x', 'x/..', 'a\0b', '\0']) {
    it(`rejects ${JSON.stringify(bad)} with INVALID_NAME`, () => {
      let err: unknown;
      try {
        validatePathComponent(bad, { dirtree: 'abc' });
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(LarchError);
      expect((err as LarchError).code).toBe('INVALID_NAME');
      expect((err as LarchError).data).toMatchObject({ name: bad, dirtree: 'abc' });
    });
  }
  for (const good of ['a', '...', '.hidden', 'a..b', 'ünïcödé', ' ', 'x'.repeat(255)]) {
    it(`accepts ${JSON.stringify(good.slice(0, 20))}`, () => {
      expect(() => validatePathComponent(good)).not.toThrow();
    });
  }
});

describe('splitSafePath', () => {
  it('splits and drops empty components', () => {
    expect(splitSafePath('/usr//bin/')).toEqual(['usr', 'bin']);
    expect(splitSafePath('/')).toEqual([]);
  });
  it('rejects dot components', () => {
    expect(() => splitSafePath('/usr/../etc')).toThrow(expect.objectContaining({ code: 'INVALID_NAME' }));
    expect(() => splitSafePath('./a')).toThrow(expect.objectContaining({ code: 'INVALID_NAME' }));
  });
});

describe('assertNoSymlinkInLeadingPath and openBeneath', () => {
  const base = path.join(root, 'base');
  const outside = path.join(root, 'outside');
  mkdirSync(path.join(base, 'real/sub'), { recursive: true });
  mkdirSync(outside);
  writeFileSync(path.join(outside, 'sentinel'), 'original');
  symlinkSync(outside, path.join(base, 'escape'));
  symlinkSync(path.join(outside, 'sentinel'), path.join(base, 'real', 'link-to-sentinel'));
  writeFileSync(path.join(base, 'plainfile'), 'x');

  it('accepts real directories', async () => {
    await expect(assertNoSymlinkInLeadingPath(base, ['real', 'sub', 'file'])).resolves.toBeUndefined();
  });
  it('refuses a symlinked parent', async () => {
    await expect(assertNoSymlinkInLeadingPath(base, ['escape', 'sentinel'])).rejects.toMatchObject({ code: 'EXISTS' });
  });
  it('refuses a non-directory parent', async () => {
    await expect(assertNoSymlinkInLeadingPath(base, ['plainfile', 'x'])).rejects.toMatchObject({ code: 'EXISTS' });
  });
  it('creates a new file beneath the root', async () => {
    const fh = await openBeneath(base, 'real/sub/new', { create: true });
    await fh.writeFile('data');
    await fh.close();
    expect(readFileSync(path.join(base, 'real/sub/new'), 'utf8')).toBe('data');
  });
  it('never writes through a symlinked parent or a final symlink', async () => {
    await expect(openBeneath(base, 'escape/sentinel', { create: true })).rejects.toMatchObject({ code: 'EXISTS' });
    await expect(openBeneath(base, 'real/link-to-sentinel', { create: true })).rejects.toMatchObject({ code: 'EEXIST' });
    await expect(openBeneath(base, 'real/link-to-sentinel', { write: true })).rejects.toMatchObject({ code: 'ELOOP' });
    expect(readFileSync(path.join(outside, 'sentinel'), 'utf8')).toBe('original');
  });
  it('rejects dot-dot in the relative path', async () => {
    await expect(openBeneath(base, '../outside/sentinel', { create: true })).rejects.toMatchObject({ code: 'INVALID_NAME' });
  });
});

describe('sanitize', () => {
  it('escapes control characters and caps the length', () => {
    expect(sanitize('a\nb\u0001')).toBe('"a\\nb\\u0001"');
    expect(sanitize('x'.repeat(500)).length).toBeLessThan(210);
  });
});
