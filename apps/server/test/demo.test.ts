import { readFile, stat, writeFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { interopDescribe, requireOstree, tmpDir, type TmpDir } from '@larch/test-fixtures';
import { SAMPLE_TREE, ostreePullAndCheck, startServerProcess } from './support.js';

const describeInterop = interopDescribe(describe);
let tmp: TmpDir;

describeInterop('larch-server with no repository serves the demo repository', () => {
  beforeAll(async () => {
    requireOstree();
    tmp = await tmpDir('larch-server-demo-');
  });
  afterAll(async () => {
    await tmp?.cleanup();
  });

  let commit = '';

  it('builds the demo repository in XDG_CACHE_HOME and the real ostree pulls it', async () => {
    const server = await startServerProcess(['--port=0'], { env: { XDG_CACHE_HOME: tmp.join('cache') } });
    try {
      expect(server.stdout()).toContain(`Serving ${tmp.join('cache/larch/demo-repo')} at http://127.0.0.1:`);
      const m = /Demo repository built: branch larch\/demo, commit ([0-9a-f]{64})/.exec(server.stderr());
      expect(m).not.toBeNull();
      commit = m![1];
      expect(await ostreePullAndCheck(tmp.join('pulled'), 'bare-user', server.url, 'larch/demo', SAMPLE_TREE)).toBe(commit);
    } finally {
      expect(await server.stop('SIGINT')).toBe(0);
    }
  });

  it('reuses the cached repository on the next start', async () => {
    const before = await stat(tmp.join('cache/larch/demo-repo/objects'));
    const server = await startServerProcess(['--port=0', `--state-dir=${tmp.join('cache/larch')}`]);
    try {
      expect(server.stderr()).toContain(`Demo repository reused: branch larch/demo, commit ${commit}`);
      expect((await stat(tmp.join('cache/larch/demo-repo/objects'))).ino).toBe(before.ino);
    } finally {
      await server.stop();
    }
  });

  it('rebuilds a stale repository into the same commit', async () => {
    const stampPath = tmp.join('cache/larch/demo-repo.stamp');
    const stamp = JSON.parse(await readFile(stampPath, 'utf8')) as { version: string };
    await writeFile(stampPath, JSON.stringify({ ...stamp, version: '0.0.0-old' }));
    const server = await startServerProcess(['--port=0', `--state-dir=${tmp.join('cache/larch')}`]);
    try {
      expect(server.stderr()).toContain(`Demo repository built: branch larch/demo, commit ${commit}`);
      expect(await ostreePullAndCheck(tmp.join('pulled-2'), 'archive', server.url, 'larch/demo', SAMPLE_TREE)).toBe(commit);
    } finally {
      await server.stop();
    }
  });
});
