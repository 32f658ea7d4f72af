import { Variant, bswap64, encode } from '@larch/gvariant';
import { describe, expect, it } from 'vitest';
import { SUMMARY_TYPE, readSummary, summaryRefTimestamp } from './repo-summary.js';

describe('readSummary', () => {
  it('parses refs, sizes (little-endian), checksums and metadata', () => {
    const csum = new Uint8Array(32).fill(0xab);
    const bytes = encode(SUMMARY_TYPE, [
      [['main', [142n, csum, [['ostree.commit.timestamp', new Variant('t', bswap64(1577836800n))]]]]],
      [['ostree.summary.mode', new Variant('s', 'archive-z2')]],
    ] as never);
    // The size is stored in host order: 142 = 8e 00 00 00 00 00 00 00.
    expect(Buffer.from(bytes).includes(Buffer.from('8e00000000000000', 'hex'))).toBe(true);
    const s = readSummary(bytes);
    expect(s.refs).toHaveLength(1);
    expect(s.refs[0]).toMatchObject({ name: 'main', size: 142, checksum: 'ab'.repeat(32) });
    expect(summaryRefTimestamp(s.refs[0])).toBe(1577836800n);
    expect(s.metadata[0][0]).toBe('ostree.summary.mode');
    expect(s.collectionMap.size).toBe(0);
  });
  it('rejects a ref checksum that is not 32 bytes', () => {
    const bytes = encode(SUMMARY_TYPE, [[['main', [1n, new Uint8Array(5), []]]], []] as never);
    expect(() => readSummary(bytes)).toThrow(expect.objectContaining({ code: 'OBJECT_CORRUPTED' }));
  });
});
