/**
 * @larch/gvariant — GVariant serialization in normal form, as OSTree stores its
 * metadata objects. Pure functions over Uint8Array; no I/O, no dependencies.
 * See spec/gvariant.md.
 */

export { GVariantError, type GVariantErrorCode } from './errors.js';
export { parseType, MAX_DEPTH, type GVType } from './type.js';
export { Variant, type GValue, lookup, bswap16, bswap32, bswap64 } from './value.js';
export { encode } from './encode.js';
export { decode } from './decode.js';
export { isNormalForm, decodeNormal } from './normal.js';
export { print } from './print.js';
export { byteswap } from './byteswap.js';
export { parseText } from './parse-text.js';
