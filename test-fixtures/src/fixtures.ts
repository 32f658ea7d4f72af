/**
 * The fixture trees every commit/checkout path of the foundation must handle,
 * as named kinds. Each kind has a canonical-permissions variant (file and
 * directory modes masked to 0755, no owners), which is what a bare-user-only
 * repository can represent: committing it gives the same checksum in every
 * repo mode.
 */
import { makeTree, type TreeEntry, type TreeSpec } from './tree.js';

export const FIXTURE_KINDS = [
  'empty',
  'small-files',
  'modes',
  'symlinks',
  'nested',
  'unicode',
  'odd-names',
  'hardlinks',
  'mixed',
] as const;
/** Every kind, including the > 64 MiB one that only slow tests build. */
export const ALL_FIXTURE_KINDS = [...FIXTURE_KINDS, 'large-file'] as const;
export type FixtureKind = (typeof ALL_FIXTURE_KINDS)[number];

/** Size of the generated file in the 'large-file' kind: above 64 MiB and not a multiple of any block size. */
export const LARGE_FILE_SIZE = 64 * 1024 * 1024 + 12_345;
export const LARGE_FILE_SEED = 0x1a7c4;

export interface FixtureOptions {
  /** Mask every mode to 0755 and drop owners (bare-user-only compatible). */
  canonical?: boolean;
  /** Must be true to build 'large-file' (writes > 64 MiB). */
  large?: boolean;
}

const smallFiles: TreeSpec = {
  'hello.txt': 'hello\n',
  'empty-file': '',
  'no-newline': 'no trailing newline',
  'bytes.bin': { type: 'file', content: Uint8Array.from({ length: 256 }, (_, i) => i) },
  'seeded-4k.bin': { type: 'file', generate: { size: 4096, seed: 1 } },
  'seeded-100k.bin': { type: 'file', generate: { size: 100_003, seed: 2 } },
  'text/lorem.txt': 'Lorem ipsum dolor sit amet, consectetur adipiscing elit.\n'.repeat(200),
  'text/same-as-hello.txt': 'hello\n',
};

const modes: TreeSpec = {
  'exec-0755': { type: 'file', content: '#!/bin/sh\necho hi\n', mode: 0o755 },
  'private-0700': { type: 'file', content: 'p700\n', mode: 0o700 },
  'secret-0600': { type: 'file', content: 's600\n', mode: 0o600 },
  'readonly-0444': { type: 'file', content: 'r444\n', mode: 0o444 },
  'group-0640': { type: 'file', content: 'g640\n', mode: 0o640 },
  'setuid-04755': { type: 'file', content: 'suid\n', mode: 0o4755 },
  'setgid-02755': { type: 'file', content: 'sgid\n', mode: 0o2755 },
  'sticky-01777': { type: 'dir', mode: 0o1777 },
  'sticky-01777/inside': 'in sticky\n',
  'private-dir-0700': { type: 'dir', mode: 0o700 },
  'private-dir-0700/inside': { type: 'file', content: 'in private\n', mode: 0o600 },
  'setgid-dir-02755': { type: 'dir', mode: 0o2755 },
  'setgid-dir-02755/inside': 'in setgid dir\n',
};

const symlinks: TreeSpec = {
  'target.txt': 'the target\n',
  'sub/file': 'sub file\n',
  'relative': { type: 'symlink', target: 'target.txt' },
  'relative-up': { type: 'symlink', target: 'sub/../target.txt' },
  'sub/parent-link': { type: 'symlink', target: '../target.txt' },
  'absolute': { type: 'symlink', target: '/usr/share/larch-fixture/absolute-target' },
  'dangling': { type: 'symlink', target: 'does-not-exist' },
  'dir-link': { type: 'symlink', target: 'sub' },
  'link-to-link': { type: 'symlink', target: 'relative' },
  'self-loop': { type: 'symlink', target: 'self-loop' },
  'long-target': { type: 'symlink', target: `${'x'.repeat(200)}/${'y'.repeat(200)}` },
};

const nested: TreeSpec = {
  'a/b/c/d/e/f/deep.txt': 'deep\n',
  'a/b/sibling.txt': 'sibling\n',
  'empty-dir': { type: 'dir' },
  'a/b/c/empty-inside': { type: 'dir' },
  'chain/of/empty/dirs': { type: 'dir' },
  'wide/0': '0\n',
  'wide/1': '1\n',
  'wide/2': '2\n',
  'wide/10': '10\n',
  'wide/A': 'A\n',
  'wide/a': 'a\n',
  'wide/_': '_\n',
};

const unicode: TreeSpec = {
  // the same visible name in NFC (U+00E9) and NFD (e + U+0301): two different entries
  'caf\u00e9': 'nfc\n',
  'cafe\u0301': 'nfd\n',
  '\u{1F332}-tree.txt': 'emoji\n',
  '\u{1F468}\u200D\u{1F469}\u200D\u{1F467}': 'zwj sequence\n',
  '\u4E2D\u6587\u76EE\u5F55/\u6587\u4EF6.txt': 'cjk\n',
  '\u65E5\u672C\u8A9E\u306E\u30D5\u30A1\u30A4\u30EB': 'japanese\n',
  '\u0391\u03B2\u03B3-\u03A9mega': 'greek\n',
  'cyr-\u0436\u0443\u0440\u043D\u0430\u043B': 'cyrillic\n',
  'unicode-link-\u00e9': { type: 'symlink', target: 'cafe\u0301' },
  '\u00c5ngstr\u00f6m-dir': { type: 'dir' },
};

const oddNames: TreeSpec = {
  'with space': 'space\n',
  ' leading-space': 'leading\n',
  'trailing-space ': 'trailing\n',
  '-rf': 'dash rf\n',
  '--x': 'double dash\n',
  '-': 'single dash\n',
  '--': 'double dash only\n',
  'dir with spaces/-n': 'dash n in dir\n',
  '-dir/--help': 'help\n',
  '.hidden': 'hidden\n',
  '..double-dot-prefix': 'dots\n',
  '...': 'three dots\n',
  "quote'single": 'q1\n',
  'quote"double': 'q2\n',
  'back\\slash': 'backslash\n',
  'star*question?': 'glob\n',
  'semi;colon&amp|pipe': 'shell\n',
  '$HOME': 'dollar\n',
  '-link': { type: 'symlink', target: '-rf' },
};

const hardlinks: TreeSpec = {
  'original': 'shared inode content\n',
  'second-name': { type: 'hardlink', to: 'original' },
  'sub/third-name': { type: 'hardlink', to: 'original' },
  'tool': { type: 'file', content: '#!/bin/sh\nexit 0\n', mode: 0o755 },
  'bin/tool-link': { type: 'hardlink', to: 'tool' },
  'copy-not-link': 'shared inode content\n',
};

function prefixed(prefix: string, spec: TreeSpec): TreeSpec {
  const out: TreeSpec = {};
  for (const [p, e] of Object.entries(spec)) {
    out[`${prefix}/${p}`] = typeof e !== 'string' && e.type === 'hardlink' ? { type: 'hardlink', to: `${prefix}/${e.to}` } : e;
  }
  return out;
}

function canonicalEntry(e: TreeEntry | string): TreeEntry | string {
  if (typeof e === 'string' || e.type === 'hardlink') return e;
  if (e.type === 'symlink') return { type: 'symlink', target: e.target };
  if (e.type === 'dir') return { type: 'dir', mode: (e.mode ?? 0o755) & 0o755 };
  return { ...e, mode: (e.mode ?? 0o644) & 0o755, uid: undefined, gid: undefined };
}

/** The canonical-permissions variant of a spec: modes masked to 0755, owners dropped. */
export function canonicalSpec(spec: TreeSpec): TreeSpec {
  return Object.fromEntries(Object.entries(spec).map(([p, e]) => [p, canonicalEntry(e)]));
}

/** The spec of a fixture kind (no files written). */
export function fixtureSpec(kind: FixtureKind, opts: FixtureOptions = {}): TreeSpec {
  let spec: TreeSpec;
  switch (kind) {
    case 'empty':
      spec = {};
      break;
    case 'small-files':
      spec = smallFiles;
      break;
    case 'large-file':
      spec = {
        'large.bin': { type: 'file', generate: { size: LARGE_FILE_SIZE, seed: LARGE_FILE_SEED } },
        'small-neighbour.txt': 'next to a large file\n',
      };
      break;
    case 'modes':
      spec = modes;
      break;
    case 'symlinks':
      spec = symlinks;
      break;
    case 'nested':
      spec = nested;
      break;
    case 'unicode':
      spec = unicode;
      break;
    case 'odd-names':
      spec = oddNames;
      break;
    case 'hardlinks':
      spec = hardlinks;
      break;
    case 'mixed':
      spec = {
        ...prefixed('small', smallFiles),
        ...prefixed('modes', modes),
        ...prefixed('symlinks', symlinks),
        ...prefixed('nested', nested),
        ...prefixed('unicode', unicode),
        ...prefixed('odd', oddNames),
        ...prefixed('hardlinks', hardlinks),
      };
      break;
  }
  return opts.canonical ? canonicalSpec(spec) : { ...spec };
}

/**
 * Builds the fixture tree `kind` in `dir` (created if missing, must not hold
 * the same paths). 'large-file' writes LARGE_FILE_SIZE bytes, streamed, and
 * throws unless `opts.large` is set so only slow tests pay for it.
 */
export async function makeFixtureTree(dir: string, kind: FixtureKind, opts: FixtureOptions = {}): Promise<TreeSpec> {
  if (kind === 'large-file' && !opts.large) {
    throw new Error("makeFixtureTree: 'large-file' writes > 64 MiB; pass { large: true } (slow tests only)");
  }
  const spec = fixtureSpec(kind, opts);
  await makeTree(dir, spec);
  return spec;
}
