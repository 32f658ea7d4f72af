import { describe, expect, it } from 'vitest';
import { validateChecksum, validateCollectionId, validateName, validateRefName, validateRemoteName } from './validate.js';

describe('validators', () => {
  it('checksums: exactly 64 lowercase hex', () => {
    expect(() => validateChecksum('a'.repeat(64))).not.toThrow();
    for (const bad of ['A'.repeat(64), 'a'.repeat(63), 'a'.repeat(65), 'g'.repeat(64), '']) {
      expect(() => validateChecksum(bad)).toThrow(expect.objectContaining({ code: 'INVALID_CHECKSUM' }));
    }
  });
  it('file names', () => {
    for (const ok of ['a', 'ünïcödé', '.hidden', '...', 'a b']) expect(() => validateName(ok)).not.toThrow();
    for (const bad of ['', '.', '..', 'a/b', '/', 'a\0b', 'x\uD800y']) {
      expect(() => validateName(bad)).toThrow(expect.objectContaining({ code: 'INVALID_NAME' }));
    }
  });
  it('ref names follow [\\w\\d][-._\\w\\d]* components', () => {
    for (const ok of ['main', 'a/b/c', 'fedora/x86_64/ws', '1.0', 'a-b_c.d', 'ü']) expect(() => validateRefName(ok)).not.toThrow();
    for (const bad of ['', '-a', '.a', 'a//b', 'a/', '/a', 'a b', 'a:b', 'a/.b', 'a^']) {
      expect(() => validateRefName(bad)).toThrow(expect.objectContaining({ code: 'INVALID_REF' }));
    }
  });
  it('remote names are a single component', () => {
    expect(() => validateRemoteName('origin')).not.toThrow();
    expect(() => validateRemoteName('a/b')).toThrow();
    expect(() => validateRemoteName('-x')).toThrow();
  });
  it('collection ids', () => {
    expect(() => validateCollectionId('org.example.Os')).not.toThrow();
    for (const bad of ['org', 'org..x', '1org.x', 'org.x-y', 'a.' + 'b'.repeat(255)]) expect(() => validateCollectionId(bad)).toThrow();
  });
});
