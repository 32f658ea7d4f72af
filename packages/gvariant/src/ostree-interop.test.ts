// Interop with the real `ostree` CLI: objects it writes must decode, pass the normal-form
// check, and re-encode byte for byte; GLib's text parser and printer (reached through
// `ostree commit --add-metadata` and `ostree show --raw`) must agree with ours.
// In CI (CI=true) a missing `ostree` fails these tests; locally they are skipped.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { samples } from '../test/random.js';
import { Variant, byteswap, bswap32, bswap64, decodeNormal, encode, isNormalForm, lookup, parseText, print, type GValue } from './index.js';

const COMMIT = '(a{sv}aya(say)sstayay)';
const DIRTREE = '(a(say)a(sayay))';
const DIRMETA = '(uuua(ayay))';

const haveOstree = spawnSync('ostree', ['--version'], { encoding: 'utf8' }).status === 0;
const inCI = process.env.CI === 'true';
const interop = haveOstree || inCI ? it : it.skip;

function ostree(...args: string[]): string {
  if (!haveOstree) throw new Error('the ostree CLI is required for interop tests (CI=true) but was not found in PATH');
  // GLib prints in the locale's charset: pin a UTF-8 one so strings are compared as they are.
  const r = spawnSync('ostree', args, { encoding: 'utf8', env: { ...process.env, LC_ALL: 'C.UTF-8' } });
  if (r.status !== 0) throw new Error(`ostree ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout;
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

function listObjects(repo: string): Array<{ checksum: string; kind: string; path: string }> {
  const out: Array<{ checksum: string; kind: string; path: string }> = [];
  const root = join(repo, 'objects');
  for (const d of readdirSync(root)) {
    for (const f of readdirSync(join(root, d))) {
      const [rest, kind] = f.split('.');
      out.push({ checksum: d + rest, kind, path: join(root, d, f) });
    }
  }
  return out;
}

let work = '';
beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'larch-gvariant-'));
});
afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('objects written by ostree 2022.7', () => {
  interop('reproduces the spec 5 repository and re-encodes every metadata object byte for byte', () => {
    const repo = join(work, 'R');
    const tree = join(work, 'D');
    ostree('init', `--repo=${repo}`, '--mode=archive');
    mkdirSync(join(tree, 'sub'), { recursive: true });
    writeFileSync(join(tree, 'hello.txt'), 'hello\n');
    symlinkSync('hello.txt', join(tree, 'link'));
    writeFileSync(join(tree, 'sub', 'empty'), '');
    chmodSync(join(tree, 'hello.txt'), 0o644);
    chmodSync(join(tree, 'sub', 'empty'), 0o644);
    chmodSync(tree, 0o755);
    chmodSync(join(tree, 'sub'), 0o755);
    const common = ['--owner-uid=0', '--owner-gid=0', '--timestamp=2020-01-01T00:00:00Z'];
    const id = ostree('commit', `--repo=${repo}`, '-b', 'test', `--tree=dir=${tree}`, ...common, '-s', 'subj', '-m', 'body', '--add-metadata-string=version=1.0').trim();
    expect(id).toBe('523dfdfd32c67bb444a4ea88a9ed9c0757147265835f891b5eee72895668366d');

    // A second, larger commit: a parent, 2-byte framing offsets (dirtree > 255 bytes),
    // many files and subdirectories, and xattrs when the filesystem tooling allows it.
    mkdirSync(join(tree, 'many', 'deeper'), { recursive: true });
    for (let i = 0; i < 300; i++) writeFileSync(join(tree, 'many', `f-${i}-${'x'.repeat(i % 17)}`), `${i}\n`);
    for (let i = 0; i < 20; i++) mkdirSync(join(tree, 'many', 'deeper', `d${i}`));
    const xattrs = spawnSync('setfattr', ['-n', 'user.larch', '-v', 'v1', join(tree, 'many')]).status === 0;
    const id2 = ostree('commit', `--repo=${repo}`, '-b', 'test', `--tree=dir=${tree}`, ...common, '-s', 'second').trim();

    const seen = { commit: 0, dirtree: 0, dirmeta: 0 };
    let wideOffsets = false;
    let sawXattr = false;
    for (const o of listObjects(repo)) {
      const type = o.kind === 'commit' ? COMMIT : o.kind === 'dirtree' ? DIRTREE : o.kind === 'dirmeta' ? DIRMETA : null;
      if (type === null) continue;
      seen[o.kind as keyof typeof seen]++;
      const bytes = new Uint8Array(readFileSync(o.path));
      expect(sha256(bytes)).toBe(o.checksum);
      expect(isNormalForm(type, bytes)).toBe(true);
      const value = decodeNormal<GValue[]>(type, bytes);
      expect(hex(encode(type, value))).toBe(hex(bytes));
      if (o.kind === 'dirtree' && bytes.length > 0xff) wideOffsets = true;
      if (o.kind === 'dirmeta' && (value[3] as GValue[]).length > 0) sawXattr = true;
    }
    expect(seen.commit).toBe(2);
    expect(seen.dirtree).toBeGreaterThanOrEqual(4);
    expect(seen.dirmeta).toBeGreaterThanOrEqual(1);
    expect(wideOffsets).toBe(true);
    if (xattrs) expect(sawXattr).toBe(true);

    // Field-level check of the second commit.
    const c2 = new Uint8Array(readFileSync(listObjects(repo).find((o) => o.checksum === id2 && o.kind === 'commit')!.path));
    const [meta, parent, related, subject, body, ts] = decodeNormal<GValue[]>(COMMIT, c2);
    expect(hex(parent as Uint8Array)).toBe(id);
    expect(related).toEqual([]);
    expect([subject, body]).toEqual(['second', '']);
    expect(bswap64(ts as bigint)).toBe(1577836800n);
    expect(lookup(meta as Array<[string, Variant]>, 'ostree.ref-binding')).toEqual(new Variant('as', ['test']));

    const dm = listObjects(repo).find((o) => o.checksum === '446a0ef11b7cc167f3b603e585c7eeeeb675faa412d5ec73f62988eb0b6c5488')!;
    const [uid, gid, mode] = decodeNormal<number[]>(DIRMETA, new Uint8Array(readFileSync(dm.path)));
    expect([uid, gid, bswap32(mode)]).toEqual([0, 0, 0o40755]);
  });
});

describe("GLib's text format, through ostree", () => {
  // Values as a user would pass them to --add-metadata, covering the text features.
  const texts: Array<[string, string]> = [
    ['u64', 'uint64 5'],
    ['bytes', '[byte 0x01, 0x02]'],
    ['emptyas', '@as []'],
    ['dbl', '1.5'],
    ['dblsmall', '0.1'],
    ['quote', `"it's"`],
    ['bstr', "b'user.a'"],
    ['tuple', '(1, "x", true)'],
    ['dict', '{"k": <int16 -3>}'],
    ['tab', "'tab\\there'"],
    ['maybes', '[@mi 3, nothing]'],
    ['justnothing', '@mmi just nothing'],
    ['neg', 'int64 -9000000000'],
    ['hex', '0x7f'],
    ['octal', '010'],
    ['strs', "['a', 'b\\u00e9', 'c\\U0001f600']"],
    ['nested', '<<uint32 7>>'],
    ['entry', "{'k', 'v'}"],
    ['opath', "objectpath '/org/x'"],
    ['sig', "signature 'a{sv}'"],
    ['bools', '[true, false]'],
    ['unit', '()'],
    ['single', '(uint16 9,)'],
    ['mixednums', '[1, 2.5]'],
    ['inf', 'inf'],
    ['ctrl', "'\\u0001\\u200b'"],
    ['handle', 'handle 3'],
    ['dictints', '{1: "one", 2: "two"}'],
  ];

  interop('GLib parses to the same values as parseText, and `ostree show --raw` prints what print() prints', () => {
    const repo = join(work, 'T');
    const tree = join(work, 'E');
    mkdirSync(tree, { recursive: true });
    ostree('init', `--repo=${repo}`, '--mode=archive');
    const id = ostree(
      'commit',
      `--repo=${repo}`,
      '-b',
      'text',
      `--tree=dir=${tree}`,
      '--timestamp=2021-06-01T12:00:00Z',
      '-s',
      'text format',
      ...texts.map(([k, v]) => `--add-metadata=${k}=${v}`),
    ).trim();
    const obj = listObjects(repo).find((o) => o.checksum === id && o.kind === 'commit')!;
    const bytes = new Uint8Array(readFileSync(obj.path));
    const commit = decodeNormal<GValue[]>(COMMIT, bytes);
    const meta = commit[0] as Array<[string, Variant]>;
    for (const [k, text] of texts) {
      expect(lookup(meta, k), `${k}=${text}`).toEqual(parseText(text));
    }
    const raw = ostree('show', `--repo=${repo}`, '--raw', 'text');
    expect(raw).toBe(`commit ${id}\n${print(COMMIT, byteswap(COMMIT, commit), { typeAnnotate: true })}\n`);
    for (const k of ['dict', 'maybes', 'strs', 'dblsmall']) {
      const shown = ostree('show', `--repo=${repo}`, `--print-metadata-key=${k}`, 'text');
      const v = lookup(meta, k)!;
      expect(shown).toBe(`${print(v.type, byteswap(v.type, v.value), { typeAnnotate: true })}\n`);
    }
  });

  interop('random values printed with type annotations are parsed by GLib to the same value and printed back identically', () => {
    const repo = join(work, 'G');
    const tree = join(work, 'F');
    mkdirSync(tree, { recursive: true });
    ostree('init', `--repo=${repo}`, '--mode=archive');
    const cases = samples(11, 150).map(({ t, v }, i) => ({ key: `k${String(i).padStart(3, '0')}`, t, v, text: print(t, v, { typeAnnotate: true }) }));
    const id = ostree(
      'commit',
      `--repo=${repo}`,
      '-b',
      'rand',
      `--tree=dir=${tree}`,
      '--timestamp=2021-06-01T12:00:00Z',
      ...cases.map((c) => `--add-metadata=${c.key}=${c.text}`),
    ).trim();
    const bytes = new Uint8Array(readFileSync(listObjects(repo).find((o) => o.checksum === id && o.kind === 'commit')!.path));
    const commit = decodeNormal<GValue[]>(COMMIT, bytes);
    const meta = commit[0] as Array<[string, Variant]>;
    for (const c of cases) {
      expect(lookup(meta, c.key), `${c.t.str}: ${c.text}`).toEqual(new Variant(c.t.str, c.v));
      expect(parseText(c.text)).toEqual(new Variant(c.t.str, c.v));
    }
    const raw = ostree('show', `--repo=${repo}`, '--raw', 'rand');
    expect(raw).toBe(`commit ${id}\n${print(COMMIT, byteswap(COMMIT, commit), { typeAnnotate: true })}\n`);
  });
});
