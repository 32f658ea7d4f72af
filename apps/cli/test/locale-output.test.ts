/**
 * Text output follows the locale as ostree's does: GLib converts what ostree prints to the
 * charset of LC_CTYPE (or $CHARSET), one `?` per character the charset lacks. Compared byte for
 * byte with the real ostree under C, C.UTF-8, a locale the system lacks, and $CHARSET=ISO-8859-1;
 * --json output is ASCII in every locale and parses to the same value.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, ok, ostree, RUN_INTEROP, requireOstree, scratch } from './helpers.js';

type Env = Record<string, string | undefined>;

const LOCALES: [string, Env][] = [
  ['LANG=C', { LANG: 'C' }],
  ['LANG=C.UTF-8', { LANG: 'C.UTF-8' }],
  ['LC_CTYPE=C.UTF-8 with LANG=C', { LANG: 'C', LC_CTYPE: 'C.UTF-8' }],
  ['a locale the system lacks (setlocale fails: C)', { LANG: 'xx_YY.UTF-8' }],
  ['CHARSET=ISO-8859-1', { LANG: 'C', CHARSET: 'ISO-8859-1' }],
];

function run(cmd: string, args: string[], extra: Env): { code: number; stdout: Buffer; stderr: Buffer } {
  const env: NodeJS.ProcessEnv = { ...process.env, TZ: 'UTC' };
  for (const k of ['LANG', 'LC_ALL', 'LC_CTYPE', 'LC_MESSAGES', 'LC_TIME', 'CHARSET', 'LANGUAGE']) delete env[k];
  Object.assign(env, extra);
  const r = spawnSync(cmd, args, { env, input: '', maxBuffer: 16 * 1024 * 1024 });
  if (r.error) throw r.error;
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

const larchRun = (args: string[], env: Env) => run(process.execPath, [CLI, ...args], env);
const ostreeRun = (args: string[], env: Env) => run('ostree', args, env);

let repo = '';
let cleanup = async (): Promise<void> => {};

afterAll(() => cleanup());

beforeAll(async () => {
  if (!RUN_INTEROP) return;
  requireOstree();
  const s = await scratch('larch-cli-locale-');
  cleanup = s.cleanup;
  const dir = s.dir;
  repo = join(dir, 'repo');
  const t = join(dir, 'tree');
  mkdirSync(join(t, 'dîr'), { recursive: true });
  writeFileSync(join(t, 'café'), 'x\n');
  writeFileSync(join(t, 'dîr', 'cafe\u0301'), 'combining\n');
  writeFileSync(join(t, 'dîr', '\u{1F332} larch'), 'astral\n');
  ok(ostree(['init', `--repo=${repo}`, '--mode=archive']));
  ok(ostree(['commit', `--repo=${repo}`, '-b', 'main', '-s', 'Zürich — naïve', '-m', 'body ünïcode', '--timestamp=2021-06-01 12:00:00 +0000', `--tree=dir=${t}`]));
});

describe.runIf(RUN_INTEROP)('text output in the locale\'s charset, as ostree prints it', () => {
  for (const [name, env] of LOCALES) {
    it(`ls -R, show and an error message: the same bytes as ostree (${name})`, () => {
      for (const args of [
        ['ls', '-R', `--repo=${repo}`, 'main'],
        ['show', `--repo=${repo}`, 'main'],
        ['ls', `--repo=${repo}`, 'main', '/dîr/nøpe'],
      ]) {
        const mine = larchRun(args, env);
        const theirs = ostreeRun(args, env);
        expect(mine.code, args.join(' ')).toBe(theirs.code);
        expect(mine.stdout.toString('latin1'), args.join(' ')).toBe(theirs.stdout.toString('latin1'));
        expect(mine.stderr.toString('latin1'), args.join(' ')).toBe(theirs.stderr.toString('latin1'));
      }
    });
  }

  it('under LANG=C each character the charset lacks is one ?', () => {
    const out = larchRun(['ls', '-R', `--repo=${repo}`, 'main'], { LANG: 'C' }).stdout.toString('latin1');
    expect(out).toContain('/caf?\n');
    expect(out).toContain('/d?r/cafe?\n');
    expect(out).toContain('/d?r/? larch\n');
  });

  it('--json is ASCII in every locale and parses to the same names', () => {
    const outs = LOCALES.map(([, env]) => larchRun(['ls', '-R', '--json', `--repo=${repo}`, 'main'], env).stdout);
    for (const o of outs) {
      expect([...o].every((b) => b < 0x80)).toBe(true);
      expect(o.equals(outs[0] as Buffer)).toBe(true);
    }
    const paths = (JSON.parse((outs[0] as Buffer).toString('utf8')) as { path: string }[]).map((e) => e.path);
    expect(paths).toContain('/café');
    expect(paths).toContain('/dîr/\u{1F332} larch');
  });

  it('cat writes the file\'s bytes whatever the locale', () => {
    const mine = larchRun(['cat', `--repo=${repo}`, 'main', '/dîr/cafe\u0301'], { LANG: 'C' });
    expect(mine.code).toBe(0);
    expect(mine.stdout.toString('utf8')).toBe('combining\n');
  });
});
