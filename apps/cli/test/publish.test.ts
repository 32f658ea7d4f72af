/**
 * `larch publish`: argument handling and a publish/prune round trip into a directory store (the
 * S3 paths are exercised against a real radosgw in packages/object-store/test/s3.test.ts).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { larch } from './helpers.js';

const work = mkdtempSync(join(tmpdir(), 'larch-cli-publish-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('larch publish', () => {
  it('rejects bad option combinations and URLs with one line', () => {
    for (const [args, msg] of [
      [['publish', '--grace=10', 's3://bucket/x'], 'error: --grace requires --prune'],
      [['publish', '--prune', 's3://bucket/x'], 'error: --prune requires --grace=SECS'],
      [['publish', '--public-read', 's3://bucket/x'], 'error: --public-read requires --create-bucket'],
      [['publish', '--concurrency=0', 's3://bucket/x'], 'error: '],
      [['publish', '--repo', work, 's3://B!/x'], 'error: Invalid S3 URL "s3://B!/x": expected s3://BUCKET/PREFIX'],
      [['publish', '--repo', work, '--endpoint=http://x', join(work, 'dir')], 'error: --endpoint, --region and --create-bucket need an s3:// destination'],
    ] as const) {
      const r = larch([...args]);
      expect(r.code).toBe(1);
      expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
      expect(r.stderr).toContain(msg);
    }
  });

  it('publishes a repo into a directory, uploads nothing the second time, and prunes', () => {
    const repo = join(work, 'repo');
    const tree = join(work, 'tree');
    mkdirSync(join(tree, 'sub'), { recursive: true });
    for (let i = 0; i < 20; i++) writeFileSync(join(tree, 'sub', `f${i}`), `content ${i}\n`);
    expect(larch(['init', `--repo=${repo}`, '--mode=archive']).code).toBe(0);
    const c = larch(['commit', `--repo=${repo}`, '-b', 'main', `--tree=dir=${tree}`, '-s', 'one']);
    expect(c.code).toBe(0);
    const commit = c.stdout.trim();
    expect(larch(['summary', '-u', `--repo=${repo}`]).code).toBe(0);
    const dest = join(work, 'pub');
    const dry = larch(['publish', `--repo=${repo}`, '--dry-run', dest]);
    expect(dry.code).toBe(0);
    expect(dry.stdout).toContain('refs/heads/main\n');
    expect(dry.stdout).toMatch(/^Would upload \d+ files/m);
    const first = larch(['publish', `--repo=${repo}`, '--json', dest]);
    expect(first.code).toBe(0);
    const done = JSON.parse(first.stdout.trim().split('\n').pop()!);
    expect(done.event).toBe('done');
    expect(done.uploaded).toContain('summary');
    expect(done.uploaded.at(-1)).toBe('summary');
    expect(readFileSync(join(dest, 'refs/heads/main'), 'utf8').trim()).toBe(commit);
    const second = larch(['publish', `--repo=${repo}`, dest]);
    expect(second.stdout).toMatch(/^Uploaded 0 files \(0 bytes\) to .* already there\n$/);
    // Delete the ref: its objects become unreachable; prune lists them in a dry run, then deletes them.
    expect(larch(['refs', `--repo=${repo}`, '--delete', 'main']).code).toBe(0);
    expect(larch(['summary', '-u', `--repo=${repo}`]).code).toBe(0);
    expect(larch(['publish', `--repo=${repo}`, dest]).stdout).toContain('1 stale refs deleted');
    const pd = larch(['publish', '--prune', '--grace=0', '--dry-run', dest]);
    expect(pd.code).toBe(0);
    expect(pd.stdout).toMatch(new RegExp(`objects/${commit.slice(0, 2)}/${commit.slice(2)}\\.commit \\d+\\n`));
    expect(pd.stdout).toMatch(/^Would delete \d+ objects/m);
    const p = larch(['publish', '--prune', '--grace=0', '--json', dest]);
    const pr = JSON.parse(p.stdout);
    expect(pr.deleted.length).toBeGreaterThan(20);
    expect(larch(['publish', '--prune', '--grace=0', dest]).stdout).toMatch(/^Deleted 0 objects/);
  });
});
