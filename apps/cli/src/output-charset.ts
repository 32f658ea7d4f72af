/**
 * Text output in the locale's charset, as ostree's output reaches the terminal. ostree prints
 * through GLib's g_print/g_printerr, which convert UTF-8 to the charset of LC_CTYPE (or $CHARSET)
 * and put one `?` in place of each character that charset cannot hold: under LANG=C, `café`
 * prints as `caf?`. Larch does the same to its text output, so scripts that compare the two see
 * the same bytes in every locale. Binary output (`cat`, `export` to stdout) is never converted,
 * and --json output is pure ASCII (see `asciiJson`), so it passes through unchanged.
 *
 * The charset is looked up only when a line actually holds a non-ASCII character, so ordinary
 * output costs nothing.
 */
import { TextDecoder } from 'node:util';
import { ctypeCharset } from './locale-env.js';

type Env = Record<string, string | undefined>;

/** Turns UTF-8 text into the bytes the locale's charset gives it; null when it is UTF-8. */
export type Encoder = ((text: string) => Buffer) | null;

// eslint-disable-next-line no-control-regex
const NON_ASCII = /[^\u0000-\u007f]/u;

function normalise(charset: string): string {
  return charset.toUpperCase().replace(/[^A-Z0-9]/g, '');
}

/** A single-byte charset's encoder, from the decoder Node has for it; null when it has none. */
function singleByte(label: string): ((text: string) => Buffer) | null {
  let decoder: TextDecoder;
  try {
    decoder = new TextDecoder(label, { fatal: false });
  } catch {
    return null;
  }
  const table = new Map<number, number>();
  for (let b = 0; b < 256; b++) {
    const s = decoder.decode(Uint8Array.of(b));
    const cp = s.codePointAt(0);
    if (s.length === 1 && cp !== undefined && cp !== 0xfffd && !table.has(cp)) table.set(cp, b);
  }
  return (text) => {
    const out: number[] = [];
    for (const ch of text) out.push(table.get(ch.codePointAt(0) ?? 0x3f) ?? 0x3f);
    return Buffer.from(out);
  };
}

/** Code points below `limit` kept as they are, every other one `?` (ASCII, ISO-8859-1). */
function truncating(limit: number): (text: string) => Buffer {
  return (text) => {
    const out: number[] = [];
    for (const ch of text) {
      const cp = ch.codePointAt(0) ?? 0x3f;
      out.push(cp < limit ? cp : 0x3f);
    }
    return Buffer.from(out);
  };
}

/**
 * The encoder for a charset name as nl_langinfo(CODESET) gives it. Multi-byte charsets other
 * than UTF-8 (EUC-JP, GB18030, …) keep their ASCII subset and get `?` for everything else.
 */
export function encoderFor(charset: string): Encoder {
  const n = normalise(charset);
  if (n === 'UTF8') return null;
  if (n === 'ANSIX341968' || n === 'ASCII' || n === 'USASCII') return truncating(0x80);
  // WHATWG decoders read "ISO-8859-1" as windows-1252; the C library does not.
  if (n === 'ISO88591' || n === 'LATIN1') return truncating(0x100);
  return singleByte(charset) ?? truncating(0x80);
}

/** GLib's console charset for `env`: $CHARSET when set, else LC_CTYPE's codeset. */
export function encoderFromEnv(env: Env = process.env): Encoder {
  const override = env.CHARSET;
  if (override !== undefined && override !== '') return override.includes('UTF-8') ? null : encoderFor(override);
  return encoderFor(ctypeCharset(env));
}

/** A converter for text output that decides the charset on the first non-ASCII text it sees. */
export function localeText(env: Env = process.env): (text: string) => string | Buffer {
  let encoder: Encoder | undefined;
  return (text) => {
    if (!NON_ASCII.test(text)) return text;
    if (encoder === undefined) encoder = encoderFromEnv(env);
    return encoder === null ? text : encoder(text);
  };
}

/**
 * JSON text with every non-ASCII character written as a \u escape: the same value for any JSON
 * reader, and the same bytes in every locale.
 */
export function asciiJson(json: string): string {
  return json.replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
