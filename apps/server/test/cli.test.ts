import { writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run, tmpDir, type TmpDir } from '@larch/test-fixtures';
import { SAMPLE_TREE, SERVER_MAIN, httpGet, makeLarchRepo, startServerProcess } from './support.js';

let tmp: TmpDir;
beforeAll(async () => {
  tmp = await tmpDir('larch-server-cli-');
  await makeLarchRepo(tmp.join('repo'), SAMPLE_TREE, 'main');
});
afterAll(async () => {
  await tmp?.cleanup();
});

const server = (args: string[]) => run(process.execPath, [SERVER_MAIN, ...args], { timeoutMs: 30_000 });

describe('larch-server command line', () => {
  it('rejects unknown options and bad values with exit status 2', async () => {
    for (const args of [['--nope'], ['--port=70000'], ['--port=abc'], ['--log-format=xml'], ['extra']]) {
      const r = await server(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(/^larch-server: error: /);
    }
  });

  it('validates the config file', async () => {
    const bad = [
      { port: 1, repos: [] },
      { repos: [{ prefix: 'os', path: '/x' }] },
      { repos: [{ prefix: '/os', path: tmp.join('repo') }], extra: true },
    ];
    for (const [i, cfg] of bad.entries()) {
      await writeFile(tmp.join(`bad-${i}.json`), JSON.stringify(cfg));
      const r = await server([`--config=${tmp.join(`bad-${i}.json`)}`]);
      expect(r.code, JSON.stringify(cfg)).toBe(2);
      expect(r.stderr).toContain('config file');
    }
    await writeFile(tmp.join('dup.json'), JSON.stringify({ port: 0, repos: [{ prefix: '/a', path: tmp.join('repo') }, { prefix: '/a/', path: tmp.join('repo') }] }));
    const dup = await server([`--config=${tmp.join('dup.json')}`]);
    expect(dup.code).toBe(1);
    expect(dup.stderr).toContain('Duplicate prefix');
  });

  it('fails with exit status 1 when the repository does not exist', async () => {
    const r = await server([`--repo=${tmp.join('missing')}`, '--port=0']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("Couldn't find repository");
  });

  it('writes text access logs with --log-format=text', async () => {
    const s = await startServerProcess([`--repo=${tmp.join('repo')}`, '--port=0', '--log-format=text']);
    await httpGet(s.url, '/config');
    await s.stop();
    expect(s.stderr()).toMatch(/^127\.0\.0\.1 \[[^\]]+\] "GET \/config" 200 \d+ [\d.]+ms$/m);
  });

  it('rejects header and keep-alive timeouts out of range with exit status 2, naming the option', async () => {
    for (const args of [['--headers-timeout=0'], ['--headers-timeout=61'], ['--headers-timeout=abc'], ['--keep-alive-timeout=0'], ['--keep-alive-timeout=-1']]) {
      const r = await server([`--repo=${tmp.join('repo')}`, '--port=0', ...args]);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr, args.join(' ')).toMatch(new RegExp(`^larch-server: error: option ${args[0].slice(2).split('=')[0]}: .*\n`));
      expect(r.stderr).not.toContain('    at ');
    }
    await writeFile(tmp.join('bad-timeout.json'), JSON.stringify({ headersTimeout: 600, repos: [{ prefix: '/', path: tmp.join('repo') }] }));
    const r = await server([`--config=${tmp.join('bad-timeout.json')}`]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('headersTimeout');
  });

  it('answers 408 and closes a connection that does not finish its headers within --headers-timeout, and closes idle keep-alive connections after --keep-alive-timeout', async () => {
    await writeFile(tmp.join('timeouts.json'), JSON.stringify({ port: 0, keepAliveTimeout: 1, repos: [{ prefix: '/', path: tmp.join('repo') }] }));
    const s = await startServerProcess([`--config=${tmp.join('timeouts.json')}`, '--headers-timeout=1', '--access-log=/dev/null']);
    try {
      const u = new URL(s.url);
      const talk = (bytes: string): Promise<string> =>
        new Promise((resolve) => {
          const c = connect(Number(u.port), u.hostname, () => c.write(bytes));
          let got = '';
          c.on('data', (d: Buffer) => (got += d.toString('latin1')));
          c.on('error', () => undefined);
          c.on('close', () => resolve(got));
        });
      // Both connections stay open on the client's side: only the server's timeouts end them.
      const [slow, keptAlive] = await Promise.all([talk('GET /config HTTP/1.1\r\nHost: x\r\n'), talk('GET /config HTTP/1.1\r\nHost: x\r\n\r\n')]);
      expect(slow).toMatch(/^HTTP\/1\.1 408 Request Timeout\r\n/);
      expect(keptAlive).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
      expect(keptAlive).toContain('Keep-Alive: timeout=1');
    } finally {
      await s.stop();
    }
  });

  it('lets flags override the config file', async () => {
    await writeFile(tmp.join('ok.json'), JSON.stringify({ bind: '127.0.0.1', port: 1, repos: [{ prefix: '/os', path: tmp.join('repo') }] }));
    const s = await startServerProcess([`--config=${tmp.join('ok.json')}`, '--port=0', '--access-log=/dev/null']);
    expect(s.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/os\/$/);
    expect((await httpGet(s.url, '/os/config')).status).toBe(200);
    expect((await httpGet(s.url, '/config')).status).toBe(404);
    await s.stop();
  });
});
