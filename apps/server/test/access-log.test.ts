import { PassThrough, Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { AccessLog, MAX_LOGGED_PATH, type AccessLogEntry } from '../src/access-log.js';

const entry = (path: string): AccessLogEntry => ({ time: '2026-01-01T00:00:00.000Z', method: 'GET', path, status: 404, bytes: 16, durationMs: 0.5, remote: '127.0.0.1' });

function collect(format: 'json' | 'text'): { log: AccessLog; text: () => string } {
  const out = new PassThrough();
  let text = '';
  out.on('data', (d: Buffer) => (text += d.toString()));
  return { log: AccessLog.toStream(out, format), text: () => text };
}

describe('AccessLog', () => {
  it('writes one JSON object per line with every field', async () => {
    const { log, text } = collect('json');
    log.write(entry('/config'));
    log.write({ ...entry('/x'), reason: 'not a repository file' });
    await log.close();
    const lines = text().trim().split('\n').map((l) => JSON.parse(l) as AccessLogEntry);
    expect(lines).toEqual([entry('/config'), { ...entry('/x'), reason: 'not a repository file' }]);
  });

  it('caps long paths and escapes control characters in text lines', async () => {
    const { log, text } = collect('text');
    log.write(entry(`/a\u001b[31m"\n${'x'.repeat(2 * MAX_LOGGED_PATH)}`));
    await log.close();
    const line = text();
    expect(line.split('\n')).toHaveLength(2);
    expect(line).not.toContain('\u001b');
    expect(line).toContain('\\x1b[31m\\x22\\x0a');
    expect(line.length).toBeLessThan(MAX_LOGGED_PATH + 200);
  });

  it('drops and counts lines instead of queueing without bound behind a stuck stream', async () => {
    // A stream that never finishes a write: everything stays queued.
    const stuck = new Writable({ highWaterMark: 1024, write: () => undefined });
    const log = AccessLog.toStream(stuck, 'json');
    for (let i = 0; i < 200_000; i++) log.write(entry(`/objects/aa/${'b'.repeat(62)}.filez`));
    log.flush();
    expect(stuck.writableLength).toBeLessThan(6 * 1024 * 1024);
  });
});
