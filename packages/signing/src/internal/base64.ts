/**
 * Strict base64 for key material. Node's Buffer decoder silently skips characters it does not
 * know, so "abc!def" would decode to something; a key file with a typo must be reported instead.
 */

const B64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Decode standard (padded) base64, or return null when the text is not canonical base64. */
export function decodeBase64Strict(text: string): Uint8Array | null {
  if (!B64.test(text)) return null;
  const buf = Buffer.from(text, 'base64');
  // Reject non-zero trailing bits (a second spelling of the same bytes).
  if (buf.toString('base64') !== text) return null;
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}

export function encodeBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
}
