import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const SCRIPT = join(ROOT, 'tooling/scripts/size-check.mjs');

function run(...args: string[]): { status: number | null; out: string } {
  const r = spawnSync(process.execPath, [SCRIPT, ...args], { encoding: 'utf8' });
  return { status: r.status, out: r.stdout + r.stderr };
}

/** A function of `n` lines in total (declaration line and closing brace included). */
const fn = (name: string, n: number): string => `export function ${name}(): number {\n${'  void 0;\n'.repeat(n - 3)}  return 1;\n}\n`;

describe('size-check', () => {
  it('passes on this repository (no file or function past its limit or its allowlisted size)', () => {
    const r = run();
    expect(r.out).toBe('');
    expect(r.status).toBe(0);
  });

  describe('on a fixture tree', () => {
    let dir: string;
    let allow: string;
    const write = (rel: string, text: string): void => {
      mkdirSync(dirname(join(dir, rel)), { recursive: true });
      writeFileSync(join(dir, rel), text);
    };
    const check = (...extra: string[]) => run('--root', dir, '--allow', allow, ...extra);

    beforeAll(() => {
      dir = mkdtempSync(join(tmpdir(), 'larch-size-check-'));
      allow = join(dir, 'allow.txt');
      // 601 lines, no function: over the file limit only.
      write('packages/a/src/big.ts', `${'export const x = 1;\n'.repeat(601)}`);
      // One function of 151 lines inside a method of a class.
      write('apps/b/src/long.ts', `export class K {\n  m(): void {\n    const inner = () => {\n${'      void 0;\n'.repeat(149)}    };\n    inner();\n  }\n}\n`);
      // Within the limits: exactly 600 lines, a function of exactly 150.
      write('packages/a/src/ok.ts', `${fn('ok', 150)}${'export const y = 1;\n'.repeat(600 - 150)}`);
      // Tests and files outside src/ are not measured.
      write('packages/a/src/big.test.ts', 'export const t = 1;\n'.repeat(700));
      write('packages/a/test/big.ts', 'export const t = 1;\n'.repeat(700));
    });
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    it('names each file over 600 lines and each function over 150, and exits non-zero', () => {
      writeFileSync(allow, '');
      const r = check();
      expect(r.status).toBe(1);
      expect(r.out).toContain('packages/a/src/big.ts: 601 lines (limit 600)');
      expect(r.out).toContain('apps/b/src/long.ts:3: function K.m.inner is 151 lines (limit 150)');
      // m holds inner, so it is over too.
      expect(r.out).toContain('function K.m is');
      expect(r.out).not.toContain('ok.ts');
      expect(r.out).not.toContain('test');
    });

    it('accepts items allowlisted at their size, and fails when one grows past its count', () => {
      writeFileSync(allow, '# comment\npackages/a/src/big.ts 601\napps/b/src/long.ts#K.m.inner 151\napps/b/src/long.ts#K.m 154\n');
      expect(check()).toEqual({ status: 0, out: '' });
      write('packages/a/src/big.ts', 'export const x = 1;\n'.repeat(602));
      const r = check();
      expect(r.status).toBe(1);
      expect(r.out).toContain('packages/a/src/big.ts: 602 lines (limit 600), grown past its allowlisted 601');
    });

    it('lets the allowlist only shrink: a smaller item must lower its count, --update lowers it and drops fixed items', () => {
      write('packages/a/src/big.ts', 'export const x = 1;\n'.repeat(605));
      writeFileSync(allow, '# kept\npackages/a/src/big.ts 610\napps/b/src/long.ts#K.m.inner 151\napps/b/src/long.ts#K.m 154\npackages/a/src/ok.ts#ok 150\npackages/a/src/gone.ts 700\n');
      const r = check();
      expect(r.status).toBe(1);
      expect(r.out).toContain('packages/a/src/big.ts is 605 lines, below its allowlisted 610; lower the count to 605');
      expect(r.out).toContain('packages/a/src/ok.ts#ok is 150 lines, within the limit of 150; remove its line');
      expect(r.out).toContain('packages/a/src/gone.ts no longer exists');
      expect(check('--update')).toEqual({ status: 0, out: '' });
      expect(readFileSync(allow, 'utf8')).toBe('# kept\napps/b/src/long.ts#K.m 154\napps/b/src/long.ts#K.m.inner 151\npackages/a/src/big.ts 605\n');
      // --update never raises a count.
      write('packages/a/src/big.ts', 'export const x = 1;\n'.repeat(606));
      expect(check('--update').status).toBe(1);
      expect(readFileSync(allow, 'utf8')).toContain('packages/a/src/big.ts 605\n');
    });

    it('refuses a malformed allowlist in one line naming it', () => {
      writeFileSync(allow, 'packages/a/src/big.ts lots\n');
      const r = check();
      expect(r.status).toBe(2);
      expect(r.out.trim().split('\n')).toHaveLength(1);
      expect(r.out).toMatch(/allow\.txt:1: expected "PATH COUNT"/);
    });
  });
});
