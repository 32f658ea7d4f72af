import { describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { CommandFailedError, hasOstree, interopDescribe, interopMode, larchCliPath, ostree, ostreeOk, requireOstree, run, runOk } from './run.js';

describe('run', () => {
  it('collects stdout, stderr and the exit code', async () => {
    const r = await run('sh', ['-c', 'echo out; echo err >&2; exit 3']);
    expect(r).toMatchObject({ stdout: 'out\n', stderr: 'err\n', code: 3 });
  });

  it('passes stdin and env', async () => {
    const r = await run('sh', ['-c', 'cat; printf %s "$LARCH_T"'], { input: 'in-', env: { LARCH_T: 'env' } });
    expect(r.stdout).toBe('in-env');
  });

  it('runOk rejects with stderr in the message', async () => {
    await expect(runOk('sh', ['-c', 'echo "error: boom" >&2; exit 1'])).rejects.toThrow(CommandFailedError);
    await expect(runOk('sh', ['-c', 'echo "error: boom" >&2; exit 1'])).rejects.toThrow(/error: boom/);
  });
});

describe('larchCliPath', () => {
  it('points at apps/cli/dist/main.js inside this monorepo', () => {
    const p = larchCliPath();
    expect(p.endsWith('/apps/cli/dist/main.js')).toBe(true);
    expect(existsSync(p.replace(/dist\/main\.js$/, 'package.json'))).toBe(true);
  });
});

describe('interop selection', () => {
  it('runs, fails in CI, or skips locally', () => {
    const fake = { skip: 'skipped' } as unknown as { skip: unknown };
    if (hasOstree()) {
      expect(interopMode({ CI: 'true' })).toBe('run');
      expect(interopDescribe(fake)).toBe(fake);
      expect(() => requireOstree()).not.toThrow();
    } else {
      expect(interopMode({ CI: 'true' })).toBe('fail');
      expect(interopMode({})).toBe('skip');
      expect(() => requireOstree()).toThrow(/not installed/);
    }
  });
});

interopDescribe(describe)('ostree wrapper (interop)', () => {
  it('runs the real ostree', async () => {
    requireOstree();
    const r = await ostreeOk(['--version']);
    expect(r.stdout).toMatch(/Version: '20\d\d\.\d+'/);
  });

  it('reports failures with the error line', async () => {
    requireOstree();
    const r = await ostree(['log', '--repo=/nonexistent-larch-repo', 'x']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/^error: /m);
    await expect(ostreeOk(['log', '--repo=/nonexistent-larch-repo', 'x'])).rejects.toThrow(/error:/);
  });
});
