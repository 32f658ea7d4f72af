/**
 * The `larch-agent` command line: usage errors, one-line runtime errors, the resolved
 * configuration, and a second agent on the same state directory refused while one runs.
 */
import { spawn, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tmpDir, type TmpDir } from '@larch/test-fixtures';

const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../dist/main.js');
const agent = (...args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8' });

describe('larch-agent command line', () => {
  let work: TmpDir;
  beforeAll(async () => {
    work = await tmpDir('larch-agent-cli-');
  });
  afterAll(async () => {
    await work?.cleanup();
  });

  it('usage errors exit 2; runtime errors are one line and exit 1', () => {
    expect(agent('run').status).toBe(2);
    expect(agent('frobnicate').status).toBe(2);
    const missing = agent('status', `--config=${work.join('nope.toml')}`);
    expect(missing.status).toBe(1);
    expect(missing.stderr).toMatch(/^larch-agent: error: Cannot read configuration .*nope\.toml: .*\n$/);
    const bad = work.join('bad.json');
    writeFileSync(bad, JSON.stringify({ ref: 'a', schedule: { intervalSeconds: 0 } }));
    const r = agent('config', `--config=${bad}`);
    expect(r.status).toBe(1);
    expect(r.stderr).toBe(`larch-agent: error: Invalid configuration ${bad}: schedule.intervalSeconds: Too small: expected number to be >0\n`);
  });

  it('config prints every default', () => {
    const f = work.join('a.toml');
    writeFileSync(f, 'ref = "os/main"\nsysroot = "/srv/device"\n');
    const r = agent('config', `--config=${f}`);
    expect(r.status, r.stderr).toBe(0);
    const c = JSON.parse(r.stdout) as Record<string, unknown>;
    expect(c).toMatchObject({ ref: 'os/main', sysroot: '/srv/device', repo: '/srv/device/ostree/repo', remote: { name: 'origin' }, schedule: { intervalSeconds: 3600 } });
  });

  it('a second agent on the same state directory is refused while the first runs', async () => {
    const f = work.join('lock.json');
    // A sysroot that does not exist: the daemon logs the failed check and sleeps, holding the lock.
    writeFileSync(f, JSON.stringify({ ref: 'os/main', sysroot: work.join('none'), stateDir: work.join('state'), deviceId: 'd1', schedule: { intervalSeconds: 3600, jitterSeconds: 0 } }));
    const first = spawn(process.execPath, [BIN, 'run', `--config=${f}`], { stdio: ['ignore', 'pipe', 'pipe'] });
    await new Promise<void>((resolve) => first.stdout.on('data', (b: Buffer) => b.toString().includes('"sleep"') && resolve()));
    const second = agent('run', '--once', `--config=${f}`);
    expect(second.status).toBe(1);
    expect(second.stderr).toMatch(/Another larch-agent is running on .*state \(.*agent\.lock is locked\)/);
    const exited = new Promise<number | null>((r) => first.once('exit', (c) => r(c)));
    first.kill('SIGTERM');
    expect(await exited).toBe(0);
  });
});
