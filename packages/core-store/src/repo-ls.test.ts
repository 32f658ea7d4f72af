import { describe, expect, it } from 'vitest';
import { formatLsEntry } from './repo-ls.js';

const C = 'ab'.repeat(32);
describe('formatLsEntry', () => {
  it('formats directories, files and symlinks like ostree ls', () => {
    expect(formatLsEntry({ path: '/', type: 'd', mode: 0o40755, uid: 0, gid: 0, size: 0, checksum: C, metaChecksum: C })).toBe('d00755 0 0      0 /');
    expect(formatLsEntry({ path: '/f', type: '-', mode: 0o104755, uid: 12, gid: 34, size: 123456789, checksum: C })).toBe('-04755 12 34 123456789 /f');
    expect(formatLsEntry({ path: '/l', type: 'l', mode: 0o120777, uid: 0, gid: 0, size: 0, checksum: C, target: 'x' })).toBe('l00777 0 0      0 /l -> x');
  });
  it('adds checksums with -C', () => {
    expect(formatLsEntry({ path: '/d', type: 'd', mode: 0o40700, uid: 0, gid: 0, size: 0, checksum: C, metaChecksum: 'cd'.repeat(32) }, { checksums: true })).toBe(
      `d00700 0 0      0 ${C} ${'cd'.repeat(32)} /d`,
    );
  });
});
