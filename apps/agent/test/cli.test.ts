/**
 * The `larch-agent` command line: usage errors, one-line runtime errors, the resolved
 * configuration, a second agent on the same state directory refused while one runs, and a
 * cycle stopped by SIGTERM.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
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

  it('run --once stops on SIGTERM: the request in flight is aborted, the agent exits', async () => {
    // A check-in server that takes the request and never answers, and a check-in deadline of an
    // hour: only the signal can end this cycle.
    const requests: IncomingMessage[] = [];
    let arrived: () => void = () => {};
    const server = createServer((req) => {
      requests.push(req);
      arrived();
    });
    const got = new Promise<void>((r) => (arrived = r));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    let child: ChildProcess | null = null;
    try {
      const port = (server.address() as AddressInfo).port;
      const f = work.join('sigterm.json');
      writeFileSync(
        f,
        JSON.stringify({
          ref: 'os/main',
          sysroot: work.join('none'),
          stateDir: work.join('state-sigterm'),
          deviceId: 'd2',
          checkInUrl: `http://127.0.0.1:${port}/check-in/{deviceId}`,
          checkInToken: 'token',
          timeouts: { checkInSeconds: 3600 },
        }),
      );
      child = spawn(process.execPath, [BIN, 'run', '--once', `--config=${f}`], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout!.on('data', (b: Buffer) => (out += b.toString()));
      const exited = new Promise<number | null>((r) => child!.once('exit', (c) => r(c)));
      await got;
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      const checkIn = out.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.event === 'check-in');
      expect(checkIn).toMatchObject({ sent: false, error: { code: 'ABORTED' } });
    } finally {
      if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  }, 300_000);
});
